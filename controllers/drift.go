package controllers

import (
	"context"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudstack"
)

// driftChecker compares, once per DriftInterval and OsseaConfig, what CloudStack has
// attached to the OMA VM with the MigrationVolumes that say they are attached there: one
// listVolumes per config, however many volumes it holds, and no status write when nothing
// changed. A volume that is missing from the list or sits at another device (detached,
// moved or deleted outside the operator) is marked stale and reconciled, which reads it and
// acts: attaches it again, or reports it lost.
type driftChecker struct {
	r      *MigrationVolumeReconciler
	events chan<- event.GenericEvent
	log    logr.Logger
}

// Start checks every config each DriftInterval (with 10% jitter) until ctx ends. It runs on
// the leader only, as the controllers do.
func (d *driftChecker) Start(ctx context.Context) error {
	wait.JitterUntilWithContext(ctx, d.checkAll, d.r.DriftInterval, 0.1, false)
	return nil
}

func (d *driftChecker) checkAll(ctx context.Context) {
	var configs osseav1.OsseaConfigList
	if err := d.r.List(ctx, &configs); err != nil {
		d.log.Error(err, "Listing OsseaConfigs for the drift check")
		return
	}
	for i := range configs.Items {
		if ctx.Err() != nil {
			return
		}
		cfg := &configs.Items[i]
		if !cfg.DeletionTimestamp.IsZero() || !meta.IsStatusConditionTrue(cfg.Status.Conditions, osseav1.ConditionReady) {
			continue // nothing could be done about drift now anyway
		}
		if err := d.check(ctx, cfg); err != nil {
			d.log.Info("Drift check failed; trying again next period", "osseaConfig", client.ObjectKeyFromObject(cfg), "error", err.Error())
		}
		if err := d.sweepOrphans(ctx, cfg); err != nil {
			d.log.Info("Orphan check failed; trying again next period", "osseaConfig", client.ObjectKeyFromObject(cfg), "error", err.Error())
		}
	}
}

// sweepOrphans looks for the config's orphans (see orphanSweeper): one more listVolumes per
// config and period, whatever the number of volumes.
func (d *driftChecker) sweepOrphans(ctx context.Context, cfg *osseav1.OsseaConfig) error {
	if d.r.Orphans == nil {
		return nil
	}
	cloud, err := d.r.cloudFor(ctx, cfg)
	if err != nil {
		return err
	}
	return d.r.Orphans.sweep(log.IntoContext(ctx, d.log.WithValues("osseaConfig", client.ObjectKeyFromObject(cfg))), cfg, cloud)
}

// check compares one config's settled volumes with one listing of the OMA VM's data disks.
func (d *driftChecker) check(ctx context.Context, cfg *osseav1.OsseaConfig) error {
	var list osseav1.MigrationVolumeList
	if err := d.r.List(ctx, &list, client.InNamespace(cfg.Namespace), client.MatchingFields{indexVolumeConfig: cfg.Name}); err != nil {
		return err
	}
	var settled []*osseav1.MigrationVolume
	for i := range list.Items {
		mv := &list.Items[i]
		if mv.DeletionTimestamp.IsZero() && mv.Status.PendingJob == nil && mv.Status.VolumeID != "" &&
			meta.IsStatusConditionTrue(mv.Status.Conditions, osseav1.ConditionAttached) {
			settled = append(settled, mv)
		}
	}
	if len(settled) == 0 {
		return nil
	}
	cloud, err := d.r.cloudFor(ctx, cfg)
	if err != nil {
		return err
	}
	vols, err := cloud.FindVolumes(ctx, cloudstack.VolumeQuery{VirtualMachineID: cfg.Spec.OMAVirtualMachineID, Type: cloudstack.VolumeTypeDataDisk})
	if err != nil {
		return err
	}
	attached := make(map[string]cloudstack.Volume, len(vols))
	for _, v := range vols {
		attached[strings.ToLower(v.ID)] = v
	}
	for _, mv := range settled {
		v, ok := attached[strings.ToLower(mv.Status.VolumeID)]
		if ok && derefOr(v.DeviceID, -1) == derefOr(mv.Status.DeviceID, -1) {
			continue
		}
		d.log.Info("Volume drifted from its recorded attachment; reconciling it", "migrationVolume", client.ObjectKeyFromObject(mv),
			"volumeID", mv.Status.VolumeID, "attached", ok)
		d.r.mem.markStale(mv.UID)
		select {
		case d.events <- event.GenericEvent{Object: mv}:
		case <-ctx.Done():
			return nil
		case <-time.After(10 * time.Second):
			// The controller is not taking events; the stale mark stays for its next look.
		}
	}
	return nil
}
