package nodeagent

import (
	"context"
	"maps"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

// The agent's writes to the API server, counted: every write of a MigrationVolume's
// lifecycle costs the API server and etcd, and the agent's share of them is fixed by what
// it has to say (see TestOneLifecycleWritesEachThingOnce in agent_test.go).

// writeCounter counts writes by what they write: "status" (the status subresource) and
// "object" (the object itself: the agent's finalizer).
type writeCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *writeCounter) add(what string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[what]++
}

// take returns the counts so far and starts again from zero.
func (c *writeCounter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := maps.Clone(c.n)
	if n == nil {
		n = map[string]int{}
	}
	c.n = nil
	return n
}

// countingClient counts every write made through it, then makes it.
type countingClient struct {
	client.Client
	c *writeCounter
}

func (c countingClient) Apply(ctx context.Context, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
	c.c.add("object")
	return c.Client.Apply(ctx, obj, opts...)
}

func (c countingClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	c.c.add("object")
	return c.Client.Patch(ctx, obj, patch, opts...)
}

func (c countingClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	c.c.add("object")
	return c.Client.Update(ctx, obj, opts...)
}

func (c countingClient) Status() client.SubResourceWriter {
	return countingStatus{SubResourceWriter: c.Client.Status(), c: c.c}
}

type countingStatus struct {
	client.SubResourceWriter
	c *writeCounter
}

func (s countingStatus) Apply(ctx context.Context, obj runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
	s.c.add("status")
	return s.SubResourceWriter.Apply(ctx, obj, opts...)
}

func (s countingStatus) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	s.c.add("status")
	return s.SubResourceWriter.Patch(ctx, obj, patch, opts...)
}

func (s countingStatus) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	s.c.add("status")
	return s.SubResourceWriter.Update(ctx, obj, opts...)
}

// countWrites makes the agent count its writes in c.
func countWrites(c *writeCounter) agentOption {
	return func(r *Reconciler) { r.Client = countingClient{Client: r.Client, c: c} }
}

// laggingCache reads straight from the API server, except that while stale is set, a
// read of that object returns stale: a cache that has not caught up.
type laggingCache struct {
	client.Client
	mu    sync.Mutex
	stale *osseav1.MigrationVolume
}

func (l *laggingCache) serve(stale *osseav1.MigrationVolume) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stale = stale
}

func (l *laggingCache) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	l.mu.Lock()
	stale := l.stale
	l.mu.Unlock()
	if mv, ok := obj.(*osseav1.MigrationVolume); ok && stale != nil && client.ObjectKeyFromObject(stale) == key {
		stale.DeepCopyInto(mv)
		return nil
	}
	return l.Client.Get(ctx, key, obj, opts...)
}

// directReconciler is a Reconciler of the world's VM that a test calls itself, one
// reconcile at a time, with no manager and no watch: its "cache" is cache, and what it
// writes is counted in writes.
func (w *world) directReconciler() (r *Reconciler, cache *laggingCache, writes *writeCounter) {
	w.t.Helper()
	root, err := filepath.EvalSymlinks(w.mountRoot)
	if err != nil {
		w.t.Fatal(err)
	}
	cache = &laggingCache{Client: k8s}
	writes = &writeCounter{}
	r = &Reconciler{
		Client: countingClient{Client: cache, c: writes}, APIReader: k8s, Recorder: events.NewFakeRecorder(100),
		VMID: w.vmID, NodeName: w.nodeName, ByIDDir: w.byIDDir, MountRoot: root,
	}
	r.defaults()
	r.host = newLinuxHost(w.byIDDir, root, r.FormatTimeout)
	return r, cache, writes
}

// A reconcile that gets a cached copy older than the agent's own last write of the object
// writes nothing: a reconcile queued while the agent wrote runs right after, before the
// watch has brought the write into the cache, and would write the same again. In the
// full-path bench it did for 7 of 10 claims (the finalizer applied twice) and 6 of 10
// releases (removed twice), and now and then for a Mounted report. Here the stale copy is
// served on purpose, after the claim and after the release, as it was before each (one
// write each: the claim label with the finalizer, and both removed). (No disk: the volume
// is claimed while its attach runs, and released without having been mounted; the wait
// for the disk is not reported within the grace after the claim.)
func TestStaleCachedCopyWritesNothing(t *testing.T) {
	w := newAPIWorld(t)
	r, cache, writes := w.directReconciler()
	mv := w.newVolume("stale", "job-s", "disk-0", 1)
	// The manager's finalizer keeps the deleted object for the release's stale reconcile.
	base := mv.DeepCopy()
	mv.Finalizers = append(mv.Finalizers, osseav1.VolumeFinalizer)
	if err := k8s.Patch(testCtx, mv, client.MergeFrom(base)); err != nil {
		t.Fatal(err)
	}
	w.attaching(mv, uuid.NewString())
	key := client.ObjectKeyFromObject(mv)

	reconcile := func(step string, stale *osseav1.MigrationVolume, want map[string]int) {
		t.Helper()
		cache.serve(stale)
		if _, err := r.Reconcile(testCtx, ctrl.Request{NamespacedName: key}); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if got := writes.take(); !maps.Equal(got, want) {
			t.Errorf("%s: the agent wrote %v; want %v", step, got, want)
		}
	}
	none := map[string]int{}

	beforeClaim := w.get(mv)
	reconcile("the claim", nil, map[string]int{"object": 1})
	reconcile("a stale copy from before the claim", beforeClaim, none)
	reconcile("the claim, as stored", nil, none)
	if got := w.get(mv); got.Labels[osseav1.NodeLabel] != w.nodeName || !holds(got, w.vmID, w.nodeName) {
		t.Fatalf("not claimed: labels %v, finalizers %v", got.Labels, got.Finalizers)
	}

	if err := k8s.Delete(testCtx, mv); err != nil {
		t.Fatal(err)
	}
	beforeRelease := w.get(mv)
	reconcile("the release", nil, map[string]int{"object": 1})
	reconcile("a stale copy from before the release", beforeRelease, none)
	reconcile("the release, as stored", nil, none)
	if got := w.get(mv); holds(got, w.vmID, w.nodeName) || got.Labels[osseav1.NodeLabel] != "" {
		t.Fatalf("still held after the release: finalizers %v, labels %v", got.Finalizers, got.Labels)
	}

	// The object goes; the agent forgets it.
	got := w.get(mv)
	base = got.DeepCopy()
	got.Finalizers = nil
	if err := k8s.Patch(testCtx, got, client.MergeFrom(base)); err != nil {
		t.Fatal(err)
	}
	w.waitGone(mv, 10*time.Second)
	reconcile("gone", nil, none)
	if _, ok := r.ownWrites.Last(key); ok {
		t.Error("the agent still remembers its writes of an object that is gone")
	}

	// When the agent's finalizer is the last, its removal deletes the object, and the API
	// server answers with the object at the version before it (the deletion's): a copy at
	// that version is of an object that is gone.
	last := w.newVolume("last", "job-s", "disk-1", 1)
	w.attaching(last, uuid.NewString())
	key = client.ObjectKeyFromObject(last)
	reconcile("the claim of the last", nil, map[string]int{"object": 1})
	if err := k8s.Delete(testCtx, last); err != nil {
		t.Fatal(err)
	}
	beforeRelease = w.get(last)
	reconcile("the release that deletes it", nil, map[string]int{"object": 1})
	w.waitGone(last, 10*time.Second)
	reconcile("a stale copy from before that release", beforeRelease, none)
	unmounted := beforeRelease.DeepCopy()
	written, _ := r.ownWrites.Last(key)
	unmounted.ResourceVersion = written.ResourceVersion
	reconcile("a stale copy at the version the release answered with", unmounted, none)
	reconcile("gone", nil, none)
}
