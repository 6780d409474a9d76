package cloudsim

import "fmt"

// startVirtualMachine and stopVirtualMachine check only what the parameter
// processor checks; StartVMCmd and StopVMCmd judge the VM's state in their job,
// so those refusals fail the job.
func startVirtualMachine(c *call) (any, *apiError) { return c.vmJob() }

func stopVirtualMachine(c *call) (any, *apiError) { return c.vmJob() }

func (c *call) vmJob() (any, *apiError) {
	id, err := c.require("id")
	if err != nil {
		return nil, err
	}
	if c.s.vms[id] == nil {
		return nil, errBadEntity(c.apiName(), "id", id)
	}
	if err := c.checkAccess(c.s.vmOwner(id)); err != nil {
		return nil, err
	}
	return jobID{c.startJob("VirtualMachine", id)}, nil
}

func completeStartVirtualMachine(s *Simulator, j *Job) (any, *apiError) {
	vm := s.vms[j.InstanceID]
	if err := s.startVMLocked(vm); err != nil {
		return nil, err
	}
	return map[string]any{"virtualmachine": s.vmJSON(vm)}, nil
}

func completeStopVirtualMachine(s *Simulator, j *Job) (any, *apiError) {
	vm := s.vms[j.InstanceID]
	if err := s.stopVMLocked(vm); err != nil {
		return nil, err
	}
	return map[string]any{"virtualmachine": s.vmJSON(vm)}, nil
}

// startVMLocked is UserVmManagerImpl.startVirtualMachine (a running VM is refused
// with 431), then changeToStartState (any other state but Stopped: 530; CloudStack
// first waits out the work on a VM in a transitional state), then the deployment,
// which needs a root disk. CloudStack has no check of its own for that: the text
// and the 530 are the simulator's.
func (s *Simulator) startVMLocked(vm *VirtualMachine) *apiError {
	switch {
	case vm.State == "Running":
		return errInvalid("The virtual machine %s (%s) is already running", vm.ID, vm.DisplayName)
	case vm.State != "Stopped":
		return errInternal(fmt.Sprintf("Cannot start %s in %s state", s.vmString(vm), vm.State))
	case s.volumeAtDeviceLocked(vm.ID, 0) == nil:
		return errInternal(fmt.Sprintf(textNoRootVolume, vm.Name))
	}
	vm.State = "Running"
	return nil
}

// stopVMLocked is VirtualMachineManagerImpl.advanceStop: a VM that is already
// down is left as it is and the job succeeds. The refusal of a VM in a
// transitional state is simplified: CloudStack's depends on the work in progress.
func (s *Simulator) stopVMLocked(vm *VirtualMachine) *apiError {
	switch vm.State {
	case "Running":
		vm.State = "Stopped"
	case "Stopped", "Destroyed", "Expunging", "Error":
	default:
		return errInternal(fmt.Sprintf("We cannot stop %s when it is in state %s", s.vmString(vm), vm.State))
	}
	return nil
}

// vmString is VMInstanceVO.toString, as CloudStack's texts print a VM.
func (s *Simulator) vmString(vm *VirtualMachine) string {
	return "VM[User|" + s.instanceName(vm) + "]"
}

// StartVM starts a VM at once, by the rules of startVirtualMachine, as an
// operator's own tooling would (POST /admin/virtualmachines/{id}/start).
func (s *Simulator) StartVM(vmID string) error { return s.changeVM(vmID, s.startVMLocked) }

// StopVM stops a VM at once, by the rules of stopVirtualMachine
// (POST /admin/virtualmachines/{id}/stop).
func (s *Simulator) StopVM(vmID string) error { return s.changeVM(vmID, s.stopVMLocked) }

func (s *Simulator) changeVM(vmID string, change func(*VirtualMachine) *apiError) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	vm := s.vms[vmID]
	if vm == nil {
		return fmt.Errorf("cloudsim: unknown VM %q", vmID)
	}
	if err := change(vm); err != nil {
		return &vmRefused{err}
	}
	s.persistLocked()
	return nil
}

// vmRefused is a start or stop the VM's state does not allow; its text is
// CloudStack's, as the job would have failed with it.
type vmRefused struct{ *apiError }

func (e *vmRefused) Error() string { return e.Text }

// EditVM changes a VM in place, as a person with CloudStack's UI or the database would
// (moving it to another account or zone, changing its hypervisor): tests provoke and then
// fix what a hand-off checks.
func (s *Simulator) EditVM(vmID string, edit func(*VirtualMachine)) error {
	return s.changeVM(vmID, func(vm *VirtualMachine) *apiError {
		edit(vm)
		return nil
	})
}
