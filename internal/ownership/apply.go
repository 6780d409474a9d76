// Package ownership writes what one writer of a MigrationVolume owns, with server-side
// apply: its part of the status, and its finalizer with its labels and annotations. It is
// the protocol by which the manager and the node agent share the object (the contract of
// who owns what is in api/v1alpha1).
// An apply names its owner and carries no resourceVersion, so a write by the other side in
// between neither refuses it nor is reverted by it. It carries the object's uid, so a write
// made for an object that is gone creates nothing (see skeleton).
package ownership

import (
	"context"
	"errors"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

// ApplyStatus makes part the status fields that owner holds on mv's object: fields of part
// that are set are written, fields the owner held before and part leaves empty are
// removed, and nobody else's fields are touched. Ownership is forced, so a field last
// written by an older version of the operator (an update, not an apply) is taken over
// instead of refused. On success mv is the object as the API server stored it; a gone
// object is not an error.
func ApplyStatus(ctx context.Context, c client.Client, mv *osseav1.MigrationVolume, part osseav1.MigrationVolumeStatus, owner string) error {
	status, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&part)
	if err != nil {
		return fmt.Errorf("encoding the status of %s/%s: %w", mv.Namespace, mv.Name, err)
	}
	u := skeleton(mv)
	u.Object["status"] = status
	err = c.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(owner), client.ForceOwnership)
	if err != nil {
		return ignoreGone(applyLandedNowhere, fmt.Errorf("applying the status of %s/%s as %s: %w", mv.Namespace, mv.Name, owner, err))
	}
	return stored(u, mv)
}

// Metadata is what one writer owns of a MigrationVolume's metadata: its finalizer, held
// or not, and labels and annotations of its own (the agent's claim of a volume for its
// node, the manager's create intent). It is written with the finalizer in one write, so a
// writer's hold on the object and what it says of it arrive together.
type Metadata struct {
	Finalizer string
	// Hold says whether Finalizer is to be present.
	Hold        bool
	Labels      map[string]string
	Annotations map[string]string
}

// ApplyMetadata makes owner's part of mv's metadata m: the finalizer present or absent,
// and exactly m's labels and annotations (one owner applied before and leaves out here is
// removed). The finalizers, labels and annotations are maps and sets: the other writer's,
// and a person's, are left alone. A finalizer that an older version of the operator added
// with an update is co-owned by that update, and an apply cannot take it away; it is then
// removed with a patch locked on the version just read (a Conflict is the caller's to
// retry). A gone object holds nothing: letting go is done, holding fails (with the API
// server's Conflict or Invalid: the object is not the one the caller read).
func ApplyMetadata(ctx context.Context, c client.Client, mv *osseav1.MigrationVolume, m Metadata, owner string) error {
	u := skeleton(mv)
	if m.Hold {
		u.SetFinalizers([]string{m.Finalizer})
	}
	if len(m.Labels) > 0 {
		u.SetLabels(m.Labels)
	}
	if len(m.Annotations) > 0 {
		u.SetAnnotations(m.Annotations)
	}
	err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(owner), client.ForceOwnership)
	if err != nil {
		err = fmt.Errorf("applying the metadata of %s/%s as %s (finalizer %s held: %t): %w", mv.Namespace, mv.Name, owner, m.Finalizer, m.Hold, err)
		if m.Hold {
			return err
		}
		return ignoreGone(applyLandedNowhere, err)
	}
	if err := stored(u, mv); err != nil || m.Hold || !slices.Contains(mv.Finalizers, m.Finalizer) {
		return err
	}
	base := mv.DeepCopy()
	controllerutil.RemoveFinalizer(mv, m.Finalizer)
	if err := c.Patch(ctx, mv, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return ignoreGone(apierrors.IsNotFound, fmt.Errorf("removing the finalizer %s of %s/%s: %w", m.Finalizer, mv.Namespace, mv.Name, err))
	}
	return nil
}

// skeleton is the object's identity, to which an apply adds what it owns. The uid makes
// the API server refuse the apply if no object with it is there any more: without it, an
// apply to a missing object would create one, and a finalizer applied to an object
// recreated under the same name would land on it (a status apply still does, see stored).
func skeleton(mv *osseav1.MigrationVolume) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{}}
	u.SetGroupVersionKind(osseav1.GroupVersion.WithKind("MigrationVolume"))
	u.SetNamespace(mv.Namespace)
	u.SetName(mv.Name)
	if mv.UID != "" {
		u.SetUID(mv.UID)
	}
	return u
}

// stored copies the metadata and status the API server answered with into mv (these writes
// cannot change the spec, so mv keeps its own). An object whose last finalizer went is
// gone, yet answered for: with the write applied, at the resourceVersion it had before (see
// LastWrite). An answer with no uid, or another object's, leaves mv as it was. Another
// object's can come: the status subresource takes nothing of metadata from a write, the uid
// included, so a status apply made for an object that was since deleted and recreated under
// its name lands on the new one (the ownership tags keep that one off the old volume); mv
// must not become that object.
func stored(u *unstructured.Unstructured, mv *osseav1.MigrationVolume) error {
	if u.GetUID() == "" || (mv.UID != "" && u.GetUID() != mv.UID) {
		return nil
	}
	obj := &osseav1.MigrationVolume{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, obj); err != nil {
		return fmt.Errorf("decoding the stored %s/%s: %w", mv.Namespace, mv.Name, err)
	}
	obj.ObjectMeta.DeepCopyInto(&mv.ObjectMeta)
	obj.Status.DeepCopyInto(&mv.Status)
	return nil
}

func ignoreGone(gone func(error) bool, err error) error {
	if gone(err) {
		return nil
	}
	return err
}

// applyLandedNowhere tells an apply refused because its object is no longer there: not
// found, or (the uid) a Conflict, the only one a forced apply without a resourceVersion can
// meet ("uid mismatch ... no existing object was found"), or the refusal to change the uid
// of an object that took the name.
func applyLandedNowhere(err error) bool {
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return true
	}
	var status apierrors.APIStatus
	if !apierrors.IsInvalid(err) || !errors.As(err, &status) || status.Status().Details == nil {
		return false
	}
	for _, c := range status.Status().Details.Causes {
		if c.Field == "metadata.uid" {
			return true
		}
	}
	return false
}
