package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudsim"
	"github.com/migratekit/ossea-operator/test/world"
)

// scale: ten times the scale on one machine. N Block-mode volumes (default 20,000) over
// enough OMA VMs of 64 slots each (313 for 20,000: the schema caps maxDataVolumes at 64,
// so 200 VMs would hold only 12,800 and the rest would wait for slots forever), applied in
// --batches waves of one jobID each (default 40 of 500), one wave after another without
// waiting for the last to attach, as a migration tool submitting its jobs back to back
// would. The CloudStack budget is the manager's own --cloudstack-qps, shared by every
// config since all use the one simulator; the simulator throttles the account as CloudStack
// does (--sim-qps calls per second, by default the same as --qps), refusing calls past it
// with 429, which the manager must take in its stride. The floor of the apply phase is its
// calls ÷ QPS, and the report says how many of those calls were refused. Then the volumes
// are left idle, as in the steady state, and the API server's objects and etcd's size are
// read.
func scale(ctx context.Context, o options) (*report, error) {
	if o.timeout == 0 {
		o.timeout = 3 * time.Hour
	}
	o.simQPS = scaleSimQPS(o)
	o = defaults(o, 20000, 64)
	if o.batches == 0 {
		o.batches = 40
	}
	o.batches = min(o.batches, o.n)
	rep := newReport("scale", o, map[string]any{"batches": o.batches, "idle": o.idle.String()})
	e, err := setup(ctx, o, world.SimOptions{VMs: o.vms, MaxDataVolumes: o.perVM, JobLatency: o.jobLatency, Seed: 1}, false)
	if err != nil {
		return rep, err
	}
	defer e.close()

	if err := e.applyAtScale(ctx, rep); err != nil {
		return rep, err
	}
	progress("all Attached; settling for %s", o.settle)
	if err := sleep(ctx, o.settle); err != nil {
		return rep, err
	}
	perMinute, err := e.measureIdle(ctx, rep)
	if err != nil {
		return rep, err
	}
	// The target is calls per config independent of the volumes per config; per volume
	// shows whether they grow with the volumes instead.
	rep.add("cloudStackCallsPerMinutePerConfig", round(perMinute/float64(o.vms), 3), "")
	rep.add("cloudStackCallsPerMinutePerVolume", round(perMinute/float64(o.n), 4), "")
	// Read last: the API server polls etcd's size and counts every 30 s and every minute.
	return rep, e.addStorage(ctx, rep)
}

// scaleSimQPS is the simulator's throttle for scale: --sim-qps when given, else the
// manager's own --qps (rounded, at least 1), so that CloudStack's limit is on; off when the
// manager has no limit either.
func scaleSimQPS(o options) int {
	if o.simQPS >= 0 {
		return o.simQPS
	}
	if o.qps <= 0 {
		return 0
	}
	return max(1, int(math.Round(o.qps)))
}

// addThrottled reports how many of the calls the simulator counted its throttling refused
// (429), in all and by command.
func (e *env) addThrottled(rep *report, key string, st cloudsim.State) {
	total, calls := 0, 0
	var parts []string
	for cmd, n := range st.Throttled {
		total += n
		parts = append(parts, fmt.Sprintf("%s %d", cmd, n))
	}
	for _, n := range st.Calls {
		calls += n
	}
	slices.Sort(parts)
	text := fmt.Sprintf("%d of %d calls refused 429 by the simulator's throttle of %d/s", total, calls, e.o.simQPS)
	if e.o.simQPS <= 0 {
		text = fmt.Sprintf("%d (the simulator's throttling is off)", total)
	} else if len(parts) > 0 {
		text += " (" + strings.Join(parts, ", ") + ")"
	}
	rep.add(key, total, text)
	rep.Results[key+"ByCommand"] = st.Throttled
}

// applyAtScale applies the volumes in waves, waits for all of them to be Attached and
// reports the time against the QPS floor, the calls, and what the manager used.
func (e *env) applyAtScale(ctx context.Context, rep *report) error {
	o := e.o
	if err := e.sim.ResetCounters(); err != nil {
		return err
	}
	before, err := e.mgr.Usage()
	if err != nil {
		return err
	}
	others := e.otherUsage()
	writesBefore, err := world.APIServerWrites(ctx, e.rest)
	if err != nil {
		return err
	}

	progress("applying %d Block-mode volumes over %d configs in %d waves", o.n, o.vms, o.batches)
	applied := time.Now()
	waves, err := e.applyWaves(ctx)
	if err != nil {
		return err
	}
	createdAll := time.Now()
	allAttached, err := e.waitAll(ctx, "Attached", attached)
	if err != nil {
		return err
	}
	elapsed := allAttached.Sub(applied)
	progress("all Attached after %s", elapsed.Round(time.Millisecond))
	st, err := e.sim.State()
	if err != nil {
		return err
	}
	after, err := e.mgr.Usage()
	if err != nil {
		return err
	}
	writesAfter, err := world.APIServerWrites(ctx, e.rest)
	if err != nil {
		return err
	}

	rep.add("applyToAllAttachedSeconds", secs(elapsed), "")
	rep.add("createAllSeconds", secs(createdAll.Sub(applied)), "")
	lat := waveLatencies(e.rec.Traces(), waves)
	slices.Sort(lat)
	rep.add("waveApplyToAttachedP50Seconds", secs(percentile(lat, 50)), "")
	rep.add("waveApplyToAttachedMaxSeconds", secs(percentile(lat, 100)), "")
	total := 0
	perVolume := map[string]float64{}
	for cmd, n := range st.Calls {
		total += n
		perVolume[cmd] = float64(n) / float64(o.n)
	}
	floor := float64(total) / o.qps
	rep.add("cloudStackCalls", total, "")
	rep.add("qpsFloorSeconds", round(floor, 2), fmt.Sprintf("%.2f (%d calls / %g QPS)", floor, total, o.qps))
	rep.add("applyTimeOverFloor", round(elapsed.Seconds()/floor, 2), fmt.Sprintf("%.2fx", elapsed.Seconds()/floor))
	rep.add("cloudStackCallsPerVolume", round(float64(total)/float64(o.n), 2), "")
	rep.addCounts("callsPerVolumeByCommand", perVolume, "")
	e.addThrottled(rep, "cloudStackCallsThrottled", st)
	rep.add("managerPeakRSSMiB", mib(after.PeakRSSBytes), fmt.Sprintf("%.1f MiB (VmHWM; target <= 400 MiB)", mib(after.PeakRSSBytes)))
	rep.add("managerCPUSeconds", round(after.CPUSeconds-before.CPUSeconds, 2), "")
	rep.addPerVolume("apiServerWritesPerVolume", writesBefore, writesAfter, o.n)
	e.addOtherCPU(rep, others)
	e.addManagerMetrics(rep)
	return nil
}

// wave is one batch of volumes and when its first create was sent.
type wave struct {
	start time.Time
	names []string
}

// applyWaves creates o.n volumes in o.batches waves of (nearly) equal size, one after the
// other, each wave's volumes under one jobID.
func (e *env) applyWaves(ctx context.Context) ([]wave, error) {
	o := e.o
	spec := blockVolumes(o.vms)
	var waves []wave
	for b := range o.batches {
		from, to := waveBounds(o.n, o.batches, b)
		start := time.Now()
		created, err := e.createAll(ctx, to-from, func(i int) *osseav1.MigrationVolume {
			mv := spec(from + i)
			mv.Spec.JobID = fmt.Sprintf("wave-%02d", b)
			return mv
		})
		if err != nil {
			return waves, fmt.Errorf("wave %d: %w", b, err)
		}
		w := wave{start: start}
		for name := range created {
			w.names = append(w.names, name)
		}
		waves = append(waves, w)
		progress("wave %d/%d created (%d volumes in %s)", b+1, o.batches, to-from, time.Since(start).Round(time.Millisecond))
	}
	return waves, nil
}

// waveBounds is the range [from, to) of volume indexes of wave b of n volumes in batches
// waves: consecutive, covering all, sizes differing by at most one.
func waveBounds(n, batches, b int) (from, to int) {
	return b * n / batches, (b + 1) * n / batches
}

func attached(t world.Trace) time.Time { return t.Attached }

// waveLatencies is, for each wave, the time from its first create to its last volume
// Attached; a wave with a volume not Attached (or not seen) is left out.
func waveLatencies(traces map[string]world.Trace, waves []wave) []time.Duration {
	var out []time.Duration
	for _, w := range waves {
		var last time.Time
		for _, name := range w.names {
			at := traces[name].Attached
			if at.IsZero() {
				last = time.Time{}
				break
			}
			if at.After(last) {
				last = at
			}
		}
		if !last.IsZero() {
			out = append(out, last.Sub(w.start))
		}
	}
	return out
}

// addStorage reports the objects that grow with the volumes, counted by listing them (the
// API server's own count, apiserver_resource_objects, still said 0 MigrationVolumes 100 s
// after 200 were made, while it counted their events), all objects and etcd's database
// size as the API server last polled them, and the API server's and etcd's memory.
func (e *env) addStorage(ctx context.Context, rep *report) error {
	for _, gvk := range []schema.GroupVersionKind{
		osseav1.GroupVersion.WithKind("MigrationVolumeList"),
		corev1.SchemeGroupVersion.WithKind("EventList"),
	} {
		var list metav1.PartialObjectMetadataList
		list.SetGroupVersionKind(gvk)
		if err := e.c.List(ctx, &list, client.InNamespace(namespace)); err != nil {
			return fmt.Errorf("listing %s: %w", gvk.Kind, err)
		}
		kind := strings.TrimSuffix(gvk.Kind, "List")
		rep.add("objects"+kind, len(list.Items), fmt.Sprintf("%d (in namespace %s)", len(list.Items), namespace))
	}
	objects, dbBytes, err := world.APIServerStorage(ctx, e.rest)
	if err != nil {
		return fmt.Errorf("reading the API server's storage metrics: %w", err)
	}
	total := 0.0
	for _, n := range objects {
		total += max(n, 0) // -1: the API server could not count them
	}
	rep.add("apiServerObjectsPolled", total, fmt.Sprintf("%.0f (all resources, as last polled; may lag)", total))
	rep.add("etcdDBMiB", mib(int64(dbBytes)), fmt.Sprintf("%.1f MiB (as last polled)", mib(int64(dbBytes))))
	for _, p := range e.w.Processes() {
		if p.Name == "apiserver" {
			if u, err := world.TreeUsage(p.PID()); err == nil {
				rep.add("apiServerAndEtcdRSSMiB", mib(u.RSSBytes), fmt.Sprintf("%.1f MiB (both, now)", mib(u.RSSBytes)))
			}
		}
	}
	return nil
}
