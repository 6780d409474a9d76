package cloudstack

import (
	"context"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// lane orders the calls waiting for an endpoint's budget: the calls that finish work go
// before the calls that start it, so that a flood of new volumes cannot hold back the
// attaches and mounts of the ones already on their way, nor their deletion.
type lane int

const (
	// laneRead: reads and polls (list*, queryAsyncJobResult). They find the jobs that
	// have ended, and each finished job lets a volume take its next step.
	laneRead lane = iota
	// laneInFlight: the next step of a volume already created (tag, attach, detach,
	// delete).
	laneInFlight
	// laneNew: calls that start new work (createVolume).
	laneNew
	lanes
)

// laneOf sorts a command into its lane.
func laneOf(command string) lane {
	switch {
	case command == "createVolume":
		return laneNew
	case strings.HasPrefix(command, "list"), command == "queryAsyncJobResult":
		return laneRead
	}
	return laneInFlight
}

// budget is a token bucket of qps tokens per second, holding at most burst, shared by the
// configs of one CloudStack endpoint. Unlike rate.Limiter, whose reservations are served
// in the order they were made, it hands each freed token to the oldest waiter of the
// first non-empty lane. It is safe for concurrent use.
type budget struct {
	qps   float64
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	tokens  float64
	last    time.Time
	waiting [lanes][]*waiter
	timer   *time.Timer
}

type waiter struct {
	ready   chan struct{} // closed when the waiter has its token
	granted bool
}

// newBudget returns a full bucket. qps <= 0 means no limit.
func newBudget(qps float64, burst int) *budget {
	b := &budget{qps: qps, burst: float64(max(burst, 1)), now: time.Now}
	b.tokens, b.last = b.burst, b.now()
	return b
}

// wait takes a token, waiting for one in its lane if none is free. It gives up at once with
// errRateLimitWait when ctx's deadline would pass before a token could come even if no
// other call arrived, and with ctx's error when ctx ends while it waits.
func (b *budget) wait(ctx context.Context, l lane) error {
	if b.qps <= 0 {
		return ctx.Err()
	}
	b.mu.Lock()
	now := b.now()
	b.refill(now)
	ahead := 0
	for i := lane(0); i <= l; i++ {
		ahead += len(b.waiting[i])
	}
	if ahead == 0 && b.tokens >= 1 {
		b.tokens--
		b.mu.Unlock()
		return nil
	}
	if deadline, ok := ctx.Deadline(); ok {
		earliest := now.Add(b.pausedFor(now) + b.timeFor(float64(ahead)+1-b.tokens))
		if earliest.After(deadline) {
			b.mu.Unlock()
			return errRateLimitWait
		}
	}
	w := &waiter{ready: make(chan struct{})}
	b.waiting[l] = append(b.waiting[l], w)
	b.dispatch(now)
	b.mu.Unlock()

	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		defer b.mu.Unlock()
		if w.granted {
			// The token came as the caller gave up: hand it on rather than lose it.
			b.tokens = math.Min(b.burst, b.tokens+1)
		} else {
			b.remove(l, w)
		}
		b.dispatch(b.now())
		return ctx.Err()
	}
}

// busy reports whether the calls that change something and wait for a token would take
// the budget longer than within to send: the budget, not CloudStack, is then the limit,
// and every read takes a token from a change. (A burst that the budget sends within a
// moment does not count.)
func (b *budget) busy(within time.Duration) bool {
	if b.qps <= 0 {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.timeFor(float64(len(b.waiting[laneInFlight])+len(b.waiting[laneNew]))) >= within
}

// refill adds the tokens earned since the last refill. b.mu is held. A paused budget has
// its last refill in the future (see pause): it earns nothing until then.
func (b *budget) refill(now time.Time) {
	if now.After(b.last) {
		b.tokens = math.Min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.qps)
		b.last = now
	}
}

// pausedFor is how long from now the budget earns nothing. b.mu is held.
func (b *budget) pausedFor(now time.Time) time.Duration {
	return max(0, b.last.Sub(now))
}

// maxPause bounds a pause, should CloudStack's answer name an absurd wait.
const maxPause = time.Minute

// pause empties the bucket and earns nothing for d: CloudStack's API throttling refused a
// call and said how long its window still runs, and until then every call of the account
// would be refused too (and count against it). Calls already holding a token are not
// recalled. A budget without a limit (qps <= 0) is not paused.
func (b *budget) pause(d time.Duration) {
	if b.qps <= 0 {
		return
	}
	d = min(max(d, 0), maxPause)
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	b.refill(now)
	b.tokens = 0
	if until := now.Add(d); until.After(b.last) {
		b.last = until
	}
	if b.queued() {
		b.dispatch(now)
	}
}

// timeFor is how long n more tokens take to come.
func (b *budget) timeFor(n float64) time.Duration {
	if n <= 0 {
		return 0
	}
	return time.Duration(n / b.qps * float64(time.Second))
}

// dispatch hands the free tokens to waiters, first lane first, and sets the timer for the
// next token while anyone still waits. b.mu is held.
func (b *budget) dispatch(now time.Time) {
	b.refill(now)
	for b.tokens >= 1 {
		w := b.next()
		if w == nil {
			return
		}
		b.tokens--
		w.granted = true
		close(w.ready)
	}
	if b.queued() {
		d := b.pausedFor(now) + b.timeFor(1-b.tokens)
		if b.timer == nil {
			b.timer = time.AfterFunc(d, b.tick)
		} else {
			b.timer.Reset(d)
		}
	}
}

func (b *budget) tick() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.dispatch(b.now())
}

// next pops the oldest waiter of the first non-empty lane. b.mu is held.
func (b *budget) next() *waiter {
	for i := range b.waiting {
		if q := b.waiting[i]; len(q) > 0 {
			b.waiting[i] = q[1:]
			return q[0]
		}
	}
	return nil
}

func (b *budget) queued() bool {
	for _, q := range b.waiting {
		if len(q) > 0 {
			return true
		}
	}
	return false
}

func (b *budget) remove(l lane, w *waiter) {
	q := b.waiting[l]
	for i := range q {
		if q[i] == w {
			b.waiting[l] = append(q[:i:i], q[i+1:]...)
			return
		}
	}
}

// heldToken is a token taken before the request it pays for was built (see
// batcher.reserve); the transport spends it instead of waiting, once.
type heldToken struct{ spent atomic.Bool }

type heldTokenKey struct{}

func withHeldToken(ctx context.Context) context.Context {
	return context.WithValue(ctx, heldTokenKey{}, &heldToken{})
}

// spendHeldToken reports whether ctx carried an unspent token, and spends it.
func spendHeldToken(ctx context.Context) bool {
	t, ok := ctx.Value(heldTokenKey{}).(*heldToken)
	return ok && t.spent.CompareAndSwap(false, true)
}
