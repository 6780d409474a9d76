package cloudstack

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func (b *budget) queuedIn(l lane) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.waiting[l])
}

// waitQueued blocks until lane l holds n waiters.
func waitQueued(t *testing.T, b *budget, l lane, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for b.queuedIn(l) != n {
		if time.Now().After(deadline) {
			t.Fatalf("lane %d holds %d waiters, want %d", l, b.queuedIn(l), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestBudgetSpacesCalls(t *testing.T) {
	b := newBudget(20, 2)
	ctx := context.Background()
	start := time.Now()
	for range 12 {
		if err := b.wait(ctx, laneInFlight); err != nil {
			t.Fatal(err)
		}
	}
	// 2 from the burst, then 10 at 50ms each: never faster than that.
	if took := time.Since(start); took < 450*time.Millisecond {
		t.Fatalf("12 calls at 20 QPS, burst 2, took %v, want at least 500ms", took)
	}
}

// Reads overtake the next steps of volumes in flight, and those overtake new volumes,
// however long the later lanes have waited.
func TestBudgetServesLanesInOrder(t *testing.T) {
	b := newBudget(5, 1)
	ctx := context.Background()
	if err := b.wait(ctx, laneNew); err != nil { // empties the bucket
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	call := func(name string, l lane) {
		defer wg.Done()
		if err := b.wait(ctx, l); err != nil {
			t.Error(err)
		}
		mu.Lock()
		order = append(order, name)
		mu.Unlock()
	}
	for i, name := range []string{"new1", "new2", "new3"} {
		wg.Add(1)
		go call(name, laneNew)
		waitQueued(t, b, laneNew, i+1)
	}
	wg.Add(1)
	go call("attach", laneInFlight)
	waitQueued(t, b, laneInFlight, 1)
	wg.Add(1)
	go call("poll", laneRead)
	wg.Wait()
	want := []string{"poll", "attach", "new1", "new2", "new3"}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("served in order %v, want %v", order, want)
		}
	}
}

func TestBudgetDeadlineAndCancel(t *testing.T) {
	b := newBudget(1, 1)
	if err := b.wait(context.Background(), laneInFlight); err != nil {
		t.Fatal(err)
	}
	// The next token is a second away: a 100ms deadline cannot be met, so the call is
	// refused at once rather than held until its deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := b.wait(ctx, laneInFlight); !errors.Is(err, errRateLimitWait) {
		t.Fatalf("got %v, want errRateLimitWait", err)
	}
	if n := b.queuedIn(laneInFlight); n != 0 {
		t.Fatalf("a refused call stayed queued (%d)", n)
	}

	// A waiter whose caller gives up leaves the queue.
	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- b.wait(ctx, laneNew) }()
	waitQueued(t, b, laneNew, 1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if n := b.queuedIn(laneNew); n != 0 {
		t.Fatalf("a cancelled call stayed queued (%d)", n)
	}
}

func TestBudgetOff(t *testing.T) {
	b := newBudget(0, 1)
	for range 1000 {
		if err := b.wait(context.Background(), laneNew); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLaneOf(t *testing.T) {
	for cmd, want := range map[string]lane{
		"createVolume": laneNew, "listVolumes": laneRead, "attachVolume": laneInFlight, "createTags": laneInFlight,
		"queryAsyncJobResult": laneRead, "deleteVolume": laneInFlight, "detachVolume": laneInFlight,
	} {
		if got := laneOf(cmd); got != want {
			t.Errorf("laneOf(%s) = %d, want %d", cmd, got, want)
		}
	}
}

// busy counts only changes the budget cannot send within the given time: a burst it
// clears in a moment is not the budget being the limit.
func TestBudgetBusy(t *testing.T) {
	b := newBudget(10, 1)
	b.tokens = 0
	for range 4 {
		b.waiting[laneNew] = append(b.waiting[laneNew], &waiter{ready: make(chan struct{})})
	}
	b.waiting[laneRead] = append(b.waiting[laneRead], &waiter{ready: make(chan struct{})})
	if !b.busy(300 * time.Millisecond) {
		t.Error("4 changes waiting at 10 QPS (0.4 s of budget) are not busy for 300 ms")
	}
	if b.busy(500 * time.Millisecond) {
		t.Error("4 changes waiting at 10 QPS (0.4 s of budget) are busy for 500 ms")
	}
	if newBudget(0, 1).busy(0) {
		t.Error("an unlimited budget is busy")
	}
}

// After CloudStack's throttling refused a call, no token is handed out until the pause
// is over, and a caller whose deadline falls within it gives up at once.
func TestBudgetPause(t *testing.T) {
	b := newBudget(1000, 100)
	ctx := context.Background()
	b.pause(150 * time.Millisecond)
	start := time.Now()
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := b.wait(short, laneRead); !errors.Is(err, errRateLimitWait) {
		t.Fatalf("a deadline within the pause: %v, want errRateLimitWait at once", err)
	}
	for range 3 {
		if err := b.wait(ctx, laneRead); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Fatalf("calls went out %v into a 150ms pause", took)
	}
	// The bucket was emptied: it earns again from the end of the pause, not at once full.
	b.mu.Lock()
	tokens := b.tokens
	b.mu.Unlock()
	if tokens > 50 {
		t.Fatalf("%v tokens right after the pause, want the burst spent", tokens)
	}

	unlimited := newBudget(0, 1)
	unlimited.pause(time.Hour)
	if err := unlimited.wait(ctx, laneNew); err != nil {
		t.Fatalf("an unlimited budget is not paused: %v", err)
	}
}
