package controllers

import (
	"context"
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

// Waking the volumes that wait for a slot (CapacityExhausted). A slot freed on a VM wakes
// at most as many of the waiters of that VM's configs as the count from the cache shows
// free, oldest first: waking every waiter would have each count again, and on a nearly
// full VM each one that got a slot for a moment would ask CloudStack. A waiter not woken
// is woken by a later freed slot, or by its own recheck (slotRecheck), which costs no
// CloudStack call while the count says the VM is full.

// slotRecheckMin and slotRecheckMax bound how long a volume refused a slot waits before
// counting again when no freed slot wakes it; the manager's drift interval lowers the
// upper bound.
const (
	slotRecheckMin = 5 * time.Second
	slotRecheckMax = 5 * time.Minute
)

// slotWaiter is a volume waiting for a slot, as the choice of whom to wake sees it.
type slotWaiter struct {
	key types.NamespacedName
	// since is when it began waiting (its Attached condition's last transition), created
	// when the object was made; together the FIFO order.
	since, created time.Time
	// limit is the slot limit of its config.
	limit int
	// holding is true when the memory holds a slot for it: it is attaching already and
	// neither needs waking nor stands in another's way.
	holding bool
}

// waitersToWake chooses whom a freed slot wakes: oldest first, as many as the count from
// the cache shows free on the VM (used of each waiter's config limit).
func waitersToWake(waiters []slotWaiter, used int) []types.NamespacedName {
	ws := append([]slotWaiter(nil), waiters...)
	sort.SliceStable(ws, func(i, j int) bool { return waitedLonger(ws[i], ws[j]) })
	var wake []types.NamespacedName
	for _, w := range ws {
		if w.holding {
			continue
		}
		if len(wake) < w.limit-used {
			wake = append(wake, w.key)
		}
	}
	return wake
}

// waitedLonger orders waiters by when they began waiting, then by age, then by name.
func waitedLonger(a, b slotWaiter) bool {
	switch {
	case !a.since.Equal(b.since):
		return a.since.Before(b.since)
	case !a.created.Equal(b.created):
		return a.created.Before(b.created)
	case a.key.Namespace != b.key.Namespace:
		return a.key.Namespace < b.key.Namespace
	}
	return a.key.Name < b.key.Name
}

// volumesWaitingForSlot wakes, for a volume that left a VM (the event's old object names
// the VM; the new one names none and wakes nobody), the oldest waiters of the VM's configs,
// as many as the cache shows free slots.
func (r *MigrationVolumeReconciler) volumesWaitingForSlot(ctx context.Context, obj client.Object) []reconcile.Request {
	vmID := obj.(*osseav1.MigrationVolume).Status.AttachedVirtualMachineID
	if vmID == "" {
		return nil
	}
	waiters, err := r.slotWaiters(ctx, vmID)
	if err != nil {
		log.FromContext(ctx).Error(err, "Listing volumes waiting for a slot", "vm", vmID)
		return nil
	}
	if len(waiters) == 0 {
		return nil
	}
	used, err := r.mem.slotsUsed(vmID, r.attachedTo(ctx, vmID))
	if err != nil {
		log.FromContext(ctx).Error(err, "Counting the slots of a VM", "vm", vmID)
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(waiters))
	for _, key := range waitersToWake(waiters, used) {
		reqs = append(reqs, reconcile.Request{NamespacedName: key})
	}
	return reqs
}

// slotWaiters lists the volumes of vmID's configs (in every namespace the cache holds) that
// wait for a slot and are not being deleted.
func (r *MigrationVolumeReconciler) slotWaiters(ctx context.Context, vmID string) ([]slotWaiter, error) {
	var configs osseav1.OsseaConfigList
	if err := r.List(ctx, &configs, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	var waiters []slotWaiter
	for i := range configs.Items {
		cfg := &configs.Items[i]
		if cfg.Spec.OMAVirtualMachineID != vmID {
			continue
		}
		var list osseav1.MigrationVolumeList
		if err := r.List(ctx, &list, client.InNamespace(cfg.Namespace), client.MatchingFields{indexWaitingForSlot: cfg.Name},
			client.UnsafeDisableDeepCopy); err != nil {
			return nil, err
		}
		for j := range list.Items {
			mv := &list.Items[j]
			if !mv.DeletionTimestamp.IsZero() {
				continue
			}
			waiters = append(waiters, slotWaiter{
				key: client.ObjectKeyFromObject(mv), since: waitingSince(mv), created: mv.CreationTimestamp.Time,
				limit: maxDataVolumes(cfg), holding: r.mem.holdsSlot(mv.UID),
			})
		}
	}
	return waiters, nil
}

// waitingSince is when the volume's Attached condition last changed: for a volume waiting
// for a slot, when it stopped being attached, or was made.
func waitingSince(mv *osseav1.MigrationVolume) time.Time {
	if c := meta.FindStatusCondition(mv.Status.Conditions, osseav1.ConditionAttached); c != nil {
		return c.LastTransitionTime.Time
	}
	return mv.CreationTimestamp.Time
}

// slotRecheck is how long a volume refused a slot waits before counting again, should no
// freed slot wake it first: as long as it has waited so far, so that the rechecks of a
// long wait thin out, within [slotRecheckMin, the drift interval or slotRecheckMax]. It is
// the safety net of the proportional waking (a wake-up lost to a waiter whose status the
// cache did not show yet, a woken waiter deleted before it took its slot).
func (r *MigrationVolumeReconciler) slotRecheck(mv *osseav1.MigrationVolume, now time.Time) time.Duration {
	ceiling := slotRecheckMax
	if r.DriftInterval > 0 {
		ceiling = r.DriftInterval
	}
	return min(max(now.Sub(waitingSince(mv)), slotRecheckMin), ceiling)
}

// slotsUsed counts the data volumes on vmID as holdSlot does, without holding one.
func (m *volumeMemory) slotsUsed(vmID string, attached func() (map[types.UID]string, error)) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	shown, err := attached()
	if err != nil {
		return 0, err
	}
	return m.usedLocked("", vmID, shown), nil
}

// holdsSlot reports whether the memory holds a slot for the object's attach.
func (m *volumeMemory) holdsSlot(uid types.UID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := m.volumes[uid]
	return v != nil && v.slot != nil
}
