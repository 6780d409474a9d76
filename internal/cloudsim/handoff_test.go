package cloudsim

import (
	"testing"

	"github.com/apache/cloudstack-go/v2/cloudstack"
)

// Target VMs of the hand-off tests: a stopped KVM target, a stopped Hyper-V
// target (whose root disk CloudStack refuses to move) and a running KVM target.
const (
	targetVMID  = "7d2e5a1c-4b3f-4e6d-9a8b-000000000001"
	hypervVMID  = "7d2e5a1c-4b3f-4e6d-9a8b-000000000002"
	runningVMID = "7d2e5a1c-4b3f-4e6d-9a8b-000000000003"
)

// handoffWorld is twoZoneWorld (the OMA, then a VM in another zone) with the targets.
func handoffWorld() *World {
	w := twoZoneWorld()
	w.VirtualMachines = append(w.VirtualMachines,
		VirtualMachine{ID: targetVMID, Name: "target", Zone: DefaultZoneID, State: "Stopped"},
		VirtualMachine{ID: hypervVMID, Name: "hyperv-target", Zone: DefaultZoneID, State: "Stopped", Hypervisor: "Hyperv"},
		VirtualMachine{ID: runningVMID, Name: "running-target", Zone: DefaultZoneID},
	)
	return w
}

// The world file may spell a hypervisor in any case; the API reports CloudStack's spelling.
func TestHypervisorPerVM(t *testing.T) {
	for _, tc := range []struct{ world, want string }{
		{"", "KVM"},
		{"vmware", "VMware"},
		{"XENSERVER", "XenServer"},
		{"Hyperv", "Hyperv"},
		{"simulator", "Simulator"},
		{"lxc", "LXC"},
		{"ovm3", "Ovm3"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			w := DefaultWorld()
			w.VirtualMachines[0].Hypervisor = tc.world
			e := newEnv(t, Options{World: w})
			l, err := e.cs.VirtualMachine.ListVirtualMachines(e.cs.VirtualMachine.NewListVirtualMachinesParams())
			if err != nil || l.Count != 1 {
				t.Fatalf("listVirtualMachines: %+v, %v", l, err)
			}
			if got := l.VirtualMachines[0].Hypervisor; got != tc.want {
				t.Errorf("hypervisor %q, want %q", got, tc.want)
			}
			if got := e.sim.Snapshot().VirtualMachines[0].Hypervisor; got != tc.want {
				t.Errorf("admin state hypervisor %q, want %q", got, tc.want)
			}
		})
	}
}

// rootOf is the id of the ROOT volume a VM's template gave it.
func rootOf(vmID string) string { return stableUUID("rootvolume", vmID) }

func (e *env) attachAt(volumeID, vmID string, device int64) (*cloudstack.AttachVolumeResponse, error) {
	p := e.async.Volume.NewAttachVolumeParams(volumeID, vmID)
	p.SetDeviceid(device)
	return e.async.Volume.AttachVolume(p)
}

func (e *env) mustDetach(volumeID string) *cloudstack.DetachVolumeResponse {
	e.t.Helper()
	v, err := e.detach(volumeID)
	if err != nil {
		e.t.Fatalf("detachVolume %s: %v", volumeID, err)
	}
	return v
}

func (e *env) setVMState(vmID, state string) {
	e.t.Helper()
	if err := e.sim.SetVMState(vmID, state); err != nil {
		e.t.Fatal(err)
	}
}

// Each root rule of the reference's Hand-off section, and the order of the data
// attach rules, through the real client: every one fails the job with 431.
func TestHandoffRules(t *testing.T) {
	rows := []struct {
		name string
		run  func(e *env) error
		want string
	}{
		{"root attach to a running VM", func(e *env) error {
			_, err := e.attachAt(e.createVolume("r", 1).Id, runningVMID, 0)
			return err
		}, textRootVMState},

		{"root attach to a VM that has a root", func(e *env) error {
			_, err := e.attachAt(e.createVolume("r", 1).Id, targetVMID, 0)
			return err
		}, textHasRoot},

		{"root attach on Hyper-V", func(e *env) error {
			_, err := e.attachAt(e.createVolume("r", 1).Id, hypervVMID, 0)
			return err
		}, "Root volume detach is not supported for hypervisor type Hyperv"},

		{"root attach on Hyper-V, running: the hypervisor is checked first", func(e *env) error {
			e.setVMState(hypervVMID, "Running")
			_, err := e.attachAt(e.createVolume("r", 1).Id, hypervVMID, 0)
			return err
		}, "Root volume detach is not supported for hypervisor type Hyperv"},

		{"root attach to a destroyed VM: the VM state rule comes first", func(e *env) error {
			e.setVMState(targetVMID, "Destroyed")
			_, err := e.attachAt(e.createVolume("r", 1).Id, targetVMID, 0)
			return err
		}, textVMState},

		{"root attach of an attached volume", func(e *env) error {
			e.mustDetach(rootOf(targetVMID))
			v := e.createVolume("r", 1)
			e.mustAttach(v.Id, DefaultOMAVMID)
			_, err := e.attachAt(v.Id, targetVMID, 0)
			return err
		}, textVolumeAttached},

		{"root detach on Hyper-V", func(e *env) error {
			_, err := e.detach(rootOf(hypervVMID))
			return err
		}, "Root volume detach is not supported for hypervisor type Hyperv"},

		{"root detach of a running VM", func(e *env) error {
			_, err := e.detach(rootOf(runningVMID))
			return err
		}, textRootVMState},

		{"root detach of a destroyed VM: the text names Destroyed, only Stopped passes", func(e *env) error {
			e.setVMState(targetVMID, "Destroyed")
			_, err := e.detach(rootOf(targetVMID))
			return err
		}, textRootVMState},

		{"detach from a VM that is starting", func(e *env) error {
			v := e.createVolume("d", 1)
			e.mustAttach(v.Id, targetVMID)
			e.setVMState(targetVMID, "Starting")
			_, err := e.detach(v.Id)
			return err
		}, textVMState},

		{"data attach of an attached volume to a destroyed VM: the VM's state first", func(e *env) error {
			v := e.createVolume("d", 1)
			e.mustAttach(v.Id, DefaultOMAVMID)
			e.setVMState(targetVMID, "Destroyed")
			_, err := e.attach(v.Id, targetVMID)
			return err
		}, textVMState},

		{"data attach of an attached volume to another zone: the zone before the volume", func(e *env) error {
			v := e.createVolume("d", 1)
			e.mustAttach(v.Id, DefaultOMAVMID)
			_, err := e.attach(v.Id, farVMID)
			return err
		}, textVMZone},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			e := newEnv(t, Options{World: handoffWorld()})
			wantErr(t, row.run(e), jobErr(431, row.want))
		})
	}
}

// The cut-over on a stopped KVM target: its placeholder root comes off as a data
// disk (kept, tagged, deletable), a migrated disk goes on at device 0 as ROOT, and
// the data disks follow at 1, 2.
func TestRootHandOff(t *testing.T) {
	e := newEnv(t, Options{World: handoffWorld()})
	placeholder := rootOf(targetVMID)
	tags := e.async.Resourcetags.NewCreateTagsParams([]string{placeholder}, "Volume", map[string]string{"ossea.migratekit.io/replaced-by": "x"})
	if _, err := e.async.Resourcetags.CreateTags(tags); err != nil {
		t.Fatalf("tagging the ROOT volume: %v", err)
	}
	off := e.mustDetach(placeholder)
	if off.Type != "DATADISK" || off.Virtualmachineid != "" || off.State != "Ready" || len(off.Tags) != 1 {
		t.Fatalf("detached placeholder: %+v", off)
	}

	root := e.createVolume("disk0", 2)
	on, err := e.attachAt(root.Id, targetVMID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if on.Type != "ROOT" || on.Deviceid != 0 || on.Virtualmachineid != targetVMID || on.State != "Ready" {
		t.Fatalf("new root: %+v", on)
	}
	var ids []int64
	for _, name := range []string{"disk1", "disk2"} {
		ids = append(ids, e.mustAttach(e.createVolume(name, 1).Id, targetVMID).Deviceid)
	}
	if !equalInts(ids, []int64{1, 2}) {
		t.Fatalf("data disks at %v, want [1 2]", ids)
	}

	p := e.cs.Volume.NewListVolumesParams()
	p.SetVirtualmachineid(targetVMID)
	p.SetType("ROOT")
	if l, err := e.cs.Volume.ListVolumes(p); err != nil || l.Count != 1 || l.Volumes[0].Id != root.Id {
		t.Fatalf("the target's ROOT volumes: %+v, %v", l, err)
	}
	if _, err := e.cs.Volume.DeleteVolume(e.cs.Volume.NewDeleteVolumeParams(placeholder)); err != nil {
		t.Fatalf("deleting the replaced placeholder: %v", err)
	}
}

// Device 0 is not a data disk: a target at its data-disk limit still takes a root,
// and a new root does not count against the limit afterwards.
func TestRootAttachIgnoresTheDataDiskLimit(t *testing.T) {
	w := handoffWorld()
	w.VirtualMachines[2].MaxDataVolumes = 1
	e := newEnv(t, Options{World: w})
	e.mustAttach(e.createVolume("data", 1).Id, targetVMID)
	e.mustDetach(rootOf(targetVMID))
	if _, err := e.attachAt(e.createVolume("root", 1).Id, targetVMID, 0); err != nil {
		t.Fatalf("root attach at the data-disk limit: %v", err)
	}
	_, err := e.attach(e.createVolume("more", 1).Id, targetVMID)
	wantErr(t, err, jobErr(431, "The specified VM already has the maximum number of data disks (1) attached. Please specify another VM."))
}

// A restart never gives a VM a second root: not after its placeholder was
// replaced, nor after the placeholder was deleted.
func TestRestartAfterHandOffKeepsOneRoot(t *testing.T) {
	path := t.TempDir() + "/state.json"
	e := newEnv(t, Options{World: handoffWorld(), StateFile: path})
	e.mustDetach(rootOf(targetVMID))
	root := e.createVolume("root", 1)
	if _, err := e.attachAt(root.Id, targetVMID, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cs.Volume.DeleteVolume(e.cs.Volume.NewDeleteVolumeParams(rootOf(targetVMID))); err != nil {
		t.Fatal(err)
	}
	e.srv.Close()
	if err := e.sim.Close(); err != nil {
		t.Fatal(err)
	}

	r := newEnv(t, Options{World: handoffWorld(), StateFile: path})
	p := r.cs.Volume.NewListVolumesParams()
	p.SetVirtualmachineid(targetVMID)
	l, err := r.cs.Volume.ListVolumes(p)
	if err != nil || l.Count != 1 || l.Volumes[0].Id != root.Id || l.Volumes[0].Type != "ROOT" {
		t.Fatalf("the target's volumes after restart: %+v, %v", l, err)
	}
}
