package v1alpha1

// Every condition type and Reason of every kind, and the events' reasons, live here: they are
// the contract between the manager, the node agent and the people and tools reading status
// (kubectl wait, Flux, Argo CD). No binary spells one as a literal of its own.

// Condition types shared by every kind. Ready is the summary; Reconciling and Stalled follow
// the kstatus conventions (present only while True) so Flux, Argo CD and `kubectl wait` read
// progress correctly.
const (
	ConditionReady       = "Ready"
	ConditionReconciling = "Reconciling"
	ConditionStalled     = "Stalled"
)

// Detail condition types of an OsseaConfig, in the order the connection test runs them;
// Ready summarises them.
const (
	ConditionCredentialsValid = "CredentialsValid"
	ConditionConnected        = "Connected"
	ConditionResourcesFound   = "ResourcesFound"
)

// Detail condition types of a MigrationVolume; Ready summarises them. The manager writes
// Allocated and Attached, the node agent Mounted (see migrationvolume_ownership.go).
const (
	ConditionAllocated = "Allocated"
	ConditionAttached  = "Attached"
	ConditionMounted   = "Mounted"
	// ConditionHandedOff, present once spec.handoff is set: True when the volume is on the
	// target VM. Written by the manager.
	ConditionHandedOff = "HandedOff"
)

// Reasons used by every kind.
const (
	// ReasonProgressing is the Reconciling reason while work is under way.
	ReasonProgressing = "Progressing"
	// ReasonNotChecked marks a detail condition that was not evaluated because an earlier
	// check failed.
	ReasonNotChecked = "NotChecked"
	// ReasonCloudStackError: CloudStack answered with an error that a retry may cure; the
	// operator retries with backoff.
	ReasonCloudStackError = "CloudStackError"
	// ReasonPermissionDenied: the credentials are valid, but CloudStack refused their
	// account the operation on a resource (531: a volume or VM of another account, or a
	// role without the command). Retrying cannot help; a person must grant the access or
	// use the owning account's keys.
	ReasonPermissionDenied = "PermissionDenied"
)

// Reasons of an OsseaConfig's conditions. Each failure tells a person what to fix.
const (
	ReasonConnected           = "Connected"
	ReasonSecretFound         = "SecretFound"
	ReasonResourcesFound      = "ResourcesFound"
	ReasonSecretMissing       = "SecretMissing"
	ReasonSecretInvalid       = "SecretInvalid"
	ReasonUnreachable         = "Unreachable"
	ReasonTLSError            = "TLSError"
	ReasonUnauthorized        = "Unauthorized"
	ReasonZoneNotFound        = "ZoneNotFound"
	ReasonOMAVMNotFound       = "OMAVMNotFound"
	ReasonOMAVMNotUsable      = "OMAVMNotUsable"
	ReasonDiskOfferingInvalid = "DiskOfferingInvalid"
	// ReasonDeletionBlocked: the config is being deleted but volumes still use it.
	ReasonDeletionBlocked = "DeletionBlocked"
)

// Reasons of a MigrationVolume's Allocated and Attached conditions and of its teardown,
// written by the manager.
const (
	ReasonOsseaConfigNotReady = "OsseaConfigNotReady"
	ReasonCreating            = "Creating"
	ReasonTagging             = "Tagging"
	ReasonCreated             = "Created"
	ReasonAttaching           = "Attaching"
	ReasonAttached            = "Attached"
	ReasonNotAttached         = "NotAttached"
	ReasonCapacityExhausted   = "CapacityExhausted"
	ReasonWaitingForAgent     = "WaitingForAgent"
	ReasonDetaching           = "Detaching"
	ReasonDeleting            = "Deleting"

	// A person has to act.
	ReasonNameConflict       = "NameConflict"
	ReasonVolumeLost         = "VolumeLost"
	ReasonAttachedElsewhere  = "AttachedElsewhere"
	ReasonAccountLimit       = "AccountLimitExceeded"
	ReasonCloudStackRejected = "CloudStackRejected"
)

// Reasons of a MigrationVolume's HandedOff condition (also a MigrationJob's). The steps run
// in this order; the node agent lets go of the volume once the condition carries one of
// them (see ReleaseForHandoff), never before the checks on the target passed.
const (
	ReasonReleasing     = "Releasing"     // waiting for the node agent to unmount or unpublish
	ReasonReplacingRoot = "ReplacingRoot" // the target's placeholder root disk is being detached
	ReasonHandedOff     = "HandedOff"     // True: attached to the target VM
	// ReasonDetaching and ReasonAttaching (above) mark those two steps.

	// The checks on the target, made before anything is unmounted; each stalls the hand-off
	// with the disks still mounted on the OMA, so the copy can go on.
	ReasonTargetVMNotFound          = "TargetVMNotFound"
	ReasonTargetVMWrongZone         = "TargetVMWrongZone"
	ReasonTargetVMCapacityExhausted = "TargetVMCapacityExhausted"
	ReasonRootAttachUnsupported     = "RootAttachUnsupported"
	ReasonTargetVMNotStopped        = "TargetVMNotStopped"
	// ReasonTargetVMRootInUse: the target's root disk is one the operator handed to it; it
	// is never taken off again.
	ReasonTargetVMRootInUse = "TargetVMRootInUse"
)

// ReleaseForHandoff reports whether the node agent must let go of a volume for its
// hand-off: the manager asked for it (the checks on the target passed), or the agent let go
// already. It is for good: a step that fails later (HandedOff then carries its error) does
// not give the volume back to the agent, whose own report says it let go.
func ReleaseForHandoff(mv *MigrationVolume) bool {
	if mv.Spec.Handoff == nil {
		return false
	}
	for _, c := range mv.Status.Conditions {
		switch {
		case c.Type == ConditionMounted && c.Reason == ReasonReleasedForHandoff:
			return true
		case c.Type == ConditionHandedOff && (c.Status == "True" || handoffUnderWay[c.Reason]):
			return true
		}
	}
	return false
}

var handoffUnderWay = map[string]bool{
	ReasonReleasing: true, ReasonDetaching: true, ReasonReplacingRoot: true, ReasonAttaching: true, ReasonTagging: true,
}

// Reasons of a MigrationVolume's Mounted condition, written by the node agent.
const (
	// True. The event of a mount (reason Mounted) also says whether the agent formatted the
	// disk first.
	ReasonMounted   = "Mounted"   // Filesystem mode: mounted read-write
	ReasonPublished = "Published" // Block mode: device found and verified

	// False while the agent works or waits (ReasonNotAttached, above, when a claim is let
	// go because the attach did not finish).
	ReasonWaitingForDevice = "WaitingForDevice"
	ReasonUnmounting       = "Unmounting"
	// ReasonUnmounted: released on delete, said only in place of a report that a person
	// must act (see the agent's reportsDeleteRelease); otherwise the mount finalizer's going
	// says it.
	ReasonUnmounted = "Unmounted"
	// ReasonReleasedForHandoff: unmounted (or unpublished) and let go for the hand-off to
	// the target VM; the agent never claims the volume again.
	ReasonReleasedForHandoff = "ReleasedForHandoff"

	// False, retried by the agent: the host refused, and may not next time.
	ReasonMountFailed    = "MountFailed"
	ReasonFormatFailed   = "FormatFailed"
	ReasonUnmountBusy    = "UnmountBusy"
	ReasonDeviceDetached = "DeviceDetached"

	// False, a person has to act (the agent keeps watching and recovers by itself once
	// the cause is gone).
	ReasonDeviceNotFound     = "DeviceNotFound"
	ReasonDeviceSizeMismatch = "DeviceSizeMismatch"
	ReasonDeviceNotBlank     = "DeviceNotBlank"
	ReasonFilesystemMismatch = "FilesystemMismatch"
	ReasonDeviceBlank        = "DeviceBlank" // formatPolicy Never on a blank device
	ReasonDeviceInUse        = "DeviceInUse" // mounted somewhere else already
	ReasonInvalidMountPath   = "InvalidMountPath"
)

// Detail condition type of a MigrationJob; Ready (every disk's MigrationVolume Ready),
// Reconciling and Stalled (a disk is stalled: the message says which and why) are the
// shared ones.
const (
	// ConditionPlaced is True once status.placement names the OsseaConfig the job went to.
	ConditionPlaced = "Placed"
)

// Reasons of a MigrationJob's conditions. A job whose MigrationVolume name is taken by an
// object it does not own reports ReasonNameConflict (above) and leaves that object alone.
const (
	// ReasonPlaced: Placed is True; the message names the OsseaConfig.
	ReasonPlaced = "Placed"
	// ReasonInsufficientCapacity: no candidate has a free data-disk slot for every disk of
	// the job; the message lists each candidate's free and needed slots. The job waits and
	// is placed as soon as slots free up.
	ReasonInsufficientCapacity = "InsufficientCapacity"
	// ReasonNoCandidates: the selector matches no Ready OsseaConfig of the job's namespace
	// (for osseaConfigRef, the named config is missing or not Ready:
	// ReasonOsseaConfigNotReady). The job waits.
	ReasonNoCandidates = "NoCandidates"
	// ReasonInvalidSelector: the API server took a selector that is not a valid label
	// selector; the job is Stalled until it is recreated with a valid one.
	ReasonInvalidSelector = "InvalidSelector"
	// ReasonProvisioning: Ready is False while the job's volumes are created, attached and
	// mounted; the message counts the disks Ready and names the first that is not.
	ReasonProvisioning = "Provisioning"
	// ReasonDisksReady: Ready is True, every disk's MigrationVolume is Ready.
	ReasonDisksReady = "DisksReady"
	// ReasonCuttingOver: HandedOff (and Ready) is False while the cut-over hands the disks
	// to the target VM one by one; the message names the disk under way and its step.
	ReasonCuttingOver = "CuttingOver"
)

// Reasons of events only: outcomes that no condition keeps.
const (
	EventAdopted           = "Adopted"
	EventCreated           = "Created"
	EventDeleted           = "Deleted"
	EventDetached          = "Detached"
	EventRetained          = "Retained"
	EventReleased          = "Released"
	EventNotOwned          = "NotOwned"
	EventDirectoryNotEmpty = "DirectoryNotEmpty"
	// EventOrphansFound (Warning, on an OsseaConfig): the orphan check found volumes of
	// this cluster that no MigrationVolume stands for; the message lists the new ones.
	EventOrphansFound = "OrphansFound"
	// EventOrphanDeleted (on an OsseaConfig): orphanPolicy Delete deleted an orphan.
	EventOrphanDeleted = "OrphanDeleted"
	// EventOrphanDeleteFailed (Warning, on an OsseaConfig): deleting an orphan failed; it
	// is tried again on the next check.
	EventOrphanDeleteFailed = "OrphanDeleteFailed"
)

// needsPerson holds the MigrationVolume Reasons that, on a False detail condition, mean no
// retry will help: the volume is Stalled until a person acts.
var needsPerson = map[string]bool{
	ReasonPermissionDenied:   true,
	ReasonNameConflict:       true,
	ReasonVolumeLost:         true,
	ReasonAttachedElsewhere:  true,
	ReasonAccountLimit:       true,
	ReasonCloudStackRejected: true,
	ReasonDeviceNotFound:     true,
	ReasonDeviceSizeMismatch: true,
	ReasonDeviceNotBlank:     true,
	ReasonFilesystemMismatch: true,
	ReasonDeviceBlank:        true,
	ReasonDeviceInUse:        true,
	ReasonInvalidMountPath:   true,

	ReasonTargetVMNotFound:          true,
	ReasonTargetVMWrongZone:         true,
	ReasonTargetVMCapacityExhausted: true,
	ReasonRootAttachUnsupported:     true,
	ReasonTargetVMNotStopped:        true,
	ReasonTargetVMRootInUse:         true,
}

// NeedsPerson reports whether a MigrationVolume detail condition that is False with this
// Reason waits for a person (the volume is Stalled) rather than for time or a retry.
func NeedsPerson(reason string) bool { return needsPerson[reason] }
