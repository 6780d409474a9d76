package controllers

import (
	"context"
	"fmt"

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
)

// SetupIndexes registers the cache indexes; call it once per manager, before the
// controllers start.
func SetupIndexes(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &osseav1.MigrationVolume{}, indexVolumeConfig, func(o client.Object) []string {
		return []string{o.(*osseav1.MigrationVolume).Spec.OsseaConfigRef.Name}
	}); err != nil {
		return fmt.Errorf("indexing MigrationVolumes by config: %w", err)
	}
	if err := idx.IndexField(ctx, &osseav1.OsseaConfig{}, indexConfigSecret, func(o client.Object) []string {
		return []string{o.(*osseav1.OsseaConfig).Spec.CredentialsSecretRef.Name}
	}); err != nil {
		return fmt.Errorf("indexing OsseaConfigs by Secret: %w", err)
	}
	return nil
}
