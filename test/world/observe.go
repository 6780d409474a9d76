package world

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/testenv"
)

// Trace is what a watch saw of one MigrationVolume, each time the first moment the watch
// delivered it (zero when never).
type Trace struct {
	Name     string
	UID      string
	Config   string
	VolumeID string
	Seen     time.Time
	Attached time.Time
	Mounted  time.Time
	Ready    time.Time
	Deleting time.Time
	Gone     time.Time
	// MountFinalizer holds the intervals during which the object carried the agent's
	// finalizer; an open interval has a zero To.
	MountFinalizer []Interval
	// Updates counts update events (each is a new resourceVersion).
	Updates int
	// Finalizers are the object's last seen finalizers.
	Finalizers []string
}

// Interval is a span of time; a zero To means "still".
type Interval struct{ From, To time.Time }

// Contains reports whether t is in [From, To), To zero meaning forever.
func (i Interval) Contains(t time.Time) bool {
	return !t.Before(i.From) && (i.To.IsZero() || t.Before(i.To))
}

// Recorder watches the MigrationVolumes of a namespace and keeps a Trace of each.
type Recorder struct {
	mu     sync.Mutex
	traces map[string]*Trace // by name
	cancel context.CancelFunc
}

// Watch starts recording the MigrationVolumes of ns; it returns once the watch is synced.
func Watch(ctx context.Context, cfg *rest.Config, ns string) (*Recorder, error) {
	ctx, cancel := context.WithCancel(ctx)
	c, err := cache.New(cfg, cache.Options{Scheme: testenv.NewScheme(), DefaultNamespaces: map[string]cache.Config{ns: {}}})
	if err != nil {
		cancel()
		return nil, err
	}
	inf, err := c.GetInformer(ctx, &osseav1.MigrationVolume{})
	if err != nil {
		cancel()
		return nil, err
	}
	r := &Recorder{traces: map[string]*Trace{}, cancel: cancel}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { r.observe(obj, false, false) },
		UpdateFunc: func(_, obj any) { r.observe(obj, true, false) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			r.observe(obj, false, true)
		},
	}); err != nil {
		cancel()
		return nil, err
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		cancel()
		return nil, fmt.Errorf("the watch of %s did not sync", ns)
	}
	return r, nil
}

// Stop ends the watch.
func (r *Recorder) Stop() { r.cancel() }

func (r *Recorder) observe(obj any, update, deleted bool) {
	mv, ok := obj.(*osseav1.MigrationVolume)
	if !ok {
		return
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.traces[mv.Name]
	if t == nil || (t.UID != string(mv.UID) && !deleted) {
		t = &Trace{Name: mv.Name, UID: string(mv.UID), Config: mv.Spec.OsseaConfigRef.Name, Seen: now}
		r.traces[mv.Name] = t
	}
	if update {
		t.Updates++
	}
	if mv.Status.VolumeID != "" {
		t.VolumeID = mv.Status.VolumeID
	}
	first := func(at *time.Time, cond bool) {
		if cond && at.IsZero() {
			*at = now
		}
	}
	conds := mv.Status.Conditions
	first(&t.Attached, IsTrue(conds, osseav1.ConditionAttached))
	first(&t.Mounted, IsTrue(conds, osseav1.ConditionMounted))
	first(&t.Ready, IsTrue(conds, osseav1.ConditionReady) && mv.Status.ObservedGeneration == mv.Generation)
	first(&t.Deleting, !mv.DeletionTimestamp.IsZero())
	first(&t.Gone, deleted)
	t.Finalizers = append([]string(nil), mv.Finalizers...)

	held := controllerutil.ContainsFinalizer(mv, osseav1.MountFinalizer) && !deleted
	open := len(t.MountFinalizer) > 0 && t.MountFinalizer[len(t.MountFinalizer)-1].To.IsZero()
	switch {
	case held && !open:
		t.MountFinalizer = append(t.MountFinalizer, Interval{From: now})
	case !held && open:
		t.MountFinalizer[len(t.MountFinalizer)-1].To = now
	}
}

// Traces returns a copy of every trace, by object name.
func (r *Recorder) Traces() map[string]Trace {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]Trace, len(r.traces))
	for k, t := range r.traces {
		c := *t
		c.MountFinalizer = append([]Interval(nil), t.MountFinalizer...)
		c.Finalizers = append([]string(nil), t.Finalizers...)
		out[k] = c
	}
	return out
}

// Count returns how many traces satisfy pred.
func (r *Recorder) Count(pred func(*Trace) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, t := range r.traces {
		if pred(t) {
			n++
		}
	}
	return n
}

// Updates is the total number of update events seen so far.
func (r *Recorder) Updates() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, t := range r.traces {
		n += t.Updates
	}
	return n
}

// LinkWatcher records when each by-id link first appears in a set of directories.
type LinkWatcher struct {
	mu      sync.Mutex
	created map[string]time.Time // by link name
	fw      *fsnotify.Watcher
}

// WatchLinks starts watching the directories.
func WatchLinks(dirs ...string) (*LinkWatcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	for _, d := range dirs {
		if err := fw.Add(d); err != nil {
			fw.Close()
			return nil, err
		}
	}
	l := &LinkWatcher{created: map[string]time.Time{}, fw: fw}
	go func() {
		for ev := range fw.Events {
			if ev.Has(fsnotify.Create) {
				now := time.Now()
				l.mu.Lock()
				if _, ok := l.created[filepath.Base(ev.Name)]; !ok {
					l.created[filepath.Base(ev.Name)] = now
				}
				l.mu.Unlock()
			}
		}
	}()
	go func() {
		for range fw.Errors {
		}
	}()
	return l, nil
}

// Created is when the link first appeared.
func (l *LinkWatcher) Created(name string) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.created[name]
	return t, ok
}

// Close stops watching.
func (l *LinkWatcher) Close() { l.fw.Close() }

// APIServerWrites reads kube-apiserver's apiserver_request_total and sums the write
// requests (POST, PUT, PATCH, APPLY, DELETE, DELETECOLLECTION) by "VERB resource[/sub]".
func APIServerWrites(ctx context.Context, cfg *rest.Config) (map[string]float64, error) {
	return APIServerRequests(ctx, cfg, func(labels map[string]string) string {
		switch labels["verb"] {
		case "POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION":
			return requestKey(labels)
		}
		return ""
	})
}

// APIServerRefused reads kube-apiserver's apiserver_request_total and sums the requests
// refused with 409 Conflict (a stale resourceVersion, mostly) by "VERB resource[/sub]".
func APIServerRefused(ctx context.Context, cfg *rest.Config) (map[string]float64, error) {
	return APIServerRequests(ctx, cfg, func(labels map[string]string) string {
		if labels["code"] == "409" {
			return requestKey(labels)
		}
		return ""
	})
}

func requestKey(labels map[string]string) string {
	key := labels["verb"] + " " + labels["resource"]
	if labels["subresource"] != "" {
		key += "/" + labels["subresource"]
	}
	return key
}

// APIServerRequests reads kube-apiserver's apiserver_request_total and sums the series by
// the key keyOf gives their labels; a series keyed "" is left out.
func APIServerRequests(ctx context.Context, cfg *rest.Config, keyOf func(labels map[string]string) string) (map[string]float64, error) {
	return APIServerMetric(ctx, cfg, "apiserver_request_total", keyOf)
}

// APIServerStorage reads what kube-apiserver reports of its storage: the objects it keeps,
// by "resource[.group]" (apiserver_resource_objects, or on older API servers the
// deprecated apiserver_storage_objects, whose resource label holds the group), and the
// size of etcd's database in bytes (apiserver_storage_size_bytes, summed over its series:
// one per etcd cluster). The API server polls etcd for both (by default every minute and
// every 30 s), so they lag by up to that much.
func APIServerStorage(ctx context.Context, cfg *rest.Config) (objects map[string]float64, dbBytes float64, err error) {
	resource := func(l map[string]string) string {
		if l["group"] != "" {
			return l["resource"] + "." + l["group"]
		}
		return l["resource"]
	}
	for _, metric := range []string{"apiserver_resource_objects", "apiserver_storage_objects"} {
		if objects, err = APIServerMetric(ctx, cfg, metric, resource); err != nil || len(objects) > 0 {
			break
		}
	}
	if err != nil {
		return nil, 0, err
	}
	sizes, err := APIServerMetric(ctx, cfg, "apiserver_storage_size_bytes", func(map[string]string) string { return "db" })
	if err != nil {
		return nil, 0, err
	}
	return objects, sizes["db"], nil
}

// APIServerMetric reads one labelled metric of kube-apiserver's /metrics and sums its
// series by the key keyOf gives their labels; a series keyed "" is left out.
func APIServerMetric(ctx context.Context, cfg *rest.Config, metric string, keyOf func(labels map[string]string) string) (map[string]float64, error) {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(cfg.Host, "/")+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("GET /metrics: %s: %s", resp.Status, b)
	}
	sums := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, metric+"{") {
			continue
		}
		end := strings.LastIndexByte(line, '}')
		v, err := strconv.ParseFloat(strings.TrimSpace(line[end+1:]), 64)
		if err != nil {
			continue
		}
		if key := keyOf(parseLabels(line[len(metric)+1 : end])); key != "" {
			sums[key] += v
		}
	}
	return sums, sc.Err()
}

// parseLabels reads a Prometheus label set: name="value",... (values here hold no quotes).
func parseLabels(s string) map[string]string {
	out := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		if ok {
			out[k] = strings.Trim(v, `"`)
		}
	}
	return out
}

// Sub returns after minus before, key by key, dropping zeros.
func Sub(after, before map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// ScrapeSums reads a Prometheus text endpoint and returns the _sum and _count series of the
// named histograms, summed over their labels.
func ScrapeSums(url string, histograms ...string) (map[string]float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	want := map[string]bool{}
	for _, h := range histograms {
		want[h+"_sum"], want[h+"_count"] = true, true
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, rest, ok := strings.Cut(line, " ")
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
			rest = line[strings.LastIndexByte(line, '}')+1:]
		}
		if !ok || !want[name] {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64); err == nil {
			out[name] += v
		}
	}
	return out, sc.Err()
}
