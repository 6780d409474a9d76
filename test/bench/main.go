// Command bench measures the operator on the local world: a real kube-apiserver, the
// CloudStack simulator, the manager and, where a scenario needs them, node agents, each a
// real process built from this tree. It runs a scenario (or all but scale, each in a fresh
// world), prints a table and then one JSON line with the same numbers per scenario. It
// never judges them: targets are for people to compare.
//
//	go run ./test/bench --scenario control-plane --n 500
//	go run ./test/bench --scenario full-path --n 50
//	go run ./test/bench --scenario steady-state --n 2000 --idle 5m
//	go run ./test/bench --scenario scale --n 20000 --batches 40
//	go run ./test/bench --scenario lower-bound --n 100 --qps 1000
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/migratekit/ossea-operator/test/world"
)

// options are the flags; zero values mean "the scenario's default".
type options struct {
	scenario       string
	n              int
	vms            int
	perVM          int
	jobLatency     time.Duration
	qps            float64
	burst          int
	simQPS         int
	idle           time.Duration
	timeout        time.Duration
	keep           bool
	managerArgs    stringList
	agentArgs      stringList
	deleteAtEnd    bool
	batches        int
	settle         time.Duration
	reportInterval time.Duration
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, " ") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func main() {
	// The watch logs through controller-runtime; the bench reports what matters itself.
	ctrllog.SetLogger(logr.Discard())
	var o options
	flag.StringVar(&o.scenario, "scenario", "all", "control-plane, full-path, steady-state, all three one after the other, scale (long: not in all), or lower-bound (the least operator's control plane: not in all)")
	flag.IntVar(&o.n, "n", 0, "number of MigrationVolumes (default 500, 50, 2000, 20000 or 100 by scenario)")
	flag.IntVar(&o.vms, "vms", 0, "OMA VMs, one OsseaConfig each (default: enough for n at --per-vm; 5 for full-path)")
	flag.IntVar(&o.perVM, "per-vm", 0, "data volume slots per OMA VM (default 64, the schema's maximum; 16 for full-path)")
	flag.DurationVar(&o.jobLatency, "job-latency", time.Second, "simulator async job latency")
	flag.Float64Var(&o.qps, "qps", 50, "the manager's --cloudstack-qps (per CloudStack endpoint; every config uses the one simulator)")
	flag.IntVar(&o.burst, "burst", 0, "the manager's --cloudstack-burst (default: its own default)")
	flag.IntVar(&o.simQPS, "sim-qps", -1, "the simulator's API throttling (CloudStack's api.throttling.max per 1 s interval; past it calls are refused with 429); 0 = off (default: --qps for scale, off for the others)")
	flag.DurationVar(&o.idle, "idle", 5*time.Minute, "steady-state, scale: how long the attached volumes stay idle")
	flag.DurationVar(&o.settle, "settle", 15*time.Second, "steady-state, scale: pause between all Attached and the idle window")
	flag.DurationVar(&o.timeout, "timeout", 0, "give up on a phase after this long (default 30m; 3h for scale)")
	flag.IntVar(&o.batches, "batches", 0, "scale: waves the volumes are applied in, one after another (default 40)")
	flag.BoolVar(&o.keep, "keep", world.Keep(), "keep the scratch directory (logs) after the run (also "+world.KeepEnv+"=1)")
	flag.BoolVar(&o.deleteAtEnd, "delete", false, "steady-state: delete the volumes at the end and time it")
	flag.DurationVar(&o.reportInterval, "progress", 10*time.Second, "how often to print progress")
	flag.Var(&o.managerArgs, "manager-arg", "extra manager flag, repeatable (e.g. --manager-arg=--drift-interval=1m)")
	flag.Var(&o.agentArgs, "agent-arg", "extra node agent flag, repeatable")
	flag.Parse()
	if o.keep {
		_ = os.Setenv(world.KeepEnv, "1")
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	scenarios := map[string]func(context.Context, options) (*report, error){
		"control-plane": controlPlane,
		"full-path":     fullPath,
		"steady-state":  steadyState,
		"scale":         scale,
		"lower-bound":   lowerBound,
	}
	names := []string{o.scenario}
	if o.scenario == "all" {
		names = []string{"control-plane", "full-path", "steady-state"}
	}
	failed := false
	for _, name := range names {
		run := scenarios[name]
		if run == nil {
			fmt.Fprintf(os.Stderr, "bench: unknown scenario %q (control-plane, full-path, steady-state, all, scale or lower-bound)\n", name)
			os.Exit(2)
		}
		rep, err := run(ctx, o)
		if rep != nil {
			rep.print(os.Stdout)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", name, err)
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

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
