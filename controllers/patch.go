package controllers

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/ownership"
)

// patchHelper remembers an object as it was read and later writes only what changed, after
// cluster-api's patch helper. Finalizers are written with an optimistic lock: a merge patch
// replaces the list whole, so a finalizer the node agent added meanwhile must make our
// write fail and retry rather than vanish. An OsseaConfig's or a MigrationJob's status, which the
// manager alone writes, is written as a diff of the status; a MigrationVolume's, which it shares
// with the node agent, is applied server-side: the manager's part only, as its owner (see
// api/v1alpha1's ownership contract), so that neither writer can refuse or revert the
// other's write.
type patchHelper struct {
	c      client.Client
	before client.Object
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
	if mv, ok := obj.(*osseav1.MigrationVolume); ok {
		return h.applyVolume(ctx, mv)
	}
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
	if equality.Semantic.DeepEqual(ownStatus(h.before), ownStatus(desired)) {
		return nil
	}
	base := obj.DeepCopyObject().(client.Object)
	copyStatus(base, h.before)
	if err := h.c.Status().Patch(ctx, obj, client.MergeFrom(base)); err != nil {
		return fmt.Errorf("patching status: %w", err)
	}
	return nil
}

// applyVolume writes what the manager owns of a MigrationVolume, its metadata (see
// managerMetadata) and its part of the status, each applied as its own (see package
// ownership): the node agent writes its own at the same time, and neither side's write can
// refuse or revert the other's.
func (h *patchHelper) applyVolume(ctx context.Context, mv *osseav1.MigrationVolume) error {
	before := h.before.(*osseav1.MigrationVolume)
	status := mv.Status.ManagerPart() // an apply below replaces mv with the stored object
	if own := managerMetadata(mv); !equality.Semantic.DeepEqual(own, managerMetadata(before)) {
		if err := ownership.ApplyMetadata(ctx, h.c, mv, own, osseav1.ManagerFieldOwner); err != nil {
			return err
		}
		if !own.Hold && len(mv.Finalizers) == 0 {
			return nil // the object is gone, and its status with it
		}
	}
	if equality.Semantic.DeepEqual(before.Status.ManagerPart(), status) {
		return nil
	}
	return ownership.ApplyStatus(ctx, h.c, mv, status, osseav1.ManagerFieldOwner)
}

// patchMetadata writes the manager's metadata of a MigrationVolume alone, ahead of the
// status changes made so far, which the next patch writes.
func (h *patchHelper) patchMetadata(ctx context.Context, mv *osseav1.MigrationVolume) error {
	status := mv.Status.DeepCopy() // the apply replaces mv with the stored object
	if err := ownership.ApplyMetadata(ctx, h.c, mv, managerMetadata(mv), osseav1.ManagerFieldOwner); err != nil {
		return err
	}
	mv.Status = *status
	before := h.before.(*osseav1.MigrationVolume)
	mv.ObjectMeta.DeepCopyInto(&before.ObjectMeta)
	return nil
}

// managerMetadata is what the manager owns of a MigrationVolume's metadata: its finalizer
// and its create intent.
func managerMetadata(mv *osseav1.MigrationVolume) ownership.Metadata {
	m := ownership.Metadata{Finalizer: osseav1.VolumeFinalizer, Hold: controllerutil.ContainsFinalizer(mv, osseav1.VolumeFinalizer)}
	if at, ok := mv.Annotations[osseav1.CreateIntentAnnotation]; ok {
		m.Annotations = map[string]string{osseav1.CreateIntentAnnotation: at}
	}
	return m
}

// ownStatus is the status of an object whose status the manager alone writes.
func ownStatus(obj client.Object) any {
	switch o := obj.(type) {
	case *osseav1.OsseaConfig:
		return o.Status
	case *osseav1.MigrationJob:
		return o.Status
	}
	panic(fmt.Sprintf("patchHelper: unsupported type %T", obj))
}

func copyStatus(dst, src client.Object) {
	switch d := dst.(type) {
	case *osseav1.OsseaConfig:
		d.Status = *src.(*osseav1.OsseaConfig).Status.DeepCopy()
	case *osseav1.MigrationJob:
		d.Status = *src.(*osseav1.MigrationJob).Status.DeepCopy()
	default: // a MigrationVolume's status is applied (see applyVolume), never copied
		panic(fmt.Sprintf("patchHelper: unsupported type %T", dst))
	}
}
