package cloudstack

import (
	"context"
	"errors"
	"sync"
	"time"
)

// maxBatch bounds the keys of one batched call: 100 volume ids keep the request line well
// under any proxy's limit and the reply within one page.
const maxBatch = 100

// gather is how long an idle batcher waits for company before it calls: lookups that
// callers make at about the same moment (polls aligned to a common beat) then share the
// first call rather than only the second.
const gather = 30 * time.Millisecond

// busyGather is the least time between two calls of a batcher while the rate limit holds
// back calls that change something for longer than that (see budget.busy): a read then
// takes a token from a create, tag, attach or detach, so each read should answer as many
// lookups as it can. When the budget is not the limit, a read goes as soon as the one
// before it ends.
const busyGather = 500 * time.Millisecond

// batcher coalesces lookups of one client into few calls. At most one call is in flight;
// whatever is asked meanwhile waits for the next call, which starts the moment the current
// one ends. An idle client therefore answers a lone lookup almost at once (after gather)
// with a call of its own, and a busy one, whose calls queue behind the rate limit, answers
// many lookups with one call: the batcher takes its rate-limit token first and only then
// picks the keys, so lookups asked while it waited for the budget ride along. Every answer
// comes from a call that started after the lookup was asked for, so a batched read is
// exactly as fresh as a direct one.
type batcher[V any] struct {
	// call looks up keys (at most maxBatch) and returns what it found by key; a key it did
	// not find is simply absent.
	call func(ctx context.Context, keys []string) (map[string]V, error)
	// single looks up one key, for when a batch failed in a way one bad key can cause.
	single func(ctx context.Context, key string) (V, bool, error)
	// reserve, if set, takes a rate-limit token before the keys are picked and returns the
	// context that carries it to the call.
	reserve func(ctx context.Context) (context.Context, error)
	// busy, if set, says whether the rate limit is holding back changes (busyGather).
	busy func() bool

	last time.Time // when the last call began; only run touches it

	mu      sync.Mutex
	waiting map[string][]chan batchAnswer[V]
	order   []string // keys in the order they were first asked for
	running bool
}

type batchAnswer[V any] struct {
	v     V
	found bool
	err   error
}

// get waits for the next call that covers key.
func (b *batcher[V]) get(ctx context.Context, key string) (V, bool, error) {
	ch := make(chan batchAnswer[V], 1)
	b.mu.Lock()
	if b.waiting == nil {
		b.waiting = map[string][]chan batchAnswer[V]{}
	}
	if len(b.waiting[key]) == 0 {
		b.order = append(b.order, key)
	}
	b.waiting[key] = append(b.waiting[key], ch)
	if !b.running {
		b.running = true
		go b.run()
	}
	b.mu.Unlock()
	select {
	case a := <-ch:
		return a.v, a.found, a.err
	case <-ctx.Done():
		var zero V
		return zero, false, ctx.Err()
	}
}

// getAll waits for the next calls that cover keys, and returns the answers by key.
func (b *batcher[V]) getAll(ctx context.Context, keys []string) map[string]batchAnswer[V] {
	type keyed struct {
		key string
		a   batchAnswer[V]
	}
	ch := make(chan keyed, len(keys))
	for _, k := range keys {
		go func() {
			v, found, err := b.get(ctx, k)
			ch <- keyed{k, batchAnswer[V]{v: v, found: found, err: err}}
		}()
	}
	out := make(map[string]batchAnswer[V], len(keys))
	for range keys {
		r := <-ch
		out[r.key] = r.a
	}
	return out
}

// run makes calls until nobody waits. Its calls belong to no single caller, so they run
// without a caller's deadline; the transport's request timeout bounds each.
func (b *batcher[V]) run() {
	time.Sleep(gather)
	for {
		b.mu.Lock()
		if len(b.order) == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		if b.busy != nil && b.busy() {
			time.Sleep(busyGather - time.Since(b.last)) // (no-op when negative)
		}
		// Only run takes keys out of order, so there is still work after the waits.
		ctx := context.Background()
		if b.reserve != nil {
			// Without a deadline the wait only ends with a token; should it fail anyway,
			// the call waits in the transport as any other.
			if held, err := b.reserve(ctx); err == nil {
				ctx = held
			}
		}
		b.mu.Lock()
		n := min(len(b.order), maxBatch)
		keys := b.order[:n:n]
		b.order = b.order[n:]
		chans := make(map[string][]chan batchAnswer[V], n)
		for _, k := range keys {
			chans[k] = b.waiting[k]
			delete(b.waiting, k)
		}
		b.mu.Unlock()

		b.last = time.Now()
		batchSize.Observe(float64(len(keys)))
		found, err := b.call(ctx, keys)
		if err != nil && len(keys) > 1 && errors.Is(err, ErrInvalidParameter) {
			// One key CloudStack does not accept fails the whole list; ask one by one so
			// that it fails alone.
			for _, k := range keys {
				v, ok, err := b.single(ctx, k)
				deliver(chans[k], batchAnswer[V]{v: v, found: ok, err: err})
			}
			continue
		}
		for _, k := range keys {
			v, ok := found[k]
			deliver(chans[k], batchAnswer[V]{v: v, found: ok, err: err})
		}
	}
}

func deliver[V any](chans []chan batchAnswer[V], a batchAnswer[V]) {
	for _, ch := range chans {
		ch <- a // buffered: a waiter that gave up does not block the batch
	}
}
