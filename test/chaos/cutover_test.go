package main

import (
	"math/rand"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudsim"
	"github.com/migratekit/ossea-operator/test/world"
)

// The end checks of the cut-over run must fail on every wrong end state: they are fed one
// that is right, then each way it can be wrong, without a world.

func TestSplitWaveCutsTheLargerHalf(t *testing.T) {
	placed := []string{"a", "b", "c", "d", "e"}
	cut, del := splitWave(placed, rand.New(rand.NewSource(1)))
	if len(cut) != 3 || len(del) != 2 {
		t.Fatalf("cut %v, deleted %v; want 3 and 2", cut, del)
	}
	seen := map[string]bool{}
	for _, n := range append(append([]string(nil), cut...), del...) {
		seen[n] = true
	}
	if len(seen) != len(placed) {
		t.Errorf("cut %v and deleted %v do not split %v", cut, del, placed)
	}
	again, _ := splitWave(placed, rand.New(rand.NewSource(1)))
	if strings.Join(again, ",") != strings.Join(cut, ",") {
		t.Errorf("the same seed cut %v, then %v", cut, again)
	}
	if cut, _ := splitWave([]string{"x"}, rand.New(rand.NewSource(2))); len(cut) != 1 {
		t.Errorf("a wave of one: cut %v; want it cut over", cut)
	}
}

// cutoverFixture is one job cut over to target T (placeholder P), another target U given
// to no job, as the run should leave them.
type cutoverFixture struct {
	st    cloudsim.State
	jobs  map[string]*jobTrace
	vols  map[string]*volumeFacts
	book  *cutoverBook
	vol   map[string]string // disk -> volume id
	T, U  string
	P, PU string
}

func newCutoverFixture() *cutoverFixture {
	f := &cutoverFixture{T: world.TargetVMID(0), U: world.TargetVMID(1),
		P: "aaaaaaaa-0000-4000-8000-000000000001", PU: "aaaaaaaa-0000-4000-8000-000000000002",
		vol: map[string]string{"disk0": "bbbbbbbb-0000-4000-8000-000000000000", "disk1": "bbbbbbbb-0000-4000-8000-000000000001",
			"disk2": "bbbbbbbb-0000-4000-8000-000000000002"}}
	dev := func(d int64) *int64 { return &d }
	done := time.Now()
	tags := func(kv ...string) []cloudsim.Tag {
		var out []cloudsim.Tag
		for i := 0; i+1 < len(kv); i += 2 {
			out = append(out, cloudsim.Tag{Key: kv[i], Value: kv[i+1]})
		}
		return out
	}
	f.st.Volumes = []cloudsim.Volume{
		{ID: f.vol["disk0"], Type: "ROOT", VirtualMachineID: f.T, DeviceID: dev(0), Tags: tags(tagHandedOffTo, f.T)},
		{ID: f.vol["disk1"], Type: "DATADISK", VirtualMachineID: f.T, DeviceID: dev(1), Tags: tags(tagHandedOffTo, f.T)},
		{ID: f.vol["disk2"], Type: "DATADISK", VirtualMachineID: f.T, DeviceID: dev(2), Tags: tags(tagHandedOffTo, f.T)},
		{ID: f.P, Type: "DATADISK", Tags: tags(tagReplacedBy, f.vol["disk0"])},
		{ID: f.PU, Type: "ROOT", VirtualMachineID: f.U, DeviceID: dev(0)},
	}
	f.jobs = map[string]*jobTrace{"job-000": {Name: "job-000", HandedOff: done, Phase: osseav1.JobPhaseHandedOff,
		TargetDevices: map[string]int64{"disk0": 0, "disk1": 1, "disk2": 2}}}
	f.vols = map[string]*volumeFacts{}
	for i, disk := range []string{"disk0", "disk1", "disk2"} {
		f.st.Jobs = append(f.st.Jobs, cloudsim.Job{ID: "attach-" + disk, Command: "attachVolume", Status: 1, Completed: &done,
			Params: map[string]string{"id": f.vol[disk], "virtualmachineid": f.T}})
		f.vols["job-000-"+disk] = &volumeFacts{Name: "job-000-" + disk, VolumeID: f.vol[disk],
			Handoff: &osseav1.HandoffStatus{VirtualMachineID: f.T, DeviceID: int64(i)}}
	}
	f.book = &cutoverBook{targets: []string{f.T, f.U}, placeholders: map[string]string{f.T: f.P, f.U: f.PU},
		jobs: map[string]string{"job-000": f.T}}
	return f
}

func (f *cutoverFixture) check() string {
	res := &Result{}
	k := &checker{res: res, jobs: &jobWatch{jobs: f.jobs, vols: f.vols}, cut: f.book}
	k.checkCutovers(f.st, 3)
	return strings.Join(res.Violations, "\n")
}

func (f *cutoverFixture) volume(id string) *cloudsim.Volume {
	for i := range f.st.Volumes {
		if f.st.Volumes[i].ID == id {
			return &f.st.Volumes[i]
		}
	}
	return nil
}

func TestCutoverEndState(t *testing.T) {
	if got := newCutoverFixture().check(); got != "" {
		t.Fatalf("the right end state: %s", got)
	}
	dev := func(d int64) *int64 { return &d }
	cases := map[string]struct {
		change func(f *cutoverFixture)
		want   string
	}{
		"data disks out of order": {func(f *cutoverFixture) {
			f.volume(f.vol["disk1"]).DeviceID, f.volume(f.vol["disk2"]).DeviceID = dev(2), dev(1)
			f.vols["job-000-disk1"].Handoff.DeviceID, f.vols["job-000-disk2"].Handoff.DeviceID = 2, 1
			f.jobs["job-000"].TargetDevices = map[string]int64{"disk0": 0, "disk1": 2, "disk2": 1}
		}, "data disk disk2's volume bbbbbbbb-0000-4000-8000-000000000002 is DATADISK at device 1, want a DATADISK after device 2"},
		"root not at device 0": {func(f *cutoverFixture) {
			f.volume(f.vol["disk0"]).DeviceID, f.volume(f.vol["disk0"]).Type = dev(4), "DATADISK"
		}, "want ROOT at 0"},
		"a disk left on the OMA": {func(f *cutoverFixture) {
			f.volume(f.vol["disk2"]).VirtualMachineID = world.VMID(0)
		}, "attached to \"" + world.VMID(0) + "\", not to the target"},
		"attached twice": {func(f *cutoverFixture) {
			f.st.Jobs = append(f.st.Jobs, f.st.Jobs[1])
		}, "by 2 successful attach jobs, want exactly 1"},
		"a stranger attached": {func(f *cutoverFixture) {
			j := f.st.Jobs[0]
			j.Params = map[string]string{"id": "cccccccc-0000-4000-8000-000000000000", "virtualmachineid": f.T}
			f.st.Jobs = append(f.st.Jobs, j)
		}, "not one of the job's, was attached to the target"},
		"no handed-off tag": {func(f *cutoverFixture) {
			f.volume(f.vol["disk1"]).Tags = nil
		}, "is tagged " + tagHandedOffTo + "=\"\""},
		"placeholder still attached": {func(f *cutoverFixture) {
			f.volume(f.P).VirtualMachineID = f.T
		}, "the placeholder root " + "aaaaaaaa-0000-4000-8000-000000000001 is still attached"},
		"placeholder untagged": {func(f *cutoverFixture) {
			f.volume(f.P).Tags = nil
		}, "is tagged " + tagReplacedBy + "=\"\""},
		"placeholder deleted": {func(f *cutoverFixture) {
			f.st.Volumes = f.st.Volumes[:3]
			f.st.Volumes = append(f.st.Volumes, cloudsim.Volume{ID: f.PU, Type: "ROOT", VirtualMachineID: f.U, DeviceID: dev(0)})
		}, "is gone: the operator never deletes"},
		"status.handoff wrong": {func(f *cutoverFixture) {
			f.vols["job-000-disk2"].Handoff = nil
		}, "MigrationVolume job-000-disk2 showed status.handoff <nil>"},
		"job status wrong": {func(f *cutoverFixture) {
			delete(f.jobs["job-000"].TargetDevices, "disk1")
		}, "the job's status showed disk disk1 at target device 0 (shown: false)"},
		"never HandedOff": {func(f *cutoverFixture) {
			f.jobs["job-000"].HandedOff = time.Time{}
		}, "never seen HandedOff"},
		"an unused target touched": {func(f *cutoverFixture) {
			f.volume(f.PU).Tags = []cloudsim.Tag{{Key: tagReplacedBy, Value: "x"}}
		}, "target VM " + world.TargetVMID(1) + ", given to no job, was touched"},
	}
	for name, tc := range cases {
		f := newCutoverFixture()
		tc.change(f)
		if got := f.check(); !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q; want %q", name, got, tc.want)
		}
	}
}

// TestJobWatchSeesAReclaim: a volume the agent let go for its hand-off must never carry the
// mount finalizer again; the report says what the manager's status said in between.
func TestJobWatchSeesAReclaim(t *testing.T) {
	jw := &jobWatch{jobs: map[string]*jobTrace{}, vols: map[string]*volumeFacts{}}
	mv := &osseav1.MigrationVolume{}
	mv.Name, mv.UID, mv.Labels = "j-disk0", "u", map[string]string{osseav1.JobLabel: "j"}
	mv.Spec.JobID, mv.Spec.DiskName = "j", "disk0"
	controller := true
	mv.OwnerReferences = []metav1.OwnerReference{{Kind: "MigrationJob", Name: "j", UID: "uj", Controller: &controller}}
	mv.Finalizers = []string{osseav1.MountFinalizer}
	mv.Status.MountPath = "/mnt/j/disk0"
	jw.observe(mv, false)
	mv.Spec.Handoff = &osseav1.VolumeHandoff{VirtualMachineID: world.TargetVMID(0), AsRoot: true}
	handedOff := func(reason string) {
		mv.Status.Conditions = []metav1.Condition{{Type: osseav1.ConditionHandedOff, Status: metav1.ConditionFalse, Reason: reason}}
	}
	handedOff(osseav1.ReasonReleasing)
	jw.observe(mv, false)
	mv.Finalizers, mv.Status.MountPath = nil, ""
	jw.observe(mv, false)
	handedOff(osseav1.ReasonDetaching)
	jw.observe(mv, false)
	if p := jw.Problems(); len(p) != 0 {
		t.Fatalf("released, let go, detaching: %q; want nothing", p)
	}
	handedOff(osseav1.ReasonCloudStackError)
	jw.observe(mv, false)
	mv.Finalizers = []string{osseav1.MountFinalizer}
	jw.observe(mv, false)
	p := strings.Join(jw.Problems(), "\n")
	if !strings.Contains(p, "claimed again by its node agent") || !strings.Contains(p, "HandedOff=False CloudStackError") {
		t.Errorf("problems %q; want the re-claim, and the status that stopped asking for the release", p)
	}
}
