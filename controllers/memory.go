package controllers

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudstack"
)

// volumeMemory is what this manager process knows of each MigrationVolume beyond its
// status, in one place and under one lock:
//
//   - the CloudStack job it started on the object's volume and has not seen end, with when
//     to poll it (see jobtiming.go). It is kept even when the status write that was to
//     record the job was refused (the optimistic lock fails when the object changed
//     meanwhile, for instance because it is being deleted), so that the job is resumed,
//     and the volume never detached or deleted under it, from memory and not only from
//     status;
//   - the data-disk slot it holds for an attach that the cache does not show yet (see
//     capacity.go);
//   - whether what status records of the volume may no longer hold in CloudStack (a call
//     or a job failed, drift was seen): such a volume is read before the next decision,
//     the others are trusted as recorded, which saves a read per step;
//   - whether the object was seen being deleted, so that a pass over an older cached copy
//     starts nothing;
//   - whether every job on the volume since its attach is one this process started and
//     saw end, with no call of unknown outcome in between (see knowsEveryJob);
//   - whether CloudStack answered the last create this process sent that brought back no
//     job id (see lostCreateSettled);
//   - the create job it left running when it tagged the new volume at once (see
//     tagAtOnce), until it is seen to end: it too must end before a detach or delete.
//
// Each code path makes one call on it, one of the transitions below. A restarted manager
// starts with an empty memory and resumes from status.pendingJob. No CloudStack or API
// server call is ever made under its lock.
type volumeMemory struct {
	mu  sync.Mutex
	now func() time.Time
	// lostCreateGrace: see lostCreateSettled.
	lostCreateGrace time.Duration
	// volumes holds a record only while there is something to remember.
	volumes map[types.UID]*volumeRecord
	// estimates are how long each kind of job takes, by config and operation.
	estimates map[string]*jobEstimate
	// vms holds, by VM id, the data disks not the operator's that a slot confirmation
	// found (see capacity.go), for unmanagedTTL.
	vms          map[string]*vmSlots
	unmanagedTTL time.Duration
}

type volumeRecord struct {
	job        *jobRun
	create     *jobRun // see createLeftRunning
	slot       *slotHold
	stale      bool
	deleting   bool
	everyJobOf bool // see knowsEveryJob
	// createAnswered: see lostCreateSettled.
	createAnswered bool
	// holdUntil: see heldOff.
	holdUntil time.Time
}

func (v *volumeRecord) empty() bool {
	return v.job == nil && v.create == nil && v.slot == nil && !v.stale && !v.deleting && !v.everyJobOf && !v.createAnswered &&
		v.holdUntil.IsZero()
}

func newVolumeMemory() *volumeMemory {
	return &volumeMemory{
		now: time.Now, lostCreateGrace: DefaultLostCreateGrace,
		volumes: map[types.UID]*volumeRecord{}, estimates: map[string]*jobEstimate{},
		vms: map[string]*vmSlots{}, unmanagedTTL: DefaultUnmanagedTTL,
	}
}

// DefaultUnmanagedTTL is how long data disks that are not the operator's, found on a VM by
// a slot confirmation, count for its slots without CloudStack being asked again. The
// manager uses its drift interval.
const DefaultUnmanagedTTL = 5 * time.Minute

// record returns the object's record, made if there is none. m.mu is held.
func (m *volumeMemory) record(uid types.UID) *volumeRecord {
	v := m.volumes[uid]
	if v == nil {
		v = &volumeRecord{}
		m.volumes[uid] = v
	}
	return v
}

// tidy drops a record that holds nothing any more. m.mu is held.
func (m *volumeMemory) tidy(uid types.UID) {
	if v := m.volumes[uid]; v != nil && v.empty() {
		delete(m.volumes, uid)
	}
}

// jobStarted records a job this process has just started on the object's volume; the
// CloudStack call that started it has answered. vmID is the VM an attach attaches to.
func (m *volumeMemory) jobStarted(mv *osseav1.MigrationVolume, job *osseav1.PendingJob, volumeID, vmID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := m.record(mv.UID)
	v.job = &jobRun{
		job: *job.DeepCopy(), volumeID: volumeID, vmID: vmID,
		estimateKey: estimateKey(mv, job.Operation), started: m.now(),
	}
	v.createAnswered = false
}

// DefaultLostCreateGrace is how long after its intent is recorded a create may still land
// in CloudStack. The first half is the window in which the create may be sent at all (its
// call's deadline, see createSendWindow), the second room for a CloudStack, or a proxy
// before it, that holds a request a while before acting on it. The manager sets it to
// twice its request timeout.
const DefaultLostCreateGrace = 2 * cloudstack.DefaultRequestTimeout

// createSendWindow is how long after its intent is recorded a create may be sent: the
// create call's deadline, rate-limit wait included.
func (m *volumeMemory) createSendWindow() time.Duration { return m.lostCreateGrace / 2 }

// createFailed records a create this process sent that brought back no job id, its intent
// kept; answered says whether CloudStack itself answered (see cloudstack.Answered).
func (m *volumeMemory) createFailed(uid types.UID, answered bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.record(uid).createAnswered = answered
}

// lostCreateSettled reports whether a lookup that finds no volume for the create intent
// recorded at intentAt proves that the create was not carried out and never will be; if
// not, wait says when it will. CloudStack's own answer to this process settles it at once.
// A create whose answer never came (a lost reply, a timeout, or one sent by a process that
// died) may still land: a second create after a look too early would leave the object two
// volumes. Such a create is settled once the grace after its intent has passed; the
// intent is recorded on the object, so a manager killed and started again does not start
// the wait over.
func (m *volumeMemory) lostCreateSettled(uid types.UID, intentAt time.Time) (settled bool, wait time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v := m.volumes[uid]; v != nil && v.createAnswered {
		return true, 0
	}
	if left := m.lostCreateGrace - m.now().Sub(intentAt); left > 0 {
		return false, left
	}
	return true, 0
}

// jobDone records a job seen finished well. reread says that its result did not show the
// volume as the job left it, so the volume is read before the next decision. A slot held
// for an attach stays held until the cache shows the volume attached.
func (m *volumeMemory) jobDone(uid types.UID, job *osseav1.PendingJob, reread bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := m.record(uid)
	if job.Operation == opAttach && v.job != nil && v.job.job.ID == job.ID && !v.stale {
		v.everyJobOf = true
	}
	m.endJob(v, job)
	v.stale = v.stale || reread
	m.tidy(uid)
}

// jobFailed records a job seen failed: CloudStack's view of the volume is read before the
// next decision, and the slot an attach held is given back.
func (m *volumeMemory) jobFailed(uid types.UID, job *osseav1.PendingJob) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := m.record(uid)
	m.endJob(v, job)
	v.stale, v.everyJobOf = true, false
	if job.Operation == opAttach {
		v.slot = nil
	}
}

// jobLost records a job that will never be heard of again: CloudStack forgot it, or the
// volume it worked on is gone. It teaches nothing about job durations; the volume is read
// before the next decision, and a slot held for it is given back (status, which names the
// VM while the attach was under way, still counts it until the read says where it is).
func (m *volumeMemory) jobLost(uid types.UID, job *osseav1.PendingJob) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := m.record(uid)
	if v.job != nil && v.job.job.ID == job.ID {
		v.job = nil
	}
	v.stale, v.everyJobOf = true, false
	v.slot = nil
}

// endJob drops the record's job if it is this one, and learns from how long it took. m.mu
// is held.
func (m *volumeMemory) endJob(v *volumeRecord, job *osseav1.PendingJob) {
	if v.job == nil || v.job.job.ID != job.ID {
		// Not a job this process started (it restarted meanwhile): its elapsed time
		// includes the downtime and teaches nothing.
		return
	}
	m.learn(v.job)
	v.job = nil
}

// createLeftRunning moves the create job this process is waiting for aside: the volume was
// tagged without waiting for it (see tagAtOnce), and the tag job is the one in status now.
// The create is still a job this process started and has not seen end (rule (b)).
func (m *volumeMemory) createLeftRunning(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := m.record(uid)
	if v.job != nil && v.job.job.Operation == opCreate {
		v.create, v.job = v.job, nil
	}
}

// createRunning returns the create job left running, if this process has one on the
// object's volume.
func (m *volumeMemory) createRunning(uid types.UID) (jobRun, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v := m.volumes[uid]; v != nil && v.create != nil {
		return *v.create, true
	}
	return jobRun{}, false
}

// createEnded records that the create job left running has ended.
func (m *volumeMemory) createEnded(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v := m.volumes[uid]; v != nil {
		v.create = nil
		m.tidy(uid)
	}
}

// forget lets the object go: nothing of it is left in CloudStack that this process acts on.
func (m *volumeMemory) forget(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.volumes, uid)
}

// unfinished returns the job this process started on the object's volume and has not seen
// end, and whether there is one.
func (m *volumeMemory) unfinished(uid types.UID) (jobRun, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v := m.volumes[uid]; v != nil && v.job != nil {
		return *v.job, true
	}
	return jobRun{}, false
}

// markStale notes that the volume must be read before the next decision: a call failed
// (CloudStack may have acted anyway) or drift was seen.
func (m *volumeMemory) markStale(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := m.record(uid)
	v.stale, v.everyJobOf = true, false
}

// lostReplyHold is how long the decisions on a volume wait after a call on it got no
// reply: about a CloudStack job's duration (see initialJobEstimate).
const lostReplyHold = initialJobEstimate

// lostReply records a call on the volume whose reply never came. CloudStack may have acted
// and started a job whose change a read would not show yet; a pass that read and decided at
// once would send the call again, and each such pass (its own status write wakes the next)
// fails and lengthens the retry backoff. So the volume is read again, but only once that
// job could have ended (see heldOff).
func (m *volumeMemory) lostReply(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := m.record(uid)
	v.stale, v.everyJobOf = true, false
	v.holdUntil = m.now().Add(lostReplyHold)
}

// heldOff says how long a pass over the object should wait before deciding anything (see
// lostReply); zero when it need not.
func (m *volumeMemory) heldOff(uid types.UID) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := m.volumes[uid]
	if v == nil || v.holdUntil.IsZero() {
		return 0
	}
	if left := v.holdUntil.Sub(m.now()); left > 0 {
		return left
	}
	v.holdUntil = time.Time{}
	m.tidy(uid)
	return 0
}

// knowsEveryJob reports whether every job on the volume since its attach was started by
// this process, which saw each one end, and no call on the volume had an unknown outcome
// since (an error of any kind, drift, a restart all end it). For such a volume, the volume
// showing a job's change proves that job has ended: the only job that could have made the
// change instead would be one this process does not know of. (The simulator completes a
// job and makes its change at once; CloudStack makes a detach's change in the job's last
// step, after the hypervisor has let the disk go.)
func (m *volumeMemory) knowsEveryJob(uid types.UID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := m.volumes[uid]
	return v != nil && v.everyJobOf && !v.stale
}

// volumeRead notes that the volume was just read, so status is as CloudStack has it.
func (m *volumeMemory) volumeRead(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v := m.volumes[uid]; v != nil {
		v.stale = false
		m.tidy(uid)
	}
}

func (m *volumeMemory) isStale(uid types.UID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := m.volumes[uid]
	return v != nil && v.stale
}

// sawDeleting notes that the object was seen being deleted (by a pass over a copy that
// shows it, or by the API server when a start was about to be sent).
func (m *volumeMemory) sawDeleting(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.record(uid).deleting = true
}

func (m *volumeMemory) isDeleting(uid types.UID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := m.volumes[uid]
	return v != nil && v.deleting
}
