package cloudsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// State is everything observable about the simulator: the answer of
// GET /admin/state and of Snapshot.
type State struct {
	Volumes         []Volume               `json:"volumes"`
	Jobs            []Job                  `json:"jobs"`
	VirtualMachines []VirtualMachineStatus `json:"virtualMachines"`
	// Calls counts requests to /client/api by the "command" they named, rejected
	// ones included; CallTimes has their arrival times (the latest 10000).
	Calls     map[string]int         `json:"calls"`
	CallTimes map[string][]time.Time `json:"callTimes"`
	// Throttled counts, by command, the calls of Calls that API throttling refused
	// with 429 (see Throttle): they are in Calls too, and none of them ran.
	Throttled map[string]int `json:"throttled"`
	// InjectedFaults counts faults by kind: error, lostResponse, jobFailure, latency.
	InjectedFaults map[string]int `json:"injectedFaults"`
	Faults         Faults         `json:"faults"`
}

// VirtualMachineStatus is a VM as it is now.
type VirtualMachineStatus struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	State       string `json:"state"`
	Hypervisor  string `json:"hypervisor"`
	DataVolumes int    `json:"dataVolumes"`
}

// Snapshot returns a deep copy of the current state.
func (s *Simulator) Snapshot() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := State{
		Volumes:        s.sortedVolumesLocked(),
		Jobs:           s.sortedJobsLocked(),
		Calls:          map[string]int{},
		CallTimes:      map[string][]time.Time{},
		Throttled:      map[string]int{},
		InjectedFaults: map[string]int{},
		Faults:         s.faults,
	}
	for i := range st.Volumes {
		st.Volumes[i] = st.Volumes[i].clone()
	}
	for i := range st.Jobs {
		st.Jobs[i] = st.Jobs[i].clone()
	}
	for _, vm := range s.world.VirtualMachines {
		st.VirtualMachines = append(st.VirtualMachines, VirtualMachineStatus{
			ID: vm.ID, Name: vm.Name, State: s.vms[vm.ID].State, Hypervisor: vm.Hypervisor,
			DataVolumes: len(s.dataVolumesOfLocked(vm.ID)),
		})
	}
	for k, v := range s.counters.calls {
		st.Calls[k] = v
	}
	for k, v := range s.counters.times {
		st.CallTimes[k] = append([]time.Time(nil), v...)
	}
	for k, v := range s.counters.throttled {
		st.Throttled[k] = v
	}
	for k, v := range s.counters.injected {
		st.InjectedFaults[k] = v
	}
	return st
}

func (s *Simulator) sortedVolumesLocked() []Volume {
	out := make([]Volume, 0, len(s.volumes))
	for _, v := range s.volumes {
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out
}

func (s *Simulator) sortedJobsLocked() []Job {
	out := make([]Job, 0, len(s.jobs))
	for _, j := range s.jobs {
		out = append(out, *j)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out
}

// persistedState is the state file. Counters are not in it: they describe one
// process's traffic.
type persistedState struct {
	Volumes        []Volume          `json:"volumes"`
	RemovedVolumes map[string]int64  `json:"removedVolumes,omitempty"`
	Jobs           []Job             `json:"jobs"`
	VMStates       map[string]string `json:"vmStates"`
	NextVolumeSeq  int64             `json:"nextVolumeSeq"`
	NextJobSeq     int64             `json:"nextJobSeq"`
}

// persistLocked rewrites the state file atomically. A failed write is logged, not
// returned: the API call that caused it has already happened in memory.
func (s *Simulator) persistLocked() {
	if s.opts.StateFile == "" {
		return
	}
	p := persistedState{
		Volumes:       s.sortedVolumesLocked(),
		Jobs:          s.sortedJobsLocked(),
		VMStates:      map[string]string{},
		NextVolumeSeq: s.nextVolumeSeq,
		NextJobSeq:    s.nextJobSeq,
	}
	p.RemovedVolumes = s.removed
	for id, vm := range s.vms {
		p.VMStates[id] = vm.State
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err == nil {
		err = writeFileAtomic(s.opts.StateFile, b)
	}
	if err != nil {
		s.logf("cloudsim: saving state to %s: %v", s.opts.StateFile, err)
	}
}

func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// restore loads the state file if there is one, gives every VM its ROOT volume
// the first time it is seen, and makes the local hypervisor serve the volumes that
// were attached before the restart (a real hypervisor keeps its disks when the
// management server restarts).
func (s *Simulator) restore() error {
	if s.opts.StateFile != "" {
		b, err := os.ReadFile(s.opts.StateFile)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return fmt.Errorf("cloudsim: reading state: %w", err)
		default:
			if err := s.load(b); err != nil {
				return fmt.Errorf("cloudsim: state file %s: %w", s.opts.StateFile, err)
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, vm := range s.world.VirtualMachines {
		if s.needsPlaceholderRootLocked(vm.ID) {
			s.addRootVolumeLocked(s.vms[vm.ID])
		}
	}
	for _, v := range s.sortedVolumesLocked() {
		vol := s.volumes[v.ID]
		vm := s.vms[vol.VirtualMachineID]
		vol.LoopDevice, vol.DeviceLink = "", ""
		// A placeholder ROOT volume never had a disk of its own; everything else
		// attached to a local VM did.
		if vm == nil || vm.Local == nil || (vol.Type != volumeTypeData && vol.BackingFile == "") {
			continue
		}
		if err := s.hv.attach(vm.Local, vol); err != nil {
			return fmt.Errorf("cloudsim: re-attaching volume %s after restart: %w", vol.ID, err)
		}
	}
	s.persistLocked()
	return nil
}

// needsPlaceholderRootLocked: a VM gets its template's ROOT volume once. After a
// hand-off that placeholder may have been detached (it is then a data disk) or
// deleted, and another volume may be the VM's root at device 0: neither may bring
// a second root back on restart.
func (s *Simulator) needsPlaceholderRootLocked(vmID string) bool {
	id := stableUUID("rootvolume", vmID)
	return s.volumes[id] == nil && s.removed[id] == 0 && s.volumeAtDeviceLocked(vmID, 0) == nil
}

func (s *Simulator) load(b []byte) error {
	var p persistedState
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, state := range p.VMStates {
		if vm := s.vms[id]; vm != nil && vmStates[state] {
			vm.State = state
		}
	}
	for i := range p.Volumes {
		v := p.Volumes[i]
		if v.VirtualMachineID != "" && s.vms[v.VirtualMachineID] == nil {
			// The VM left the world file; its disks fall off with it.
			v.detach()
		}
		s.volumes[v.ID] = &v
	}
	for id, seq := range p.RemovedVolumes {
		s.removed[id] = seq
	}
	for i := range p.Jobs {
		j := p.Jobs[i]
		s.jobs[j.ID] = &j
		if j.Status == jobPending {
			s.pending[j.ID] = &j
		}
	}
	s.nextVolumeSeq, s.nextJobSeq = p.NextVolumeSeq, p.NextJobSeq
	return nil
}
