package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudstack"
)

// Each phase returns done=true when its part of the desired state holds, so the next
// phase may run; otherwise the result says when to come back.

// ensureVolume makes sure the object's CloudStack volume exists: it adopts the one a lost
// reply or a crash left behind, and creates one only when there is none.
func (r *MigrationVolumeReconciler) ensureVolume(ctx context.Context, s *volumeScope) (ctrl.Result, bool, error) {
	mv := s.mv
	if mv.Status.VolumeID != "" {
		return ctrl.Result{}, true, nil
	}
	vol, err := r.findOwnVolume(ctx, s)
	if err != nil {
		var conflict *nameConflictError
		if errors.As(err, &conflict) {
			r.stall(s, osseav1.ConditionAllocated, ReasonNameConflict, conflict.Error())
			return ctrl.Result{}, false, nil
		}
		return r.cloudError(s, osseav1.ConditionAllocated, "looking for an existing volume", err)
	}
	if vol != nil {
		log.FromContext(ctx).Info("Adopted existing volume", "volumeID", vol.ID)
		r.recordVolume(s, vol)
		r.event(s, "Adopted", "Create", "Adopted existing CloudStack volume %s", vol.ID)
		return ctrl.Result{}, true, nil
	}

	// Record the intent before the call: if the reply is lost, the untagged volume it made
	// is recognised as ours by name rather than taken for someone else's.
	mv.Status.PendingJob = &osseav1.PendingJob{Operation: opCreate, StartedAt: metav1.Now()}
	s.conditions.set(osseav1.ConditionAllocated, metav1.ConditionFalse, ReasonCreating, "creating the CloudStack volume")
	if err := s.helper.patch(ctx, mv); err != nil {
		return ctrl.Result{}, false, fmt.Errorf("recording the create intent: %w", err)
	}
	offering := mv.Spec.DiskOfferingID
	if offering == "" {
		offering = s.cfg.Status.DiskOfferingID
	}
	volumeID, jobID, err := s.cloud.CreateVolume(ctx, cloudstack.CreateVolumeRequest{
		Name:           volumeName(mv),
		ZoneID:         s.cfg.Status.ZoneID,
		DiskOfferingID: offering,
		SizeGiB:        int64(mv.Spec.SizeGiB),
	})
	if err != nil {
		if !errors.Is(err, cloudstack.ErrTransient) {
			mv.Status.PendingJob = nil // nothing was made: no intent to keep
		}
		return r.cloudError(s, osseav1.ConditionAllocated, "creating the volume", err)
	}
	mv.Status.VolumeID = volumeID
	mv.Status.PendingJob.ID = jobID
	r.event(s, ReasonCreating, "Create", "Creating CloudStack volume %s (%s, %d GiB)", volumeID, volumeName(mv), mv.Spec.SizeGiB)
	return pollSoon(mv.Status.PendingJob), false, nil
}

type nameConflictError struct{ name, id string }

func (e *nameConflictError) Error() string {
	return fmt.Sprintf("CloudStack volume %s is named %q like this object's volume but does not carry its ownership tags; "+
		"it is left alone: rename or delete it in CloudStack, or delete and recreate this object", e.id, e.name)
}

// findOwnVolume looks for this object's volume: by ownership tag first, then by name. A
// volume with the name but without the tags is ours only if we recorded a create intent.
func (r *MigrationVolumeReconciler) findOwnVolume(ctx context.Context, s *volumeScope) (*cloudstack.Volume, error) {
	mv := s.mv
	tagged, err := s.cloud.FindVolumes(ctx, cloudstack.VolumeQuery{Tags: map[string]string{TagUID: string(mv.UID)}})
	if err != nil {
		return nil, err
	}
	if len(tagged) > 0 {
		return &tagged[0], nil
	}
	named, err := s.cloud.FindVolumes(ctx, cloudstack.VolumeQuery{Name: volumeName(mv)})
	if err != nil || len(named) == 0 {
		return nil, err
	}
	v := named[0]
	intent := mv.Status.PendingJob != nil && mv.Status.PendingJob.Operation == opCreate
	if ownedBy(v.Tags, mv) || (intent && len(v.Tags) == 0 && !v.Attached()) {
		return &v, nil
	}
	return nil, &nameConflictError{name: v.Name, id: v.ID}
}

// ensureTags puts the ownership and user tags on the volume.
func (r *MigrationVolumeReconciler) ensureTags(ctx context.Context, s *volumeScope) (ctrl.Result, bool, error) {
	mv := s.mv
	if meta.IsStatusConditionTrue(mv.Status.Conditions, osseav1.ConditionAllocated) {
		return ctrl.Result{}, true, nil
	}
	vol, done, res, err := r.readVolume(ctx, s)
	if !done {
		return res, false, err
	}
	missing := missingTags(vol.Tags, volumeTags(mv))
	if len(missing) == 0 {
		s.conditions.set(osseav1.ConditionAllocated, metav1.ConditionTrue, ReasonCreated,
			fmt.Sprintf("CloudStack volume %s exists and carries its ownership tags", vol.ID))
		return ctrl.Result{}, true, nil
	}
	jobID, err := s.cloud.CreateTags(ctx, vol.ID, missing)
	if err != nil {
		return r.cloudError(s, osseav1.ConditionAllocated, "tagging the volume", err)
	}
	r.startJob(s, opTag, jobID)
	s.conditions.set(osseav1.ConditionAllocated, metav1.ConditionFalse, ReasonTagging, "tagging the CloudStack volume")
	return pollSoon(mv.Status.PendingJob), false, nil
}

// ensureAttached attaches the volume to the OMA VM and keeps it there.
func (r *MigrationVolumeReconciler) ensureAttached(ctx context.Context, s *volumeScope) (ctrl.Result, bool, error) {
	mv := s.mv
	omaVM := s.cfg.Spec.OMAVirtualMachineID
	wasAttached := meta.IsStatusConditionTrue(mv.Status.Conditions, osseav1.ConditionAttached)
	if wasAttached && !r.dueForDriftCheck(mv) {
		return ctrl.Result{}, true, nil
	}
	vol, done, res, err := r.readVolume(ctx, s)
	if !done {
		return res, false, err
	}
	switch {
	case vol.VirtualMachineID == omaVM:
		r.recordVolume(s, vol)
		s.conditions.set(osseav1.ConditionAttached, metav1.ConditionTrue, ReasonAttached,
			fmt.Sprintf("attached to OMA VM %s as device %d", omaVM, derefOr(vol.DeviceID, -1)))
		return ctrl.Result{}, true, nil
	case vol.Attached():
		r.stall(s, osseav1.ConditionAttached, ReasonAttachedElsewhere, fmt.Sprintf(
			"CloudStack volume %s is attached to VM %s, not to the OMA VM %s; detach it there first", vol.ID, vol.VirtualMachineID, omaVM))
		return ctrl.Result{}, false, nil
	}
	if wasAttached {
		r.Recorder.Eventf(mv, nil, corev1.EventTypeWarning, "Detached", "Attach",
			"CloudStack volume %s was detached outside the operator; attaching it again", vol.ID)
	}

	// A full VM would only fail the job; wait for a slot instead.
	used, err := s.cloud.CountDataVolumes(ctx, omaVM)
	if err != nil {
		return r.cloudError(s, osseav1.ConditionAttached, "counting the OMA VM's data volumes", err)
	}
	if limit := maxDataVolumes(s.cfg); used >= limit {
		s.conditions.set(osseav1.ConditionAttached, metav1.ConditionFalse, ReasonCapacityExhausted, fmt.Sprintf(
			"OMA VM %s holds %d of %d data volumes; waiting for one to be detached", omaVM, used, limit))
		return ctrl.Result{RequeueAfter: r.DriftInterval}, false, nil
	}
	jobID, err := s.cloud.AttachVolume(ctx, vol.ID, omaVM)
	if err != nil {
		return r.cloudError(s, osseav1.ConditionAttached, "attaching the volume", err)
	}
	r.startJob(s, opAttach, jobID)
	s.conditions.set(osseav1.ConditionAttached, metav1.ConditionFalse, ReasonAttaching,
		fmt.Sprintf("attaching CloudStack volume %s to OMA VM %s", vol.ID, omaVM))
	r.event(s, ReasonAttaching, "Attach", "Attaching CloudStack volume %s to OMA VM %s", vol.ID, omaVM)
	return pollSoon(mv.Status.PendingJob), false, nil
}

// readVolume reads the volume from CloudStack. A volume that is gone although nothing of
// ours deleted it is lost: the object stalls rather than silently getting a new empty disk.
func (r *MigrationVolumeReconciler) readVolume(ctx context.Context, s *volumeScope) (*cloudstack.Volume, bool, ctrl.Result, error) {
	vol, err := s.cloud.GetVolume(ctx, s.mv.Status.VolumeID)
	if errors.Is(err, cloudstack.ErrNotFound) {
		r.stall(s, osseav1.ConditionAllocated, ReasonVolumeLost, fmt.Sprintf(
			"CloudStack volume %s no longer exists; it was deleted outside the operator. Its data is gone: "+
				"delete this object, and create a new one for a new empty disk", s.mv.Status.VolumeID))
		s.mv.Status.CloudStackState = ""
		return nil, false, ctrl.Result{}, nil
	}
	if err != nil {
		res, _, err := r.cloudError(s, osseav1.ConditionAllocated, "reading the volume", err)
		return nil, false, res, err
	}
	r.checked.Store(s.mv.UID, time.Now())
	r.recordVolume(s, vol)
	return vol, true, ctrl.Result{}, nil
}

func (r *MigrationVolumeReconciler) dueForDriftCheck(mv *osseav1.MigrationVolume) bool {
	last, ok := r.checked.Load(mv.UID)
	return !ok || time.Since(last.(time.Time)) >= r.DriftInterval
}

// recordVolume copies what CloudStack says about the volume into status.
func (r *MigrationVolumeReconciler) recordVolume(s *volumeScope, vol *cloudstack.Volume) {
	st := &s.mv.Status
	st.VolumeID = vol.ID
	if vol.State != "" {
		st.CloudStackState = vol.State
	}
	if vol.SizeBytes > 0 {
		st.SizeBytes = vol.SizeBytes
	}
	st.AttachedVirtualMachineID = vol.VirtualMachineID
	st.DeviceID = vol.DeviceID
	if vol.Attached() {
		// The agent replaces the expected path with the link it actually found (virtio or
		// scsi); keep its word.
		if st.DevicePath == "" {
			st.DevicePath = expectedDevicePath(vol.ID)
		}
	} else {
		st.DevicePath = ""
		if meta.IsStatusConditionTrue(st.Conditions, osseav1.ConditionAttached) {
			s.conditions.set(osseav1.ConditionAttached, metav1.ConditionFalse, "NotAttached", "the volume is not attached")
		}
	}
}

func (r *MigrationVolumeReconciler) startJob(s *volumeScope, op, jobID string) {
	s.mv.Status.PendingJob = &osseav1.PendingJob{ID: jobID, Operation: op, StartedAt: metav1.Now()}
}

func maxDataVolumes(cfg *osseav1.OsseaConfig) int {
	if cfg.Spec.MaxDataVolumes != nil {
		return int(*cfg.Spec.MaxDataVolumes)
	}
	if cfg.Status.Capacity != nil && cfg.Status.Capacity.MaxDataVolumes > 0 {
		return int(cfg.Status.Capacity.MaxDataVolumes)
	}
	return cloudstack.DefaultMaxDataVolumesPerVM
}

// pollSoon paces polling of a job: quickly at first, then at most every 5 seconds.
func pollSoon(job *osseav1.PendingJob) ctrl.Result {
	if job == nil {
		return ctrl.Result{RequeueAfter: time.Second}
	}
	d := time.Since(job.StartedAt.Time) / 2
	return ctrl.Result{RequeueAfter: min(max(d, 250*time.Millisecond), 5*time.Second)}
}

func derefOr(p *int64, def int64) int64 {
	if p == nil {
		return def
	}
	return *p
}
