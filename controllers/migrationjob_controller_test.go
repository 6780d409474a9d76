package controllers

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudsim"
	"github.com/migratekit/ossea-operator/internal/testkit"
)

// The job controller on the real API server and the simulator: two OMA VMs, each with its
// OsseaConfig, both labelled into one pool. No node agent runs here: volumes get as far as
// Attached, and a test that needs them Ready plays the agent (agentMount).

const poolVM2 = "9c1e4b7d-2a6f-4d3c-8e5b-0000000000b2"

// poolEnv is one namespace with a manager and a pool of two Ready configs, oma-a on the
// simulator's default OMA VM and oma-b on a second one.
type poolEnv struct {
	ns  string
	sim *sim
	mgr *testManager
	vms map[string]string // config name -> VM id
}

// newPoolEnv starts a simulator whose two OMA VMs hold slotsA and slotsB data disks.
func newPoolEnv(t *testing.T, slotsA, slotsB int) *poolEnv {
	t.Helper()
	w := cloudsim.DefaultWorld()
	w.VirtualMachines[0].MaxDataVolumes = slotsA
	w.VirtualMachines = append(w.VirtualMachines, cloudsim.VirtualMachine{ID: poolVM2, Name: "oma-2", Zone: cloudsim.DefaultZoneID, MaxDataVolumes: slotsB})
	volumeWorld(w)
	s := startVolumeSim(t, cloudsim.Options{World: w, JobLatency: 100 * time.Millisecond})
	e := &poolEnv{ns: newNamespace(t), sim: s, vms: map[string]string{"oma-a": cloudsim.DefaultOMAVMID, "oma-b": poolVM2}}
	e.mgr = startManager(t, e.ns)
	slots := map[string]int{"oma-a": slotsA, "oma-b": slotsB}
	for name, vm := range e.vms {
		create(t, credentials(e.ns, name+"-credentials", tenantAPIKey, tenantSecretKey))
		cfg := newConfig(e.ns, name, s.url)
		cfg.Spec.OMAVirtualMachineID = vm
		// CloudStack's API does not tell a VM's limit; the config says it.
		cfg.Spec.MaxDataVolumes = ptr.To(int32(slots[name]))
		cfg.Labels = map[string]string{"pool": "prod"}
		create(t, cfg)
	}
	for name := range e.vms {
		cfg := waitReady(t, client.ObjectKey{Namespace: e.ns, Name: name}, metav1.ConditionTrue, osseav1.ReasonConnected)
		if cfg.Status.Capacity == nil {
			t.Fatalf("%s reports no capacity", name)
		}
	}
	return e
}

// newJob is a job of n Filesystem disks of 1 GiB placed through the pool's selector.
func (e *poolEnv) newJob(name string, n int, edit func(*osseav1.MigrationJob)) *osseav1.MigrationJob {
	job := &osseav1.MigrationJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name},
		Spec: osseav1.MigrationJobSpec{
			VMName:    "Web Server (prod) 01",
			Placement: osseav1.MigrationJobPlacement{OsseaConfigSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"pool": "prod"}}},
		},
	}
	for i := range n {
		job.Spec.Disks = append(job.Spec.Disks, osseav1.MigrationJobDisk{Name: fmt.Sprintf("disk%d", i), SizeGiB: ptr.To[int32](1)})
	}
	if edit != nil {
		edit(job)
	}
	return job
}

// attachedPerVM counts the simulator's data volumes attached to each VM.
func (e *poolEnv) attachedPerVM() map[string]int {
	n := map[string]int{}
	for _, v := range e.sim.Snapshot().Volumes {
		if v.Type == "DATADISK" && v.VirtualMachineID != "" {
			n[v.VirtualMachineID]++
		}
	}
	return n
}

// dataVolumes counts the simulator's data volumes.
func (e *poolEnv) dataVolumes() int {
	n := 0
	for _, v := range e.sim.Snapshot().Volumes {
		if v.Type == "DATADISK" {
			n++
		}
	}
	return n
}

// waitJob polls the job until check returns "".
func waitMJ(t *testing.T, job *osseav1.MigrationJob, timeout time.Duration, check func(*osseav1.MigrationJob) string) *osseav1.MigrationJob {
	t.Helper()
	got := &osseav1.MigrationJob{}
	testkit.Eventually(t, timeout, func() string {
		if err := k8s.Get(testCtx, client.ObjectKeyFromObject(job), got); err != nil {
			return err.Error()
		}
		if msg := check(got); msg != "" {
			return fmt.Sprintf("%s (phase %s, conditions %s)", msg, got.Status.Phase, testkit.DescribeConditions(got.Status.Conditions))
		}
		return ""
	})
	return got
}

func jobCondition(condType string, want metav1.ConditionStatus, reason string) func(*osseav1.MigrationJob) string {
	return func(job *osseav1.MigrationJob) string {
		c := meta.FindStatusCondition(job.Status.Conditions, condType)
		if job.Status.ObservedGeneration != job.Generation {
			return "not observed yet"
		}
		if c == nil || c.Status != want || (reason != "" && c.Reason != reason) {
			return fmt.Sprintf("want %s=%s %s", condType, want, reason)
		}
		return ""
	}
}

// jobVolumes are the MigrationVolumes labelled as the job's.
func jobVolumes(t *testing.T, job *osseav1.MigrationJob) []osseav1.MigrationVolume {
	t.Helper()
	var list osseav1.MigrationVolumeList
	if err := k8s.List(testCtx, &list, client.InNamespace(job.Namespace), client.MatchingLabels{osseav1.JobLabel: job.Name}); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// placements watches where every job of the namespace is placed, and fails the test if a
// job's placement ever changes once seen, or a job has a volume before its placement.
type placements struct {
	mu   sync.Mutex
	seen map[string]osseav1.MigrationJobPlacementStatus
	bad  []string
	stop chan struct{}
	done chan struct{}
}

func watchPlacements(t *testing.T, ns string) *placements {
	p := &placements{seen: map[string]osseav1.MigrationJobPlacementStatus{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			// Volumes first: a volume seen means its job's placement was written before, so
			// the jobs listed after must show it.
			var vols osseav1.MigrationVolumeList
			var list osseav1.MigrationJobList
			if err := k8s.List(testCtx, &vols, client.InNamespace(ns), client.HasLabels{osseav1.JobLabel}); err == nil &&
				k8s.List(testCtx, &list, client.InNamespace(ns)) == nil {
				p.mu.Lock()
				for _, mv := range vols.Items {
					ref := metav1.GetControllerOf(&mv)
					for _, j := range list.Items {
						if ref != nil && ref.UID == j.UID && j.Status.Placement == nil {
							p.bad = append(p.bad, fmt.Sprintf("%s has volume %s but no placement", j.Name, mv.Name))
						}
					}
				}
				for _, j := range list.Items {
					if j.Status.Placement == nil {
						continue
					}
					key := j.Name + "/" + string(j.UID)
					if old, ok := p.seen[key]; ok && old != *j.Status.Placement {
						p.bad = append(p.bad, fmt.Sprintf("%s moved from %+v to %+v", j.Name, old, *j.Status.Placement))
					}
					p.seen[key] = *j.Status.Placement
				}
				p.mu.Unlock()
			}
			select {
			case <-p.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(p.close)
	return p
}

func (p *placements) close() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}

func (p *placements) check(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range p.bad {
		t.Error(b)
	}
}

// TestJobPlacement: by name and by selector; the most free config wins; the placement is in
// status before any volume; the volumes are the job's, attached to its OMA VM; played
// Ready by the test, the job is Ready and kstatus Current; deleting it with kubectl --wait
// returns when CloudStack holds none of its volumes.
func TestJobPlacement(t *testing.T) {
	e := newPoolEnv(t, 6, 6)
	watch := watchPlacements(t, e.ns)

	// By name: oma-b although oma-a has as many free slots and comes first by name.
	byRef := e.newJob("by-ref", 2, func(j *osseav1.MigrationJob) {
		j.Spec.Placement = osseav1.MigrationJobPlacement{OsseaConfigRef: &osseav1.LocalObjectReference{Name: "oma-b"}}
		j.Spec.Disks[1].CapacityBytes, j.Spec.Disks[1].SizeGiB = ptr.To[int64](1<<30+1), nil // one byte over 1 GiB
	})
	create(t, byRef)
	got := waitMJ(t, byRef, 30*time.Second, func(j *osseav1.MigrationJob) string {
		if j.Status.Placement == nil {
			return "not placed"
		}
		return ""
	})
	if p := got.Status.Placement; p.OsseaConfigName != "oma-b" || p.OMAVirtualMachineID != poolVM2 {
		t.Errorf("placement %+v, want oma-b on %s", p, poolVM2)
	}
	vols := waitVolumesAttached(t, e, byRef, poolVM2)
	for _, mv := range vols {
		ref := metav1.GetControllerOf(&mv)
		if ref == nil || ref.UID != got.UID || ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion {
			t.Errorf("%s: controller %+v, want the job, blocking its deletion", mv.Name, ref)
		}
		want := int32(1)
		if mv.Spec.DiskName == "disk1" {
			want = 2 // 1 GiB + 1 byte, rounded up
		}
		if mv.Spec.SizeGiB != want || mv.Spec.JobID != "by-ref" || mv.Spec.OsseaConfigRef.Name != "oma-b" {
			t.Errorf("%s: spec %+v", mv.Name, mv.Spec)
		}
		if cs := simVolumes(e.sim, &mv); len(cs) != 1 || cs[0].SizeBytes != int64(want)<<30 {
			t.Errorf("%s: CloudStack volumes %+v, want one of %d GiB", mv.Name, cs, want)
		}
	}

	// By selector: oma-b has 2 of 6 taken, so oma-a, with 6 free, wins.
	bySel := e.newJob("by-selector", 3, nil)
	create(t, bySel)
	waitVolumesAttached(t, e, bySel, cloudsim.DefaultOMAVMID)
	got = waitMJ(t, bySel, 10*time.Second, jobCondition(osseav1.ConditionPlaced, metav1.ConditionTrue, osseav1.ReasonPlaced))
	if p := got.Status.Placement; p.OsseaConfigName != "oma-a" {
		t.Errorf("placement %+v, want oma-a (6 free against oma-b's 4)", p)
	}
	if c := meta.FindStatusCondition(got.Status.Conditions, osseav1.ConditionPlaced); !strings.Contains(c.Message, "6 of 6 slots free") {
		t.Errorf("Placed message %q should say how many slots were free", c.Message)
	}
	if !hasEvent(t, e.ns, "by-selector", osseav1.ReasonPlaced) || !hasEvent(t, e.ns, "by-selector", osseav1.EventCreated) {
		t.Error("no Placed or Created event on the job")
	}
	// Next: oma-a has 3 free, oma-b 4: oma-b.
	third := e.newJob("third", 1, nil)
	create(t, third)
	got = waitMJ(t, third, 30*time.Second, jobCondition(osseav1.ConditionPlaced, metav1.ConditionTrue, osseav1.ReasonPlaced))
	if got.Status.Placement.OsseaConfigName != "oma-b" {
		t.Errorf("third went to %s, want oma-b (4 free against oma-a's 3)", got.Status.Placement.OsseaConfigName)
	}

	// Played mounted, the selector's job is Ready with its disk lines filled in.
	for _, mv := range jobVolumes(t, bySel) {
		agentMount(t, &mv)
	}
	got = waitMJ(t, bySel, 30*time.Second, jobCondition(osseav1.ConditionReady, metav1.ConditionTrue, osseav1.ReasonDisksReady))
	if got.Status.Phase != osseav1.JobPhaseReady || got.Status.DisksReady != "3/3" || len(got.Status.Disks) != 3 {
		t.Errorf("status %+v, want Ready 3/3 with three disk lines", got.Status)
	}
	for _, d := range got.Status.Disks {
		if d.VolumeID == "" || d.MountPath != "/mnt/migration/by-selector/"+d.Name {
			t.Errorf("disk line %+v, want its volume id and mount path", d)
		}
	}
	got.SetGroupVersionKind(osseav1.GroupVersion.WithKind("MigrationJob"))
	assertKstatus(t, got, status.CurrentStatus)
	if out, err := kubectl(t, "wait", "-n", e.ns, "--for=condition=Ready", "mj/by-selector", "--timeout=10s"); err != nil {
		t.Errorf("kubectl wait: %v\n%s", err, out)
	}
	if out, err := kubectl(t, "get", "-n", e.ns, "mj"); err != nil || !strings.Contains(out, "3/3") || !strings.Contains(out, "oma-a") {
		t.Errorf("kubectl get mj should show the OMA and 3/3: %v\n%s", err, out)
	} else {
		t.Log("\n" + out)
	}

	// Deleted, the job goes only when its volumes have: kubectl --wait returns then.
	before := e.dataVolumes()
	for _, mv := range jobVolumes(t, bySel) {
		agentRelease(t, &mv) // as the agent would once it unmounts
	}
	if out, err := kubectl(t, "delete", "-n", e.ns, "mj/by-selector", "--wait=true", "--timeout=60s"); err != nil {
		t.Fatalf("kubectl delete: %v\n%s", err, out)
	}
	if left := jobVolumes(t, bySel); len(left) != 0 {
		t.Errorf("MigrationVolumes left after the job went: %d", len(left))
	}
	if after := e.dataVolumes(); after != before-3 {
		t.Errorf("CloudStack holds %d data volumes, want %d: the job's three deleted", after, before-3)
	}
	// --cascade=orphan: the job lets go without deleting its volume. The test world runs no
	// garbage collector (kube-controller-manager), so the test does its part: take the owner
	// reference off the volume and the orphan finalizer off the job.
	if err := k8s.Delete(testCtx, third, client.PropagationPolicy(metav1.DeletePropagationOrphan)); err != nil {
		t.Fatal(err)
	}
	waitMJ(t, third, 30*time.Second, func(j *osseav1.MigrationJob) string {
		if len(j.Finalizers) != 1 || j.Finalizers[0] != metav1.FinalizerOrphanDependents {
			return fmt.Sprintf("finalizers %v, want only the garbage collector's", j.Finalizers)
		}
		return ""
	})
	kept := jobVolumes(t, third)
	if len(kept) != 1 || !kept[0].DeletionTimestamp.IsZero() {
		t.Fatalf("after an orphaning delete: %d volumes, want the one disk kept, not being deleted", len(kept))
	}
	base := kept[0].DeepCopy()
	kept[0].OwnerReferences = nil
	if err := k8s.Patch(testCtx, &kept[0], client.MergeFrom(base)); err != nil {
		t.Fatal(err)
	}
	update(t, third, func() { third.Finalizers = nil })
	testkit.WaitGone(t, k8s, third, 30*time.Second, nil)
	for _, mv := range kept {
		if err := k8s.Delete(testCtx, &mv); err != nil {
			t.Fatal(err)
		}
		testkit.WaitGone(t, k8s, &mv, 30*time.Second, nil)
	}
	if err := k8s.Delete(testCtx, byRef); err != nil {
		t.Fatal(err)
	}
	testkit.WaitGone(t, k8s, byRef, 30*time.Second, nil)
	if n := e.dataVolumes(); n != 0 {
		t.Errorf("CloudStack holds %d data volumes after every job went", n)
	}
	watch.check(t)
}

// waitVolumesAttached waits until the job has one volume per disk, attached to vm.
func waitVolumesAttached(t *testing.T, e *poolEnv, job *osseav1.MigrationJob, vm string) []osseav1.MigrationVolume {
	t.Helper()
	var vols []osseav1.MigrationVolume
	testkit.Eventually(t, 60*time.Second, func() string {
		vols = jobVolumes(t, job)
		if len(vols) != len(job.Spec.Disks) {
			return fmt.Sprintf("%d volumes, want %d", len(vols), len(job.Spec.Disks))
		}
		for _, mv := range vols {
			if mv.Status.AttachedVirtualMachineID != vm {
				return fmt.Sprintf("%s attached to %q, want %s", mv.Name, mv.Status.AttachedVirtualMachineID, vm)
			}
		}
		return ""
	})
	return vols
}

// TestJobPoolRace: 20 jobs of 3 disks applied at once onto 2 OMAs of 16 slots. Five fit on
// each; the other ten wait with InsufficientCapacity, and are placed as earlier jobs are
// deleted. At no moment does CloudStack hold more than 16 disks on a VM, and no job is
// ever placed twice.
func TestJobPoolRace(t *testing.T) {
	e := newPoolEnv(t, 16, 16)
	watch := watchPlacements(t, e.ns)
	var maxMu sync.Mutex
	peak := map[string]int{}
	stopPeek := make(chan struct{})
	peekDone := make(chan struct{})
	go func() {
		defer close(peekDone)
		for {
			maxMu.Lock()
			for vm, n := range e.attachedPerVM() {
				peak[vm] = max(peak[vm], n)
			}
			maxMu.Unlock()
			select {
			case <-stopPeek:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	defer func() {
		close(stopPeek)
		<-peekDone
	}()

	jobs := make([]*osseav1.MigrationJob, 20)
	var wg sync.WaitGroup
	for i := range jobs {
		jobs[i] = e.newJob(fmt.Sprintf("race-%02d", i), 3, func(j *osseav1.MigrationJob) {
			for k := range j.Spec.Disks {
				j.Spec.Disks[k].Mode = osseav1.VolumeModeBlock
			}
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := k8s.Create(testCtx, jobs[i]); err != nil {
				t.Errorf("creating %s: %v", jobs[i].Name, err)
			}
		}()
	}
	wg.Wait()

	placedOn := func() (map[string][]string, []*osseav1.MigrationJob, string) {
		by := map[string][]string{}
		var waiting []*osseav1.MigrationJob
		for _, j := range jobs {
			got := &osseav1.MigrationJob{}
			if err := k8s.Get(testCtx, client.ObjectKeyFromObject(j), got); err != nil {
				if apierrors.IsNotFound(err) {
					continue
				}
				return nil, nil, err.Error()
			}
			if got.Status.Placement != nil {
				by[got.Status.Placement.OsseaConfigName] = append(by[got.Status.Placement.OsseaConfigName], got.Name)
				continue
			}
			c := meta.FindStatusCondition(got.Status.Conditions, osseav1.ConditionPlaced)
			if c == nil || c.Reason != osseav1.ReasonInsufficientCapacity {
				return nil, nil, fmt.Sprintf("%s neither placed nor waiting for capacity: %s", got.Name, testkit.DescribeConditions(got.Status.Conditions))
			}
			waiting = append(waiting, got)
		}
		return by, waiting, ""
	}
	var waiting []*osseav1.MigrationJob
	testkit.Eventually(t, 60*time.Second, func() string {
		by, w, msg := placedOn()
		if msg != "" {
			return msg
		}
		if len(by["oma-a"]) != 5 || len(by["oma-b"]) != 5 || len(w) != 10 {
			return fmt.Sprintf("placed %v, %d waiting; want 5 on each and 10 waiting", by, len(w))
		}
		waiting = w
		return ""
	})
	c := meta.FindStatusCondition(waiting[0].Status.Conditions, osseav1.ConditionPlaced)
	for _, want := range []string{"needs 3 free data-disk slots", "oma-a: 1 of 16 free", "oma-b: 1 of 16 free"} {
		if !strings.Contains(c.Message, want) {
			t.Errorf("InsufficientCapacity message %q does not say %q", c.Message, want)
		}
	}
	if calls := e.sim.Snapshot().Calls["attachVolume"]; calls > 30 {
		t.Errorf("attachVolume called %d times for 30 placed disks", calls)
	}

	fifteenEach := func() string {
		if n := e.attachedPerVM(); n[cloudsim.DefaultOMAVMID] != 15 || n[poolVM2] != 15 {
			return fmt.Sprintf("attached per VM: %v, want 15 on each", n)
		}
		return ""
	}
	testkit.Eventually(t, 60*time.Second, fifteenEach)

	// Delete the ten placed jobs; the ten waiting move in.
	var placedNames []string
	by, _, _ := placedOn()
	for _, names := range by {
		placedNames = append(placedNames, names...)
	}
	sort.Strings(placedNames)
	for _, name := range placedNames {
		if err := k8s.Delete(testCtx, &osseav1.MigrationJob{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name}}); err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, 120*time.Second, func() string {
		by, w, msg := placedOn()
		if msg != "" {
			return msg
		}
		if len(w) != 0 || len(by["oma-a"])+len(by["oma-b"]) != 10 {
			return fmt.Sprintf("placed %v, %d waiting; want the 10 that waited placed", by, len(w))
		}
		return ""
	})
	testkit.Eventually(t, 60*time.Second, fifteenEach)
	watch.check(t)
	if len(watch.seen) != 20 {
		t.Errorf("%d jobs seen placed, want 20", len(watch.seen))
	}
	for _, j := range jobs {
		_ = k8s.Delete(testCtx, j)
	}
	for _, j := range jobs {
		testkit.WaitGone(t, k8s, j, 120*time.Second, nil)
	}
	maxMu.Lock()
	for vm, n := range peak {
		if n > 16 {
			t.Errorf("VM %s held %d data disks at one moment, more than its 16", vm, n)
		}
	}
	t.Logf("most data disks seen on each VM: %v", peak)
	maxMu.Unlock()
	if n := e.dataVolumes(); n != 0 {
		t.Errorf("CloudStack holds %d data volumes after every job went", n)
	}
}

// TestJobManagerKilled: the manager is stopped while jobs are being placed, and again while
// their volumes are being provisioned; the next one finishes the work with each job placed
// once and exactly one CloudStack volume per disk.
func TestJobManagerKilled(t *testing.T) {
	e := newPoolEnv(t, 16, 16)
	watch := watchPlacements(t, e.ns)
	var jobs []*osseav1.MigrationJob
	for i := range 8 {
		job := e.newJob(fmt.Sprintf("kill-%d", i), 3, func(j *osseav1.MigrationJob) {
			for k := range j.Spec.Disks {
				j.Spec.Disks[k].Mode = osseav1.VolumeModeBlock
			}
		})
		jobs = append(jobs, job)
	}
	// Applied one every 150 ms, so that the first stop falls among the placements: some
	// jobs placed, some not, some applied while no manager runs.
	applied := make(chan struct{})
	go func() {
		defer close(applied)
		for _, job := range jobs {
			if err := k8s.Create(testCtx, job); err != nil {
				t.Errorf("creating %s: %v", job.Name, err)
			}
			time.Sleep(150 * time.Millisecond)
		}
	}()
	defer func() { <-applied }()
	countPlaced := func() (placed, withVolumes int) {
		var list osseav1.MigrationJobList
		_ = k8s.List(testCtx, &list, client.InNamespace(e.ns))
		for _, j := range list.Items {
			if j.Status.Placement != nil {
				placed++
			}
		}
		var vols osseav1.MigrationVolumeList
		_ = k8s.List(testCtx, &vols, client.InNamespace(e.ns))
		return placed, len(vols.Items)
	}
	testkit.Eventually(t, 30*time.Second, func() string {
		if p, _ := countPlaced(); p == 0 {
			return "no job placed yet"
		}
		return ""
	})
	e.mgr.stop()
	p, v := countPlaced()
	t.Logf("stopped during placement: %d of 8 jobs placed, %d volumes", p, v)

	// The second manager is stopped once it has made volumes of its own and CloudStack
	// jobs are in flight.
	e.mgr = startManager(t, e.ns)
	testkit.Eventually(t, 30*time.Second, func() string {
		var vols osseav1.MigrationVolumeList
		_ = k8s.List(testCtx, &vols, client.InNamespace(e.ns))
		inFlight := 0
		for _, mv := range vols.Items {
			if mv.Status.PendingJob != nil {
				inFlight++
			}
		}
		if len(vols.Items) <= v || inFlight == 0 {
			return fmt.Sprintf("%d volumes (%d at the first stop), %d CloudStack jobs in flight", len(vols.Items), v, inFlight)
		}
		return ""
	})
	e.mgr.stop()
	p, v = countPlaced()
	t.Logf("stopped during provisioning: %d of 8 jobs placed, %d volumes", p, v)

	e.mgr = startManager(t, e.ns)
	perConfig := map[string]int{}
	for _, job := range jobs {
		got := waitMJ(t, job, 60*time.Second, jobCondition(osseav1.ConditionPlaced, metav1.ConditionTrue, osseav1.ReasonPlaced))
		waitVolumesAttached(t, e, job, got.Status.Placement.OMAVirtualMachineID)
		perConfig[got.Status.Placement.OsseaConfigName] += 3
		for _, mv := range jobVolumes(t, job) {
			if cs := simVolumes(e.sim, &mv); len(cs) != 1 {
				t.Errorf("%s has %d CloudStack volumes, want exactly 1", mv.Name, len(cs))
			}
		}
	}
	if e.dataVolumes() != 24 {
		t.Errorf("CloudStack holds %d data volumes, want 24", e.dataVolumes())
	}
	for cfg, n := range perConfig {
		if n > 16 {
			t.Errorf("%d disks placed on %s, more than its 16", n, cfg)
		}
	}
	watch.check(t)
	for _, j := range jobs {
		_ = k8s.Delete(testCtx, j)
	}
	for _, j := range jobs {
		testkit.WaitGone(t, k8s, j, 60*time.Second, nil)
	}
	if n := e.dataVolumes(); n != 0 {
		t.Errorf("CloudStack holds %d data volumes after every job went", n)
	}
}

// TestJobWaitsAndConflicts: a job that can never fit stalls; one whose selector matches no
// config waits and is placed when a config is labelled into the pool; one deleted before
// placement creates nothing; a volume name taken by someone else is reported and left
// alone; a volume made for the job is adopted; Retain keeps the CloudStack volumes.
func TestJobWaitsAndConflicts(t *testing.T) {
	e := newPoolEnv(t, 4, 4)

	tooBig := e.newJob("too-big", 5, nil)
	create(t, tooBig)
	got := waitMJ(t, tooBig, 30*time.Second, jobCondition(osseav1.ConditionStalled, metav1.ConditionTrue, osseav1.ReasonInsufficientCapacity))
	if c := meta.FindStatusCondition(got.Status.Conditions, osseav1.ConditionPlaced); c == nil || !strings.Contains(c.Message, "can never fit") {
		t.Errorf("Placed %+v should say the job can never fit", c)
	}
	if got.Status.Phase != osseav1.JobPhaseFailed {
		t.Errorf("phase %s, want Failed", got.Status.Phase)
	}

	lonely := e.newJob("lonely", 1, func(j *osseav1.MigrationJob) {
		j.Spec.Placement.OsseaConfigSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"pool": "dr"}}
	})
	create(t, lonely)
	waitMJ(t, lonely, 30*time.Second, jobCondition(osseav1.ConditionPlaced, metav1.ConditionFalse, osseav1.ReasonNoCandidates))
	unborn := e.newJob("unborn", 2, func(j *osseav1.MigrationJob) {
		j.Spec.Placement.OsseaConfigSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"pool": "nowhere"}}
	})
	create(t, unborn)
	waitMJ(t, unborn, 30*time.Second, jobCondition(osseav1.ConditionPlaced, metav1.ConditionFalse, osseav1.ReasonNoCandidates))
	if err := k8s.Delete(testCtx, unborn); err != nil {
		t.Fatal(err)
	}
	testkit.WaitGone(t, k8s, unborn, 10*time.Second, nil)
	if vols := jobVolumes(t, unborn); len(vols) != 0 {
		t.Errorf("a job deleted before placement left %d volumes", len(vols))
	}
	cfg := &osseav1.OsseaConfig{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "oma-b"}}
	update(t, cfg, func() { cfg.Labels["pool"] = "dr" })
	got = waitMJ(t, lonely, 30*time.Second, jobCondition(osseav1.ConditionPlaced, metav1.ConditionTrue, osseav1.ReasonPlaced))
	if got.Status.Placement.OsseaConfigName != "oma-b" {
		t.Errorf("lonely went to %s, want oma-b, the config labelled into its pool", got.Status.Placement.OsseaConfigName)
	}

	// conflict-disk0 belongs to someone else; conflict-disk1 was made for the job by hand.
	conflict := e.newJob("conflict", 2, func(j *osseav1.MigrationJob) {
		j.Spec.Placement = osseav1.MigrationJobPlacement{OsseaConfigRef: &osseav1.LocalObjectReference{Name: "oma-a"}}
		j.Spec.DeletionPolicy = osseav1.DeletionPolicyRetain
	})
	stranger := &osseav1.MigrationVolume{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "conflict-disk0"},
		Spec: osseav1.MigrationVolumeSpec{OsseaConfigRef: osseav1.LocalObjectReference{Name: "oma-a"},
			JobID: "another-job", VMName: "Other", DiskName: "disk0", SizeGiB: 1, Mode: osseav1.VolumeModeBlock},
	}
	orphan := &osseav1.MigrationVolume{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "conflict-disk1", Labels: map[string]string{osseav1.JobLabel: "conflict"}},
		Spec: osseav1.MigrationVolumeSpec{OsseaConfigRef: osseav1.LocalObjectReference{Name: "oma-a"},
			JobID: "conflict", VMName: "Web Server (prod) 01", DiskName: "disk1", SizeGiB: 1},
	}
	create(t, stranger, orphan, conflict)
	got = waitMJ(t, conflict, 30*time.Second, jobCondition(osseav1.ConditionStalled, metav1.ConditionTrue, osseav1.ReasonNameConflict))
	if c := meta.FindStatusCondition(got.Status.Conditions, osseav1.ConditionStalled); !strings.Contains(c.Message, "conflict-disk0") || strings.Contains(c.Message, "conflict-disk1") {
		t.Errorf("Stalled message %q should name conflict-disk0 only", c.Message)
	}
	testkit.Eventually(t, 30*time.Second, func() string {
		cur := &osseav1.MigrationVolume{}
		if err := k8s.Get(testCtx, client.ObjectKeyFromObject(orphan), cur); err != nil {
			return err.Error()
		}
		if ref := metav1.GetControllerOf(cur); ref == nil || ref.UID != got.UID {
			return "conflict-disk1 not adopted"
		}
		if cur.Spec.DeletionPolicy != osseav1.DeletionPolicyRetain {
			return "the job's deletionPolicy not handed on"
		}
		return ""
	})
	if !hasEvent(t, e.ns, "conflict", osseav1.EventAdopted) {
		t.Error("no Adopted event on the job")
	}
	cur := &osseav1.MigrationVolume{}
	if err := k8s.Get(testCtx, client.ObjectKeyFromObject(stranger), cur); err != nil || metav1.GetControllerOf(cur) != nil || cur.Spec.JobID != "another-job" {
		t.Errorf("the stranger's volume was touched: %+v %v", cur.ObjectMeta.OwnerReferences, err)
	}
	waitVolume(t, orphan, 30*time.Second, conditionIs(osseav1.ConditionAttached, metav1.ConditionTrue, osseav1.ReasonAttached))

	// The stranger's object deleted, the job takes the name at once (not at its next
	// minute's look), and is no longer Stalled.
	if err := k8s.Delete(testCtx, stranger); err != nil {
		t.Fatal(err)
	}
	got = waitMJ(t, conflict, 15*time.Second, func(j *osseav1.MigrationJob) string {
		if meta.IsStatusConditionTrue(j.Status.Conditions, osseav1.ConditionStalled) {
			return "still Stalled"
		}
		vols := jobVolumes(t, conflict)
		for _, mv := range vols {
			if mv.UID == stranger.UID {
				return "the stranger's object is still there"
			}
		}
		if len(vols) != 2 {
			return fmt.Sprintf("%d volumes, want 2", len(vols))
		}
		return ""
	})
	waitVolumesAttached(t, e, conflict, cloudsim.DefaultOMAVMID)

	// Retain: deleting the job detaches and keeps both volumes.
	if err := k8s.Delete(testCtx, conflict); err != nil {
		t.Fatal(err)
	}
	testkit.WaitGone(t, k8s, conflict, 60*time.Second, nil)
	kept := map[string]int{}
	for _, v := range e.sim.Snapshot().Volumes {
		if owner := tagOf(v, TagOwner); strings.HasPrefix(owner, e.ns+"/conflict-") {
			kept[owner]++
			if v.VirtualMachineID != "" || tagOf(v, TagRetained) != "true" {
				t.Errorf("%s: attached to %q, retained tag %q; want detached and tagged", owner, v.VirtualMachineID, tagOf(v, TagRetained))
			}
		}
	}
	if kept[e.ns+"/conflict-disk0"] != 1 || kept[e.ns+"/conflict-disk1"] != 1 {
		t.Errorf("retained volumes by owner: %v, want one of each disk (the stranger's own deleted with it)", kept)
	}
	for _, j := range []*osseav1.MigrationJob{lonely, tooBig} {
		_ = k8s.Delete(testCtx, j)
		testkit.WaitGone(t, k8s, j, 30*time.Second, nil)
	}
}
