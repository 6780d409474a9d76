package cloudstack

import (
	"context"
	"time"
)

// Cloud is everything the controllers may ask of CloudStack. No method waits for an async
// job: the job starters return the job id at once and PollJob reports on it later.
//
// Errors are classified (see the Err* classes and IsTerminal) and redacted. An operation
// that returns ErrTransient may still have taken effect (the reply can be lost after the
// change was made), so callers re-read before retrying a create; one that also matches
// ErrNotSent (ErrRateLimited: CloudStack's API throttling refused it) has not.
type Cloud interface {
	// Validate is the connection test of an OsseaConfig. On failure it returns what it
	// found so far and a *CheckError naming the failed check.
	Validate(ctx context.Context, req ValidateRequest) (*Validation, error)

	// CreateVolume starts allocating a volume; the volume id is known at once.
	CreateVolume(ctx context.Context, req CreateVolumeRequest) (volumeID, jobID string, err error)
	// AttachVolume starts attaching a volume to a VM at the lowest free device id.
	AttachVolume(ctx context.Context, volumeID, vmID string) (jobID string, err error)
	// AttachVolumeAt starts attaching a volume to a VM at device id deviceID; device 0
	// makes it the VM's root disk (the VM must be Stopped).
	AttachVolumeAt(ctx context.Context, volumeID, vmID string, deviceID int64) (jobID string, err error)
	// DetachVolume starts detaching a volume from whatever VM holds it.
	DetachVolume(ctx context.Context, volumeID string) (jobID string, err error)
	// CreateTags starts tagging a volume.
	CreateTags(ctx context.Context, volumeID string, tags map[string]string) (jobID string, err error)
	// DeleteTags starts removing the given key/value tags from a volume. tags must not be
	// empty: CloudStack reads an empty list as "every tag".
	DeleteTags(ctx context.Context, volumeID string, tags map[string]string) (jobID string, err error)
	// DeleteVolume deletes a detached volume; CloudStack does it synchronously. A volume
	// that is still attached yields ErrAlreadyAttached (attached to this config's OMA VM)
	// or ErrAttachedElsewhere.
	DeleteVolume(ctx context.Context, volumeID string) error

	// GetVolume reads one volume; ErrNotFound when CloudStack does not know the id.
	// Concurrent reads of one client share listVolumes calls, each call starting after
	// every read it answers was asked for, so a read is never older than the request.
	GetVolume(ctx context.Context, volumeID string) (*Volume, error)
	// FindVolumes lists the volumes that match every field set in the query.
	FindVolumes(ctx context.Context, q VolumeQuery) ([]Volume, error)
	// FindVolumesNamed lists the volumes with exactly this name. Concurrent lookups of one
	// client share listVolumes calls, as GetVolume's do.
	FindVolumesNamed(ctx context.Context, name string) ([]Volume, error)
	// GetVirtualMachine reads one VM; ErrNotFound when the credentials do not see it.
	GetVirtualMachine(ctx context.Context, vmID string) (*VirtualMachine, error)
	// CountDataVolumes counts the DATADISK volumes attached to a VM.
	CountDataVolumes(ctx context.Context, vmID string) (int, error)

	// PollJob asks once for the state of an async job. err is for the poll itself (the
	// job's own failure is in JobResult.Err); ErrNotFound means CloudStack does not know
	// the job.
	PollJob(ctx context.Context, jobID string) (JobResult, error)
}

// ValidateRequest carries the parts of an OsseaConfig spec the connection test checks.
type ValidateRequest struct {
	// Zone is the zone's name or UUID.
	Zone string
	// OMAVirtualMachineID is the UUID of the OMA's VM.
	OMAVirtualMachineID string
	// DiskOfferingID is optional; when empty the first custom-size offering is chosen.
	DiskOfferingID string
	// MaxDataVolumes overrides the per-VM data disk limit when set.
	MaxDataVolumes *int32
}

// Validation is what the connection test found.
type Validation struct {
	CloudStackVersion string
	// CustomDiskOfferingMaxSizeGiB is the largest custom size CloudStack accepts, 0 when
	// it did not say.
	CustomDiskOfferingMaxSizeGiB int64
	Zone                         Zone
	VirtualMachine               VirtualMachine
	DiskOffering                 DiskOffering
	// AttachedDataVolumes counts the data volumes attached to the OMA VM now.
	AttachedDataVolumes int
	// MaxDataVolumes is the OMA VM's data volume limit: the override if one was given,
	// else the factory's default.
	MaxDataVolumes int
}

// Zone is a resolved CloudStack zone.
type Zone struct {
	ID              string
	Name            string
	AllocationState string
}

// VirtualMachine is the part of a CloudStack VM the operator looks at.
type VirtualMachine struct {
	ID         string
	Name       string
	State      string
	ZoneID     string
	Hypervisor string
}

// DiskOffering is the part of a disk offering the operator looks at.
type DiskOffering struct {
	ID   string
	Name string
	// CustomSize is true when volumes of this offering take their size from createVolume.
	CustomSize bool
	// DiskSizeGiB is the fixed size of a non-custom offering.
	DiskSizeGiB int64
}

// CreateVolumeRequest describes a volume to allocate.
type CreateVolumeRequest struct {
	Name           string
	ZoneID         string
	DiskOfferingID string
	// SizeGiB is required for a custom-size offering and must be 0 for a fixed one.
	SizeGiB int64
}

// VolumeQuery filters FindVolumes; empty fields do not filter. Matching on Name is exact
// and on Tags requires every given key to have the given value.
type VolumeQuery struct {
	Name             string
	Tags             map[string]string
	ZoneID           string
	VirtualMachineID string
	// Type is DATADISK or ROOT.
	Type string
}

// Volume types.
const (
	VolumeTypeDataDisk = "DATADISK"
	VolumeTypeRoot     = "ROOT"
)

// Volume is a CloudStack volume as the operator sees it.
type Volume struct {
	ID             string
	Name           string
	Type           string
	State          string
	ZoneID         string
	DiskOfferingID string
	SizeBytes      int64
	// VirtualMachineID is empty when the volume is not attached.
	VirtualMachineID string
	VMState          string
	// DeviceID is nil when the volume is not attached.
	DeviceID *int64
	Tags     map[string]string
	// Created is zero when CloudStack did not say.
	Created time.Time
}

// Attached reports whether the volume is attached to a VM.
func (v *Volume) Attached() bool { return v.VirtualMachineID != "" }

// JobStatus is the state of an async job.
type JobStatus string

// Job states, as CloudStack's jobstatus 0, 1 and 2.
const (
	JobPending   JobStatus = "Pending"
	JobSucceeded JobStatus = "Succeeded"
	JobFailed    JobStatus = "Failed"
)

// JobResult is one look at an async job.
type JobResult struct {
	JobID  string
	Status JobStatus
	// Command is CloudStack's name for the job's command (often a Java class name).
	Command string
	// InstanceID is the id of the object the job works on, when CloudStack says.
	InstanceID string
	// Volume is the volume a succeeded volume job returned (create, attach, detach).
	Volume *Volume
	// Err is the classified failure of a failed job.
	Err error
}
