package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudstack"
)

// DefaultOrphanGracePeriod is how long a detached orphan waits before orphanPolicy Delete
// deletes it, when the config does not say.
const DefaultOrphanGracePeriod = 24 * time.Hour

// orphanSweeper finds, on the drift pass, each config's orphans: volumes tagged as made by
// this cluster for the config that no MigrationVolume stands for any more. One listVolumes
// per config, filtered by those two tags, answers for all its volumes, however many; the API
// server is asked about the few candidates, and each candidate is read once more from
// CloudStack after its object was found gone. What it finds is published by
// the config controller, the one writer of an OsseaConfig's status: the sweeper only keeps
// the report and wakes that controller when it changes.
//
// Under orphanPolicy Delete it deletes an orphan only when every one of these holds: it
// carries this cluster's tag, it is detached, it was not kept on purpose (Retain, hand-off,
// release), the API server confirms that the MigrationVolume its tags name is gone, and it
// has been seen orphaned on every check for the grace period. The grace period is counted in
// memory, so a restarted manager starts it again: later, never sooner.
type orphanSweeper struct {
	cache     client.Reader
	apiReader client.Reader
	recorder  events.EventRecorder
	clusterID string
	// changed wakes the config controller to publish a changed report.
	changed chan event.GenericEvent
	now     func() time.Time

	mu sync.Mutex
	// seen holds, per config, when each current orphan was first seen orphaned.
	seen    map[types.NamespacedName]map[string]time.Time
	reports map[types.NamespacedName]osseav1.OsseaConfigOrphans
}

func newOrphanSweeper(cache, apiReader client.Reader, recorder events.EventRecorder, clusterID string) *orphanSweeper {
	return &orphanSweeper{
		cache: cache, apiReader: apiReader, recorder: recorder, clusterID: clusterID,
		changed: make(chan event.GenericEvent, 64),
		now:     time.Now,
		seen:    map[types.NamespacedName]map[string]time.Time{},
		reports: map[types.NamespacedName]osseav1.OsseaConfigOrphans{},
	}
}

// orphanVerdict is what a volume of this cluster and config is to the sweep.
type orphanVerdict int

const (
	notOrphan orphanVerdict = iota
	// orphanAttached is reported but never deleted: something may be using it.
	orphanAttached
	// orphanDetached is reported, and deleted under orphanPolicy Delete after the grace.
	orphanDetached
)

// judgeOrphan says what a volume tagged by this cluster for the config is, given whether the
// MigrationVolume its tags name still exists.
func judgeOrphan(vol *cloudstack.Volume, objectExists bool) orphanVerdict {
	switch {
	case objectExists, keptOnPurpose(vol.Tags), going(vol.State):
		return notOrphan
	case vol.Attached():
		return orphanAttached
	}
	return orphanDetached
}

// keptOnPurpose reports whether the operator left the volume behind on purpose: retained by
// deletionPolicy, handed off to a target VM, released where a person attached it, or a
// target's root it swapped out.
func keptOnPurpose(tags map[string]string) bool {
	return tags[TagRetained] == "true" || tags[TagHandedOffTo] != "" || tags[TagReleasedTo] != "" || tags[TagReplacedBy] != ""
}

// going reports whether CloudStack is already removing the volume.
func going(state string) bool {
	switch strings.ToLower(state) {
	case "destroy", "expunging", "expunged":
		return true
	}
	return false
}

// orphanDue reports whether an orphan first seen at firstSeen has waited out the grace.
func orphanDue(firstSeen, now time.Time, grace time.Duration) bool {
	return !now.Before(firstSeen.Add(grace))
}

// graceOf is the config's orphan grace period.
func graceOf(cfg *osseav1.OsseaConfig) time.Duration {
	if cfg.Spec.OrphanGracePeriod == nil {
		return DefaultOrphanGracePeriod
	}
	return cfg.Spec.OrphanGracePeriod.Duration
}

// orphan is one orphan found by a sweep.
type orphan struct {
	id, name, attachedTo string
}

// sweep looks for the config's orphans with one listVolumes, deletes the due ones under
// orphanPolicy Delete, and keeps the report.
func (o *orphanSweeper) sweep(ctx context.Context, cfg *osseav1.OsseaConfig, cloud cloudstack.Cloud) error {
	vols, err := cloud.FindVolumes(ctx, cloudstack.VolumeQuery{Tags: map[string]string{
		TagCluster: o.clusterID,
		TagConfig:  configTagValue(cfg.Namespace, cfg.Name),
	}})
	if err != nil {
		return fmt.Errorf("listing the volumes this cluster made for the config: %w", err)
	}
	var found []orphan
	for i := range vols {
		v := &vols[i]
		exists, err := o.objectExists(ctx, v.Tags)
		if err != nil {
			return err
		}
		if exists || judgeOrphan(v, false) == notOrphan {
			continue
		}
		// The list was taken before the object was found gone, and an object's finalizer
		// goes only once its volume is deleted: read the volume again, now, so that one
		// deleted by its own object between the two looks is not taken for an orphan.
		if v, err = o.stillThere(ctx, cloud, v.ID); err != nil {
			return err
		}
		if v != nil && judgeOrphan(v, false) != notOrphan {
			found = append(found, orphan{id: v.ID, name: v.Name, attachedTo: v.VirtualMachineID})
		}
	}
	key := client.ObjectKeyFromObject(cfg)
	firstSeen, fresh := o.remember(key, found)
	if cfg.Spec.OrphanPolicy == osseav1.OrphanDelete {
		found = o.deleteDue(ctx, cfg, cloud, found, firstSeen)
	}
	if len(fresh) > 0 {
		o.recorder.Eventf(cfg, nil, corev1.EventTypeWarning, osseav1.EventOrphansFound, "Sweep", "%s", foundMessage(cfg, fresh))
	}
	o.publish(ctx, cfg, found, firstSeen)
	return nil
}

// objectExists reports whether the MigrationVolume a volume's tags name exists with the UID
// they give. The cache answers for the many that do; the API server confirms the few that
// seem gone, since a cache can lag behind an object another replica just made.
func (o *orphanSweeper) objectExists(ctx context.Context, tags map[string]string) (bool, error) {
	ns, name, ok := strings.Cut(tags[TagOwner], "/")
	if !ok || tags[TagUID] == "" {
		return true, nil // not carrying our whole tag set: never taken for an orphan
	}
	key := types.NamespacedName{Namespace: ns, Name: name}
	mv := &osseav1.MigrationVolume{}
	if err := o.cache.Get(ctx, key, mv); err == nil && string(mv.UID) == tags[TagUID] {
		return true, nil
	}
	err := o.apiReader.Get(ctx, key, mv)
	switch {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("reading MigrationVolume %s: %w", key, err)
	}
	return string(mv.UID) == tags[TagUID], nil
}

// stillThere reads a candidate orphan again; nil when it is gone.
func (o *orphanSweeper) stillThere(ctx context.Context, cloud cloudstack.Cloud, id string) (*cloudstack.Volume, error) {
	v, err := cloud.GetVolume(ctx, id)
	switch {
	case errors.Is(err, cloudstack.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading candidate orphan %s: %w", id, err)
	}
	return v, nil
}

// remember records when each orphan was first seen, forgetting those no longer orphaned (a
// volume must be seen orphaned on every check to come due), and returns the times and the
// orphans not seen before.
func (o *orphanSweeper) remember(key types.NamespacedName, found []orphan) (map[string]time.Time, []orphan) {
	o.mu.Lock()
	defer o.mu.Unlock()
	before := o.seen[key]
	now := o.now()
	seen := make(map[string]time.Time, len(found))
	var fresh []orphan
	for _, or := range found {
		if t, ok := before[or.id]; ok {
			seen[or.id] = t
			continue
		}
		seen[or.id] = now
		fresh = append(fresh, or)
	}
	o.seen[key] = seen
	return seen, fresh
}

// deleteDue deletes the detached orphans that have waited out the grace and returns the
// orphans left.
func (o *orphanSweeper) deleteDue(ctx context.Context, cfg *osseav1.OsseaConfig, cloud cloudstack.Cloud, found []orphan, firstSeen map[string]time.Time) []orphan {
	grace, now := graceOf(cfg), o.now()
	left := found[:0:0]
	for _, or := range found {
		if or.attachedTo != "" || !orphanDue(firstSeen[or.id], now, grace) {
			left = append(left, or)
			continue
		}
		err := cloud.DeleteVolume(ctx, or.id)
		if errors.Is(err, cloudstack.ErrNotFound) {
			// Gone by other hands since it was read: nothing was deleted here.
			o.unsee(cfg, or.id)
			continue
		}
		if err != nil {
			log.FromContext(ctx).Info("Deleting an orphaned volume failed; trying again on the next check", "volumeID", or.id, "error", err.Error())
			o.recorder.Eventf(cfg, nil, corev1.EventTypeWarning, osseav1.EventOrphanDeleteFailed, "Delete",
				"deleting orphaned volume %s failed, tried again on the next check: %v", or.id, err)
			left = append(left, or)
			continue
		}
		orphansDeleted.WithLabelValues(cfg.Namespace, cfg.Name).Inc()
		o.recorder.Eventf(cfg, nil, corev1.EventTypeNormal, osseav1.EventOrphanDeleted, "Delete",
			"deleted orphaned volume %s (%s), detached and orphaned since %s (orphanPolicy Delete, orphanGracePeriod %s)",
			or.id, or.name, firstSeen[or.id].UTC().Format(time.RFC3339), grace)
		o.unsee(cfg, or.id)
	}
	return left
}

// unsee forgets a volume that is gone, so that nothing of it is counted again.
func (o *orphanSweeper) unsee(cfg *osseav1.OsseaConfig, id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.seen[client.ObjectKeyFromObject(cfg)], id)
}

// publish keeps the report of what is left and wakes the config controller when it changed.
func (o *orphanSweeper) publish(ctx context.Context, cfg *osseav1.OsseaConfig, left []orphan, firstSeen map[string]time.Time) {
	report := orphanReport(left, firstSeen)
	key := client.ObjectKeyFromObject(cfg)
	orphanVolumes.WithLabelValues(cfg.Namespace, cfg.Name).Set(float64(report.Count))
	o.mu.Lock()
	old, had := o.reports[key]
	o.reports[key] = report
	o.mu.Unlock()
	if had && old.Count == report.Count && slices.Equal(old.VolumeIDs, report.VolumeIDs) {
		return
	}
	select {
	case o.changed <- event.GenericEvent{Object: cfg}:
	case <-ctx.Done():
	}
}

// orphanReport is the status report of the orphans: the count, and the ids of the longest
// orphaned first, capped.
func orphanReport(left []orphan, firstSeen map[string]time.Time) osseav1.OsseaConfigOrphans {
	ids := make([]string, 0, len(left))
	for _, or := range left {
		ids = append(ids, or.id)
	}
	slices.SortFunc(ids, func(a, b string) int {
		if c := firstSeen[a].Compare(firstSeen[b]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	report := osseav1.OsseaConfigOrphans{Count: int32(len(ids))}
	if len(ids) > 0 {
		report.VolumeIDs = ids[:min(len(ids), osseav1.MaxReportedOrphans)]
	}
	return report
}

// reportOf is the config's last report, if a sweep has made one.
func (o *orphanSweeper) reportOf(key types.NamespacedName) (osseav1.OsseaConfigOrphans, bool) {
	if o == nil {
		return osseav1.OsseaConfigOrphans{}, false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	r, ok := o.reports[key]
	return r, ok
}

// forget drops what is known of a deleted config.
func (o *orphanSweeper) forget(key types.NamespacedName) {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.seen, key)
	delete(o.reports, key)
	orphanVolumes.DeleteLabelValues(key.Namespace, key.Name)
}

// foundMessage is the OrphansFound event's note: what was found and what will happen to it.
func foundMessage(cfg *osseav1.OsseaConfig, fresh []orphan) string {
	ids := make([]string, 0, min(len(fresh), 10))
	for _, or := range fresh[:min(len(fresh), 10)] {
		id := or.id
		if or.attachedTo != "" {
			id += " (attached to VM " + or.attachedTo + ")"
		}
		ids = append(ids, id)
	}
	list := strings.Join(ids, ", ")
	if len(fresh) > len(ids) {
		list += fmt.Sprintf(" and %d more", len(fresh)-len(ids))
	}
	then := "orphanPolicy Report leaves them: delete them in CloudStack, or set orphanPolicy: Delete to have detached ones deleted after orphanGracePeriod"
	if cfg.Spec.OrphanPolicy == osseav1.OrphanDelete {
		then = fmt.Sprintf("orphanPolicy Delete deletes each once it has been detached and orphaned for %s; attached ones are left alone", graceOf(cfg))
	}
	return fmt.Sprintf("%d volume(s) this cluster made for this config have no MigrationVolume any more: %s; %s", len(fresh), list, then)
}
