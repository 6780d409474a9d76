package cloudsim

import (
	"crypto/sha1"
	"fmt"
	"os"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/migratekit/ossea-operator/internal/guestdisk"
)

// The default world. The values are fixed so that a demo, a sample OsseaConfig and
// a test can all name them without reading the simulator's output first.
const (
	DefaultAccountName       = "admin"
	DefaultAPIKey            = "cloudsim-api-key"
	DefaultSecretKey         = "cloudsim-secret-key"
	DefaultDomainID          = "2b7e6f4a-0c5d-4e8a-9f1b-000000000001"
	DefaultZoneID            = "0a7c5b1e-3d2f-4c8b-9e6a-000000000001"
	DefaultZoneName          = "sim-zone-1"
	DefaultDiskOfferingID    = "5f3d9a2c-8b1e-4f6d-a7c4-000000000001"
	DefaultOMAVMID           = "9c1e4b7d-2a6f-4d3c-8e5b-000000000001"
	DefaultOMAVMName         = "oma"
	DefaultMaxDataVolumes    = 6
	DefaultRootDiskSizeGB    = 8
	DefaultCloudStackVersion = "4.20.0.0"
	DefaultHypervisor        = "KVM"
)

// VM states CloudStack reports; attach and detach accept only Running and Stopped.
var vmStates = map[string]bool{
	"Running": true, "Stopped": true, "Starting": true, "Stopping": true,
	"Migrating": true, "Error": true, "Destroyed": true, "Expunging": true,
}

// hypervisorTypes are CloudStack's HypervisorType names by their lower case: a world
// file may spell them in any case, as HypervisorType.getType accepts them, and the
// simulator reports the canonical spelling (the one CloudStack's texts print).
var hypervisorTypes = map[string]string{}

func init() {
	for _, h := range []string{"KVM", "XenServer", "VMware", "Hyperv", "VirtualBox", "Parralels",
		"BareMetal", "Simulator", "Ovm", "Ovm3", "LXC", "Custom"} {
		hypervisorTypes[strings.ToLower(h)] = h
	}
}

// World is what the cloud contains before any API call: who may call it and what
// exists. Volumes are not part of it; they are made through the API.
type World struct {
	// CloudStackVersion is reported by listCapabilities (default 4.20.0.0).
	CloudStackVersion string `json:"cloudStackVersion,omitempty"`
	// Bounds for custom-size offerings in GB (defaults 1 and 1024, CloudStack's).
	CustomDiskOfferingMinSizeGB int64            `json:"customDiskOfferingMinSizeGB,omitempty"`
	CustomDiskOfferingMaxSizeGB int64            `json:"customDiskOfferingMaxSizeGB,omitempty"`
	Accounts                    []Account        `json:"accounts"`
	Zones                       []Zone           `json:"zones"`
	DiskOfferings               []DiskOffering   `json:"diskOfferings"`
	VirtualMachines             []VirtualMachine `json:"virtualMachines"`
}

// Account is a CloudStack account with one user and its API key pair.
type Account struct {
	Name      string `json:"name"`
	APIKey    string `json:"apiKey"`
	SecretKey string `json:"secretKey"`
	// VolumeLimit caps the account's volumes, ROOT disks included, as CloudStack's
	// resource limit does. 0 means unlimited.
	VolumeLimit int `json:"volumeLimit,omitempty"`
	// Admin accounts see every account's resources when they pass listall=true.
	Admin bool `json:"admin,omitempty"`
	// DomainID is the domain's UUID (default DefaultDomainID), Domain its name (default ROOT).
	DomainID string `json:"domainId,omitempty"`
	Domain   string `json:"domain,omitempty"`
	// DomainInternalID is the numeric id CloudStack prints in limit errors (default 1).
	DomainInternalID int `json:"domainInternalId,omitempty"`
	// ID and UserID default to UUIDs derived from the name, stable across restarts.
	ID     string `json:"id,omitempty"`
	UserID string `json:"userId,omitempty"`
}

// Zone is an availability zone.
type Zone struct {
	ID              string `json:"id"`
	Name            string `json:"name"`
	NetworkType     string `json:"networkType,omitempty"`     // default Advanced
	AllocationState string `json:"allocationState,omitempty"` // default Enabled
}

// DiskOffering is either custom-size (the caller passes size) or fixed (DiskSizeGB).
type DiskOffering struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	DisplayText string `json:"displayText,omitempty"`
	Customized  bool   `json:"customized,omitempty"`
	DiskSizeGB  int64  `json:"diskSizeGB,omitempty"`
}

// VirtualMachine is a guest volumes can be attached to: the OMA, or a target VM
// that receives the migrated disks (no local block: its attachments exist only in
// the simulator's state).
type VirtualMachine struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	DisplayName string `json:"displayName,omitempty"`
	Zone        string `json:"zone"`              // zone id
	State       string `json:"state,omitempty"`   // default Running
	Account     string `json:"account,omitempty"` // owner; default the first account
	// MaxDataVolumes is the hypervisor's data disk limit (default 6).
	MaxDataVolumes int   `json:"maxDataVolumes,omitempty"`
	RootDiskSizeGB int64 `json:"rootDiskSizeGB,omitempty"` // default 8
	// Hypervisor is the VM's HypervisorType (default KVM); root volume attach and
	// detach work only on XenServer, VMware, KVM and Simulator.
	Hypervisor string `json:"hypervisor,omitempty"`
	// Local, when set, makes attachments real on this machine (see hypervisor.go).
	Local *LocalDisks `json:"local,omitempty"`
}

// LocalDisks says where the local hypervisor puts the disks of a VM it serves.
// (World file keys match case-insensitively: byIdDir and byIDDir both work.)
type LocalDisks struct {
	// ByIDDir receives the by-id symlinks, as /dev/disk/by-id does in the guest.
	ByIDDir string `json:"byIdDir"`
	// BackingDir holds one sparse <volumeID>.img per volume ever attached.
	BackingDir string `json:"backingDir"`
	// Bus is virtio (default, link virtio-<serial>) or scsi
	// (link scsi-0QEMU_QEMU_HARDDISK_<serial>).
	Bus string `json:"bus,omitempty"`
}

// DefaultWorld is one account, one zone, one custom-size offering and one running
// OMA VM without a local block. The package documentation lists its values.
func DefaultWorld() *World {
	w := &World{
		Accounts: []Account{{
			Name: DefaultAccountName, APIKey: DefaultAPIKey, SecretKey: DefaultSecretKey, Admin: true,
		}},
		Zones: []Zone{{ID: DefaultZoneID, Name: DefaultZoneName}},
		DiskOfferings: []DiskOffering{{
			ID: DefaultDiskOfferingID, Name: "Custom", DisplayText: "Custom size disk", Customized: true,
		}},
		VirtualMachines: []VirtualMachine{{
			ID: DefaultOMAVMID, Name: DefaultOMAVMName, Zone: DefaultZoneID,
		}},
	}
	if err := w.normalize(); err != nil {
		panic("cloudsim: default world is invalid: " + err.Error())
	}
	return w
}

// LoadWorld reads a YAML (or JSON) world file and fills in the defaults.
func LoadWorld(path string) (*World, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var w World
	if err := yaml.UnmarshalStrict(b, &w); err != nil {
		return nil, fmt.Errorf("world file %s: %w", path, err)
	}
	if err := w.normalize(); err != nil {
		return nil, fmt.Errorf("world file %s: %w", path, err)
	}
	return &w, nil
}

// YAML renders the world as a world file.
func (w *World) YAML() ([]byte, error) { return yaml.Marshal(w) }

// normalize fills defaults and rejects a world the simulator could not serve
// consistently (dangling references, duplicate ids or keys).
func (w *World) normalize() error {
	if w.CloudStackVersion == "" {
		w.CloudStackVersion = DefaultCloudStackVersion
	}
	if w.CustomDiskOfferingMinSizeGB == 0 {
		w.CustomDiskOfferingMinSizeGB = 1
	}
	if w.CustomDiskOfferingMaxSizeGB == 0 {
		w.CustomDiskOfferingMaxSizeGB = 1024
	}
	if len(w.Accounts) == 0 {
		return fmt.Errorf("no accounts")
	}
	keys, names := map[string]bool{}, map[string]bool{}
	for i := range w.Accounts {
		a := &w.Accounts[i]
		if a.Name == "" || a.APIKey == "" || a.SecretKey == "" {
			return fmt.Errorf("account %d: name, apiKey and secretKey are required", i)
		}
		if keys[a.APIKey] || names[a.Name] {
			return fmt.Errorf("account %q: duplicate name or apiKey", a.Name)
		}
		keys[a.APIKey], names[a.Name] = true, true
		if a.VolumeLimit < 0 {
			return fmt.Errorf("account %q: volumeLimit must be >= 0", a.Name)
		}
		def(&a.DomainID, DefaultDomainID)
		def(&a.Domain, "ROOT")
		if a.DomainInternalID == 0 {
			a.DomainInternalID = 1
		}
		def(&a.ID, stableUUID("account", a.Name))
		def(&a.UserID, stableUUID("user", a.Name))
	}
	ids := map[string]string{}
	claim := func(kind, id string) error {
		if id == "" {
			return fmt.Errorf("%s without id", kind)
		}
		if other, dup := ids[id]; dup {
			return fmt.Errorf("id %s used by a %s and a %s", id, other, kind)
		}
		ids[id] = kind
		return nil
	}
	zones := map[string]bool{}
	for i := range w.Zones {
		z := &w.Zones[i]
		if err := claim("zone", z.ID); err != nil {
			return err
		}
		zones[z.ID] = true
		def(&z.NetworkType, "Advanced")
		def(&z.AllocationState, "Enabled")
	}
	for i := range w.DiskOfferings {
		o := &w.DiskOfferings[i]
		if err := claim("disk offering", o.ID); err != nil {
			return err
		}
		if !o.Customized && o.DiskSizeGB <= 0 {
			return fmt.Errorf("disk offering %s: a fixed offering needs diskSizeGB > 0", o.ID)
		}
		if o.Customized {
			o.DiskSizeGB = 0
		}
		def(&o.DisplayText, o.Name)
	}
	for i := range w.VirtualMachines {
		vm := &w.VirtualMachines[i]
		if err := claim("virtual machine", vm.ID); err != nil {
			return err
		}
		if !zones[vm.Zone] {
			return fmt.Errorf("virtual machine %s: unknown zone %q", vm.ID, vm.Zone)
		}
		def(&vm.State, "Running")
		if !vmStates[vm.State] {
			return fmt.Errorf("virtual machine %s: unknown state %q", vm.ID, vm.State)
		}
		def(&vm.Account, w.Accounts[0].Name)
		if !names[vm.Account] {
			return fmt.Errorf("virtual machine %s: unknown account %q", vm.ID, vm.Account)
		}
		def(&vm.DisplayName, vm.Name)
		if vm.MaxDataVolumes == 0 {
			vm.MaxDataVolumes = DefaultMaxDataVolumes
		}
		if vm.RootDiskSizeGB == 0 {
			vm.RootDiskSizeGB = DefaultRootDiskSizeGB
		}
		def(&vm.Hypervisor, DefaultHypervisor)
		h, ok := hypervisorTypes[strings.ToLower(vm.Hypervisor)]
		if !ok {
			return fmt.Errorf("virtual machine %s: unknown hypervisor %q", vm.ID, vm.Hypervisor)
		}
		vm.Hypervisor = h
		if l := vm.Local; l != nil {
			if l.ByIDDir == "" || l.BackingDir == "" {
				return fmt.Errorf("virtual machine %s: local needs byIdDir and backingDir", vm.ID)
			}
			def(&l.Bus, guestdisk.BusVirtio)
			if l.Bus != guestdisk.BusVirtio && l.Bus != guestdisk.BusSCSI {
				return fmt.Errorf("virtual machine %s: local bus must be virtio or scsi", vm.ID)
			}
		}
	}
	return nil
}

func (w *World) account(name string) *Account {
	for i := range w.Accounts {
		if w.Accounts[i].Name == name {
			return &w.Accounts[i]
		}
	}
	return nil
}

func def(field *string, value string) {
	if *field == "" {
		*field = value
	}
}

// stableUUID derives a UUID-shaped id from a name so that ids the world file leaves
// out stay the same across restarts (a state file refers to them).
func stableUUID(kind, name string) string {
	h := sha1.Sum([]byte("cloudsim/" + kind + "/" + name))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}
