package cloudsim

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/migratekit/ossea-operator/internal/guestdisk"
)

// These tests make real loop devices: they need root, and fail (not skip)
// without it, since the hypervisor hook is what they exist to prove.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the hypervisor hook tests need root (loop devices)")
	}
}

func localWorld(dir, bus string) *World {
	w := DefaultWorld()
	w.VirtualMachines[0].Local = &LocalDisks{ByIDDir: filepath.Join(dir, "by-id"), BackingDir: filepath.Join(dir, "disks"), Bus: bus}
	return w
}

func blockDeviceSize(t *testing.T, device string) int64 {
	t.Helper()
	out, err := exec.Command("blockdev", "--getsize64", device).CombinedOutput()
	if err != nil {
		t.Fatalf("blockdev %s: %v %s", device, err, out)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func loopsOf(t *testing.T, file string) string {
	t.Helper()
	out, err := exec.Command("losetup", "--associated", file).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup -j %s: %v %s", file, err, out)
	}
	return strings.TrimSpace(string(out))
}

func resolveDisk(t *testing.T, link string) string {
	t.Helper()
	device, err := filepath.EvalSymlinks(link)
	if err != nil {
		t.Fatalf("by-id link: %v", err)
	}
	if !strings.HasPrefix(device, "/dev/loop") {
		t.Fatalf("%s -> %s, not a loop device", link, device)
	}
	return device
}

func TestHypervisorAttachDetachKeepsData(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	e := newEnv(t, Options{World: localWorld(dir, "")})
	v := e.createVolume("real-disk", 1)
	link := filepath.Join(dir, "by-id", "virtio-"+guestdisk.Serial(v.Id))
	backing := filepath.Join(dir, "disks", v.Id+".img")
	if len(guestdisk.Serial(v.Id)) != 20 || strings.Contains(guestdisk.Serial(v.Id), "-") {
		t.Fatalf("serial %q", guestdisk.Serial(v.Id))
	}
	if _, err := os.Lstat(link); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("link exists before the attach job")
	}

	e.mustAttach(v.Id, DefaultOMAVMID)
	device := resolveDisk(t, link)
	t.Logf("%s -> %s (%s)", link, device, loopsOf(t, backing))
	if size := blockDeviceSize(t, device); size != gib {
		t.Fatalf("%s is %d bytes, want %d", device, size, gib)
	}
	if st, err := os.Stat(backing); err != nil || st.Size() != gib {
		t.Fatalf("backing file: %v %v", st, err)
	}

	// Write through the device, as the agent's filesystem would.
	pattern := bytes.Repeat([]byte("migratekit!"), 4096)
	const offset = 512 << 20
	f, err := os.OpenFile(device, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(pattern, offset); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()

	if _, err := e.detach(v.Id); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(link); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("link left after detach: %v", err)
	}
	if loops := loopsOf(t, backing); loops != "" {
		t.Fatalf("loop device left after detach: %s", loops)
	}

	e.mustAttach(v.Id, DefaultOMAVMID)
	device = resolveDisk(t, link)
	got := make([]byte, len(pattern))
	f, err = os.Open(device)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.ReadAt(got, offset)
	f.Close()
	if err != nil || !bytes.Equal(got, pattern) {
		t.Fatalf("data after re-attach differs (%v)", err)
	}
	if st := e.sim.Snapshot(); st.Volumes[1].LoopDevice != device || st.Volumes[1].DeviceLink != link {
		t.Fatalf("state does not show the device: %+v", st.Volumes[1])
	}

	if err := e.sim.Close(); err != nil {
		t.Fatal(err)
	}
	if loops := loopsOf(t, backing); loops != "" {
		t.Fatalf("loop device left after Close: %s", loops)
	}
	if _, err := os.Lstat(link); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("link left after Close: %v", err)
	}
}

func TestHypervisorDeleteRemovesBackingFileAndSCSILinks(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	e := newEnv(t, Options{World: localWorld(dir, "scsi")})
	v := e.createVolume("scsi-disk", 2)
	e.mustAttach(v.Id, DefaultOMAVMID)
	link := filepath.Join(dir, "by-id", "scsi-0QEMU_QEMU_HARDDISK_"+guestdisk.Serial(v.Id))
	if size := blockDeviceSize(t, resolveDisk(t, link)); size != 2*gib {
		t.Fatalf("size %d", size)
	}
	backing := filepath.Join(dir, "disks", v.Id+".img")
	if _, err := e.detach(v.Id); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(backing); err != nil {
		t.Fatalf("backing file gone after detach: %v", err)
	}
	if _, err := e.cs.Volume.DeleteVolume(e.cs.Volume.NewDeleteVolumeParams(v.Id)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(backing); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("backing file after delete: %v", err)
	}
}

// A failing hypervisor fails the attach job and changes nothing.
func TestHypervisorFailureFailsTheJob(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "not-a-dir")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	w := DefaultWorld()
	w.VirtualMachines[0].Local = &LocalDisks{ByIDDir: filepath.Join(blocker, "by-id"), BackingDir: filepath.Join(dir, "disks")}
	e := newEnv(t, Options{World: w})
	v := e.createVolume("doomed", 1)
	_, err := e.attach(v.Id, DefaultOMAVMID)
	if err == nil || !strings.Contains(err.Error(), `"errorcode":530`) || !strings.Contains(err.Error(), "Failed to attach volume doomed to VM oma; ") {
		t.Fatalf("attach: %v", err)
	}
	if got := e.volume(v.Id); got.Virtualmachineid != "" || got.State != "Allocated" {
		t.Fatalf("volume changed: %+v", got)
	}
}

// After a restart on the same state file, attached volumes are served again,
// with their data, as a hypervisor keeps its disks across a management restart.
func TestHypervisorRestartReattaches(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state.json")
	first := newEnv(t, Options{World: localWorld(dir, ""), StateFile: state})
	v := first.createVolume("kept", 1)
	first.mustAttach(v.Id, DefaultOMAVMID)
	link := filepath.Join(dir, "by-id", "virtio-"+guestdisk.Serial(v.Id))
	w, err := os.OpenFile(resolveDisk(t, link), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("survives")); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(w.Sync(), w.Close()); err != nil {
		t.Fatal(err)
	}
	if err := first.sim.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(link); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("link left after Close")
	}

	second := newEnv(t, Options{World: localWorld(dir, ""), StateFile: state})
	got := make([]byte, len("survives"))
	f, err := os.Open(resolveDisk(t, link))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadAt(got, 0); err != nil || string(got) != "survives" {
		t.Fatalf("after restart read %q, %v", got, err)
	}
	if d := second.volume(v.Id).Deviceid; d != 1 {
		t.Fatalf("device id after restart %d", d)
	}
}

// Only a VM with a local block gets real disks. A volume moved from the local OMA
// to a stopped target loses its loop device and link at the detach, gains none at
// the attach, and keeps its backing file (the target's disks live in state only).
func TestHypervisorLeavesTargetVMsInState(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	w := localWorld(dir, "")
	w.VirtualMachines = append(w.VirtualMachines, VirtualMachine{ID: targetVMID, Name: "target", Zone: DefaultZoneID, State: "Stopped"})
	e := newEnv(t, Options{World: w})
	moved, straight := e.createVolume("moved", 1), e.createVolume("straight", 1)
	link := filepath.Join(dir, "by-id", "virtio-"+guestdisk.Serial(moved.Id))
	backing := filepath.Join(dir, "disks", moved.Id+".img")

	e.mustAttach(moved.Id, DefaultOMAVMID)
	resolveDisk(t, link)
	if _, err := e.detach(moved.Id); err != nil {
		t.Fatal(err)
	}
	if got := e.mustAttach(moved.Id, targetVMID); got.Virtualmachineid != targetVMID || got.Deviceid != 1 {
		t.Fatalf("attach to the target: %+v", got)
	}
	if got := e.mustAttach(straight.Id, targetVMID); got.Deviceid != 2 {
		t.Fatalf("second attach to the target: %+v", got)
	}

	if _, err := os.Lstat(link); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("by-id link of a target's disk: %v", err)
	}
	if loops := loopsOf(t, backing); loops != "" {
		t.Fatalf("loop device of a target's disk: %s", loops)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "by-id"))
	if err != nil || len(entries) != 0 {
		t.Fatalf("by-id dir holds %v (%v), want nothing", entries, err)
	}
	for _, v := range e.sim.Snapshot().Volumes {
		if v.VirtualMachineID == targetVMID && (v.LoopDevice != "" || v.DeviceLink != "") {
			t.Fatalf("state shows a device for a target's disk: %+v", v)
		}
		if v.ID == straight.Id && v.BackingFile != "" {
			t.Fatalf("a disk only ever on the target got a backing file: %+v", v)
		}
		if v.ID == moved.Id && v.BackingFile != backing {
			t.Fatalf("the moved disk lost its backing file: %+v", v)
		}
	}
}
