package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudstack"
)

// pollPendingJob looks once at the job in status.pendingJob. When it has finished, its
// result is recorded and the job cleared, so the next reconcile moves on; whatever went
// wrong, the volume is read again before anything else is decided.
func (r *MigrationVolumeReconciler) pollPendingJob(ctx context.Context, s *volumeScope) (ctrl.Result, error) {
	mv := s.mv
	job := mv.Status.PendingJob
	if job.ID == "" {
		// A create whose reply never came: look for what it may have made.
		return r.resolveLostCreate(ctx, s)
	}
	res, err := s.cloud.PollJob(ctx, job.ID)
	if errors.Is(err, cloudstack.ErrNotFound) {
		// CloudStack forgot the job (its jobs are purged after a while): the volume's
		// state is the truth.
		log.FromContext(ctx).Info("Pending job unknown to CloudStack; re-reading the volume", "job", job.ID, "operation", job.Operation)
		mv.Status.PendingJob = nil
		r.checked.Delete(mv.UID)
		return ctrl.Result{RequeueAfter: time.Millisecond}, nil
	}
	if err != nil {
		_, _, err := r.cloudError(s, conditionOfOperation(job.Operation), "polling job "+job.ID, err)
		return ctrl.Result{}, err
	}
	switch res.Status {
	case cloudstack.JobPending:
		return pollSoon(job), nil
	case cloudstack.JobSucceeded:
		stepDuration.WithLabelValues(job.Operation).Observe(time.Since(job.StartedAt.Time).Seconds())
		mv.Status.PendingJob = nil
		mv.Status.LastCloudStackError = nil
		r.jobSucceeded(s, job, res.Volume)
		return ctrl.Result{RequeueAfter: time.Millisecond}, nil
	}

	mv.Status.PendingJob = nil
	r.checked.Delete(mv.UID)
	return r.jobFailed(ctx, s, job, res.Err)
}

func (r *MigrationVolumeReconciler) jobSucceeded(s *volumeScope, job *osseav1.PendingJob, vol *cloudstack.Volume) {
	mv := s.mv
	if vol != nil && vol.ID == mv.Status.VolumeID {
		r.recordVolume(s, vol)
	}
	switch job.Operation {
	case opCreate:
		r.event(s, ReasonCreated, "Create", "Created CloudStack volume %s", mv.Status.VolumeID)
	case opTag:
		// ensureTags confirms the tags on the next pass and sets Allocated.
	case opAttach:
		r.checked.Store(mv.UID, time.Now())
		if mv.Status.AttachedVirtualMachineID != "" {
			s.conditions.set(osseav1.ConditionAttached, metav1.ConditionTrue, ReasonAttached, fmt.Sprintf(
				"attached to OMA VM %s as device %d", mv.Status.AttachedVirtualMachineID, derefOr(mv.Status.DeviceID, -1)))
			r.event(s, ReasonAttached, "Attach", "Attached CloudStack volume %s as device %d", mv.Status.VolumeID, derefOr(mv.Status.DeviceID, -1))
		}
	case opDetach:
		r.event(s, "Detached", "Detach", "Detached CloudStack volume %s", mv.Status.VolumeID)
	case opRetain:
		r.event(s, "Retained", "Delete", "Kept CloudStack volume %s, tagged %s=true", mv.Status.VolumeID, TagRetained)
	}
}

func (r *MigrationVolumeReconciler) jobFailed(ctx context.Context, s *volumeScope, job *osseav1.PendingJob, jobErr error) (ctrl.Result, error) {
	mv := s.mv
	log.FromContext(ctx).Info("CloudStack job failed", "job", job.ID, "operation", job.Operation, "error", jobErr.Error())
	switch {
	case job.Operation == opAttach && errors.Is(jobErr, cloudstack.ErrAlreadyAttached):
		// An earlier attach whose reply was lost got there first.
		return ctrl.Result{RequeueAfter: time.Millisecond}, nil
	case job.Operation == opDetach && errors.Is(jobErr, cloudstack.ErrNotAttached):
		return ctrl.Result{RequeueAfter: time.Millisecond}, nil
	case job.Operation == opAttach && errors.Is(jobErr, cloudstack.ErrCapacity):
		s.conditions.set(osseav1.ConditionAttached, metav1.ConditionFalse, ReasonCapacityExhausted, fmt.Sprintf(
			"OMA VM %s has no free data volume slot; waiting for one to be detached", s.cfg.Spec.OMAVirtualMachineID))
		return ctrl.Result{RequeueAfter: r.DriftInterval}, nil
	case job.Operation == opCreate && errors.Is(jobErr, cloudstack.ErrTransient):
		// CloudStack allocates the volume before its job runs, so a failed job can leave
		// it behind. Treat it like a lost reply: adopt what is there, else create again.
		mv.Status.VolumeID = ""
		mv.Status.PendingJob = &osseav1.PendingJob{Operation: opCreate, StartedAt: job.StartedAt}
		_, _, err := r.cloudError(s, osseav1.ConditionAllocated, "create job "+job.ID, jobErr)
		return ctrl.Result{}, err
	}
	res, _, err := r.cloudError(s, conditionOfOperation(job.Operation), job.Operation+" job "+job.ID, jobErr)
	return res, err
}

// resolveLostCreate settles a create whose outcome is unknown: adopt what it made, or
// forget the intent so the create is tried again.
func (r *MigrationVolumeReconciler) resolveLostCreate(ctx context.Context, s *volumeScope) (ctrl.Result, error) {
	vol, err := r.findOwnVolume(ctx, s)
	if err != nil {
		var conflict *nameConflictError
		if errors.As(err, &conflict) {
			s.mv.Status.PendingJob = nil
			r.stall(s, osseav1.ConditionAllocated, ReasonNameConflict, conflict.Error())
			return ctrl.Result{}, nil
		}
		_, _, err := r.cloudError(s, osseav1.ConditionAllocated, "looking for the volume of a lost create", err)
		return ctrl.Result{}, err
	}
	s.mv.Status.PendingJob = nil
	if vol != nil {
		log.FromContext(ctx).Info("Adopted the volume of a create whose reply was lost", "volumeID", vol.ID)
		r.recordVolume(s, vol)
		r.event(s, "Adopted", "Create", "Adopted CloudStack volume %s, made by a create whose reply was lost", vol.ID)
	}
	return ctrl.Result{RequeueAfter: time.Millisecond}, nil
}

func conditionOfOperation(op string) string {
	if op == opAttach || op == opDetach {
		return osseav1.ConditionAttached
	}
	return osseav1.ConditionAllocated
}
