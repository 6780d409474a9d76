package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudstack"
)

// reconcileDelete tears down in the one safe order: the agent unmounts (its finalizer
// goes), then the volume is detached, then deleted or kept. Only then does the volume
// finalizer go.
func (r *MigrationVolumeReconciler) reconcileDelete(ctx context.Context, s *volumeScope) error {
	mv := s.mv
	if !controllerutil.ContainsFinalizer(mv, osseav1.VolumeFinalizer) {
		// Nothing of it was ever made, or it is let go already.
		r.mem.forget(mv.UID)
		return nil
	}
	if controllerutil.ContainsFinalizer(mv, osseav1.MountFinalizer) {
		// The agent's finalizer going triggers the next reconcile.
		if wait := agentLetGoWait(mv.DeletionTimestamp.Time, time.Now(), mv.Status.PendingJob); wait > 0 {
			s.quiet = true
			return waitFor(wait)
		}
		// (The message names nothing of the agent's part: the agent's own writes while it
		// lets go would otherwise change it, and each change is one more write.)
		s.conditions.set(osseav1.ConditionReconciling, metav1.ConditionTrue, osseav1.ReasonWaitingForAgent,
			"waiting for the node agent to unmount the volume and let it go")
		return waitFor(0)
	}
	if (mv.Status.VolumeID == "" && mv.Status.PendingJob == nil) || (mv.Status.Handoff != nil && mv.Status.PendingJob == nil) {
		// Nothing made, or handed off: the volume is the target VM's, never touched again.
		r.forget(s)
		return nil
	}
	if err := r.connect(ctx, s); err != nil {
		return err
	}
	if mv.Status.PendingJob != nil {
		// Let the job in flight finish before deciding what is left to undo; when it has,
		// go straight on.
		if err := r.pollPendingJob(ctx, s); err != nil {
			return err
		}
	}
	if mv.Status.VolumeID == "" {
		r.forget(s)
		return nil
	}
	if err := r.awaitCreate(ctx, s); err != nil {
		return err
	}

	// Tear down only what is proven ours, as CloudStack has it now: a read just made by the
	// poll of the last job will do, else the volume is read (with the other volumes being
	// torn down, in one call).
	vol := s.vol
	if vol == nil {
		var err error
		if vol, err = r.readVolume(ctx, s); err != nil {
			return err
		}
	}

	if handedOff(mv, vol) {
		r.forget(s)
		return nil
	}
	if !ownedBy(vol.Tags, mv) {
		if vol.Tags[TagUID] != "" || vol.Name != volumeName(mv) {
			r.Recorder.Eventf(mv, nil, corev1.EventTypeWarning, osseav1.EventNotOwned, "Delete",
				"CloudStack volume %s does not carry this object's ownership tags; left untouched", vol.ID)
			r.forget(s)
			return nil
		}
		// Ours (we created it under this name) but deleted before it was tagged: tag it
		// first, so that nothing is ever detached or deleted without the proof.
		jobID, err := s.cloud.CreateTags(ctx, vol.ID, volumeTags(mv, r.ClusterID))
		if err != nil {
			return r.cloudError(s, osseav1.ConditionAllocated, "tagging the volume before teardown", err)
		}
		r.startJob(s, opTag, jobID)
		return waitFor(r.mem.firstPoll(mv, mv.Status.PendingJob))
	}

	if vol.Attached() && vol.VirtualMachineID != s.cfg.Spec.OMAVirtualMachineID {
		return r.releaseElsewhere(ctx, s, vol)
	}
	if vol.Attached() {
		if err := r.teardownAllowed(ctx, s, "detaching the volume"); err != nil {
			return err
		}
		jobID, err := s.cloud.DetachVolume(ctx, vol.ID)
		if err != nil {
			return r.cloudError(s, osseav1.ConditionAttached, "detaching the volume", err)
		}
		r.startJob(s, opDetach, jobID)
		s.conditions.set(osseav1.ConditionReconciling, metav1.ConditionTrue, osseav1.ReasonDetaching,
			fmt.Sprintf("detaching CloudStack volume %s from VM %s", vol.ID, vol.VirtualMachineID))
		return waitFor(r.mem.firstPoll(mv, mv.Status.PendingJob))
	}

	if mv.Spec.DeletionPolicy == osseav1.DeletionPolicyRetain {
		if vol.Tags[TagRetained] != "true" {
			jobID, err := s.cloud.CreateTags(ctx, vol.ID, map[string]string{TagRetained: "true"})
			if err != nil {
				return r.cloudError(s, osseav1.ConditionAllocated, "tagging the retained volume", err)
			}
			r.startJob(s, opRetain, jobID)
			return waitFor(r.mem.firstPoll(mv, mv.Status.PendingJob))
		}
		r.forget(s)
		return nil
	}

	s.conditions.set(osseav1.ConditionReconciling, metav1.ConditionTrue, osseav1.ReasonDeleting,
		fmt.Sprintf("deleting CloudStack volume %s", vol.ID))
	if err := r.teardownAllowed(ctx, s, "deleting the volume"); err != nil {
		return err
	}
	if err := s.cloud.DeleteVolume(ctx, vol.ID); err != nil && !errors.Is(err, cloudstack.ErrNotFound) {
		// Whatever the error says, the next pass reads the volume again before acting.
		return r.cloudError(s, osseav1.ConditionAllocated, "deleting the volume", err)
	}
	if s.detachedFrom != "" {
		r.event(s, osseav1.EventDeleted, "Delete", "Detached CloudStack volume %s from VM %s and deleted it", vol.ID, s.detachedFrom)
	} else {
		r.event(s, osseav1.EventDeleted, "Delete", "Deleted CloudStack volume %s", vol.ID)
	}
	r.forget(s)
	return nil
}

// agentLetGoGrace is how long a teardown waits for the node agent to let go of a volume
// before it says so in status.
const agentLetGoGrace = 5 * time.Second

// agentLetGoWait is how long the first passes of a teardown stay quiet while the agent
// still holds the volume: it lets go within a moment of the deletion (in the full-path
// bench within a second), and status saying "waiting for the node agent" that long is a
// write per volume that no one reads; the object's deletionTimestamp says it is being
// deleted, and Detaching follows. Once the agent has held it for agentLetGoGrace, the
// wait is worth saying. A pass with a job in flight (recalled from memory into status)
// writes as before, so that the job is on record. 0 means write now.
func agentLetGoWait(deletedAt, now time.Time, pending *osseav1.PendingJob) time.Duration {
	if pending != nil {
		return 0
	}
	wait := agentLetGoGrace - now.Sub(deletedAt)
	// A clock behind the API server's would wait longer than the grace; never more.
	return min(max(wait, 0), agentLetGoGrace)
}

// awaitCreate holds a teardown until the create job left running (see tagAtOnce) has
// ended: rule (b). Its end is usually known by then, learnt in the background, and the
// poll costs no call.
func (r *MigrationVolumeReconciler) awaitCreate(ctx context.Context, s *volumeScope) error {
	run, ok := r.mem.createRunning(s.mv.UID)
	if !ok {
		return nil
	}
	res, err := s.cloud.PollJob(ctx, run.job.ID)
	switch {
	case errors.Is(err, cloudstack.ErrNotFound):
		// CloudStack forgot the job: it ended long ago.
	case err != nil:
		return r.cloudError(s, osseav1.ConditionAllocated, "polling the create job "+run.job.ID, err)
	case res.Status == cloudstack.JobPending:
		return waitFor(time.Second)
	}
	r.mem.createEnded(s.mv.UID)
	return nil
}

// releaseElsewhere handles a volume being deleted that is attached to a VM other than the
// OMA VM, where only a person can have put it (a disk moved to the target VM by hand, say):
// it is never detached nor deleted. The deletion waits for the person to say, with the
// release annotation naming that VM, that the volume stays there; then it is tagged as
// released to it and the object goes.
func (r *MigrationVolumeReconciler) releaseElsewhere(ctx context.Context, s *volumeScope, vol *cloudstack.Volume) error {
	mv, vm := s.mv, vol.VirtualMachineID
	if mv.Annotations[osseav1.ReleaseToAnnotation] != vm {
		return stall(osseav1.ConditionAttached, osseav1.ReasonAttachedElsewhere, fmt.Sprintf(
			"CloudStack volume %s is attached to VM %s, not to the OMA VM %s, so it is neither detached nor deleted; "+
				"to leave it on %s and let this object go: kubectl annotate -n %s mv %s %s=%s",
			vol.ID, vm, s.cfg.Spec.OMAVirtualMachineID, vm, mv.Namespace, mv.Name, osseav1.ReleaseToAnnotation, vm))
	}
	if vol.Tags[TagReleasedTo] != vm {
		jobID, err := s.cloud.CreateTags(ctx, vol.ID, map[string]string{TagReleasedTo: vm})
		if err != nil {
			return r.cloudError(s, osseav1.ConditionAllocated, "tagging the released volume", err)
		}
		r.startJob(s, opRelease, jobID)
		return waitFor(r.mem.firstPoll(mv, mv.Status.PendingJob))
	}
	r.forget(s)
	return nil
}

// forget lets the object go: nothing of it is left in CloudStack that we own.
func (r *MigrationVolumeReconciler) forget(s *volumeScope) {
	controllerutil.RemoveFinalizer(s.mv, osseav1.VolumeFinalizer)
	r.mem.forget(s.mv.UID)
}
