package cloudstack

import (
	"context"
	"sync"
	"testing"
	"time"
)

// Lookups asked while the batcher waits for its rate-limit token share the call it makes
// once the token comes.
func TestBatcherPicksKeysAfterItsToken(t *testing.T) {
	token := make(chan struct{})
	var mu sync.Mutex
	var calls [][]string
	b := &batcher[string]{
		call: func(ctx context.Context, keys []string) (map[string]string, error) {
			if !spendHeldToken(ctx) {
				t.Error("the call came without the token the batcher took for it")
			}
			mu.Lock()
			calls = append(calls, keys)
			mu.Unlock()
			out := map[string]string{}
			for _, k := range keys {
				out[k] = "v-" + k
			}
			return out, nil
		},
		single: func(context.Context, string) (string, bool, error) { return "", false, nil },
		reserve: func(ctx context.Context) (context.Context, error) {
			<-token
			return withHeldToken(ctx), nil
		},
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	lookup := func(key string) {
		defer wg.Done()
		if v, ok, err := b.get(ctx, key); err != nil || !ok || v != "v-"+key {
			t.Errorf("get(%s) = %q, %v, %v", key, v, ok, err)
		}
	}
	wg.Add(1)
	go lookup("a")
	time.Sleep(2 * gather) // the batcher is now waiting for its token
	for _, k := range []string{"b", "c"} {
		wg.Add(1)
		go lookup(k)
	}
	time.Sleep(gather)
	close(token)
	wg.Wait()
	if len(calls) != 1 || len(calls[0]) != 3 {
		t.Fatalf("calls %v, want one call for a, b and c", calls)
	}
}

// While the rate limit holds back changes, the batcher's calls come at least busyGather
// apart, so that lookups asked meanwhile share them; otherwise one follows the other.
func TestBatcherSpacesCallsWhileTheBudgetIsBusy(t *testing.T) {
	for _, busy := range []bool{true, false} {
		var mu sync.Mutex
		var starts []time.Time
		b := &batcher[string]{
			call: func(_ context.Context, keys []string) (map[string]string, error) {
				mu.Lock()
				starts = append(starts, time.Now())
				mu.Unlock()
				return map[string]string{}, nil
			},
			single: func(context.Context, string) (string, bool, error) { return "", false, nil },
			busy:   func() bool { return busy },
		}
		ctx := context.Background()
		if _, _, err := b.get(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := b.get(ctx, "b"); err != nil {
			t.Fatal(err)
		}
		gap := starts[1].Sub(starts[0])
		if busy && gap < busyGather {
			t.Errorf("busy budget: calls %v apart, want at least %v", gap, busyGather)
		}
		if !busy && gap >= busyGather {
			t.Errorf("idle budget: calls %v apart, want less than %v", gap, busyGather)
		}
	}
}
