package nodeagent

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// mountOptions are the options every volume is mounted with: read-write, and no device
// files or set-uid programs honoured from migration data.
var mountOptions = []string{"rw", "nosuid", "nodev"}

// ErrBusy is returned by unmount when a process still uses the filesystem.
var ErrBusy = errors.New("target is busy")

// mountsAt lists the mount table entries whose mount point is exactly path (more than one
// when mounts are stacked). It reads this process's mountinfo, which is what the kernel
// will act on.
func mountsAt(path string) ([]*mountinfo.Info, error) {
	ms, err := mountinfo.GetMounts(func(i *mountinfo.Info) (skip, stop bool) {
		return i.Mountpoint != path, false
	})
	if err != nil {
		return nil, fmt.Errorf("reading the mount table: %w", err)
	}
	return ms, nil
}

// mountsOfDevice lists the mount points of a block device, by device number, so that
// /dev/vdb, /dev/disk/by-id/... and any other name of it all count.
func mountsOfDevice(dev *Device) ([]*mountinfo.Info, error) {
	ms, err := mountinfo.GetMounts(func(i *mountinfo.Info) (skip, stop bool) {
		return i.Major != int(dev.Major) || i.Minor != int(dev.Minor), false
	})
	if err != nil {
		return nil, fmt.Errorf("reading the mount table: %w", err)
	}
	return ms, nil
}

func isDevice(m *mountinfo.Info, dev *Device) bool {
	return m.Major == int(dev.Major) && m.Minor == int(dev.Minor)
}

func readOnly(m *mountinfo.Info) bool {
	return slices.Contains(strings.Split(m.Options, ","), "ro")
}

func mountPoints(ms []*mountinfo.Info) string {
	var ps []string
	for _, m := range ms {
		ps = append(ps, m.Mountpoint)
	}
	return strings.Join(ps, ", ")
}

// mount mounts device at path read-write with the given filesystem type. The type is always
// explicit so the kernel never guesses.
func (h *linuxHost) mount(dev *Device, path, fsType string) error {
	if err := h.mounter.Mount(dev.Path, path, fsType, mountOptions); err != nil {
		return fmt.Errorf("mounting %s (%s) at %s: %w", dev.Path, fsType, path, err)
	}
	return nil
}

// unmount unmounts path once. It is never lazy (MNT_DETACH) and never forced: a busy
// filesystem gives ErrBusy, and the caller retries later. The syscall is used rather than
// umount(8) so that "busy" is an errno, not a guess at a message; UMOUNT_NOFOLLOW keeps a
// symlink swapped in at the last moment from redirecting it.
func (h *linuxHost) unmount(path string) error {
	return unmountResult(path, unix.Unmount(path, unix.UMOUNT_NOFOLLOW))
}

// unmountResult reads umount(2)'s errno: a path that is not (EINVAL) or no longer (ENOENT)
// a mount point counts as done; EBUSY is ErrBusy, the one error the caller waits out.
func unmountResult(path string, err error) error {
	switch {
	case err == nil, errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
		return nil
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("unmounting %s: %w", path, ErrBusy)
	}
	return fmt.Errorf("unmounting %s: %w", path, err)
}
