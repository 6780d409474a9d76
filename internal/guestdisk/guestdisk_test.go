package guestdisk

import (
	"slices"
	"testing"
)

// A volume id as CloudStack hands it out, and the serial KVM makes of it.
const (
	volumeID = "0b3f5c2e-9a41-4d6e-8f00-123456789abc"
	serial   = "0b3f5c2e9a414d6e8f00"
)

func TestSerial(t *testing.T) {
	for _, tc := range []struct {
		name, id, want string
	}{
		{"UUID: dashes dropped, cut to 20", volumeID, serial},
		{"upper-case hex kept as given", "0B3F5C2E-9A41-4D6E-8F00-123456789ABC", "0B3F5C2E9A414D6E8F00"},
		{"shorter than 20 hex chars", "0b3f-5c2e", "0b3f5c2e"},
		{"exactly 20 hex chars", serial, serial},
		{"non-hex after the cut does not matter", "0b3f5c2e9a414d6e8f00zz", serial},
		{"empty", "", ""},
		{"only dashes", "----", ""},
		{"path traversal", "../../etc", ""},
		{"path-like", "abc/def", ""},
		{"not hex", "zzzz", ""},
		{"space inside", "0b3f5c2e 9a41", ""},
		{"non-hex within the first 20", "0b3f5c2e-9a41-4d6e-8g00-123456789abc", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Serial(tc.id); got != tc.want {
				t.Errorf("Serial(%q) = %q, want %q", tc.id, got, tc.want)
			}
		})
	}
}

func TestLinkNames(t *testing.T) {
	for _, tc := range []struct {
		name, id string
		want     []string
	}{
		{"virtio-blk first, then virtio-scsi", volumeID,
			[]string{"virtio-" + serial, "scsi-0QEMU_QEMU_HARDDISK_" + serial}},
		{"short id", "abcd", []string{"virtio-abcd", "scsi-0QEMU_QEMU_HARDDISK_abcd"}},
		{"no serial, no names", "../../etc", nil},
		{"empty id", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := LinkNames(tc.id)
			if !slices.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
				t.Errorf("LinkNames(%q) = %#v, want %#v", tc.id, got, tc.want)
			}
		})
	}
}

func TestLinkName(t *testing.T) {
	for _, tc := range []struct {
		name, bus, id, want string
	}{
		{"virtio", BusVirtio, volumeID, "virtio-" + serial},
		{"scsi", BusSCSI, volumeID, "scsi-0QEMU_QEMU_HARDDISK_" + serial},
		{"unset bus is virtio", "", volumeID, "virtio-" + serial},
		{"no serial on virtio", BusVirtio, "../../etc", ""},
		{"no serial on scsi", BusSCSI, "zzzz", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := LinkName(tc.bus, tc.id); got != tc.want {
				t.Errorf("LinkName(%q, %q) = %q, want %q", tc.bus, tc.id, got, tc.want)
			}
		})
	}
	// The names the simulator makes are the names the agent looks for.
	if names := LinkNames(volumeID); !slices.Equal(names, []string{LinkName(BusVirtio, volumeID), LinkName(BusSCSI, volumeID)}) {
		t.Errorf("LinkNames = %v, not the virtio and scsi LinkName", names)
	}
}

func TestSerialOfLink(t *testing.T) {
	for _, tc := range []struct {
		name, link, want string
	}{
		{"virtio", "virtio-" + serial, serial},
		{"scsi", "scsi-0QEMU_QEMU_HARDDISK_" + serial, serial},
		{"virtio partition", "virtio-" + serial + "-part1", ""},
		{"scsi partition", "scsi-0QEMU_QEMU_HARDDISK_" + serial + "-part1", ""},
		{"short serial", "virtio-0b3f5c2e", ""},
		{"foreign name", "wwn-0x5000c500a1b2c3d4", ""},
		{"other scsi vendor", "scsi-0ATA_SAMSUNG_" + serial, ""},
		{"editor leftover", ".#virtio-" + serial, ""},
		{"prefix only", "virtio-", ""},
		{"20 chars, not hex", "virtio-zzzzzzzzzzzzzzzzzzzz", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := SerialOfLink(tc.link); got != tc.want {
				t.Errorf("SerialOfLink(%q) = %q, want %q", tc.link, got, tc.want)
			}
		})
	}
}

func TestSizeMismatch(t *testing.T) {
	const link, device = "/dev/disk/by-id/virtio-" + serial, "/dev/vdb"
	for _, tc := range []struct {
		name      string
		sizeBytes int64
		sizeGiB   int32
		want      string
	}{
		{"equal", 2 << 30, 2, ""},
		{"bigger", 3 << 30, 2,
			"/dev/disk/by-id/virtio-0b3f5c2e9a414d6e8f00 (/dev/vdb) is 3221225472 bytes but the volume is 2 GiB (2147483648 bytes); " +
				"this is not the volume's disk or CloudStack resized it: check the volume in CloudStack and the disks of the OMA VM"},
		{"smaller by one byte", 2<<30 - 1, 2,
			"/dev/disk/by-id/virtio-0b3f5c2e9a414d6e8f00 (/dev/vdb) is 2147483647 bytes but the volume is 2 GiB (2147483648 bytes); " +
				"this is not the volume's disk or CloudStack resized it: check the volume in CloudStack and the disks of the OMA VM"},
		{"large volume does not overflow", 2000 << 30, 2000, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := SizeMismatch(link, device, tc.sizeBytes, tc.sizeGiB); got != tc.want {
				t.Errorf("SizeMismatch(%d bytes, %d GiB) =\n%q\nwant\n%q", tc.sizeBytes, tc.sizeGiB, got, tc.want)
			}
		})
	}
}
