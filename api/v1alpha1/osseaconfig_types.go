package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// OsseaConfigSpec is one CloudStack (OSSEA) endpoint, the credentials to use it and the
// virtual machine of the migration appliance (OMA) that volumes are attached to.
// +kubebuilder:validation:XValidation:rule="!(has(self.caBundle) && has(self.insecureSkipTLSVerify) && self.insecureSkipTLSVerify)",message="caBundle and insecureSkipTLSVerify are mutually exclusive: trust a CA or skip verification, not both"
type OsseaConfigSpec struct {
	// apiURL is the CloudStack API endpoint, for example
	// https://cloud.example.com/client/api. Only http and https are accepted.
	// +kubebuilder:validation:MinLength=8
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.startsWith('http://') || self.startsWith('https://')",message="apiURL must be an http:// or https:// URL"
	// +kubebuilder:validation:XValidation:rule="isURL(self)",message="apiURL must be a valid URL"
	// +required
	APIURL string `json:"apiURL"`

	// credentialsSecretRef names a Secret in the same namespace holding the CloudStack
	// API credentials under the keys `apiKey` and `secretKey`.
	// +required
	CredentialsSecretRef LocalObjectReference `json:"credentialsSecretRef"`

	// zone is the CloudStack zone that volumes are created in, by name or by UUID.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:Pattern=`^[^\x00-\x1F\x7F]+$`
	// +required
	Zone string `json:"zone"`

	// omaVirtualMachineID is the UUID of the migration appliance's own VM in CloudStack.
	// Every volume of this config is attached to it. Immutable: volumes already attached
	// would otherwise be stranded on the old VM.
	// +kubebuilder:validation:Pattern=`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`
	// +kubebuilder:validation:MaxLength=36
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="omaVirtualMachineID is immutable"
	// +required
	OMAVirtualMachineID string `json:"omaVirtualMachineID"`

	// diskOfferingID is the UUID of the disk offering new volumes use unless a
	// MigrationVolume names its own. It must take a custom size. When unset, the first
	// custom-size offering of the zone is used.
	// +kubebuilder:validation:Pattern=`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`
	// +kubebuilder:validation:MaxLength=36
	// +optional
	DiskOfferingID string `json:"diskOfferingID,omitempty"`

	// caBundle is a PEM bundle of CA certificates to trust for an https apiURL, in addition
	// to nothing else: when set, the system roots are not used.
	// +kubebuilder:validation:MaxLength=65536
	// +optional
	CABundle string `json:"caBundle,omitempty"`

	// insecureSkipTLSVerify turns off TLS certificate verification. Only for tests; the
	// default is to verify.
	// +optional
	InsecureSkipTLSVerify bool `json:"insecureSkipTLSVerify,omitempty"`

	// maxDataVolumes overrides the number of data volumes the OMA VM can hold, for
	// hypervisors whose limit CloudStack does not report correctly.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	// +optional
	MaxDataVolumes *int32 `json:"maxDataVolumes,omitempty"`

	// orphanPolicy says what becomes of the orphans of this config: CloudStack volumes this
	// cluster made for it that no MigrationVolume stands for any more (its finalizers were
	// removed by force, say). Report (the default) counts them in status.orphans, with a
	// Warning event and the metric ossea_orphan_volumes. Delete also deletes each one that
	// has stayed an orphan, detached, for orphanGracePeriod. Volumes kept by
	// deletionPolicy Retain, handed off to a target VM or released where a person attached
	// them are never orphans, and volumes of another cluster are never looked at.
	// +kubebuilder:validation:Enum=Report;Delete
	// +kubebuilder:default=Report
	// +optional
	OrphanPolicy OrphanPolicy `json:"orphanPolicy,omitempty"`

	// orphanGracePeriod is how long a volume must have been seen orphaned, on every check,
	// before orphanPolicy Delete deletes it. The count restarts when the manager restarts.
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$')",message="orphanGracePeriod must be a duration such as 24h, 90m or 0s (not negative)"
	// +kubebuilder:default="24h"
	// +optional
	OrphanGracePeriod *metav1.Duration `json:"orphanGracePeriod,omitempty"`
}

// OrphanPolicy is what the manager does with orphaned volumes.
type OrphanPolicy string

const (
	// OrphanReport reports orphans and leaves them alone.
	OrphanReport OrphanPolicy = "Report"
	// OrphanDelete deletes detached orphans after the grace period.
	OrphanDelete OrphanPolicy = "Delete"
)

// MaxReportedOrphans caps status.orphans.volumeIDs.
const MaxReportedOrphans = 50

// OsseaConfigOrphans is what the last orphan check of a config found.
type OsseaConfigOrphans struct {
	// count is the number of orphans found.
	Count int32 `json:"count"`
	// volumeIDs are the CloudStack ids of the orphans, longest orphaned first, at most 50.
	// +kubebuilder:validation:MaxItems=50
	// +listType=atomic
	// +optional
	VolumeIDs []string `json:"volumeIDs,omitempty"`
}

// OsseaConfigCapacity counts the data volume slots of the OMA VM at the last connection test.
type OsseaConfigCapacity struct {
	// attachedDataVolumes is the number of data volumes attached to the OMA VM now.
	AttachedDataVolumes int32 `json:"attachedDataVolumes"`
	// maxDataVolumes is the number of data volumes the OMA VM can hold.
	MaxDataVolumes int32 `json:"maxDataVolumes"`
}

// OsseaConfigStatus is what the last connection test found.
type OsseaConfigStatus struct {
	// conditions: Ready (the connection test passed), Reconciling and Stalled.
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the generation the controller last acted on; -1 until it has
	// looked at the object.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// zoneID is the UUID of the zone that spec.zone resolved to.
	// +optional
	ZoneID string `json:"zoneID,omitempty"`

	// diskOfferingID is the UUID of the disk offering volumes are created with by default.
	// +optional
	DiskOfferingID string `json:"diskOfferingID,omitempty"`

	// omaVirtualMachineName is the CloudStack name of the OMA VM.
	// +optional
	OMAVirtualMachineName string `json:"omaVirtualMachineName,omitempty"`

	// omaVirtualMachineState is the CloudStack state of the OMA VM (Running, Stopped, ...).
	// +optional
	OMAVirtualMachineState string `json:"omaVirtualMachineState,omitempty"`

	// cloudStackVersion is the version the endpoint reported.
	// +optional
	CloudStackVersion string `json:"cloudStackVersion,omitempty"`

	// lastValidated is when the connection test last passed.
	// +optional
	LastValidated *metav1.Time `json:"lastValidated,omitempty"`

	// capacity counts the OMA VM's data volume slots, as found by the last connection test.
	// +optional
	Capacity *OsseaConfigCapacity `json:"capacity,omitempty"`

	// orphans is what the last orphan check found (see spec.orphanPolicy); unset until the
	// first check, which runs with the drift check.
	// +optional
	Orphans *OsseaConfigOrphans `json:"orphans,omitempty"`
}

// OsseaConfig is one CloudStack (OSSEA) endpoint, its credentials and the OMA VM, with a
// connection test kept up to date in its status.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=osc,categories=ossea
// +kubebuilder:printcolumn:name="Zone",type=string,JSONPath=`.spec.zone`
// +kubebuilder:printcolumn:name="OMA VM",type=string,JSONPath=`.status.omaVirtualMachineName`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
// +kubebuilder:printcolumn:name="Orphans",type=integer,JSONPath=`.status.orphans.count`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type OsseaConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the endpoint, credentials and OMA VM.
	// +required
	Spec OsseaConfigSpec `json:"spec"`

	// status is the result of the last connection test.
	// +kubebuilder:default={"observedGeneration":-1}
	// +optional
	Status OsseaConfigStatus `json:"status,omitempty"`
}

// OsseaConfigList is a list of OsseaConfigs.
// +kubebuilder:object:root=true
type OsseaConfigList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []OsseaConfig `json:"items"`
}

func init() {
	SchemeBuilder.Register(&OsseaConfig{}, &OsseaConfigList{})
}
