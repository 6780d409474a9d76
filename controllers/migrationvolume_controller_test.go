package controllers

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudsim"
	"github.com/migratekit/ossea-operator/internal/cloudstack"
	"github.com/migratekit/ossea-operator/internal/testkit"
	"github.com/migratekit/ossea-operator/test/world"
)

// volumeWorld is the test world for volume tests: the tenant owns the OMA VM.
func volumeWorld(w *cloudsim.World) { testWorld(w) }

// startVolumeSim starts a simulator whose jobs take a while, as CloudStack's do.
func startVolumeSim(t *testing.T, opts cloudsim.Options) *sim {
	t.Helper()
	if opts.World == nil {
		opts.World = cloudsim.DefaultWorld()
		volumeWorld(opts.World)
	}
	if opts.JobLatency == 0 {
		opts.JobLatency = 300 * time.Millisecond
	}
	s, err := cloudsim.New(opts)
	if err != nil {
		t.Fatalf("starting the simulator: %v", err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		srv.Close()
		_ = s.Close()
	})
	return &sim{Simulator: s, srv: srv, url: srv.URL + "/client/api"}
}

// volumeEnv is one namespace with a running manager and a Ready OsseaConfig.
type volumeEnv struct {
	ns  string
	cfg *osseav1.OsseaConfig
	sim *sim
	mgr *testManager
}

func newVolumeEnv(t *testing.T, s *sim, editConfig func(*osseav1.OsseaConfig)) *volumeEnv {
	t.Helper()
	ns := newNamespace(t)
	return volumeEnvIn(t, ns, startManager(t, ns), s, editConfig)
}

// volumeEnvIn is newVolumeEnv for a namespace and a manager of the caller's.
func volumeEnvIn(t *testing.T, ns string, mgr *testManager, s *sim, editConfig func(*osseav1.OsseaConfig)) *volumeEnv {
	t.Helper()
	if err := k8s.Create(testCtx, credentials(ns, "ossea-credentials", tenantAPIKey, tenantSecretKey)); err != nil {
		t.Fatal(err)
	}
	cfg := newConfig(ns, "ossea", s.url)
	if editConfig != nil {
		editConfig(cfg)
	}
	if err := k8s.Create(testCtx, cfg); err != nil {
		t.Fatal(err)
	}
	cfg = waitReady(t, client.ObjectKeyFromObject(cfg), metav1.ConditionTrue, osseav1.ReasonConnected)
	return &volumeEnv{ns: ns, cfg: cfg, sim: s, mgr: mgr}
}

func (e *volumeEnv) newVolume(name string, edit func(*osseav1.MigrationVolume)) *osseav1.MigrationVolume {
	mv := &osseav1.MigrationVolume{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name},
		Spec: osseav1.MigrationVolumeSpec{
			OsseaConfigRef: osseav1.LocalObjectReference{Name: "ossea"},
			JobID:          "job-7", VMName: "Web Server (Prod) 01", DiskName: name, SizeGiB: 2,
		},
	}
	if edit != nil {
		edit(mv)
	}
	return mv
}

func create(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := k8s.Create(testCtx, o); err != nil {
			t.Fatalf("creating %s: %v", o.GetName(), err)
		}
	}
}

// waitVolume polls the volume until check returns "".
func waitVolume(t *testing.T, mv *osseav1.MigrationVolume, timeout time.Duration, check func(*osseav1.MigrationVolume) string) *osseav1.MigrationVolume {
	t.Helper()
	got := &osseav1.MigrationVolume{}
	testkit.Eventually(t, timeout, func() string {
		if err := k8s.Get(testCtx, client.ObjectKeyFromObject(mv), got); err != nil {
			return err.Error()
		}
		if msg := check(got); msg != "" {
			return fmt.Sprintf("%s (phase %s, conditions %s)", msg, got.Status.Phase, testkit.DescribeConditions(got.Status.Conditions))
		}
		return ""
	})
	return got
}

func conditionIs(condType string, want metav1.ConditionStatus, reason string) func(*osseav1.MigrationVolume) string {
	return func(mv *osseav1.MigrationVolume) string {
		c := meta.FindStatusCondition(mv.Status.Conditions, condType)
		if mv.Status.ObservedGeneration != mv.Generation {
			return "not observed yet"
		}
		if c == nil || c.Status != want || (reason != "" && c.Reason != reason) {
			return fmt.Sprintf("want %s=%s %s", condType, want, reason)
		}
		return ""
	}
}

// watchVolumes watches the MigrationVolumes of ns; the watch and ctx end after timeout or
// with the test.
func watchVolumes(t *testing.T, ns string, timeout time.Duration) (context.Context, watch.Interface) {
	t.Helper()
	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: k8s.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(testCtx, timeout)
	t.Cleanup(cancel)
	w, err := wc.Watch(ctx, &osseav1.MigrationVolumeList{}, client.InNamespace(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return ctx, w
}

// simVolumes are the simulator's volumes that carry the object's ownership tag or its name.
func simVolumes(s *sim, mv *osseav1.MigrationVolume) []cloudsim.Volume {
	var out []cloudsim.Volume
	for _, v := range s.Snapshot().Volumes {
		if v.Type != "DATADISK" {
			continue
		}
		owned := v.Name == volumeName(mv)
		for _, tag := range v.Tags {
			owned = owned || (tag.Key == TagUID && tag.Value == string(mv.UID))
		}
		if owned {
			out = append(out, v)
		}
	}
	return out
}

// agentMount plays the node agent: it takes the mount finalizer and reports Mounted.
func agentMount(t *testing.T, mv *osseav1.MigrationVolume) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, func() string {
		cur := &osseav1.MigrationVolume{}
		if err := k8s.Get(testCtx, client.ObjectKeyFromObject(mv), cur); err != nil {
			return err.Error()
		}
		base := cur.DeepCopy()
		controllerutil.AddFinalizer(cur, osseav1.MountFinalizer)
		if err := k8s.Patch(testCtx, cur, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
			return err.Error()
		}
		base = cur.DeepCopy()
		meta.SetStatusCondition(&cur.Status.Conditions, metav1.Condition{
			Type: osseav1.ConditionMounted, Status: metav1.ConditionTrue, Reason: "Mounted",
			Message: "mounted by the test", ObservedGeneration: cur.Generation,
		})
		cur.Status.MountPath = "/mnt/migration/" + cur.Spec.JobID + "/" + cur.Spec.DiskName
		if err := k8s.Status().Patch(testCtx, cur, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
			return err.Error()
		}
		return ""
	})
}

// agentRelease plays the node agent unmounting: the mount finalizer goes.
func agentRelease(t *testing.T, mv *osseav1.MigrationVolume) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, func() string {
		cur := &osseav1.MigrationVolume{}
		if err := k8s.Get(testCtx, client.ObjectKeyFromObject(mv), cur); err != nil {
			return err.Error()
		}
		base := cur.DeepCopy()
		controllerutil.RemoveFinalizer(cur, osseav1.MountFinalizer)
		if err := k8s.Patch(testCtx, cur, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
			return err.Error()
		}
		return ""
	})
}

func assertVolumeKstatus(t *testing.T, mv *osseav1.MigrationVolume, want status.Status) {
	t.Helper()
	mv = mv.DeepCopy()
	mv.SetGroupVersionKind(osseav1.GroupVersion.WithKind("MigrationVolume"))
	assertKstatus(t, mv, want)
}

// directCloud is a CloudStack client for out-of-band changes, as a person with the
// CloudStack UI would make them.
func directCloud(t *testing.T, e *volumeEnv) cloudstack.Cloud {
	t.Helper()
	cfg := e.cfg.DeepCopy()
	cfg.Name = "out-of-band"
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "out-of-band"},
		Data:       map[string][]byte{"apiKey": []byte(tenantAPIKey), "secretKey": []byte(tenantSecretKey)},
	}
	c, err := cloudstack.NewFactory().For(cfg, secret)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitJob waits for a CloudStack job started out of band.
func waitJob(t *testing.T, c cloudstack.Cloud, jobID string) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, func() string {
		res, err := c.PollJob(context.Background(), jobID)
		if err != nil {
			return err.Error()
		}
		if res.Status == cloudstack.JobPending {
			return "job pending"
		}
		if res.Err != nil {
			t.Fatalf("job %s failed: %v", jobID, res.Err)
		}
		return ""
	})
}

// TestVolumeLifecycle: create → tag → attach with slow jobs, Ready once the agent mounted,
// then a teardown in the only safe order.
func TestVolumeLifecycle(t *testing.T) {
	s := startVolumeSim(t, cloudsim.Options{JobLatency: 500 * time.Millisecond})
	e := newVolumeEnv(t, s, nil)
	mv := e.newVolume("disk0", func(mv *osseav1.MigrationVolume) { mv.Spec.Tags = map[string]string{"wave": "3"} })
	create(t, mv)

	got := waitVolume(t, mv, 30*time.Second, conditionIs(osseav1.ConditionAttached, metav1.ConditionTrue, osseav1.ReasonAttached))
	if !controllerutil.ContainsFinalizer(got, osseav1.VolumeFinalizer) {
		t.Error("no volume finalizer on an attached volume")
	}
	vols := simVolumes(s, got)
	if len(vols) != 1 {
		t.Fatalf("the simulator holds %d volumes for the object, want 1", len(vols))
	}
	v := vols[0]
	if v.ID != got.Status.VolumeID || v.VirtualMachineID != cloudsim.DefaultOMAVMID || v.State != "Ready" ||
		v.SizeBytes != 2<<30 || v.Name != volumeName(got) {
		t.Errorf("simulator volume %+v does not match status %+v", v, got.Status)
	}
	tags := map[string]string{}
	for _, tag := range v.Tags {
		tags[tag.Key] = tag.Value
	}
	for k, want := range map[string]string{
		TagManagedBy: managedByValue, TagUID: string(got.UID), TagOwner: e.ns + "/disk0",
		TagJobID: "job-7", TagVMName: "Web Server (Prod) 01", TagDiskName: "disk0", "wave": "3",
	} {
		if tags[k] != want {
			t.Errorf("tag %s = %q, want %q", k, tags[k], want)
		}
	}
	st := got.Status
	if st.AttachedVirtualMachineID != cloudsim.DefaultOMAVMID || st.DeviceID == nil || *st.DeviceID != 1 ||
		st.DevicePath != "" || st.SizeBytes != 2<<30 || st.PendingJob != nil {
		// (devicePath is the node agent's to report, from the link it finds; none runs here.)
		t.Errorf("status after attach: %+v", st)
	}
	if got.Status.Phase != osseav1.PhaseAttached {
		t.Errorf("phase %s, want Attached", got.Status.Phase)
	}
	assertVolumeKstatus(t, got, status.InProgressStatus) // not Ready until the agent mounted

	agentMount(t, got)
	got = waitVolume(t, mv, 10*time.Second, conditionIs(osseav1.ConditionReady, metav1.ConditionTrue, "Mounted"))
	if got.Status.Phase != osseav1.PhaseMounted {
		t.Errorf("phase %s, want Mounted", got.Status.Phase)
	}
	assertVolumeKstatus(t, got, status.CurrentStatus)

	// Teardown: nothing happens in CloudStack while the agent still holds its finalizer.
	if err := k8s.Delete(testCtx, got); err != nil {
		t.Fatal(err)
	}
	unmounting := waitVolume(t, mv, 10*time.Second, func(mv *osseav1.MigrationVolume) string {
		if mv.Status.Phase != osseav1.PhaseUnmounting {
			return "want phase Unmounting"
		}
		return ""
	})
	// Said only once the agent has held it for the grace (see agentLetGoWait): an agent that
	// lets go at once costs no status write. (Times are whole seconds.)
	ready := meta.FindStatusCondition(unmounting.Status.Conditions, osseav1.ConditionReady)
	if ready == nil {
		t.Fatal("no Ready condition while unmounting")
	}
	if said := ready.LastTransitionTime.Sub(unmounting.DeletionTimestamp.Time); said < agentLetGoGrace-time.Second {
		t.Errorf("the teardown said it waits for the agent %v after the deletion, want after %v: %+v", said, agentLetGoGrace, ready)
	}
	detachCalls := s.Snapshot().Calls["detachVolume"]
	time.Sleep(2 * time.Second)
	snap := s.Snapshot()
	if snap.Calls["detachVolume"] != detachCalls || snap.Calls["deleteVolume"] != 0 {
		t.Fatalf("CloudStack was asked to detach or delete while the mount finalizer was present: %v", snap.Calls)
	}
	if vols := simVolumes(s, got); len(vols) != 1 || vols[0].VirtualMachineID == "" {
		t.Fatalf("the volume changed while mounted: %+v", vols)
	}

	released := time.Now()
	agentRelease(t, got)
	testkit.WaitGone(t, k8s, mv, 30*time.Second, nil)
	snap = s.Snapshot()
	if vols := simVolumes(s, got); len(vols) != 0 {
		t.Fatalf("volumes left in CloudStack after delete: %+v", vols)
	}
	var detachDone time.Time
	for _, j := range snap.Jobs {
		if strings.EqualFold(j.Command, "detachVolume") && j.InstanceID == st.VolumeID {
			if j.Created.Before(released) {
				t.Errorf("detach job started at %s, before the mount finalizer went at %s", j.Created, released)
			}
			if j.Completed != nil {
				detachDone = *j.Completed
			}
		}
	}
	if detachDone.IsZero() {
		t.Fatal("no completed detach job")
	}
	for _, at := range snap.CallTimes["deleteVolume"] {
		if at.Before(detachDone) {
			t.Errorf("deleteVolume called at %s, before the detach finished at %s", at, detachDone)
		}
	}
	// One event per outcome: the attach tells the volume's creation, the delete its detach.
	notes := eventNotes(t, e.ns, "disk0")
	if len(notes) != 2 || !strings.Contains(notes[osseav1.ReasonAttached], volumeName(got)+", 2 GiB") ||
		!strings.Contains(notes[osseav1.EventDeleted], "Detached CloudStack volume "+st.VolumeID+" from VM "+cloudsim.DefaultOMAVMID+" and deleted it") {
		t.Errorf("events %v, want one Attached naming the volume and its size, one Deleted telling the detach", notes)
	}

	// The volume was tagged while its create job ran, and no job was asked about alone.
	var createDone time.Time
	for _, j := range snap.Jobs {
		if j.Command == "createVolume" && j.InstanceID == st.VolumeID && j.Completed != nil {
			createDone = *j.Completed
		}
	}
	if tags := snap.CallTimes["createTags"]; len(tags) != 1 || !tags[0].Before(createDone) {
		t.Errorf("createTags at %v, want once, before the create job ended at %s", tags, createDone)
	}
	if n := snap.Calls["queryAsyncJobResult"]; n != 0 {
		t.Errorf("%d queryAsyncJobResult calls in one lifecycle, want 0 (jobs are learnt from batched reads)", n)
	}
}

// eventNotes returns the object's events, note by reason; a reason seen twice fails.
func eventNotes(t *testing.T, ns, name string) map[string]string {
	t.Helper()
	var evs eventsv1.EventList
	if err := k8s.List(testCtx, &evs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, ev := range evs.Items {
		if ev.Regarding.Name != name {
			continue
		}
		if _, dup := out[ev.Reason]; dup {
			t.Errorf("event %s twice: %q", ev.Reason, ev.Note)
		}
		out[ev.Reason] = ev.Note
	}
	return out
}

// TestVolumeExactlyOnceUnderLostResponses: every createVolume, attachVolume and createTags
// reply is lost after CloudStack made the change. Each object still ends with exactly one
// volume, tagged and attached.
func TestVolumeExactlyOnceUnderLostResponses(t *testing.T) {
	s := startVolumeSim(t, cloudsim.Options{Seed: 7})
	e := newVolumeEnv(t, s, nil)
	s.SetFaults(cloudsim.Faults{LostResponseRate: 1, Commands: []string{"createVolume", "attachVolume", "createTags"}})

	var mvs []*osseav1.MigrationVolume
	for i := range 3 {
		mv := e.newVolume(fmt.Sprintf("disk%d", i), nil)
		create(t, mv)
		mvs = append(mvs, mv)
	}
	for _, mv := range mvs {
		got := waitVolume(t, mv, 60*time.Second, conditionIs(osseav1.ConditionAttached, metav1.ConditionTrue, osseav1.ReasonAttached))
		vols := simVolumes(s, got)
		if len(vols) != 1 {
			t.Errorf("%s: %d volumes in CloudStack, want exactly 1: %+v", mv.Name, len(vols), vols)
			continue
		}
		if vols[0].ID != got.Status.VolumeID || vols[0].VirtualMachineID != cloudsim.DefaultOMAVMID {
			t.Errorf("%s: status %+v does not match CloudStack %+v", mv.Name, got.Status, vols[0])
		}
	}
	snap := s.Snapshot()
	if snap.InjectedFaults["lostResponse"] < 9 {
		t.Errorf("only %d lost responses injected; the test did not test much", snap.InjectedFaults["lostResponse"])
	}
	if n := len(world.DataVolumes(snap)); n != 3 {
		t.Errorf("CloudStack holds %d data volumes, want 3", n)
	}
}

// TestVolumeManagerRestartMidJob: the manager dies while a create and its tag job are
// running (status records the tag job: the volume is tagged at once), and again while an
// attach job is; a new one resumes from status and makes no second volume.
func TestVolumeManagerRestartMidJob(t *testing.T) {
	s := startVolumeSim(t, cloudsim.Options{JobLatency: 2 * time.Second})
	e := newVolumeEnv(t, s, nil)
	mv := e.newVolume("disk0", nil)
	create(t, mv)

	for _, op := range []string{opTag, opAttach} {
		waitVolume(t, mv, 30*time.Second, func(mv *osseav1.MigrationVolume) string {
			if mv.Status.PendingJob == nil || mv.Status.PendingJob.Operation != op || mv.Status.PendingJob.ID == "" {
				return "waiting for a pending " + op + " job"
			}
			return ""
		})
		if op == opTag {
			running := false
			for _, j := range s.Snapshot().Jobs {
				running = running || (j.Command == "createVolume" && j.Completed == nil)
			}
			if !running {
				t.Error("the create job had ended before the manager died: the test did not test a restart under it")
			}
		}
		e.mgr.stop() // a crash: nothing in memory survives
		e.mgr = startManager(t, e.ns)
	}
	got := waitVolume(t, mv, 30*time.Second, conditionIs(osseav1.ConditionAttached, metav1.ConditionTrue, osseav1.ReasonAttached))
	if vols := simVolumes(s, got); len(vols) != 1 {
		t.Fatalf("%d volumes in CloudStack after restarts, want 1: %+v", len(vols), vols)
	}
	if n := s.Snapshot().Calls["createVolume"]; n != 1 {
		t.Errorf("createVolume called %d times, want 1", n)
	}
}

// TestVolumeNamesItsVMWhileAttaching: status names the OMA VM from the moment its attach
// job starts, so that the VM's node agent can claim the volume while the job runs, and no
// longer once an attach job has failed. Every version of the object the API server stores
// is checked, through two failed attaches and the one that works.
func TestVolumeNamesItsVMWhileAttaching(t *testing.T) {
	s := startVolumeSim(t, cloudsim.Options{JobLatency: time.Second})
	s.SetFaults(cloudsim.Faults{JobFailureRate: 1, Commands: []string{"attachVolume"}})
	e := newVolumeEnv(t, s, nil)
	ctx, w := watchVolumes(t, e.ns, 90*time.Second)
	mv := e.newVolume("disk0", nil)
	create(t, mv)

	attachJobs, failures := map[string]bool{}, map[string]bool{}
	lastJob := ""
	for {
		var got *osseav1.MigrationVolume
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatalf("the watch ended before the volume was attached (attach jobs %d, failed %d)", len(attachJobs), len(failures))
			}
			got, _ = ev.Object.(*osseav1.MigrationVolume)
		case <-ctx.Done():
			t.Fatalf("not attached in time (attach jobs %d, failed %d)", len(attachJobs), len(failures))
		}
		if got == nil {
			continue
		}
		st := got.Status
		switch {
		case st.PendingJob != nil && st.PendingJob.Operation == opAttach:
			if st.AttachedVirtualMachineID != cloudsim.DefaultOMAVMID {
				t.Errorf("attach job %s running, attachedVirtualMachineID %q, want the OMA VM %s", st.PendingJob.ID, st.AttachedVirtualMachineID, cloudsim.DefaultOMAVMID)
			}
			attachJobs[st.PendingJob.ID] = true
			lastJob = st.PendingJob.ID
		case meta.IsStatusConditionTrue(st.Conditions, osseav1.ConditionAttached):
			if st.AttachedVirtualMachineID != cloudsim.DefaultOMAVMID {
				t.Errorf("attached, attachedVirtualMachineID %q, want %s", st.AttachedVirtualMachineID, cloudsim.DefaultOMAVMID)
			}
			if len(failures) < 2 || len(attachJobs) < 3 {
				t.Errorf("attached after %d attach jobs of which %d failed; want the test to see 2 failures first", len(attachJobs), len(failures))
			}
			return
		default:
			if st.AttachedVirtualMachineID != "" {
				t.Errorf("neither attached nor attaching (conditions %s; last error %+v), yet attachedVirtualMachineID is %q",
					testkit.DescribeConditions(st.Conditions), st.LastCloudStackError, st.AttachedVirtualMachineID)
			}
			if st.LastCloudStackError != nil && lastJob != "" {
				failures[lastJob] = true
				if len(failures) == 2 {
					s.SetFaults(cloudsim.Faults{})
				}
			}
		}
	}
}

// TestVolumeCapacity: with room for two data volumes, two of four wait and attach as soon
// as the first two are deleted.
func TestVolumeCapacity(t *testing.T) {
	s := startVolumeSim(t, cloudsim.Options{})
	e := newVolumeEnv(t, s, func(cfg *osseav1.OsseaConfig) { cfg.Spec.MaxDataVolumes = ptr.To[int32](2) })
	var mvs []*osseav1.MigrationVolume
	for i := range 4 {
		mv := e.newVolume(fmt.Sprintf("disk%d", i), nil)
		create(t, mv)
		mvs = append(mvs, mv)
		if i < 2 {
			// Attach the first two first, so that which two wait is known.
			waitVolume(t, mv, 30*time.Second, conditionIs(osseav1.ConditionAttached, metav1.ConditionTrue, osseav1.ReasonAttached))
		}
	}
	for _, mv := range mvs[2:] {
		got := waitVolume(t, mv, 30*time.Second, conditionIs(osseav1.ConditionAttached, metav1.ConditionFalse, osseav1.ReasonCapacityExhausted))
		if got.Status.AttachedVirtualMachineID != "" {
			t.Errorf("%s waits for capacity but is attached", mv.Name)
		}
	}
	calls := s.Snapshot().Calls["attachVolume"]
	if calls != 2 {
		t.Errorf("attachVolume called %d times, want 2: a full VM must not be asked", calls)
	}
	for _, mv := range mvs[:2] {
		if err := k8s.Delete(testCtx, mv); err != nil {
			t.Fatal(err)
		}
	}
	for _, mv := range mvs[2:] {
		waitVolume(t, mv, 30*time.Second, conditionIs(osseav1.ConditionAttached, metav1.ConditionTrue, osseav1.ReasonAttached))
	}
	for _, mv := range mvs[:2] {
		testkit.WaitGone(t, k8s, mv, 10*time.Second, nil)
	}
}

// TestVolumeRetain: deletionPolicy Retain detaches and keeps the volume, tagged as retained.
func TestVolumeRetain(t *testing.T) {
	s := startVolumeSim(t, cloudsim.Options{})
	e := newVolumeEnv(t, s, nil)
	mv := e.newVolume("disk0", func(mv *osseav1.MigrationVolume) { mv.Spec.DeletionPolicy = osseav1.DeletionPolicyRetain })
	create(t, mv)
	got := waitVolume(t, mv, 30*time.Second, conditionIs(osseav1.ConditionAttached, metav1.ConditionTrue, osseav1.ReasonAttached))
	if err := k8s.Delete(testCtx, got); err != nil {
		t.Fatal(err)
	}
	testkit.WaitGone(t, k8s, mv, 30*time.Second, nil)
	vols := simVolumes(s, got)
	if len(vols) != 1 {
		t.Fatalf("want the retained volume in CloudStack, found %+v", vols)
	}
	retained := false
	for _, tag := range vols[0].Tags {
		retained = retained || (tag.Key == TagRetained && tag.Value == "true")
	}
	if vols[0].VirtualMachineID != "" || !retained {
		t.Errorf("retained volume should be detached and tagged %s=true: %+v", TagRetained, vols[0])
	}
}

// TestVolumeWaitsForConfig: no CloudStack call while the config is not Ready; then the
// volume is made. Meanwhile a foreign volume with the object's name appears: NameConflict.
func TestVolumeWaitsForConfigThenNameConflict(t *testing.T) {
	s := startVolumeSim(t, cloudsim.Options{})
	e := newVolumeEnv(t, s, nil)

	// Break the config: the Secret is gone.
	if err := k8s.Delete(testCtx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "ossea-credentials"}}); err != nil {
		t.Fatal(err)
	}
	waitReady(t, client.ObjectKeyFromObject(e.cfg), metav1.ConditionFalse, osseav1.ReasonSecretMissing)
	s.ResetCounters()

	waiting := e.newVolume("waiting", nil)
	conflict := e.newVolume("conflict", nil)
	create(t, waiting, conflict)
	for _, mv := range []*osseav1.MigrationVolume{waiting, conflict} {
		got := waitVolume(t, mv, 20*time.Second, conditionIs(osseav1.ConditionAllocated, metav1.ConditionFalse, osseav1.ReasonOsseaConfigNotReady))
		ready := meta.FindStatusCondition(got.Status.Conditions, osseav1.ConditionReady)
		if ready == nil || ready.Reason != osseav1.ReasonOsseaConfigNotReady || !strings.Contains(ready.Message, "ossea") {
			t.Errorf("Ready should say the config is not ready: %+v", ready)
		}
		assertVolumeKstatus(t, got, status.InProgressStatus)
		if err := k8s.Get(testCtx, client.ObjectKeyFromObject(mv), mv); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second)
	if calls := s.Snapshot().Calls; len(calls) != 0 {
		t.Errorf("CloudStack was called while the config was not Ready: %v", calls)
	}

	// Someone makes a volume with the conflicting object's name, without our tags.
	c := directCloud(t, e)
	foreignID, jobID, err := c.CreateVolume(context.Background(), cloudstack.CreateVolumeRequest{
		Name: volumeName(conflict), ZoneID: cloudsim.DefaultZoneID, DiskOfferingID: cloudsim.DefaultDiskOfferingID, SizeGiB: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, c, jobID)

	create(t, credentials(e.ns, "ossea-credentials", tenantAPIKey, tenantSecretKey))
	waitVolume(t, waiting, 30*time.Second, conditionIs(osseav1.ConditionAttached, metav1.ConditionTrue, osseav1.ReasonAttached))
	got := waitVolume(t, conflict, 30*time.Second, conditionIs(osseav1.ConditionStalled, metav1.ConditionTrue, osseav1.ReasonNameConflict))
	if got.Status.Phase != osseav1.PhaseFailed || got.Status.VolumeID != "" {
		t.Errorf("NameConflict: phase %s volumeID %q", got.Status.Phase, got.Status.VolumeID)
	}
	assertVolumeKstatus(t, got, status.FailedStatus)
	vols := simVolumes(s, got)
	if len(vols) != 1 || vols[0].ID != foreignID || len(vols[0].Tags) != 0 || vols[0].VirtualMachineID != "" {
		t.Errorf("the foreign volume must stay untouched and alone: %+v", vols)
	}

	// Deleting the conflicting object leaves the foreign volume alone.
	if err := k8s.Delete(testCtx, got); err != nil {
		t.Fatal(err)
	}
	testkit.WaitGone(t, k8s, conflict, 20*time.Second, nil)
	if v, err := c.GetVolume(context.Background(), foreignID); err != nil || len(v.Tags) != 0 {
		t.Errorf("the foreign volume was touched: %+v %v", v, err)
	}
}

// TestVolumeDrift: a volume detached out of band is attached again; one deleted out of band
// is reported lost, never silently replaced by an empty disk.
func TestVolumeDrift(t *testing.T) {
	s := startVolumeSim(t, cloudsim.Options{})
	e := newVolumeEnv(t, s, nil)
	mv := e.newVolume("disk0", nil)
	create(t, mv)
	got := waitVolume(t, mv, 30*time.Second, conditionIs(osseav1.ConditionAttached, metav1.ConditionTrue, osseav1.ReasonAttached))
	c := directCloud(t, e)

	jobID, err := c.DetachVolume(context.Background(), got.Status.VolumeID)
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, c, jobID)
	testkit.Eventually(t, 30*time.Second, func() string {
		if n := s.Snapshot().Calls["attachVolume"]; n < 2 {
			return "not attached again yet"
		}
		if vols := simVolumes(s, got); len(vols) != 1 || vols[0].VirtualMachineID != cloudsim.DefaultOMAVMID {
			return fmt.Sprintf("volume not attached again: %+v", vols)
		}
		return ""
	})
	if !hasEvent(t, e.ns, "disk0", "Detached") {
		t.Error("no Warning event about the out-of-band detach")
	}

	jobID, err = c.DetachVolume(context.Background(), got.Status.VolumeID)
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, c, jobID)
	if err := c.DeleteVolume(context.Background(), got.Status.VolumeID); err != nil {
		t.Fatal(err)
	}
	lost := waitVolume(t, mv, 30*time.Second, conditionIs(osseav1.ConditionStalled, metav1.ConditionTrue, osseav1.ReasonVolumeLost))
	assertVolumeKstatus(t, lost, status.FailedStatus)
	if !hasEvent(t, e.ns, "disk0", osseav1.ReasonVolumeLost) {
		t.Error("no VolumeLost event")
	}
	time.Sleep(2 * driftInterval)
	if n := s.Snapshot().Calls["createVolume"]; n != 1 {
		t.Errorf("createVolume called %d times: a lost volume must not be replaced silently", n)
	}
}

// TestVolumeAccountLimit: CloudStack refuses the create for the account's volume limit;
// the object stalls with CloudStack's code and text in status.
func TestVolumeAccountLimit(t *testing.T) {
	w := cloudsim.DefaultWorld()
	volumeWorld(w)
	for i := range w.Accounts {
		if w.Accounts[i].Name == "tenant" {
			w.Accounts[i].VolumeLimit = 1 // the OMA's root disk uses it up
		}
	}
	s := startVolumeSim(t, cloudsim.Options{World: w})
	e := newVolumeEnv(t, s, nil)
	mv := e.newVolume("disk0", nil)
	create(t, mv)
	got := waitVolume(t, mv, 30*time.Second, conditionIs(osseav1.ConditionStalled, metav1.ConditionTrue, osseav1.ReasonAccountLimit))
	if e := got.Status.LastCloudStackError; e == nil || e.Code != 535 || !strings.Contains(e.Text, "Maximum amount of resources of Type = 'volume'") {
		t.Errorf("lastCloudStackError = %+v, want CloudStack's 535 and its text", e)
	}
	if got.Status.Phase != osseav1.PhaseFailed {
		t.Errorf("phase %s, want Failed", got.Status.Phase)
	}
	assertVolumeKstatus(t, got, status.FailedStatus)
	if len(simVolumes(s, got)) != 0 {
		t.Error("a volume was made despite the limit")
	}
	// Nothing was created, so deletion is immediate.
	if err := k8s.Delete(testCtx, got); err != nil {
		t.Fatal(err)
	}
	testkit.WaitGone(t, k8s, mv, 20*time.Second, nil)
}
