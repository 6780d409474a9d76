package nodeagent

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/migratekit/ossea-operator/internal/guestdisk"
)

// findDevice reports nothing for a missing or dangling link and refuses a link to
// something that is not a block device.
func TestFindDeviceRefusesNonDevices(t *testing.T) {
	const id = "0b3f5c2e-9a41-4d6e-8f00-123456789abc"
	dir := t.TempDir()
	if dev, err := findDevice(dir, id); dev != nil || err != nil {
		t.Fatalf("no link: %+v, %v", dev, err)
	}
	link := filepath.Join(dir, guestdisk.LinkNames(id)[0])
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
