package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"sync"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudsim"
	"github.com/migratekit/ossea-operator/test/world"
)

// Config is one chaos run.
type Config struct {
	// N volumes in Filesystem mode, spread over VMs OMA VMs with an agent each.
	N   int
	VMs int
	// DisksPerJob, when set, turns the N volumes into N/DisksPerJob MigrationJobs placed
	// through a selector on a pool too small for all of them (see runJobs).
	DisksPerJob int
	// Cutover, with DisksPerJob, cuts half of each wave's jobs over to target VMs instead
	// of deleting them (see cutover.go).
	Cutover bool
	// Seed decides the faults, the kill times and the volumes' filesystems.
	Seed       int64
	JobLatency time.Duration
	JobJitter  time.Duration
	Faults     cloudsim.Faults
	// The manager and each agent are SIGKILLed after a random wait in [min, max), then
	// started again at once.
	ManagerKill [2]time.Duration
	AgentKill   [2]time.Duration
	// Hold keeps the volumes Ready, and the chaos going, this long before deleting them.
	Hold time.Duration
	// How long all volumes may take to become Ready, and to be gone after deletion.
	ReadyTimeout time.Duration
	GoneTimeout  time.Duration
	// Root is the repository.
	Root string
	Logf func(format string, args ...any)
}

func (cfg Config) logf() func(format string, args ...any) {
	if cfg.Logf == nil {
		return func(string, ...any) {}
	}
	return cfg.Logf
}

// slotsPerVM is each OMA VM's data-disk limit: room for every volume of the single-volume
// run (6 at least, CloudStack's default); for jobs, room for about two thirds of the disks,
// so that about a third of the jobs wait for slots.
func (cfg Config) slotsPerVM() int {
	if cfg.DisksPerJob > 0 {
		return max(cfg.DisksPerJob, ceilDiv(2*cfg.N, 3*cfg.VMs))
	}
	return max(ceilDiv(cfg.N, cfg.VMs), 6)
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// DefaultFaults are the issue's: 10% errors (530/534), 5% lost replies, 5% failed jobs.
var DefaultFaults = cloudsim.Faults{ErrorRate: 0.10, LostResponseRate: 0.05, JobFailureRate: 0.05}

// Result is what a run found.
type Result struct {
	Seed           int64          `json:"seed"`
	N              int            `json:"n"`
	ReadySeconds   float64        `json:"readySeconds"`
	GoneSeconds    float64        `json:"goneSeconds"`
	ManagerKills   int            `json:"managerKills"`
	AgentKills     int            `json:"agentKills"`
	InjectedFaults map[string]int `json:"injectedFaults"`
	Calls          map[string]int `json:"calls"`
	Detaches       int            `json:"detaches"`
	Deletes        int            `json:"deletes"`
	// Checks counts the continuous invariant passes.
	Checks int `json:"checks"`
	// The jobs run's: its jobs and their size, each VM's slots, the waves, and how many
	// jobs were seen waiting with InsufficientCapacity.
	Jobs        int    `json:"jobs,omitempty"`
	DisksPerJob int    `json:"disksPerJob,omitempty"`
	SlotsPerVM  int    `json:"slotsPerVM,omitempty"`
	Waves       []Wave `json:"waves,omitempty"`
	JobsWaited  int    `json:"jobsWaited,omitempty"`
	// The cut-over run's: jobs cut over and jobs deleted without, the volumes left on
	// targets, and the successful attaches to targets (one per volume when all is well).
	JobsCutOver      int `json:"jobsCutOver,omitempty"`
	JobsDeleted      int `json:"jobsDeleted,omitempty"`
	HandedOffVolumes int `json:"handedOffVolumes,omitempty"`
	TargetAttaches   int `json:"targetAttaches,omitempty"`

	Violations []string `json:"violations"`
	Logs       string   `json:"logs,omitempty"`

	mu sync.Mutex
}

var secretGVK = schema.GroupVersionKind{Version: "v1", Kind: "Secret"}

const namespace = "chaos"

// Run starts a world, applies the volumes (or the jobs, in waves), deletes them, and checks
// the invariants the whole time while the manager and the agents are killed at random.
func Run(ctx context.Context, cfg Config) (res *Result, err error) {
	logf := cfg.logf()
	res = &Result{Seed: cfg.Seed, N: cfg.N}
	rnd := rand.New(rand.NewSource(cfg.Seed))

	w, err := world.New(cfg.Root, fmt.Sprintf("ossea-chaos-%d-", cfg.Seed))
	if err != nil {
		return res, err
	}
	defer func() {
		if (err != nil || len(res.Violations) > 0) && !world.Keep() {
			logf("seed %d failed; the end of each log (%s=1 keeps them whole):\n%s", cfg.Seed, world.KeepEnv, w.LogTails(40))
		}
		if cerr := w.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("cleanup: %w", cerr))
		}
		if world.Keep() {
			res.Logs = w.Logs
		}
	}()

	logf("seed %d: building and starting the world in %s", cfg.Seed, w.Dir)
	if err := w.Build(); err != nil {
		return res, err
	}
	if err := w.StartAPIServer(); err != nil {
		return res, err
	}
	// The manager and the agents run as config/default installs them: their own
	// ServiceAccounts and RBAC, the agents confined to their nodes by the admission policy.
	if err := w.InstallAccess(ctx); err != nil {
		return res, err
	}
	c, err := w.Client()
	if err != nil {
		return res, err
	}
	restCfg, err := w.RESTConfig()
	if err != nil {
		return res, err
	}
	slots := cfg.slotsPerVM()
	simOpts := world.SimOptions{VMs: cfg.VMs, MaxDataVolumes: slots, Local: true,
		JobLatency: cfg.JobLatency, JobJitter: cfg.JobJitter, Seed: cfg.Seed}
	if cfg.Cutover {
		// One per job: the run cuts over about half, and which depends on the waves.
		simOpts.Targets = cfg.N / cfg.DisksPerJob
	}
	sim, err := w.StartSimulator(simOpts)
	if err != nil {
		return res, err
	}
	var book *cutoverBook
	if cfg.Cutover {
		st, err := sim.State()
		if err != nil {
			return res, err
		}
		if book, err = newCutoverBook(st, sim); err != nil {
			return res, err
		}
	}
	if err := sim.SetFaults(cfg.Faults); err != nil {
		return res, err
	}
	proxy, err := startRecorder(sim.URL)
	if err != nil {
		return res, err
	}
	defer proxy.Close()

	rec, err := world.Watch(ctx, restCfg, namespace)
	if err != nil {
		// The namespace need not exist for the watch to start.
		return res, err
	}
	defer rec.Stop()
	proxy.before = detachGuard(ctx, c, rec, sim, book)
	proxy.rules = &world.CallRules{State: sim.State, Deleting: deletingNow(ctx, c, rec), Recorded: recordedNow(ctx, c)}

	// The drift and orphan checks run often, and the orphan sweep deletes at once: any
	// volume it took for an orphan would be gone (see orphanSweepSilent).
	mgr, err := w.StartManager("manager", "--zap-log-level=debug", "--cloudstack-qps=30", "--drift-interval=10s")
	if err != nil {
		return res, err
	}
	var agents []*world.Process
	for i, vm := range sim.VMs {
		p, err := w.StartAgent(fmt.Sprintf("agent-%d", i), vm, "--zap-log-level=debug")
		if err != nil {
			return res, err
		}
		agents = append(agents, p)
	}
	// CloudStack does not report a VM's limit: the configs are told the simulator's.
	if err := world.CreateConfigs(ctx, c, namespace, sim, proxy.url, int32(slots)); err != nil {
		return res, err
	}
	if err := sweepOrphansAtOnce(ctx, c, namespace); err != nil {
		return res, err
	}
	var jobs *jobWatch
	if cfg.DisksPerJob > 0 {
		if err := labelPool(ctx, c, cfg.VMs); err != nil {
			return res, err
		}
		if jobs, err = watchJobs(ctx, restCfg, c, namespace); err != nil {
			return res, err
		}
		defer jobs.Stop()
	}

	// Chaos and the continuous checks run until the volumes are gone.
	chaosCtx, stopChaos := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var killsMu sync.Mutex
	// killed, when set, is told once the process is dead, before it starts again.
	killer := func(p *world.Process, every [2]time.Duration, seed int64, count *int, killed func()) {
		defer wg.Done()
		r := rand.New(rand.NewSource(seed))
		for {
			wait := every[0] + time.Duration(r.Int63n(int64(every[1]-every[0])))
			select {
			case <-chaosCtx.Done():
				return
			case <-time.After(wait):
			}
			if !p.Running() {
				res.addViolation(fmt.Sprintf("%s exited by itself; see %s", p.Name, p.Log))
			}
			p.Kill()
			if killed != nil {
				killed()
			}
			if err := p.Restart(); err != nil {
				res.addViolation(fmt.Sprintf("restarting %s: %v", p.Name, err))
				return
			}
			killsMu.Lock()
			*count++
			killsMu.Unlock()
		}
	}
	wg.Add(1 + len(agents))
	go killer(mgr, cfg.ManagerKill, rnd.Int63(), &res.ManagerKills, proxy.rules.ManagerRestarted)
	for _, a := range agents {
		go killer(a, cfg.AgentKill, rnd.Int63(), &res.AgentKills, nil)
	}
	checker := &checker{ctx: ctx, sim: sim, rec: rec, proxy: proxy, res: res, jobs: jobs, slots: slots, cut: book}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-chaosCtx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
			checker.check(false)
		}
	}()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			stopChaos()
			wg.Wait()
		}
	}
	defer stop()

	if cfg.DisksPerJob > 0 {
		err = runJobs(ctx, cfg, c, jobs, book, res, rnd)
	} else {
		err = runVolumes(ctx, cfg, c, rec, res, rnd)
	}
	logf("seed %d: stopping the chaos", cfg.Seed)
	stop()
	if err != nil {
		return res, err
	}
	for _, p := range append([]*world.Process{mgr}, agents...) {
		if !p.Running() {
			if p == mgr {
				proxy.rules.ManagerRestarted()
			}
			if err := p.Restart(); err != nil {
				return res, err
			}
		}
	}

	// Stuck objects: whatever is left after the timeout, and why.
	var left osseav1.MigrationVolumeList
	if err := c.List(ctx, &left, client.InNamespace(namespace)); err != nil {
		return res, err
	}
	for _, mv := range left.Items {
		res.addViolation(fmt.Sprintf("%s is stuck after deletion: phase %s, finalizers %v", mv.Name, mv.Status.Phase, mv.Finalizers))
	}
	var leftJobs osseav1.MigrationJobList
	if err := c.List(ctx, &leftJobs, client.InNamespace(namespace)); err != nil {
		return res, err
	}
	for _, j := range leftJobs.Items {
		res.addViolation(fmt.Sprintf("job %s is stuck after deletion: phase %s, finalizers %v", j.Name, j.Status.Phase, j.Finalizers))
	}
	checker.check(true)
	loops, err := world.LoopDevicesUnder(w.Dir)
	if err != nil {
		return res, err
	}
	for _, l := range loops {
		res.addViolation(fmt.Sprintf("loop device %s (%s) left after deletion", l.Device, l.Backing))
	}
	mounts, err := world.MountsUnder(w.Dir)
	if err != nil {
		return res, err
	}
	for _, m := range mounts {
		res.addViolation(fmt.Sprintf("mount %s (%s) left after deletion", m.Target, m.Source))
	}

	for _, v := range orphanSweepSilent(ctx, c, namespace) {
		res.addViolation(v)
	}

	// The configs go too, and with them every finalizer the operator set.
	if err := c.DeleteAllOf(ctx, &osseav1.OsseaConfig{}, client.InNamespace(namespace)); err != nil {
		return res, err
	}
	if err := waitFor(ctx, time.Minute, func() bool {
		var list osseav1.OsseaConfigList
		return c.List(ctx, &list, client.InNamespace(namespace)) == nil && len(list.Items) == 0
	}); err != nil {
		res.addViolation("OsseaConfigs not gone a minute after deletion")
	}
	if err := waitFor(ctx, 30*time.Second, func() bool {
		var s metav1.PartialObjectMetadata
		s.SetGroupVersionKind(secretGVK)
		err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "credentials"}, &s)
		return err == nil && !controllerutil.ContainsFinalizer(&s, osseav1.InUseFinalizer)
	}); err != nil {
		res.addViolation("the credentials Secret still carries the in-use finalizer")
	}

	st, err := sim.State()
	if err != nil {
		return res, err
	}
	res.InjectedFaults, res.Calls = st.InjectedFaults, st.Calls
	if book != nil {
		checker.checkCutovers(st, cfg.DisksPerJob)
		res.JobsDeleted = res.Jobs - res.JobsCutOver
		for _, v := range st.Volumes {
			if book.remains(v) {
				res.HandedOffVolumes++
			}
		}
		for _, t := range book.targets {
			for _, n := range world.SuccessfulAttaches(st.Jobs, t) {
				res.TargetAttaches += n
			}
		}
	}
	for _, cl := range proxy.Calls() {
		switch cl.Command {
		case "detachVolume":
			res.Detaches++
		case "deleteVolume":
			res.Deletes++
		}
	}
	sort.Strings(res.Violations)
	return res, nil
}

// runVolumes applies N single MigrationVolumes round-robin over the configs, waits until
// all are Ready, holds them under chaos and deletes them all.
func runVolumes(ctx context.Context, cfg Config, c client.Client, rec *world.Recorder, res *Result, rnd *rand.Rand) error {
	logf := cfg.logf()
	logf("seed %d: applying %d Filesystem-mode volumes over %d VMs", cfg.Seed, cfg.N, cfg.VMs)
	applied := time.Now()
	for i := range cfg.N {
		fs := osseav1.FilesystemExt4
		if rnd.Intn(2) == 1 {
			fs = osseav1.FilesystemXFS
		}
		mv := &osseav1.MigrationVolume{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: fmt.Sprintf("vol-%03d", i)},
			Spec: osseav1.MigrationVolumeSpec{
				OsseaConfigRef: osseav1.LocalObjectReference{Name: world.ConfigName(i % cfg.VMs)},
				JobID:          fmt.Sprintf("chaos-%d", i%cfg.VMs), VMName: "Chaos VM", DiskName: fmt.Sprintf("disk-%03d", i),
				SizeGiB: 1, Filesystem: &osseav1.FilesystemSpec{Type: fs},
			},
		}
		if err := c.Create(ctx, mv); err != nil {
			return fmt.Errorf("creating %s: %w", mv.Name, err)
		}
	}
	readyErr := waitFor(ctx, cfg.ReadyTimeout, func() bool {
		return rec.Count(func(t *world.Trace) bool { return !t.Ready.IsZero() }) == cfg.N
	})
	res.ReadySeconds = time.Since(applied).Seconds()
	for name, t := range rec.Traces() {
		if t.Ready.IsZero() {
			res.addViolation(fmt.Sprintf("%s never became Ready within %s", name, cfg.ReadyTimeout))
		}
	}
	logf("seed %d: %d of %d Ready after %.1fs; deleting in %s", cfg.Seed,
		rec.Count(func(t *world.Trace) bool { return !t.Ready.IsZero() }), cfg.N, res.ReadySeconds, cfg.Hold)
	if readyErr != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sleep(ctx, cfg.Hold); err != nil {
		return err
	}

	deleted := time.Now()
	if err := c.DeleteAllOf(ctx, &osseav1.MigrationVolume{}, client.InNamespace(namespace)); err != nil {
		return err
	}
	goneErr := waitFor(ctx, cfg.GoneTimeout, func() bool {
		var list osseav1.MigrationVolumeList
		return c.List(ctx, &list, client.InNamespace(namespace)) == nil && len(list.Items) == 0
	})
	res.GoneSeconds = time.Since(deleted).Seconds()
	logf("seed %d: deletion took %.1fs", cfg.Seed, res.GoneSeconds)
	if goneErr != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return nil
}

// detachGuard looks, at the moment the manager asks CloudStack to detach a volume, at the
// object the volume belongs to, straight from the API server: if the agent's mount finalizer
// is on it, the manager is detaching a disk that may still be mounted. Only a teardown or a
// hand-off detaches; with cut-overs (book set), a target's placeholder root is detached too,
// once tagged with what replaces it.
func detachGuard(ctx context.Context, c client.Client, rec *world.Recorder, sim *world.Sim, book *cutoverBook) func(call) string {
	return func(cl call) string {
		if cl.Command != "detachVolume" {
			return ""
		}
		if book != nil {
			if target, ok := book.placeholderOf(cl.VolumeID); ok {
				return placeholderDetachProblem(sim, target, cl.VolumeID)
			}
		}
		name := ""
		for n, t := range rec.Traces() {
			if t.VolumeID == cl.VolumeID {
				name = n
			}
		}
		if name == "" {
			var list osseav1.MigrationVolumeList
			if err := c.List(ctx, &list, client.InNamespace(namespace)); err == nil {
				for _, mv := range list.Items {
					if mv.Status.VolumeID == cl.VolumeID {
						name = mv.Name
					}
				}
			}
		}
		if name == "" {
			return fmt.Sprintf("detach of volume %s, which belongs to no MigrationVolume", cl.VolumeID)
		}
		mv := &osseav1.MigrationVolume{}
		err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, mv)
		switch {
		case apierrors.IsNotFound(err):
			return fmt.Sprintf("detach of volume %s after its object %s was gone", cl.VolumeID, name)
		case err != nil:
			return ""
		case mv.DeletionTimestamp.IsZero() && mv.Spec.Handoff == nil:
			return fmt.Sprintf("detach of volume %s while its object %s was neither being deleted nor handed off", cl.VolumeID, name)
		case controllerutil.ContainsFinalizer(mv, osseav1.MountFinalizer):
			return fmt.Sprintf("detach of volume %s at %s while %s still carried the mount finalizer", cl.VolumeID, cl.At.Format("15:04:05.000"), name)
		case mv.Spec.Handoff != nil:
			if p := handoffDetachProblem(mv); p != "" {
				return fmt.Sprintf("detach of volume %s at %s: %s", cl.VolumeID, cl.At.Format("15:04:05.000"), p)
			}
		}
		return ""
	}
}

// deletingNow tells the rules whether the object whose UID begins with uid8 is being
// deleted, or gone, as the API server has it at this moment.
func deletingNow(ctx context.Context, c client.Client, rec *world.Recorder) func(uid8 string) (string, bool) {
	return func(uid8 string) (string, bool) {
		name := ""
		for n, t := range rec.Traces() {
			if strings.HasPrefix(t.UID, uid8) {
				name = n
			}
		}
		if name == "" {
			var list osseav1.MigrationVolumeList
			if err := c.List(ctx, &list, client.InNamespace(namespace)); err != nil {
				return "", false
			}
			for _, mv := range list.Items {
				if strings.HasPrefix(string(mv.UID), uid8) {
					name = mv.Name
				}
			}
			if name == "" {
				return "", false // not created through this run
			}
		}
		mv := &osseav1.MigrationVolume{}
		err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, mv)
		switch {
		case apierrors.IsNotFound(err):
			return name, true
		case err != nil:
			return name, false
		case !strings.HasPrefix(string(mv.UID), uid8):
			return name, true // gone, and a new object took its name
		}
		return name, !mv.DeletionTimestamp.IsZero()
	}
}

// recordedNow tells the rules whether a job is recorded in status.pendingJob of the object
// whose volume it is, as the API server has it at this moment.
func recordedNow(ctx context.Context, c client.Client) func(volumeID, jobID string) bool {
	return func(volumeID, jobID string) bool {
		var list osseav1.MigrationVolumeList
		if err := c.List(ctx, &list, client.InNamespace(namespace)); err != nil {
			return true // cannot tell: count the job
		}
		for _, mv := range list.Items {
			if strings.EqualFold(mv.Status.VolumeID, volumeID) {
				return mv.Status.PendingJob != nil && mv.Status.PendingJob.ID == jobID
			}
		}
		return false
	}
}

// checker holds the invariants that are checked over and over.
type checker struct {
	ctx   context.Context
	sim   *world.Sim
	rec   *world.Recorder
	proxy *recorder
	res   *Result
	// jobs is the jobs run's watch (nil in the single-volume run); slots each VM's limit.
	jobs  *jobWatch
	slots int
	// cut is the cut-over run's book (nil otherwise).
	cut *cutoverBook
}

// check looks at CloudStack, the watch and the recorded calls. final adds what only holds
// once everything is deleted.
func (k *checker) check(final bool) {
	st, err := k.sim.State()
	if err != nil {
		return // the simulator is never killed; a failed read is retried next time
	}
	k.res.mu.Lock()
	k.res.Checks++
	k.res.mu.Unlock()
	traces := k.rec.Traces()
	byUID8 := map[string]world.Trace{}
	for _, t := range traces {
		byUID8[t.UID[:8]] = t
	}
	owners := map[string][]string{}
	vols := world.DataVolumes(st)
	if k.cut != nil {
		// A handed-off root disk is a ROOT volume, and a replaced placeholder a DATADISK:
		// every volume counts but those the world began with.
		vols = nil
		for _, v := range st.Volumes {
			if !k.cut.foreign[strings.ToLower(v.ID)] {
				vols = append(vols, v)
			}
		}
	}
	for _, v := range vols {
		uid := world.Tag(v, "ossea.migratekit.io/uid")
		if uid == "" {
			if t, ok := byUID8[v.Name[strings.LastIndexByte(v.Name, '_')+1:]]; ok {
				uid = t.UID
			}
		}
		if uid == "" {
			if final {
				k.res.addViolation(fmt.Sprintf("CloudStack volume %s (%s) belongs to no object", v.ID, v.Name))
			}
			continue
		}
		owners[uid] = append(owners[uid], v.ID)
		if final && !(k.cut != nil && k.cut.remains(v)) {
			k.res.addViolation(fmt.Sprintf("CloudStack volume %s (%s) left after deletion", v.ID, v.Name))
		}
	}
	for uid, ids := range owners {
		if len(ids) > 1 {
			sort.Strings(ids)
			k.res.addViolation(fmt.Sprintf("object %s has %d CloudStack volumes: %v", uid, len(ids), ids))
		}
	}
	for _, p := range k.proxy.Problems() {
		k.res.addViolation(p)
	}
	for _, c := range k.proxy.Calls() {
		if c.Command == "deleteVolume" && isAttachedRefusal(c) {
			k.res.addViolation(fmt.Sprintf("deleteVolume of attached volume %s at %s: CloudStack refused (%d %s)",
				c.VolumeID, c.At.Format("15:04:05.000"), c.ErrorCode, c.ErrorText))
		}
	}
	k.checkAttachLimit(st)
	if k.jobs != nil {
		k.checkJobs(k.ctx)
	}
	if k.cut != nil {
		k.checkHandoffRules(st)
	}
}

// checkAttachLimit: no OMA VM ever holds more data volumes than its slots, and the manager
// never asks CloudStack to attach to a full one (the simulator refuses, as CloudStack does,
// so the refusal is where an over-full placement would show).
func (k *checker) checkAttachLimit(st cloudsim.State) {
	oma := map[string]bool{}
	for _, vm := range k.sim.VMs {
		oma[vm.ID] = true
	}
	attached := map[string]int{}
	for _, v := range world.DataVolumes(st) {
		if oma[v.VirtualMachineID] {
			attached[v.VirtualMachineID]++
		}
	}
	for vm, n := range attached {
		if n > k.slots {
			k.res.addViolation(fmt.Sprintf("OMA VM %s has %d data volumes attached, over its limit of %d", vm, n, k.slots))
		}
	}
	for _, j := range st.Jobs {
		if j.Command == "attachVolume" && j.Completed != nil && capacityRefusal(j.Result) {
			k.res.addViolation(fmt.Sprintf("attachVolume job %s of volume %s to VM %s was refused: the VM was full", j.ID, j.InstanceID, j.Params["virtualmachineid"]))
		}
	}
}

func (r *Result) addViolation(v string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, have := range r.Violations {
		if have == v {
			return
		}
	}
	r.Violations = append(r.Violations, v)
}

// sleep waits d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gave up after %s", timeout)
		}
		time.Sleep(250 * time.Millisecond)
	}
	return nil
}

// capacityRefusal is CloudStack's answer to attaching to a VM that holds its maximum.
func capacityRefusal(result []byte) bool {
	return bytes.Contains(result, []byte("maximum number of data disks"))
}

// sweepOrphansAtOnce sets every config of the run to orphanPolicy Delete with no grace.
// Every volume of a chaos run has its MigrationVolume until the manager itself deletes it,
// so the sweep must find nothing, whatever is killed or lost; a volume it took for an orphan
// would be deleted under a live object, which the other invariants catch.
func sweepOrphansAtOnce(ctx context.Context, c client.Client, ns string) error {
	var list osseav1.OsseaConfigList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return err
	}
	for i := range list.Items {
		cfg := &list.Items[i]
		base := cfg.DeepCopy()
		cfg.Spec.OrphanPolicy = osseav1.OrphanDelete
		cfg.Spec.OrphanGracePeriod = &metav1.Duration{}
		if err := c.Patch(ctx, cfg, client.MergeFrom(base)); err != nil {
			return fmt.Errorf("setting orphanPolicy Delete on %s: %w", cfg.Name, err)
		}
	}
	return nil
}

// orphanSweepSilent returns a violation for each orphan event of the run and each config
// that reports orphans.
func orphanSweepSilent(ctx context.Context, c client.Client, ns string) []string {
	var out []string
	var evs eventsv1.EventList
	if err := c.List(ctx, &evs, client.InNamespace(ns)); err != nil {
		return []string{fmt.Sprintf("listing events: %v", err)}
	}
	for _, e := range evs.Items {
		switch e.Reason {
		case osseav1.EventOrphansFound, osseav1.EventOrphanDeleted, osseav1.EventOrphanDeleteFailed:
			out = append(out, fmt.Sprintf("orphan sweep event %s on %s: %s", e.Reason, e.Regarding.Name, e.Note))
		}
	}
	var list osseav1.OsseaConfigList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return append(out, fmt.Sprintf("listing configs: %v", err))
	}
	for _, cfg := range list.Items {
		if o := cfg.Status.Orphans; o == nil {
			out = append(out, fmt.Sprintf("config %s was never checked for orphans", cfg.Name))
		} else if o.Count != 0 {
			out = append(out, fmt.Sprintf("config %s reports %d orphans: %v", cfg.Name, o.Count, o.VolumeIDs))
		}
	}
	return out
}
