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
// contract of who owns what. Of the metadata, the agent owns its MountFinalizer and its
// NodeLabel (the claim), the manager its VolumeFinalizer and its CreateIntentAnnotation;
// each writer applies its own in one write (see package ownership).
const (
	// ManagerFieldOwner owns everything in the status but the agent's part.
	ManagerFieldOwner = "ossea-manager"
	// AgentFieldOwner owns the Mounted condition and where the disk is on the node:
	// devicePath (the by-id link the agent found), mountPath, filesystemType, nodeName.
	AgentFieldOwner = "ossea-node-agent"
)

// NodeLabel is the node agent's claim of a MigrationVolume: the name of the node whose
// agent holds it. The agent applies it together with its MountFinalizer, in one
// server-side apply of its metadata (the status subresource cannot carry either), before
// it touches the disk, and drops both in one apply when it lets go. The admission policy
// of config/agent confines each agent by it: an agent may change only a volume claimed by
// its own node or by none, and may claim for its own node only. The agent's Mounted report
// still says status.nodeName, for people and tools; agents older than the label claimed by
// status.nodeName alone, which is why ClaimedBy falls back to it. A node name is a label
// value only if it has at most 63 characters (as for kubernetes.io/hostname).
const NodeLabel = "ossea.migratekit.io/node"

// CreateIntentAnnotation is the manager's record, on a MigrationVolume, of when it decided
// to create its CloudStack volume (RFC 3339, to the nanosecond). It is written with the
// manager's finalizer, in one write, before the create call is sent, and the call is sent
// only within a window after it: while status.volumeID is empty it tells a restarted
// manager that a create may have been made whose reply never came, and until when one
// could still land. Once status.volumeID is set it says nothing more.
const CreateIntentAnnotation = "ossea.migratekit.io/create-intent"

// ClaimedBy is the node whose agent claimed mv: its NodeLabel or, on a volume claimed by
// an agent older than the label, its status.nodeName; "" if unclaimed. (Whether the claim
// still holds, the agent's MountFinalizer, is the agent's to tell.)
func (mv *MigrationVolume) ClaimedBy() string {
	if node := mv.Labels[NodeLabel]; node != "" {
		return node
	}
	return mv.Status.NodeName
}

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
