package controllers

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudstack"
)

// reservationTTL bounds how long an attach this process started holds a slot without the
// cache showing the volume attached; its job has long finished by then.
const reservationTTL = 10 * time.Minute

// The data-disk slots of the OMA VMs are counted from the manager's own records: the
// MigrationVolumes the cache shows attached (or being attached) to a VM, plus the slots the
// memory holds for attaches this process started and the cache does not show yet. CloudStack
// is asked only when a VM is nearly full, where a miscount would cost a failed job, and
// where data disks the operator does not manage would make the difference.
//
// A slot is taken in two steps so that no lock is held across the CloudStack call: the
// memory holds it at once if the count from the cache shows one free, and, on a nearly full
// VM, confirms it once CloudStack's list is in (or gives it back). A held slot counts for
// everyone else from the moment it is held, so two workers can never both take the last one.

// slotHold is a slot held on a VM for the attach of one volume.
type slotHold struct {
	vmID     string
	volumeID string
	at       time.Time
	// known are the volumes (by id) the cache showed on the VM when the slot was held on
	// a nearly full VM: what CloudStack lists beyond them, and beyond the other held slots,
	// is not the operator's (see confirmSlot).
	known map[string]bool
}

// vmSlots is what the memory knows of a VM's slots beyond the cache: how many data disks
// CloudStack listed on it at the last confirmation that are none of the operator's (a disk
// attached by hand, by another tool). They count like the cache's until unmanagedTTL has
// passed, so that once one confirmation has found them, the volumes waiting for a slot see
// the VM full from the count alone instead of each asking CloudStack again; after that the
// next attach onto the nearly full VM asks again, which also notices them gone.
type vmSlots struct {
	unmanaged int
	seen      time.Time
}

// slotClaim is the memory's answer to a request for a slot.
type slotClaim struct {
	// used counts the VM's data volumes other than this one, as far as the cache, the
	// held slots and the disks known not to be the operator's tell.
	used int
	// held is true when a slot is now held for the volume.
	held bool
	// confirm is true when the VM is nearly full: CloudStack's list must confirm the hold.
	confirm bool
}

// holdSlot holds a slot on vmID for the object's attach if one is free. attached gives
// the objects the cache shows attached to the VM, with their volume ids; it is called
// under the memory's lock, so that the count and the holds it prunes agree, and must not
// leave the process.
func (m *volumeMemory) holdSlot(uid types.UID, vmID, volumeID string, limit int, attached func() (map[types.UID]string, error)) (slotClaim, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	shown, err := attached()
	if err != nil {
		return slotClaim{}, err
	}
	delete(shown, uid)
	used := m.usedLocked(uid, vmID, shown)
	if used >= limit {
		if v := m.volumes[uid]; v != nil {
			v.slot = nil
			m.tidy(uid)
		}
		return slotClaim{used: used}, nil
	}
	h := &slotHold{vmID: vmID, volumeID: volumeID, at: m.now()}
	claim := slotClaim{used: used, held: true, confirm: used+2 >= limit}
	if claim.confirm {
		h.known = make(map[string]bool, len(shown))
		for other, id := range shown {
			h.known[volumeKey(other, id)] = true
		}
	}
	m.record(uid).slot = h
	return claim, nil
}

// usedLocked counts the data volumes on vmID other than uid's: those the cache shows,
// the slots held for attaches it does not show yet (dropping the holds that have done
// their job), and the disks not the operator's that a recent confirmation found. m.mu is
// held.
func (m *volumeMemory) usedLocked(uid types.UID, vmID string, shown map[types.UID]string) int {
	used := len(shown)
	for other, v := range m.volumes {
		h := v.slot
		switch {
		case h == nil || other == uid:
		case shown[other] != "" || m.now().Sub(h.at) > reservationTTL:
			// The cache counts it now (or its attach is long over): the hold has done its job.
			v.slot = nil
			m.tidy(other)
		case h.vmID == vmID:
			used++
		}
	}
	if vm := m.vms[vmID]; vm != nil {
		if m.now().Sub(vm.seen) > m.unmanagedTTL {
			delete(m.vms, vmID)
		} else {
			used += vm.unmanaged
		}
	}
	return used
}

// volumeKey names a volume the cache shows by its id, or, before it has one, by its
// object, so that it still counts once.
func volumeKey(uid types.UID, volumeID string) string {
	if volumeID == "" {
		return "object " + string(uid)
	}
	return volumeID
}

// confirmSlot settles a hold on a nearly full VM with CloudStack's list of the volumes
// attached to it: the slot stays held only if, counting those, the other held slots and
// what the cache showed, one is still free. What CloudStack lists beyond the operator's
// own volumes is remembered for the VM (see vmSlots). It returns the count and whether
// the slot is held.
func (m *volumeMemory) confirmSlot(uid types.UID, vmID string, limit, counted int, inCloud []string) (int, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := m.volumes[uid]
	if v == nil || v.slot == nil || v.slot.vmID != vmID {
		return counted, false
	}
	// Volumes by id: those the cache showed, and those of the slots held for attaches
	// CloudStack may not show yet; then CloudStack's.
	busy := map[string]bool{}
	for id := range v.slot.known {
		busy[id] = true
	}
	for other, o := range m.volumes {
		if other != uid && o.slot != nil && o.slot.vmID == vmID {
			busy[o.slot.volumeID] = true
		}
	}
	delete(busy, v.slot.volumeID)
	ours := len(busy)
	for _, id := range inCloud {
		if id != v.slot.volumeID {
			busy[id] = true
		}
	}
	m.vms[vmID] = &vmSlots{unmanaged: len(busy) - ours, seen: m.now()}
	used := len(busy)
	if v.slot.known == nil {
		// Held without the cache's view (not nearly full then): its count stands too.
		used = max(counted, used)
	}
	if used >= limit {
		v.slot = nil
		m.tidy(uid)
		return used, false
	}
	return used, true
}

// releaseSlot gives back the slot held for an attach that did not happen.
func (m *volumeMemory) releaseSlot(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v := m.volumes[uid]; v != nil {
		v.slot = nil
		m.tidy(uid)
	}
}

// attachedTo gives the objects the cache shows attached (or being attached) to vmID, in
// every namespace the cache holds, with their volume ids.
func (r *MigrationVolumeReconciler) attachedTo(ctx context.Context, vmID string) func() (map[types.UID]string, error) {
	return func() (map[types.UID]string, error) {
		var list osseav1.MigrationVolumeList
		if err := r.List(ctx, &list, client.MatchingFields{indexAttachedVM: vmID}, client.UnsafeDisableDeepCopy); err != nil {
			return nil, fmt.Errorf("listing the volumes attached to VM %s: %w", vmID, err)
		}
		shown := make(map[types.UID]string, len(list.Items))
		for i := range list.Items {
			shown[list.Items[i].UID] = volumeKey(list.Items[i].UID, list.Items[i].Status.VolumeID)
		}
		return shown, nil
	}
}

// reserveSlot takes a slot on vmID for the volume if one is free, and says how many of
// limit are used by others.
func (r *MigrationVolumeReconciler) reserveSlot(ctx context.Context, s *volumeScope, vmID string, limit int) (int, bool, error) {
	mv := s.mv
	claim, err := r.mem.holdSlot(mv.UID, vmID, mv.Status.VolumeID, limit, r.attachedTo(ctx, vmID))
	if err != nil || !claim.held || !claim.confirm {
		return claim.used, claim.held, err
	}
	// Nearly full: what CloudStack has attached, data disks the operator does not manage
	// included, and our attaches it has not finished yet.
	vols, err := s.cloud.FindVolumes(ctx, cloudstack.VolumeQuery{VirtualMachineID: vmID, Type: cloudstack.VolumeTypeDataDisk})
	if err != nil {
		r.mem.releaseSlot(mv.UID)
		return claim.used, false, fmt.Errorf("listing the data volumes of VM %s: %w", vmID, err)
	}
	ids := make([]string, len(vols))
	for i := range vols {
		ids[i] = vols[i].ID
	}
	used, ok := r.mem.confirmSlot(mv.UID, vmID, limit, claim.used, ids)
	return used, ok, nil
}
