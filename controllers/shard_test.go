package controllers

import (
	"fmt"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudsim"
	"github.com/migratekit/ossea-operator/internal/testkit"
)

// Sharding: managers started with --watch-filter=<value> each reconcile only the objects
// labelled ossea.migratekit.io/watch-filter=<value>.

// mustCacheOptions is CacheOptions for a test, which fails on an error.
func mustCacheOptions(t *testing.T, namespace, watchFilter string) cache.Options {
	t.Helper()
	o, err := CacheOptions(namespace, watchFilter)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// The cache options of each flag combination: the filter restricts exactly the three kinds
// the manager reconciles (Secrets stay unfiltered), the namespace stays the default of all
// of them, and a value that cannot name a Lease is refused.
func TestCacheOptionsWatchFilter(t *testing.T) {
	for _, tc := range []struct {
		name, namespace, filter string
		wantSelector            string // "" = no ByObject at all
		wantLease               string
		wantErr                 string
	}{
		{name: "all objects", wantLease: "ossea-operator.migratekit.io"},
		{name: "namespace only", namespace: "ossea-migration", wantLease: "ossea-operator.migratekit.io"},
		{name: "shard", filter: "a", wantSelector: osseav1.WatchFilterLabel + "=a", wantLease: "ossea-operator.migratekit.io-a"},
		{name: "shard in a namespace", namespace: "ossea-migration", filter: "east-1", wantSelector: osseav1.WatchFilterLabel + "=east-1", wantLease: "ossea-operator.migratekit.io-east-1"},
		{name: "upper case", filter: "East", wantErr: `watch filter "East"`},
		{name: "underscore", filter: "a_b", wantErr: `watch filter "a_b"`},
		{name: "too long", filter: strings.Repeat("a", 64), wantErr: "must be no more than 63"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := CacheOptions(tc.namespace, tc.filter)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.DefaultTransform == nil {
				t.Error("managedFields are no longer stripped")
			}
			if o.DefaultLabelSelector != nil {
				t.Errorf("DefaultLabelSelector %v: it would filter Secrets too", o.DefaultLabelSelector)
			}
			if _, ok := o.DefaultNamespaces[tc.namespace]; (tc.namespace != "") != ok || len(o.DefaultNamespaces) > 1 {
				t.Errorf("DefaultNamespaces %v, want only %q", o.DefaultNamespaces, tc.namespace)
			}
			if got := LeaderElectionID(tc.filter); got != tc.wantLease {
				t.Errorf("LeaderElectionID(%q) = %q, want %q", tc.filter, got, tc.wantLease)
			}
			if tc.wantSelector == "" {
				if len(o.ByObject) != 0 {
					t.Errorf("ByObject %v without a filter", o.ByObject)
				}
				return
			}
			kinds := map[string]bool{}
			for obj, by := range o.ByObject {
				kind := fmt.Sprintf("%T", obj)
				kinds[kind] = true
				if by.Label == nil || by.Label.String() != tc.wantSelector {
					t.Errorf("%s: selector %v, want %s", kind, by.Label, tc.wantSelector)
					continue
				}
				if by.Namespaces != nil {
					t.Errorf("%s: Namespaces %v, want the default's", kind, by.Namespaces)
				}
				if by.Label.Matches(labels.Set{osseav1.WatchFilterLabel: tc.filter + "x"}) || by.Label.Matches(labels.Set{}) {
					t.Errorf("%s: the selector takes another shard's or an unlabelled object", kind)
				}
			}
			for _, want := range []string{"*v1alpha1.OsseaConfig", "*v1alpha1.MigrationJob", "*v1alpha1.MigrationVolume"} {
				if !kinds[want] {
					t.Errorf("%s is not filtered (filtered: %v)", want, kinds)
				}
			}
			if len(kinds) != 3 {
				t.Errorf("filtered kinds %v, want exactly the three the manager reconciles", kinds)
			}
		})
	}
}

// shard is what one test shard consists of: its manager, its simulator (the OMA VM its
// config uses lives there alone), its config, its standalone volumes and its job.
type shard struct {
	filter string
	mgr    *testManager
	sim    *sim
	cfg    *osseav1.OsseaConfig
	vols   []*osseav1.MigrationVolume
	job    *osseav1.MigrationJob
}

// prefix starts the name of every object of the shard, so that a log line names its shard.
func (s *shard) prefix() string { return "shard-" + s.filter + "-" }

// newShard starts the shard's simulator and manager (with its watch filter and its own
// leader election in ns) and creates its labelled config, two volumes and a job of two
// disks placed through the selector pool=prod, which every shard's config matches.
func newShard(t *testing.T, ns, filter string) *shard {
	t.Helper()
	s := &shard{filter: filter, sim: startVolumeSim(t, cloudsim.Options{JobLatency: 100 * time.Millisecond})}
	s.mgr = startManagerWith(t, env.Config, ctrl.Options{
		Cache:                   mustCacheOptions(t, ns, filter),
		LeaderElection:          true,
		LeaderElectionID:        LeaderElectionID(filter),
		LeaderElectionNamespace: ns,
	})
	shardLabels := func(extra map[string]string) map[string]string {
		l := map[string]string{osseav1.WatchFilterLabel: filter}
		for k, v := range extra {
			l[k] = v
		}
		return l
	}
	s.cfg = newConfig(ns, s.prefix()+"osc", s.sim.url)
	s.cfg.Labels = shardLabels(map[string]string{"pool": "prod"})
	create(t, credentials(ns, s.cfg.Name+"-credentials", tenantAPIKey, tenantSecretKey), s.cfg)
	for i := range 2 {
		mv := &osseav1.MigrationVolume{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("%sdisk%d", s.prefix(), i), Labels: shardLabels(nil)},
			Spec: osseav1.MigrationVolumeSpec{
				OsseaConfigRef: osseav1.LocalObjectReference{Name: s.cfg.Name},
				JobID:          s.prefix() + "standalone", VMName: "vm-" + filter, DiskName: fmt.Sprintf("disk%d", i), SizeGiB: 1,
			},
		}
		s.vols = append(s.vols, mv)
		create(t, mv)
	}
	s.job = &osseav1.MigrationJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: s.prefix() + "job", Labels: shardLabels(nil)},
		Spec: osseav1.MigrationJobSpec{
			VMName:    "vm-" + filter,
			Placement: osseav1.MigrationJobPlacement{OsseaConfigSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"pool": "prod"}}},
			Disks: []osseav1.MigrationJobDisk{
				{Name: "disk0", SizeGiB: ptr.To[int32](1)},
				{Name: "disk1", SizeGiB: ptr.To[int32](1)},
			},
		},
	}
	create(t, s.job)
	return s
}

// allVolumes are the shard's standalone volumes and its job's.
func (s *shard) allVolumes(t *testing.T) []*osseav1.MigrationVolume {
	t.Helper()
	out := append([]*osseav1.MigrationVolume(nil), s.vols...)
	for _, mv := range jobVolumes(t, s.job) {
		out = append(out, &mv)
	}
	return out
}

// TestShardsTwoManagers: two managers in one namespace with --watch-filter a and b, each
// with its own simulator. Each shard's config, volumes and job are reconciled by its own
// manager only, through to Ready and a clean deletion; the job is placed by its selector
// on its own shard's config though the other shard's matches too; its volumes carry its
// label; each shard has its own leader; an unlabelled config and volume are touched by
// neither.
func TestShardsTwoManagers(t *testing.T) {
	ns := newNamespace(t)
	start := time.Now()
	a, b := newShard(t, ns, "a"), newShard(t, ns, "b")
	shards := []*shard{a, b}

	// Unlabelled: no filtered manager's. The volume names shard a's config, which changes
	// nothing: the label decides, not the reference.
	loose := newConfig(ns, "unsharded-osc", a.sim.url)
	looseVol := &osseav1.MigrationVolume{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "unsharded-disk"},
		Spec: osseav1.MigrationVolumeSpec{
			OsseaConfigRef: osseav1.LocalObjectReference{Name: a.cfg.Name},
			JobID:          "unsharded", VMName: "vm", DiskName: "disk0", SizeGiB: 1,
		},
	}
	create(t, credentials(ns, loose.Name+"-credentials", tenantAPIKey, tenantSecretKey), loose, looseVol)

	for _, s := range shards {
		cfg := waitReady(t, client.ObjectKeyFromObject(s.cfg), metav1.ConditionTrue, osseav1.ReasonConnected)
		job := waitMJ(t, s.job, 60*time.Second, jobCondition(osseav1.ConditionPlaced, metav1.ConditionTrue, osseav1.ReasonPlaced))
		if got := job.Status.Placement.OsseaConfigName; got != cfg.Name {
			t.Errorf("job %s placed on %s, want its own shard's %s", job.Name, got, cfg.Name)
		}
		testkit.Eventually(t, 60*time.Second, func() string {
			if n := len(jobVolumes(t, s.job)); n != 2 {
				return fmt.Sprintf("job %s has %d volumes, want 2", s.job.Name, n)
			}
			return ""
		})
		for _, mv := range s.allVolumes(t) {
			got := waitVolume(t, mv, 60*time.Second, conditionIs(osseav1.ConditionAttached, metav1.ConditionTrue, osseav1.ReasonAttached))
			if l := got.Labels[osseav1.WatchFilterLabel]; l != s.filter {
				t.Errorf("%s is labelled %s=%q, want its shard's %q", got.Name, osseav1.WatchFilterLabel, l, s.filter)
			}
			agentMount(t, got)
			waitVolume(t, got, 30*time.Second, conditionIs(osseav1.ConditionReady, metav1.ConditionTrue, ""))
		}
		waitMJ(t, s.job, 30*time.Second, jobCondition(osseav1.ConditionReady, metav1.ConditionTrue, osseav1.ReasonDisksReady))
	}
	t.Logf("both shards' configs, 4 volumes each and jobs Ready %s after start", time.Since(start).Round(time.Millisecond))

	// Each shard's simulator saw exactly its shard's volumes, each created once.
	for _, s := range shards {
		st := s.sim.Snapshot()
		var names []string
		for _, v := range st.Volumes {
			if v.Type == "DATADISK" {
				names = append(names, v.Name)
			}
		}
		if len(names) != 4 || st.Calls["createVolume"] != 4 {
			t.Errorf("shard %s's CloudStack holds %v after %d createVolume calls, want its 4 volumes created once each", s.filter, names, st.Calls["createVolume"])
		}
		for _, mv := range s.allVolumes(t) {
			if n := len(simVolumes(s.sim, mv)); n != 1 {
				t.Errorf("%s has %d volumes in its shard's CloudStack, want 1", mv.Name, n)
			}
		}
		t.Logf("shard %s: CloudStack calls %v", s.filter, st.Calls)
	}

	// Each shard elected its own leader: two Leases, two holders.
	holders := map[string]string{}
	for _, s := range shards {
		lease := &coordinationv1.Lease{}
		if err := k8s.Get(testCtx, client.ObjectKey{Namespace: ns, Name: LeaderElectionID(s.filter)}, lease); err != nil {
			t.Fatalf("shard %s's Lease: %v", s.filter, err)
		}
		if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
			t.Errorf("shard %s's Lease has no holder", s.filter)
			continue
		}
		holders[s.filter] = *lease.Spec.HolderIdentity
	}
	if holders["a"] == holders["b"] {
		t.Errorf("one holder for both shards' Leases: %v", holders)
	}

	// Another revalidation and drift period: the unlabelled objects are as they were made.
	time.Sleep(revalidateInterval + driftInterval)
	assertUntouched(t, loose, looseVol)

	// Each manager's log names its own shard's objects and never the other's (nor the
	// unlabelled ones): it never even received them.
	for i, s := range shards {
		other := shards[1-i]
		logs := s.mgr.logs.String()
		if !strings.Contains(logs, s.prefix()) {
			t.Errorf("manager %s's log never names its own objects (%s*)", s.filter, s.prefix())
		}
		for _, foreign := range []string{other.prefix(), "unsharded-"} {
			if n := strings.Count(logs, foreign); n != 0 {
				t.Errorf("manager %s's log names %s* %d times", s.filter, foreign, n)
			}
		}
		t.Logf("manager %s's log names its own objects %d times, the other shard's 0", s.filter, strings.Count(logs, s.prefix()))
	}

	// A job of shard a whose volume name is taken by shard b's volume: not a cache that
	// lags (it never shows that volume), but a conflict, named as such.
	crossed := &osseav1.MigrationVolume{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "crossed-disk0", Labels: map[string]string{osseav1.WatchFilterLabel: "b"}},
		Spec: osseav1.MigrationVolumeSpec{
			OsseaConfigRef: osseav1.LocalObjectReference{Name: b.cfg.Name},
			JobID:          "crossed", VMName: "vm-b", DiskName: "disk0", SizeGiB: 1,
		},
	}
	crossedJob := &osseav1.MigrationJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "crossed", Labels: map[string]string{osseav1.WatchFilterLabel: "a"}},
		Spec: osseav1.MigrationJobSpec{
			VMName:    "vm-a",
			Placement: osseav1.MigrationJobPlacement{OsseaConfigRef: &osseav1.LocalObjectReference{Name: a.cfg.Name}},
			Disks:     []osseav1.MigrationJobDisk{{Name: "disk0", SizeGiB: ptr.To[int32](1)}},
		},
	}
	create(t, crossed)
	waitVolume(t, crossed, 30*time.Second, conditionIs(osseav1.ConditionAttached, metav1.ConditionTrue, osseav1.ReasonAttached))
	create(t, crossedJob)
	got := waitMJ(t, crossedJob, 30*time.Second, jobCondition(osseav1.ConditionStalled, metav1.ConditionTrue, osseav1.ReasonNameConflict))
	if c := meta.FindStatusCondition(got.Status.Conditions, osseav1.ConditionStalled); !strings.Contains(c.Message, "another shard") {
		t.Errorf("Stalled message %q should say the volume is in another shard", c.Message)
	} else {
		t.Logf("job %s: %s", got.Name, c.Message)
	}
	for _, obj := range []client.Object{crossedJob, crossed} {
		if err := k8s.Delete(testCtx, obj); err != nil {
			t.Fatal(err)
		}
	}
	testkit.WaitGone(t, k8s, crossedJob, 30*time.Second, nil)
	testkit.WaitGone(t, k8s, crossed, 30*time.Second, nil)

	// Deletion: each shard's manager tears its own down.
	for _, s := range shards {
		for _, mv := range s.allVolumes(t) {
			agentRelease(t, mv)
		}
		for _, obj := range append([]client.Object{s.job}, volumesAsObjects(s.vols)...) {
			if err := k8s.Delete(testCtx, obj); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, s := range shards {
		for _, mv := range s.vols {
			testkit.WaitGone(t, k8s, mv, 60*time.Second, nil)
		}
		testkit.WaitGone(t, k8s, s.job, 60*time.Second, nil)
		if err := k8s.Delete(testCtx, s.cfg); err != nil {
			t.Fatal(err)
		}
		testkit.WaitGone(t, k8s, s.cfg, 60*time.Second, nil)
		for _, v := range s.sim.Snapshot().Volumes {
			if v.Type == "DATADISK" {
				t.Errorf("shard %s's CloudStack still holds %s (%s)", s.filter, v.Name, v.ID)
			}
		}
	}
	t.Logf("both shards torn down %s after start", time.Since(start).Round(time.Millisecond))
	assertUntouched(t, loose, looseVol)
}

// assertUntouched fails if a controller wrote to any of objs since the test created them:
// no finalizer, no status, the same resourceVersion.
func assertUntouched(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, made := range objs {
		got := made.DeepCopyObject().(client.Object)
		if err := k8s.Get(testCtx, client.ObjectKeyFromObject(made), got); err != nil {
			t.Errorf("%s: %v", made.GetName(), err)
			continue
		}
		if got.GetResourceVersion() != made.GetResourceVersion() || len(got.GetFinalizers()) != 0 {
			t.Errorf("%T %s was touched: resourceVersion %s (created %s), finalizers %v",
				made, made.GetName(), got.GetResourceVersion(), made.GetResourceVersion(), got.GetFinalizers())
		}
	}
}

func volumesAsObjects(vols []*osseav1.MigrationVolume) []client.Object {
	out := make([]client.Object, 0, len(vols))
	for _, mv := range vols {
		out = append(out, mv)
	}
	return out
}
