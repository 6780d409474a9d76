package world

import (
	"strings"
	"testing"
	"time"

	"github.com/migratekit/ossea-operator/internal/cloudsim"
)

// TestHandoffRules feeds HandoffRules a made-up job log and calls: the right order passes,
// and each way of breaking a rule is named.
func TestHandoffRules(t *testing.T) {
	const (
		oma    = "9c1e4b7d-2a6f-4d3c-8e5b-000000000001"
		target = "5e7a1c2d-3b4f-4a5e-8d6c-000000000001"
		other  = "5e7a1c2d-3b4f-4a5e-8d6c-000000000002"
		vol    = "5d1b6c8e-2f0a-4b8e-9d3c-7a6b5c4d3e2f"
		holder = "6e2c7d9f-3a1b-4c9f-8e4d-8b7c6d5e4f30"
	)
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	seq := int64(0)
	job := func(cmd string, made, done float64, ok bool, params ...string) cloudsim.Job {
		seq++
		j := cloudsim.Job{ID: cmd + "-" + string(rune('a'+seq)), Seq: seq, Command: cmd, Created: at(made), Params: map[string]string{}}
		for i := 0; i+1 < len(params); i += 2 {
			j.Params[params[i]] = params[i+1]
		}
		if done >= 0 {
			c := at(done)
			j.Completed, j.Status = &c, 2
			if ok {
				j.Status = 1
			}
		}
		return j
	}
	// The right order: on the OMA, detached, attached to the target (after a failed try at
	// the placeholder's detach, which moves nothing), then tagged.
	good := []cloudsim.Job{
		job("attachVolume", 0, 1, true, "id", vol, "virtualmachineid", oma),
		job("detachVolume", 10, 11, true, "id", vol),
		job("createTags", 12, 13, true, "resourcetype", "Volume", "resourceids", holder, "tags[0].key", "ossea.migratekit.io/replaced-by", "tags[0].value", vol),
		job("detachVolume", 14, 15, false, "id", holder),
		job("detachVolume", 16, 17, true, "id", holder),
		job("attachVolume", 18, 19, true, "id", vol, "virtualmachineid", target, "deviceid", "0"),
		job("createTags", 20, 21, true, "resourcetype", "Volume", "resourceids", vol, "tags[0].key", HandoffKey, "tags[0].value", target),
	}
	goodCalls := []VolumeCall{
		{Command: "attachVolume", VolumeID: vol, VMID: oma, At: at(0)},
		{Command: "detachVolume", VolumeID: vol, At: at(10)},
		{Command: "detachVolume", VolumeID: holder, At: at(14)},
		{Command: "detachVolume", VolumeID: holder, At: at(16)},
		{Command: "attachVolume", VolumeID: vol, VMID: target, At: at(18)},
	}
	r := HandoffRules{OMAs: map[string]bool{oma: true}, Targets: map[string]bool{target: true, other: true}, Foreign: map[string]bool{holder: true}}
	if p := r.Check(good, goodCalls, nil); len(p) != 0 {
		t.Fatalf("the right order: %q; want nothing", p)
	}

	cases := map[string]struct {
		jobs  []cloudsim.Job
		calls []VolumeCall
		seen  map[string]time.Time
		want  string
	}{
		"attach while the detach runs": {
			jobs:  good[:2],
			calls: []VolumeCall{{Command: "attachVolume", VolumeID: vol, VMID: target, At: at(10.5)}},
			want:  "while it was still attached to OMA VM " + oma,
		},
		"attach refused after a failed detach": {
			jobs:  []cloudsim.Job{good[0], job("detachVolume", 10, 11, false, "id", vol)},
			calls: []VolumeCall{{Command: "attachVolume", VolumeID: vol, VMID: target, At: at(12)}},
			want:  "no detach from it had succeeded",
		},
		"attach of a volume never on the OMA": {
			calls: []VolumeCall{{Command: "attachVolume", VolumeID: vol, VMID: target, At: at(1)}},
			want:  "before it was ever attached to an OMA VM",
		},
		"an attach to another target while on one": {
			jobs:  good,
			calls: []VolumeCall{{Command: "attachVolume", VolumeID: vol, VMID: other, At: at(30)}},
			want:  "while it was attached to VM " + target,
		},
		"detach after the attach to the target": {
			jobs:  good[:6],
			calls: []VolumeCall{{Command: "detachVolume", VolumeID: vol, At: at(19.5)}},
			want:  "detachVolume of handed-off volume " + vol + " at 12:00:19.500: it was attached to target",
		},
		"delete after the tag": {
			jobs: append(good[:1:1], job("createTags", 20, 21, true, "resourcetype", "Volume", "resourceids", "x,"+vol,
				"tags[0].key", HandoffKey, "tags[0].value", target)),
			calls: []VolumeCall{{Command: "deleteVolume", VolumeID: vol, At: at(22)}},
			want:  "it was tagged " + HandoffKey,
		},
		"delete after status.handoff was seen": {
			calls: []VolumeCall{{Command: "deleteVolume", VolumeID: strings.ToUpper(vol), At: at(40)}},
			seen:  map[string]time.Time{vol: at(39)},
			want:  "status.handoff at 12:00:39.000",
		},
		"delete of a placeholder": {
			calls: []VolumeCall{{Command: "deleteVolume", VolumeID: holder, At: at(40)}},
			want:  "which the world began with",
		},
	}
	for name, tc := range cases {
		got := strings.Join(r.Check(tc.jobs, tc.calls, tc.seen), "\n")
		if !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q; want %q", name, got, tc.want)
		}
	}
	// An attach asked again after one whose reply was lost is refused by CloudStack, and
	// counted at the end; a detach before the hand-off, or an attach to an OMA VM, is not
	// these rules' business.
	if p := r.Check(good, []VolumeCall{{Command: "attachVolume", VolumeID: vol, VMID: target, At: at(19.5)}}, nil); len(p) != 0 {
		t.Errorf("an attach repeated once the first was done: %q; want nothing", p)
	}
	if p := r.Check(good[:1], []VolumeCall{{Command: "detachVolume", VolumeID: vol, At: at(5)},
		{Command: "attachVolume", VolumeID: vol, VMID: oma, At: at(6)}}, map[string]time.Time{vol: at(50)}); len(p) != 0 {
		t.Errorf("before the hand-off: %q; want nothing", p)
	}
	if n := SuccessfulAttaches(good, target); n[vol] != 1 || len(n) != 1 {
		t.Errorf("successful attaches to the target: %v; want %s once", n, vol)
	}
}
