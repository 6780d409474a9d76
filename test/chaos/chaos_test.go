package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/migratekit/ossea-operator/test/world"
)

func TestMain(m *testing.M) {
	world.Main(m, world.Needs{Root: true, Tools: world.DiskTools}, nil)
}

// TestChaosShort is the short chaos run: 15 volumes over 3 VMs with the long run's faults,
// kills and job latency, held Ready under chaos for 20s. The seed is printed;
// OSSEA_CHAOS_SEED replays one.
func TestChaosShort(t *testing.T) {
	ctrllog.SetLogger(logr.Discard())
	seed := time.Now().UnixNano() % 100000
	if s := os.Getenv("OSSEA_CHAOS_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseInt(s, 10, 64); err != nil {
			t.Fatalf("OSSEA_CHAOS_SEED=%q: %v", s, err)
		}
	}
	t.Logf("seed %d (replay with OSSEA_CHAOS_SEED=%d go test ./test/chaos, or go run ./test/chaos --seeds %d --n 15)", seed, seed, seed)
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	cfg := LongConfig()
	cfg.N, cfg.Seed, cfg.Root = 15, seed, root
	cfg.Hold = 20 * time.Second
	cfg.ReadyTimeout, cfg.GoneTimeout = 3*time.Minute, 2*time.Minute
	cfg.Logf = t.Logf

	res, err := Run(context.Background(), cfg)
	if res != nil {
		t.Logf("ready after %.1fs, gone after %.1fs; kills: manager %d, agents %d; faults %v; detaches %d, deletes %d; %d checks",
			res.ReadySeconds, res.GoneSeconds, res.ManagerKills, res.AgentKills, res.InjectedFaults, res.Detaches, res.Deletes, res.Checks)
		for _, v := range res.Violations {
			t.Errorf("seed %d: %s", seed, v)
		}
		if res.Logs != "" {
			t.Logf("logs kept in %s", res.Logs)
		}
	}
	if err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
}
