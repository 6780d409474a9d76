package controllers

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

// summarize computes Ready, Reconciling, Stalled, the phase and observedGeneration, in one
// place, at the end of every reconcile.
func (r *MigrationVolumeReconciler) summarize(s *volumeScope) {
	mv := s.mv
	mounted := meta.FindStatusCondition(mv.Status.Conditions, osseav1.ConditionMounted)
	stalled := s.stalled || (mounted != nil && mounted.Status == metav1.ConditionFalse && osseav1.NeedsPerson(mounted.Reason))

	if mv.DeletionTimestamp.IsZero() {
		// Keep a Reconciling reason a phase set on purpose (waiting for the config). A copy:
		// the summary rewrites the list it points into.
		waiting := meta.FindStatusCondition(mv.Status.Conditions, osseav1.ConditionReconciling).DeepCopy()
		if mv.Spec.Handoff != nil {
			// Once handed off, the volume is Ready where it now belongs: on the target VM.
			s.conditions.summarize(handoffDetails, stalled, osseav1.ReasonHandedOff, handoffMessage(mv))
		} else {
			s.conditions.summarize(volumeDetails, stalled, readyReason(mounted), readyMessage(mv))
		}
		if waiting != nil && waiting.Reason == osseav1.ReasonOsseaConfigNotReady && !stalled &&
			meta.IsStatusConditionTrue(mv.Status.Conditions, osseav1.ConditionAllocated) {
			s.conditions.set(osseav1.ConditionReconciling, metav1.ConditionTrue, waiting.Reason, waiting.Message)
		}
	} else {
		step := meta.FindStatusCondition(mv.Status.Conditions, osseav1.ConditionReconciling)
		reason, msg := osseav1.ReasonDeleting, "tearing down"
		switch {
		case s.stall != nil:
			// The teardown waits for a person: say why, not the step it stopped at.
			reason, msg = s.stall.reason, s.stall.msg
		case step != nil:
			reason, msg = step.Reason, step.Message
		}
		s.conditions.set(osseav1.ConditionReady, metav1.ConditionFalse, reason, msg)
		if stalled {
			s.conditions.set(osseav1.ConditionStalled, metav1.ConditionTrue, reason, msg)
			if s.stall != nil {
				s.conditions.remove(osseav1.ConditionReconciling)
			}
		} else {
			s.conditions.remove(osseav1.ConditionStalled)
		}
	}
	mv.Status.Phase = phaseOf(mv, stalled)
	mv.Status.ObservedGeneration = mv.Generation
}

// handoffDetails are the conditions Ready sums up once spec.handoff is set.
var handoffDetails = []string{osseav1.ConditionAllocated, osseav1.ConditionHandedOff}

func handoffMessage(mv *osseav1.MigrationVolume) string {
	if h := mv.Status.Handoff; h != nil {
		return fmt.Sprintf("CloudStack volume %s is handed off to VM %s as device %d", mv.Status.VolumeID, h.VirtualMachineID, h.DeviceID)
	}
	return "handing off"
}

func readyReason(mounted *metav1.Condition) string {
	if mounted != nil && mounted.Reason == osseav1.ReasonPublished {
		return osseav1.ReasonPublished
	}
	return osseav1.ReasonMounted
}

func readyMessage(mv *osseav1.MigrationVolume) string {
	if mv.Status.MountPath != "" {
		return fmt.Sprintf("CloudStack volume %s is attached and mounted at %s", mv.Status.VolumeID, mv.Status.MountPath)
	}
	return fmt.Sprintf("CloudStack volume %s is attached and published at %s", mv.Status.VolumeID, mv.Status.DevicePath)
}

// phaseOf is the one-word summary for `kubectl get`. Nothing reads it to decide anything.
func phaseOf(mv *osseav1.MigrationVolume, stalled bool) osseav1.Phase {
	conds := mv.Status.Conditions
	switch {
	case !mv.DeletionTimestamp.IsZero():
		if controllerutil.ContainsFinalizer(mv, osseav1.MountFinalizer) {
			return osseav1.PhaseUnmounting
		}
		if mv.Status.AttachedVirtualMachineID != "" {
			return osseav1.PhaseDetaching
		}
		return osseav1.PhaseDeleting
	case mv.Status.Handoff != nil:
		return osseav1.PhaseHandedOff
	case stalled:
		return osseav1.PhaseFailed
	case mv.Spec.Handoff != nil:
		return osseav1.PhaseHandingOff
	case meta.IsStatusConditionTrue(conds, osseav1.ConditionMounted):
		if c := meta.FindStatusCondition(conds, osseav1.ConditionMounted); c.Reason == osseav1.ReasonPublished {
			return osseav1.PhasePublished
		}
		return osseav1.PhaseMounted
	case meta.IsStatusConditionTrue(conds, osseav1.ConditionAttached):
		return osseav1.PhaseAttached
	case meta.IsStatusConditionTrue(conds, osseav1.ConditionAllocated):
		return osseav1.PhaseReady
	case mv.Status.VolumeID != "" || mv.Status.PendingJob != nil:
		return osseav1.PhaseAllocated
	}
	return osseav1.PhasePending
}
