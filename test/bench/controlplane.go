package main

import (
	"context"
	"fmt"
	"time"

	"github.com/migratekit/ossea-operator/internal/cloudsim"
	"github.com/migratekit/ossea-operator/test/world"
)

// controlPlane: N Block-mode volumes (no agent needed) over enough OMA VMs, applied at once
// until all are Attached, then deleted until all are gone.
func controlPlane(ctx context.Context, o options) (*report, error) {
	o = defaults(o, 500, 64)
	rep := newReport("control-plane", o, nil)
	e, err := setup(ctx, o, world.SimOptions{VMs: o.vms, MaxDataVolumes: o.perVM, JobLatency: o.jobLatency, Seed: 1}, false)
	if err != nil {
		return rep, err
	}
	defer e.close()

	if err := e.sim.ResetCounters(); err != nil {
		return rep, err
	}
	before, err := e.mgr.Usage()
	if err != nil {
		return rep, err
	}
	others := e.otherUsage()
	writesBefore, err := world.APIServerWrites(ctx, e.rest)
	if err != nil {
		return rep, err
	}

	applied, err := e.applyUntilAttached(ctx, rep, "")
	if err != nil {
		return rep, err
	}

	deleted := time.Now()
	if err := e.deleteAll(ctx); err != nil {
		return rep, err
	}
	allGone, err := e.waitAll(ctx, "gone", func(t world.Trace) time.Time { return t.Gone })
	if err != nil {
		return rep, err
	}
	progress("all gone after %s", allGone.Sub(deleted).Round(time.Millisecond))
	traces := e.rec.Traces()
	after, err := e.mgr.Usage()
	if err != nil {
		return rep, err
	}
	st, err := e.sim.State()
	if err != nil {
		return rep, err
	}
	e.keepState(st)
	writesAfter, err := world.APIServerWrites(ctx, e.rest)
	if err != nil {
		return rep, err
	}

	rep.add("deleteToAllGoneSeconds", secs(allGone.Sub(deleted)), "")
	total := 0
	perVolume := map[string]float64{}
	for cmd, n := range st.Calls {
		total += n
		perVolume[cmd] = float64(n) / float64(o.n)
	}
	rep.add("cloudStackCallsPerVolume", round(float64(total)/float64(o.n), 2), "")
	rep.addCounts("callsPerVolumeByCommand", perVolume, "")
	windows := append(pendingWindows(traces, applied, func(t world.Trace) time.Time { return t.Attached }),
		pendingWindows(traces, deleted, func(t world.Trace) time.Time { return t.Gone })...)
	r := callRate(st, windows, o.qps)
	rep.add("callRateWhilePending", round(r.achieved, 1), fmt.Sprintf("%.1f calls/s", r.achieved))
	rep.add("configuredQPSWhilePending", round(r.configured, 1), fmt.Sprintf("%.1f calls/s (one endpoint, %g QPS)", r.configured, o.qps))
	rep.add("callRateFractionOfQPS", round(r.fraction, 3), fmt.Sprintf("%.1f%%", 100*r.fraction))
	if st.CallTimes != nil && r.truncated {
		rep.add("callTimesTruncated", true, "the simulator kept only the last 10000 call times of a command")
	}
	rep.add("managerPeakRSSMiB", mib(after.PeakRSSBytes), fmt.Sprintf("%.1f MiB", mib(after.PeakRSSBytes)))
	rep.add("managerCPUSeconds", round(after.CPUSeconds-before.CPUSeconds, 2), "")
	rep.addPerVolume("apiServerWritesPerVolume", writesBefore, writesAfter, o.n)
	e.addOtherCPU(rep, others)
	e.addManagerMetrics(rep)
	return rep, nil
}

// applyUntilAttached applies e.o.n Block-mode volumes over e.o.vms configs (by, when not
// empty, says whose work it waits for) and waits until all are Attached. It reports the
// time to all Attached and each volume's own way, from its create call's return to
// Attached: what the floor of its jobs in a row is about, without the time the other
// creates took. It returns when the apply began.
func (e *env) applyUntilAttached(ctx context.Context, rep *report, by string) (time.Time, error) {
	progress("applying %d Block-mode volumes over %d configs%s", e.o.n, e.o.vms, by)
	applied := time.Now()
	created, err := e.createAll(ctx, e.o.n, blockVolumes(e.o.vms))
	if err != nil {
		return applied, err
	}
	allAttached, err := e.waitAll(ctx, "Attached", func(t world.Trace) time.Time { return t.Attached })
	if err != nil {
		return applied, err
	}
	progress("all Attached after %s", allAttached.Sub(applied).Round(time.Millisecond))
	rep.add("applyToAllAttachedSeconds", secs(allAttached.Sub(applied)), "")
	var each []time.Duration
	for name, t := range e.rec.Traces() {
		if c, ok := created[name]; ok && !t.Attached.IsZero() {
			each = append(each, t.Attached.Sub(c))
		}
	}
	addLatencies(rep, "applyToAttached", each)
	return applied, nil
}

// defaults fills the scenario's n, VM count and slots per VM, and the phase timeout.
func defaults(o options, n, perVM int) options {
	if o.timeout == 0 {
		o.timeout = 30 * time.Minute
	}
	if o.n == 0 {
		o.n = n
	}
	if o.perVM == 0 {
		o.perVM = perVM
	}
	if o.vms == 0 {
		o.vms = (o.n + o.perVM - 1) / o.perVM
	}
	return o
}

// window is the time one config had work pending.
type window struct{ from, to time.Time }

// pendingWindows gives each config's window: from the start of the phase until the last of
// its volumes got to done.
func pendingWindows(traces map[string]world.Trace, start time.Time, done func(world.Trace) time.Time) []window {
	last := map[string]time.Time{}
	for _, t := range traces {
		if d := done(t); d.After(last[t.Config]) {
			last[t.Config] = d
		}
	}
	var out []window
	for _, to := range last {
		out = append(out, window{start, to})
	}
	return out
}

type rate struct {
	achieved, configured, fraction float64
	truncated                      bool
}

// callRate compares the calls CloudStack received with the manager's budget while any
// config had work pending. All configs point at the one simulator, so they share one
// budget (the limit is per endpoint): qps × 0.1 per 100ms slice in which any window is
// open. Calls in slices where no config had work pending are left out.
func callRate(st cloudsim.State, windows []window, qps float64) rate {
	if len(windows) == 0 {
		return rate{}
	}
	const slice = 100 * time.Millisecond
	start := windows[0].from
	for _, w := range windows {
		if w.from.Before(start) {
			start = w.from
		}
	}
	active := map[int]bool{}
	for _, w := range windows {
		for i := int(w.from.Sub(start) / slice); i <= int(w.to.Sub(start)/slice); i++ {
			active[i] = true
		}
	}
	var r rate
	calls := 0
	for _, times := range st.CallTimes {
		if len(times) >= 10000 {
			r.truncated = true
		}
		for _, at := range times {
			if at.Before(start) {
				continue
			}
			if active[int(at.Sub(start)/slice)] {
				calls++
			}
		}
	}
	seconds := float64(len(active)) * slice.Seconds()
	budget := qps * seconds
	if seconds > 0 {
		r.achieved = float64(calls) / seconds
		r.configured = budget / seconds
	}
	if budget > 0 {
		r.fraction = float64(calls) / budget
	}
	return r
}
