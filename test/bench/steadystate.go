package main

import (
	"context"
	"fmt"
	"time"

	"github.com/migratekit/ossea-operator/test/world"
)

// steadyState: N Block-mode volumes attached, then left alone; what does the operator cost
// while nothing happens?
func steadyState(ctx context.Context, o options) (*report, error) {
	o = defaults(o, 2000, 64)
	rep := newReport("steady-state", o, map[string]any{"idle": o.idle.String()})
	e, err := setup(ctx, o, world.SimOptions{VMs: o.vms, MaxDataVolumes: o.perVM, JobLatency: o.jobLatency, Seed: 1}, false)
	if err != nil {
		return rep, err
	}
	defer e.close()

	progress("applying %d Block-mode volumes over %d configs", o.n, o.vms)
	applied := time.Now()
	if _, err := e.createAll(ctx, o.n, blockVolumes(o.vms)); err != nil {
		return rep, err
	}
	allAttached, err := e.waitAll(ctx, "Attached", func(t world.Trace) time.Time { return t.Attached })
	if err != nil {
		return rep, err
	}
	progress("all Attached after %s; settling for %s", allAttached.Sub(applied).Round(time.Millisecond), o.settle)
	rep.add("applyToAllAttachedSeconds", secs(allAttached.Sub(applied)), "")
	if err := sleep(ctx, o.settle); err != nil {
		return rep, err
	}

	if _, err := e.measureIdle(ctx, rep); err != nil {
		return rep, err
	}

	if o.deleteAtEnd {
		deleted := time.Now()
		if err := e.deleteAll(ctx); err != nil {
			return rep, err
		}
		allGone, err := e.waitAll(ctx, "gone", func(t world.Trace) time.Time { return t.Gone })
		if err != nil {
			return rep, err
		}
		rep.add("deleteToAllGoneSeconds", secs(allGone.Sub(deleted)), "")
	}
	return rep, nil
}

// measureIdle leaves the world alone for o.idle and reports what the operator cost
// meanwhile: CloudStack calls, API server writes and MigrationVolume updates per minute,
// the manager's memory (the highest of samples every 10 s, and its peak) and CPU. It
// returns the CloudStack calls per minute.
func (e *env) measureIdle(ctx context.Context, rep *report) (float64, error) {
	progress("idle for %s", e.o.idle)
	if err := e.sim.ResetCounters(); err != nil {
		return 0, err
	}
	writesBefore, err := world.APIServerWrites(ctx, e.rest)
	if err != nil {
		return 0, err
	}
	updatesBefore := e.rec.Updates()
	start := time.Now()
	var peakRSS int64
	for time.Since(start) < e.o.idle {
		if err := sleep(ctx, min(10*time.Second, e.o.idle-time.Since(start))); err != nil {
			return 0, err
		}
		if !e.mgr.Running() {
			return 0, fmt.Errorf("the manager exited during the idle window; see %s", e.mgr.Log)
		}
		if u, err := e.mgr.Usage(); err == nil {
			peakRSS = max(peakRSS, u.RSSBytes)
		}
	}
	minutes := time.Since(start).Minutes()
	st, err := e.sim.State()
	if err != nil {
		return 0, err
	}
	writesAfter, err := world.APIServerWrites(ctx, e.rest)
	if err != nil {
		return 0, err
	}
	usage, err := e.mgr.Usage()
	if err != nil {
		return 0, err
	}

	calls := map[string]float64{}
	total := 0.0
	for cmd, n := range st.Calls {
		calls[cmd] = float64(n) / minutes
		total += float64(n) / minutes
	}
	rep.add("idleMinutes", round(minutes, 2), "")
	rep.add("cloudStackCallsPerMinute", round(total, 2), "")
	rep.addCounts("cloudStackCallsPerMinuteByCommand", calls, "/min")
	e.addThrottled(rep, "idleCloudStackCallsThrottled", st)
	writes := world.Sub(writesAfter, writesBefore)
	totalWrites := 0.0
	for k, v := range writes {
		writes[k] = v / minutes
		totalWrites += v / minutes
	}
	rep.add("apiServerWritesPerMinute", round(totalWrites, 2), "")
	rep.addCounts("apiServerWritesPerMinuteByResource", writes, "/min")
	rep.add("migrationVolumeUpdatesPerMinute", round(float64(e.rec.Updates()-updatesBefore)/minutes, 2), "")
	rep.add("managerRSSMiB", mib(max(peakRSS, usage.RSSBytes)), fmt.Sprintf("%.1f MiB (highest sample while idle)", mib(max(peakRSS, usage.RSSBytes))))
	rep.add("managerPeakRSSMiB", mib(usage.PeakRSSBytes), fmt.Sprintf("%.1f MiB (VmHWM, whole run)", mib(usage.PeakRSSBytes)))
	rep.add("managerCPUSecondsTotal", round(usage.CPUSeconds, 2), "")
	return total, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
