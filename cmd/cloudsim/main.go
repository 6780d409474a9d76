// Command cloudsim serves the CloudStack API simulator (internal/cloudsim) on one
// listener: the API at http://ADDR/client/api, the admin API under /admin/.
// SIGINT or SIGTERM shut it down gracefully, removing every loop device it made.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/migratekit/ossea-operator/internal/cloudsim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "cloudsim:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends. It is main without the process: tests call it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cloudsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "address to serve on; the API is at http://ADDR/client/api")
	worldFile := fs.String("world", "", "world file (YAML); without it the default world is served and printed")
	stateFile := fs.String("state", "", "state file, loaded at start and rewritten on every change, to survive restarts")
	opts := cloudsim.Options{Logf: log.New(stderr, "", log.LstdFlags).Printf}
	fs.DurationVar(&opts.JobLatency, "job-latency", time.Second, "how long each async job runs")
	fs.DurationVar(&opts.JobJitter, "job-jitter", 0, "seeded random extra job time, in [0, jitter)")
	fs.Int64Var(&opts.Seed, "seed", 1, "seed for fault injection and jitter")
	fs.Float64Var(&opts.Faults.ErrorRate, "error-rate", 0, "fraction of calls answered 530/534 without a change")
	fs.Float64Var(&opts.Faults.LostResponseRate, "lost-response-rate", 0, "fraction of calls whose change is made but whose answer is lost (dropped or 502)")
	fs.Float64Var(&opts.Faults.JobFailureRate, "job-failure-rate", 0, "fraction of async jobs that fail with 530")
	fs.DurationVar(&opts.Faults.ExtraLatency, "extra-latency", 0, "delay added to every faulted call")
	faultCommands := fs.String("fault-commands", "", "comma-separated API commands the faults apply to (default: all)")
	fs.IntVar(&opts.Throttle.Max, "api-throttle-max", 0, "CloudStack's api.throttling.max: calls per account per interval, past which calls are refused with 429 (0: throttling off; root admin accounts are never throttled)")
	fs.DurationVar(&opts.Throttle.Interval, "api-throttle-interval", cloudsim.DefaultThrottleInterval, "CloudStack's api.throttling.interval: the window --api-throttle-max counts in")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *faultCommands != "" {
		opts.Faults.Commands = strings.Split(*faultCommands, ",")
	}
	opts.StateFile = *stateFile

	if *worldFile != "" {
		w, err := cloudsim.LoadWorld(*worldFile)
		if err != nil {
			return err
		}
		opts.World = w
	} else {
		opts.World = cloudsim.DefaultWorld()
		y, err := opts.World.YAML()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "# cloudsim: no --world given, serving the default world:\n%s", y)
	}

	sim, err := cloudsim.New(opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return errors.Join(err, sim.Close())
	}
	fmt.Fprintf(stdout, "cloudsim: CloudStack API at http://%s/client/api, admin at http://%s/admin/state\n", ln.Addr(), ln.Addr())
	if opts.Throttle.Max > 0 {
		fmt.Fprintf(stdout, "cloudsim: API throttling: %s\n", opts.Throttle)
	}

	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err = <-served:
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = srv.Shutdown(shutdownCtx)
		cancel()
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	// Close even when serving failed: the loop devices must not outlive us.
	return errors.Join(err, sim.Close())
}
