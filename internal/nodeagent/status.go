package nodeagent

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

// report is what one reconcile has to say: the Mounted condition (left alone when reason is
// empty), and the agent's own status fields. A nil field is left as it is; a pointer to ""
// clears it.
type report struct {
	status  metav1.ConditionStatus
	reason  string
	message string

	devicePath     *string
	mountPath      *string
	filesystemType *string
	nodeName       *string
}

func strp(s string) *string { return &s }

// apply writes r into st, touching nothing the manager owns (see AgentPart).
func (r *report) apply(st *osseav1.MigrationVolumeStatus, generation int64) {
	if r.reason != "" {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type:               osseav1.ConditionMounted,
			Status:             r.status,
			Reason:             r.reason,
			Message:            truncate(r.message, 32768),
			ObservedGeneration: generation,
		})
	}
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&st.DevicePath, r.devicePath)
	set(&st.MountPath, r.mountPath)
	set(&st.FilesystemType, r.filesystemType)
	set(&st.NodeName, r.nodeName)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
