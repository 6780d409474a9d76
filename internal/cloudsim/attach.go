package cloudsim

import (
	"fmt"
	"strconv"
)

// cdromDeviceID is the slot CloudStack keeps for the CD-ROM; data disks skip it.
const cdromDeviceID = 3

// attachVolume checks only what the parameter processor checks; CloudStack
// validates everything else inside the job, so those failures surface there.
func attachVolume(c *call) (any, *apiError) {
	id, err := c.require("id")
	if err != nil {
		return nil, err
	}
	vmID, err := c.require("virtualmachineid")
	if err != nil {
		return nil, err
	}
	if _, _, err := c.int64Param("deviceid"); err != nil {
		return nil, err
	}
	if !c.s.volumeExists(id) {
		return nil, errBadEntity(c.apiName(), "id", id)
	}
	if c.s.vms[vmID] == nil {
		return nil, errBadEntity(c.apiName(), "virtualmachineid", vmID)
	}
	if err := c.checkAccess(c.s.volumeOwner(id)); err != nil {
		return nil, err
	}
	if err := c.checkAccess(c.s.vmOwner(vmID)); err != nil {
		return nil, err
	}
	return jobID{c.startJob("Volume", id)}, nil
}

type jobID struct {
	JobID string `json:"jobid"`
}

func completeAttachVolume(s *Simulator, j *Job) (any, *apiError) {
	var want *int64
	if d, err := strconv.ParseInt(j.param("deviceid"), 10, 64); err == nil {
		want = &d
	}
	return s.attachLocked(s.volumes[j.InstanceID], s.vms[j.param("virtualmachineid")], want)
}

// attachLocked is VolumeApiServiceImpl.attachVolumeToVM: every rule, then the
// device id, then the hypervisor. Device 0 makes the volume the VM's ROOT disk, as
// VolumeDaoImpl.attachVolume does.
func (s *Simulator) attachLocked(v *Volume, vm *VirtualMachine, want *int64) (any, *apiError) {
	if err := s.checkAttachLocked(v, vm, want); err != nil {
		return nil, err
	}
	device, err := s.deviceIDLocked(vm, want)
	if err != nil {
		return nil, err
	}
	if vm.Local != nil {
		if herr := s.hv.attach(vm.Local, v); herr != nil {
			return nil, errInternal(fmt.Sprintf("Failed to attach volume %s to VM %s; %v", v.Name, vm.Name, herr))
		}
	}
	now := s.clock()
	v.VirtualMachineID, v.DeviceID, v.Attached = vm.ID, &device, &now
	// The first attach is when CloudStack creates the volume on primary storage.
	v.State = stateReady
	if device == 0 {
		v.Type = volumeTypeRoot
	}
	return map[string]any{"volume": s.volumeJSON(v)}, nil
}

// checkAttachLocked runs the attach rules in the order of the reference's Hand-off
// table: the VM's state and zone, then the volume's, then the root or data-disk
// rules. (CloudStack 4.20's attachVolumeToVM checks the volume before the VM; the
// two orders differ only for a call that breaks a rule of each.) An Uploaded volume
// cannot exist here, so "No support for Root volume attach in state Uploaded" is
// never answered.
func (s *Simulator) checkAttachLocked(v *Volume, vm *VirtualMachine, want *int64) *apiError {
	if v == nil || (v.Type != volumeTypeData && v.Type != volumeTypeRoot) {
		return errInvalid("Please specify a volume with the valid type: ROOT or DATADISK")
	}
	if vm.State != "Running" && vm.State != "Stopped" {
		return errInvalid(textVMState)
	}
	if vm.Zone != v.ZoneID {
		return errInvalid(textVMZone)
	}
	if v.VirtualMachineID != "" {
		return errInvalid(textVolumeAttached)
	}
	if v.State != stateAllocated && v.State != stateReady {
		return errInvalid("Volume state must be in Allocated, Ready or in Uploaded state")
	}
	if want != nil && *want == 0 {
		return s.checkRootAttachLocked(vm)
	}
	// A root attach is not a data disk, so only data attaches count against the limit.
	if n := len(s.dataVolumesOfLocked(vm.ID)); n >= vm.MaxDataVolumes {
		return errMaxDataDisks(vm.MaxDataVolumes)
	}
	return nil
}

// checkRootAttachLocked is checkDeviceId for device 0.
func (s *Simulator) checkRootAttachLocked(vm *VirtualMachine) *apiError {
	if err := checkRootMove(vm); err != nil {
		return err
	}
	if s.volumeAtDeviceLocked(vm.ID, 0) != nil {
		return errInvalid(textHasRoot)
	}
	return nil
}

// rootMoveHypervisors are the hypervisors validateRootVolumeDetachAttach accepts.
var rootMoveHypervisors = map[string]bool{"XenServer": true, "VMware": true, "KVM": true, "Simulator": true}

// checkRootMove is validateRootVolumeDetachAttach, which guards root attach and
// root detach alike (hence "detach" in the attach's texts too). Its text names
// Destroyed, but only Stopped passes.
func checkRootMove(vm *VirtualMachine) *apiError {
	if !rootMoveHypervisors[vm.Hypervisor] {
		return errInvalid(textRootHypervisor, vm.Hypervisor)
	}
	if vm.State != "Stopped" {
		return errInvalid(textRootVMState)
	}
	return nil
}

func (s *Simulator) volumeAtDeviceLocked(vmID string, device int64) *Volume {
	for _, v := range s.volumes {
		if v.VirtualMachineID == vmID && v.DeviceID != nil && *v.DeviceID == device {
			return v
		}
	}
	return nil
}

// deviceIDLocked is getDeviceId: ids run from 1 to max data volumes + 1 (the
// ROOT disk and the CD-ROM take two of max + 2 slots); the lowest free one is
// taken, never 3. Its refusals are RuntimeExceptions (530), and they name the
// VM by its internal numeric id, as CloudStack 4.20 does.
func (s *Simulator) deviceIDLocked(vm *VirtualMachine, want *int64) (int64, *apiError) {
	maxID := int64(vm.MaxDataVolumes + 1)
	if want != nil {
		if *want < 0 || *want > maxID || *want == cdromDeviceID {
			return 0, errInternal(fmt.Sprintf("deviceId should be 0,1,2,4-%d", maxID))
		}
		if s.volumeAtDeviceLocked(vm.ID, *want) != nil {
			return 0, errInternal(fmt.Sprintf("deviceId %d is used by vm %d", *want, s.vmSeq[vm.ID]))
		}
		return *want, nil
	}
	for id := int64(1); id <= maxID; id++ {
		if id != cdromDeviceID && s.volumeAtDeviceLocked(vm.ID, id) == nil {
			return id, nil
		}
	}
	return 0, errInternal(fmt.Sprintf("All device Ids are used by vm %d", s.vmSeq[vm.ID]))
}

func detachVolume(c *call) (any, *apiError) {
	id := c.param("id")
	if id != "" && !c.s.volumeExists(id) {
		return nil, errBadEntity(c.apiName(), "id", id)
	}
	if vm := c.param("virtualmachineid"); vm != "" && c.s.vms[vm] == nil {
		return nil, errBadEntity(c.apiName(), "virtualmachineid", vm)
	}
	if _, _, err := c.int64Param("deviceid"); err != nil {
		return nil, err
	}
	if err := c.checkAccess(c.s.volumeOwner(id)); err != nil {
		return nil, err
	}
	if id != "" {
		if err := c.s.refuseInTransitionLocked(id); err != nil {
			return nil, err
		}
	}
	return jobID{c.startJob("Volume", id)}, nil
}

// refuseInTransitionLocked refuses a change to a volume that an attach or detach job is
// still working on, as CloudStack does while the volume is in a transitional state.
func (s *Simulator) refuseInTransitionLocked(volumeID string) *apiError {
	for _, j := range s.pending {
		if j.InstanceID != volumeID {
			continue
		}
		switch j.Command {
		case "attachVolume":
			return errVolumeInTransition(volumeID, "attached")
		case "detachVolume":
			return errVolumeInTransition(volumeID, "detached")
		}
	}
	return nil
}

// completeDetachVolume is detachVolumeFromVM, which runs entirely in the job.
func completeDetachVolume(s *Simulator, j *Job) (any, *apiError) {
	id, vmParam, deviceParam := j.param("id"), j.param("virtualmachineid"), j.param("deviceid")
	if (id == "" && (deviceParam == "" || vmParam == "")) || (id != "" && (deviceParam != "" || vmParam != "")) {
		return nil, errInvalid(textDetachNeedsIDs)
	}
	var v *Volume
	if id != "" {
		if v = s.volumes[id]; v == nil {
			return nil, errInvalid("Unable to find volume with ID: %d", s.removed[id])
		}
	} else {
		device, _ := strconv.ParseInt(deviceParam, 10, 64)
		if v = s.volumeAtDeviceLocked(vmParam, device); v == nil {
			// CloudStack takes element 0 of an empty result list here.
			return nil, errInternal("Index 0 out of bounds for length 0")
		}
	}
	if v.VirtualMachineID == "" {
		return nil, errInvalid(textNotAttached)
	}
	vm := s.vms[v.VirtualMachineID]
	if vm.State != "Running" && vm.State != "Stopped" && vm.State != "Destroyed" {
		return nil, errInvalid(textVMState)
	}
	if v.Type == volumeTypeRoot {
		if err := checkRootMove(vm); err != nil {
			return nil, err
		}
	}
	if vm.Local != nil && v.LoopDevice != "" {
		if err := s.hv.detach(v); err != nil {
			return nil, errInternal(fmt.Sprintf("Failed to detach volume %s from VM %s; %v", v.Name, vm.Name, err))
		}
	}
	v.detach()
	return map[string]any{"volume": s.volumeJSON(v)}, nil
}
