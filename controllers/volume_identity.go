package controllers

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

// Tags the operator puts on every CloudStack volume it creates. TagUID is the proof of
// ownership: the operator never adopts, attaches, detaches or deletes a volume without it.
const (
	TagManagedBy = osseav1.ReservedTagPrefix + "managed-by"
	TagUID       = osseav1.ReservedTagPrefix + "uid"
	TagOwner     = osseav1.ReservedTagPrefix + "owner"
	TagJobID     = osseav1.ReservedTagPrefix + "job-id"
	TagVMName    = osseav1.ReservedTagPrefix + "vm-name"
	TagDiskName  = osseav1.ReservedTagPrefix + "disk-name"
	TagRetained  = osseav1.ReservedTagPrefix + "retained"
	// TagReleasedTo marks a volume let go where a person had attached it (see
	// osseav1.ReleaseToAnnotation): the VM it was left on.
	TagReleasedTo = osseav1.ReservedTagPrefix + "released-to"
	// TagCluster names the cluster whose manager made the volume (its cluster identity, see
	// osseav1.ClusterIdentityConfigMap) and TagConfig the OsseaConfig, as namespace/name, it
	// was made through: together they say whose orphan a volume can be.
	TagCluster = osseav1.ReservedTagPrefix + "cluster-id"
	TagConfig  = osseav1.ReservedTagPrefix + "config"

	managedByValue = "ossea-operator"
)

var unsafeRun = regexp.MustCompile(`[^a-z0-9]+`)

// volumeName is the deterministic CloudStack name of a MigrationVolume's volume. The UID
// prefix makes it unique to this object, so a lookup by name after a lost reply finds
// exactly this object's volume.
func volumeName(mv *osseav1.MigrationVolume) string {
	vm := strings.Trim(unsafeRun.ReplaceAllString(strings.ToLower(mv.Spec.VMName), "-"), "-")
	if vm == "" {
		vm = "vm"
	}
	uid := string(mv.UID)
	if len(uid) > 8 {
		uid = uid[:8]
	}
	return fmt.Sprintf("mig_%s_%s_%s", vm, mv.Spec.DiskName, uid)
}

// volumeTags are the tags a volume of this object must carry, made by the manager of the
// cluster clusterID: ownership first, then the user's own.
func volumeTags(mv *osseav1.MigrationVolume, clusterID string) map[string]string {
	tags := make(map[string]string, len(mv.Spec.Tags)+8)
	for k, v := range mv.Spec.Tags {
		tags[k] = v
	}
	tags[TagManagedBy] = managedByValue
	tags[TagUID] = string(mv.UID)
	tags[TagOwner] = mv.Namespace + "/" + mv.Name
	tags[TagJobID] = mv.Spec.JobID
	tags[TagVMName] = mv.Spec.VMName
	tags[TagDiskName] = mv.Spec.DiskName
	tags[TagConfig] = configTagValue(mv.Namespace, mv.Spec.OsseaConfigRef.Name)
	if clusterID != "" {
		tags[TagCluster] = clusterID
	}
	return tags
}

// missingTags returns the wanted tags the volume does not carry with the wanted value.
func missingTags(have, want map[string]string) map[string]string {
	missing := map[string]string{}
	for k, v := range want {
		if have[k] != v {
			missing[k] = v
		}
	}
	return missing
}

// ownedBy reports whether a volume's tags prove it belongs to this object.
func ownedBy(tags map[string]string, mv *osseav1.MigrationVolume) bool {
	return tags[TagUID] == string(mv.UID) && tags[TagManagedBy] == managedByValue
}

// configTagValue is the value of TagConfig for the OsseaConfig namespace/name.
func configTagValue(namespace, name string) string { return namespace + "/" + name }

// createIntent is when this object's manager last decided to create its volume (see
// osseav1.CreateIntentAnnotation). An intent whose time cannot be read (a person edited
// it) is taken as long past: the lookup that settles a lost create still runs before any
// new create.
func createIntent(mv *osseav1.MigrationVolume) (at time.Time, ok bool) {
	v, ok := mv.Annotations[osseav1.CreateIntentAnnotation]
	if !ok {
		return time.Time{}, false
	}
	at, _ = time.Parse(time.RFC3339Nano, v)
	return at, true
}

func setCreateIntent(mv *osseav1.MigrationVolume, at time.Time) {
	if mv.Annotations == nil {
		mv.Annotations = map[string]string{}
	}
	mv.Annotations[osseav1.CreateIntentAnnotation] = at.UTC().Format(time.RFC3339Nano)
}

func dropCreateIntent(mv *osseav1.MigrationVolume) {
	delete(mv.Annotations, osseav1.CreateIntentAnnotation)
}
