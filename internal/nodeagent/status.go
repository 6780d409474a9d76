package nodeagent

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

// Reasons of the Mounted condition, the only condition the agent writes.
const (
	// True.
	ReasonMounted   = "Mounted"   // Filesystem mode: mounted read-write
	ReasonPublished = "Published" // Block mode: device found and verified

	// False, transient: the agent is working or waiting.
	ReasonWaitingForDevice = "WaitingForDevice"
	ReasonUnmounting       = "Unmounting"
	ReasonUnmounted        = "Unmounted"
	ReasonNotAttached      = "NotAttached" // a claim let go: the attach did not finish

	// False, a person has to act (the agent keeps watching and recovers by itself once
	// the cause is gone).
	ReasonDeviceNotFound     = "DeviceNotFound"
	ReasonDeviceSizeMismatch = "DeviceSizeMismatch"
	ReasonDeviceNotBlank     = "DeviceNotBlank"
	ReasonFilesystemMismatch = "FilesystemMismatch"
	ReasonDeviceBlank        = "DeviceBlank" // formatPolicy Never on a blank device
	ReasonDeviceInUse        = "DeviceInUse" // mounted somewhere else already
	ReasonInvalidMountPath   = "InvalidMountPath"
	ReasonMountFailed        = "MountFailed"
	ReasonFormatFailed       = "FormatFailed"
	ReasonUnmountBusy        = "UnmountBusy"
	ReasonDeviceDetached     = "DeviceDetached"

	// Events only.
	ReasonFormatted = "Formatted"
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

// apply writes r into st, touching nothing the manager owns.
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

// writeStatus records r on the object. The manager writes the same status concurrently
// (Allocated, Attached, Ready, phase, ...), and a JSON merge patch replaces the conditions
// list whole, so every write changes only the agent's condition and fields of a copy that
// carries its resourceVersion: if the manager wrote in between, the API server answers
// Conflict and the write is redone on a fresh read instead of reverting the manager's
// change. A write that would change nothing is not sent, so an agent restart leaves the
// object untouched.
//
// volumeID, when not empty, must still be the object's volume: a report about a device is
// dropped if the manager replaced the volume meanwhile.
func writeStatus(ctx context.Context, c client.Client, reader client.Reader, key client.ObjectKey, generation int64, volumeID string, r *report) error {
	return writeStatusSeen(ctx, c, reader, key, generation, volumeID, r, nil, nil)
}

// writeStatusSeen is writeStatus that starts from cached, the caller's copy, when given:
// that saves a read, since the copy is current right after the event that started the
// reconcile. A stale copy costs one Conflict and then a read. A report by which the copy
// would not change is not sent: should the copy be stale and the object differ, the watch
// event that brings the newer version starts another reconcile, which writes then. It also
// hands back, in seen, the object as it stands after the write (or as read or cached, when
// there was nothing to write): a caller that writes the object next starts from its
// current resourceVersion instead of a copy the write has just made stale.
func writeStatusSeen(ctx context.Context, c client.Client, reader client.Reader, key client.ObjectKey, generation int64, volumeID string,
	r *report, seen, cached *osseav1.MigrationVolume) error {
	if cached != nil && cached.ResourceVersion != "" {
		err := patchStatus(ctx, c, cached.DeepCopy(), generation, volumeID, r, seen)
		if !apierrors.IsConflict(err) {
			return err
		}
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		fresh := &osseav1.MigrationVolume{}
		if err := reader.Get(ctx, key, fresh); err != nil {
			if apierrors.IsNotFound(err) {
				return nil // gone, and its status with it
			}
			return fmt.Errorf("reading %s before writing its status: %w", key, err)
		}
		return patchStatus(ctx, c, fresh, generation, volumeID, r, seen)
	})
}

// patchStatus applies r to obj and, if that changes anything, patches the difference
// with obj's resourceVersion as the lock (a Conflict is for the caller to retry).
func patchStatus(ctx context.Context, c client.Client, obj *osseav1.MigrationVolume, generation int64, volumeID string,
	r *report, seen *osseav1.MigrationVolume) error {
	if volumeID != "" && obj.Status.VolumeID != volumeID {
		return nil // the report is about a volume the object no longer has
	}
	base := obj.DeepCopy()
	r.apply(&obj.Status, generation)
	if !equality.Semantic.DeepEqual(base.Status, obj.Status) {
		if err := c.Status().Patch(ctx, obj, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return err
		}
	}
	if seen != nil {
		obj.DeepCopyInto(seen)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
