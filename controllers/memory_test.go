package controllers

import (
	"errors"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

// These tests drive the manager's per-volume memory directly, with a fake clock: no API
// server, no CloudStack.

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func testMemory() (*volumeMemory, *fakeClock) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	m := newVolumeMemory()
	m.now = clock.now
	return m, clock
}

func memVolume(uid string) *osseav1.MigrationVolume {
	return &osseav1.MigrationVolume{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "mv-" + uid, UID: types.UID(uid)},
		Spec:       osseav1.MigrationVolumeSpec{OsseaConfigRef: osseav1.LocalObjectReference{Name: "cfg"}},
	}
}

func pending(id, op string) *osseav1.PendingJob {
	return &osseav1.PendingJob{ID: id, Operation: op}
}

// noneAttached is a cache that shows no volume attached.
func noneAttached() (map[types.UID]string, error) { return map[types.UID]string{}, nil }

// memState is what the memory says of one object.
type memState struct {
	job      string // id of the unfinished job, "" for none
	stale    bool
	deleting bool
	slot     bool
	record   bool // whether a record is kept at all
	// everyJob: this process knows every job on the volume since its attach.
	everyJob bool
}

func stateOf(m *volumeMemory, uid types.UID) memState {
	run, ok := m.unfinished(uid)
	st := memState{stale: m.isStale(uid), deleting: m.isDeleting(uid), everyJob: m.knowsEveryJob(uid)}
	if ok {
		st.job = run.job.ID
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if v := m.volumes[uid]; v != nil {
		st.record, st.slot = true, v.slot != nil
	}
	return st
}

func TestVolumeMemoryTransitions(t *testing.T) {
	mv := memVolume("a")
	attach, tag := pending("job-1", opAttach), pending("job-1", opTag)
	// startAttach holds a slot and starts an attach, as ensureAttached does.
	startAttach := func(m *volumeMemory) {
		if c, err := m.holdSlot(mv.UID, "vm", "vol-a", 4, noneAttached); err != nil || !c.held {
			t.Fatalf("holding a slot: %+v %v", c, err)
		}
		m.jobStarted(mv, attach, "vol-a", "vm")
	}
	cases := []struct {
		name  string
		steps func(m *volumeMemory)
		want  memState
	}{
		{"nothing known", func(*volumeMemory) {}, memState{}},
		{"job started", func(m *volumeMemory) { m.jobStarted(mv, tag, "vol-a", "") }, memState{job: "job-1", record: true}},
		{"attach started holds its slot", startAttach, memState{job: "job-1", slot: true, record: true}},
		{"attach done keeps the slot until the cache shows it", func(m *volumeMemory) {
			startAttach(m)
			m.jobDone(mv.UID, attach, false)
		}, memState{slot: true, record: true, everyJob: true}},
		{"attach done without the volume's new state: read it", func(m *volumeMemory) {
			startAttach(m)
			m.jobDone(mv.UID, attach, true)
		}, memState{stale: true, slot: true, record: true}},
		{"attach done, then read: every job known", func(m *volumeMemory) {
			startAttach(m)
			m.jobDone(mv.UID, attach, true)
			m.volumeRead(mv.UID)
		}, memState{slot: true, record: true, everyJob: true}},
		{"own detach after own attach: every job known", func(m *volumeMemory) {
			startAttach(m)
			m.jobDone(mv.UID, attach, false)
			m.jobStarted(mv, pending("job-2", opDetach), "vol-a", "")
		}, memState{job: "job-2", slot: true, record: true, everyJob: true}},
		{"an attach of another process's: not every job known", func(m *volumeMemory) {
			m.jobDone(mv.UID, attach, false)
		}, memState{}},
		{"a failed call after the attach: not every job known, ever again", func(m *volumeMemory) {
			startAttach(m)
			m.jobDone(mv.UID, attach, false)
			m.markStale(mv.UID)
			m.volumeRead(mv.UID)
		}, memState{slot: true, record: true}},
		{"a job lost after the attach: not every job known", func(m *volumeMemory) {
			startAttach(m)
			m.jobDone(mv.UID, attach, false)
			m.jobStarted(mv, pending("job-2", opDetach), "vol-a", "")
			m.jobLost(mv.UID, pending("job-2", opDetach))
		}, memState{stale: true, record: true}},
		{"a job failed after the attach: not every job known", func(m *volumeMemory) {
			startAttach(m)
			m.jobDone(mv.UID, attach, false)
			m.jobStarted(mv, pending("job-2", opDetach), "vol-a", "")
			m.jobFailed(mv.UID, pending("job-2", opDetach))
		}, memState{stale: true, slot: true, record: true}},
		{"tag done leaves nothing", func(m *volumeMemory) {
			m.jobStarted(mv, tag, "vol-a", "")
			m.jobDone(mv.UID, tag, false)
		}, memState{}},
		{"attach failed gives the slot back and reads the volume", func(m *volumeMemory) {
			startAttach(m)
			m.jobFailed(mv.UID, attach)
		}, memState{stale: true, record: true}},
		{"job lost gives the slot back and reads the volume", func(m *volumeMemory) {
			startAttach(m)
			m.jobLost(mv.UID, attach)
		}, memState{stale: true, record: true}},
		{"the end of another job leaves this process's job", func(m *volumeMemory) {
			m.jobStarted(mv, tag, "vol-a", "")
			m.jobDone(mv.UID, pending("older", opCreate), false)
		}, memState{job: "job-1", record: true}},
		{"a volume read is no longer stale", func(m *volumeMemory) {
			m.markStale(mv.UID)
			m.volumeRead(mv.UID)
		}, memState{}},
		{"drift makes it stale", func(m *volumeMemory) { m.markStale(mv.UID) }, memState{stale: true, record: true}},
		{"seen deleting", func(m *volumeMemory) { m.sawDeleting(mv.UID) }, memState{deleting: true, record: true}},
		{"forgotten: nothing left", func(m *volumeMemory) {
			startAttach(m)
			m.markStale(mv.UID)
			m.sawDeleting(mv.UID)
			m.forget(mv.UID)
		}, memState{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := testMemory()
			tc.steps(m)
			if got := stateOf(m, mv.UID); got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// A job this process started is remembered with what is needed to put it back into
// status, whatever became of the status write that was to record it.
func TestVolumeMemoryRemembersTheJobItStarted(t *testing.T) {
	m, _ := testMemory()
	mv := memVolume("a")
	job := &osseav1.PendingJob{ID: "job-7", Operation: opAttach, StartedAt: metav1.Now()}
	m.jobStarted(mv, job, "vol-a", "vm-1")
	job.ID = "changed by the caller afterwards"
	run, ok := m.unfinished(mv.UID)
	if !ok || run.job.ID != "job-7" || run.job.Operation != opAttach || run.volumeID != "vol-a" || run.vmID != "vm-1" {
		t.Fatalf("unfinished = %+v, %v", run, ok)
	}
	if _, ok := m.unfinished("other"); ok {
		t.Fatal("another object has no job")
	}
}

func TestVolumeMemoryPollTiming(t *testing.T) {
	mv := memVolume("a")
	cases := []struct {
		name string
		// polls says, poll by poll, whether the job was still running; each poll comes at
		// the time the previous answer asked for.
		polls []bool
		// wantFirst is when the first poll is due; wantEstimate the estimate learnt.
		wantFirst, wantEstimate time.Duration
	}{
		{"done at the first poll: the estimate stays", []bool{false}, initialJobEstimate, initialJobEstimate},
		{"missed once: the estimate rises past the middle of what was seen", []bool{true, false}, initialJobEstimate,
			// Missed at 1s, done at the next poll 200ms later: 1.1s seen, +5%.
			1155 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, clock := testMemory()
			job := pending("job-1", opAttach)
			job.StartedAt = metav1.NewTime(clock.now())
			m.jobStarted(mv, job, "vol-a", "vm")
			wait := m.firstPoll(mv, job)
			if wait != tc.wantFirst {
				t.Fatalf("first poll after %v, want %v", wait, tc.wantFirst)
			}
			if wait := m.notYet(mv.UID, job); wait != tc.wantFirst {
				t.Fatalf("a reconcile right away waits %v, want %v", wait, tc.wantFirst)
			}
			for i, running := range tc.polls {
				clock.advance(wait)
				if m.notYet(mv.UID, job) != 0 {
					t.Fatalf("poll %d not due when asked for", i)
				}
				if m.missed(mv.UID, job) != i {
					t.Fatalf("poll %d: %d misses recorded", i, m.missed(mv.UID, job))
				}
				if running {
					wait = m.stillRunning(mv.UID, job)
					continue
				}
				m.jobDone(mv.UID, job, false)
			}
			if e := m.estimates[estimateKey(mv, opAttach)]; e == nil || e.d != tc.wantEstimate {
				t.Fatalf("estimate %+v, want %v", e, tc.wantEstimate)
			}
			if m.missed(mv.UID, job) != -1 {
				t.Fatal("a finished job is still timed")
			}
		})
	}
}

func TestSlotCount(t *testing.T) {
	type other struct {
		vm  string
		age time.Duration
	}
	cases := []struct {
		name    string
		limit   int
		shown   []string         // objects the cache shows attached to the VM
		holds   map[string]other // slots held by other objects, by UID
		inCloud []string         // volumes CloudStack lists on the VM
		// what holdSlot answers, then confirmSlot when asked
		want        slotClaim
		wantUsed    int
		wantHeld    bool
		wantPruned  []string // holds that are gone afterwards
		cloudFailed bool
	}{
		{name: "empty VM", limit: 6, want: slotClaim{held: true}, wantHeld: true},
		{name: "cache and held slots add up", limit: 6, shown: []string{"b", "c"}, holds: map[string]other{"d": {vm: "vm"}},
			want: slotClaim{used: 3, held: true}, wantUsed: 3, wantHeld: true},
		{name: "slots held on another VM do not count", limit: 6, holds: map[string]other{"d": {vm: "vm-2"}},
			want: slotClaim{held: true}, wantHeld: true},
		{name: "a held slot the cache shows counts once and is let go", limit: 6, shown: []string{"b"}, holds: map[string]other{"b": {vm: "vm"}},
			want: slotClaim{used: 1, held: true}, wantUsed: 1, wantHeld: true, wantPruned: []string{"b"}},
		{name: "a held slot past its time is let go", limit: 6, holds: map[string]other{"d": {vm: "vm", age: 2 * reservationTTL}},
			want: slotClaim{held: true}, wantHeld: true, wantPruned: []string{"d"}},
		{name: "full from the cache: no slot, CloudStack not asked", limit: 2, shown: []string{"b"}, holds: map[string]other{"d": {vm: "vm"}},
			want: slotClaim{used: 2}, wantUsed: 2},
		{name: "nearly full: CloudStack confirms", limit: 4, shown: []string{"b", "c"}, inCloud: []string{"vol-b", "vol-c"},
			want: slotClaim{used: 2, held: true, confirm: true}, wantUsed: 2, wantHeld: true},
		{name: "nearly full: a disk the operator does not manage counts", limit: 4, shown: []string{"b", "c"},
			inCloud: []string{"vol-b", "vol-c", "foreign-1"}, want: slotClaim{used: 2, held: true, confirm: true}, wantUsed: 3, wantHeld: true},
		{name: "nearly full: CloudStack full", limit: 4, shown: []string{"b", "c"},
			inCloud: []string{"vol-b", "vol-c", "foreign-1", "foreign-2"}, want: slotClaim{used: 2, held: true, confirm: true}, wantUsed: 4},
		{name: "nearly full: held slots CloudStack does not show yet count", limit: 4, shown: []string{"b"}, holds: map[string]other{"d": {vm: "vm"}, "e": {vm: "vm"}},
			inCloud: []string{"vol-b", "foreign-1"}, want: slotClaim{used: 3, held: true, confirm: true}, wantUsed: 4},
		{name: "this volume's own attachment is not counted", limit: 3, shown: []string{"a", "b"}, inCloud: []string{"vol-a", "vol-b"},
			want: slotClaim{used: 1, held: true, confirm: true}, wantUsed: 1, wantHeld: true},
		{name: "a held slot past exactly its time still counts", limit: 6, holds: map[string]other{"d": {vm: "vm", age: reservationTTL}},
			want: slotClaim{used: 1, held: true}, wantUsed: 1, wantHeld: true},
		{name: "two slots left: CloudStack is asked", limit: 6, shown: []string{"b", "c", "d", "e"}, inCloud: []string{"vol-b", "vol-c", "vol-d", "vol-e"},
			want: slotClaim{used: 4, held: true, confirm: true}, wantUsed: 4, wantHeld: true},
		{name: "three slots left: CloudStack is not asked", limit: 6, shown: []string{"b", "c", "d"},
			want: slotClaim{used: 3, held: true}, wantUsed: 3, wantHeld: true},
		{name: "a limit of one on an empty VM: CloudStack confirms", limit: 1,
			want: slotClaim{held: true, confirm: true}, wantHeld: true},
		{name: "a limit of one, a disk the operator does not manage: no slot", limit: 1, inCloud: []string{"foreign-1"},
			want: slotClaim{held: true, confirm: true}, wantUsed: 1},
		{name: "nearly full: a held slot CloudStack already lists counts once", limit: 4, shown: []string{"b"}, holds: map[string]other{"d": {vm: "vm"}},
			inCloud: []string{"vol-b", "vol-d"}, want: slotClaim{used: 2, held: true, confirm: true}, wantUsed: 2, wantHeld: true},
		{name: "nearly full: CloudStack lists fewer than the cache, the cache's count stands", limit: 4, shown: []string{"b", "c"},
			inCloud: []string{"vol-b"}, want: slotClaim{used: 2, held: true, confirm: true}, wantUsed: 2, wantHeld: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, clock := testMemory()
			for uid, o := range tc.holds {
				c, err := m.holdSlot(types.UID(uid), o.vm, "vol-"+uid, 1000, noneAttached)
				if err != nil || !c.held {
					t.Fatalf("holding %s: %+v %v", uid, c, err)
				}
				m.volumes[types.UID(uid)].slot.at = clock.now().Add(-o.age)
			}
			shown := cacheShows(tc.shown...)
			claim, err := m.holdSlot("a", "vm", "vol-a", tc.limit, shown)
			if err != nil || claim != tc.want {
				t.Fatalf("holdSlot = %+v, %v; want %+v", claim, err, tc.want)
			}
			used, held := claim.used, claim.held
			if claim.confirm {
				used, held = m.confirmSlot("a", "vm", tc.limit, claim.used, tc.inCloud)
			}
			if used != tc.wantUsed || held != tc.wantHeld || stateOf(m, "a").slot != tc.wantHeld {
				t.Fatalf("used %d held %v (slot in memory %v), want %d %v", used, held, stateOf(m, "a").slot, tc.wantUsed, tc.wantHeld)
			}
			for _, uid := range tc.wantPruned {
				if stateOf(m, types.UID(uid)).slot {
					t.Errorf("the slot of %s is still held", uid)
				}
			}
		})
	}
}

// Two workers asking at once for the last slot: the first holds it before anyone asks
// CloudStack, so the second is refused, whatever CloudStack answers them.
func TestSlotCountLastSlotOnce(t *testing.T) {
	m, _ := testMemory()
	shown := cacheShows("b", "c", "d")
	first, err := m.holdSlot("a", "vm", "vol-a", 4, shown)
	if err != nil || !first.held || !first.confirm {
		t.Fatalf("first worker: %+v %v", first, err)
	}
	second, err := m.holdSlot("x", "vm", "vol-x", 4, shown)
	if err != nil || second.held || second.used != 4 {
		t.Fatalf("second worker: %+v %v; want no slot, 4 used", second, err)
	}
	// The first worker's CloudStack answer comes after the second worker asked.
	if used, ok := m.confirmSlot("a", "vm", 4, first.used, []string{"vol-b", "vol-c", "vol-d"}); !ok || used != 3 {
		t.Fatalf("first worker's confirmation: %d %v", used, ok)
	}
	// A slot given back (the attach was not sent) is free again.
	m.releaseSlot("a")
	if again, _ := m.holdSlot("x", "vm", "vol-x", 4, shown); !again.held {
		t.Fatalf("after the release: %+v", again)
	}
}

func TestSlotCountCacheError(t *testing.T) {
	m, _ := testMemory()
	broken := errors.New("cache not synced")
	_, err := m.holdSlot("a", "vm", "vol-a", 4, func() (map[types.UID]string, error) { return nil, fmt.Errorf("listing: %w", broken) })
	if !errors.Is(err, broken) || stateOf(m, "a").slot {
		t.Fatalf("holdSlot with a failing cache: %v, slot %v", err, stateOf(m, "a").slot)
	}
}

// A lookup that finds no volume for a create intent proves nothing while the create may
// still land.
func TestDecisionLostCreateSettled(t *testing.T) {
	mv := memVolume("a")
	cases := []struct {
		name        string
		age         time.Duration // of the intent
		steps       func(m *volumeMemory)
		wantSettled bool
		wantWait    time.Duration
	}{
		{"no answer, intent just recorded", 0, nil, false, DefaultLostCreateGrace},
		{"no answer, intent 10s old", 10 * time.Second, nil, false, DefaultLostCreateGrace - 10*time.Second},
		{"no answer, the grace over", DefaultLostCreateGrace, nil, true, 0},
		{"sent by an earlier process: the intent's age counts, not this process's", DefaultLostCreateGrace + time.Second, nil, true, 0},
		{"CloudStack answered: settled at once", 0, func(m *volumeMemory) { m.createFailed(mv.UID, true) }, true, 0},
		{"no answer after an answer: waits again", time.Second, func(m *volumeMemory) {
			m.createFailed(mv.UID, true)
			m.createFailed(mv.UID, false)
		}, false, DefaultLostCreateGrace - time.Second},
		{"a job started clears the answer", 0, func(m *volumeMemory) {
			m.createFailed(mv.UID, true)
			m.jobStarted(mv, pending("job-1", opCreate), "vol-a", "")
		}, false, DefaultLostCreateGrace},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, clock := testMemory()
			intentAt := clock.now()
			clock.advance(tc.age)
			if tc.steps != nil {
				tc.steps(m)
			}
			settled, wait := m.lostCreateSettled(mv.UID, intentAt)
			if settled != tc.wantSettled || wait != tc.wantWait {
				t.Fatalf("settled %v after %v, want %v after %v", settled, wait, tc.wantSettled, tc.wantWait)
			}
		})
	}
	if m, _ := testMemory(); m.createSendWindow() >= DefaultLostCreateGrace {
		t.Errorf("a create may be sent for %v of a %v grace: no room left for it to land", m.createSendWindow(), DefaultLostCreateGrace)
	}
}

// A call with no reply holds the volume's decisions for about a job's duration, then lets
// go of the record's hold; the volume stays to be read.
func TestVolumeMemoryHoldsOffAfterALostReply(t *testing.T) {
	m, clock := testMemory()
	if w := m.heldOff("a"); w != 0 {
		t.Fatalf("held off %v with nothing lost", w)
	}
	m.lostReply("a")
	if w := m.heldOff("a"); w != lostReplyHold || !m.isStale("a") {
		t.Fatalf("after a lost reply: held off %v (want %v), stale %v", w, lostReplyHold, m.isStale("a"))
	}
	clock.advance(lostReplyHold / 2)
	if w := m.heldOff("a"); w != lostReplyHold/2 {
		t.Fatalf("halfway: held off %v", w)
	}
	clock.advance(lostReplyHold)
	if w := m.heldOff("a"); w != 0 || !m.isStale("a") {
		t.Fatalf("after the hold: held off %v, stale %v (want 0, true)", w, m.isStale("a"))
	}
	m.volumeRead("a")
	if st := stateOf(m, "a"); st.record {
		t.Fatalf("a read after the hold should leave no record: %+v", st)
	}
}
