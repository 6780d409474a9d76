package controllers

import (
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

// Table tests of a VM's data-disk slot count (capacity.go, memory.go): what holdSlot,
// confirmSlot and the ends of jobs hand out and give back; memory_test.go's TestSlotCount
// has the cases of a single request. Like all the Decision tests, they need neither the
// API server nor CloudStack: go test ./controllers -run Decision

// TestDecisionSlotHandOut: sequences of holds, job outcomes and releases, then one more
// object, z, asks for a slot on vm: what it gets tells what the sequence left taken.
func TestDecisionSlotHandOut(t *testing.T) {
	attachOf := func(uid string) *osseav1.PendingJob { return pending("attach-"+uid, opAttach) }
	cases := []struct {
		name  string
		limit int
		// steps run against the memory; hold is a helper that holds a slot and fails the
		// test if the answer is not the one wanted.
		steps func(m *volumeMemory, hold func(uid, vm string, limit int, shown []string, want bool))
		shown []string // the objects the cache shows attached to vm when z asks
		want  slotClaim
		// holders are the objects other than z that hold a slot at the end.
		holders []string
	}{
		{name: "free slots", limit: 3, steps: func(*volumeMemory, func(string, string, int, []string, bool)) {},
			want: slotClaim{used: 0, held: true, confirm: false}},
		{name: "held but not attached counts as taken", limit: 3,
			steps: func(m *volumeMemory, hold func(string, string, int, []string, bool)) {
				hold("a", "vm", 3, nil, true)
				hold("b", "vm", 3, nil, true)
			},
			want: slotClaim{used: 2, held: true, confirm: true}, holders: []string{"a", "b"}},
		{name: "full VM: held slots and the cache together", limit: 3, shown: []string{"c"},
			steps: func(m *volumeMemory, hold func(string, string, int, []string, bool)) {
				hold("a", "vm", 3, nil, true)
				hold("b", "vm", 3, nil, true)
			},
			want: slotClaim{used: 3}, holders: []string{"a", "b"}},
		{name: "asking again keeps one slot, not two", limit: 2,
			steps: func(m *volumeMemory, hold func(string, string, int, []string, bool)) {
				hold("a", "vm", 2, nil, true)
				hold("a", "vm", 2, nil, true)
			},
			want: slotClaim{used: 1, held: true, confirm: true}, holders: []string{"a"}},
		{name: "a volume already attached does not take a second slot", limit: 2, shown: []string{"a"},
			steps: func(m *volumeMemory, hold func(string, string, int, []string, bool)) {
				hold("a", "vm", 2, nil, true)
				// The cache now shows a attached; a's attach is retried and asks again.
				hold("a", "vm", 2, []string{"a"}, true)
			},
			// a counts once (from the cache); its hold is dropped as soon as z's count
			// sees the cache show it.
			want: slotClaim{used: 1, held: true, confirm: true}},
		{name: "release frees", limit: 1,
			steps: func(m *volumeMemory, hold func(string, string, int, []string, bool)) {
				hold("a", "vm", 1, nil, true)
				hold("b", "vm", 1, nil, false)
				m.releaseSlot("a")
			},
			want: slotClaim{used: 0, held: true, confirm: true}},
		{name: "a failed attach gives its slot back", limit: 1,
			steps: func(m *volumeMemory, hold func(string, string, int, []string, bool)) {
				hold("a", "vm", 1, nil, true)
				m.jobStarted(memVolume("a"), attachOf("a"), "vol-a", "vm")
				m.jobFailed("a", attachOf("a"))
			},
			want: slotClaim{used: 0, held: true, confirm: true}},
		{name: "a lost attach gives its slot back", limit: 1,
			steps: func(m *volumeMemory, hold func(string, string, int, []string, bool)) {
				hold("a", "vm", 1, nil, true)
				m.jobStarted(memVolume("a"), attachOf("a"), "vol-a", "vm")
				m.jobLost("a", attachOf("a"))
			},
			want: slotClaim{used: 0, held: true, confirm: true}},
		{name: "a finished attach keeps its slot until the cache shows it", limit: 1,
			steps: func(m *volumeMemory, hold func(string, string, int, []string, bool)) {
				hold("a", "vm", 1, nil, true)
				m.jobStarted(memVolume("a"), attachOf("a"), "vol-a", "vm")
				m.jobDone("a", attachOf("a"), false)
			},
			want: slotClaim{used: 1}, holders: []string{"a"}},
		{name: "a failed job other than an attach keeps the slot", limit: 1,
			steps: func(m *volumeMemory, hold func(string, string, int, []string, bool)) {
				hold("a", "vm", 1, nil, true)
				m.jobStarted(memVolume("a"), pending("tag-a", opTag), "vol-a", "")
				m.jobFailed("a", pending("tag-a", opTag))
			},
			want: slotClaim{used: 1}, holders: []string{"a"}},
		{name: "a forgotten object's slot is free", limit: 1,
			steps: func(m *volumeMemory, hold func(string, string, int, []string, bool)) {
				hold("a", "vm", 1, nil, true)
				m.forget("a")
			},
			want: slotClaim{used: 0, held: true, confirm: true}},
		{name: "a refused request gives back the slot held on another VM", limit: 1,
			steps: func(m *volumeMemory, hold func(string, string, int, []string, bool)) {
				hold("a", "vm", 1, nil, true)
				hold("a", "vm-2", 1, []string{"x"}, false)
			},
			want: slotClaim{used: 0, held: true, confirm: true}},
		{name: "a hold moves to the VM asked for last", limit: 1,
			steps: func(m *volumeMemory, hold func(string, string, int, []string, bool)) {
				hold("a", "vm", 1, nil, true)
				hold("a", "vm-2", 1, nil, true)
			},
			want: slotClaim{used: 0, held: true, confirm: true}, holders: []string{"a"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := testMemory()
			hold := func(uid, vm string, limit int, shown []string, want bool) {
				t.Helper()
				c, err := m.holdSlot(types.UID(uid), vm, "vol-"+uid, limit, cacheShows(shown...))
				if err != nil || c.held != want {
					t.Fatalf("%s asking for a slot on %s: %+v %v; want held %v", uid, vm, c, err, want)
				}
			}
			tc.steps(m, hold)
			got, err := m.holdSlot("z", "vm", "vol-z", tc.limit, cacheShows(tc.shown...))
			if err != nil || got != tc.want {
				t.Fatalf("z asking for a slot: %+v %v; want %+v", got, err, tc.want)
			}
			var holders []string
			for _, uid := range []string{"a", "b", "c"} {
				if stateOf(m, types.UID(uid)).slot {
					holders = append(holders, uid)
				}
			}
			if fmt.Sprint(holders) != fmt.Sprint(tc.holders) {
				t.Fatalf("slots held by %v, want %v", holders, tc.holders)
			}
		})
	}
}

// TestDecisionSlotsNeverOverLimit: however many objects ask for a slot on one VM, no more
// are handed out than the VM has free, CloudStack confirming on a nearly full VM as
// reserveSlot does.
func TestDecisionSlotsNeverOverLimit(t *testing.T) {
	cases := []struct {
		limit, attached, askers int
	}{
		{limit: 1, askers: 3},
		{limit: 4, askers: 10},
		{limit: 4, attached: 2, askers: 5},
		{limit: 4, attached: 4, askers: 2},
		{limit: 6, attached: 1, askers: 3},
		{limit: 2, attached: 3, askers: 1}, // more attached than the limit (set lower later)
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("limit %d, %d attached, %d asking", tc.limit, tc.attached, tc.askers), func(t *testing.T) {
			m, _ := testMemory()
			var shown, inCloud []string
			for i := range tc.attached {
				shown = append(shown, fmt.Sprintf("attached-%d", i))
				inCloud = append(inCloud, fmt.Sprintf("vol-attached-%d", i))
			}
			held := 0
			for i := range tc.askers {
				uid := types.UID(fmt.Sprintf("asker-%d", i))
				c, err := m.holdSlot(uid, "vm", "vol-"+string(uid), tc.limit, cacheShows(shown...))
				if err != nil {
					t.Fatal(err)
				}
				ok := c.held
				if ok && c.confirm {
					_, ok = m.confirmSlot(uid, "vm", tc.limit, c.used, inCloud)
				}
				if ok {
					held++
				}
			}
			if want := min(tc.askers, max(tc.limit-tc.attached, 0)); held != want {
				t.Fatalf("%d slots handed out, want %d", held, want)
			}
		})
	}
}

// cacheShows is a cache that shows the objects attached.
func cacheShows(uids ...string) func() (map[types.UID]bool, error) {
	return func() (map[types.UID]bool, error) {
		out := map[types.UID]bool{}
		for _, uid := range uids {
			out[types.UID(uid)] = true
		}
		return out, nil
	}
}

// TestDecisionSlotConfirmWithoutHold: CloudStack's list confirms only a slot the object
// holds on that VM; otherwise the count stands and nothing is held.
func TestDecisionSlotConfirmWithoutHold(t *testing.T) {
	cases := []struct {
		name   string
		holdOn string // the VM the object holds a slot on; "" for none
	}{
		{name: "no hold"},
		{name: "a hold on another VM", holdOn: "vm-2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := testMemory()
			if tc.holdOn != "" {
				if c, err := m.holdSlot("a", tc.holdOn, "vol-a", 4, noneAttached); err != nil || !c.held {
					t.Fatalf("holding: %+v %v", c, err)
				}
			}
			used, ok := m.confirmSlot("a", "vm", 4, 2, nil)
			if used != 2 || ok {
				t.Fatalf("confirmSlot = %d, %v; want 2, false", used, ok)
			}
			if held := stateOf(m, "a").slot; held != (tc.holdOn != "") {
				t.Fatalf("slot held %v afterwards; the hold on another VM is to stay, none to be made", held)
			}
		})
	}
}
