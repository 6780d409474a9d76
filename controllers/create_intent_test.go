package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudsim"
	"github.com/migratekit/ossea-operator/internal/cloudstack"
)

// The create intent is written with the finalizer, in one write, and never in status on a
// fault-free path: apply to Attached costs the manager four writes (intent and finalizer;
// the created volume and its tag job; the attach job; the attach), not five.
func TestVolumeCreateIntentIsOneWrite(t *testing.T) {
	s := startVolumeSim(t, cloudsim.Options{JobLatency: 300 * time.Millisecond})
	e := newVolumeEnv(t, s, nil)
	ctx, w := watchVolumes(t, e.ns, 60*time.Second)
	before := time.Now()
	mv := e.newVolume("disk0", nil)
	create(t, mv)

	var versions []*osseav1.MigrationVolume
	for attached := false; !attached; {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatalf("the watch ended after %d versions, before the volume was attached", len(versions))
			}
			got, _ := ev.Object.(*osseav1.MigrationVolume)
			if got == nil || (len(versions) > 0 && got.ResourceVersion == versions[len(versions)-1].ResourceVersion) {
				continue
			}
			versions = append(versions, got)
			attached = conditionIs(osseav1.ConditionAttached, metav1.ConditionTrue, osseav1.ReasonAttached)(got) == ""
		case <-ctx.Done():
			t.Fatalf("not attached in time after %d versions", len(versions))
		}
	}
	for i, v := range versions {
		if v.Status.PendingJob != nil && v.Status.PendingJob.Operation == opCreate {
			t.Errorf("version %d recorded the create in status (%+v); the intent belongs in the annotation", i, v.Status.PendingJob)
		}
		if controllerutil.ContainsFinalizer(v, osseav1.VolumeFinalizer) {
			at, ok := createIntent(v)
			if !ok || at.Before(before.Add(-time.Second)) || at.After(time.Now()) {
				t.Errorf("version %d holds the finalizer with create intent %q; want one written with it, during this test",
					i, v.Annotations[osseav1.CreateIntentAnnotation])
			}
		}
	}
	if writes := len(versions) - 1; writes > 4 {
		t.Errorf("%d writes from apply to Attached, want at most 4: %s", writes, describeVersions(versions))
	}
}

// A manager that stopped between its create intent and the status write after the call
// left only the intent: a create may have landed that no status names. The next manager
// settles it as a lost create: it adopts what landed instead of making a second volume,
// and creates afresh, once, when the intent is long past and nothing landed.
func TestVolumeCreateIntentWithoutStatus(t *testing.T) {
	s := startVolumeSim(t, cloudsim.Options{})
	e := newVolumeEnv(t, s, nil)

	t.Run("a create landed", func(t *testing.T) {
		mv := e.newVolume("landed", func(mv *osseav1.MigrationVolume) {
			setCreateIntent(mv, time.Now())
		})
		create(t, mv)
		// What the stopped manager's create made: the volume with the object's name, untagged.
		c := directCloud(t, e)
		landedID, jobID, err := c.CreateVolume(context.Background(), cloudstack.CreateVolumeRequest{
			Name: volumeName(mv), ZoneID: cloudsim.DefaultZoneID, DiskOfferingID: cloudsim.DefaultDiskOfferingID, SizeGiB: 2,
		})
		if err != nil {
			t.Fatal(err)
		}
		waitJob(t, c, jobID)
		got := waitVolume(t, mv, 30*time.Second, conditionIs(osseav1.ConditionAttached, metav1.ConditionTrue, osseav1.ReasonAttached))
		if got.Status.VolumeID != landedID {
			t.Errorf("volumeID %s, want the landed create's %s", got.Status.VolumeID, landedID)
		}
		if vols := simVolumes(s, got); len(vols) != 1 {
			t.Errorf("CloudStack holds %d volumes for the object, want the landed one alone: %+v", len(vols), vols)
		}
		if !hasEvent(t, e.ns, mv.Name, osseav1.EventAdopted) {
			t.Error("no Adopted event for the landed create's volume")
		}
	})

	t.Run("nothing landed", func(t *testing.T) {
		calls := s.Snapshot().Calls["createVolume"]
		mv := e.newVolume("lost", func(mv *osseav1.MigrationVolume) {
			setCreateIntent(mv, time.Now().Add(-time.Hour))
		})
		create(t, mv)
		got := waitVolume(t, mv, 30*time.Second, conditionIs(osseav1.ConditionAttached, metav1.ConditionTrue, osseav1.ReasonAttached))
		if n := s.Snapshot().Calls["createVolume"] - calls; n != 1 {
			t.Errorf("createVolume sent %d times, want once", n)
		}
		if vols := simVolumes(s, got); len(vols) != 1 || vols[0].ID != got.Status.VolumeID {
			t.Errorf("CloudStack holds %+v for the object, want exactly the one in status (%s)", vols, got.Status.VolumeID)
		}
		if at, ok := createIntent(got); !ok || time.Since(at) > time.Minute {
			t.Errorf("create intent %q after the new create; want the new create's", got.Annotations[osseav1.CreateIntentAnnotation])
		}
	})
}

func describeVersions(vs []*osseav1.MigrationVolume) string {
	out := ""
	for _, v := range vs {
		job := "-"
		if v.Status.PendingJob != nil {
			job = v.Status.PendingJob.Operation
		}
		out += fmt.Sprintf("[rv %s finalizers %v phase %q job %s] ", v.ResourceVersion, v.Finalizers, v.Status.Phase, job)
	}
	return out
}
