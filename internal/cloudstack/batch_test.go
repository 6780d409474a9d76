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
