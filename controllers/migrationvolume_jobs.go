package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/log"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudstack"
)

// pollPendingJob looks once at the job in status.pendingJob. It returns nil when the job
// has finished well: its result is recorded and the job cleared, and the caller goes
// straight on to the next step. Whatever went wrong, the volume is read again before
// anything else is decided.
func (r *MigrationVolumeReconciler) pollPendingJob(ctx context.Context, s *volumeScope) error {
	job := s.mv.Status.PendingJob
	if wait := r.mem.notYet(s.mv.UID, job); wait > 0 {
		// Woken by something else (a write to the object) before the poll is due.
		return waitFor(wait)
	}
	switch {
	case job.ID == "":
		// A create whose reply never came: look for what it may have made.
		return r.resolveLostCreate(ctx, s)
	case job.Operation == opCreate || isHandoffOp(job.Operation):
		// (A hand-off step is known to be over only from its job: see handOff.)
		// A new volume is listed, Allocated, from the moment it is created, so only the
		// job can tell that the create has finished.
		return r.queryJob(ctx, s, job)
	case !s.mv.DeletionTimestamp.IsZero() && !(job.Operation == opDetach && r.mem.knowsEveryJob(s.mv.UID)):
		// What comes next is a detach or a delete, which must not be sent while the job
		// runs (rule (b), see migrationvolume_guards.go), and the volume can show the
		// job's change before the job has ended: another job may have made it, one whose
		// reply was lost or that a crashed manager started. Only the job can tell, unless
		// this process knows every job on the volume (the usual teardown's detach).
		return r.queryJob(ctx, s, job)
	}
	return r.pollByRead(ctx, s, job)
}

// pollByRead looks at the volume rather than at the job: a tag, attach or detach shows on
// the volume when its job is done, and reads of many volumes share one listVolumes call
// (see cloudstack's batcher). Only when the change does not show yet is the job itself
// asked, which also tells a failure.
func (r *MigrationVolumeReconciler) pollByRead(ctx context.Context, s *volumeScope, job *osseav1.PendingJob) error {
	vol, err := r.readVolume(ctx, s)
	if err != nil {
		if volumeGone(err) {
			// The job does not matter any more.
			s.mv.Status.PendingJob = nil
			r.mem.jobLost(s.mv.UID, job)
		}
		return err
	}
	if r.jobShows(s, job, vol) {
		r.jobSucceeded(s, job, vol)
		return nil
	}
	if r.mem.missed(s.mv.UID, job) == 0 {
		// The first look came a little early, as it is meant to now and then (see
		// jobtiming.go); the job itself is asked only if the next look fails too.
		return waitFor(r.mem.stillRunning(s.mv.UID, job))
	}
	return r.queryJob(ctx, s, job)
}

// jobShows reports whether the volume shows the job's change.
func (r *MigrationVolumeReconciler) jobShows(s *volumeScope, job *osseav1.PendingJob, vol *cloudstack.Volume) bool {
	switch job.Operation {
	case opTag:
		return len(missingTags(vol.Tags, volumeTags(s.mv, r.ClusterID))) == 0
	case opRetain:
		return vol.Tags[TagRetained] == "true"
	case opRelease:
		return vol.Tags[TagReleasedTo] != ""
	case opAttach:
		return vol.VirtualMachineID == s.cfg.Spec.OMAVirtualMachineID
	case opDetach:
		return !vol.Attached()
	}
	return false
}

// queryJob asks CloudStack about the job itself (queryAsyncJobResult).
func (r *MigrationVolumeReconciler) queryJob(ctx context.Context, s *volumeScope, job *osseav1.PendingJob) error {
	mv := s.mv
	res, err := s.cloud.PollJob(ctx, job.ID)
	if errors.Is(err, cloudstack.ErrNotFound) {
		// CloudStack forgot the job (its jobs are purged after a while): the volume's
		// state is the truth.
		log.FromContext(ctx).Info("Pending job unknown to CloudStack; re-reading the volume", "job", job.ID, "operation", job.Operation)
		mv.Status.PendingJob = nil
		r.mem.jobLost(mv.UID, job)
		return waitFor(time.Millisecond)
	}
	if err != nil {
		return r.cloudError(s, conditionOfOperation(job.Operation), "polling job "+job.ID, err)
	}
	switch res.Status {
	case cloudstack.JobPending:
		return waitFor(r.mem.stillRunning(mv.UID, job))
	case cloudstack.JobSucceeded:
		var vol *cloudstack.Volume
		if res.Volume != nil && res.Volume.ID == mv.Status.VolumeID {
			vol = res.Volume
		}
		r.jobSucceeded(s, job, vol)
		return nil
	}
	mv.Status.PendingJob = nil
	r.mem.jobFailed(mv.UID, job)
	if job.Operation == opAttach {
		mv.Status.AttachedVirtualMachineID = "" // until a read says where the volume is
	}
	return r.jobFailed(ctx, s, job, res.Err)
}

// jobSucceeded records a finished job. vol, when not nil, is the volume as the job left it.
func (r *MigrationVolumeReconciler) jobSucceeded(s *volumeScope, job *osseav1.PendingJob, vol *cloudstack.Volume) {
	mv := s.mv
	stepDuration.WithLabelValues(job.Operation).Observe(time.Since(job.StartedAt.Time).Seconds())
	mv.Status.PendingJob = nil
	mv.Status.LastCloudStackError = nil
	if vol != nil {
		r.recordVolume(s, vol)
	}
	// An attach job's result that did not say where the volume is: read it next.
	seen := vol != nil && mv.Status.AttachedVirtualMachineID != ""
	r.mem.jobDone(mv.UID, job, job.Operation == opAttach && !seen)
	// Events mark outcomes only, one per thing a person waits for: each is a write to the
	// API server, and the conditions show the steps in progress. The volume's creation is
	// told by its attach's event, a teardown's detach by its delete's.
	switch job.Operation {
	case opTag:
		// The job put on exactly the tags that were missing: ownership is proven.
		s.conditions.set(osseav1.ConditionAllocated, metav1.ConditionTrue, osseav1.ReasonCreated,
			fmt.Sprintf("CloudStack volume %s exists and carries its ownership tags", mv.Status.VolumeID))
	case opAttach:
		if seen {
			s.conditions.set(osseav1.ConditionAttached, metav1.ConditionTrue, osseav1.ReasonAttached, fmt.Sprintf(
				"attached to OMA VM %s as device %d", mv.Status.AttachedVirtualMachineID, derefOr(mv.Status.DeviceID, -1)))
			r.event(s, osseav1.ReasonAttached, "Attach", "Attached CloudStack volume %s (%s, %d GiB) to OMA VM %s as device %d",
				mv.Status.VolumeID, volumeName(mv), mv.Spec.SizeGiB, mv.Status.AttachedVirtualMachineID, derefOr(mv.Status.DeviceID, -1))
		}
	case opDetach:
		if !mv.DeletionTimestamp.IsZero() && mv.Spec.DeletionPolicy != osseav1.DeletionPolicyRetain {
			s.detachedFrom = s.cfg.Spec.OMAVirtualMachineID // (a teardown detaches only from there)
			break
		}
		r.event(s, osseav1.EventDetached, "Detach", "Detached CloudStack volume %s", mv.Status.VolumeID)
	case opRetain:
		r.event(s, osseav1.EventRetained, "Delete", "Kept CloudStack volume %s, tagged %s=true", mv.Status.VolumeID, TagRetained)
	case opHandoffDetach:
		r.event(s, osseav1.EventDetached, "Handoff", "Detached CloudStack volume %s from the OMA VM for its hand-off to VM %s", mv.Status.VolumeID, mv.Spec.Handoff.VirtualMachineID)
	case opRelease:
		r.event(s, osseav1.EventReleased, "Delete", "Left CloudStack volume %s on VM %s, tagged %s", mv.Status.VolumeID, mv.Annotations[osseav1.ReleaseToAnnotation], TagReleasedTo)
	}
}

func (r *MigrationVolumeReconciler) jobFailed(ctx context.Context, s *volumeScope, job *osseav1.PendingJob, jobErr error) error {
	mv := s.mv
	log.FromContext(ctx).Info("CloudStack job failed", "job", job.ID, "operation", job.Operation, "error", jobErr.Error())
	switch {
	case job.Operation == opAttach && errors.Is(jobErr, cloudstack.ErrAlreadyAttached):
		// An earlier attach whose reply was lost got there first.
		return waitFor(time.Millisecond)
	case job.Operation == opDetach && errors.Is(jobErr, cloudstack.ErrNotAttached):
		return waitFor(time.Millisecond)
	case job.Operation == opAttach && errors.Is(jobErr, cloudstack.ErrCapacity):
		s.conditions.set(osseav1.ConditionAttached, metav1.ConditionFalse, osseav1.ReasonCapacityExhausted, fmt.Sprintf(
			"OMA VM %s has no free data volume slot; waiting for one to be detached", s.cfg.Spec.OMAVirtualMachineID))
		return waitFor(r.DriftInterval)
	case job.Operation == opCreate && errors.Is(jobErr, cloudstack.ErrTransient):
		// CloudStack allocates the volume before its job runs, so a failed job can leave
		// it behind. Treat it like a lost reply: adopt what is there, else create again.
		mv.Status.VolumeID = ""
		mv.Status.PendingJob = &osseav1.PendingJob{Operation: opCreate, StartedAt: job.StartedAt}
		r.mem.createFailed(mv.UID, true)
	}
	return r.cloudError(s, conditionOfOperation(job.Operation), job.Operation+" job "+job.ID, jobErr)
}

// resolveLostCreate settles a create whose outcome is unknown: adopt what it made, or, once
// no create can still land (see lostCreateSettled), forget the intent so the create is
// tried again; then the caller goes on.
func (r *MigrationVolumeReconciler) resolveLostCreate(ctx context.Context, s *volumeScope) error {
	vol, err := r.findOwnVolume(ctx, s)
	if err != nil {
		var conflict *nameConflictError
		if errors.As(err, &conflict) {
			s.mv.Status.PendingJob = nil
		}
		return r.lookupError(s, "looking for the volume of a lost create", err)
	}
	if vol == nil {
		if settled, wait := r.mem.lostCreateSettled(s.mv.UID, s.mv.Status.PendingJob.StartedAt.Time); !settled {
			log.FromContext(ctx).V(1).Info("No volume yet from a create of unknown outcome; it may still land", "lookAgainIn", wait)
			return waitFor(min(wait, 10*time.Second))
		}
	}
	s.mv.Status.PendingJob = nil
	if vol != nil {
		log.FromContext(ctx).Info("Adopted the volume of a create whose reply was lost", "volumeID", vol.ID)
		r.recordVolume(s, vol)
		r.event(s, osseav1.EventAdopted, "Create", "Adopted CloudStack volume %s, made by a create whose reply was lost", vol.ID)
	}
	return nil
}

func conditionOfOperation(op string) string {
	if op == opAttach || op == opDetach {
		return osseav1.ConditionAttached
	}
	if isHandoffOp(op) {
		return osseav1.ConditionHandedOff
	}
	return osseav1.ConditionAllocated
}
