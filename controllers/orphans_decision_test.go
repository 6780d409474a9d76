package controllers

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudstack"
)

// The orphan rules, without an API server or CloudStack.

func TestJudgeOrphan(t *testing.T) {
	const vm = "8f1b2c3d-0000-4000-8000-000000000001"
	for _, c := range []struct {
		name   string
		vol    cloudstack.Volume
		exists bool
		want   orphanVerdict
	}{
		{"its MigrationVolume exists", cloudstack.Volume{}, true, notOrphan},
		{"its MigrationVolume exists, attached", cloudstack.Volume{VirtualMachineID: vm}, true, notOrphan},
		{"gone, detached", cloudstack.Volume{State: "Ready"}, false, orphanDetached},
		{"gone, attached", cloudstack.Volume{State: "Ready", VirtualMachineID: vm}, false, orphanAttached},
		{"retained", cloudstack.Volume{Tags: map[string]string{TagRetained: "true"}}, false, notOrphan},
		{"retained tag with another value", cloudstack.Volume{Tags: map[string]string{TagRetained: "false"}}, false, orphanDetached},
		{"handed off", cloudstack.Volume{VirtualMachineID: vm, Tags: map[string]string{TagHandedOffTo: vm}}, false, notOrphan},
		{"released to a person's VM", cloudstack.Volume{VirtualMachineID: vm, Tags: map[string]string{TagReleasedTo: vm}}, false, notOrphan},
		{"a target's replaced root", cloudstack.Volume{Tags: map[string]string{TagReplacedBy: "vol"}}, false, notOrphan},
		{"being destroyed", cloudstack.Volume{State: "Destroy"}, false, notOrphan},
		{"being expunged", cloudstack.Volume{State: "Expunging"}, false, notOrphan},
	} {
		if got := judgeOrphan(&c.vol, c.exists); got != c.want {
			t.Errorf("%s: judgeOrphan = %d, want %d", c.name, got, c.want)
		}
	}
}

func TestOrphanDueAndGrace(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		age   time.Duration
		grace time.Duration
		want  bool
	}{
		{0, 0, true},
		{time.Second, 0, true},
		{0, time.Hour, false},
		{59 * time.Minute, time.Hour, false},
		{time.Hour, time.Hour, true},
		{25 * time.Hour, DefaultOrphanGracePeriod, true},
		{23 * time.Hour, DefaultOrphanGracePeriod, false},
	} {
		if got := orphanDue(t0, t0.Add(c.age), c.grace); got != c.want {
			t.Errorf("orphanDue(age %s, grace %s) = %v, want %v", c.age, c.grace, got, c.want)
		}
	}
	cfg := &osseav1.OsseaConfig{}
	if g := graceOf(cfg); g != 24*time.Hour {
		t.Errorf("default grace = %s, want 24h", g)
	}
	cfg.Spec.OrphanGracePeriod = &metav1.Duration{Duration: 5 * time.Second}
	if g := graceOf(cfg); g != 5*time.Second {
		t.Errorf("grace = %s, want 5s", g)
	}
}

// An orphan comes due only if seen on every check: one that was not an orphan for a check
// starts again.
func TestOrphanRememberRestartsTheCount(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	o := newOrphanSweeper(nil, nil, nil, "c")
	o.now = func() time.Time { return now }
	key := types.NamespacedName{Namespace: "ns", Name: "ossea"}
	seen, fresh := o.remember(key, []orphan{{id: "a"}, {id: "b"}})
	if len(fresh) != 2 || !seen["a"].Equal(now) {
		t.Fatalf("first check: fresh %v, seen %v", fresh, seen)
	}
	t1 := now
	now = now.Add(time.Minute)
	seen, fresh = o.remember(key, []orphan{{id: "a"}})
	if len(fresh) != 0 || !seen["a"].Equal(t1) || len(seen) != 1 {
		t.Fatalf("second check: fresh %v, seen %v", fresh, seen)
	}
	now = now.Add(time.Minute)
	seen, fresh = o.remember(key, []orphan{{id: "a"}, {id: "b"}})
	if len(fresh) != 1 || fresh[0].id != "b" || !seen["b"].Equal(now) {
		t.Fatalf("b was not an orphan on the second check, so its count starts again: fresh %v, seen %v", fresh, seen)
	}
}

func TestOrphanReport(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	seen := map[string]time.Time{"c": t0, "a": t0.Add(time.Second), "b": t0}
	r := orphanReport([]orphan{{id: "a"}, {id: "b"}, {id: "c"}}, seen)
	if r.Count != 3 || strings.Join(r.VolumeIDs, ",") != "b,c,a" {
		t.Errorf("report = %+v; want 3, the longest orphaned first, ties by id: b,c,a", r)
	}
	if r := orphanReport(nil, nil); r.Count != 0 || r.VolumeIDs != nil {
		t.Errorf("empty report = %+v", r)
	}
	var many []orphan
	seen = map[string]time.Time{}
	for i := range 120 {
		id := fmt.Sprintf("v%03d", i)
		many = append(many, orphan{id: id})
		seen[id] = t0
	}
	if r := orphanReport(many, seen); r.Count != 120 || len(r.VolumeIDs) != osseav1.MaxReportedOrphans || r.VolumeIDs[0] != "v000" {
		t.Errorf("120 orphans: count %d, %d ids listed (first %s); want 120 and %d", r.Count, len(r.VolumeIDs), r.VolumeIDs[0], osseav1.MaxReportedOrphans)
	}
}

func TestOrphanFoundMessage(t *testing.T) {
	cfg := &osseav1.OsseaConfig{}
	msg := foundMessage(cfg, []orphan{{id: "v1", attachedTo: "vm-9"}, {id: "v2"}})
	for _, want := range []string{"2 volume(s)", "v1 (attached to VM vm-9)", "v2", "orphanPolicy Report leaves them", "orphanPolicy: Delete"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	cfg.Spec.OrphanPolicy = osseav1.OrphanDelete
	var many []orphan
	for i := range 12 {
		many = append(many, orphan{id: fmt.Sprintf("v%d", i)})
	}
	msg = foundMessage(cfg, many)
	for _, want := range []string{"12 volume(s)", "and 2 more", "detached and orphaned for 24h0m0s", "attached ones are left alone"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
}

// Every volume the manager makes carries the cluster and the config it was made through.
func TestVolumeTagsNameTheClusterAndConfig(t *testing.T) {
	mv := &osseav1.MigrationVolume{}
	mv.Namespace, mv.Name, mv.UID = "team-a", "web-disk0", "uid-1"
	mv.Spec.OsseaConfigRef.Name = "ossea"
	tags := volumeTags(mv, "cluster-1")
	if tags[TagCluster] != "cluster-1" || tags[TagConfig] != "team-a/ossea" || tags[TagUID] != "uid-1" || tags[TagOwner] != "team-a/web-disk0" {
		t.Errorf("tags = %v", tags)
	}
}
