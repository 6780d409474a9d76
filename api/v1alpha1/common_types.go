package v1alpha1

// Finalizers. Each one guards one step of teardown so the steps cannot run out of order.
const (
	// VolumeFinalizer is held by the manager from before any CloudStack call until the
	// CloudStack volume is detached and deleted (or retained).
	VolumeFinalizer = "ossea.migratekit.io/volume"
	// MountFinalizer is held by the node agent from before mounting until after unmounting.
	MountFinalizer = "ossea.migratekit.io/mount"
	// InUseFinalizer is held on an OsseaConfig (and its credentials Secret) while
	// MigrationVolumes reference it, so cleanup can always authenticate.
	InUseFinalizer = "ossea.migratekit.io/in-use"
	// JobFinalizer is held by the manager on a MigrationJob until every MigrationVolume it
	// created is gone, so that `kubectl delete mj --wait` returns only when the disks are.
	JobFinalizer = "ossea.migratekit.io/job"
)

// JobLabel on a MigrationVolume names the MigrationJob that created it.
const JobLabel = "ossea.migratekit.io/job"

// WatchFilterLabel puts an object in a shard: a manager started with --watch-filter=<value>
// reconciles only the OsseaConfigs, MigrationJobs and MigrationVolumes labelled
// WatchFilterLabel=<value> (a manager without the flag reconciles all). A config, its jobs
// and its volumes carry the same value; a job passes its own on to the volumes it creates.
const WatchFilterLabel = "ossea.migratekit.io/watch-filter"

// ReleaseToAnnotation on a MigrationVolume being deleted whose CloudStack volume is attached
// to a VM other than its OMA VM (moved there by a person) names that VM: the volume is left
// where it is, tagged as released to it, and the object goes. Without it the deletion
// stalls (ReasonAttachedElsewhere): the operator never pulls a disk off a VM it did not
// attach it to.
const ReleaseToAnnotation = "ossea.migratekit.io/release-to"

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	// name of the referenced object, in the same namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +required
	Name string `json:"name"`
}

// The cluster identity: a UID the manager creates once, in a ConfigMap of its own
// namespace, and puts on every volume it creates (tag ossea.migratekit.io/cluster-id), so
// that two clusters sharing a CloudStack account never take each other's volumes for
// orphans.
const (
	ClusterIdentityConfigMap = "ossea-cluster-identity"
	ClusterIdentityKey       = "clusterID"
)
