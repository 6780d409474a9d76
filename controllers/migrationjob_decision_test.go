package controllers

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

// The job controller's decisions, without an API server: where a job goes, how slots are
// counted, whose a volume is, and what the status says.

func TestDecisionPlacement(t *testing.T) {
	a := candidate{name: "oma-a", vmID: "vm-a", limit: 16}
	b := candidate{name: "oma-b", vmID: "vm-b", limit: 16}
	small := candidate{name: "oma-s", vmID: "vm-s", limit: 2}
	down := candidate{name: "oma-d", vmID: "vm-d", limit: 16, notReady: "not Ready (Unreachable)"}
	cases := []struct {
		name  string
		need  int
		cands []candidate
		used  map[string]int
		want  string // the config chosen, "" for none
		never bool
		msg   []string // in the message
	}{
		{name: "most free wins", need: 3, cands: []candidate{a, b}, used: map[string]int{"vm-a": 10, "vm-b": 4}, want: "oma-b"},
		{name: "ties go by name", need: 3, cands: []candidate{b, a}, used: map[string]int{}, want: "oma-a"},
		{name: "exactly enough", need: 3, cands: []candidate{a}, used: map[string]int{"vm-a": 13}, want: "oma-a"},
		{name: "one short", need: 3, cands: []candidate{a, b}, used: map[string]int{"vm-a": 14, "vm-b": 15}, want: "",
			msg: []string{"needs 3 free data-disk slots", "oma-a: 2 of 16 free", "oma-b: 1 of 16 free"}},
		{name: "not Ready is never chosen", need: 1, cands: []candidate{down, a}, used: map[string]int{"vm-a": 15}, want: "oma-a"},
		{name: "not Ready is named", need: 2, cands: []candidate{down, a}, used: map[string]int{"vm-a": 15}, want: "",
			msg: []string{"oma-d: not Ready (Unreachable)", "oma-a: 1 of 16 free"}},
		{name: "none Ready", need: 1, cands: []candidate{down}, want: "", msg: []string{"no candidate OsseaConfig is Ready"}},
		{name: "can never fit", need: 3, cands: []candidate{small}, want: "", never: true,
			msg: []string{"3 disks can never fit", "holds 2 data disks"}},
		{name: "fits the big one only", need: 3, cands: []candidate{small, a}, used: map[string]int{}, want: "oma-a"},
		{name: "overcounted VM shows 0 free", need: 1, cands: []candidate{a}, used: map[string]int{"vm-a": 20}, want: "",
			msg: []string{"oma-a: 0 of 16 free"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ch := choosePlacement(c.need, append([]candidate(nil), c.cands...), c.used)
			got := ""
			if ch.best != nil {
				got = ch.best.name
			}
			if got != c.want || ch.never != c.never {
				t.Errorf("chose %q (never=%v), want %q (never=%v): %s", got, ch.never, c.want, c.never, ch.message)
			}
			for _, m := range c.msg {
				if !strings.Contains(ch.message, m) {
					t.Errorf("message %q does not say %q", ch.message, m)
				}
			}
		})
	}
}

func testJob(uid, name string, disks int, placedOn string) osseav1.MigrationJob {
	j := osseav1.MigrationJob{ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid), Name: name, Namespace: "ns"}}
	for i := range disks {
		j.Spec.Disks = append(j.Spec.Disks, osseav1.MigrationJobDisk{Name: "d" + string(rune('0'+i)), SizeGiB: ptr.To[int32](1)})
	}
	if placedOn != "" {
		j.Status.Placement = &osseav1.MigrationJobPlacementStatus{OsseaConfigName: "cfg-" + placedOn, OMAVirtualMachineID: placedOn}
	}
	return j
}

func testVolume(name, config, attachedTo string, owner *osseav1.MigrationJob) osseav1.MigrationVolume {
	mv := osseav1.MigrationVolume{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}}
	mv.Spec.OsseaConfigRef.Name = config
	mv.Status.AttachedVirtualMachineID = attachedTo
	if owner != nil {
		mv.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(owner, osseav1.GroupVersion.WithKind("MigrationJob"))}
	}
	return mv
}

func TestDecisionSlotCount(t *testing.T) {
	cfgs := []osseav1.OsseaConfig{
		{ObjectMeta: metav1.ObjectMeta{Name: "cfg-vm-a", Namespace: "ns"}, Spec: osseav1.OsseaConfigSpec{OMAVirtualMachineID: "vm-a"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "cfg-vm-b", Namespace: "ns"}, Spec: osseav1.OsseaConfigSpec{OMAVirtualMachineID: "vm-b"}},
		// Another namespace's config of the same VM: its volumes take the same slots.
		{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "ns2"}, Spec: osseav1.OsseaConfigSpec{OMAVirtualMachineID: "vm-a"}},
	}
	placedA := testJob("j1", "j1", 3, "vm-a")
	unplaced := testJob("j2", "j2", 2, "")
	booked := testJob("j3", "j3", 4, "") // placed by this process; the cache does not show it yet
	gone := types.UID("j4")              // booked, then deleted
	ownedByGone := testJob("j4", "j4", 1, "vm-b")

	other := testVolume("s2", "other", "", nil)
	other.Namespace = "ns2"
	vols := []osseav1.MigrationVolume{
		testVolume("j1-d0", "cfg-vm-a", "vm-a", &placedA), // counted with its job
		testVolume("j1-d1", "cfg-vm-a", "", &placedA),
		testVolume("s1", "cfg-vm-b", "", nil),          // standalone, not attached yet: its config's VM
		testVolume("s3", "cfg-vm-b", "vm-a", nil),      // standalone, attached elsewhere: where it is
		testVolume("o1", "cfg-vm-b", "", &ownedByGone), // its job is gone: counted on its own
		other,
	}
	pending := map[types.UID]bookedPlacement{
		booked.UID:   {placement: osseav1.MigrationJobPlacementStatus{OMAVirtualMachineID: "vm-b"}, disks: 4},
		placedA.UID:  {placement: osseav1.MigrationJobPlacementStatus{OMAVirtualMachineID: "vm-a"}, disks: 3},
		gone:         {placement: osseav1.MigrationJobPlacementStatus{OMAVirtualMachineID: "vm-b"}, disks: 1},
		unplaced.UID: {placement: osseav1.MigrationJobPlacementStatus{OMAVirtualMachineID: "vm-b"}, disks: 2},
	}
	used := countSlots([]osseav1.MigrationJob{placedA, unplaced, booked}, vols, cfgs, pending)
	// vm-a: j1's 3 disks, s3 attached there, s2 through ns2's config of vm-a.
	// vm-b: j3's booked 4, j2's booked 2 (decided, not yet in the cache), s1, o1.
	if want := map[string]int{"vm-a": 5, "vm-b": 8}; used["vm-a"] != want["vm-a"] || used["vm-b"] != want["vm-b"] || len(used) != 2 {
		t.Errorf("used %v, want %v", used, want)
	}
	if _, ok := pending[placedA.UID]; ok {
		t.Error("the book still holds a placement the cache shows")
	}
	if _, ok := pending[gone]; ok {
		t.Error("the book still holds the placement of a job that is gone")
	}
	if _, ok := pending[booked.UID]; !ok {
		t.Error("the book dropped a placement the cache does not show yet")
	}
}

func TestDecisionVolumeClaim(t *testing.T) {
	job := testJob("uid-1", "job-1", 1, "vm-a")
	disk := job.Spec.Disks[0]
	mine := func(edit func(*osseav1.MigrationVolume)) *osseav1.MigrationVolume {
		mv := desiredVolume(&job, disk)
		mv.OwnerReferences = nil
		edit(mv)
		return mv
	}
	otherJob := testJob("uid-2", "job-1", 1, "vm-a") // an earlier job of the same name
	cases := []struct {
		name string
		mv   *osseav1.MigrationVolume
		want volumeClaim
		why  string
	}{
		{name: "created by the job", mv: desiredVolume(&job, disk), want: claimOwned},
		{name: "made for it, nobody's", mv: mine(func(*osseav1.MigrationVolume) {}), want: claimAdoption},
		{name: "controlled by another", mv: mine(func(mv *osseav1.MigrationVolume) {
			mv.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(&otherJob, osseav1.GroupVersion.WithKind("MigrationJob"))}
		}), want: claimConflict, why: "controlled by MigrationJob job-1"},
		{name: "not labelled", mv: mine(func(mv *osseav1.MigrationVolume) { mv.Labels = nil }), want: claimConflict, why: "not labelled"},
		{name: "another job's disk", mv: mine(func(mv *osseav1.MigrationVolume) { mv.Spec.JobID = "job-2" }), want: claimConflict, why: "for job job-2"},
		{name: "another config", mv: mine(func(mv *osseav1.MigrationVolume) { mv.Spec.OsseaConfigRef.Name = "x" }), want: claimConflict, why: "uses OsseaConfig x"},
		{name: "being deleted", mv: mine(func(mv *osseav1.MigrationVolume) { mv.DeletionTimestamp = ptr.To(metav1.Now()) }), want: claimConflict, why: "being deleted"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, why := claimOf(&job, disk, c.mv)
			if got != c.want || !strings.Contains(why, c.why) {
				t.Errorf("claim %d %q, want %d %q", got, why, c.want, c.why)
			}
		})
	}
}

func TestDecisionDesiredVolume(t *testing.T) {
	job := testJob("uid-1", "job-1", 0, "vm-a")
	job.Spec.VMName = "Web (prod)"
	job.Spec.DeletionPolicy = osseav1.DeletionPolicyRetain
	for _, c := range []struct {
		bytes int64
		want  int32
	}{{1 << 30, 1}, {1<<30 + 1, 2}, {1, 1}, {42949673472, 41}, {osseav1.MaxDiskCapacityBytes, osseav1.MaxDiskSizeGiB}} {
		mv := desiredVolume(&job, osseav1.MigrationJobDisk{Name: "d", CapacityBytes: ptr.To(c.bytes), Mode: osseav1.VolumeModeBlock})
		if mv.Spec.SizeGiB != c.want {
			t.Errorf("capacityBytes %d: sizeGiB %d, want %d", c.bytes, mv.Spec.SizeGiB, c.want)
		}
	}
	mv := desiredVolume(&job, osseav1.MigrationJobDisk{Name: "d", SizeGiB: ptr.To[int32](7)})
	ref := metav1.GetControllerOf(mv)
	switch {
	case mv.Name != "job-1-d" || mv.Labels[osseav1.JobLabel] != "job-1":
		t.Errorf("name %s labels %v", mv.Name, mv.Labels)
	case ref == nil || ref.UID != job.UID || ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion:
		t.Errorf("owner reference %+v, want the job as controller blocking its deletion", ref)
	case mv.Spec.OsseaConfigRef.Name != "cfg-vm-a" || mv.Spec.JobID != "job-1" || mv.Spec.VMName != "Web (prod)" ||
		mv.Spec.DiskName != "d" || mv.Spec.SizeGiB != 7 || mv.Spec.DeletionPolicy != osseav1.DeletionPolicyRetain:
		t.Errorf("spec %+v", mv.Spec)
	}
}

func TestDecisionJobStatus(t *testing.T) {
	ready := func(name string, ok bool, stalled string) *osseav1.MigrationVolume {
		mv := &osseav1.MigrationVolume{ObjectMeta: metav1.ObjectMeta{Name: name}}
		st := metav1.ConditionFalse
		if ok {
			st = metav1.ConditionTrue
		}
		mv.Status.Phase = osseav1.PhaseAttached
		meta.SetStatusCondition(&mv.Status.Conditions, metav1.Condition{Type: osseav1.ConditionReady, Status: st, Reason: "R", Message: "m"})
		if stalled != "" {
			meta.SetStatusCondition(&mv.Status.Conditions, metav1.Condition{Type: osseav1.ConditionStalled, Status: metav1.ConditionTrue, Reason: stalled, Message: "the device has data"})
		}
		return mv
	}
	placed := metav1.Condition{Type: osseav1.ConditionPlaced, Status: metav1.ConditionTrue, Reason: osseav1.ReasonPlaced}
	waiting := metav1.Condition{Type: osseav1.ConditionPlaced, Status: metav1.ConditionFalse, Reason: osseav1.ReasonInsufficientCapacity, Message: "needs 3"}
	cases := []struct {
		name     string
		placedOn string
		placed   *metav1.Condition
		vols     map[string]*osseav1.MigrationVolume
		deleting bool
		stall    *stalling
		phase    osseav1.MigrationJobPhase
		ready    string // status/reason
		count    string
		kstatus  string // Reconciling, Stalled or ""
	}{
		{name: "new", phase: osseav1.JobPhasePending, ready: "Unknown/Progressing", count: "0/2", kstatus: "Reconciling"},
		{name: "waiting for slots", placed: &waiting, phase: osseav1.JobPhasePending, ready: "False/InsufficientCapacity", count: "0/2", kstatus: "Reconciling"},
		{name: "placed, one volume", placedOn: "vm-a", placed: &placed, vols: map[string]*osseav1.MigrationVolume{"d0": ready("a", false, "")},
			phase: osseav1.JobPhasePlacing, ready: "False/Provisioning", count: "0/2", kstatus: "Reconciling"},
		{name: "one of two Ready", placedOn: "vm-a", placed: &placed, vols: map[string]*osseav1.MigrationVolume{"d0": ready("a", true, ""), "d1": ready("b", false, "")},
			phase: osseav1.JobPhaseProvisioning, ready: "False/Provisioning", count: "1/2", kstatus: "Reconciling"},
		{name: "all Ready", placedOn: "vm-a", placed: &placed, vols: map[string]*osseav1.MigrationVolume{"d0": ready("a", true, ""), "d1": ready("b", true, "")},
			phase: osseav1.JobPhaseReady, ready: "True/DisksReady", count: "2/2"},
		{name: "a disk stalled", placedOn: "vm-a", placed: &placed, vols: map[string]*osseav1.MigrationVolume{"d0": ready("a", true, ""), "d1": ready("b", false, osseav1.ReasonDeviceNotBlank)},
			phase: osseav1.JobPhaseFailed, ready: "False/DeviceNotBlank", count: "1/2", kstatus: "Stalled"},
		{name: "the job stalled", placedOn: "vm-a", placed: &placed, stall: &stalling{reason: osseav1.ReasonNameConflict, msg: "taken"},
			phase: osseav1.JobPhaseFailed, ready: "False/NameConflict", count: "0/2", kstatus: "Stalled"},
		{name: "deleting", placedOn: "vm-a", placed: &placed, deleting: true, vols: map[string]*osseav1.MigrationVolume{"d0": ready("a", true, "")},
			phase: osseav1.JobPhaseDeleting, ready: "False/Deleting", count: "1/2", kstatus: "Reconciling"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			job := testJob("uid", "job", 2, c.placedOn)
			job.Generation = 3
			if c.placed != nil {
				job.Status.Conditions = []metav1.Condition{*c.placed}
			}
			if c.deleting {
				job.DeletionTimestamp = ptr.To(metav1.Now())
			}
			s := &jobScope{job: &job, conditions: conditionSetter{&job.Status.Conditions, job.Generation}, volumes: c.vols, stalled: c.stall}
			if s.volumes == nil {
				s.volumes = map[string]*osseav1.MigrationVolume{}
			}
			summarizeJob(s)
			st := job.Status
			r := meta.FindStatusCondition(st.Conditions, osseav1.ConditionReady)
			if st.Phase != c.phase || r == nil || string(r.Status)+"/"+r.Reason != c.ready || st.DisksReady != c.count || st.ObservedGeneration != 3 {
				t.Errorf("phase %s, Ready %+v, disks %s, observedGeneration %d; want %s, %s, %s", st.Phase, r, st.DisksReady, st.ObservedGeneration, c.phase, c.ready, c.count)
			}
			for _, k := range []string{osseav1.ConditionReconciling, osseav1.ConditionStalled} {
				if got := meta.IsStatusConditionTrue(st.Conditions, k); got != (k == c.kstatus) {
					t.Errorf("%s=%v, want it only when %q", k, got, c.kstatus)
				}
			}
			if len(st.Disks) != 2 || st.Disks[0].Name != "d0" {
				t.Errorf("disk lines %+v, want one per disk in spec order", st.Disks)
			}
		})
	}
}
