package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudstack"
)

// listedCloud answers the sweep's list with what it was given, and reads and deletes from
// what is there now: the two may differ, as they do when an object deletes its own volume
// between the sweep's list and its look at the object.
type listedCloud struct {
	cloudstack.Cloud // nil: any other call panics
	listed           []cloudstack.Volume
	now              map[string]cloudstack.Volume
	deleted          []string
}

func (c *listedCloud) FindVolumes(context.Context, cloudstack.VolumeQuery) ([]cloudstack.Volume, error) {
	return c.listed, nil
}

func (c *listedCloud) GetVolume(_ context.Context, id string) (*cloudstack.Volume, error) {
	v, ok := c.now[id]
	if !ok {
		return nil, fmt.Errorf("reading volume %s: %w", id, cloudstack.ErrNotFound)
	}
	return &v, nil
}

func (c *listedCloud) DeleteVolume(_ context.Context, id string) error {
	if _, ok := c.now[id]; !ok {
		return fmt.Errorf("deleting volume %s: %w", id, cloudstack.ErrNotFound)
	}
	delete(c.now, id)
	c.deleted = append(c.deleted, id)
	return nil
}

// A volume listed while its object was still tearing it down, and deleted by that object
// before the sweep looked the object up, is no orphan: found by chaos --cutover, where the
// first version of the sweep reported it (OrphansFound) and counted the object's own delete
// as its own (OrphanDeleted). One still there after its object is gone is an orphan.
func TestOrphanSweepRereadsCandidates(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := osseav1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	k := fake.NewClientBuilder().WithScheme(scheme).Build() // the objects are all gone
	cfg := &osseav1.OsseaConfig{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "ossea"}}
	cfg.Spec.OrphanPolicy = osseav1.OrphanDelete
	cfg.Spec.OrphanGracePeriod = &metav1.Duration{}
	vol := func(id string) cloudstack.Volume {
		return cloudstack.Volume{ID: id, Name: "mig_" + id, State: "Ready", Tags: map[string]string{
			TagManagedBy: managedByValue, TagCluster: "c", TagConfig: "ns/ossea", TagUID: "uid-" + id, TagOwner: "ns/mv-" + id,
		}}
	}
	retainedNow := vol("kept")
	retainedNow.Tags[TagRetained] = "true"
	cloud := &listedCloud{
		listed: []cloudstack.Volume{vol("deleted-by-its-object"), vol("kept"), vol("orphan")},
		now:    map[string]cloudstack.Volume{"kept": retainedNow, "orphan": vol("orphan")},
	}
	rec := events.NewFakeRecorder(10)
	o := newOrphanSweeper(k, k, rec, "c")
	if err := o.sweep(context.Background(), cfg, cloud); err != nil {
		t.Fatal(err)
	}
	if len(cloud.deleted) != 1 || cloud.deleted[0] != "orphan" {
		t.Errorf("deleted %v; want only the volume still there after its object was gone", cloud.deleted)
	}
	close(rec.Events)
	var got []string
	for e := range rec.Events {
		got = append(got, e)
	}
	if len(got) != 2 {
		t.Fatalf("events %q; want one OrphansFound and one OrphanDeleted, both for the orphan only", got)
	}
	for _, e := range got {
		if !strings.Contains(e, "orphan") || strings.Contains(e, "deleted-by-its-object") || strings.Contains(e, "kept") {
			t.Errorf("event %q names a volume that is no orphan", e)
		}
	}
}
