package controllers

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

// Cache indexes the controllers look objects up by.
const (
	// indexVolumeConfig: MigrationVolumes by spec.osseaConfigRef.name.
	indexVolumeConfig = "spec.osseaConfigRef.name"
	// indexConfigSecret: OsseaConfigs by spec.credentialsSecretRef.name.
	indexConfigSecret = "spec.credentialsSecretRef.name"
	// indexAttachedVM: MigrationVolumes by status.attachedVirtualMachineID, to count a VM's
	// slots without asking CloudStack.
	indexAttachedVM = "status.attachedVirtualMachineID"
	// indexWaitingForSlot: MigrationVolumes waiting for a free slot, by their config's
	// name, so that a freed slot wakes only those instead of listing every volume.
	indexWaitingForSlot = "waitingForSlot"
	// indexJobWaiting: MigrationJobs not placed yet ("true"), so that freed slots wake only
	// those.
	indexJobWaiting = "waitingForPlacement"
)

// setupIndexes registers the cache indexes; call it once per manager, before the
// controllers start.
func setupIndexes(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &osseav1.MigrationVolume{}, indexVolumeConfig, func(o client.Object) []string {
		return []string{o.(*osseav1.MigrationVolume).Spec.OsseaConfigRef.Name}
	}); err != nil {
		return fmt.Errorf("indexing MigrationVolumes by config: %w", err)
	}
	if err := idx.IndexField(ctx, &osseav1.MigrationVolume{}, indexAttachedVM, func(o client.Object) []string {
		if vm := o.(*osseav1.MigrationVolume).Status.AttachedVirtualMachineID; vm != "" {
			return []string{vm}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("indexing MigrationVolumes by attached VM: %w", err)
	}
	if err := idx.IndexField(ctx, &osseav1.MigrationVolume{}, indexWaitingForSlot, func(o client.Object) []string {
		mv := o.(*osseav1.MigrationVolume)
		if c := meta.FindStatusCondition(mv.Status.Conditions, osseav1.ConditionAttached); c != nil && c.Reason == osseav1.ReasonCapacityExhausted {
			return []string{mv.Spec.OsseaConfigRef.Name}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("indexing MigrationVolumes waiting for a slot: %w", err)
	}
	if err := idx.IndexField(ctx, &osseav1.MigrationJob{}, indexJobWaiting, func(o client.Object) []string {
		if job := o.(*osseav1.MigrationJob); job.Status.Placement == nil && job.DeletionTimestamp.IsZero() {
			return []string{"true"}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("indexing MigrationJobs waiting for a placement: %w", err)
	}
	if err := idx.IndexField(ctx, &osseav1.OsseaConfig{}, indexConfigSecret, func(o client.Object) []string {
		return []string{o.(*osseav1.OsseaConfig).Spec.CredentialsSecretRef.Name}
	}); err != nil {
		return fmt.Errorf("indexing OsseaConfigs by Secret: %w", err)
	}
	return nil
}
