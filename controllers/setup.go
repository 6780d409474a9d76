package controllers

import (
	"context"
	"fmt"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/controller"
)

// Options are what the manager binary (and the tests, which run the same controllers
// in-process) choose about the controllers.
type Options struct {
	// Clouds builds the CloudStack client of each OsseaConfig.
	Clouds CloudFactory
	// RevalidateInterval is how often each OsseaConfig's connection test is repeated.
	RevalidateInterval time.Duration
	// DriftInterval is how often each config's settled volumes are compared with CloudStack.
	DriftInterval time.Duration
	// MaxConcurrentReconciles is how many MigrationVolumes are reconciled at once; 0 means
	// DefaultMaxConcurrentReconciles.
	MaxConcurrentReconciles int
	// LostCreateGrace is how long a create that got no answer may still land in CloudStack
	// (see volumeMemory.lostCreateSettled); 0 means DefaultLostCreateGrace.
	LostCreateGrace time.Duration
	// HandoffRecheck is how often a hand-off refused by a check on its target VM is
	// checked again; 0 means DefaultHandoffRecheck.
	HandoffRecheck time.Duration
	// ClusterID is this cluster's identity (see EnsureClusterIdentity), tagged on every
	// volume; the orphan check counts only volumes that carry it. Required.
	ClusterID string
}

// CacheOptions are the manager's cache settings, for cmd/manager and the tests alike. With
// a namespace (the --namespace flag), every kind the manager watches (its own kinds, and
// Secrets by metadata) is listed and watched in that namespace only, so a Role there is all
// it needs and no cluster-wide list or watch is ever asked for. Every List the controllers
// make without a namespace (the drift pass, the slot count of placement) then sees only
// that namespace too.
func CacheOptions(namespace string) cache.Options {
	o := cache.Options{
		// Nothing reads managedFields; without them a cached MigrationVolume is about
		// half the size, which counts with thousands of them.
		DefaultTransform: cache.TransformStripManagedFields(),
	}
	if namespace != "" {
		o.DefaultNamespaces = map[string]cache.Config{namespace: {}}
	}
	return o
}

// Setup wires the cache indexes and the controllers into mgr: the one place that says
// what the manager runs, for cmd/manager and the tests alike.
func Setup(ctx context.Context, mgr ctrl.Manager, o Options) error {
	if o.ClusterID == "" {
		return fmt.Errorf("no cluster identity: Options.ClusterID is required")
	}
	if err := setupIndexes(ctx, mgr); err != nil {
		return fmt.Errorf("setting up the cache indexes: %w", err)
	}
	configRecorder := mgr.GetEventRecorder("osseaconfig-controller")
	orphans := newOrphanSweeper(mgr.GetClient(), mgr.GetAPIReader(), configRecorder, o.ClusterID)
	if err := (&OsseaConfigReconciler{
		Client:             mgr.GetClient(),
		APIReader:          mgr.GetAPIReader(),
		Recorder:           configRecorder,
		Clouds:             o.Clouds,
		RevalidateInterval: o.RevalidateInterval,
		Orphans:            orphans,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the OsseaConfig controller: %w", err)
	}
	if err := (&MigrationVolumeReconciler{
		Client:          mgr.GetClient(),
		APIReader:       mgr.GetAPIReader(),
		Recorder:        mgr.GetEventRecorder("migrationvolume-controller"),
		Clouds:          o.Clouds,
		DriftInterval:   o.DriftInterval,
		LostCreateGrace: o.LostCreateGrace,
		HandoffRecheck:  o.HandoffRecheck,
		ClusterID:       o.ClusterID,
		Orphans:         orphans,
	}).SetupWithManager(mgr, controller.Options{MaxConcurrentReconciles: o.MaxConcurrentReconciles}); err != nil {
		return fmt.Errorf("setting up the MigrationVolume controller: %w", err)
	}
	if err := (&MigrationJobReconciler{
		Client:         mgr.GetClient(),
		APIReader:      mgr.GetAPIReader(),
		Recorder:       mgr.GetEventRecorder("migrationjob-controller"),
		Clouds:         o.Clouds,
		HandoffRecheck: o.HandoffRecheck,
	}).SetupWithManager(mgr, controller.Options{MaxConcurrentReconciles: DefaultJobConcurrency}); err != nil {
		return fmt.Errorf("setting up the MigrationJob controller: %w", err)
	}
	return nil
}
