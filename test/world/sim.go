package world

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/migratekit/ossea-operator/internal/cloudsim"
)

// VMID is the id of the i-th OMA VM of a world (from 0); the first is the simulator's
// default OMA VM, which the samples name.
func VMID(i int) string { return fmt.Sprintf("9c1e4b7d-2a6f-4d3c-8e5b-%012d", i+1) }

// TargetVMID is the id of the i-th target VM of a world (from 0). Its own prefix keeps it
// apart from every OMA VM however many a world has.
func TargetVMID(i int) string { return fmt.Sprintf("7d4a2e91-5c3b-4f8e-a1d6-%012d", i+1) }

// SimOptions describe the simulator's world and behaviour.
type SimOptions struct {
	// VMs is how many OMA VMs the world holds, each with room for MaxDataVolumes.
	VMs            int
	MaxDataVolumes int
	// Local makes every VM's attachments real loop devices with by-id links below Dir.
	Local bool
	// Targets is how many target VMs (of a cut-over) the world holds besides the OMAs:
	// Stopped, KVM, room for MaxDataVolumes, each with its placeholder ROOT volume and
	// without a local block, so that what is handed to them lives in the simulator's state
	// only, not in loop devices.
	Targets    int
	JobLatency time.Duration
	JobJitter  time.Duration
	Seed       int64
	// APIThrottleMax turns on CloudStack's API throttling in the simulator: past this many
	// calls per APIThrottleInterval (default 1 s) the account's calls are refused with 429.
	// CloudStack never throttles a root admin, so with it on the world's account (whose
	// keys the manager uses) is a plain user account; it owns every VM either way.
	APIThrottleMax      int
	APIThrottleInterval time.Duration
}

// Sim is a running simulator.
type Sim struct {
	// URL is the simulator's root (http://127.0.0.1:port); the CloudStack API is at APIURL.
	URL    string
	APIURL string
	Proc   *Process
	VMs    []SimVM
	// Targets are the ids of the target VMs, TargetVMID(0) first.
	Targets []string
	hc      *http.Client
}

// SimVM is one OMA VM of the world, with its directories when it is served locally.
type SimVM struct {
	ID         string
	ByIDDir    string
	BackingDir string
	// MountRoot is where this VM's agent mounts (the harness gives each agent its own).
	MountRoot string
}

// The simulator's default account and zone, which every world here uses.
const (
	APIKey    = cloudsim.DefaultAPIKey
	SecretKey = cloudsim.DefaultSecretKey
	ZoneName  = cloudsim.DefaultZoneName
)

// StartSimulator writes the world file and starts the simulator on a free loopback port.
func (w *World) StartSimulator(o SimOptions) (*Sim, error) {
	world := cloudsim.DefaultWorld()
	world.VirtualMachines = nil
	if o.APIThrottleMax > 0 {
		world.Accounts[0].Admin = false
	}
	sim := &Sim{hc: &http.Client{Timeout: 60 * time.Second}}
	for i := range max(o.VMs, 1) {
		vm := cloudsim.VirtualMachine{
			ID: VMID(i), Name: fmt.Sprintf("oma-%d", i), Zone: cloudsim.DefaultZoneID, MaxDataVolumes: o.MaxDataVolumes,
		}
		svm := SimVM{ID: vm.ID}
		if o.Local {
			base := filepath.Join(w.Dir, "vm", fmt.Sprint(i))
			svm.ByIDDir, svm.BackingDir, svm.MountRoot = filepath.Join(base, "by-id"), filepath.Join(base, "disks"), filepath.Join(base, "mnt")
			for _, d := range []string{svm.ByIDDir, svm.BackingDir, svm.MountRoot} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					return nil, err
				}
			}
			vm.Local = &cloudsim.LocalDisks{ByIDDir: svm.ByIDDir, BackingDir: svm.BackingDir}
		}
		world.VirtualMachines = append(world.VirtualMachines, vm)
		sim.VMs = append(sim.VMs, svm)
	}
	for i := range o.Targets {
		world.VirtualMachines = append(world.VirtualMachines, cloudsim.VirtualMachine{
			ID: TargetVMID(i), Name: fmt.Sprintf("target-%d", i), Zone: cloudsim.DefaultZoneID,
			State: "Stopped", Hypervisor: cloudsim.DefaultHypervisor, MaxDataVolumes: o.MaxDataVolumes,
		})
		sim.Targets = append(sim.Targets, TargetVMID(i))
	}
	y, err := world.YAML()
	if err != nil {
		return nil, err
	}
	worldFile := filepath.Join(w.Dir, "world.yaml")
	if err := os.WriteFile(worldFile, y, 0o644); err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	sim.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
	sim.APIURL = sim.URL + "/client/api"
	args := []string{"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--world", worldFile,
		"--job-latency", o.JobLatency.String(), "--job-jitter", o.JobJitter.String(), "--seed", fmt.Sprint(o.Seed)}
	if o.APIThrottleMax > 0 {
		args = append(args, "--api-throttle-max", fmt.Sprint(o.APIThrottleMax))
		if o.APIThrottleInterval > 0 {
			args = append(args, "--api-throttle-interval", o.APIThrottleInterval.String())
		}
	}
	if sim.Proc, err = w.Start("cloudsim", w.BinPath("cloudsim"), args...); err != nil {
		return nil, err
	}
	if err := WaitUntil(30*time.Second, func() bool { _, err := sim.State(); return err == nil }); err != nil {
		return nil, fmt.Errorf("the simulator did not start: %w", err)
	}
	return sim, nil
}

// State reads the simulator's admin view.
func (s *Sim) State() (cloudsim.State, error) {
	var st cloudsim.State
	resp, err := s.hc.Get(s.URL + "/admin/state")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET /admin/state: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// SetFaults replaces the simulator's faults.
func (s *Sim) SetFaults(f cloudsim.Faults) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPut, s.URL+"/admin/faults", bytes.NewReader(b))
	if err != nil {
		return err
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("PUT /admin/faults: %s", resp.Status)
	}
	return nil
}

// ResetCounters zeroes the simulator's call counters.
func (s *Sim) ResetCounters() error {
	resp, err := s.hc.Post(s.URL+"/admin/reset-counters", "", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("POST /admin/reset-counters: %s", resp.Status)
	}
	return nil
}

// DataVolumes are the DATADISK volumes of a state.
func DataVolumes(st cloudsim.State) []cloudsim.Volume {
	var out []cloudsim.Volume
	for _, v := range st.Volumes {
		if v.Type == "DATADISK" {
			out = append(out, v)
		}
	}
	return out
}

// OnVM maps the device ids of the volumes attached to a VM to the volumes, ROOT included.
func OnVM(st cloudsim.State, vmID string) map[int64]cloudsim.Volume {
	out := map[int64]cloudsim.Volume{}
	for _, v := range st.Volumes {
		if v.VirtualMachineID == vmID && v.DeviceID != nil {
			out[*v.DeviceID] = v
		}
	}
	return out
}

// Tag returns a volume's tag value, "" when it has none.
func Tag(v cloudsim.Volume, key string) string {
	for _, t := range v.Tags {
		if t.Key == key {
			return t.Value
		}
	}
	return ""
}
