package controllers

import (
	"time"

	"k8s.io/apimachinery/pkg/types"

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
	// estimateDecay is how much an estimate shrinks when a job ends without a miss, at
	// most once per decayPeriod, so that it follows jobs that got faster, slowly enough
	// that jobs started together do not all miss together.
	estimateDecay = 0.98
	decayPeriod   = 10 * time.Second
)

// The memory learns how long each kind of CloudStack job takes for each OsseaConfig, so
// that a job is polled about once, just after it is likely done, instead of every few
// hundred milliseconds from the start. It aims a little late rather than early: a job that
// was still running at its first poll raises the estimate to 5% above the middle of what
// that job was seen to take; a job done at its first poll shrinks it by 2%, at most once every
// 10s (so an idle minute shrinks nothing).

type jobEstimate struct {
	d       time.Duration
	decayed time.Time
}

// jobRun is what this process knows of a job it started.
type jobRun struct {
	// job is the job as status records it, or was to record it.
	job osseav1.PendingJob
	// volumeID is the volume it works on; vmID the VM an attach attaches to.
	volumeID, vmID string
	estimateKey    string
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

func estimateKey(mv *osseav1.MigrationVolume, op string) string {
	return mv.Namespace + "/" + mv.Spec.OsseaConfigRef.Name + "/" + op
}

// run returns the record of the job if this process started it. m.mu is held.
func (m *volumeMemory) run(uid types.UID, job *osseav1.PendingJob) *jobRun {
	if v := m.volumes[uid]; v != nil && v.job != nil && v.job.job.ID == job.ID {
		return v.job
	}
	return nil
}

// startOf is when the job started, as best known. m.mu is held.
func (m *volumeMemory) startOf(run *jobRun, job *osseav1.PendingJob) time.Time {
	if run != nil {
		return run.started
	}
	return job.StartedAt.Time
}

// firstPoll says how long to wait before looking at a job for the first time.
func (m *volumeMemory) firstPoll(mv *osseav1.MigrationVolume, job *osseav1.PendingJob) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	est := initialJobEstimate
	if e := m.estimates[estimateKey(mv, job.Operation)]; e != nil {
		est = e.d
	}
	run := m.run(mv.UID, job)
	return m.schedule(run, max(est-m.now().Sub(m.startOf(run, job)), time.Millisecond))
}

// schedule notes when the job is due to be polled and returns how long to wait until then.
// m.mu is held.
func (m *volumeMemory) schedule(run *jobRun, after time.Duration) time.Duration {
	if run != nil {
		run.next = m.now().Add(after)
	}
	return after
}

// notYet says how long a reconcile that came before the job's poll is due should wait;
// zero when it is due (or the job is not one this process is timing).
func (m *volumeMemory) notYet(uid types.UID, job *osseav1.PendingJob) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	if run := m.run(uid, job); run != nil {
		return max(run.next.Sub(m.now()), 0)
	}
	return 0
}

// missed reports how many polls of a job this process started found it running; -1 for a
// job it did not start, whose history it does not know.
func (m *volumeMemory) missed(uid types.UID, job *osseav1.PendingJob) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if run := m.run(uid, job); run != nil {
		return run.misses
	}
	return -1
}

// stillRunning records a poll that found the job running and says when to look again: a
// fifth of the time it has run so far, so a job that is much slower than expected is not
// polled at the pace of a fast one, and one just missed is looked at again soon.
func (m *volumeMemory) stillRunning(uid types.UID, job *osseav1.PendingJob) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	run := m.run(uid, job)
	elapsed := m.now().Sub(m.startOf(run, job))
	if run != nil {
		run.misses++
		run.lastMiss = elapsed
	}
	return m.schedule(run, min(max(elapsed/5, minRepoll), maxRepoll))
}

// learn adjusts the estimate of the run's kind of job, now that it has ended. m.mu is held.
func (m *volumeMemory) learn(run *jobRun) {
	now := m.now()
	e := m.estimates[run.estimateKey]
	if e == nil {
		e = &jobEstimate{d: initialJobEstimate, decayed: now}
		m.estimates[run.estimateKey] = e
	}
	if run.misses > 0 {
		// It ran longer than lastMiss and at most until now.
		seen := (run.lastMiss + now.Sub(run.started)) / 2
		e.d = max(e.d, seen*21/20)
		e.decayed = now
	} else if now.Sub(e.decayed) >= decayPeriod {
		e.d = time.Duration(float64(e.d) * estimateDecay)
		e.decayed = now
	}
	e.d = min(max(e.d, minJobEstimate), maxJobEstimate)
}
