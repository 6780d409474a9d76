package nodeagent

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/migratekit/ossea-operator/internal/guestdisk"
)

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
	for _, name := range guestdisk.LinkNames(volumeID) {
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
