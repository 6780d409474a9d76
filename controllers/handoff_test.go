package controllers

import (
	"cmp"
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudsim"
	"github.com/migratekit/ossea-operator/internal/testkit"
)

// The hand-off of finished disks to the migrated VM, on the real API server and the
// simulator, with the node agent played by the test (see playAgent).

const (
	targetVMID = "5e7a1c2d-3b4f-4a5e-8d6c-0000000000a1"
	zone2ID    = "0a7c5b1e-3d2f-4c8b-9e6a-000000000002"
)

// handoffEnv is a namespace with a manager, a Ready OsseaConfig of 6 slots on the OMA VM,
// and two Stopped KVM target VMs, each with its placeholder root disk.
func newHandoffEnv(t *testing.T, opts cloudsim.Options) *volumeEnv {
	t.Helper()
	w := cloudsim.DefaultWorld()
	w.Zones = append(w.Zones, cloudsim.Zone{ID: zone2ID, Name: "sim-zone-2"})
	w.VirtualMachines = append(w.VirtualMachines,
		cloudsim.VirtualMachine{ID: targetVMID, Name: "web-prod-01-migrated", Zone: cloudsim.DefaultZoneID, State: "Stopped", Hypervisor: "KVM"},
		cloudsim.VirtualMachine{ID: target2VMID, Name: "db-prod-02-migrated", Zone: cloudsim.DefaultZoneID, State: "Stopped", Hypervisor: "KVM"},
	)
	volumeWorld(w)
	opts.World = w
	s := startVolumeSim(t, opts)
	e := newVolumeEnv(t, s, func(cfg *osseav1.OsseaConfig) { cfg.Spec.MaxDataVolumes = ptr.To[int32](6) })
	playAgent(t, e.ns)
	return e
}

// playAgent plays the node agent for every volume of the namespace: it claims and "mounts"
// a volume attached to the OMA VM, and lets go of one released for its hand-off, as the
// real agent does (see internal/nodeagent).
func playAgent(t *testing.T, ns string) {
	ctx, cancel := context.WithCancel(testCtx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			var list osseav1.MigrationVolumeList
			if err := k8s.List(ctx, &list, client.InNamespace(ns)); err == nil {
				for i := range list.Items {
					playAgentOnce(ctx, &list.Items[i])
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

func playAgentOnce(ctx context.Context, mv *osseav1.MigrationVolume) {
	held := controllerutil.ContainsFinalizer(mv, osseav1.MountFinalizer)
	switch {
	case osseav1.ReleaseForHandoff(mv) || !mv.DeletionTimestamp.IsZero():
		if !held && mv.Status.MountPath == "" {
			return
		}
		base := mv.DeepCopy()
		meta.SetStatusCondition(&mv.Status.Conditions, metav1.Condition{Type: osseav1.ConditionMounted, Status: metav1.ConditionFalse,
			Reason: osseav1.ReasonReleasedForHandoff, Message: "released by the test", ObservedGeneration: mv.Generation})
		mv.Status.MountPath = ""
		if k8s.Status().Patch(ctx, mv, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})) != nil {
			return
		}
		base = mv.DeepCopy()
		controllerutil.RemoveFinalizer(mv, osseav1.MountFinalizer)
		_ = k8s.Patch(ctx, mv, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
	case !osseav1.ReleaseForHandoff(mv) && meta.IsStatusConditionTrue(mv.Status.Conditions, osseav1.ConditionAttached) && !held:
		base := mv.DeepCopy()
		controllerutil.AddFinalizer(mv, osseav1.MountFinalizer)
		if k8s.Patch(ctx, mv, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})) != nil {
			return
		}
		base = mv.DeepCopy()
		meta.SetStatusCondition(&mv.Status.Conditions, metav1.Condition{Type: osseav1.ConditionMounted, Status: metav1.ConditionTrue,
			Reason: osseav1.ReasonMounted, Message: "mounted by the test", ObservedGeneration: mv.Generation})
		mv.Status.MountPath = "/mnt/migration/" + mv.Spec.JobID + "/" + mv.Spec.DiskName
		_ = k8s.Status().Patch(ctx, mv, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
	}
}

// onVM lists the simulator's volumes attached to vm, by device id.
func onVM(s *sim, vm string) map[int64]cloudsim.Volume {
	out := map[int64]cloudsim.Volume{}
	for _, v := range s.Snapshot().Volumes {
		if v.VirtualMachineID == vm && v.DeviceID != nil {
			out[*v.DeviceID] = v
		}
	}
	return out
}

// successfulAttaches counts, per volume, the attach jobs to vm that succeeded.
func successfulAttaches(s *sim, vm string) map[string]int {
	n := map[string]int{}
	for _, j := range s.Snapshot().Jobs {
		if strings.EqualFold(j.Command, "attachVolume") && j.Params["virtualmachineid"] == vm && j.Status == 1 {
			n[j.Params["id"]]++
		}
	}
	return n
}

// TestJobCutover: a 3-disk job cut over, disk1 as root, to a target that is first Running
// (the job stalls, nothing is touched), then stopped: the root lands at device 0, the data
// disks at ascending ids in disk order, the placeholder root is detached and kept with its
// tag, nothing is left on the OMA, and deleting the job leaves all three on the target.
func TestJobCutover(t *testing.T) {
	e := newHandoffEnv(t, cloudsim.Options{})
	if err := e.sim.EditVM(targetVMID, func(vm *cloudsim.VirtualMachine) { vm.State = "Running" }); err != nil {
		t.Fatal(err)
	}
	placeholder := onVM(e.sim, targetVMID)[0]
	if placeholder.Type != "ROOT" {
		t.Fatalf("the target has no placeholder root: %+v", onVM(e.sim, targetVMID))
	}
	job := &osseav1.MigrationJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "web01"},
		Spec: osseav1.MigrationJobSpec{
			VMName:    "Web Server (prod) 01",
			Placement: osseav1.MigrationJobPlacement{OsseaConfigRef: &osseav1.LocalObjectReference{Name: "ossea"}},
			Disks: []osseav1.MigrationJobDisk{
				{Name: "disk0", SizeGiB: ptr.To[int32](1)},
				{Name: "disk1", SizeGiB: ptr.To[int32](2)},
				{Name: "disk2", SizeGiB: ptr.To[int32](3)},
			},
		},
	}
	create(t, job)
	waitMJ(t, job, 60*time.Second, jobCondition(osseav1.ConditionReady, metav1.ConditionTrue, osseav1.ReasonDisksReady))
	detaches := e.sim.Snapshot().Calls["detachVolume"]

	cur := &osseav1.MigrationJob{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: job.Name}}
	update(t, cur, func() {
		cur.Spec.Cutover = &osseav1.MigrationJobCutover{TargetVirtualMachineID: targetVMID, RootDisk: "disk1"}
	})
	got := waitMJ(t, job, 30*time.Second, jobCondition(osseav1.ConditionStalled, metav1.ConditionTrue, osseav1.ReasonTargetVMNotStopped))
	if c := meta.FindStatusCondition(got.Status.Conditions, osseav1.ConditionStalled); !strings.Contains(c.Message, "Running") {
		t.Errorf("Stalled message %q should say the target is Running", c.Message)
	}
	time.Sleep(time.Second)
	for _, mv := range jobVolumes(t, job) {
		if mv.Spec.Handoff != nil || !controllerutil.ContainsFinalizer(&mv, osseav1.MountFinalizer) {
			t.Errorf("%s was touched although the target is Running: handoff %+v, finalizers %v", mv.Name, mv.Spec.Handoff, mv.Finalizers)
		}
	}
	if d := e.sim.Snapshot().Calls["detachVolume"]; d != detaches {
		t.Errorf("%d detaches while the target was Running", d-detaches)
	}

	if err := e.sim.StopVM(targetVMID); err != nil {
		t.Fatal(err)
	}
	got = waitMJ(t, job, 90*time.Second, jobCondition(osseav1.ConditionReady, metav1.ConditionTrue, osseav1.ReasonHandedOff))
	if got.Status.Phase != osseav1.JobPhaseHandedOff {
		t.Errorf("phase %s, want HandedOff", got.Status.Phase)
	}
	devices := map[string]int64{}
	for _, d := range got.Status.Disks {
		if d.TargetDeviceID == nil {
			t.Fatalf("disk line %+v has no target device id", d)
		}
		devices[d.Name] = *d.TargetDeviceID
	}
	if devices["disk1"] != 0 || !(devices["disk0"] > 0 && devices["disk0"] < devices["disk2"]) {
		t.Errorf("target device ids %v: want disk1 (root) at 0, then disk0 before disk2", devices)
	}
	target := onVM(e.sim, targetVMID)
	ids := make([]int64, 0, len(target))
	for id := range target {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	t.Logf("the target's volumes by device id: %v", describeDevices(target, ids))
	if root := target[0]; root.Type != "ROOT" || tagOf(root, TagHandedOffTo) != targetVMID || tagOf(root, TagDiskName) != "disk1" {
		t.Errorf("device 0 of the target: %+v, want disk1 as ROOT tagged handed-off-to", root)
	}
	if len(target) != 3 {
		t.Errorf("the target holds %d volumes, want the job's 3", len(target))
	}
	kept := volumeByID(e.sim, placeholder.ID)
	if kept == nil || kept.VirtualMachineID != "" || tagOf(*kept, TagReplacedBy) != target[0].ID {
		t.Errorf("the placeholder root: %+v, want it detached, kept and tagged replaced-by %s", kept, target[0].ID)
	}
	if n := len(onVM(e.sim, cloudsim.DefaultOMAVMID)) - 1; n != 0 { // the OMA's own root stays
		t.Errorf("the OMA VM still holds %d data disks", n)
	}
	for vol, n := range successfulAttaches(e.sim, targetVMID) {
		if n != 1 {
			t.Errorf("volume %s attached to the target %d times", vol, n)
		}
	}

	// Deleting the job leaves the disks where they belong now.
	calls := e.sim.Snapshot().Calls
	if err := k8s.Delete(testCtx, job); err != nil {
		t.Fatal(err)
	}
	testkit.WaitGone(t, k8s, job, 30*time.Second, nil)
	if after := onVM(e.sim, targetVMID); len(after) != 3 {
		t.Errorf("after the job was deleted the target holds %d volumes, want 3", len(after))
	}
	later := e.sim.Snapshot().Calls
	for _, cmd := range []string{"detachVolume", "deleteVolume", "attachVolume"} {
		if later[cmd] != calls[cmd] {
			t.Errorf("%s called %d times after the cut-over", cmd, later[cmd]-calls[cmd])
		}
	}
}

func describeDevices(vols map[int64]cloudsim.Volume, ids []int64) string {
	var b strings.Builder
	for _, id := range ids {
		v := vols[id]
		fmt.Fprintf(&b, "[%d %s %s disk=%s] ", id, v.Type, v.ID[:8], tagOf(v, TagDiskName))
	}
	return b.String()
}

func volumeByID(s *sim, id string) *cloudsim.Volume {
	for _, v := range s.Snapshot().Volumes {
		if v.ID == id {
			return &v
		}
	}
	return nil
}

const target2VMID = "5e7a1c2d-3b4f-4a5e-8d6c-0000000000a2"

// handOffVolume creates a volume, waits until it is Ready on the OMA VM (mounted by the
// played agent), and sets its spec.handoff.
func handOffVolume(t *testing.T, e *volumeEnv, name string, h osseav1.VolumeHandoff) *osseav1.MigrationVolume {
	t.Helper()
	mv := e.newVolume(name, nil)
	create(t, mv)
	waitVolume(t, mv, 30*time.Second, conditionIs(osseav1.ConditionReady, metav1.ConditionTrue, ""))
	cur := &osseav1.MigrationVolume{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name}}
	update(t, cur, func() { cur.Spec.Handoff = &h })
	return mv
}

// assertStillOnOMA checks that a volume whose hand-off was refused was not touched: still
// attached to the OMA VM and still held (mounted) by the agent.
func assertStillOnOMA(t *testing.T, e *volumeEnv, mv *osseav1.MigrationVolume) {
	t.Helper()
	cur := &osseav1.MigrationVolume{}
	if err := k8s.Get(testCtx, client.ObjectKeyFromObject(mv), cur); err != nil {
		t.Fatal(err)
	}
	if v := volumeByID(e.sim, cur.Status.VolumeID); v == nil || v.VirtualMachineID != cloudsim.DefaultOMAVMID {
		t.Errorf("%s: CloudStack volume %+v, want it still on the OMA VM", mv.Name, v)
	}
	if !controllerutil.ContainsFinalizer(cur, osseav1.MountFinalizer) || cur.Status.MountPath == "" {
		t.Errorf("%s: unmounted (finalizers %v, mountPath %q) although the hand-off was refused", mv.Name, cur.Finalizers, cur.Status.MountPath)
	}
}

// TestHandoffChecks provokes every check on the target, one volume at a time, and fixes
// each cause in CloudStack: while refused, the volume stays mounted on the OMA VM; once
// fixed, the hand-off completes without anything else done.
func TestHandoffChecks(t *testing.T) {
	e := newHandoffEnv(t, cloudsim.Options{})
	cases := []struct {
		name    string
		target  string // targetVMID when empty
		handoff osseav1.VolumeHandoff
		provoke func(*cloudsim.VirtualMachine)
		reason  string
		fix     func(t *testing.T)
	}{
		{name: "not-found", handoff: osseav1.VolumeHandoff{VirtualMachineID: targetVMID},
			provoke: func(vm *cloudsim.VirtualMachine) { vm.Account = "owner" }, reason: osseav1.ReasonTargetVMNotFound,
			fix: func(t *testing.T) {
				editVM(t, e, targetVMID, func(vm *cloudsim.VirtualMachine) { vm.Account = "tenant" })
			}},
		{name: "wrong-zone", handoff: osseav1.VolumeHandoff{VirtualMachineID: targetVMID},
			provoke: func(vm *cloudsim.VirtualMachine) { vm.Zone = zone2ID }, reason: osseav1.ReasonTargetVMWrongZone,
			fix: func(t *testing.T) {
				editVM(t, e, targetVMID, func(vm *cloudsim.VirtualMachine) { vm.Zone = cloudsim.DefaultZoneID })
			}},
		{name: "unsupported", target: target2VMID, handoff: osseav1.VolumeHandoff{VirtualMachineID: target2VMID, AsRoot: true},
			provoke: func(vm *cloudsim.VirtualMachine) { vm.Hypervisor = "Hyperv" }, reason: osseav1.ReasonRootAttachUnsupported,
			fix: func(t *testing.T) {
				editVM(t, e, target2VMID, func(vm *cloudsim.VirtualMachine) { vm.Hypervisor = "KVM" })
			}},
		{name: "running", handoff: osseav1.VolumeHandoff{VirtualMachineID: targetVMID, AsRoot: true},
			provoke: func(vm *cloudsim.VirtualMachine) { vm.State = "Running" }, reason: osseav1.ReasonTargetVMNotStopped,
			fix: func(t *testing.T) {
				if err := e.sim.StopVM(targetVMID); err != nil {
					t.Fatal(err)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			target := cmp.Or(c.target, targetVMID)
			editVM(t, e, target, c.provoke)
			mv := handOffVolume(t, e, "check-"+c.name, c.handoff)
			waitVolume(t, mv, 30*time.Second, func(mv *osseav1.MigrationVolume) string {
				st := meta.FindStatusCondition(mv.Status.Conditions, osseav1.ConditionStalled)
				if st == nil || st.Status != metav1.ConditionTrue || st.Reason != c.reason || !strings.Contains(st.Message, target) {
					return "not Stalled with " + c.reason
				}
				return ""
			})
			time.Sleep(500 * time.Millisecond)
			assertStillOnOMA(t, e, mv)
			c.fix(t)
			got := waitVolume(t, mv, 60*time.Second, conditionIs(osseav1.ConditionHandedOff, metav1.ConditionTrue, osseav1.ReasonHandedOff))
			if got.Status.Phase != osseav1.PhaseHandedOff || got.Status.Handoff == nil || got.Status.Handoff.VirtualMachineID != target {
				t.Errorf("phase %s, status.handoff %+v", got.Status.Phase, got.Status.Handoff)
			}
			if c.handoff.AsRoot != (got.Status.Handoff.DeviceID == 0) {
				t.Errorf("device %d on the target, asRoot %v", got.Status.Handoff.DeviceID, c.handoff.AsRoot)
			}
		})
	}

	// The target now boots from a volume the operator handed to it: a second root is
	// refused, not swapped in.
	t.Run("root-in-use", func(t *testing.T) {
		mv := handOffVolume(t, e, "check-second-root", osseav1.VolumeHandoff{VirtualMachineID: targetVMID, AsRoot: true})
		waitVolume(t, mv, 30*time.Second, func(mv *osseav1.MigrationVolume) string {
			if st := meta.FindStatusCondition(mv.Status.Conditions, osseav1.ConditionStalled); st == nil || st.Reason != osseav1.ReasonTargetVMRootInUse {
				return "not Stalled with TargetVMRootInUse"
			}
			return ""
		})
		assertStillOnOMA(t, e, mv)
	})

	// Full of data disks (the config says 6): the seventh is refused until one is freed.
	t.Run("capacity", func(t *testing.T) {
		cloud := directCloud(t, e)
		var spare []string
		for len(onVM(e.sim, targetVMID))-1 < 6 { // device 0 is the root
			mv := handOffVolume(t, e, fmt.Sprintf("filler-%d", len(spare)), osseav1.VolumeHandoff{VirtualMachineID: targetVMID})
			got := waitVolume(t, mv, 60*time.Second, conditionIs(osseav1.ConditionHandedOff, metav1.ConditionTrue, osseav1.ReasonHandedOff))
			spare = append(spare, got.Status.VolumeID)
		}
		mv := handOffVolume(t, e, "check-capacity", osseav1.VolumeHandoff{VirtualMachineID: targetVMID})
		waitVolume(t, mv, 30*time.Second, func(mv *osseav1.MigrationVolume) string {
			if st := meta.FindStatusCondition(mv.Status.Conditions, osseav1.ConditionStalled); st == nil || st.Reason != osseav1.ReasonTargetVMCapacityExhausted {
				return "not Stalled with TargetVMCapacityExhausted"
			}
			return ""
		})
		assertStillOnOMA(t, e, mv)
		// A person detaches one of the target's disks.
		jobID, err := cloud.DetachVolume(testCtx, spare[0])
		if err != nil {
			t.Fatal(err)
		}
		waitJob(t, cloud, jobID)
		waitVolume(t, mv, 60*time.Second, conditionIs(osseav1.ConditionHandedOff, metav1.ConditionTrue, osseav1.ReasonHandedOff))
	})
}

func editVM(t *testing.T, e *volumeEnv, id string, edit func(*cloudsim.VirtualMachine)) {
	t.Helper()
	if err := e.sim.EditVM(id, edit); err != nil {
		t.Fatal(err)
	}
}

// TestHandoffFaults: every reply of attachVolume and detachVolume lost, then every job of
// theirs failed, then the manager stopped between the detach from the OMA and the attach to
// the target: each time the same end, each volume attached to the target by exactly one
// successful job.
func TestHandoffFaults(t *testing.T) {
	e := newHandoffEnv(t, cloudsim.Options{})
	both := []string{"attachVolume", "detachVolume"}

	t.Run("lost-replies", func(t *testing.T) {
		mv := e.newVolume("lost", nil)
		create(t, mv)
		waitVolume(t, mv, 30*time.Second, conditionIs(osseav1.ConditionReady, metav1.ConditionTrue, ""))
		e.sim.SetFaults(cloudsim.Faults{LostResponseRate: 1, Commands: both})
		cur := &osseav1.MigrationVolume{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: mv.Name}}
		update(t, cur, func() { cur.Spec.Handoff = &osseav1.VolumeHandoff{VirtualMachineID: targetVMID, AsRoot: true} })
		got := waitVolume(t, mv, 90*time.Second, conditionIs(osseav1.ConditionHandedOff, metav1.ConditionTrue, osseav1.ReasonHandedOff))
		e.sim.SetFaults(cloudsim.Faults{})
		if got.Status.Handoff.DeviceID != 0 {
			t.Errorf("device %d, want 0 (root)", got.Status.Handoff.DeviceID)
		}
		t.Logf("attachVolume calls %d, detachVolume calls %d", e.sim.Snapshot().Calls["attachVolume"], e.sim.Snapshot().Calls["detachVolume"])
	})

	t.Run("failed-jobs", func(t *testing.T) {
		mv := e.newVolume("failing", nil)
		create(t, mv)
		waitVolume(t, mv, 30*time.Second, conditionIs(osseav1.ConditionReady, metav1.ConditionTrue, ""))
		e.sim.SetFaults(cloudsim.Faults{JobFailureRate: 1, Commands: both})
		cur := &osseav1.MigrationVolume{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: mv.Name}}
		update(t, cur, func() { cur.Spec.Handoff = &osseav1.VolumeHandoff{VirtualMachineID: targetVMID} })
		waitVolume(t, mv, 30*time.Second, func(mv *osseav1.MigrationVolume) string {
			if mv.Status.LastCloudStackError == nil {
				return "no failed job seen yet"
			}
			return ""
		})
		e.sim.SetFaults(cloudsim.Faults{})
		waitVolume(t, mv, 90*time.Second, conditionIs(osseav1.ConditionHandedOff, metav1.ConditionTrue, osseav1.ReasonHandedOff))
	})

	t.Run("manager-stopped-between-detach-and-attach", func(t *testing.T) {
		mv := e.newVolume("restarted", nil)
		create(t, mv)
		got := waitVolume(t, mv, 30*time.Second, conditionIs(osseav1.ConditionReady, metav1.ConditionTrue, ""))
		cur := &osseav1.MigrationVolume{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: mv.Name}}
		update(t, cur, func() { cur.Spec.Handoff = &osseav1.VolumeHandoff{VirtualMachineID: targetVMID} })
		testkit.Eventually(t, 30*time.Second, func() string {
			if v := volumeByID(e.sim, got.Status.VolumeID); v == nil || v.VirtualMachineID != "" {
				return "not detached from the OMA yet"
			}
			return ""
		})
		e.mgr.stop()
		if v := volumeByID(e.sim, got.Status.VolumeID); v.VirtualMachineID != "" {
			t.Logf("the attach was sent before the stop; the restart must still find it once")
		}
		e.mgr = startManager(t, e.ns)
		waitVolume(t, mv, 60*time.Second, conditionIs(osseav1.ConditionHandedOff, metav1.ConditionTrue, osseav1.ReasonHandedOff))
	})

	for vol, n := range successfulAttaches(e.sim, targetVMID) {
		if n != 1 {
			t.Errorf("volume %s attached to the target by %d successful jobs, want 1", vol, n)
		}
	}
	if n := len(successfulAttaches(e.sim, targetVMID)); n != 3 {
		t.Errorf("%d volumes attached to the target, want 3", n)
	}
}
