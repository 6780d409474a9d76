package main

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/test/world"
)

// The checks of the jobs run are only as good as their power to fail: these feed them the
// states they must refuse, without a world.

func placedOn(cfg string) *osseav1.MigrationJobPlacementStatus {
	return &osseav1.MigrationJobPlacementStatus{OsseaConfigName: cfg, OMAVirtualMachineID: "9c1e4b7d-2a6f-4d3c-8e5b-000000000001"}
}

func TestPoolSettlesOnlyWhenNothingCanMove(t *testing.T) {
	now := time.Now()
	ready := func(cfg string) jobTrace { return jobTrace{Disks: 3, Placement: placedOn(cfg), Ready: now} }
	// Two VMs of 7 slots: two jobs of 3 on each leaves 1 free, too few for a waiting job.
	jobs := map[string]jobTrace{
		"a": ready(world.ConfigName(0)), "b": ready(world.ConfigName(0)),
		"c": ready(world.ConfigName(1)), "d": ready(world.ConfigName(1)),
		"e": {Disks: 3},
	}
	if s := poolNow(jobs, 2, 7); !s.settled() || len(s.placed) != 4 || len(s.waiting) != 1 {
		t.Fatalf("full pool with one job waiting: %s, settled %v; want settled, 4 placed, 1 waiting", s, s.settled())
	}

	cases := map[string]func(map[string]jobTrace){
		"a placed job not Ready yet": func(j map[string]jobTrace) { b := j["b"]; b.Ready = time.Time{}; j["b"] = b },
		"a job being deleted":        func(j map[string]jobTrace) { b := j["b"]; b.Deleting = now; j["b"] = b },
		"a waiting job that fits":    func(j map[string]jobTrace) { delete(j, "b") },
		"nothing placed":             func(j map[string]jobTrace) { clear(j); j["e"] = jobTrace{Disks: 3} },
	}
	for name, change := range cases {
		j := map[string]jobTrace{}
		for k, v := range jobs {
			j[k] = v
		}
		change(j)
		if s := poolNow(j, 2, 7); s.settled() {
			t.Errorf("%s: settled (%s); want not", name, s)
		}
	}

	gone := jobs["a"]
	gone.Deleting, gone.Gone = now, now
	jobs["a"] = gone
	if s := poolNow(jobs, 2, 7); s.settled() || len(s.fitting) != 1 {
		t.Errorf("a job gone frees its slots: %s; want the waiting job fitting", s)
	}
}

func TestJobWatchSeesAPlacementChange(t *testing.T) {
	jw := &jobWatch{jobs: map[string]*jobTrace{}, vols: map[string]*volumeFacts{}}
	job := &osseav1.MigrationJob{ObjectMeta: metav1.ObjectMeta{Name: "j", UID: "u1"}}
	job.Spec.Disks = make([]osseav1.MigrationJobDisk, 3)
	jw.observe(job, false)
	job.Status.Conditions = []metav1.Condition{{Type: osseav1.ConditionPlaced, Status: metav1.ConditionFalse, Reason: osseav1.ReasonInsufficientCapacity}}
	jw.observe(job, false)
	job.Status.Placement = placedOn("oma-0")
	jw.observe(job, false)
	if p := jw.Problems(); len(p) != 0 || !jw.Jobs()["j"].Waited {
		t.Fatalf("waiting, then placed once: problems %v, waited %v; want none, true", p, jw.Jobs()["j"].Waited)
	}
	job.Status.Placement = placedOn("oma-1")
	jw.observe(job, false)
	job.Status.Placement = nil
	jw.observe(job, true)
	p := strings.Join(jw.Problems(), "\n")
	if !strings.Contains(p, "moved from oma-0") || !strings.Contains(p, "lost its placement") {
		t.Errorf("problems %q; want the move and the loss", p)
	}
}

func TestVolumeChecks(t *testing.T) {
	jobs := map[string]jobTrace{"j": {Name: "j", UID: "u1", Disks: 1, Placement: placedOn("oma-0")}}
	vol := func(name string, mutate func(*osseav1.MigrationVolume)) *osseav1.MigrationVolume {
		mv := &osseav1.MigrationVolume{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(name),
			Labels: map[string]string{osseav1.JobLabel: "j"}}}
		controller := true
		mv.OwnerReferences = []metav1.OwnerReference{{Kind: "MigrationJob", Name: "j", UID: "u1", Controller: &controller}}
		mv.Spec.JobID, mv.Spec.DiskName, mv.Spec.OsseaConfigRef.Name = "j", strings.TrimPrefix(name, "j-"), "oma-0"
		if mutate != nil {
			mutate(mv)
		}
		return mv
	}
	cases := map[string]struct {
		mv   *osseav1.MigrationVolume
		want string
	}{
		"its own":           {vol("j-d0", nil), ""},
		"no label":          {vol("j-d1", func(mv *osseav1.MigrationVolume) { mv.Labels = nil }), "no ossea.migratekit.io/job label"},
		"no controller":     {vol("j-d2", func(mv *osseav1.MigrationVolume) { mv.OwnerReferences = nil }), "no controller reference"},
		"another's UID":     {vol("j-d3", func(mv *osseav1.MigrationVolume) { mv.OwnerReferences[0].UID = "u2" }), "controlled by UID u2"},
		"another config":    {vol("j-d4", func(mv *osseav1.MigrationVolume) { mv.Spec.OsseaConfigRef.Name = "oma-1" }), "uses OsseaConfig oma-1"},
		"another disk":      {vol("j-d5", func(mv *osseav1.MigrationVolume) { mv.Spec.DiskName = "x" }), "is for job j disk x"},
		"another job's ref": {vol("j-d6", func(mv *osseav1.MigrationVolume) { mv.OwnerReferences[0].Name = "k" }), "is controlled by MigrationJob k"},
	}
	for name, tc := range cases {
		jw := &jobWatch{jobs: map[string]*jobTrace{}, vols: map[string]*volumeFacts{}}
		jw.observe(tc.mv, false)
		got := strings.Join(append(jw.Problems(), jw.checkVolumes(context.Background(), jobs)...), "\n")
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: problems %q; want %q", name, got, tc.want)
		}
	}
}
