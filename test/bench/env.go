package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudsim"
	"github.com/migratekit/ossea-operator/test/world"
)

const namespace = "bench"

// env is a running world with configs Ready and a watch on the volumes.
type env struct {
	w      *world.World
	sim    *world.Sim
	c      client.Client
	rest   *rest.Config
	mgr    *world.Process
	agents []*world.Process
	rec    *world.Recorder
	o      options
	// metricsURL is the manager's Prometheus endpoint.
	metricsURL string
}

// setup starts the world: API server, simulator, manager, one OsseaConfig per VM (all
// Ready), agents when asked, and the watch. The caller must call close.
func setup(ctx context.Context, o options, simOpts world.SimOptions, agents bool) (_ *env, err error) {
	root, err := world.FindRoot()
	if err != nil {
		return nil, err
	}
	w, err := world.New(root, "ossea-bench-")
	if err != nil {
		return nil, err
	}
	e := &env{w: w, o: o}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	progress("building the binaries into %s", w.Bin)
	if err := w.Build(); err != nil {
		return e, err
	}
	progress("starting etcd and kube-apiserver")
	if err := w.StartAPIServer(); err != nil {
		return e, err
	}
	if e.rest, err = w.RESTConfig(); err != nil {
		return e, err
	}
	if e.c, err = w.Client(); err != nil {
		return e, err
	}
	if o.simQPS > 0 {
		simOpts.APIThrottleMax = o.simQPS
	}
	throttle := "off"
	if simOpts.APIThrottleMax > 0 {
		throttle = fmt.Sprintf("%d calls per second", simOpts.APIThrottleMax)
	}
	progress("starting the simulator: %d VMs of %d slots, job latency %s, API throttling %s",
		simOpts.VMs, simOpts.MaxDataVolumes, simOpts.JobLatency, throttle)
	if e.sim, err = w.StartSimulator(simOpts); err != nil {
		return e, err
	}
	port, err := world.FreePort()
	if err != nil {
		return e, err
	}
	e.metricsURL = fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	args := []string{fmt.Sprintf("--cloudstack-qps=%g", o.qps), fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", port)}
	if o.burst > 0 {
		args = append(args, fmt.Sprintf("--cloudstack-burst=%d", o.burst))
	}
	args = append(args, o.managerArgs...)
	progress("starting the manager %v", args)
	if e.mgr, err = w.StartManager("manager", args...); err != nil {
		return e, err
	}
	if agents {
		for i, vm := range e.sim.VMs {
			p, err := w.StartAgent(fmt.Sprintf("agent-%d", i), vm, o.agentArgs...)
			if err != nil {
				return e, err
			}
			e.agents = append(e.agents, p)
		}
	}
	if err := world.CreateConfigs(ctx, e.c, namespace, e.sim, e.sim.APIURL, int32(simOpts.MaxDataVolumes)); err != nil {
		return e, err
	}
	if err := e.waitFor(ctx, 2*time.Minute, "the OsseaConfigs to be Ready", func() bool {
		return world.ConfigsReady(ctx, e.c, namespace, len(e.sim.VMs))
	}); err != nil {
		return e, err
	}
	if e.rec, err = world.Watch(ctx, e.rest, namespace); err != nil {
		return e, err
	}
	return e, nil
}

func (e *env) close() {
	if e.rec != nil {
		e.rec.Stop()
	}
	if err := e.w.Close(); err != nil {
		progress("cleanup: %v", err)
	}
	if world.Keep() {
		progress("logs kept in %s", e.w.Logs)
	}
}

// waitFor polls cond every 200ms, printing progress, until it holds, the timeout passes or
// ctx ends. The manager dying is an error at once.
func (e *env) waitFor(ctx context.Context, timeout time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	lastReport := time.Now()
	for !cond() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if e.mgr != nil && !e.mgr.Running() {
			return fmt.Errorf("the manager exited while waiting for %s; see %s", what, e.mgr.Log)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gave up waiting for %s after %s", what, timeout)
		}
		if time.Since(lastReport) >= e.o.reportInterval {
			progress("waiting for %s", what)
			lastReport = time.Now()
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil
}

// otherUsage is the CPU time the API server (with etcd) and the simulator have used so far.
func (e *env) otherUsage() map[string]float64 {
	out := map[string]float64{}
	for _, p := range e.w.Processes() {
		if p.Name == "apiserver" || p.Name == "cloudsim" {
			if u, err := world.TreeUsage(p.PID()); err == nil {
				out[p.Name] = u.CPUSeconds
			}
		}
	}
	return out
}

// addOtherCPU reports the CPU the API server and the simulator used since before.
func (e *env) addOtherCPU(rep *report, before map[string]float64) {
	for name, now := range e.otherUsage() {
		rep.add(name+"CPUSeconds", round(now-before[name], 2), "")
	}
}

// addManagerMetrics reports from the manager's own metrics how well reads were batched and
// how long calls waited for the rate limit.
func (e *env) addManagerMetrics(rep *report) {
	m, err := world.ScrapeSums(e.metricsURL, "ossea_cloudstack_batched_lookups", "ossea_cloudstack_rate_limit_wait_seconds")
	if err != nil {
		progress("reading the manager's metrics: %v", err)
		return
	}
	if n := m["ossea_cloudstack_batched_lookups_count"]; n > 0 {
		avg := m["ossea_cloudstack_batched_lookups_sum"] / n
		rep.add("batchedLookupsPerCall", round(avg, 2), fmt.Sprintf("%.2f lookups per batched call (%d calls)", avg, int(n)))
	}
	if n := m["ossea_cloudstack_rate_limit_wait_seconds_count"]; n > 0 {
		avg := m["ossea_cloudstack_rate_limit_wait_seconds_sum"] / n
		rep.add("rateLimitWaitMeanSeconds", round(avg, 3), fmt.Sprintf("%.3fs mean wait for the rate limit over %d calls", avg, int(n)))
	}
}

// keepState writes the simulator's final state next to the logs when they are kept.
func (e *env) keepState(st cloudsim.State) {
	if !e.o.keep {
		return
	}
	if b, err := json.Marshal(st); err == nil {
		_ = os.WriteFile(filepath.Join(e.w.Logs, "cloudsim-state.json"), b, 0o644)
	}
	if b, err := json.Marshal(e.rec.Traces()); err == nil {
		_ = os.WriteFile(filepath.Join(e.w.Logs, "traces.json"), b, 0o644)
	}
}

// volumeSpec describes the i-th volume of a scenario.
type volumeSpec func(i int) *osseav1.MigrationVolume

// blockVolumes spreads Block-mode volumes round robin over the configs.
func blockVolumes(configs int) volumeSpec {
	return func(i int) *osseav1.MigrationVolume {
		return &osseav1.MigrationVolume{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: fmt.Sprintf("vol-%05d", i)},
			Spec: osseav1.MigrationVolumeSpec{
				OsseaConfigRef: osseav1.LocalObjectReference{Name: world.ConfigName(i % configs)},
				JobID:          fmt.Sprintf("job-%d", i/16), VMName: "Bench VM " + fmt.Sprint(i/16),
				DiskName: fmt.Sprintf("disk-%05d", i), SizeGiB: 1, Mode: osseav1.VolumeModeBlock,
			},
		}
	}
}

// createAll creates n volumes with 16 clients in parallel and returns when each create
// returned, by name.
func (e *env) createAll(ctx context.Context, n int, spec volumeSpec) (map[string]time.Time, error) {
	var mu sync.Mutex
	created := make(map[string]time.Time, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range n {
		g.Go(func() error {
			mv := spec(i)
			if err := e.c.Create(gctx, mv); err != nil {
				return fmt.Errorf("creating %s: %w", mv.Name, err)
			}
			mu.Lock()
			created[mv.Name] = time.Now()
			mu.Unlock()
			return nil
		})
	}
	return created, g.Wait()
}

// deleteAll deletes every volume of the namespace, 16 at a time.
func (e *env) deleteAll(ctx context.Context) error {
	var list osseav1.MigrationVolumeList
	if err := e.c.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range list.Items {
		mv := &list.Items[i]
		g.Go(func() error { return client.IgnoreNotFound(e.c.Delete(gctx, mv)) })
	}
	return g.Wait()
}

// waitAll waits until all o.n volumes have a time in field (what names it for progress),
// and returns the latest of those times.
func (e *env) waitAll(ctx context.Context, what string, field func(world.Trace) time.Time) (time.Time, error) {
	if err := e.waitFor(ctx, e.o.timeout, fmt.Sprintf("%d volumes %s", e.o.n, what), func() bool {
		return e.rec.Count(func(t *world.Trace) bool { return !field(*t).IsZero() }) == e.o.n
	}); err != nil {
		return time.Time{}, err
	}
	return lastOf(e.rec.Traces(), field)
}

// lastOf is the latest of a time field over the traces, zero if any is still zero.
func lastOf(traces map[string]world.Trace, field func(world.Trace) time.Time) (time.Time, error) {
	var last time.Time
	for name, t := range traces {
		at := field(t)
		if at.IsZero() {
			return time.Time{}, errors.New(name + " has not got there")
		}
		if at.After(last) {
			last = at
		}
	}
	return last, nil
}
