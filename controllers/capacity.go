package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudstack"
)

// reservationTTL bounds how long an attach this process started holds a slot without the
// cache showing the volume attached; its job has long finished by then.
const reservationTTL = 10 * time.Minute

// slotBook counts the data volume slots of the OMA VMs from the manager's own records: the
// MigrationVolumes the cache shows attached (or being attached) to a VM, plus the attaches
// this process has started and the cache does not show yet. CloudStack is asked only when a
// VM is nearly full, where a miscount would cost a failed job, and where data disks the
// operator does not manage would make the difference.
type slotBook struct {
	mu        sync.Mutex
	attaching map[string]map[types.UID]reservation // by VM id: volumes with an attach in flight
}

type reservation struct {
	volumeID string
	at       time.Time
}

func newSlotBook() *slotBook {
	return &slotBook{attaching: map[string]map[types.UID]reservation{}}
}

// reserve takes a slot on vmID for the volume if one is free. It holds the book's lock
// while it counts, so that two workers cannot both take the last slot.
func (b *slotBook) reserve(ctx context.Context, c client.Reader, cloud cloudstack.Cloud, vmID string, mv *osseav1.MigrationVolume, limit int) (used int, ok bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var attached osseav1.MigrationVolumeList
	if err := c.List(ctx, &attached, client.MatchingFields{indexAttachedVM: vmID}, client.UnsafeDisableDeepCopy); err != nil {
		return 0, false, fmt.Errorf("listing the volumes attached to VM %s: %w", vmID, err)
	}
	shown := make(map[types.UID]bool, len(attached.Items))
	for i := range attached.Items {
		if attached.Items[i].UID != mv.UID {
			shown[attached.Items[i].UID] = true
		}
	}
	inFlight := map[string]bool{}
	for other, r := range b.attaching[vmID] {
		switch {
		case shown[other] || time.Since(r.at) > reservationTTL:
			delete(b.attaching[vmID], other)
		case other != mv.UID:
			inFlight[r.volumeID] = true
		}
	}
	used = len(shown) + len(inFlight)
	if used+2 >= limit {
		// Nearly full: what CloudStack has attached, data disks the operator does not
		// manage included, and our attaches it has not finished yet.
		vols, err := cloud.FindVolumes(ctx, cloudstack.VolumeQuery{VirtualMachineID: vmID, Type: cloudstack.VolumeTypeDataDisk})
		if err != nil {
			return used, false, err
		}
		for _, v := range vols {
			if v.ID != mv.Status.VolumeID {
				inFlight[v.ID] = true
			}
		}
		used = max(used, len(inFlight))
	}
	if used >= limit {
		return used, false, nil
	}
	if b.attaching[vmID] == nil {
		b.attaching[vmID] = map[types.UID]reservation{}
	}
	b.attaching[vmID][mv.UID] = reservation{volumeID: mv.Status.VolumeID, at: time.Now()}
	return used, true, nil
}

// release gives back a slot reserved for an attach that did not happen.
func (b *slotBook) release(vmID string, uid types.UID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.attaching[vmID], uid)
}
