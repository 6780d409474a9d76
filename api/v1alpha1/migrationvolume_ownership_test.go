package v1alpha1

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SetAgentPart puts in the agent's part and nothing else: the manager's part stays, a
// Mounted condition the agent no longer reports goes.
func TestSetAgentPart(t *testing.T) {
	manager := MigrationVolumeStatus{VolumeID: "v", Conditions: []metav1.Condition{{Type: ConditionAttached, Status: metav1.ConditionTrue, Reason: "Attached"}}}
	agent := MigrationVolumeStatus{DevicePath: "/dev/disk/by-id/x", MountPath: "/mnt/m", FilesystemType: "ext4", NodeName: "n",
		Conditions: []metav1.Condition{{Type: ConditionMounted, Status: metav1.ConditionTrue, Reason: "Mounted"}}}

	st := *manager.DeepCopy()
	st.Conditions = append(st.Conditions, metav1.Condition{Type: ConditionMounted, Status: metav1.ConditionFalse, Reason: "WaitingForDevice"})
	st.SetAgentPart(agent)
	if !equality.Semantic.DeepEqual(st.AgentPart(), agent) || !equality.Semantic.DeepEqual(st.ManagerPart(), manager) {
		t.Errorf("after SetAgentPart: agent part %+v, manager part %+v", st.AgentPart(), st.ManagerPart())
	}
	st.SetAgentPart(MigrationVolumeStatus{})
	if meta.FindStatusCondition(st.Conditions, ConditionMounted) != nil || st.MountPath != "" || !equality.Semantic.DeepEqual(st.ManagerPart(), manager) {
		t.Errorf("after an empty agent part: %+v", st)
	}
}
