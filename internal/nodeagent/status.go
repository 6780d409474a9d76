package nodeagent

import (
	"context"
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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
// reconcile. From the copy the write is a guarded patch (see patchGuarded), which a write
// by the manager in between does not refuse unless it touched what the report was computed
// from; only then does the write fall back to a read and a write locked on the version
// read. A report by which the copy would not change is not sent: should the copy be stale
// and the object differ, the watch event that brings the newer version starts another
// reconcile, which writes then. It also hands back, in seen, the object as it stands after
// the write (or as read or cached, when there was nothing to write): a caller that writes
// the object next starts from its current resourceVersion instead of a copy the write has
// just made stale.
func writeStatusSeen(ctx context.Context, c client.Client, reader client.Reader, key client.ObjectKey, generation int64, volumeID string,
	r *report, seen, cached *osseav1.MigrationVolume) error {
	if cached != nil && cached.ResourceVersion != "" {
		done, err := patchGuarded(ctx, c, cached, generation, volumeID, r, seen)
		if done || err != nil {
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

// patchGuarded writes r as a JSON patch computed from cached that replaces only the
// agent's condition and fields, after testing, on the server's current object, what the
// report was computed from: the same volume, and the Mounted condition where and as the
// copy has it (so its lastTransitionTime stays right). Status writes by the manager cluster
// around the agent's (the attach it sees done as the disk appears), and a lock on cached's
// resourceVersion would refuse the agent's write for any of them, costing a read and a
// second write on the way to Mounted. done is false when the guard failed or the copy
// cannot be patched this way: the caller then reads and writes with the lock.
func patchGuarded(ctx context.Context, c client.Client, cached *osseav1.MigrationVolume, generation int64, volumeID string,
	r *report, seen *osseav1.MigrationVolume) (done bool, _ error) {
	if volumeID != "" && cached.Status.VolumeID != volumeID {
		return true, nil // the report is about a volume the object no longer has
	}
	if cached.Status.VolumeID == "" {
		return false, nil
	}
	obj := cached.DeepCopy()
	r.apply(&obj.Status, generation)
	if equality.Semantic.DeepEqual(cached.Status, obj.Status) {
		keep(obj, seen)
		return true, nil
	}
	ops := []jsonPatchOp{{Op: "test", Path: "/status/volumeID", Value: cached.Status.VolumeID}}
	if r.reason != "" {
		cond := meta.FindStatusCondition(obj.Status.Conditions, osseav1.ConditionMounted)
		switch i := conditionIndex(cached.Status.Conditions, osseav1.ConditionMounted); {
		case i >= 0:
			at := fmt.Sprintf("/status/conditions/%d", i)
			ops = append(ops,
				jsonPatchOp{Op: "test", Path: at + "/type", Value: osseav1.ConditionMounted},
				jsonPatchOp{Op: "test", Path: at + "/status", Value: cached.Status.Conditions[i].Status},
				jsonPatchOp{Op: "replace", Path: at, Value: cond})
		case len(cached.Status.Conditions) > 0:
			// Appended; should another Mounted entry have arrived meanwhile, the API server
			// refuses the duplicate key of the list map.
			ops = append(ops, jsonPatchOp{Op: "add", Path: "/status/conditions/-", Value: cond})
		default:
			return false, nil // no list to append to, and none to test
		}
	}
	for _, f := range []struct {
		name      string
		was, want string
	}{
		{"devicePath", cached.Status.DevicePath, obj.Status.DevicePath},
		{"mountPath", cached.Status.MountPath, obj.Status.MountPath},
		{"filesystemType", cached.Status.FilesystemType, obj.Status.FilesystemType},
		{"nodeName", cached.Status.NodeName, obj.Status.NodeName},
	} {
		if f.was != f.want {
			ops = append(ops, jsonPatchOp{Op: "add", Path: "/status/" + f.name, Value: f.want})
		}
	}
	data, err := json.Marshal(ops)
	if err != nil {
		return false, err
	}
	err = c.Status().Patch(ctx, obj, client.RawPatch(types.JSONPatchType, data))
	switch {
	case err == nil:
		keep(obj, seen)
		return true, nil
	case apierrors.IsNotFound(err):
		return true, nil
	case apierrors.IsInvalid(err) || apierrors.IsConflict(err):
		return false, nil // a test failed: the copy is stale where it matters
	}
	return false, err
}

type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

func conditionIndex(conds []metav1.Condition, condType string) int {
	for i := range conds {
		if conds[i].Type == condType {
			return i
		}
	}
	return -1
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
	keep(obj, seen)
	return nil
}

// keep hands obj back in seen, if the caller asked for it.
func keep(obj, seen *osseav1.MigrationVolume) {
	if seen != nil {
		obj.DeepCopyInto(seen)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
