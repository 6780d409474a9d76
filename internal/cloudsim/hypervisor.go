package cloudsim

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/migratekit/ossea-operator/internal/guestdisk"
)

// hypervisor makes attachments real for VMs with a local block: each attached
// volume is a sparse file on a loop device, reachable under the by-id name a
// KVM guest would see, so a node agent can find, format and mount it.
type hypervisor struct {
	// attached holds what this process set up, so Close undoes exactly that.
	attached map[string]attachment // by volume id
}

type attachment struct {
	device string
	link   string
}

func newHypervisor() *hypervisor { return &hypervisor{attached: map[string]attachment{}} }

// attach backs the volume with its file (made once, at the volume's size, and
// kept across detaches so the data survives), a loop device and the link.
func (h *hypervisor) attach(l *LocalDisks, v *Volume) error {
	// Checked before anything is made: an id without a serial has no link a guest would see.
	name := guestdisk.LinkName(l.Bus, v.ID)
	if name == "" {
		return fmt.Errorf("volume %q has no KVM disk serial: its id is not a hexadecimal UUID", v.ID)
	}
	for _, dir := range []string{l.BackingDir, l.ByIDDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	file := v.BackingFile
	if file == "" {
		file = filepath.Join(l.BackingDir, v.ID+".img")
	}
	if err := ensureSparseFile(file, v.SizeBytes); err != nil {
		return err
	}
	// A previous process that died without Close may have left devices on it.
	if err := detachLoopsOf(file); err != nil {
		return err
	}
	out, err := losetup("--find", "--show", file)
	if err != nil {
		return err
	}
	device := strings.TrimSpace(out)
	link := filepath.Join(l.ByIDDir, name)
	if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
		_, _ = losetup("--detach", device)
		return err
	}
	if err := os.Symlink(device, link); err != nil {
		_, _ = losetup("--detach", device)
		return err
	}
	h.attached[v.ID] = attachment{device: device, link: link}
	v.BackingFile, v.LoopDevice, v.DeviceLink = file, device, link
	return nil
}

// detach removes the link and the loop device. A device still in use (mounted)
// is released by the kernel when its last user closes it.
func (h *hypervisor) detach(v *Volume) error {
	a, ok := h.attached[v.ID]
	if !ok {
		a = attachment{device: v.LoopDevice, link: v.DeviceLink}
	}
	if err := removeLinkTo(a.link, a.device); err != nil {
		return err
	}
	if _, err := losetup("--detach", a.device); err != nil {
		return err
	}
	delete(h.attached, v.ID)
	v.LoopDevice, v.DeviceLink = "", ""
	return nil
}

func (h *hypervisor) removeBacking(v *Volume) error {
	if err := os.Remove(v.BackingFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	v.BackingFile = ""
	return nil
}

// closeAll removes every link and loop device this process made.
func (h *hypervisor) closeAll() error {
	var errs []error
	for id, a := range h.attached {
		if err := removeLinkTo(a.link, a.device); err != nil {
			errs = append(errs, err)
		}
		if _, err := losetup("--detach", a.device); err != nil {
			errs = append(errs, err)
		}
		delete(h.attached, id)
	}
	return errors.Join(errs...)
}

func ensureSparseFile(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() < size {
		return f.Truncate(size)
	}
	return nil
}

// removeLinkTo removes link only if it still points at device: someone else
// may have reused the name since.
func removeLinkTo(link, device string) error {
	if link == "" {
		return nil
	}
	target, err := os.Readlink(link)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && target != device) {
		return nil
	}
	if err != nil {
		return err
	}
	return os.Remove(link)
}

func detachLoopsOf(file string) error {
	out, err := losetup("--associated", file)
	if err != nil {
		return err
	}
	for _, line := range strings.Split(out, "\n") {
		if device, _, ok := strings.Cut(line, ":"); ok && strings.HasPrefix(device, "/dev/") {
			if _, err := losetup("--detach", device); err != nil {
				return err
			}
		}
	}
	return nil
}

func losetup(args ...string) (string, error) {
	out, err := exec.Command("losetup", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("losetup %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
