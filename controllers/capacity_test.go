package controllers

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// cacheShows is a cache that shows the objects attached, object x with volume vol-x.
func cacheShows(uids ...string) func() (map[types.UID]string, error) {
	return func() (map[types.UID]string, error) {
		out := map[types.UID]string{}
		for _, uid := range uids {
			out[types.UID(uid)] = "vol-" + uid
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

// TestDecisionSlotWaking: whom a freed slot wakes (slot_waking.go): the oldest waiters, as
// many as the count shows free, none holding a slot already.
func TestDecisionSlotWaking(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w := func(name string, since, created time.Duration, limit int, holding bool) slotWaiter {
		return slotWaiter{key: types.NamespacedName{Namespace: "ns", Name: name}, since: t0.Add(since), created: t0.Add(created), limit: limit, holding: holding}
	}
	cases := []struct {
		name    string
		waiters []slotWaiter
		used    int
		want    []string
	}{
		{name: "no waiters", used: 3},
		{name: "one free, three waiting: the oldest", used: 15,
			waiters: []slotWaiter{w("c", 3, 0, 16, false), w("a", 1, 0, 16, false), w("b", 2, 0, 16, false)}, want: []string{"a"}},
		{name: "three free, five waiting: the three oldest", used: 13,
			waiters: []slotWaiter{w("e", 5, 0, 16, false), w("d", 4, 0, 16, false), w("c", 3, 0, 16, false), w("b", 2, 0, 16, false), w("a", 1, 0, 16, false)},
			want:    []string{"a", "b", "c"}},
		{name: "full again (the slot already taken): nobody", used: 16,
			waiters: []slotWaiter{w("a", 1, 0, 16, false)}},
		{name: "over the limit (lowered later): nobody", used: 18,
			waiters: []slotWaiter{w("a", 1, 0, 16, false)}},
		{name: "more free than waiting: all", used: 2,
			waiters: []slotWaiter{w("b", 2, 0, 16, false), w("a", 1, 0, 16, false)}, want: []string{"a", "b"}},
		{name: "a waiter holding a slot is attaching: the next one is woken", used: 15,
			waiters: []slotWaiter{w("a", 1, 0, 16, true), w("b", 2, 0, 16, false)}, want: []string{"b"}},
		{name: "same waiting time: the older object first", used: 15,
			waiters: []slotWaiter{w("b", 1, 1, 16, false), w("a", 1, 2, 16, false)}, want: []string{"b"}},
		{name: "same times: by name", used: 15,
			waiters: []slotWaiter{w("b", 1, 1, 16, false), w("a", 1, 1, 16, false)}, want: []string{"a"}},
		{name: "two configs of one VM, different limits: each counts against its own", used: 5,
			waiters: []slotWaiter{w("a", 1, 0, 6, false), w("b", 2, 0, 6, false), w("c", 3, 0, 8, false), w("d", 4, 0, 8, false)},
			want:    []string{"a", "c", "d"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, key := range waitersToWake(tc.waiters, tc.used) {
				got = append(got, key.Name)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("woken %v, want %v", got, tc.want)
			}
		})
	}
}

// TestDecisionSlotUnmanagedDisks: a confirmation that finds data disks the operator does
// not manage makes the count from the cache include them, so that the volumes waiting
// after it see the VM full without asking CloudStack, until unmanagedTTL has passed.
func TestDecisionSlotUnmanagedDisks(t *testing.T) {
	const limit = 4
	cases := []struct {
		name    string
		inCloud []string // what the first confirmation lists
		later   time.Duration
		// what the next object asking, z, gets from the count alone
		want slotClaim
	}{
		{name: "a foreign disk takes the last slot: the next waiter sees full", inCloud: []string{"vol-b", "vol-c", "foreign"},
			want: slotClaim{used: 4}},
		{name: "no foreign disk: the count is the cache's", inCloud: []string{"vol-b", "vol-c"},
			want: slotClaim{used: 3, held: true, confirm: true}},
		{name: "the foreign disk is forgotten after its time: asked again", inCloud: []string{"vol-b", "vol-c", "foreign"},
			later: 2 * DefaultUnmanagedTTL, want: slotClaim{used: 3, held: true, confirm: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, clock := testMemory()
			c, err := m.holdSlot("a", "vm", "vol-a", limit, cacheShows("b", "c"))
			if err != nil || !c.held || !c.confirm {
				t.Fatalf("a asking: %+v %v", c, err)
			}
			// a's slot is confirmed (3 of 4 at most) and stays held while it attaches.
			if used, ok := m.confirmSlot("a", "vm", limit, c.used, tc.inCloud); !ok || used != len(tc.inCloud) {
				t.Fatalf("a's confirmation: %d %v", used, ok)
			}
			clock.t = clock.t.Add(tc.later)
			got, err := m.holdSlot("z", "vm", "vol-z", limit, cacheShows("b", "c"))
			if err != nil || got != tc.want {
				t.Fatalf("z asking: %+v %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// TestDecisionSlotForeignDiskAndAttachesInFlight: CloudStack does not list the attaches
// still running, the cache does; a disk the operator does not manage comes on top of both,
// not instead of them (the count once took the larger of the two and overfilled the VM).
func TestDecisionSlotForeignDiskAndAttachesInFlight(t *testing.T) {
	m, _ := testMemory()
	// b, c, d attached or being attached (the cache shows them); CloudStack lists b and a
	// foreign disk: c's and d's attach jobs run.
	shown := cacheShows("b", "c", "d")
	c, err := m.holdSlot("a", "vm", "vol-a", 5, shown)
	if err != nil || !c.held || !c.confirm || c.used != 3 {
		t.Fatalf("a asking: %+v %v", c, err)
	}
	// b, c, d and the foreign disk: 4 of 5 used, so a fits...
	used, ok := m.confirmSlot("a", "vm", 5, c.used, []string{"vol-b", "foreign"})
	if !ok || used != 4 {
		t.Fatalf("confirmation: used %d held %v; want 4 and held", used, ok)
	}
	// ... and the next one, with a's slot held, does not, from the count alone.
	if z, _ := m.holdSlot("z", "vm", "vol-z", 5, shown); z.held || z.used != 5 {
		t.Fatalf("z asking: %+v; want refused, 5 used", z)
	}
}

// TestDecisionSlotRecheck: how long a volume refused a slot waits before counting again.
func TestDecisionSlotRecheck(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name   string
		waited time.Duration
		drift  time.Duration
		want   time.Duration
	}{
		{name: "just began: the minimum", waited: 0, drift: 5 * time.Minute, want: slotRecheckMin},
		{name: "waited a while: as long again", waited: 40 * time.Second, drift: 5 * time.Minute, want: 40 * time.Second},
		{name: "waited long: the drift interval", waited: time.Hour, drift: 5 * time.Minute, want: 5 * time.Minute},
		{name: "no drift interval: the maximum", waited: time.Hour, want: slotRecheckMax},
		{name: "a drift interval below the minimum wins", waited: 0, drift: time.Second, want: time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mv := memVolume("a")
			mv.Status.Conditions = []metav1.Condition{{Type: osseav1.ConditionAttached, Status: metav1.ConditionFalse,
				Reason: osseav1.ReasonCapacityExhausted, LastTransitionTime: metav1.NewTime(now.Add(-tc.waited))}}
			r := &MigrationVolumeReconciler{DriftInterval: tc.drift}
			if got := r.slotRecheck(mv, now); got != tc.want {
				t.Fatalf("recheck after %s, want %s", got, tc.want)
			}
		})
	}
}
