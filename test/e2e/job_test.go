package e2e

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/test/world"
)

// jobLabel marks the MigrationVolumes of a job.
const jobLabel = osseav1.JobLabel

// TestJobAcrossPool: the job sample, applied with kubectl against the sample pool of two
// OMAs, goes through its selector to one OMA, whose own agent mounts or publishes every
// disk; a second job of the same disks goes to the OMA with more free slots; deleting the
// jobs leaves nothing behind on either OMA or in CloudStack.
func TestJobAcrossPool(t *testing.T) {
	startManager(t, "manager-jobs")
	ns := "pool"
	kubectl(t, "create", "namespace", ns)
	apply(t, ns, sample(t, "ossea_v1alpha1_osseaconfig.yaml"))
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", "osc", "--all", "--timeout=120s")
	if used := attachedToOMAs(t); len(used) != 0 {
		t.Fatalf("the test reasons from empty OMAs, but data volumes are attached: %v", used)
	}

	first := runJob(t, ns, "job-4712")
	// The first job took 3 of its OMA's omaSlots, the other OMA still has all omaSlots
	// free: a second job of 3 disks fits on both and must go to the other.
	second := runJob(t, ns, "job-4713")
	if second.ID == first.ID {
		t.Errorf("both jobs went to OMA %s; the second should go to the one with more free slots (%d against %d)",
			first.ID, omaSlots, omaSlots-3)
	}
	t.Log("\n" + kubectl(t, "get", "-n", ns, "osc,mj,mv", "-o", "wide"))

	kubectl(t, "delete", "-n", ns, "mj", "--all", "--wait=true", "--timeout=180s")
	assertPoolEmpty(t, ns)
	kubectl(t, "delete", "-n", ns, "osc", "--all", "--wait=true", "--timeout=60s")
}

// runJob applies the job sample under the name job, waits until it is Ready, checks it and
// returns the OMA VM it went to.
func runJob(t *testing.T, ns, job string) world.SimVM {
	t.Helper()
	apply(t, ns, strings.Replace(sample(t, "ossea_v1alpha1_migrationjob.yaml"), "name: job-4712", "name: "+job, 1))
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", "mj/"+job, "--timeout=180s")
	var mj osseav1.MigrationJob
	getJSON(t, &mj, "-n", ns, "mj/"+job)
	vm := checkPlacement(t, ns, &mj)
	checkDisks(t, &mj, vm)
	checkVolumes(t, ns, &mj)
	return vm
}

// checkPlacement checks that the job went to one OsseaConfig of the sample pool and its
// OMA, and returns that OMA's VM.
func checkPlacement(t *testing.T, ns string, mj *osseav1.MigrationJob) world.SimVM {
	t.Helper()
	p := mj.Status.Placement
	if p == nil || !world.IsTrue(mj.Status.Conditions, osseav1.ConditionPlaced) {
		t.Fatalf("%s is Ready but not placed (status.placement, condition Placed): %+v", mj.Name, mj.Status)
	}
	var cfg osseav1.OsseaConfig
	getJSON(t, &cfg, "-n", ns, "osc/"+p.OsseaConfigName)
	if cfg.Labels["pool"] != "prod" || cfg.Spec.OMAVirtualMachineID != p.OMAVirtualMachineID {
		t.Errorf("%s placed on %+v; want a config of pool prod and its OMA (%s, OMA %s)",
			mj.Name, *p, cfg.Labels, cfg.Spec.OMAVirtualMachineID)
	}
	for _, vm := range sim.VMs {
		if vm.ID == p.OMAVirtualMachineID {
			t.Logf("%s went to %s (OMA %s)", mj.Name, p.OsseaConfigName, vm.ID)
			return vm
		}
	}
	t.Fatalf("%s placed on OMA %s, which is not a VM of the world", mj.Name, p.OMAVirtualMachineID)
	return world.SimVM{}
}

// checkDisks checks the sample's three disks on the OMA the job went to: disk0 (ext4) and
// disk1 (xfs) mounted by that OMA's agent at <its mount root>/<job>/<disk>, disk2 (Block)
// published under that VM's by-id directory, and nothing of the job on another OMA.
func checkDisks(t *testing.T, mj *osseav1.MigrationJob, vm world.SimVM) {
	t.Helper()
	if mj.Status.DisksReady != "3/3" {
		t.Errorf("%s: disksReady %q, want 3/3", mj.Name, mj.Status.DisksReady)
	}
	lines := map[string]osseav1.MigrationJobDiskStatus{}
	for _, d := range mj.Status.Disks {
		lines[d.Name] = d
	}
	mounts := mountsUnder(t, filepath.Join(vm.MountRoot, mj.Name))
	for disk, fstype := range map[string]string{"disk0": "ext4", "disk1": "xfs"} {
		path := filepath.Join(vm.MountRoot, mj.Name, disk)
		if mounts[path] != fstype || lines[disk].MountPath != path {
			t.Errorf("%s/%s: want a %s mount at %s; findmnt: %v, status: %+v", mj.Name, disk, fstype, path, mounts, lines[disk])
		}
	}
	if len(mounts) != 2 {
		t.Errorf("%s: mounts %v, want exactly disk0 and disk1 (Block mode mounts nothing)", mj.Name, mounts)
	}
	if d := lines["disk2"]; d.Phase != osseav1.PhasePublished || !strings.HasPrefix(d.DevicePath, vm.ByIDDir+"/") {
		t.Errorf("%s/disk2 should be Published under %s: %+v", mj.Name, vm.ByIDDir, d)
	}
	for _, other := range sim.VMs {
		if other.ID == vm.ID {
			continue
		}
		if m := mountsUnder(t, filepath.Join(other.MountRoot, mj.Name)); len(m) != 0 {
			t.Errorf("%s went to OMA %s, yet OMA %s mounts %v", mj.Name, vm.ID, other.ID, m)
		}
	}
}

// checkVolumes checks that the job's disks are the MigrationVolumes <job>-<disk>, labelled
// with the job and controlled by it, on the config it was placed on.
func checkVolumes(t *testing.T, ns string, mj *osseav1.MigrationJob) {
	t.Helper()
	var list osseav1.MigrationVolumeList
	getJSON(t, &list, "-n", ns, "mv", "-l", jobLabel+"="+mj.Name)
	names := map[string]bool{}
	for _, mv := range list.Items {
		names[mv.Name] = true
		owner := metav1.GetControllerOf(&mv)
		if owner == nil || owner.Kind != "MigrationJob" || owner.Name != mj.Name || owner.UID != mj.UID ||
			owner.BlockOwnerDeletion == nil || !*owner.BlockOwnerDeletion {
			t.Errorf("%s is not controlled by job %s (uid %s): %+v", mv.Name, mj.Name, mj.UID, mv.OwnerReferences)
		}
		if mv.Spec.OsseaConfigRef.Name != mj.Status.Placement.OsseaConfigName || mv.Spec.JobID != mj.Name {
			t.Errorf("%s: config %s, jobID %s; want those of job %s (%s)",
				mv.Name, mv.Spec.OsseaConfigRef.Name, mv.Spec.JobID, mj.Name, mj.Status.Placement.OsseaConfigName)
		}
	}
	for _, disk := range []string{"disk0", "disk1", "disk2"} {
		if !names[mj.Name+"-"+disk] {
			t.Errorf("no MigrationVolume %s-%s labelled %s=%s (have %v)", mj.Name, disk, jobLabel, mj.Name, names)
		}
	}
	if len(names) != 3 {
		t.Errorf("job %s has MigrationVolumes %v, want exactly 3", mj.Name, names)
	}
}

// assertPoolEmpty checks that nothing of the namespace's jobs is left: no object, no mount
// on either OMA, no CloudStack volume, no loop device.
func assertPoolEmpty(t *testing.T, ns string) {
	t.Helper()
	if left := kubectl(t, "get", "-n", ns, "mj,mv", "-o", "name"); strings.TrimSpace(left) != "" {
		t.Errorf("objects left: %s", left)
	}
	for _, vm := range sim.VMs {
		if m := mountsUnder(t, vm.MountRoot); len(m) != 0 {
			t.Errorf("mounts left on OMA %s: %v", vm.ID, m)
		}
	}
	for _, v := range simDataVolumes(t) {
		if strings.HasPrefix(world.Tag(v, "ossea.migratekit.io/owner"), ns+"/") {
			t.Errorf("volume left in CloudStack: %+v", v)
		}
	}
	if loops := loopDevicesUnder(t, w.Dir); len(loops) != 0 {
		t.Errorf("loop devices left: %v", loops)
	}
}

// attachedToOMAs lists the data volumes attached to the world's OMA VMs (not those a
// cut-over left on a target VM).
func attachedToOMAs(t *testing.T) []string {
	t.Helper()
	var used []string
	for _, v := range simDataVolumes(t) {
		if slices.ContainsFunc(sim.VMs, func(vm world.SimVM) bool { return vm.ID == v.VirtualMachineID }) {
			used = append(used, v.Name+" on "+v.VirtualMachineID)
		}
	}
	return used
}

// getJSON decodes `kubectl get -o json args...` into v.
func getJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out := kubectl(t, append([]string{"get", "-o", "json"}, args...)...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("kubectl get %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
