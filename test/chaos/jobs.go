package main

import (
	"context"
	"fmt"
	"math/rand"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/test/world"
)

// The pool every OsseaConfig of a jobs run is labelled into, and the jobs select.
const poolLabel, poolName = "pool", "chaos"

// Wave is one round of the jobs run: the jobs placed and Ready together, and those still
// waiting for their slots.
type Wave struct {
	Jobs    int `json:"jobs"`
	Waiting int `json:"waiting"`
	// Seconds from the start of the wave (the run's start, or the previous wave's delete)
	// until every job placed in it was Ready.
	ReadySeconds float64 `json:"readySeconds"`
	// With --cutover: the jobs of the wave cut over, and the seconds from their spec.cutover
	// until all were HandedOff.
	CutOver        int     `json:"cutOver,omitempty"`
	CutoverSeconds float64 `json:"cutoverSeconds,omitempty"`
}

// runJobs applies N/DisksPerJob jobs at once through a selector over the whole pool, which
// holds about two thirds of their disks, and goes in waves. A wave ends when the pool is
// settled: no job is being deleted, every placed job is Ready, and no waiting job fits the
// free slots of any config (counted from the placements the watch shows), so nothing can
// change until jobs go. Then the placed jobs are held Ready under chaos for Hold and deleted
// together; as each goes, its slots let a waiting one in, so placements race with the
// teardown of the previous wave. The wave that leaves none waiting is held and then
// everything is deleted. With the defaults (20 jobs of 3 disks, 3 VMs of 14 slots) wave 1
// places 12 jobs (4 per VM, 2 slots left on each, too few for a job) and wave 2 the other 8.
//
// With Cutover, the end of each wave's hold deletes only a seed-chosen half of its jobs and
// cuts the other half over (see cutOver), racing those deletes and the next wave's start;
// once they are HandedOff they are deleted too.
func runJobs(ctx context.Context, cfg Config, c client.Client, jw *jobWatch, book *cutoverBook, res *Result, rnd *rand.Rand) error {
	logf := cfg.logf()
	n := cfg.N / cfg.DisksPerJob
	res.Jobs, res.DisksPerJob, res.SlotsPerVM = n, cfg.DisksPerJob, cfg.slotsPerVM()
	logf("seed %d: applying %d jobs of %d Filesystem-mode disks on a pool of %d VMs of %d slots", cfg.Seed, n, cfg.DisksPerJob, cfg.VMs, res.SlotsPerVM)
	applied := time.Now()
	for _, i := range rnd.Perm(n) {
		job := chaosJob(i, cfg.DisksPerJob, rnd)
		if err := c.Create(ctx, job); err != nil {
			return fmt.Errorf("creating job %s: %w", job.Name, err)
		}
	}
	var firstWave []string
	for started := applied; len(res.Waves) <= n; {
		s, err := waitSettled(ctx, cfg, jw)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			res.addViolation(fmt.Sprintf("wave %d: %v", len(res.Waves)+1, err))
			break
		}
		res.Waves = append(res.Waves, Wave{Jobs: len(s.placed), Waiting: len(s.waiting), ReadySeconds: time.Since(started).Seconds()})
		logf("seed %d: wave %d: %d jobs Ready after %.1fs, %d waiting; holding %s", cfg.Seed, len(res.Waves), len(s.placed), time.Since(started).Seconds(), len(s.waiting), cfg.Hold)
		if firstWave == nil {
			firstWave = s.placed
		}
		if len(s.waiting) == 0 {
			res.ReadySeconds = time.Since(applied).Seconds()
		}
		if err := sleep(ctx, cfg.Hold); err != nil {
			return err
		}
		last := len(s.waiting) == 0
		if !cfg.Cutover {
			if last {
				break
			}
			started = time.Now()
			if err := deleteJobs(ctx, c, jw, s.placed); err != nil {
				return err
			}
			continue
		}
		cut, del := splitWave(s.placed, rnd)
		started = time.Now()
		if err := deleteJobs(ctx, c, jw, del); err != nil {
			return err
		}
		logf("seed %d: wave %d: deleting %d jobs, cutting %d over (%s)", cfg.Seed, len(res.Waves), len(del), len(cut), short(cut))
		cutAt := time.Now()
		if err := cutOver(ctx, cfg, c, jw, book, res, cut); err != nil {
			return err
		}
		wv := &res.Waves[len(res.Waves)-1]
		wv.CutOver, wv.CutoverSeconds = len(cut), time.Since(cutAt).Seconds()
		logf("seed %d: wave %d: %d jobs HandedOff after %.1fs; deleting them", cfg.Seed, len(res.Waves), len(cut), wv.CutoverSeconds)
		if last {
			break
		}
		if err := deleteJobs(ctx, c, jw, cut); err != nil {
			return err
		}
	}
	if err := deleteAllJobs(ctx, cfg, c, res); err != nil {
		return err
	}
	checkJobsServed(cfg, jw.Jobs(), firstWave, res)
	return nil
}

// chaosJob is the i-th job: k 1 GiB disks, each ext4 or XFS at random.
func chaosJob(i, k int, rnd *rand.Rand) *osseav1.MigrationJob {
	disks := make([]osseav1.MigrationJobDisk, k)
	for d := range disks {
		fs := osseav1.FilesystemExt4
		if rnd.Intn(2) == 1 {
			fs = osseav1.FilesystemXFS
		}
		size := int32(1)
		disks[d] = osseav1.MigrationJobDisk{Name: fmt.Sprintf("disk%d", d), SizeGiB: &size,
			Mode: osseav1.VolumeModeFilesystem, Filesystem: &osseav1.FilesystemSpec{Type: fs}}
	}
	return &osseav1.MigrationJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: fmt.Sprintf("job-%03d", i)},
		Spec: osseav1.MigrationJobSpec{
			VMName: fmt.Sprintf("Chaos VM %03d", i),
			Placement: osseav1.MigrationJobPlacement{
				OsseaConfigSelector: &metav1.LabelSelector{MatchLabels: map[string]string{poolLabel: poolName}},
			},
			Disks: disks,
		},
	}
}

// labelPool puts every OsseaConfig of the run into the one pool.
func labelPool(ctx context.Context, c client.Client, vms int) error {
	for i := range vms {
		cfg := &osseav1.OsseaConfig{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: world.ConfigName(i)}, cfg); err != nil {
			return err
		}
		before := cfg.DeepCopy()
		cfg.Labels = map[string]string{poolLabel: poolName}
		if err := c.Patch(ctx, cfg, client.MergeFrom(before)); err != nil {
			return fmt.Errorf("labelling %s into the pool: %w", cfg.Name, err)
		}
	}
	return nil
}

// poolState is where the jobs not gone stand, as the watch shows them.
type poolState struct {
	placed, waiting []string // job names
	deleting        int
	notReady        []string // placed, never Ready yet
	fitting         []string // waiting, and some config has their slots free
}

func (s poolState) settled() bool {
	return s.deleting == 0 && len(s.notReady) == 0 && len(s.fitting) == 0 && len(s.placed) > 0
}

func (s poolState) String() string {
	return fmt.Sprintf("%d placed, %d never Ready yet (%s), %d waiting, %d of them with room on a config (%s), %d being deleted",
		len(s.placed), len(s.notReady), short(s.notReady), len(s.waiting), len(s.fitting), short(s.fitting), s.deleting)
}

// poolNow reads the pool from the watch: vms configs of slots each.
func poolNow(jobs map[string]jobTrace, vms, slots int) poolState {
	used := disksPlaced(jobs)
	largestFree := 0
	for i := range vms {
		largestFree = max(largestFree, slots-used[world.ConfigName(i)])
	}
	var s poolState
	for _, name := range jobNames(jobs, func(t jobTrace) bool { return t.Gone.IsZero() }) {
		t := jobs[name]
		switch {
		case !t.Deleting.IsZero():
			s.deleting++
		case t.Placement == nil:
			s.waiting = append(s.waiting, name)
			if t.Disks <= largestFree {
				s.fitting = append(s.fitting, name)
			}
		default:
			s.placed = append(s.placed, name)
			if t.Ready.IsZero() {
				s.notReady = append(s.notReady, name)
			}
		}
	}
	return s
}

// waitSettled waits, for at most ReadyTimeout, until the pool is settled.
func waitSettled(ctx context.Context, cfg Config, jw *jobWatch) (poolState, error) {
	var s poolState
	err := waitFor(ctx, cfg.ReadyTimeout, func() bool {
		s = poolNow(jw.Jobs(), cfg.VMs, cfg.slotsPerVM())
		return s.settled()
	})
	if err != nil {
		return s, fmt.Errorf("not settled within %s: %s", cfg.ReadyTimeout, s)
	}
	return s, nil
}

// deleteJobs deletes the jobs and returns once the watch shows them being deleted: until it
// does, the pool would look as it did, settled, to the next wave's wait.
func deleteJobs(ctx context.Context, c client.Client, jw *jobWatch, names []string) error {
	for _, name := range names {
		job := &osseav1.MigrationJob{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
		if err := c.Delete(ctx, job); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting job %s: %w", name, err)
		}
	}
	err := waitFor(ctx, time.Minute, func() bool {
		jobs := jw.Jobs()
		for _, name := range names {
			if jobs[name].Deleting.IsZero() && jobs[name].Gone.IsZero() {
				return false
			}
		}
		return true
	})
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("the watch did not show the deleted jobs being deleted: %w", err)
	}
	return ctx.Err()
}

// deleteAllJobs deletes every job left and waits until no job and no volume is.
func deleteAllJobs(ctx context.Context, cfg Config, c client.Client, res *Result) error {
	deleted := time.Now()
	if err := c.DeleteAllOf(ctx, &osseav1.MigrationJob{}, client.InNamespace(namespace)); err != nil {
		return err
	}
	goneErr := waitFor(ctx, cfg.GoneTimeout, func() bool {
		var jobs osseav1.MigrationJobList
		var vols osseav1.MigrationVolumeList
		return c.List(ctx, &jobs, client.InNamespace(namespace)) == nil && len(jobs.Items) == 0 &&
			c.List(ctx, &vols, client.InNamespace(namespace)) == nil && len(vols.Items) == 0
	})
	res.GoneSeconds = time.Since(deleted).Seconds()
	cfg.logf()("seed %d: deleting the last jobs took %.1fs", cfg.Seed, res.GoneSeconds)
	if goneErr != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return nil
}

// checkJobsServed: every job was Ready once, and every job that did not fit at first waited
// for its slots with InsufficientCapacity.
func checkJobsServed(cfg Config, jobs map[string]jobTrace, firstWave []string, res *Result) {
	if len(jobs) != res.Jobs {
		res.addViolation(fmt.Sprintf("the watch saw %d jobs of %d", len(jobs), res.Jobs))
	}
	inFirst := map[string]bool{}
	for _, name := range firstWave {
		inFirst[name] = true
	}
	for name, t := range jobs {
		if t.Ready.IsZero() {
			res.addViolation(fmt.Sprintf("job %s was never Ready (placement %v)", name, t.Placement))
		}
		if t.Waited {
			res.JobsWaited++
		} else if firstWave != nil && !inFirst[name] {
			res.addViolation(fmt.Sprintf("job %s did not fit in the first wave but was never seen waiting with %s", name, osseav1.ReasonInsufficientCapacity))
		}
	}
	if demand, room := cfg.N, cfg.VMs*cfg.slotsPerVM(); demand > room && res.JobsWaited == 0 {
		res.addViolation(fmt.Sprintf("no job ever waited for slots, though the jobs need %d and the pool has %d", demand, room))
	}
}

// checkJobs is the jobs run's continuous check: no placement changed, no config holds more
// disks of placed jobs than its slots, every job's volumes are its own and on its placement.
func (k *checker) checkJobs(ctx context.Context) {
	for _, p := range k.jobs.Problems() {
		k.res.addViolation(p)
	}
	jobs := k.jobs.Jobs()
	for cfg, n := range disksPlaced(jobs) {
		if n > k.slots {
			k.res.addViolation(fmt.Sprintf("OsseaConfig %s holds jobs of %d disks, over its %d slots: %s", cfg, n, k.slots,
				short(jobNames(jobs, func(t jobTrace) bool {
					return t.Gone.IsZero() && t.Placement != nil && t.Placement.OsseaConfigName == cfg
				}))))
		}
	}
	for _, p := range k.jobs.checkVolumes(ctx, jobs) {
		k.res.addViolation(p)
	}
}
