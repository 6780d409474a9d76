package controllers

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

// conditionSetter wraps one object's condition list so every condition carries the
// generation it was computed for.
type conditionSetter struct {
	conditions *[]metav1.Condition
	generation int64
}

func (s conditionSetter) set(condType string, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(s.conditions, metav1.Condition{
		Type:               condType,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: s.generation,
	})
}

func (s conditionSetter) remove(condType string) {
	meta.RemoveStatusCondition(s.conditions, condType)
}

// summarize sets Ready from the detail conditions, in order: Ready is True (with the given
// reason and message) when all are True, else it copies the first one that is not.
// Reconciling and Stalled are kstatus's abnormal-true conditions, present only while true.
func (s conditionSetter) summarize(details []string, stalled bool, readyReason, readyMessage string) {
	ready := metav1.Condition{Status: metav1.ConditionTrue, Reason: readyReason, Message: readyMessage}
	for _, t := range details {
		c := meta.FindStatusCondition(*s.conditions, t)
		if c == nil {
			ready = metav1.Condition{Status: metav1.ConditionUnknown, Reason: osseav1.ReasonProgressing, Message: "waiting for the " + t + " condition to be reported"}
			break
		}
		if c.Status != metav1.ConditionTrue {
			ready = metav1.Condition{Status: metav1.ConditionFalse, Reason: c.Reason, Message: c.Message}
			break
		}
	}
	s.set(osseav1.ConditionReady, ready.Status, ready.Reason, ready.Message)
	s.setProgress(stalled, ready)
}

// setProgress sets kstatus's abnormal-true conditions from Ready: Stalled, with Ready's
// reason, when a person must act; else Reconciling while Ready is not True.
func (s conditionSetter) setProgress(stalled bool, ready metav1.Condition) {
	switch {
	case stalled:
		s.set(osseav1.ConditionStalled, metav1.ConditionTrue, ready.Reason, ready.Message)
		s.remove(osseav1.ConditionReconciling)
	case ready.Status != metav1.ConditionTrue:
		s.remove(osseav1.ConditionStalled)
		s.set(osseav1.ConditionReconciling, metav1.ConditionTrue, ready.Reason, ready.Message)
	default:
		s.remove(osseav1.ConditionStalled)
		s.remove(osseav1.ConditionReconciling)
	}
}
