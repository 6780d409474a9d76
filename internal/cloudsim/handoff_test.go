package cloudsim

import (
	"testing"
)

// Target VMs of the hand-off tests: a stopped KVM target, a stopped Hyper-V
// target (whose root disk CloudStack refuses to move) and a running KVM target.
const (
	targetVMID  = "7d2e5a1c-4b3f-4e6d-9a8b-000000000001"
	hypervVMID  = "7d2e5a1c-4b3f-4e6d-9a8b-000000000002"
	runningVMID = "7d2e5a1c-4b3f-4e6d-9a8b-000000000003"
)

func handoffWorld() *World {
	w := DefaultWorld()
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
