package cloudsim

import (
	"fmt"
	"strings"
	"time"
)

const (
	volumeTypeData = "DATADISK"
	volumeTypeRoot = "ROOT"
	stateAllocated = "Allocated"
	stateReady     = "Ready"
	gib            = int64(1) << 30
)

// Volume is a CloudStack volume as the simulator keeps it.
type Volume struct {
	ID string `json:"id"`
	// Seq stands in for CloudStack's internal numeric id: it orders lists and
	// appears where CloudStack prints the internal id in an error.
	Seq              int64      `json:"seq"`
	Name             string     `json:"name"`
	Type             string     `json:"type"`
	ZoneID           string     `json:"zoneId"`
	DiskOfferingID   string     `json:"diskOfferingId,omitempty"`
	SizeBytes        int64      `json:"sizeBytes"`
	State            string     `json:"state"`
	Account          string     `json:"account"`
	VirtualMachineID string     `json:"virtualMachineId,omitempty"`
	DeviceID         *int64     `json:"deviceId,omitempty"`
	Created          time.Time  `json:"created"`
	Attached         *time.Time `json:"attached,omitempty"`
	Tags             []Tag      `json:"tags,omitempty"`
	// Set by the local hypervisor: the sparse file that holds the data (kept
	// across detach), and while attached, the loop device and its by-id link.
	BackingFile string `json:"backingFile,omitempty"`
	LoopDevice  string `json:"loopDevice,omitempty"`
	DeviceLink  string `json:"deviceLink,omitempty"`
}

// Tag is a resource tag on a volume.
type Tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

func (v Volume) clone() Volume {
	c := v
	c.Tags = append([]Tag(nil), v.Tags...)
	if v.DeviceID != nil {
		d := *v.DeviceID
		c.DeviceID = &d
	}
	if v.Attached != nil {
		t := *v.Attached
		c.Attached = &t
	}
	return c
}

// detach is VolumeDaoImpl.detachVolume: a ROOT volume off its VM is a data disk,
// so it can be deleted or attached anywhere.
func (v *Volume) detach() {
	v.VirtualMachineID, v.DeviceID, v.Attached = "", nil, nil
	if v.Type == volumeTypeRoot {
		v.Type = volumeTypeData
	}
}

// volumeExists is what the parameter processor checks: removed volumes still
// resolve, so using a deleted id fails later and differently.
func (s *Simulator) volumeExists(id string) bool { return s.volumes[id] != nil || s.removed[id] != 0 }

func (s *Simulator) dataVolumesOfLocked(vmID string) []*Volume {
	var out []*Volume
	for _, v := range s.volumes {
		if v.VirtualMachineID == vmID && v.Type == volumeTypeData {
			out = append(out, v)
		}
	}
	return out
}

// addRootVolumeLocked makes the ROOT volume a VM's template gave it. Its id is
// derived from the VM's, so it is recognised across restarts.
func (s *Simulator) addRootVolumeLocked(vm *VirtualMachine) {
	s.nextVolumeSeq++
	zero := int64(0)
	at := worldCreated
	id := stableUUID("rootvolume", vm.ID)
	s.volumes[id] = &Volume{
		ID: id, Seq: s.nextVolumeSeq, Name: fmt.Sprintf("ROOT-%d", s.nextVolumeSeq), Type: volumeTypeRoot,
		ZoneID: vm.Zone, SizeBytes: vm.RootDiskSizeGB * gib, State: stateReady, Account: vm.Account,
		VirtualMachineID: vm.ID, DeviceID: &zero, Created: at, Attached: &at,
	}
}

func (s *Simulator) accountVolumeCountLocked(account string) int {
	n := 0
	for _, v := range s.volumes {
		if v.Account == account {
			n++
		}
	}
	return n
}

// createVolume allocates the volume at once (CloudStack's create phase: it is
// listed, Allocated, from this moment) and returns its id with the job id. The
// job only reports it: storage is made on the first attach.
func createVolume(c *call) (any, *apiError) {
	s := c.s
	// The reference names a missing parameter of createvolume as a synchronous
	// error, so zoneid is required here; CloudStack 4.20's annotation makes it
	// optional and fails later with "Unable to find zone by id null".
	zoneID, err := c.require("zoneid")
	if err != nil {
		return nil, err
	}
	size, hasSize, err := c.int64Param("size")
	if err != nil {
		return nil, err
	}
	if s.zones[zoneID] == nil {
		return nil, errBadEntity(c.apiName(), "zoneid", zoneID)
	}
	offeringID := c.param("diskofferingid")
	if offeringID != "" && s.offerings[offeringID] == nil {
		return nil, errBadEntity(c.apiName(), "diskofferingid", offeringID)
	}
	if vm := c.param("virtualmachineid"); vm != "" && s.vms[vm] == nil {
		return nil, errBadEntity(c.apiName(), "virtualmachineid", vm)
	}

	a := c.account
	if current := s.accountVolumeCountLocked(a.Name); a.VolumeLimit > 0 && current >= a.VolumeLimit {
		return nil, errVolumeLimit(a, a.VolumeLimit, current)
	}
	if offeringID == "" {
		return nil, errInvalid("At least one of disk Offering ID or snapshot ID must be passed whilst creating volume")
	}
	if hasSize && size <= 0 {
		return nil, errInvalid("Disk size must be larger than 0")
	}
	o := s.offerings[offeringID]
	sizeBytes := o.DiskSizeGB * gib
	if o.Customized {
		if !hasSize {
			return nil, errInvalid(textCustomNeedsSize)
		}
		w := s.world
		if size < w.CustomDiskOfferingMinSizeGB || size > w.CustomDiskOfferingMaxSizeGB {
			return nil, errInvalid("Volume size: %d GB is out of allowed range. Min: %d. Max: %d",
				size, w.CustomDiskOfferingMinSizeGB, w.CustomDiskOfferingMaxSizeGB)
		}
		sizeBytes = size * gib
	} else if hasSize {
		return nil, errInvalid(textFixedNoSize)
	}
	if s.zones[zoneID].AllocationState == "Disabled" && !a.Admin {
		return nil, &apiError{Code: codeAccount, CSCode: csPermission, Text: "Cannot perform this operation, Zone is currently disabled: " + zoneID}
	}

	name := c.param("name")
	if strings.TrimSpace(name) == "" {
		name = newUUID() // CloudStack names an unnamed volume with a random UUID
	}
	s.nextVolumeSeq++
	v := &Volume{
		ID: newUUID(), Seq: s.nextVolumeSeq, Name: name, Type: volumeTypeData, ZoneID: zoneID,
		DiskOfferingID: offeringID, SizeBytes: sizeBytes, State: stateAllocated, Account: a.Name, Created: c.now,
	}
	s.volumes[v.ID] = v
	c.mutated = true
	return struct {
		ID    string `json:"id"`
		JobID string `json:"jobid"`
	}{v.ID, c.startJob("Volume", v.ID)}, nil
}

// completeCreateVolume reports the allocated volume. virtualmachineid is only
// honoured by CloudStack for volumes made from a snapshot, so it is ignored here.
func completeCreateVolume(s *Simulator, j *Job) (any, *apiError) {
	v := s.volumes[j.InstanceID]
	if v == nil {
		return nil, errInternal(fmt.Sprintf("Failed to create volume: %s", j.InstanceID))
	}
	return map[string]any{"volume": s.volumeJSON(v)}, nil
}

// deleteVolume is synchronous and expunges at once; the id stays resolvable.
func deleteVolume(c *call) (any, *apiError) {
	s := c.s
	id, err := c.require("id")
	if err != nil {
		return nil, err
	}
	if !s.volumeExists(id) {
		return nil, errBadEntity(c.apiName(), "id", id)
	}
	if err := c.checkAccess(s.volumeOwner(id)); err != nil {
		return nil, err
	}
	v := s.volumes[id]
	if v == nil {
		return nil, errInvalid("Unable to find volume with ID: %d", s.removed[id])
	}
	if err := s.refuseInTransitionLocked(v.ID); err != nil {
		return nil, err
	}
	if v.VirtualMachineID != "" {
		return nil, errInvalid(textVolumeAttached)
	}
	if v.BackingFile != "" {
		if err := s.hv.removeBacking(v); err != nil {
			s.logf("cloudsim: deleting backing file of volume %s: %v", v.ID, err)
		}
	}
	delete(s.volumes, id)
	s.removed[id] = v.Seq
	c.mutated = true
	return struct {
		Success bool `json:"success"`
	}{true}, nil
}

func listVolumes(c *call) (any, *apiError) {
	s := c.s
	ids, err := c.idList(s.volumeExists)
	if err != nil {
		return nil, err
	}
	for param, exists := range map[string]func(string) bool{
		"virtualmachineid": func(id string) bool { return s.vms[id] != nil },
		"zoneid":           func(id string) bool { return s.zones[id] != nil },
		"diskofferingid":   func(id string) bool { return s.offerings[id] != nil },
	} {
		if v := c.param(param); v != "" && !exists(v) {
			return nil, errBadEntity(c.apiName(), param, v)
		}
	}
	wantTags := parseTagParams(c.params)
	var items []any
	for _, snapshot := range s.sortedVolumesLocked() {
		v := s.volumes[snapshot.ID]
		if (ids != nil && !ids[v.ID]) || !c.canSee(v.Account) ||
			(c.param("name") != "" && v.Name != c.param("name")) ||
			(c.param("virtualmachineid") != "" && v.VirtualMachineID != c.param("virtualmachineid")) ||
			(c.param("zoneid") != "" && v.ZoneID != c.param("zoneid")) ||
			(c.param("diskofferingid") != "" && v.DiskOfferingID != c.param("diskofferingid")) ||
			(c.param("type") != "" && !strings.EqualFold(v.Type, c.param("type"))) ||
			(c.param("state") != "" && !strings.EqualFold(v.State, c.param("state"))) ||
			!keywordMatch(c.param("keyword"), v.Name) || !hasTags(v, wantTags) {
			continue
		}
		items = append(items, s.volumeJSON(v))
	}
	return c.page("volume", items)
}

// hasTags is the tags[N] filter of listVolumes: every pair must be on the
// volume (a key given without a value matches any value).
func hasTags(v *Volume, want []tagFilter) bool {
	for _, w := range want {
		found := false
		for _, t := range v.Tags {
			if t.Key == w.Key && (!w.hasValue || t.Value == w.Value) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// volumeJSON is VolumeResponse; fields CloudStack leaves null are omitted.
type volumeJSON struct {
	ID                      string    `json:"id"`
	Name                    string    `json:"name"`
	ZoneID                  string    `json:"zoneid"`
	ZoneName                string    `json:"zonename"`
	Type                    string    `json:"type"`
	DeviceID                *int64    `json:"deviceid,omitempty"`
	VirtualMachineID        string    `json:"virtualmachineid,omitempty"`
	VMName                  string    `json:"vmname,omitempty"`
	VMDisplayName           string    `json:"vmdisplayname,omitempty"`
	VMState                 string    `json:"vmstate,omitempty"`
	ProvisioningType        string    `json:"provisioningtype"`
	Size                    int64     `json:"size"`
	Created                 string    `json:"created"`
	State                   string    `json:"state"`
	Account                 string    `json:"account"`
	DomainID                string    `json:"domainid"`
	Domain                  string    `json:"domain"`
	StorageType             string    `json:"storagetype"`
	Hypervisor              string    `json:"hypervisor"`
	DiskOfferingID          string    `json:"diskofferingid,omitempty"`
	DiskOfferingName        string    `json:"diskofferingname,omitempty"`
	DiskOfferingDisplayText string    `json:"diskofferingdisplaytext,omitempty"`
	Storage                 string    `json:"storage,omitempty"`
	Attached                string    `json:"attached,omitempty"`
	Destroyed               bool      `json:"destroyed"`
	IsExtractable           bool      `json:"isextractable"`
	Tags                    []tagJSON `json:"tags"`
	DisplayVolume           bool      `json:"displayvolume"`
}

func (s *Simulator) volumeJSON(v *Volume) volumeJSON {
	out := volumeJSON{
		ID: v.ID, Name: v.Name, ZoneID: v.ZoneID, Type: v.Type, ProvisioningType: "thin", Size: v.SizeBytes,
		Created: csTime(v.Created), State: v.State, Account: v.Account, StorageType: "shared",
		Hypervisor: "None", IsExtractable: true, DisplayVolume: true, Tags: s.tagsJSON(v),
	}
	if z := s.zones[v.ZoneID]; z != nil {
		out.ZoneName = z.Name
	}
	if a := s.world.account(v.Account); a != nil {
		out.DomainID, out.Domain = a.DomainID, a.Domain
	}
	if o := s.offerings[v.DiskOfferingID]; o != nil {
		out.DiskOfferingID, out.DiskOfferingName, out.DiskOfferingDisplayText = o.ID, o.Name, o.DisplayText
	}
	// Storage exists only once the volume has been Ready (created on a pool).
	if v.State == stateReady {
		out.Hypervisor, out.Storage = "KVM", "sim-primary-1"
	}
	if vm := s.vms[v.VirtualMachineID]; vm != nil {
		out.VirtualMachineID, out.VMName, out.VMDisplayName, out.VMState = vm.ID, vm.Name, vm.DisplayName, vm.State
		out.DeviceID = v.DeviceID
		if v.Attached != nil {
			out.Attached = csTime(*v.Attached)
		}
	}
	return out
}
