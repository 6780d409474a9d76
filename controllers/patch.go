package controllers

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/client"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

// patchHelper remembers an object as it was read and later writes only what changed, after
// cluster-api's patch helper. Finalizers are written with an optimistic lock: a merge patch
// replaces the list whole, so a finalizer the node agent added meanwhile must make our
// write fail and retry rather than vanish. Status is written as a diff of the status alone.
type patchHelper struct {
	c      client.Client
	before client.Object
	// lockStatus writes status with an optimistic lock too, for objects whose status
	// another writer shares (the node agent owns a MigrationVolume's Mounted condition).
	lockStatus bool
}

func newPatchHelper(obj client.Object, c client.Client) *patchHelper {
	return &patchHelper{c: c, before: obj.DeepCopyObject().(client.Object)}
}

// patch writes the changes made to obj since newPatchHelper or the last patch.
func (h *patchHelper) patch(ctx context.Context, obj client.Object) error {
	if err := h.write(ctx, obj); err != nil {
		return err
	}
	h.before = obj.DeepCopyObject().(client.Object)
	return nil
}

func (h *patchHelper) write(ctx context.Context, obj client.Object) error {
	desired := obj.DeepCopyObject().(client.Object)
	if !equality.Semantic.DeepEqual(h.before.GetFinalizers(), obj.GetFinalizers()) {
		if err := h.c.Patch(ctx, obj, client.MergeFromWithOptions(h.before, client.MergeFromWithOptimisticLock{})); err != nil {
			return fmt.Errorf("patching finalizers: %w", err)
		}
		if len(obj.GetFinalizers()) == 0 && obj.GetDeletionTimestamp() != nil {
			return nil // the object is gone, and its status with it
		}
		copyStatus(obj, desired) // the reply carried the stored status
	}
	if !equality.Semantic.DeepEqual(statusOf(h.before), statusOf(desired)) {
		base := obj.DeepCopyObject().(client.Object)
		copyStatus(base, h.before)
		var opts []client.MergeFromOption
		if h.lockStatus {
			opts = append(opts, client.MergeFromWithOptimisticLock{})
		}
		if err := h.c.Status().Patch(ctx, obj, client.MergeFromWithOptions(base, opts...)); err != nil {
			return fmt.Errorf("patching status: %w", err)
		}
	}
	return nil
}

func statusOf(obj client.Object) any {
	switch o := obj.(type) {
	case *osseav1.OsseaConfig:
		return o.Status
	case *osseav1.MigrationVolume:
		return o.Status
	}
	panic(fmt.Sprintf("patchHelper: unsupported type %T", obj))
}

func copyStatus(dst, src client.Object) {
	switch d := dst.(type) {
	case *osseav1.OsseaConfig:
		d.Status = *src.(*osseav1.OsseaConfig).Status.DeepCopy()
	case *osseav1.MigrationVolume:
		d.Status = *src.(*osseav1.MigrationVolume).Status.DeepCopy()
	default:
		panic(fmt.Sprintf("patchHelper: unsupported type %T", dst))
	}
}
