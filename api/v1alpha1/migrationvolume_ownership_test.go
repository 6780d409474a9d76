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

// The claim is the label; a volume an older agent claimed has only status.nodeName.
func TestClaimedBy(t *testing.T) {
	for _, c := range []struct {
		name, label, statusNode, want string
	}{
		{"unclaimed", "", "", ""},
		{"claimed by the label", "node-a", "", "node-a"},
		{"claimed and reported", "node-a", "node-a", "node-a"},
		{"claimed by an older agent", "", "node-a", "node-a"},
		{"the label is the claim", "node-a", "node-b", "node-a"},
	} {
		t.Run(c.name, func(t *testing.T) {
			mv := &MigrationVolume{Status: MigrationVolumeStatus{NodeName: c.statusNode}}
			if c.label != "" {
				mv.Labels = map[string]string{NodeLabel: c.label}
			}
			if got := mv.ClaimedBy(); got != c.want {
				t.Errorf("ClaimedBy() = %q; want %q", got, c.want)
			}
		})
	}
}
