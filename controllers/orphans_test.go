package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudsim"
	"github.com/migratekit/ossea-operator/internal/cloudstack"
	"github.com/migratekit/ossea-operator/internal/testkit"
)

// TestOrphans: a MigrationVolume whose finalizer is stripped by force leaves its volume in
// CloudStack. The drift pass reports it (status.orphans, a Warning event, the metric); Report
// never deletes it, nor does Delete while it is attached or within the grace period; Delete
// with a short grace then deletes it. A volume of the same account tagged by another
// cluster, a retained volume and a live volume are never reported nor touched. The orphan
// check costs one listVolumes per pass, whatever the number of volumes.
func TestOrphans(t *testing.T) {
	s := startVolumeSim(t, cloudsim.Options{})
	e := newVolumeEnv(t, s, nil)
	cfgKey := client.ObjectKeyFromObject(e.cfg)
	c := directCloud(t, e)

	// Four live volumes (the OMA VM holds 6), one to be retained, one to be stripped.
	var live []*osseav1.MigrationVolume
	for i := range 4 {
		live = append(live, e.newVolume(fmt.Sprintf("live%d", i), nil))
	}
	kept := e.newVolume("kept", func(mv *osseav1.MigrationVolume) { mv.Spec.DeletionPolicy = osseav1.DeletionPolicyRetain })
	stripped := e.newVolume("stripped", nil)
	all := append(live, kept, stripped)
	for _, mv := range all {
		create(t, mv)
	}
	for _, mv := range all {
		waitVolume(t, mv, 60*time.Second, conditionIs(osseav1.ConditionAttached, metav1.ConditionTrue, osseav1.ReasonAttached))
	}
	got := &osseav1.MigrationVolume{}
	if err := k8s.Get(testCtx, client.ObjectKeyFromObject(stripped), got); err != nil {
		t.Fatal(err)
	}
	orphanID := got.Status.VolumeID
	if v := simVolumes(s, got); len(v) != 1 || tagOf(v[0], TagCluster) != testClusterID || tagOf(v[0], TagConfig) != e.ns+"/ossea" {
		t.Fatalf("the volume does not carry the cluster and config tags: %+v", v)
	}

	// Another cluster's volume in the same account, made for a config of the same
	// namespace and name, whose MigrationVolume is gone: not ours to report or touch.
	foreignID, jobID, err := c.CreateVolume(context.Background(), cloudstack.CreateVolumeRequest{
		Name: "mig_foreign_disk0_deadbeef", ZoneID: cloudsim.DefaultZoneID, DiskOfferingID: cloudsim.DefaultDiskOfferingID, SizeGiB: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, c, jobID)
	if jobID, err = c.CreateTags(context.Background(), foreignID, map[string]string{
		TagManagedBy: managedByValue, TagCluster: "another-cluster", TagConfig: e.ns + "/ossea",
		TagUID: uuid.NewString(), TagOwner: e.ns + "/gone",
	}); err != nil {
		t.Fatal(err)
	}
	waitJob(t, c, jobID)

	// Retained on delete: kept on purpose, never an orphan.
	if err := k8s.Delete(testCtx, kept); err != nil {
		t.Fatal(err)
	}
	testkit.WaitGone(t, k8s, kept, 30*time.Second, nil)

	// What a drift pass costs: with 4 settled volumes, a listVolumes for the drift check
	// and one for the orphans, and nothing per volume. The connection test, every other
	// pass here, adds its own listVolumes (the OMA VM's disk count).
	before := s.Snapshot().Calls
	window := 6 * driftInterval
	time.Sleep(window)
	after := s.Snapshot().Calls
	passes := float64(window) / float64(driftInterval)
	for cmd, n := range after {
		d := n - before[cmd]
		switch {
		case cmd == "listVolumes":
			t.Logf("orphan and drift checks: %d listVolumes in %s (about %.0f passes, 4 settled volumes, no orphan): %.2f per pass", d, window, passes, float64(d)/passes)
			if float64(d) > 3*(passes*1.2+1) {
				t.Errorf("%d listVolumes in %.0f passes: more than the drift check's and the orphan check's one each per pass", d, passes)
			}
		case d > 0 && cmd != "listZones" && cmd != "listVirtualMachines" && cmd != "listDiskOfferings" && cmd != "listCapabilities":
			t.Errorf("%d %s calls while nothing changed", d, cmd) // the connection test's reads are allowed
		}
	}

	// The finalizer stripped by force while the manager is down (a running manager would
	// put it back, or delete the volume first): the object goes, the volume stays,
	// attached.
	e.mgr.stop()
	if err := k8s.Get(testCtx, client.ObjectKeyFromObject(stripped), got); err != nil {
		t.Fatal(err)
	}
	got.Finalizers = nil
	if err := k8s.Update(testCtx, got); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Delete(testCtx, got); err != nil {
		t.Fatal(err)
	}
	testkit.WaitGone(t, k8s, stripped, 10*time.Second, nil)
	e.mgr = startManager(t, e.ns)

	// Whatever is reported, at any time, must never name another's volume.
	reported := func() *osseav1.OsseaConfigOrphans {
		t.Helper()
		cfg := &osseav1.OsseaConfig{}
		if err := k8s.Get(testCtx, cfgKey, cfg); err != nil {
			t.Fatal(err)
		}
		if o := cfg.Status.Orphans; o != nil && slices.Contains(o.VolumeIDs, foreignID) {
			t.Fatalf("another cluster's volume %s is reported as an orphan: %+v", foreignID, o)
		}
		return cfg.Status.Orphans
	}
	waitOrphans := func(want ...string) {
		t.Helper()
		testkit.Eventually(t, 20*time.Second, func() string {
			o := reported()
			if o == nil || int(o.Count) != len(want) || !slices.Equal(o.VolumeIDs, want) {
				return fmt.Sprintf("status.orphans = %+v, want %v", o, want)
			}
			return ""
		})
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, l := range strings.Split(e.mgr.logs.String(), "\n") {
				if strings.Contains(l, "rphan") || strings.Contains(l, "rift") {
					t.Log(l)
				}
			}
		}
	})
	waitOrphans(orphanID)
	if !hasEvent(t, e.ns, "ossea", osseav1.EventOrphansFound) {
		t.Error("no OrphansFound event")
	}
	if v := testutil.ToFloat64(orphanVolumes.WithLabelValues(e.ns, "ossea")); v != 1 {
		t.Errorf("ossea_orphan_volumes = %v, want 1", v)
	}

	// Report (the default) never deletes, even detached and long orphaned.
	if jobID, err = c.DetachVolume(context.Background(), orphanID); err != nil {
		t.Fatal(err)
	}
	waitJob(t, c, jobID)
	time.Sleep(3 * driftInterval)
	if s.Snapshot().Calls["deleteVolume"] != 0 {
		t.Fatal("orphanPolicy Report deleted a volume")
	}

	// Delete with a grace period not yet over: still nothing deleted.
	setOrphanPolicy(t, cfgKey, osseav1.OrphanDelete, time.Hour)
	time.Sleep(3 * driftInterval)
	if s.Snapshot().Calls["deleteVolume"] != 0 {
		t.Fatal("orphanPolicy Delete deleted a volume within its grace period")
	}
	waitOrphans(orphanID)

	// A short grace: the orphan goes, and only it.
	setOrphanPolicy(t, cfgKey, osseav1.OrphanDelete, 2*time.Second)
	waitOrphans()
	if n := s.Snapshot().Calls["deleteVolume"]; n != 1 {
		t.Errorf("deleteVolume called %d times, want 1", n)
	}
	if !hasEvent(t, e.ns, "ossea", osseav1.EventOrphanDeleted) {
		t.Error("no OrphanDeleted event")
	}
	if v := testutil.ToFloat64(orphanVolumes.WithLabelValues(e.ns, "ossea")); v != 0 {
		t.Errorf("ossea_orphan_volumes = %v, want 0", v)
	}
	remaining := map[string]cloudsim.Volume{}
	for _, v := range s.Snapshot().Volumes {
		remaining[v.ID] = v
	}
	if _, ok := remaining[orphanID]; ok {
		t.Errorf("the orphan %s is still in CloudStack", orphanID)
	}
	if v, ok := remaining[foreignID]; !ok || len(v.Tags) != 5 {
		t.Errorf("another cluster's volume was deleted or changed: %+v", v)
	}
	for _, mv := range live {
		waitVolume(t, mv, 5*time.Second, conditionIs(osseav1.ConditionAttached, metav1.ConditionTrue, osseav1.ReasonAttached))
	}
	retained := 0
	for _, v := range remaining {
		if tagOf(v, TagRetained) == "true" && tagOf(v, TagCluster) == testClusterID {
			retained++
		}
	}
	if retained != 1 {
		t.Errorf("%d retained volumes in CloudStack, want 1", retained)
	}
	assertNoLeak(t, e.mgr.logs.String(), nil, tenantSecretKey)
}

func setOrphanPolicy(t *testing.T, key client.ObjectKey, policy osseav1.OrphanPolicy, grace time.Duration) {
	t.Helper()
	cfg := &osseav1.OsseaConfig{}
	if err := k8s.Get(testCtx, key, cfg); err != nil {
		t.Fatal(err)
	}
	base := cfg.DeepCopy()
	cfg.Spec.OrphanPolicy = policy
	cfg.Spec.OrphanGracePeriod = &metav1.Duration{Duration: grace}
	if err := k8s.Patch(testCtx, cfg, client.MergeFrom(base)); err != nil {
		t.Fatal(err)
	}
}
