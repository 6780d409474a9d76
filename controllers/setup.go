package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
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
//
// With a watch filter (the --watch-filter flag) the cache holds only the OsseaConfigs,
// MigrationJobs and MigrationVolumes labelled osseav1.WatchFilterLabel=<watchFilter>: this
// manager's shard. The API server filters the lists and watches, so a manager neither
// reconciles nor holds in memory another shard's objects, and its placement, slot counts,
// drift and orphan checks see only its own shard. Secrets are not filtered: nobody labels
// them for the operator, and the manager only watches their metadata to revalidate its own
// configs when their credentials change.
func CacheOptions(namespace, watchFilter string) (cache.Options, error) {
	o := cache.Options{
		// Nothing reads managedFields; without them a cached MigrationVolume is about
		// half the size, which counts with thousands of them.
		DefaultTransform: cache.TransformStripManagedFields(),
	}
	if namespace != "" {
		o.DefaultNamespaces = map[string]cache.Config{namespace: {}}
	}
	if watchFilter == "" {
		return o, nil
	}
	shard, err := WatchFilterSelector(watchFilter)
	if err != nil {
		return cache.Options{}, err
	}
	o.ByObject = map[client.Object]cache.ByObject{}
	for _, kind := range shardedKinds() {
		o.ByObject[kind] = cache.ByObject{Label: shard}
	}
	return o, nil
}

// shardedKinds are the kinds a watch filter applies to: every kind the manager reconciles.
func shardedKinds() []client.Object {
	return []client.Object{&osseav1.OsseaConfig{}, &osseav1.MigrationJob{}, &osseav1.MigrationVolume{}}
}

// WatchFilterSelector is the label selector of the shard watchFilter names. The value must
// be a label value and, since it also names the shard's leader election Lease (see
// LeaderElectionID), fit in a Lease name: lower case letters, digits and '-', at most 63.
func WatchFilterSelector(watchFilter string) (labels.Selector, error) {
	if errs := validation.IsDNS1123Label(watchFilter); len(errs) > 0 {
		return nil, fmt.Errorf("watch filter %q: %s", watchFilter, strings.Join(errs, "; "))
	}
	return labels.SelectorFromSet(labels.Set{osseav1.WatchFilterLabel: watchFilter}), nil
}

// leaderElectionBase is the Lease of the manager without a watch filter (config/default
// and config/namespaced grant it by this name).
const leaderElectionBase = "ossea-operator.migratekit.io"

// LeaderElectionID is the name of the leader election Lease of the shard watchFilter names.
// Each shard elects its own leader: were the Lease shared, one shard's leader would keep
// every other shard's replicas waiting, and only one shard would ever be reconciled.
func LeaderElectionID(watchFilter string) string {
	if watchFilter == "" {
		return leaderElectionBase
	}
	return leaderElectionBase + "-" + watchFilter
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
