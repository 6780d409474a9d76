package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A MigrationVolume's status has two writers, the manager and the node agent of the OMA
// it is attached to. Each applies (server-side apply) only the part it owns, under its own
// field manager, and the API server merges the two: conditions are a list map keyed by
// type, so neither side's write can revert the other's, and neither needs to lock on a
// resourceVersion (which made concurrent writes refuse each other). This file is the
// contract of who owns what.
const (
	// ManagerFieldOwner owns everything in the status but the agent's part.
	ManagerFieldOwner = "ossea-manager"
	// AgentFieldOwner owns the Mounted condition and where the disk is on the node:
	// devicePath (the by-id link the agent found), mountPath, filesystemType, nodeName.
	AgentFieldOwner = "ossea-node-agent"
)

// AgentPart is the part of the status the node agent owns.
func (s *MigrationVolumeStatus) AgentPart() MigrationVolumeStatus {
	out := MigrationVolumeStatus{DevicePath: s.DevicePath, MountPath: s.MountPath, FilesystemType: s.FilesystemType, NodeName: s.NodeName}
	if c := meta.FindStatusCondition(s.Conditions, ConditionMounted); c != nil {
		out.Conditions = []metav1.Condition{*c}
	}
	return out
}

// SetAgentPart replaces the node agent's part of s with agent's (as AgentPart returns it).
func (s *MigrationVolumeStatus) SetAgentPart(agent MigrationVolumeStatus) {
	s.DevicePath, s.MountPath, s.FilesystemType, s.NodeName = agent.DevicePath, agent.MountPath, agent.FilesystemType, agent.NodeName
	meta.RemoveStatusCondition(&s.Conditions, ConditionMounted)
	if c := meta.FindStatusCondition(agent.Conditions, ConditionMounted); c != nil {
		s.Conditions = append(s.Conditions, *c)
	}
}

// ManagerPart is the part of the status the manager owns: all but AgentPart.
func (s *MigrationVolumeStatus) ManagerPart() MigrationVolumeStatus {
	out := *s.DeepCopy()
	out.DevicePath, out.MountPath, out.FilesystemType, out.NodeName = "", "", "", ""
	out.Conditions = nil
	for _, c := range s.Conditions {
		if c.Type != ConditionMounted {
			out.Conditions = append(out.Conditions, c)
		}
	}
	return out
}
