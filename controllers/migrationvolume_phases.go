package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/log"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudstack"
)

// Each phase returns nil when its part of the desired state holds, so the next phase may
// run; otherwise an outcome (see outcome.go) that ends the pass.

// ensureVolume makes sure the object's CloudStack volume exists: it adopts the one a lost
// reply or a crash left behind, and creates one only when there is none.
func (r *MigrationVolumeReconciler) ensureVolume(ctx context.Context, s *volumeScope) error {
	mv := s.mv
	if mv.Status.VolumeID != "" {
		return nil
	}
	var vol *cloudstack.Volume
	if !s.lookedUp {
		var err error
		if vol, err = r.findOwnVolume(ctx, s); err != nil {
			return r.lookupError(s, "looking for an existing volume", err)
		}
	}
	if vol != nil {
		log.FromContext(ctx).Info("Adopted existing volume", "volumeID", vol.ID)
		r.recordVolume(s, vol)
		r.event(s, osseav1.EventAdopted, "Create", "Adopted existing CloudStack volume %s", vol.ID)
		return nil
	}

	// Record the intent before the call: if the reply is lost, the untagged volume it made
	// is recognised as ours by name rather than taken for someone else's, and a restarted
	// manager knows that a create may still land (see recallCreateIntent). It is an
	// annotation, written with our finalizer in one apply (a status write cannot carry
	// metadata), so the object is held before anything exists in CloudStack; the apply
	// carries the object's uid, so an object that went meanwhile gets no create.
	startedAt := metav1.Now()
	setCreateIntent(mv, startedAt.Time)
	if err := s.helper.patchMetadata(ctx, mv); err != nil {
		return fmt.Errorf("recording the create intent: %w", err)
	}
	answered := time.Now()
	if !mv.DeletionTimestamp.IsZero() {
		// The answer shows the deletion the cached copy did not: no create was sent, so
		// the intent goes (and counts as answered, as for any create not sent).
		r.mem.sawDeleting(mv.UID)
		dropCreateIntent(mv)
		r.mem.createFailed(mv.UID, true)
		return r.notSent(ctx, "creating the volume", errBeingDeleted)
	}
	mv.Status.PendingJob = &osseav1.PendingJob{Operation: opCreate, StartedAt: startedAt}
	s.conditions.set(osseav1.ConditionAllocated, metav1.ConditionFalse, osseav1.ReasonCreating, "creating the CloudStack volume")
	offering := mv.Spec.DiskOfferingID
	if offering == "" {
		offering = s.cfg.Status.DiskOfferingID
	}
	// The create may be sent only within a window after its intent, so that a lookup after
	// a lost reply knows when it can no longer land (see lostCreateSettled).
	sendCtx, cancel := context.WithDeadline(r.unlessDeletingSince(ctx, mv, answered), mv.Status.PendingJob.StartedAt.Add(r.mem.createSendWindow()))
	defer cancel()
	volumeID, jobID, err := s.cloud.CreateVolume(sendCtx, cloudstack.CreateVolumeRequest{
		Name:           volumeName(mv),
		ZoneID:         s.cfg.Status.ZoneID,
		DiskOfferingID: offering,
		SizeGiB:        int64(mv.Spec.SizeGiB),
	})
	if err != nil {
		if !errors.Is(err, cloudstack.ErrTransient) || errors.Is(err, cloudstack.ErrNotSent) {
			// Nothing was made (refused, or never sent: a send guard, CloudStack's API
			// throttling): no intent to keep. Should its removal not be written, the
			// look that the intent then causes is settled at once (answered).
			mv.Status.PendingJob = nil
			dropCreateIntent(mv)
			r.mem.createFailed(mv.UID, true)
		} else {
			r.mem.createFailed(mv.UID, cloudstack.Answered(err))
		}
		if errors.Is(err, cloudstack.ErrNotSent) {
			return r.notSent(ctx, "creating the volume", err)
		}
		return r.cloudError(s, osseav1.ConditionAllocated, "creating the volume", err)
	}
	mv.Status.VolumeID = volumeID
	mv.Status.PendingJob.ID = jobID
	r.mem.jobStarted(mv, mv.Status.PendingJob, volumeID, "")
	return r.tagAtOnce(ctx, s)
}

// tagAtOnce tags a volume this pass has just created, without waiting for its create job.
// CloudStack lists a new volume, Allocated, from the create's reply on, and the job of a
// blank volume's create only reports it; the volume is ours beyond doubt (its id came
// back to the call whose intent status holds). So the tag job runs alongside the create
// job, which saves a job's latency and its poll. The create job is left running in the
// memory (rule (b): no detach or delete before it has ended, see awaitCreate); its end is
// learnt in the background with one listing for all creates (see cloudstack's jobBook),
// and its failure changes nothing: the volume it allocated is there, tagged, and is used
// (as a failed create's volume was adopted before). If the tag cannot be sent, the
// create job stays the pending one and the volume is tagged after it, as before.
func (r *MigrationVolumeReconciler) tagAtOnce(ctx context.Context, s *volumeScope) error {
	// No send guard: a teardown would tag this volume first as well (see
	// migrationvolume_guards.go).
	return r.startTagging(ctx, s, s.mv.Status.VolumeID, volumeTags(s.mv, r.ClusterID))
}

// startTagging starts the job that puts tags on the volume; ctx carries the send guard
// of a step that needs one. A create job this process is still waiting for (see
// tagAtOnce) is left to finish in the background.
func (r *MigrationVolumeReconciler) startTagging(ctx context.Context, s *volumeScope, volumeID string, tags map[string]string) error {
	mv := s.mv
	jobID, err := s.cloud.CreateTags(ctx, volumeID, tags)
	if errors.Is(err, cloudstack.ErrNotSent) {
		return r.notSent(ctx, "tagging the volume", err)
	}
	if err != nil {
		return r.cloudError(s, osseav1.ConditionAllocated, "tagging the volume", err)
	}
	r.mem.createLeftRunning(mv.UID)
	r.startJob(s, opTag, jobID)
	s.conditions.set(osseav1.ConditionAllocated, metav1.ConditionFalse, osseav1.ReasonTagging, "tagging the CloudStack volume")
	return waitFor(r.mem.firstPoll(mv, mv.Status.PendingJob))
}

type nameConflictError struct{ name, id string }

// lookupError is the outcome of a failed lookup by name: a volume of another's under our
// name stalls the object, anything else is CloudStack's error.
func (r *MigrationVolumeReconciler) lookupError(s *volumeScope, action string, err error) error {
	var conflict *nameConflictError
	if errors.As(err, &conflict) {
		return stall(osseav1.ConditionAllocated, osseav1.ReasonNameConflict, conflict.Error())
	}
	return r.cloudError(s, osseav1.ConditionAllocated, action, err)
}

func (e *nameConflictError) Error() string {
	return fmt.Sprintf("CloudStack volume %s is named %q like this object's volume but does not carry its ownership tags; "+
		"it is left alone: rename or delete it in CloudStack, or delete and recreate this object", e.id, e.name)
}

// findOwnVolume looks for this object's volume by its name, which holds the object's UID.
// A lookup by ownership tag would add nothing: tags are put on after the create, and every
// create is preceded by a recorded intent, so a volume of ours without a recorded id can
// only be one whose create reply was lost, untagged. A volume with the name but without the
// tags is ours only if we recorded a create intent. Lookups of many objects at once share
// one listVolumes (see cloudstack's batcher).
func (r *MigrationVolumeReconciler) findOwnVolume(ctx context.Context, s *volumeScope) (*cloudstack.Volume, error) {
	mv := s.mv
	named, err := s.cloud.FindVolumesNamed(ctx, volumeName(mv))
	if err != nil {
		return nil, err
	}
	if len(named) == 0 {
		s.lookedUp = true
		return nil, nil
	}
	intent := mv.Status.PendingJob != nil && mv.Status.PendingJob.Operation == opCreate
	for i := range named {
		if ownedBy(named[i].Tags, mv) {
			return &named[i], nil
		}
	}
	v := named[0]
	if intent && len(named) == 1 && len(v.Tags) == 0 && !v.Attached() {
		return &v, nil
	}
	return nil, &nameConflictError{name: v.Name, id: v.ID}
}

// ensureTags puts the ownership and user tags on the volume. Right after the create, the
// create job's result says what the volume carries; otherwise it is read.
func (r *MigrationVolumeReconciler) ensureTags(ctx context.Context, s *volumeScope) error {
	mv := s.mv
	if meta.IsStatusConditionTrue(mv.Status.Conditions, osseav1.ConditionAllocated) {
		return nil
	}
	vol := s.vol
	if vol == nil {
		var err error
		if vol, err = r.readVolume(ctx, s); err != nil {
			return err
		}
	}
	missing := missingTags(vol.Tags, volumeTags(mv, r.ClusterID))
	if len(missing) == 0 {
		s.conditions.set(osseav1.ConditionAllocated, metav1.ConditionTrue, osseav1.ReasonCreated,
			fmt.Sprintf("CloudStack volume %s exists and carries its ownership tags", vol.ID))
		return nil
	}
	return r.startTagging(r.unlessDeleting(ctx, mv), s, vol.ID, missing)
}

// ensureAttached attaches the volume to the OMA VM and keeps it there. A volume whose
// record is trusted (not stale) is taken as recorded: attached, or, just created and
// tagged by us, not attached anywhere. Should CloudStack disagree, the attach job fails
// and the volume is read before the next try.
func (r *MigrationVolumeReconciler) ensureAttached(ctx context.Context, s *volumeScope) error {
	mv := s.mv
	omaVM := s.cfg.Spec.OMAVirtualMachineID
	wasAttached := meta.IsStatusConditionTrue(mv.Status.Conditions, osseav1.ConditionAttached)
	stale := r.mem.isStale(mv.UID)
	if wasAttached && !stale && s.vol == nil {
		return nil
	}
	vol := s.vol
	if vol == nil && (stale || mv.Status.AttachedVirtualMachineID != "") {
		var err error
		if vol, err = r.readVolume(ctx, s); err != nil {
			return err
		}
	}
	if vol != nil {
		switch {
		case vol.VirtualMachineID == omaVM:
			r.recordVolume(s, vol)
			s.conditions.set(osseav1.ConditionAttached, metav1.ConditionTrue, osseav1.ReasonAttached,
				fmt.Sprintf("attached to OMA VM %s as device %d", omaVM, derefOr(vol.DeviceID, -1)))
			return nil
		case vol.Attached():
			return stall(osseav1.ConditionAttached, osseav1.ReasonAttachedElsewhere, fmt.Sprintf(
				"CloudStack volume %s is attached to VM %s, not to the OMA VM %s; detach it there first", vol.ID, vol.VirtualMachineID, omaVM))
		}
	}
	if wasAttached {
		r.Recorder.Eventf(mv, nil, corev1.EventTypeWarning, osseav1.EventDetached, "Attach",
			"CloudStack volume %s was detached outside the operator; attaching it again", mv.Status.VolumeID)
	}

	// A full VM would only fail the job; wait for a slot instead.
	limit := maxDataVolumes(s.cfg)
	used, ok, err := r.reserveSlot(ctx, s, omaVM, limit)
	if err != nil {
		return r.cloudError(s, osseav1.ConditionAttached, "counting the OMA VM's data volumes", err)
	}
	if !ok {
		s.conditions.set(osseav1.ConditionAttached, metav1.ConditionFalse, osseav1.ReasonCapacityExhausted, fmt.Sprintf(
			"OMA VM %s holds %d of %d data volumes; waiting for one to be detached", omaVM, used, limit))
		return waitFor(r.slotRecheck(mv, time.Now()))
	}
	jobID, err := s.cloud.AttachVolume(r.unlessDeleting(ctx, mv), mv.Status.VolumeID, omaVM)
	if err != nil {
		r.mem.releaseSlot(mv.UID)
		if errors.Is(err, cloudstack.ErrNotSent) {
			return r.notSent(ctx, "attaching the volume", err)
		}
		return r.cloudError(s, osseav1.ConditionAttached, "attaching the volume", err)
	}
	// Name the VM now rather than when the job is seen done: the VM's node agent watches
	// the volumes that name its VM, and claims this one while the job runs, so that its
	// disk is mounted the moment it appears. (It also counts for the VM's slots.)
	mv.Status.AttachedVirtualMachineID = omaVM
	r.startJob(s, opAttach, jobID)
	s.conditions.set(osseav1.ConditionAttached, metav1.ConditionFalse, osseav1.ReasonAttaching,
		fmt.Sprintf("attaching CloudStack volume %s to OMA VM %s", mv.Status.VolumeID, omaVM))
	return waitFor(r.mem.firstPoll(mv, mv.Status.PendingJob))
}

// readVolume reads the volume from CloudStack. A volume that is gone although nothing of
// ours deleted it is lost: the object stalls rather than silently getting a new empty disk.
// Being deleted, a gone volume is simply gone: the object is let go, and the error says
// only that the pass is over (errVolumeGone).
func (r *MigrationVolumeReconciler) readVolume(ctx context.Context, s *volumeScope) (*cloudstack.Volume, error) {
	vol, err := s.cloud.GetVolume(ctx, s.mv.Status.VolumeID)
	if errors.Is(err, cloudstack.ErrNotFound) {
		if !s.mv.DeletionTimestamp.IsZero() {
			r.event(s, osseav1.EventDeleted, "Delete", "CloudStack volume %s is gone", s.mv.Status.VolumeID)
			r.forget(s)
			return nil, errVolumeGone
		}
		s.mv.Status.CloudStackState = ""
		return nil, stall(osseav1.ConditionAllocated, osseav1.ReasonVolumeLost, fmt.Sprintf(
			"CloudStack volume %s no longer exists; it was deleted outside the operator. Its data is gone: "+
				"delete this object, and create a new one for a new empty disk", s.mv.Status.VolumeID))
	}
	if err != nil {
		return nil, r.cloudError(s, osseav1.ConditionAllocated, "reading the volume", err)
	}
	r.mem.volumeRead(s.mv.UID)
	r.recordVolume(s, vol)
	return vol, nil
}

// errVolumeGone ends the pass of an object being deleted whose volume is found gone: there
// is nothing left to tear down, and the object is let go.
var errVolumeGone error = &waiting{}

// volumeGone reports whether readVolume found the volume no longer in CloudStack.
func volumeGone(err error) bool {
	var st *stalling
	return err == errVolumeGone || (errors.As(err, &st) && st.reason == osseav1.ReasonVolumeLost)
}

// recordVolume copies what CloudStack says about the volume into status.
func (r *MigrationVolumeReconciler) recordVolume(s *volumeScope, vol *cloudstack.Volume) {
	s.vol = vol
	st := &s.mv.Status
	st.VolumeID = vol.ID
	if vol.State != "" {
		st.CloudStackState = vol.State
	}
	if vol.SizeBytes > 0 {
		st.SizeBytes = vol.SizeBytes
	}
	if vol.Attached() || !attaching(st) {
		// (While the attach job runs, the VM it attaches to stays named: see ensureAttached.)
		st.AttachedVirtualMachineID = vol.VirtualMachineID
	}
	st.DeviceID = vol.DeviceID
	// (devicePath is the node agent's: the link it actually found, virtio or scsi.)
	if !vol.Attached() && meta.IsStatusConditionTrue(st.Conditions, osseav1.ConditionAttached) {
		s.conditions.set(osseav1.ConditionAttached, metav1.ConditionFalse, osseav1.ReasonNotAttached, "the volume is not attached")
	}
}

// attaching reports whether an attach job is in flight.
func attaching(st *osseav1.MigrationVolumeStatus) bool {
	return st.PendingJob != nil && st.PendingJob.Operation == opAttach
}

// startJob records a job just started on the recorded volume, in status and in memory;
// what was known of the volume before it no longer is. An attach's VM is named in status
// before.
func (r *MigrationVolumeReconciler) startJob(s *volumeScope, op, jobID string) {
	st := &s.mv.Status
	st.PendingJob = &osseav1.PendingJob{ID: jobID, Operation: op, StartedAt: metav1.Now()}
	s.vol = nil
	vmID := ""
	if op == opAttach {
		vmID = st.AttachedVirtualMachineID
	}
	r.mem.jobStarted(s.mv, st.PendingJob, st.VolumeID, vmID)
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

func derefOr(p *int64, def int64) int64 {
	if p == nil {
		return def
	}
	return *p
}
