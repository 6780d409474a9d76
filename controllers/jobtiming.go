package controllers

import (
	"sync"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

// Bounds of a job's expected duration. A fresh manager expects a second, about what
// CloudStack's volume jobs take.
const (
	initialJobEstimate = time.Second
	minJobEstimate     = 50 * time.Millisecond
	maxJobEstimate     = 2 * time.Minute
	minRepoll          = 100 * time.Millisecond
	maxRepoll          = 5 * time.Second
	// estimateDecay is how much an estimate shrinks per decayPeriod without a miss, so
	// that it follows jobs that got faster, slowly enough that jobs started together do
	// not all miss together.
	estimateDecay = 0.98
	decayPeriod   = 10 * time.Second
)

// jobTimer learns how long each kind of CloudStack job takes for each OsseaConfig, so that
// a job is polled about once, just after it is likely done, instead of every few hundred
// milliseconds from the start. It aims a little late rather than early: a job that was
// still running at its first poll raises the estimate to 5% above the middle of what that
// job was seen to take; without such a miss, the estimate shrinks by 2% every 10s.
type jobTimer struct {
	mu       sync.Mutex
	estimate map[string]*jobEstimate // by config and operation
	running  map[string]*jobRun      // by job id, for the jobs this process started
}

type jobEstimate struct {
	d       time.Duration
	decayed time.Time
}

// jobRun is what this process knows of a job it started.
type jobRun struct {
	// started is when CloudStack answered the call that started the job: its clock
	// starts no later. (status.pendingJob.startedAt is from before the call, which may
	// have waited for the rate limit.)
	started time.Time
	// misses counts the polls that found it still running; lastMiss is when the last one
	// was, as time since started.
	misses   int
	lastMiss time.Duration
	// next is when the job is to be looked at next. Reconciles come for many reasons (every
	// write to the object is one); only the one at or after next polls.
	next time.Time
}

func newJobTimer() *jobTimer {
	return &jobTimer{estimate: map[string]*jobEstimate{}, running: map[string]*jobRun{}}
}

func timerKey(mv *osseav1.MigrationVolume, op string) string {
	return mv.Namespace + "/" + mv.Spec.OsseaConfigRef.Name + "/" + op
}

// started notes a job this process started, so its first poll can be told from later ones.
func (t *jobTimer) started(jobID string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.running[jobID] = &jobRun{started: time.Now()}
}

// startOf is when the job started, as best known.
func (t *jobTimer) startOf(job *osseav1.PendingJob) time.Time {
	if run := t.running[job.ID]; run != nil {
		return run.started
	}
	return job.StartedAt.Time
}

// firstPoll says when to look at a job for the first time.
func (t *jobTimer) firstPoll(mv *osseav1.MigrationVolume, job *osseav1.PendingJob) ctrl.Result {
	t.mu.Lock()
	defer t.mu.Unlock()
	est := initialJobEstimate
	if e := t.estimate[timerKey(mv, job.Operation)]; e != nil {
		est = e.d
	}
	return t.schedule(job, max(est-time.Since(t.startOf(job)), time.Millisecond))
}

// schedule notes when the job is due to be polled and returns the result that comes back
// then.
func (t *jobTimer) schedule(job *osseav1.PendingJob, after time.Duration) ctrl.Result {
	if run := t.running[job.ID]; run != nil {
		run.next = time.Now().Add(after)
	}
	return ctrl.Result{RequeueAfter: after}
}

// notYet says how long a reconcile that came before the job's poll is due should wait;
// zero when it is due (or the job is not one this process is timing).
func (t *jobTimer) notYet(job *osseav1.PendingJob) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if run := t.running[job.ID]; run != nil {
		return max(time.Until(run.next), 0)
	}
	return 0
}

// missed reports how many polls of a job this process started found it running; -1 for a
// job it did not start, whose history it does not know.
func (t *jobTimer) missed(job *osseav1.PendingJob) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if run := t.running[job.ID]; run != nil {
		return run.misses
	}
	return -1
}

// stillRunning records a poll that found the job running and says when to look again: a
// fifth of the time it has run so far, so a job that is much slower than expected is not
// polled at the pace of a fast one, and one just missed is looked at again soon.
func (t *jobTimer) stillRunning(job *osseav1.PendingJob) ctrl.Result {
	t.mu.Lock()
	defer t.mu.Unlock()
	elapsed := time.Since(t.startOf(job))
	if run := t.running[job.ID]; run != nil {
		run.misses++
		run.lastMiss = elapsed
	}
	return t.schedule(job, min(max(elapsed/5, minRepoll), maxRepoll))
}

// finished records a job seen done (or failed) and adjusts the estimate. Jobs this process
// did not start (it restarted meanwhile) teach nothing: their elapsed time includes the
// downtime.
func (t *jobTimer) finished(mv *osseav1.MigrationVolume, job *osseav1.PendingJob) {
	t.mu.Lock()
	defer t.mu.Unlock()
	run := t.running[job.ID]
	delete(t.running, job.ID)
	if run == nil {
		return
	}
	key := timerKey(mv, job.Operation)
	e := t.estimate[key]
	if e == nil {
		e = &jobEstimate{d: initialJobEstimate, decayed: time.Now()}
		t.estimate[key] = e
	}
	if run.misses > 0 {
		// It ran longer than lastMiss and at most until now.
		seen := (run.lastMiss + time.Since(run.started)) / 2
		e.d = max(e.d, seen*21/20)
		e.decayed = time.Now()
	} else if time.Since(e.decayed) >= decayPeriod {
		e.d = time.Duration(float64(e.d) * estimateDecay)
		e.decayed = time.Now()
	}
	e.d = min(max(e.d, minJobEstimate), maxJobEstimate)
}

// forget drops what is known of a job that will not be polled again.
func (t *jobTimer) forget(jobID string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.running, jobID)
}
