package controllers

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudsim"
)

// readerFunc is a client.Reader whose Get is f (List is not used by the guards).
type readerFunc func(ctx context.Context, key client.ObjectKey, obj client.Object) error

func (f readerFunc) Get(ctx context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	return f(ctx, key, obj)
}

func (f readerFunc) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return errors.New("not used")
}

// The create's send guard takes the answer to the intent's write, when it is fresh, for
// the read it would otherwise make; an older answer, or a deletion this process has seen,
// is not taken on trust.
func TestCreateGuardTakesAFreshAnswer(t *testing.T) {
	mv := &osseav1.MigrationVolume{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "disk0", UID: types.UID("uid-1")}}
	for _, tc := range []struct {
		name      string
		answered  time.Duration // before the send
		seenGoing bool          // this process saw the object being deleted
		apiServer string        // what a read finds: "there" or "deleting"
		wantReads int
		wantErr   error
	}{
		{name: "a fresh answer: sent without a read", answered: 10 * time.Millisecond, apiServer: "deleting", wantReads: 0},
		{name: "an old answer: read, still there", answered: time.Second, apiServer: "there", wantReads: 1},
		{name: "an old answer: read, being deleted", answered: time.Second, apiServer: "deleting", wantReads: 1, wantErr: errBeingDeleted},
		{name: "a deletion seen: refused without a read", answered: 0, seenGoing: true, apiServer: "there", wantReads: 0, wantErr: errBeingDeleted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reads := 0
			r := &MigrationVolumeReconciler{mem: newVolumeMemory(), APIReader: readerFunc(func(_ context.Context, _ client.ObjectKey, obj client.Object) error {
				reads++
				obj.SetUID(mv.UID)
				if tc.apiServer == "deleting" {
					now := metav1.Now()
					obj.SetDeletionTimestamp(&now)
				}
				return nil
			})}
			if tc.seenGoing {
				r.mem.sawDeleting(mv.UID)
			}
			err := r.notDeletingSince(mv, time.Now().Add(-tc.answered))(context.Background())
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Errorf("guard: %v, want %v", err, tc.wantErr)
			}
			if reads != tc.wantReads {
				t.Errorf("%d reads of the API server, want %d", reads, tc.wantReads)
			}
		})
	}
}

// getCounter counts the GETs of single MigrationVolumes (the reads past the cache) a
// manager makes.
type getCounter struct {
	mu   sync.Mutex
	gets map[string]int // by object name
	next http.RoundTripper
}

func (c *getCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet && req.URL.Query().Get("watch") == "" {
		if _, name, ok := strings.Cut(req.URL.Path, "/migrationvolumes/"); ok && !strings.Contains(name, "/") {
			c.mu.Lock()
			c.gets[name]++
			c.mu.Unlock()
		}
	}
	return c.next.RoundTrip(req)
}

func (c *getCounter) count(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gets[name]
}

// From apply to Attached a volume is read past the cache only where it must be: the
// attach's send guard, and the agent's part before the attach is reported. The create is
// guarded by the answer to its intent's write, and the tag that follows it needs no guard
// (a teardown would tag the volume first as well): two reads, not four.
func TestVolumeStartsReadOnlyWhatTheyMust(t *testing.T) {
	s := startVolumeSim(t, cloudsim.Options{JobLatency: 200 * time.Millisecond})
	ns := newNamespace(t)
	counter := &getCounter{gets: map[string]int{}}
	cfg := rest.CopyConfig(env.Config)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { counter.next = rt; return counter })
	mgr := startManagerWith(t, cfg, ctrl.Options{Cache: cache.Options{DefaultNamespaces: map[string]cache.Config{ns: {}}}})
	e := volumeEnvIn(t, ns, mgr, s, nil)

	mv := e.newVolume("disk0", nil)
	create(t, mv)
	waitVolume(t, mv, 30*time.Second,
		conditionIs(osseav1.ConditionAttached, metav1.ConditionTrue, osseav1.ReasonAttached))
	if got := counter.count(mv.Name); got != 2 {
		t.Errorf("%d reads of %s past the cache from apply to Attached, want 2 (the attach's guard, the agent's part)", got, mv.Name)
	}
	if calls := s.Snapshot().Calls; calls["createVolume"] != 1 || calls["createTags"] != 1 || calls["attachVolume"] != 1 {
		t.Errorf("calls %v, want one create, one tag, one attach", calls)
	}
}
