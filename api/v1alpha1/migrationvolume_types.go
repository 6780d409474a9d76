package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// VolumeMode says what the node agent does with an attached volume.
// +kubebuilder:validation:Enum=Filesystem;Block
type VolumeMode string

const (
	// VolumeModeFilesystem: format the device if it is blank and mount it.
	VolumeModeFilesystem VolumeMode = "Filesystem"
	// VolumeModeBlock: verify the device and publish its path; never format or mount.
	VolumeModeBlock VolumeMode = "Block"
)

// FilesystemType is a filesystem the node agent can create and mount.
// +kubebuilder:validation:Enum=ext4;xfs
type FilesystemType string

const (
	FilesystemExt4 FilesystemType = "ext4"
	FilesystemXFS  FilesystemType = "xfs"
)

// FormatPolicy says when the node agent may create a filesystem.
// +kubebuilder:validation:Enum=IfBlank;Never
type FormatPolicy string

const (
	// FormatIfBlank formats a device only when it holds no filesystem and no partition table.
	FormatIfBlank FormatPolicy = "IfBlank"
	// FormatNever never formats; a blank device is refused.
	FormatNever FormatPolicy = "Never"
)

// DeletionPolicy says what happens to the CloudStack volume when the object is deleted.
// +kubebuilder:validation:Enum=Delete;Retain
type DeletionPolicy string

const (
	DeletionPolicyDelete DeletionPolicy = "Delete"
	DeletionPolicyRetain DeletionPolicy = "Retain"
)

// Phase is a one-word summary for display. Controllers never read it to decide anything:
// they read conditions and fields.
type Phase string

const (
	PhasePending    Phase = "Pending"
	PhaseAllocated  Phase = "Allocated"
	PhaseReady      Phase = "Ready"
	PhaseAttached   Phase = "Attached"
	PhaseMounted    Phase = "Mounted"
	PhasePublished  Phase = "Published"
	PhaseUnmounting Phase = "Unmounting"
	PhaseDetaching  Phase = "Detaching"
	PhaseDeleting   Phase = "Deleting"
	PhaseFailed     Phase = "Failed"
	// PhaseHandingOff: spec.handoff is set and the volume is on its way to the target VM.
	PhaseHandingOff Phase = "HandingOff"
	// PhaseHandedOff: the volume is attached to the target VM and belongs to it.
	PhaseHandedOff Phase = "HandedOff"
)

// VolumeHandoff hands a finished volume to another VM: the migrated VM, as its root disk or
// as a data disk.
type VolumeHandoff struct {
	// virtualMachineID is the UUID of the target VM, in the config's zone, visible to its
	// credentials.
	// +kubebuilder:validation:Pattern=`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`
	// +kubebuilder:validation:MaxLength=36
	// +required
	VirtualMachineID string `json:"virtualMachineID"`

	// asRoot attaches the volume as the target's root disk, at device 0. The target must be
	// Stopped; a root disk it already has is detached and kept, tagged
	// ossea.migratekit.io/replaced-by=<this volume's id>.
	// +optional
	AsRoot bool `json:"asRoot,omitempty"`
}

// HandoffStatus is where the volume was handed off to.
type HandoffStatus struct {
	// virtualMachineID is the target VM.
	VirtualMachineID string `json:"virtualMachineID"`
	// deviceID is the volume's device id on the target VM (0 for its root disk).
	DeviceID int64 `json:"deviceID"`
	// completedAt is when the volume was seen attached to the target VM.
	CompletedAt metav1.Time `json:"completedAt"`
}

// ReservedTagPrefix starts the keys of the tags the operator puts on every CloudStack
// volume to prove ownership; spec.tags may not use it.
const ReservedTagPrefix = "ossea.migratekit.io/"

// FilesystemSpec is the filesystem of a volume in Filesystem mode.
type FilesystemSpec struct {
	// type of filesystem to create on a blank device, and to expect on one that is not.
	// +kubebuilder:default=ext4
	// +optional
	Type FilesystemType `json:"type,omitempty"`

	// formatPolicy: IfBlank formats a device that holds no filesystem and no partition
	// table; Never refuses a blank device. A device that holds data is never formatted.
	// +kubebuilder:default=IfBlank
	// +optional
	FormatPolicy FormatPolicy `json:"formatPolicy,omitempty"`
}

// MigrationVolumeSpec is one disk of one migration job.
// +kubebuilder:validation:XValidation:rule="!(has(self.filesystem) && self.mode == 'Block')",message="filesystem must not be set when mode is Block"
// +kubebuilder:validation:XValidation:rule="has(self.diskOfferingID) == has(oldSelf.diskOfferingID) && (!has(self.diskOfferingID) || self.diskOfferingID == oldSelf.diskOfferingID)",message="diskOfferingID is immutable"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.handoff) || (has(self.handoff) && self.handoff == oldSelf.handoff)",message="handoff is immutable once set",fieldPath=`.handoff`
type MigrationVolumeSpec struct {
	// osseaConfigRef names the OsseaConfig (same namespace) whose cloud and OMA VM the
	// volume lives in. Immutable.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="osseaConfigRef is immutable"
	// +required
	OsseaConfigRef LocalObjectReference `json:"osseaConfigRef"`

	// jobID identifies the migration job. It becomes a directory name under the mount root,
	// so it is a lower-case DNS label: a-z, 0-9 and '-', 1 to 63 characters. Immutable.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="jobID is immutable"
	// +required
	JobID string `json:"jobID"`

	// vmName is the source VM's real name, as the source hypervisor shows it (spaces,
	// capitals and parentheses are fine), 1 to 80 characters without control characters.
	// Immutable.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=80
	// +kubebuilder:validation:Pattern=`^[^\x00-\x1F\x7F]+$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="vmName is immutable"
	// +required
	VMName string `json:"vmName"`

	// diskName identifies the disk within the job. It becomes a directory name under the
	// job's directory, so it is a lower-case DNS label: a-z, 0-9 and '-', 1 to 63
	// characters. Immutable.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="diskName is immutable"
	// +required
	DiskName string `json:"diskName"`

	// sizeGiB is the size of the CloudStack volume in GiB, 1 to 65536. Immutable.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65536
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="sizeGiB is immutable"
	// +required
	SizeGiB int32 `json:"sizeGiB"`

	// diskOfferingID is the UUID of the disk offering to create the volume with, instead of
	// the OsseaConfig's. It must take a custom size. Immutable.
	// +kubebuilder:validation:Pattern=`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`
	// +kubebuilder:validation:MaxLength=36
	// +optional
	DiskOfferingID string `json:"diskOfferingID,omitempty"`

	// mode: Filesystem (the default) formats a blank device and mounts it at
	// <mount root>/<jobID>/<diskName>; Block only attaches the volume and publishes the
	// device path. Immutable.
	// +kubebuilder:default=Filesystem
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="mode is immutable"
	// +optional
	Mode VolumeMode `json:"mode,omitempty"`

	// filesystem to create and mount in Filesystem mode (default ext4, format only if
	// blank). Not allowed in Block mode.
	// +optional
	Filesystem *FilesystemSpec `json:"filesystem,omitempty"`

	// tags are extra CloudStack tags put on the volume. Keys up to 128 characters, values
	// up to 255; keys starting with "ossea.migratekit.io/" are reserved for the operator.
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) >= 1 && size(k) <= 128)",message="tags keys must be 1 to 128 characters"
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(self[k]) <= 255)",message="tags values must be at most 255 characters"
	// +kubebuilder:validation:XValidation:rule="self.all(k, !k.startsWith('ossea.migratekit.io/'))",message="tags keys starting with ossea.migratekit.io/ are reserved for the operator"
	// +optional
	Tags map[string]string `json:"tags,omitempty"`

	// deletionPolicy: Delete (the default) deletes the CloudStack volume when this object
	// is deleted; Retain detaches it and keeps it, tagged as retained.
	// +kubebuilder:default=Delete
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// handoff, once set, hands the volume to the target VM: the node agent unmounts it (or
	// unpublishes it, in Block mode), the manager detaches it from the OMA VM and attaches
	// it to the target. From then on the volume is the target's: deleting this object never
	// detaches nor deletes it. Immutable once set.
	// +optional
	Handoff *VolumeHandoff `json:"handoff,omitempty"`
}

// PendingJob is a CloudStack async job the manager started and has not seen finish.
type PendingJob struct {
	// id of the CloudStack async job.
	// +kubebuilder:validation:MaxLength=64
	ID string `json:"id"`
	// operation the job performs: create, attach, detach or tag.
	// +kubebuilder:validation:MaxLength=32
	Operation string `json:"operation"`
	// startedAt is when the manager started the job.
	StartedAt metav1.Time `json:"startedAt"`
}

// CloudStackError is the last error CloudStack answered, kept for people to read.
type CloudStackError struct {
	// code is CloudStack's error code (431, 530, ...); 0 for errors with no code, such as a
	// network failure.
	// +optional
	Code int32 `json:"code,omitempty"`
	// text is CloudStack's error text, with credentials removed.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Text string `json:"text,omitempty"`
}

// MigrationVolumeStatus is where the volume is in its life.
type MigrationVolumeStatus struct {
	// phase is a one-word summary for display; read conditions to decide anything.
	// +optional
	Phase Phase `json:"phase,omitempty"`

	// conditions: Ready (the summary), Reconciling, Stalled, Allocated, Attached, Mounted.
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the generation the manager last acted on; -1 until it has
	// looked at the object.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// volumeID is the UUID of the CloudStack volume.
	// +optional
	VolumeID string `json:"volumeID,omitempty"`

	// cloudStackState is the volume's state in CloudStack (Allocated, Ready, ...).
	// +optional
	CloudStackState string `json:"cloudStackState,omitempty"`

	// sizeBytes is the size CloudStack reports for the volume.
	// +optional
	SizeBytes int64 `json:"sizeBytes,omitempty"`

	// attachedVirtualMachineID is the UUID of the VM the volume is attached to, or is being
	// attached to while the attach job runs (the Attached condition tells which).
	// +optional
	AttachedVirtualMachineID string `json:"attachedVirtualMachineID,omitempty"`

	// deviceID is CloudStack's device slot of the attached volume. It does not predict the
	// guest device name; devicePath does.
	// +optional
	DeviceID *int64 `json:"deviceID,omitempty"`

	// devicePath is the stable by-id path of the disk on the OMA VM.
	// +optional
	DevicePath string `json:"devicePath,omitempty"`

	// mountPath is where the node agent mounted the filesystem.
	// +optional
	MountPath string `json:"mountPath,omitempty"`

	// filesystemType is the filesystem found or created on the device.
	// +optional
	FilesystemType string `json:"filesystemType,omitempty"`

	// nodeName is the node whose agent handles the volume.
	// +optional
	NodeName string `json:"nodeName,omitempty"`

	// pendingJob is the CloudStack async job in flight, if any. The manager resumes
	// polling it after a restart.
	// +optional
	PendingJob *PendingJob `json:"pendingJob,omitempty"`

	// lastCloudStackError is the last error CloudStack answered for this volume.
	// +optional
	LastCloudStackError *CloudStackError `json:"lastCloudStackError,omitempty"`

	// handoff is where the volume was handed off to, once it is there.
	// +optional
	Handoff *HandoffStatus `json:"handoff,omitempty"`
}

// MigrationVolume is one disk of one migration job: a CloudStack volume attached to the
// OMA VM and, in Filesystem mode, mounted at <mount root>/<jobID>/<diskName>.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mv,categories=ossea
// +kubebuilder:selectablefield:JSONPath=`.status.attachedVirtualMachineID`
// +kubebuilder:selectablefield:JSONPath=`.spec.osseaConfigRef.name`
// +kubebuilder:printcolumn:name="Job",type=string,JSONPath=`.spec.jobID`
// +kubebuilder:printcolumn:name="Disk",type=string,JSONPath=`.spec.diskName`
// +kubebuilder:printcolumn:name="Size",type=integer,JSONPath=`.spec.sizeGiB`,description="Size in GiB"
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Volume ID",type=string,JSONPath=`.status.volumeID`,priority=1
// +kubebuilder:printcolumn:name="Device",type=string,JSONPath=`.status.devicePath`,priority=1
// +kubebuilder:printcolumn:name="Mount",type=string,JSONPath=`.status.mountPath`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type MigrationVolume struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the disk to provide.
	// +required
	Spec MigrationVolumeSpec `json:"spec"`

	// status is where the volume is in its life.
	// +kubebuilder:default={"observedGeneration":-1}
	// +optional
	Status MigrationVolumeStatus `json:"status,omitempty"`
}

// MigrationVolumeList is a list of MigrationVolumes.
// +kubebuilder:object:root=true
type MigrationVolumeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MigrationVolume `json:"items"`
}

func init() {
	SchemeBuilder.Register(&MigrationVolume{}, &MigrationVolumeList{})
}
