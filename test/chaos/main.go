// Command chaos runs the operator through faults and crashes and checks that it stays safe:
// the simulator answers 10% of calls with 530/534, loses 5% of replies after acting, fails 5%
// of jobs and varies job latency; the manager is SIGKILLed every 5-10s and each node agent
// every 7-15s, and all are started again at once. Meanwhile N Filesystem-mode volumes are
// applied until Ready and then deleted, and these invariants are checked continuously and at
// the end: never two CloudStack volumes for one object; never a detach while the mount
// finalizer is on the object; never a delete of an attached volume; never a create, tag or
// attach for an object being deleted; never a detach or delete of a volume while a job the
// manager started on it runs; never more data volumes attached to an OMA VM than its limit,
// nor an attach CloudStack refuses because the VM is full; every object Ready; afterwards no
// volume, loop device, mount, finalizer or object left.
//
// With --jobs the N volumes are the disks of N/3 MigrationJobs, applied at once and placed
// through a selector over the run's OsseaConfigs (one pool) whose VMs hold about two thirds
// of the disks, so a third of the jobs wait with InsufficientCapacity and the run goes in
// waves (see runJobs): the placed jobs are held Ready and deleted, the waiting ones move in,
// until every job was Ready once. It adds: a job's placement never changes once seen; the
// disks of the jobs placed on a config (until they are gone) never exceed its slots; every
// volume of a job is controlled by it, on its placement, and made after the placement was
// written; every job Ready once, and each that did not fit at first seen waiting for slots.
//
// With --cutover (which implies --jobs) the world also holds one Stopped KVM target VM per
// job, each with its placeholder root disk, and at the end of each wave's hold a seed-chosen
// half of the wave's jobs is cut over instead of deleted: spec.cutover names a target of its
// own and disk0 as the root disk; once the job is HandedOff it is deleted, which must leave
// its disks on the target. The other half is deleted as before, and the kills and faults go
// on throughout. It adds, checked continuously from the simulator's job log and the
// manager's calls (see world.HandoffRules) and at the end: no attach of a volume to a target
// before its detach from the OMA VM succeeded; no detach or delete of a volume once it was
// handed off (attached to its target, tagged handed-off-to, or its MigrationVolume seen with
// status.handoff); no delete of a volume the world began with; a detach for a hand-off only
// once the agent let the volume go, and of a placeholder only once it is tagged
// replaced-by; a volume the agent let go for its hand-off never claimed again. At the end every cut-over job's disks are on its target, disk0 at device 0
// as ROOT and the data disks at ascending ids in disk order, each attached there by exactly
// one successful attach, as its MigrationVolume's status.handoff and the job's status said;
// the placeholder detached, kept and tagged replaced-by; the targets no job was given
// untouched; and only those disks, the placeholders and the VMs' own roots left in
// CloudStack.
//
//	go run ./test/chaos                      # 60 volumes over 3 VMs, seeds 1 to 5
//	go run ./test/chaos --seeds 42 --n 15    # replay one seed
//	go run ./test/chaos --jobs               # 20 jobs of 3 disks over 3 VMs of 14 slots
//	go run ./test/chaos --cutover            # the same, half of each wave cut over
//
// The short variant runs in `go test ./test/chaos`.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/migratekit/ossea-operator/test/world"
)

func main() {
	// The watch logs through controller-runtime; the run reports what matters itself.
	ctrllog.SetLogger(logr.Discard())
	cfg := LongConfig()
	seeds := flag.String("seeds", "1,2,3,4,5", "comma-separated seeds; each is one run")
	flag.IntVar(&cfg.N, "n", cfg.N, "MigrationVolumes per run (with --jobs: disks, in n/disks-per-job jobs)")
	jobs := flag.Bool("jobs", false, "apply MigrationJobs placed on a pool too small for all at once, in waves, instead of single volumes")
	cutover := flag.Bool("cutover", false, "with jobs (implies --jobs): cut half of each wave's jobs over to target VMs of their own, disk0 as root, instead of deleting them")
	perJob := flag.Int("disks-per-job", 3, "disks of each job, with --jobs")
	flag.IntVar(&cfg.VMs, "vms", cfg.VMs, "OMA VMs, one agent each")
	flag.DurationVar(&cfg.JobLatency, "job-latency", cfg.JobLatency, "simulator job latency")
	flag.DurationVar(&cfg.JobJitter, "job-jitter", cfg.JobJitter, "simulator job latency jitter")
	flag.DurationVar(&cfg.Hold, "hold", cfg.Hold, "how long the volumes stay Ready, under chaos, before they are deleted")
	flag.DurationVar(&cfg.ReadyTimeout, "ready-timeout", cfg.ReadyTimeout, "how long all volumes may take to be Ready")
	flag.DurationVar(&cfg.GoneTimeout, "gone-timeout", cfg.GoneTimeout, "how long all volumes may take to be gone")
	keep := flag.Bool("keep", world.Keep(), "keep the scratch directory (logs) after the run (also "+world.KeepEnv+"=1)")
	flag.Parse()
	if *keep {
		_ = os.Setenv(world.KeepEnv, "1")
	}
	if *cutover {
		*jobs = true
		cfg.Cutover = true
	}
	if *jobs {
		if *perJob < 1 || cfg.N < *perJob {
			fmt.Fprintf(os.Stderr, "chaos: --disks-per-job %d with --n %d makes no job\n", *perJob, cfg.N)
			os.Exit(2)
		}
		cfg.DisksPerJob = *perJob
	}

	root, err := world.FindRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	}
	cfg.Root = root
	cfg.Logf = func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	failed := false
	for _, s := range strings.Split(*seeds, ",") {
		seed, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "chaos: bad seed %q\n", s)
			os.Exit(2)
		}
		cfg.Seed = seed
		res, err := Run(ctx, cfg)
		printResult(res)
		if err != nil {
			fmt.Fprintf(os.Stderr, "chaos: seed %d: %v\n", seed, err)
			failed = true
		}
		if len(res.Violations) > 0 {
			failed = true
		}
		if ctx.Err() != nil {
			break
		}
	}
	if failed {
		os.Exit(1)
	}
}

// LongConfig is the long run: 60 Filesystem-mode volumes over 3 OMA VMs.
func LongConfig() Config {
	return Config{
		N: 60, VMs: 3,
		JobLatency: time.Second, JobJitter: time.Second,
		Faults:       DefaultFaults,
		ManagerKill:  [2]time.Duration{5 * time.Second, 10 * time.Second},
		AgentKill:    [2]time.Duration{7 * time.Second, 15 * time.Second},
		Hold:         30 * time.Second,
		ReadyTimeout: 10 * time.Minute, GoneTimeout: 10 * time.Minute,
	}
}

func printResult(res *Result) {
	if res == nil {
		return
	}
	verdict := "PASS"
	if len(res.Violations) > 0 {
		verdict = fmt.Sprintf("FAIL (%d violations)", len(res.Violations))
	}
	fmt.Printf("\n== chaos seed %d: %s\n", res.Seed, verdict)
	fmt.Printf("volumes %d  ready after %.1fs  gone after %.1fs\n", res.N, res.ReadySeconds, res.GoneSeconds)
	if res.Jobs > 0 {
		fmt.Printf("jobs %d of %d disks on VMs of %d slots  waited for slots %d  waves:", res.Jobs, res.DisksPerJob, res.SlotsPerVM, res.JobsWaited)
		for i, wv := range res.Waves {
			fmt.Printf("  %d: %d Ready in %.1fs, %d waiting", i+1, wv.Jobs, wv.ReadySeconds, wv.Waiting)
		}
		fmt.Println()
	}
	if res.JobsCutOver > 0 {
		fmt.Printf("cut over %d jobs, deleted %d; %d volumes left on targets by %d successful attaches to them; cut-overs per wave:",
			res.JobsCutOver, res.JobsDeleted, res.HandedOffVolumes, res.TargetAttaches)
		for i, wv := range res.Waves {
			fmt.Printf("  %d: %d HandedOff in %.1fs", i+1, wv.CutOver, wv.CutoverSeconds)
		}
		fmt.Println()
	}
	fmt.Printf("kills: manager %d, agents %d  injected faults %v\n", res.ManagerKills, res.AgentKills, res.InjectedFaults)
	fmt.Printf("detaches %d  deletes %d  invariant checks %d\n", res.Detaches, res.Deletes, res.Checks)
	for _, v := range res.Violations {
		fmt.Printf("VIOLATION: %s\n", v)
	}
	if res.Logs != "" {
		fmt.Printf("logs: %s\n", res.Logs)
	}
	b, _ := json.Marshal(res)
	fmt.Println(string(b))
}
