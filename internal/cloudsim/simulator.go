package cloudsim

import (
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"sync"
	"time"
)

// Options configure a Simulator. Only World is required.
type Options struct {
	World *World
	// JobLatency is how long every async job runs; JobJitter adds a seeded random
	// extra in [0, JobJitter). With both 0 a job is done by the next request.
	JobLatency time.Duration
	JobJitter  time.Duration
	// Seed makes fault injection and jitter reproducible.
	Seed   int64
	Faults Faults
	// Throttle is CloudStack's API request throttling; off when Throttle.Max is 0.
	Throttle Throttle
	// StateFile, when set, is loaded at start and rewritten after every change,
	// so volumes, tags, jobs and VM states survive a restart.
	StateFile string
	// Clock replaces time.Now for timestamps, "expires" checks and job due times.
	Clock func() time.Time
	// Logf receives problems nobody is waiting for (state file writes, hypervisor
	// cleanup). Default: the standard logger.
	Logf func(format string, args ...any)
}

// Simulator is an in-memory CloudStack. It is safe for concurrent use.
type Simulator struct {
	world   *World
	opts    Options
	clock   func() time.Time
	logf    func(format string, args ...any)
	handler http.Handler
	hv      *hypervisor

	// These maps are fixed after New, so authentication reads them without the
	// lock; a VM's State does change, under mu.
	byAPIKey  map[string]*Account
	zones     map[string]*Zone
	offerings map[string]*DiskOffering
	vms       map[string]*VirtualMachine
	// vmSeq stands in for a VM's internal numeric id (its place in the world
	// file, from 1), which CloudStack prints in device id errors and instance names.
	vmSeq map[string]int

	mu            sync.Mutex
	closed        bool
	faults        Faults
	volumes       map[string]*Volume
	removed       map[string]int64 // deleted volume id → Seq: CloudStack still resolves them
	jobs          map[string]*Job
	pending       map[string]*Job // the jobs not yet complete, a subset of jobs
	nextVolumeSeq int64
	nextJobSeq    int64
	counters      counters
	windows       map[string]*throttleWindow // account name → its throttling window

	wake     chan struct{}
	stop     chan struct{}
	jobsDone chan struct{}
}

// New builds a simulator for opts.World, restoring opts.StateFile if it exists.
func New(opts Options) (*Simulator, error) {
	if opts.World == nil {
		return nil, fmt.Errorf("cloudsim: Options.World is required")
	}
	world, err := cloneWorld(opts.World)
	if err != nil {
		return nil, err
	}
	if err := opts.Faults.validate(); err != nil {
		return nil, err
	}
	if err := opts.Throttle.validate(); err != nil {
		return nil, err
	}
	s := &Simulator{
		world:     world,
		opts:      opts,
		clock:     opts.Clock,
		logf:      opts.Logf,
		hv:        newHypervisor(),
		byAPIKey:  map[string]*Account{},
		zones:     map[string]*Zone{},
		offerings: map[string]*DiskOffering{},
		vms:       map[string]*VirtualMachine{},
		vmSeq:     map[string]int{},
		faults:    opts.Faults,
		volumes:   map[string]*Volume{},
		removed:   map[string]int64{},
		jobs:      map[string]*Job{},
		pending:   map[string]*Job{},
		counters:  newCounters(),
		windows:   map[string]*throttleWindow{},
		wake:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		jobsDone:  make(chan struct{}),
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.logf == nil {
		s.logf = log.Printf
	}
	for i := range world.Accounts {
		s.byAPIKey[world.Accounts[i].APIKey] = &world.Accounts[i]
	}
	for i := range world.Zones {
		s.zones[world.Zones[i].ID] = &world.Zones[i]
	}
	for i := range world.DiskOfferings {
		s.offerings[world.DiskOfferings[i].ID] = &world.DiskOfferings[i]
	}
	for i := range world.VirtualMachines {
		s.vms[world.VirtualMachines[i].ID] = &world.VirtualMachines[i]
		s.vmSeq[world.VirtualMachines[i].ID] = i + 1
	}
	if err := s.restore(); err != nil {
		s.hv.closeAll()
		return nil, err
	}
	s.handler = s.routes()
	go s.runJobs()
	return s, nil
}

// cloneWorld copies the caller's world (so later edits to it change nothing here)
// and fills in its defaults.
func cloneWorld(w *World) (*World, error) {
	b, err := json.Marshal(w)
	if err != nil {
		return nil, err
	}
	var c World
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, err
	}
	if err := c.normalize(); err != nil {
		return nil, fmt.Errorf("cloudsim: world: %w", err)
	}
	return &c, nil
}

// Handler serves the API at /client/api and the admin API under /admin/.
func (s *Simulator) Handler() http.Handler { return s.handler }

// Close stops the job runner (pending jobs stay pending in the state file) and
// removes every loop device and by-id link the hypervisor made.
func (s *Simulator) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.stop)
	s.mu.Unlock()
	<-s.jobsDone

	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.hv.closeAll()
	for _, v := range s.volumes {
		v.LoopDevice, v.DeviceLink = "", ""
	}
	// Attached volumes stay attached in the state file: the next process serves
	// them again, as a hypervisor keeps its disks across a management restart.
	s.persistLocked()
	return err
}

// SetFaults replaces the fault configuration; it applies to the next request.
func (s *Simulator) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// SetVMState changes a VM's state, as an operator stopping or destroying it would.
func (s *Simulator) SetVMState(vmID, state string) error {
	if !vmStates[state] {
		return fmt.Errorf("cloudsim: unknown VM state %q", state)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	vm := s.vms[vmID]
	if vm == nil {
		return fmt.Errorf("cloudsim: unknown VM %q", vmID)
	}
	vm.State = state
	s.persistLocked()
	return nil
}
