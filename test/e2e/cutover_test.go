package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudsim"
	"github.com/migratekit/ossea-operator/internal/guestdisk"
	"github.com/migratekit/ossea-operator/test/world"
)

// Tags the manager puts on the volumes of a hand-off (controllers' TagReplacedBy and
// TagHandedOffTo: spelled out, as a user reading CloudStack would see them).
const (
	tagReplacedBy  = "ossea.migratekit.io/replaced-by"
	tagHandedOffTo = "ossea.migratekit.io/handed-off-to"
	tagDiskName    = "ossea.migratekit.io/disk-name"
)

// TestJobCutover: the job sample (ext4, xfs, Block) on the sample pool, with data written
// by hand, cut over with kubectl patch to a stopped target VM that has a placeholder root,
// the Block disk as root. The OMA's own agent lets go of every disk (nothing mounted, no
// by-id link); the target holds the three at device 0 (root) and then at ascending ids in
// disk order, each attached once, with the data written on the OMA; the placeholder is
// detached, kept and tagged; deleting the job leaves all three on the target and nothing
// on the OMA.
func TestJobCutover(t *testing.T) {
	if len(sim.Targets) == 0 {
		t.Fatal("the world has no target VM")
	}
	target := sim.Targets[0]
	startManager(t, "manager-cutover")
	ns := "cutover"
	const job = "job-cut"
	kubectl(t, "create", "namespace", ns)
	apply(t, ns, sample(t, "ossea_v1alpha1_osseaconfig.yaml"))
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", "osc", "--all", "--timeout=120s")
	vm := runJob(t, ns, job)

	// What a copy would have left on the disks, read back below from what the target got.
	written := map[string][]byte{}
	for _, disk := range []string{"disk0", "disk1"} {
		written[disk] = []byte("copied onto " + job + "/" + disk + "\n")
		if err := os.WriteFile(filepath.Join(vm.MountRoot, job, disk, "data.bin"), written[disk], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	written["disk2"] = []byte("boot sector of " + job + "/disk2")
	writeDevice(t, kubectl(t, "get", "-n", ns, "mv/"+job+"-disk2", "-o", "jsonpath={.status.devicePath}"), written["disk2"])

	st := simState(t)
	placeholder, ok := world.OnVM(st, target)[0]
	if !ok || placeholder.Type != "ROOT" || len(world.OnVM(st, target)) != 1 {
		t.Fatalf("the target should hold only its placeholder root at device 0: %v", describeOn(st, target))
	}

	kubectl(t, "patch", "-n", ns, "mj/"+job, "--type", "merge", "-p",
		fmt.Sprintf(`{"spec":{"cutover":{"targetVirtualMachineID":%q,"rootDisk":"disk2"}}}`, target))
	kubectl(t, "wait", "-n", ns, "--for=jsonpath={.status.phase}=HandedOff", "mj/"+job, "--timeout=180s")
	t.Log("\n" + kubectl(t, "get", "-n", ns, "mj,mv", "-o", "wide"))

	var mj osseav1.MigrationJob
	getJSON(t, &mj, "-n", ns, "mj/"+job)
	if c := meta.FindStatusCondition(mj.Status.Conditions, osseav1.ConditionReady); c == nil ||
		c.Status != metav1.ConditionTrue || c.Reason != osseav1.ReasonHandedOff {
		t.Errorf("%s is HandedOff but its Ready condition is %+v, want True HandedOff", job, c)
	}
	if !world.IsTrue(mj.Status.Conditions, osseav1.ConditionHandedOff) {
		t.Errorf("%s is HandedOff without condition HandedOff=True: %+v", job, mj.Status.Conditions)
	}
	lines := map[string]osseav1.MigrationJobDiskStatus{}
	for _, d := range mj.Status.Disks {
		lines[d.Name] = d
	}

	// The OMA let go of everything: no mount, no by-id link, no loop device.
	if m := mountsUnder(t, filepath.Join(vm.MountRoot, job)); len(m) != 0 {
		t.Errorf("the OMA still mounts %v after the hand-off", m)
	}
	st = simState(t)
	vols := map[string]cloudsim.Volume{} // by disk
	for _, disk := range []string{"disk0", "disk1", "disk2"} {
		id := lines[disk].VolumeID
		v, ok := volumeOf(st, id)
		if !ok {
			t.Fatalf("%s's volume %q (status.disks) is not in CloudStack", disk, id)
		}
		vols[disk] = v
		for _, name := range guestdisk.LinkNames(id) {
			if _, err := os.Lstat(filepath.Join(vm.ByIDDir, name)); err == nil {
				t.Errorf("%s: the by-id link %s is still on the OMA", disk, name)
			}
		}
		if v.LoopDevice != "" || v.DeviceLink != "" {
			t.Errorf("%s on the target still has a loop device or link: %+v", disk, v)
		}
		var mv osseav1.MigrationVolume
		getJSON(t, &mv, "-n", ns, "mv/"+job+"-"+disk)
		h := mv.Status.Handoff
		if mv.Status.Phase != osseav1.PhaseHandedOff || h == nil || h.VirtualMachineID != target ||
			v.DeviceID == nil || h.DeviceID != *v.DeviceID || lines[disk].TargetDeviceID == nil || *lines[disk].TargetDeviceID != h.DeviceID {
			t.Errorf("%s: phase %s, status.handoff %+v, job line %+v; CloudStack has it on %s at %v",
				mv.Name, mv.Status.Phase, h, lines[disk], v.VirtualMachineID, v.DeviceID)
		}
	}
	if loops := loopsOf(t, vols); len(loops) != 0 {
		t.Errorf("loop devices still back the handed-off volumes: %v", loops)
	}

	// The target: the root at 0, then the data disks in spec.disks order.
	on := world.OnVM(st, target)
	t.Logf("the target's volumes: %s", describeOn(st, target))
	if len(on) != 3 {
		t.Errorf("the target holds %d volumes, want the job's 3: %s", len(on), describeOn(st, target))
	}
	root := on[0]
	if root.ID != vols["disk2"].ID || root.Type != "ROOT" || world.Tag(root, tagHandedOffTo) != target {
		t.Errorf("device 0 of the target: %+v, want disk2 (%s) as ROOT tagged %s=%s", root, vols["disk2"].ID, tagHandedOffTo, target)
	}
	d0, d1 := vols["disk0"], vols["disk1"]
	if d0.VirtualMachineID != target || d1.VirtualMachineID != target || d0.DeviceID == nil || d1.DeviceID == nil ||
		!(0 < *d0.DeviceID && *d0.DeviceID < *d1.DeviceID) || d0.Type != "DATADISK" || d1.Type != "DATADISK" {
		t.Errorf("data disks on the target: disk0 %s at %v (%s), disk1 %s at %v (%s); want both DATADISKs there, disk0 first",
			d0.VirtualMachineID, d0.DeviceID, d0.Type, d1.VirtualMachineID, d1.DeviceID, d1.Type)
	}
	for disk, v := range vols {
		if world.Tag(v, tagHandedOffTo) != target {
			t.Errorf("%s is not tagged %s=%s: %+v", disk, tagHandedOffTo, target, v.Tags)
		}
	}
	kept, ok := volumeOf(st, placeholder.ID)
	if !ok || kept.VirtualMachineID != "" || world.Tag(kept, tagReplacedBy) != root.ID {
		t.Errorf("the placeholder root: %+v (found %v), want it detached, kept and tagged %s=%s", kept, ok, tagReplacedBy, root.ID)
	}
	for _, v := range world.OnVM(st, vm.ID) {
		if strings.HasPrefix(world.Tag(v, "ossea.migratekit.io/owner"), ns+"/") {
			t.Errorf("the OMA VM still holds %s", v.ID)
		}
	}
	checkMoves(t, st, vols, target)

	// The data written on the OMA is what the target boots and mounts: the agent flushed
	// before it let go. Read from the backing files, as the target's hypervisor would.
	for _, disk := range []string{"disk0", "disk1"} {
		if got := readFromImage(t, disk, vols[disk].BackingFile, "data.bin"); !bytes.Equal(got, written[disk]) {
			t.Errorf("%s on the target holds %q, want %q", disk, got, written[disk])
		}
	}
	if got := readHead(t, vols["disk2"].BackingFile, len(written["disk2"])); !bytes.Equal(got, written["disk2"]) {
		t.Errorf("disk2 on the target starts with %q, want %q", got, written["disk2"])
	}

	// The job deleted: its volumes are the target's now, nothing detaches or deletes them.
	kubectl(t, "delete", "-n", ns, "mj/"+job, "--wait=true", "--timeout=120s")
	if left := kubectl(t, "get", "-n", ns, "mj,mv", "-o", "name"); strings.TrimSpace(left) != "" {
		t.Errorf("objects left: %s", left)
	}
	after := simState(t)
	for disk, v := range vols {
		now, ok := volumeOf(after, v.ID)
		if !ok || now.VirtualMachineID != target || now.DeviceID == nil || *now.DeviceID != *v.DeviceID {
			t.Errorf("after the job was deleted %s is %+v (found %v), want it still on the target at %d", disk, now, ok, *v.DeviceID)
		}
	}
	checkMoves(t, after, vols, target)
	for _, o := range sim.VMs {
		if m := mountsUnder(t, filepath.Join(o.MountRoot, job)); len(m) != 0 {
			t.Errorf("mounts left on OMA %s: %v", o.ID, m)
		}
	}
	if loops := loopsOf(t, vols); len(loops) != 0 {
		t.Errorf("loop devices left: %v", loops)
	}
	kubectl(t, "delete", "-n", ns, "osc", "--all", "--wait=true", "--timeout=60s")
}

// checkMoves checks, from the simulator's job log, that each volume was detached once (from
// the OMA) and attached to the target once. (That none was deleted shows in the state:
// a deleted volume is gone from it.)
func checkMoves(t *testing.T, st cloudsim.State, vols map[string]cloudsim.Volume, target string) {
	t.Helper()
	for disk, v := range vols {
		var detached, attached int
		for _, j := range st.Jobs {
			if j.Params["id"] != v.ID || j.Status != 1 {
				continue
			}
			switch strings.ToLower(j.Command) {
			case "detachvolume":
				detached++
			case "attachvolume":
				if j.Params["virtualmachineid"] == target {
					attached++
				}
			}
		}
		if detached != 1 || attached != 1 {
			t.Errorf("%s (%s): %d detaches, %d attaches to the target; want 1 and 1", disk, v.ID, detached, attached)
		}
	}
}

func simState(t *testing.T) cloudsim.State {
	t.Helper()
	st, err := sim.State()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func volumeOf(st cloudsim.State, id string) (cloudsim.Volume, bool) {
	i := slices.IndexFunc(st.Volumes, func(v cloudsim.Volume) bool { return v.ID == id })
	if i < 0 {
		return cloudsim.Volume{}, false
	}
	return st.Volumes[i], true
}

// describeOn lists a VM's volumes by device id, for messages.
func describeOn(st cloudsim.State, vm string) string {
	on := world.OnVM(st, vm)
	ids := make([]int64, 0, len(on))
	for id := range on {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var b strings.Builder
	for _, id := range ids {
		v := on[id]
		fmt.Fprintf(&b, "[%d %s %s disk=%s] ", id, v.Type, v.ID, world.Tag(v, tagDiskName))
	}
	return b.String()
}

// loopsOf lists the loop devices backed by the volumes' files.
func loopsOf(t *testing.T, vols map[string]cloudsim.Volume) []world.LoopDevice {
	t.Helper()
	var out []world.LoopDevice
	for _, l := range loopDevicesUnder(t, w.Dir) {
		for _, v := range vols {
			if v.BackingFile != "" && l.Backing == v.BackingFile {
				out = append(out, l)
			}
		}
	}
	return out
}

// writeDevice writes data at the start of a published block device and syncs it.
func writeDevice(t *testing.T, dev string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// readHead reads the first n bytes of a file.
func readHead(t *testing.T, file string, n int) []byte {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

// readFromImage mounts a volume's backing file read-only for a moment and reads a file of
// its filesystem. The mount point is below the world's directory so that a failed run's
// sweep takes it off; mount's own loop device goes away with the umount (autoclear).
func readFromImage(t *testing.T, disk, image, file string) []byte {
	t.Helper()
	if image == "" {
		t.Errorf("%s: the volume has no backing file to read", disk)
		return nil
	}
	dir, err := os.MkdirTemp(w.Dir, "readback-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(dir)
	if out, err := exec.Command("mount", "-o", "ro,loop", image, dir).CombinedOutput(); err != nil {
		t.Errorf("%s: mounting %s read-only: %v: %s", disk, image, err, out)
		return nil
	}
	defer func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	}()
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Errorf("%s: %v", disk, err)
	}
	return b
}
