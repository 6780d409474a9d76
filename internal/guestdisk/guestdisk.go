// Package guestdisk is the rule for how a CloudStack volume shows up as a disk inside a
// KVM guest: its serial, its /dev/disk/by-id link names and the size it must have.
//
// It exists because four parties must agree on that rule to the letter: the manager
// predicts status.devicePath from it, the node agent looks for the disk by it, the
// simulator's hypervisor makes the links by it and the bench watches for them. Written
// once here, they cannot drift apart.
//
// KVM passes the volume UUID without dashes, cut to 20 characters, as the disk serial, and
// udev links the disk as virtio-<serial> (virtio-blk) or scsi-0QEMU_QEMU_HARDDISK_<serial>
// (virtio-scsi). CloudStack's deviceid does not predict the guest's /dev/vdX, so nothing
// here derives a device from it.
package guestdisk

import (
	"fmt"
	"strings"
)

// DefaultByIDDir is where udev puts the guest's stable disk links.
const DefaultByIDDir = "/dev/disk/by-id"

// The buses a CloudStack KVM volume can be attached on, as the simulator's world file names
// them.
const (
	BusVirtio = "virtio"
	BusSCSI   = "scsi"
)

// By-id link prefixes: virtio-blk shows the serial directly, virtio-scsi behind QEMU's
// vendor and product.
const (
	virtioLinkPrefix = "virtio-"
	scsiLinkPrefix   = "scsi-0QEMU_QEMU_HARDDISK_"
)

// serialLen is how much of the volume UUID (without dashes) KVM passes as the disk serial.
const serialLen = 20

const gib = int64(1) << 30

// Serial is the disk serial a KVM guest sees for a CloudStack volume: the UUID without
// dashes, cut to 20 characters. It returns "" for an id that is not hexadecimal, so that a
// strange status value can never become a path.
func Serial(volumeID string) string {
	s := strings.ReplaceAll(volumeID, "-", "")
	if len(s) > serialLen {
		s = s[:serialLen]
	}
	if strings.Trim(strings.ToLower(s), "0123456789abcdef") != "" {
		return ""
	}
	return s
}

// LinkNames are the by-id names the volume can show up as, most likely first: virtio-blk,
// then virtio-scsi. It returns nil for an id without a serial.
func LinkNames(volumeID string) []string {
	s := Serial(volumeID)
	if s == "" {
		return nil
	}
	return []string{virtioLinkPrefix + s, scsiLinkPrefix + s}
}

// LinkName is the by-id name of the volume on one bus: BusSCSI, or virtio-blk for any
// other value. It returns "" for an id without a serial.
func LinkName(bus, volumeID string) string {
	s := Serial(volumeID)
	if s == "" {
		return ""
	}
	if bus == BusSCSI {
		return scsiLinkPrefix + s
	}
	return virtioLinkPrefix + s
}

// SerialOfLink returns the serial in a by-id name, or "" if the name is not a whole disk of
// ours. Partition links (virtio-<serial>-part1) are not the disk, and udev's other names
// (wwn-..., editor leftovers) are not CloudStack volumes.
func SerialOfLink(name string) string {
	for _, prefix := range []string{virtioLinkPrefix, scsiLinkPrefix} {
		if s, ok := strings.CutPrefix(name, prefix); ok && len(s) == serialLen && Serial(s) == s {
			return s
		}
	}
	return ""
}

// SizeMismatch describes a device (its by-id link and the node it resolves to) whose size in
// bytes is not the volume's size in GiB, or returns "" when they agree. A disk of another
// size is either not the volume's or was resized behind the operator's back; the message
// says where to look.
func SizeMismatch(link, device string, sizeBytes int64, sizeGiB int32) string {
	want := int64(sizeGiB) * gib
	if sizeBytes == want {
		return ""
	}
	return fmt.Sprintf("%s (%s) is %d bytes but the volume is %d GiB (%d bytes); this is not the volume's disk "+
		"or CloudStack resized it: check the volume in CloudStack and the disks of the OMA VM",
		link, device, sizeBytes, sizeGiB, want)
}
