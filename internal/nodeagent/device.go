package nodeagent

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// By-id link prefixes of a CloudStack volume in a KVM guest: virtio-blk shows the serial
// directly, virtio-scsi behind QEMU's vendor and product.
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
	if s == "" || strings.Trim(strings.ToLower(s), "0123456789abcdef") != "" {
		return ""
	}
	return s
}

// LinkNames are the by-id names the volume can show up as, most likely first.
func LinkNames(volumeID string) []string {
	s := Serial(volumeID)
	if s == "" {
		return nil
	}
	return []string{virtioLinkPrefix + s, scsiLinkPrefix + s}
}

// serialOfLink returns the serial in a by-id name, or "" if the name is not one of ours.
// Partition links (virtio-<serial>-part1) are not the disk and are ignored.
func serialOfLink(name string) string {
	for _, prefix := range []string{virtioLinkPrefix, scsiLinkPrefix} {
		if s, ok := strings.CutPrefix(name, prefix); ok && len(s) == serialLen && Serial(s) == s {
			return s
		}
	}
	return ""
}

// Device is the block device behind a volume's by-id link.
type Device struct {
	// Link is the by-id link that was found; it is what status.devicePath reports.
	Link string
	// Path is the device node the link resolves to, for example /dev/vdb.
	Path string
	// Size in bytes.
	Size int64
	// Major and Minor identify the device in the mount table.
	Major, Minor uint32
}

// findDevice looks for the volume's by-id link and describes the block device behind it.
// It returns nil and no error while no link exists (or the link dangles: the disk left).
func findDevice(byIDDir, volumeID string) (*Device, error) {
	for _, name := range LinkNames(volumeID) {
		link := filepath.Join(byIDDir, name)
		target, err := filepath.EvalSymlinks(link)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("resolving %s: %w", link, err)
		}
		dev, err := describeBlockDevice(target)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("inspecting %s (from %s): %w", target, link, err)
		}
		dev.Link = link
		return dev, nil
	}
	return nil, nil
}

func describeBlockDevice(path string) (*Device, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return nil, fmt.Errorf("%s is not a block device", path)
	}
	// Read-only: looking must never be able to change the device.
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Seeking to the end of a block device yields its size in bytes (what BLKGETSIZE64
	// returns), without an ioctl's pointer-size assumptions.
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("reading the size of %s: %w", path, err)
	}
	return &Device{Path: path, Size: size, Major: unix.Major(st.Rdev), Minor: unix.Minor(st.Rdev)}, nil
}

// sizeMismatch describes a device whose size is not the volume's, or returns "".
func sizeMismatch(dev *Device, sizeGiB int32) string {
	want := int64(sizeGiB) * gib
	if dev.Size == want {
		return ""
	}
	return fmt.Sprintf("%s (%s) is %d bytes but the volume is %d GiB (%d bytes); this is not the volume's disk "+
		"or CloudStack resized it: check the volume in CloudStack and the disks of the OMA VM",
		dev.Link, dev.Path, dev.Size, sizeGiB, want)
}
