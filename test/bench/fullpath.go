package main

import (
	"context"
	"fmt"
	"sort"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/guestdisk"
	"github.com/migratekit/ossea-operator/test/world"
)

// fullPath: N Filesystem-mode volumes over a few OMA VMs served with real loop devices, one
// node agent per VM, from apply to mounted and back.
func fullPath(ctx context.Context, o options) (*report, error) {
	if o.vms == 0 {
		o.vms = 5
	}
	o = defaults(o, 50, 16)
	rep := newReport("full-path", o, nil)
	if (o.n+o.vms-1)/o.vms > o.perVM {
		return rep, fmt.Errorf("%d volumes do not fit on %d VMs of %d slots", o.n, o.vms, o.perVM)
	}
	e, err := setup(ctx, o, world.SimOptions{VMs: o.vms, MaxDataVolumes: o.perVM, Local: true, JobLatency: o.jobLatency, Seed: 1}, true)
	if err != nil {
		return rep, err
	}
	defer e.close()
	var dirs []string
	for _, vm := range e.sim.VMs {
		dirs = append(dirs, vm.ByIDDir)
	}
	links, err := world.WatchLinks(dirs...)
	if err != nil {
		return rep, err
	}
	defer links.Close()
	if err := e.sim.ResetCounters(); err != nil {
		return rep, err
	}
	writesBefore, refusedBefore, err := e.apiServerCounts(ctx)
	if err != nil {
		return rep, err
	}

	progress("applying %d Filesystem-mode volumes over %d VMs with an agent each", o.n, o.vms)
	applied := time.Now()
	created, err := e.createAll(ctx, o.n, func(i int) *osseav1.MigrationVolume {
		fs := osseav1.FilesystemExt4
		if i%2 == 1 {
			fs = osseav1.FilesystemXFS
		}
		return &osseav1.MigrationVolume{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: fmt.Sprintf("vol-%05d", i)},
			Spec: osseav1.MigrationVolumeSpec{
				OsseaConfigRef: osseav1.LocalObjectReference{Name: world.ConfigName(i % o.vms)},
				JobID:          fmt.Sprintf("job-%d", i%o.vms), VMName: "Bench VM", DiskName: fmt.Sprintf("disk-%05d", i),
				SizeGiB: 1, Mode: osseav1.VolumeModeFilesystem, Filesystem: &osseav1.FilesystemSpec{Type: fs},
			},
		}
	})
	if err != nil {
		return rep, err
	}
	allReady, err := e.waitAll(ctx, "Ready", func(t world.Trace) time.Time { return t.Ready })
	if err != nil {
		return rep, err
	}
	progress("all Ready after %s", allReady.Sub(applied).Round(time.Millisecond))
	traces := e.rec.Traces()
	mounts, err := world.MountsUnder(e.w.Dir)
	if err != nil {
		return rep, err
	}

	var toReady, toMounted, attachToMounted []time.Duration
	missingLinks := 0
	for name, t := range traces {
		toReady = append(toReady, t.Ready.Sub(created[name]))
		link, ok := links.Created(guestdisk.LinkName(guestdisk.BusVirtio, t.VolumeID))
		if !ok {
			missingLinks++
			continue
		}
		toMounted = append(toMounted, t.Mounted.Sub(link))
		attachToMounted = append(attachToMounted, t.Mounted.Sub(t.Attached))
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
	writesAfter, refusedAfter, err := e.apiServerCounts(ctx)
	if err != nil {
		return rep, err
	}
	st, err := e.sim.State()
	if err != nil {
		return rep, err
	}
	e.keepState(st)
	left, err := world.MountsUnder(e.w.Dir)
	if err != nil {
		return rep, err
	}
	loops, err := world.LoopDevicesUnder(e.w.Dir)
	if err != nil {
		return rep, err
	}

	rep.add("mountsWhileReady", len(mounts), "")
	addLatencies(rep, "applyToReady", toReady)
	addLatencies(rep, "agentLinkToMounted", toMounted)
	addLatencies(rep, "attachedToMounted", attachToMounted)
	if missingLinks > 0 {
		rep.add("volumesWithoutSeenLink", missingLinks, "")
	}
	rep.add("applyToAllReadySeconds", secs(allReady.Sub(applied)), "")
	rep.add("deleteToAllGoneSeconds", secs(allGone.Sub(deleted)), "")
	total := 0
	perVolume := map[string]float64{}
	for cmd, n := range st.Calls {
		total += n
		perVolume[cmd] = float64(n) / float64(o.n)
	}
	rep.add("cloudStackCallsPerVolume", round(float64(total)/float64(o.n), 2), "")
	rep.addCounts("callsPerVolumeByCommand", perVolume, "")
	rep.addPerVolume("apiServerWritesPerVolume", writesBefore, writesAfter, o.n)
	rep.addPerVolume("apiServerRefusedPerVolume", refusedBefore, refusedAfter, o.n)
	rep.add("leftAfterDelete", map[string]int{"mounts": len(left), "loopDevices": len(loops), "dataVolumes": len(world.DataVolumes(st))},
		fmt.Sprintf("%d mounts, %d loop devices, %d data volumes", len(left), len(loops), len(world.DataVolumes(st))))
	return rep, nil
}

// apiServerCounts is what the API server has counted so far: write requests, and requests
// refused with Conflict, by resource.
func (e *env) apiServerCounts(ctx context.Context) (writes, refused map[string]float64, err error) {
	if writes, err = world.APIServerWrites(ctx, e.rest); err != nil {
		return nil, nil, err
	}
	refused, err = world.APIServerRefused(ctx, e.rest)
	return writes, refused, err
}

func addLatencies(rep *report, key string, ds []time.Duration) {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	p50, p99, mx := percentile(ds, 50), percentile(ds, 99), percentile(ds, 100)
	rep.add(key+"Seconds", map[string]float64{"p50": secs(p50), "p99": secs(p99), "max": secs(mx), "n": float64(len(ds))},
		fmt.Sprintf("p50 %.2fs  p99 %.2fs  max %.2fs  (n=%d)", p50.Seconds(), p99.Seconds(), mx.Seconds(), len(ds)))
}
