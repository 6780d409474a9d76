package cloudsim

import (
	"crypto/rand"
	"fmt"
	"strings"
	"time"
)

// maxPageSize is CloudStack's default.page.size, which also caps "pagesize".
const maxPageSize = 500

// worldCreated is the "created" date of everything the world file declares.
var worldCreated = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// csTime formats dates as CloudStack does ("2024-01-01T00:00:00+0000").
func csTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05-0700") }

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// canSee is CloudStack's list scoping: a caller sees its own account's resources;
// an admin sees a named account's with account=, or everyone's with listall=true.
func (c *call) canSee(owner string) bool {
	if c.account.Admin {
		if a := c.param("account"); a != "" {
			return owner == a
		}
		if c.boolParam("listall") {
			return true
		}
	}
	return owner == c.account.Name
}

// checkAccess is the parameter processor's ACL check of an entity a command acts on: a
// root admin may act on every account's volumes and VMs, any other caller only on its
// own account's. It runs before the command, so a refusal is synchronous (531).
func (c *call) checkAccess(owner string) *apiError {
	if c.account.Admin || owner == "" || owner == c.account.Name {
		return nil
	}
	return errPermission()
}

// volumeOwner and vmOwner name the account that owns an entity, "" when it is gone.
func (s *Simulator) volumeOwner(id string) string {
	if v := s.volumes[id]; v != nil {
		return v.Account
	}
	return ""
}

func (s *Simulator) vmOwner(id string) string {
	if vm := s.vms[id]; vm != nil {
		return vm.Account
	}
	return ""
}

// page applies page/pagesize; "count" stays the number of matches.
func (c *call) page(key string, items []any) (any, *apiError) {
	size := int64(maxPageSize)
	if n, ok, err := c.int64Param("pagesize"); err != nil {
		return nil, err
	} else if ok {
		switch {
		case n == -1:
			size = int64(len(items))
		case n > maxPageSize:
			return nil, errInvalid("Page size can't exceed max allowed page size value: %d", maxPageSize)
		case n < 1:
			return nil, errBadValue(c.apiName(), "pagesize", c.param("pagesize"))
		default:
			size = n
		}
	}
	page := int64(1)
	if n, ok, err := c.int64Param("page"); err != nil {
		return nil, err
	} else if ok && n > 1 {
		page = n
	}
	total := int64(len(items))
	start := total
	if size > 0 && page-1 <= total/size { // bounds the product: no overflow
		start = (page - 1) * size
	}
	end := min(start+size, total)
	return listPayload{key: key, total: len(items), items: items[start:end]}, nil
}

// keywordMatch is the SQL LIKE '%keyword%' CloudStack uses (case-insensitive collation).
func keywordMatch(keyword string, fields ...string) bool {
	if keyword == "" {
		return true
	}
	for _, f := range fields {
		if strings.Contains(strings.ToLower(f), strings.ToLower(keyword)) {
			return true
		}
	}
	return false
}

type capabilityJSON struct {
	CloudStackVersion             string `json:"cloudstackversion"`
	SecurityGroupsEnabled         bool   `json:"securitygroupsenabled"`
	UserPublicTemplateEnabled     bool   `json:"userpublictemplateenabled"`
	SupportELB                    string `json:"supportELB"`
	ProjectInviteRequired         bool   `json:"projectinviterequired"`
	AllowUserCreateProjects       bool   `json:"allowusercreateprojects"`
	CustomDiskOfferingMinSize     int64  `json:"customdiskofferingminsize"`
	CustomDiskOfferingMaxSize     int64  `json:"customdiskofferingmaxsize"`
	KVMSnapshotEnabled            bool   `json:"kvmsnapshotenabled"`
	AllowUserViewDestroyedVM      bool   `json:"allowuserviewdestroyedvm"`
	AllowUserExpungeRecoverVM     bool   `json:"allowuserexpungerecovervm"`
	AllowUserExpungeRecoverVolume bool   `json:"allowuserexpungerecovervolume"`
	DynamicRolesEnabled           bool   `json:"dynamicrolesenabled"`
	DefaultUIPageSize             int64  `json:"defaultuipagesize"`
}

func listCapabilities(c *call) (any, *apiError) {
	w := c.s.world
	return map[string]capabilityJSON{"capability": {
		CloudStackVersion: w.CloudStackVersion, UserPublicTemplateEnabled: true, SupportELB: "false",
		AllowUserCreateProjects: true, KVMSnapshotEnabled: true, DynamicRolesEnabled: true,
		CustomDiskOfferingMinSize: w.CustomDiskOfferingMinSizeGB, CustomDiskOfferingMaxSize: w.CustomDiskOfferingMaxSizeGB,
		AllowUserExpungeRecoverVolume: true, DefaultUIPageSize: 20,
	}}, nil
}

type zoneJSON struct {
	ID                    string    `json:"id"`
	Name                  string    `json:"name"`
	NetworkType           string    `json:"networktype"`
	SecurityGroupsEnabled bool      `json:"securitygroupsenabled"`
	AllocationState       string    `json:"allocationstate"`
	ZoneToken             string    `json:"zonetoken"`
	DHCPProvider          string    `json:"dhcpprovider"`
	LocalStorageEnabled   bool      `json:"localstorageenabled"`
	Tags                  []tagJSON `json:"tags"`
	HasAnnotations        bool      `json:"hasannotations"`
}

func listZones(c *call) (any, *apiError) {
	id := c.param("id")
	if id != "" && c.s.zones[id] == nil {
		return nil, errBadEntity(c.apiName(), "id", id)
	}
	var items []any
	for _, z := range c.s.world.Zones {
		if (id != "" && z.ID != id) || (c.param("name") != "" && z.Name != c.param("name")) ||
			!keywordMatch(c.param("keyword"), z.Name) {
			continue
		}
		items = append(items, zoneJSON{
			ID: z.ID, Name: z.Name, NetworkType: z.NetworkType, AllocationState: z.AllocationState,
			ZoneToken: stableUUID("zonetoken", z.ID), DHCPProvider: "VirtualRouter", Tags: []tagJSON{},
		})
	}
	return c.page("zone", items)
}

type diskOfferingJSON struct {
	ID                 string `json:"id"`
	Name               string `json:"name"`
	DisplayText        string `json:"displaytext"`
	DiskSize           int64  `json:"disksize"`
	Created            string `json:"created"`
	IsCustomized       bool   `json:"iscustomized"`
	StorageType        string `json:"storagetype"`
	ProvisioningType   string `json:"provisioningtype"`
	CacheMode          string `json:"cacheMode"`
	DisplayOffering    bool   `json:"displayoffering"`
	HasAnnotations     bool   `json:"hasannotations"`
	Encrypt            bool   `json:"encrypt"`
	DiskSizeStrictness bool   `json:"disksizestrictness"`
}

func listDiskOfferings(c *call) (any, *apiError) {
	id := c.param("id")
	if id != "" && c.s.offerings[id] == nil {
		return nil, errBadEntity(c.apiName(), "id", id)
	}
	// Offerings here are not zone-restricted; the zone must still exist.
	if z := c.param("zoneid"); z != "" && c.s.zones[z] == nil {
		return nil, errBadEntity(c.apiName(), "zoneid", z)
	}
	var items []any
	for _, o := range c.s.world.DiskOfferings {
		if (id != "" && o.ID != id) || (c.param("name") != "" && o.Name != c.param("name")) ||
			!keywordMatch(c.param("keyword"), o.Name) {
			continue
		}
		items = append(items, diskOfferingJSON{
			ID: o.ID, Name: o.Name, DisplayText: o.DisplayText, DiskSize: o.DiskSizeGB,
			Created: csTime(worldCreated), IsCustomized: o.Customized, StorageType: "shared",
			ProvisioningType: "thin", CacheMode: "none", DisplayOffering: true,
		})
	}
	return c.page("diskoffering", items)
}

type virtualMachineJSON struct {
	ID                    string    `json:"id"`
	Name                  string    `json:"name"`
	DisplayName           string    `json:"displayname"`
	Account               string    `json:"account"`
	DomainID              string    `json:"domainid"`
	Domain                string    `json:"domain"`
	Created               string    `json:"created"`
	State                 string    `json:"state"`
	HAEnable              bool      `json:"haenable"`
	ZoneID                string    `json:"zoneid"`
	ZoneName              string    `json:"zonename"`
	Hypervisor            string    `json:"hypervisor"`
	InstanceName          string    `json:"instancename"`
	IsDynamicallyScalable bool      `json:"isdynamicallyscalable"`
	Tags                  []tagJSON `json:"tags"`
	HasAnnotations        bool      `json:"hasannotations"`
}

func listVirtualMachines(c *call) (any, *apiError) {
	ids, err := c.idList(func(id string) bool { return c.s.vms[id] != nil })
	if err != nil {
		return nil, err
	}
	if z := c.param("zoneid"); z != "" && c.s.zones[z] == nil {
		return nil, errBadEntity(c.apiName(), "zoneid", z)
	}
	var items []any
	for i := range c.s.world.VirtualMachines {
		vm := c.s.vms[c.s.world.VirtualMachines[i].ID]
		if (ids != nil && !ids[vm.ID]) || !c.canSee(vm.Account) ||
			(c.param("name") != "" && vm.Name != c.param("name")) ||
			(c.param("zoneid") != "" && vm.Zone != c.param("zoneid")) ||
			(c.param("state") != "" && !strings.EqualFold(vm.State, c.param("state"))) ||
			!keywordMatch(c.param("keyword"), vm.Name, vm.DisplayName) {
			continue
		}
		items = append(items, c.s.vmJSON(vm))
	}
	return c.page("virtualmachine", items)
}

// vmJSON is UserVmResponse, as listVirtualMachines and the start and stop jobs
// report a VM.
func (s *Simulator) vmJSON(vm *VirtualMachine) virtualMachineJSON {
	a := s.world.account(vm.Account)
	return virtualMachineJSON{
		ID: vm.ID, Name: vm.Name, DisplayName: vm.DisplayName, Account: a.Name, DomainID: a.DomainID,
		Domain: a.Domain, Created: csTime(worldCreated), State: vm.State, ZoneID: vm.Zone,
		ZoneName: s.zones[vm.Zone].Name, Hypervisor: vm.Hypervisor, InstanceName: s.instanceName(vm),
		Tags: []tagJSON{},
	}
}

// instanceName is CloudStack's i-<account id>-<vm id>-VM; the simulator's
// accounts all print as 2, the first user account of a fresh CloudStack.
func (s *Simulator) instanceName(vm *VirtualMachine) string {
	return fmt.Sprintf("i-2-%d-VM", s.vmSeq[vm.ID])
}

// idList reads "id" and the comma-separated "ids" into one filter (nil: no
// filter). Every id must name an entity, or the parameter processor rejects it.
func (c *call) idList(exists func(string) bool) (map[string]bool, *apiError) {
	var ids map[string]bool
	for _, name := range []string{"id", "ids"} {
		if c.param(name) == "" {
			continue
		}
		set := map[string]bool{}
		for _, id := range strings.Split(c.param(name), ",") {
			if !exists(id) {
				return nil, errBadEntity(c.apiName(), name, id)
			}
			set[id] = true
		}
		if ids == nil {
			ids = set
			continue
		}
		for id := range ids {
			if !set[id] {
				delete(ids, id)
			}
		}
	}
	return ids, nil
}
