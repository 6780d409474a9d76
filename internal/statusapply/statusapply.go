// Package statusapply writes one writer's part of a MigrationVolume's status with
// server-side apply: the protocol by which the manager and the node agent share the status
// (see the ownership contract in api/v1alpha1).
package statusapply

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

// Apply makes part the status fields that owner holds on mv's object: fields of part that
// are set are written, fields the owner held before and part leaves empty are removed,
// and nobody else's fields are touched. Ownership is forced, so a field last written by an
// older version of the operator (an update, not an apply) is taken over instead of
// refused. On success mv carries the object as the API server stored it; a gone object is
// not an error.
func Apply(ctx context.Context, c client.Client, mv *osseav1.MigrationVolume, part osseav1.MigrationVolumeStatus, owner string) error {
	status, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&part)
	if err != nil {
		return fmt.Errorf("encoding the status of %s/%s: %w", mv.Namespace, mv.Name, err)
	}
	u := &unstructured.Unstructured{Object: map[string]any{"status": status}}
	u.SetGroupVersionKind(osseav1.GroupVersion.WithKind("MigrationVolume"))
	u.SetNamespace(mv.Namespace)
	u.SetName(mv.Name)
	err = c.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(owner), client.ForceOwnership)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("applying the status of %s/%s as %s: %w", mv.Namespace, mv.Name, owner, err)
	}
	stored := &osseav1.MigrationVolume{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, stored); err != nil {
		return fmt.Errorf("decoding the stored %s/%s: %w", mv.Namespace, mv.Name, err)
	}
	stored.DeepCopyInto(mv)
	return nil
}
