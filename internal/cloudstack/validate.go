package cloudstack

import (
	"context"
	"fmt"
	"strings"

	csgo "github.com/apache/cloudstack-go/v2/cloudstack"
)

// VM states in which CloudStack accepts an attach.
var usableVMStates = map[string]bool{"Running": true, "Stopped": true}

func (a *adapter) Validate(ctx context.Context, req ValidateRequest) (*Validation, error) {
	val := &Validation{}
	cs := a.client(ctx)
	fail := func(check Check, err error) (*Validation, error) {
		return val, &CheckError{Check: check, Err: err}
	}

	caps, err := cs.Configuration.ListCapabilities(cs.Configuration.NewListCapabilitiesParams())
	if err != nil {
		return fail(CheckConnection, a.fail(err, "reading capabilities"))
	}
	if caps.Capabilities != nil {
		val.CloudStackVersion = caps.Capabilities.Cloudstackversion
		val.CustomDiskOfferingMaxSizeGiB = caps.Capabilities.Customdiskofferingmaxsize
	}

	zone, err := a.resolveZone(cs, req.Zone)
	if err != nil {
		return fail(CheckZone, err)
	}
	val.Zone = zone

	vm, err := a.readVM(cs, req.OMAVirtualMachineID)
	if err != nil {
		return fail(CheckVirtualMachine, err)
	}
	val.VirtualMachine = vm
	if !usableVMStates[vm.State] {
		return fail(CheckVirtualMachine, newError(ErrInvalidState,
			"VM %s (%s) is %s; volumes can be attached only to a Running or Stopped VM", vm.ID, vm.Name, vm.State))
	}
	if vm.ZoneID != "" && !strings.EqualFold(vm.ZoneID, zone.ID) {
		return fail(CheckVirtualMachine, newError(ErrInvalidParameter,
			"VM %s (%s) is in zone %s, not in zone %s (%s) where volumes are created", vm.ID, vm.Name, vm.ZoneID, zone.Name, zone.ID))
	}

	offering, err := a.resolveDiskOffering(cs, req.DiskOfferingID, zone.ID)
	if err != nil {
		return fail(CheckDiskOffering, err)
	}
	val.DiskOffering = offering

	val.MaxDataVolumes = a.defaultMaxDataVolumes
	if req.MaxDataVolumes != nil && *req.MaxDataVolumes > 0 {
		val.MaxDataVolumes = int(*req.MaxDataVolumes)
	}
	n, err := a.CountDataVolumes(ctx, vm.ID)
	if err != nil {
		return fail(CheckCapacity, err)
	}
	val.AttachedDataVolumes = n
	return val, nil
}

// resolveZone lists every zone and matches the id or the name itself: one call, and
// identical behaviour whichever of the two the user wrote.
func (a *adapter) resolveZone(cs *csgo.CloudStackClient, zone string) (Zone, error) {
	if err := required("zone", zone); err != nil {
		return Zone{}, err
	}
	r, err := cs.Zone.ListZones(cs.Zone.NewListZonesParams())
	if err != nil {
		return Zone{}, a.fail(err, "listing zones")
	}
	for _, z := range r.Zones {
		if strings.EqualFold(z.Id, zone) || z.Name == zone {
			return Zone{ID: z.Id, Name: z.Name, AllocationState: z.Allocationstate}, nil
		}
	}
	names := make([]string, 0, len(r.Zones))
	for _, z := range r.Zones {
		names = append(names, z.Name)
	}
	return Zone{}, newError(ErrNotFound, "zone %q not found (the account sees: %s)", zone, strings.Join(names, ", "))
}

func (a *adapter) readVM(cs *csgo.CloudStackClient, id string) (VirtualMachine, error) {
	if err := required("VM id", id); err != nil {
		return VirtualMachine{}, err
	}
	p := cs.VirtualMachine.NewListVirtualMachinesParams()
	p.SetId(id)
	r, err := cs.VirtualMachine.ListVirtualMachines(p)
	if err != nil {
		return VirtualMachine{}, a.fail(err, "reading VM %s", id)
	}
	for _, vm := range r.VirtualMachines {
		if strings.EqualFold(vm.Id, id) {
			return VirtualMachine{ID: vm.Id, Name: vm.Name, State: vm.State, ZoneID: vm.Zoneid, Hypervisor: vm.Hypervisor}, nil
		}
	}
	return VirtualMachine{}, newError(ErrNotFound, "VM %s not found", id)
}

// resolveDiskOffering checks the named offering, or picks the first custom-size one of
// the zone: volumes are sized per source disk, so a fixed-size offering is unusable.
func (a *adapter) resolveDiskOffering(cs *csgo.CloudStackClient, id, zoneID string) (DiskOffering, error) {
	p := cs.DiskOffering.NewListDiskOfferingsParams()
	if id != "" {
		p.SetId(id)
	} else {
		p.SetZoneid(zoneID)
	}
	r, err := cs.DiskOffering.ListDiskOfferings(p)
	if err != nil {
		return DiskOffering{}, a.fail(err, "listing disk offerings")
	}
	for _, o := range r.DiskOfferings {
		off := DiskOffering{ID: o.Id, Name: o.Name, CustomSize: o.Iscustomized, DiskSizeGiB: o.Disksize}
		switch {
		case id == "" && o.Iscustomized:
			return off, nil
		case id != "" && strings.EqualFold(o.Id, id):
			if !o.Iscustomized {
				return off, newError(ErrInvalidParameter,
					"disk offering %s (%s) has a fixed size of %d GiB; an offering with a custom size is required", o.Id, o.Name, o.Disksize)
			}
			return off, nil
		}
	}
	if id != "" {
		return DiskOffering{}, newError(ErrNotFound, "disk offering %s not found", id)
	}
	return DiskOffering{}, newError(ErrNotFound, "no disk offering with a custom size is available in zone %s", zoneID)
}

func (v *Validation) String() string {
	return fmt.Sprintf("CloudStack %s, zone %s (%s), VM %s (%s) %s, disk offering %s (%s), %d/%d data volumes",
		v.CloudStackVersion, v.Zone.Name, v.Zone.ID, v.VirtualMachine.Name, v.VirtualMachine.ID, v.VirtualMachine.State,
		v.DiskOffering.Name, v.DiskOffering.ID, v.AttachedDataVolumes, v.MaxDataVolumes)
}
