package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Size bounds of one disk. The kubebuilder markers below cannot name a constant, so they
// spell these numbers out; the schema tests hold the two in step.
const (
	// MaxDiskSizeGiB is the largest sizeGiB of a disk (and of a MigrationVolume).
	MaxDiskSizeGiB = 65536
	// MaxDiskCapacityBytes is MaxDiskSizeGiB in bytes, the largest capacityBytes of a disk.
	MaxDiskCapacityBytes int64 = MaxDiskSizeGiB << 30
)

// MigrationJobPlacement says which OsseaConfig (which OMA VM) the job may go to: one by
// name, or any Ready one of the job's namespace that a label selector matches.
// +kubebuilder:validation:XValidation:rule="has(self.osseaConfigRef) != has(self.osseaConfigSelector)",message="exactly one of osseaConfigRef and osseaConfigSelector must be set"
type MigrationJobPlacement struct {
	// osseaConfigRef names the one OsseaConfig (same namespace) the job must go to.
	// +optional
	OsseaConfigRef *LocalObjectReference `json:"osseaConfigRef,omitempty"`

	// osseaConfigSelector picks the candidates among the OsseaConfigs of the job's
	// namespace by their labels; the job goes to the Ready one with the most free
	// data-disk slots (ties by name). An empty selector matches every OsseaConfig of the
	// namespace.
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'])",message="matchExpressions operator must be In, NotIn, Exists or DoesNotExist",fieldPath=`.matchExpressions`
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, (e.operator in ['In', 'NotIn']) == (has(e.values) && size(e.values) > 0))",message="matchExpressions values must be set for In and NotIn, and only for them",fieldPath=`.matchExpressions`
	// +optional
	OsseaConfigSelector *metav1.LabelSelector `json:"osseaConfigSelector,omitempty"`
}

// MigrationJobDisk is one disk of the source VM. The job controller makes one
// MigrationVolume of it, named <job>-<name>.
// +kubebuilder:validation:XValidation:rule="has(self.sizeGiB) != has(self.capacityBytes)",message="exactly one of sizeGiB and capacityBytes must be set"
// +kubebuilder:validation:XValidation:rule="!(has(self.filesystem) && self.mode == 'Block')",message="filesystem must not be set when mode is Block"
type MigrationJobDisk struct {
	// name identifies the disk within the job. It becomes the MigrationVolume's diskName,
	// a directory name under the job's directory, so it is a lower-case DNS label: a-z,
	// 0-9 and '-', 1 to 63 characters.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +required
	Name string `json:"name"`

	// sizeGiB is the size of the volume in GiB, 1 to 65536. Set this or capacityBytes.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65536
	// +optional
	SizeGiB *int32 `json:"sizeGiB,omitempty"`

	// capacityBytes is the source disk's size in bytes (VMware's capacityInBytes), 1 to
	// 65536 GiB; the volume gets it rounded up to whole GiB. Set this or sizeGiB.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=70368744177664
	// +optional
	CapacityBytes *int64 `json:"capacityBytes,omitempty"`

	// mode: Filesystem (the default) formats a blank device and mounts it at
	// <mount root>/<job>/<name>; Block only attaches the volume and publishes the device
	// path.
	// +kubebuilder:default=Filesystem
	// +optional
	Mode VolumeMode `json:"mode,omitempty"`

	// filesystem to create and mount in Filesystem mode (default ext4, format only if
	// blank). Not allowed in Block mode.
	// +optional
	Filesystem *FilesystemSpec `json:"filesystem,omitempty"`

	// diskOfferingID is the UUID of the disk offering to create the volume with, instead of
	// the OsseaConfig's. It must take a custom size.
	// +kubebuilder:validation:Pattern=`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`
	// +kubebuilder:validation:MaxLength=36
	// +optional
	DiskOfferingID string `json:"diskOfferingID,omitempty"`
}

// VolumeSizeGiB is the size in GiB of the volume to create for the disk: sizeGiB, or
// capacityBytes rounded up to whole GiB (one byte over a GiB takes the next GiB). It is 0
// for a disk the API server refuses (neither or both set, or a size out of bounds), so a
// caller never creates a volume of a size it did not mean.
func (d MigrationJobDisk) VolumeSizeGiB() int32 {
	switch {
	case d.SizeGiB != nil && d.CapacityBytes == nil:
		if *d.SizeGiB < 1 || *d.SizeGiB > MaxDiskSizeGiB {
			return 0
		}
		return *d.SizeGiB
	case d.CapacityBytes != nil && d.SizeGiB == nil:
		b := *d.CapacityBytes
		if b < 1 || b > MaxDiskCapacityBytes {
			return 0
		}
		return int32((b + 1<<30 - 1) >> 30) // no overflow: b is at most 2^46
	}
	return 0
}

// MigrationJobCutover hands the job's disks to the migrated (target) VM: the root disk first,
// at device 0, then the data disks in spec.disks order.
type MigrationJobCutover struct {
	// targetVirtualMachineID is the UUID of the migrated VM, in the config's zone. With a
	// rootDisk it must be Stopped.
	// +kubebuilder:validation:Pattern=`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`
	// +kubebuilder:validation:MaxLength=36
	// +required
	TargetVirtualMachineID string `json:"targetVirtualMachineID"`

	// rootDisk names the disk of spec.disks that becomes the target's root disk; without it
	// every disk is attached as a data disk.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +optional
	RootDisk string `json:"rootDisk,omitempty"`
}

// MigrationJobSpec is one migration job: one source VM, its disks, one OMA.
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.cutover) || (has(self.cutover) && self.cutover == oldSelf.cutover)",message="cutover is immutable once set",fieldPath=`.cutover`
// +kubebuilder:validation:XValidation:rule="!has(self.cutover) || !has(self.cutover.rootDisk) || self.disks.exists(d, d.name == self.cutover.rootDisk)",message="cutover.rootDisk must name a disk of spec.disks",fieldPath=`.cutover.rootDisk`
type MigrationJobSpec struct {
	// vmName is the source VM's real name, as the source hypervisor shows it (spaces,
	// capitals and parentheses are fine), 1 to 80 characters without control characters.
	// Immutable.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=80
	// +kubebuilder:validation:Pattern=`^[^\x00-\x1F\x7F]+$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="vmName is immutable"
	// +required
	VMName string `json:"vmName"`

	// placement says which OsseaConfig the job goes to: exactly one of osseaConfigRef and
	// osseaConfigSelector. All disks of the job go to the same one. Immutable.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="placement is immutable"
	// +required
	Placement MigrationJobPlacement `json:"placement"`

	// disks of the source VM, 1 to 64, each name once. Immutable.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="disks is immutable"
	// +required
	Disks []MigrationJobDisk `json:"disks"`

	// deletionPolicy, given to every disk: Delete (the default) deletes the CloudStack
	// volumes when the job is deleted; Retain detaches them and keeps them, tagged as
	// retained.
	// +kubebuilder:default=Delete
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// cutover, once set, hands every disk to the target VM, once all are Ready: the last
	// step of a migration. Afterwards the disks belong to the target: deleting the job
	// never detaches nor deletes them. Immutable once set.
	// +optional
	Cutover *MigrationJobCutover `json:"cutover,omitempty"`
}

// MigrationJobPhase is a one-word summary of a job for display. Controllers never read it
// to decide anything: they read conditions and fields.
// +kubebuilder:validation:Enum=Pending;Placing;Provisioning;Ready;CuttingOver;HandedOff;Deleting;Failed
type MigrationJobPhase string

const (
	JobPhasePending      MigrationJobPhase = "Pending"
	JobPhasePlacing      MigrationJobPhase = "Placing"
	JobPhaseProvisioning MigrationJobPhase = "Provisioning"
	JobPhaseCuttingOver  MigrationJobPhase = "CuttingOver"
	JobPhaseHandedOff    MigrationJobPhase = "HandedOff"
	JobPhaseReady        MigrationJobPhase = "Ready"
	JobPhaseDeleting     MigrationJobPhase = "Deleting"
	JobPhaseFailed       MigrationJobPhase = "Failed"
)

// MigrationJobPlacementStatus is the OsseaConfig the job was placed on.
type MigrationJobPlacementStatus struct {
	// osseaConfigName is the OsseaConfig (same namespace) every disk of the job goes to.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	OsseaConfigName string `json:"osseaConfigName"`

	// omaVirtualMachineID is the UUID of that config's OMA VM, the VM every disk is
	// attached to.
	// +kubebuilder:validation:Pattern=`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`
	// +kubebuilder:validation:MaxLength=36
	// +required
	OMAVirtualMachineID string `json:"omaVirtualMachineID"`
}

// MigrationJobDiskCount counts the job's disks.
type MigrationJobDiskCount struct {
	// total is the number of disks in spec.disks.
	// +kubebuilder:validation:Minimum=0
	Total int32 `json:"total"`
	// ready is the number of those whose MigrationVolume is Ready.
	// +kubebuilder:validation:Minimum=0
	Ready int32 `json:"ready"`
}

// MigrationJobDiskStatus is one line per disk: where its MigrationVolume is.
type MigrationJobDiskStatus struct {
	// name of the disk in spec.disks.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +required
	Name string `json:"name"`

	// phase of the disk's MigrationVolume.
	// +optional
	Phase Phase `json:"phase,omitempty"`

	// volumeID is the UUID of the CloudStack volume.
	// +optional
	VolumeID string `json:"volumeID,omitempty"`

	// devicePath is the stable by-id path of the disk on the OMA VM.
	// +optional
	DevicePath string `json:"devicePath,omitempty"`

	// mountPath is where the node agent mounted the filesystem (Filesystem mode).
	// +optional
	MountPath string `json:"mountPath,omitempty"`

	// targetDeviceID is the disk's device id on the target VM, once handed off.
	// +optional
	TargetDeviceID *int64 `json:"targetDeviceID,omitempty"`
}

// MigrationJobStatus is where the job is in its life.
//
// The disks are reported twice, for two kinds of reader. status.disks has one line per
// disk, keyed by the same name as spec.disks, so spec.disks[name=x] and
// status.disks[name=x] are the same disk and a JSONPath such as
// {.status.disks[?(@.name=="disk0")].mountPath} reads as it says. The counters that the
// issue calls "disks: {total, ready}" cannot share that key (one JSON field cannot be both
// a list and an object), and nesting the lines under it (disks.items[]) would lengthen
// every per-disk path for the sake of two integers; so they are status.diskCount.
// status.disksReady is the same count as text ("2/3") for the Disks printer column, which
// cannot compute.
//
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.placement) || (has(self.placement) && self.placement == oldSelf.placement)",message="status.placement never changes once written",fieldPath=`.placement`
type MigrationJobStatus struct {
	// phase is a one-word summary for display; read conditions to decide anything.
	// +optional
	Phase MigrationJobPhase `json:"phase,omitempty"`

	// conditions: Ready (every disk Ready), Reconciling, Stalled (a disk is stalled: the
	// message says which and why), Placed.
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the generation the controller last acted on; -1 until it has
	// looked at the object.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// placement is the OsseaConfig the job was placed on. It is written before any volume
	// is created and never changes afterwards (the API server refuses a change).
	// +optional
	Placement *MigrationJobPlacementStatus `json:"placement,omitempty"`

	// diskCount counts the disks, and those Ready.
	// +optional
	DiskCount *MigrationJobDiskCount `json:"diskCount,omitempty"`

	// disksReady is diskCount as text, ready/total ("2/3"), for display.
	// +kubebuilder:validation:MaxLength=5
	// +kubebuilder:validation:Pattern=`^[0-9]{1,2}/[0-9]{1,2}$`
	// +optional
	DisksReady string `json:"disksReady,omitempty"`

	// disks has one line per disk of spec.disks: where its MigrationVolume is.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	// +optional
	Disks []MigrationJobDiskStatus `json:"disks,omitempty"`
}

// MigrationJob is one migration job: the disks of one source VM, each a MigrationVolume
// (named <job>-<disk>) that the job owns, all placed on one OsseaConfig's OMA VM. The
// object's name is the jobID, so it is a DNS label of at most 63 characters.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mj,categories=ossea
// +kubebuilder:printcolumn:name="VM",type=string,JSONPath=`.spec.vmName`
// +kubebuilder:printcolumn:name="OMA",type=string,JSONPath=`.status.placement.osseaConfigName`
// +kubebuilder:printcolumn:name="Disks",type=string,JSONPath=`.status.disksReady`,description="Disks Ready / disks"
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63",message="metadata.name must be at most 63 characters: it is the jobID",fieldPath=`.metadata`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must be a lower-case DNS label (a-z, 0-9 and '-'): it is the jobID, a directory name on the OMA",fieldPath=`.metadata`
type MigrationJob struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the job: the source VM, its disks, where they go.
	// +required
	Spec MigrationJobSpec `json:"spec"`

	// status is where the job is in its life.
	// +kubebuilder:default={"observedGeneration":-1}
	// +optional
	Status MigrationJobStatus `json:"status,omitempty"`
}

// MigrationJobList is a list of MigrationJobs.
// +kubebuilder:object:root=true
type MigrationJobList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MigrationJob `json:"items"`
}

func init() {
	SchemeBuilder.Register(&MigrationJob{}, &MigrationJobList{})
}
