package main

import (
	"testing"
	"time"

	"github.com/migratekit/ossea-operator/test/world"
)

func TestWaveLatencies(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	traces := map[string]world.Trace{
		"a": {Attached: t0.Add(3 * time.Second)},
		"b": {Attached: t0.Add(5 * time.Second)},
		"c": {Attached: t0.Add(9 * time.Second)},
		"d": {}, // not Attached yet
	}
	waves := []wave{
		{start: t0, names: []string{"a", "b"}},
		{start: t0.Add(2 * time.Second), names: []string{"c"}},
		{start: t0.Add(4 * time.Second), names: []string{"c", "d"}},
		{start: t0.Add(4 * time.Second), names: []string{"gone"}},
	}
	got := waveLatencies(traces, waves)
	want := []time.Duration{5 * time.Second, 7 * time.Second}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("waveLatencies = %v, want %v (waves with a volume not Attached left out)", got, want)
	}
}

func TestScaleWavesCoverEveryVolumeOnce(t *testing.T) {
	for _, c := range []struct{ n, batches int }{{20000, 40}, {200, 40}, {7, 3}, {5, 5}} {
		next := 0
		for b := range c.batches {
			from, to := waveBounds(c.n, c.batches, b)
			if from != next || to <= from {
				t.Fatalf("n=%d batches=%d: wave %d is [%d,%d), want it to start at %d and be non-empty", c.n, c.batches, b, from, to, next)
			}
			next = to
		}
		if next != c.n {
			t.Fatalf("n=%d batches=%d: waves end at %d", c.n, c.batches, next)
		}
	}
}

func TestScaleSimQPS(t *testing.T) {
	for _, c := range []struct {
		simQPS int
		qps    float64
		want   int
	}{
		{-1, 50, 50},   // default: the manager's own
		{-1, 10.4, 10}, // rounded
		{-1, 0.2, 1},   // at least 1
		{-1, 0, 0},     // an unlimited manager: off
		{0, 50, 0},     // asked off
		{25, 50, 25},   // asked
	} {
		if got := scaleSimQPS(options{simQPS: c.simQPS, qps: c.qps}); got != c.want {
			t.Errorf("--sim-qps %d --qps %g: %d, want %d", c.simQPS, c.qps, got, c.want)
		}
	}
}
