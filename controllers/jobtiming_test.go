package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Table tests of the job timer (jobtiming.go): when to poll a job and what its duration
// teaches. Like all the Decision tests, they need neither the API server (the package's
// TestMain starts one for the other tests; these never touch it) nor CloudStack:
// go test ./controllers -run Decision

// TestDecisionJobFirstPoll: the first look at a job comes when the estimate for its kind of
// job says it is likely done, counted from when the job started.
func TestDecisionJobFirstPoll(t *testing.T) {
	mv := memVolume("a")
	cases := []struct {
		name string
		// estimate, when set, is what was learnt before for (namespace, config, operation).
		estimate    time.Duration
		estimateFor string // the key's operation; "" for the job's own
		otherConfig bool   // the estimate was learnt for another config of the namespace
		// own: this process started the job (else it learns of it from status only,
		// after a restart); startedAgo is how long before the first look it started.
		own        bool
		startedAgo time.Duration
		want       time.Duration
	}{
		{name: "fresh manager, job just started: the initial second", own: true, want: initialJobEstimate},
		{name: "part of the estimate already gone", own: true, startedAgo: 300 * time.Millisecond, want: 700 * time.Millisecond},
		{name: "a learnt estimate is used", own: true, estimate: 3 * time.Second, want: 3 * time.Second},
		{name: "a learnt estimate, part of it gone", own: true, estimate: 3 * time.Second, startedAgo: time.Second, want: 2 * time.Second},
		{name: "an estimate for another operation does not apply", own: true, estimate: 3 * time.Second, estimateFor: opCreate, want: initialJobEstimate},
		{name: "an estimate for another config does not apply", own: true, estimate: 3 * time.Second, otherConfig: true, want: initialJobEstimate},
		{name: "started longer ago than the estimate: look at once (1ms)", own: true, startedAgo: 5 * time.Second, want: time.Millisecond},
		{name: "exactly the estimate ago: look at once (1ms)", own: true, startedAgo: initialJobEstimate, want: time.Millisecond},
		{name: "a job known from status only: timed from status.startedAt", startedAgo: 400 * time.Millisecond, want: 600 * time.Millisecond},
		{name: "a job known from status only, long running: at once", startedAgo: time.Hour, want: time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, clock := testMemory()
			job := pending("job-1", opAttach)
			job.StartedAt = metav1.NewTime(clock.now())
			if tc.estimate != 0 {
				other := mv.DeepCopy()
				if tc.otherConfig {
					other.Spec.OsseaConfigRef.Name = "other"
				}
				op := tc.estimateFor
				if op == "" {
					op = job.Operation
				}
				m.estimates[estimateKey(other, op)] = &jobEstimate{d: tc.estimate, decayed: clock.now()}
			}
			if tc.own {
				m.jobStarted(mv, job, "vol-a", "vm")
			}
			clock.advance(tc.startedAgo)
			if got := m.firstPoll(mv, job); got != tc.want {
				t.Fatalf("first poll after %v, want %v", got, tc.want)
			}
			// A reconcile that comes before then waits the rest; one for a job this
			// process does not time is never held back.
			wantWait := tc.want
			if !tc.own {
				wantWait = 0
			}
			if got := m.notYet(mv.UID, job); got != wantWait {
				t.Fatalf("a reconcile right now waits %v, want %v", got, wantWait)
			}
		})
	}
}

// TestDecisionJobRepoll: a poll that finds the job still running looks again after a fifth
// of the time the job has run, within [minRepoll, maxRepoll].
func TestDecisionJobRepoll(t *testing.T) {
	mv := memVolume("a")
	cases := []struct {
		name    string
		own     bool
		elapsed time.Duration // since the job started, at the poll
		want    time.Duration
	}{
		{name: "missed at the first second: a fifth later", own: true, elapsed: time.Second, want: 200 * time.Millisecond},
		{name: "missed at once: the floor", own: true, elapsed: 0, want: minRepoll},
		{name: "missed early: a fifth is below the floor", own: true, elapsed: 300 * time.Millisecond, want: minRepoll},
		{name: "at the floor exactly", own: true, elapsed: 5 * minRepoll, want: minRepoll},
		{name: "a slow job is polled at its own pace", own: true, elapsed: 10 * time.Second, want: 2 * time.Second},
		{name: "at the cap exactly", own: true, elapsed: 5 * maxRepoll, want: maxRepoll},
		{name: "a very slow job: the cap", own: true, elapsed: 10 * time.Minute, want: maxRepoll},
		{name: "a job known from status only: same pace, from status.startedAt", elapsed: 10 * time.Second, want: 2 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, clock := testMemory()
			job := pending("job-1", opAttach)
			job.StartedAt = metav1.NewTime(clock.now())
			if tc.own {
				m.jobStarted(mv, job, "vol-a", "vm")
			}
			clock.advance(tc.elapsed)
			if got := m.stillRunning(mv.UID, job); got != tc.want {
				t.Fatalf("next poll after %v, want %v", got, tc.want)
			}
			wantMisses, wantWait := 1, tc.want
			if !tc.own {
				wantMisses, wantWait = -1, 0
			}
			if got := m.missed(mv.UID, job); got != wantMisses {
				t.Fatalf("%d misses recorded, want %d", got, wantMisses)
			}
			if got := m.notYet(mv.UID, job); got != wantWait {
				t.Fatalf("a reconcile right now waits %v, want %v", got, wantWait)
			}
		})
	}
}

// TestDecisionJobEstimate: what the end of a job teaches. A job missed at a poll raises the
// estimate to 5% above the middle of the last miss and the end, never lowering it; a job
// done at its first poll lets the estimate shrink by 2% once per 10s; the estimate stays
// within [minJobEstimate, maxJobEstimate]; a job this process did not start, or that was
// lost, teaches nothing.
func TestDecisionJobEstimate(t *testing.T) {
	mv := memVolume("a")
	type seed struct {
		d          time.Duration
		decayedAgo time.Duration // since the estimate last changed, when the job starts
	}
	cases := []struct {
		name   string
		before *seed // the estimate before the job; nil for none
		own    bool
		// misses are the polls that found the job running, as time since it started; it
		// ends at end, failed or lost.
		misses       []time.Duration
		end          time.Duration
		failed, lost bool
		want         time.Duration // 0: no estimate at all
	}{
		{name: "first job, done at its first poll: the initial second", own: true, end: time.Second, want: initialJobEstimate},
		{name: "missed once, done at the next poll", own: true, misses: []time.Duration{time.Second}, end: 1200 * time.Millisecond,
			want: 1155 * time.Millisecond}, // (1s + 1.2s)/2 + 5%
		{name: "missed three times: the last miss counts", own: true,
			misses: []time.Duration{time.Second, 1200 * time.Millisecond, 1440 * time.Millisecond}, end: 1728 * time.Millisecond,
			want: 1663200 * time.Microsecond}, // (1.44s + 1.728s)/2 + 5%
		{name: "an early miss never lowers the estimate", own: true, misses: []time.Duration{100 * time.Millisecond},
			end: 200 * time.Millisecond, want: initialJobEstimate},
		{name: "a miss raises a learnt estimate", before: &seed{d: 2 * time.Second}, own: true,
			misses: []time.Duration{2 * time.Second}, end: 2400 * time.Millisecond, want: 2310 * time.Millisecond},
		{name: "a miss far past the cap: the cap", own: true, misses: []time.Duration{10 * time.Minute}, end: 11 * time.Minute,
			want: maxJobEstimate},
		{name: "done in time, the estimate changed under 10s ago: unchanged", before: &seed{d: 2 * time.Second, decayedAgo: 5 * time.Second},
			own: true, end: 2 * time.Second, want: 2 * time.Second},
		{name: "done in time, 10s since the estimate changed: 2% less", before: &seed{d: 2 * time.Second, decayedAgo: 8 * time.Second},
			own: true, end: 2 * time.Second, want: 1960 * time.Millisecond},
		{name: "done in time, a minute since: still only 2% less", before: &seed{d: 2 * time.Second, decayedAgo: time.Minute},
			own: true, end: 2 * time.Second, want: 1960 * time.Millisecond},
		{name: "shrinking stops at the floor", before: &seed{d: 51 * time.Millisecond, decayedAgo: time.Minute},
			own: true, end: 51 * time.Millisecond, want: minJobEstimate},
		{name: "a failed job teaches as a finished one", own: true, misses: []time.Duration{time.Second},
			end: 1200 * time.Millisecond, failed: true, want: 1155 * time.Millisecond},
		{name: "a lost job teaches nothing", own: true, misses: []time.Duration{time.Second}, end: 1200 * time.Millisecond, lost: true},
		{name: "a job this process did not start teaches nothing", misses: []time.Duration{time.Second}, end: 5 * time.Second},
		{name: "a job this process did not start leaves a learnt estimate alone", before: &seed{d: 2 * time.Second},
			misses: []time.Duration{time.Minute}, end: 2 * time.Minute, want: 2 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, clock := testMemory()
			key := estimateKey(mv, opAttach)
			if tc.before != nil {
				m.estimates[key] = &jobEstimate{d: tc.before.d, decayed: clock.now().Add(-tc.before.decayedAgo)}
			}
			job := pending("job-1", opAttach)
			start := clock.now()
			job.StartedAt = metav1.NewTime(start)
			if tc.own {
				m.jobStarted(mv, job, "vol-a", "vm")
			}
			for _, at := range tc.misses {
				clock.t = start.Add(at)
				m.stillRunning(mv.UID, job)
			}
			clock.t = start.Add(tc.end)
			switch {
			case tc.failed:
				m.jobFailed(mv.UID, job)
			case tc.lost:
				m.jobLost(mv.UID, job)
			default:
				m.jobDone(mv.UID, job, false)
			}
			var got time.Duration
			if e := m.estimates[key]; e != nil {
				got = e.d
			}
			if got != tc.want {
				t.Fatalf("estimate %v, want %v", got, tc.want)
			}
			if m.missed(mv.UID, job) != -1 {
				t.Fatal("the job is still timed after its end")
			}
		})
	}
}
