package nodeagent

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/migratekit/ossea-operator/internal/cloudsim"
)

func TestSerialAndLinkNames(t *testing.T) {
	const id = "0b3f5c2e-9a41-4d6e-8f00-123456789abc"
	if got, want := Serial(id), "0b3f5c2e9a414d6e8f00"; got != want {
		t.Errorf("Serial = %q, want %q", got, want)
	}
	// The simulator's hypervisor is the reference for what a guest sees.
	names := LinkNames(id)
	if len(names) != 2 || names[0] != cloudsim.DeviceLinkName("virtio", id) || names[1] != cloudsim.DeviceLinkName("scsi", id) {
		t.Errorf("LinkNames = %v, want the simulator's virtio and scsi names", names)
	}
	for _, bad := range []string{"", "../../etc/passwd", "abc/def", "zzzz", "0b3f5c2e 9a41"} {
		if s := Serial(bad); s != "" {
			t.Errorf("Serial(%q) = %q, want empty", bad, s)
		}
		if n := LinkNames(bad); n != nil {
			t.Errorf("LinkNames(%q) = %v, want none", bad, n)
		}
	}
	for name, want := range map[string]string{
		"virtio-0b3f5c2e9a414d6e8f00":                   "0b3f5c2e9a414d6e8f00",
		"scsi-0QEMU_QEMU_HARDDISK_0b3f5c2e9a414d6e8f00": "0b3f5c2e9a414d6e8f00",
		"virtio-0b3f5c2e9a414d6e8f00-part1":             "",
		"virtio-0b3f5c2e":                               "",
		"wwn-0x5000c500a1b2c3d4":                        "",
		".#virtio-0b3f5c2e9a414d6e8f00":                 "",
	} {
		if got := serialOfLink(name); got != want {
			t.Errorf("serialOfLink(%q) = %q, want %q", name, got, want)
		}
	}
}

// findDevice reports nothing for a missing or dangling link and refuses a link to
// something that is not a block device.
func TestFindDeviceRefusesNonDevices(t *testing.T) {
	const id = "0b3f5c2e-9a41-4d6e-8f00-123456789abc"
	dir := t.TempDir()
	if dev, err := findDevice(dir, id); dev != nil || err != nil {
		t.Fatalf("no link: %+v, %v", dev, err)
	}
	link := filepath.Join(dir, LinkNames(id)[0])
	if err := os.Symlink(filepath.Join(dir, "gone"), link); err != nil {
		t.Fatal(err)
	}
	if dev, err := findDevice(dir, id); dev != nil || err != nil {
		t.Fatalf("dangling link: %+v, %v", dev, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "gone"), make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	if dev, err := findDevice(dir, id); err == nil {
		t.Fatalf("a link to a regular file was taken for a disk: %+v", dev)
	}
}
