package ownership_test

import (
	"context"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/ownership"
	"github.com/migratekit/ossea-operator/internal/testenv"
	"github.com/migratekit/ossea-operator/test/world"
)

var k8sClient client.Client

func TestMain(m *testing.M) {
	world.MainWithAPIServer(m, world.Needs{}, func(env *testenv.Env) { k8sClient = env.Client })
}

func newVolume(t *testing.T, name string) *osseav1.MigrationVolume {
	t.Helper()
	mv := &osseav1.MigrationVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: osseav1.MigrationVolumeSpec{
			OsseaConfigRef: osseav1.LocalObjectReference{Name: "ossea"},
			JobID:          "job-1", VMName: "web-01", DiskName: "disk0", SizeGiB: 10,
		},
	}
	if err := k8sClient.Create(context.Background(), mv); err != nil {
		t.Fatalf("creating %s: %v", name, err)
	}
	return mv
}

func deleteNow(t *testing.T, mv *osseav1.MigrationVolume) {
	t.Helper()
	ctx := context.Background()
	gone := mv.DeepCopy()
	if err := k8sClient.Delete(ctx, gone); err != nil {
		t.Fatalf("deleting %s: %v", mv.Name, err)
	}
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(mv), gone); !apierrors.IsNotFound(err) {
		t.Fatalf("%s should be gone after its delete, got %v", mv.Name, err)
	}
}

// A write of a pass that began before its object went must land nowhere: not on nothing
// (an apply to a missing object is a create), and not on a new object that took the name
// (GitOps tools recreate objects under the same name), which would then carry the old
// object's volume and finalizer as its own.
func TestWritesToAnObjectThatIsGoneLandNowhere(t *testing.T) {
	ctx := context.Background()
	part := osseav1.MigrationVolumeStatus{VolumeID: "vol-of-the-old-object"}

	t.Run("gone", func(t *testing.T) {
		old := newVolume(t, "gone")
		deleteNow(t, old)
		// A writer that means to hold the object must learn that it holds nothing.
		if err := ownership.ApplyMetadata(ctx, k8sClient, old.DeepCopy(), ownership.Metadata{Finalizer: osseav1.MountFinalizer, Hold: true}, osseav1.AgentFieldOwner); err == nil {
			t.Errorf("adding a finalizer to a gone object succeeded")
		}
		if err := ownership.ApplyMetadata(ctx, k8sClient, old.DeepCopy(), ownership.Metadata{Finalizer: osseav1.MountFinalizer, Hold: false}, osseav1.AgentFieldOwner); err != nil {
			t.Errorf("removing a finalizer from a gone object: %v, want no error (nothing to do)", err)
		}
		if err := ownership.ApplyStatus(ctx, k8sClient, old.DeepCopy(), part, osseav1.ManagerFieldOwner); err != nil {
			t.Errorf("applying status to a gone object: %v, want no error (nothing to do)", err)
		}
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(old), &osseav1.MigrationVolume{}); !apierrors.IsNotFound(err) {
			t.Errorf("the writes brought the object back: %v", err)
		}
	})

	t.Run("replaced", func(t *testing.T) {
		old := newVolume(t, "replaced")
		deleteNow(t, old)
		successor := newVolume(t, "replaced")
		if successor.UID == old.UID {
			t.Fatalf("the new object has the old one's uid %s", old.UID)
		}
		if err := ownership.ApplyMetadata(ctx, k8sClient, old.DeepCopy(), ownership.Metadata{Finalizer: osseav1.MountFinalizer, Hold: true}, osseav1.AgentFieldOwner); err == nil {
			t.Errorf("adding the old object's finalizer succeeded (its object is gone)")
		}
		got := &osseav1.MigrationVolume{}
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(successor), got); err != nil {
			t.Fatal(err)
		}
		if controllerutil.ContainsFinalizer(got, osseav1.MountFinalizer) {
			t.Errorf("the old object's finalizer landed on its successor: %v", got.Finalizers)
		}
		// The status subresource ignores the uid a write carries (see stored); what the
		// writer must not do is take the successor for its own object.
		writer := old.DeepCopy()
		if err := ownership.ApplyStatus(ctx, k8sClient, writer, part, osseav1.ManagerFieldOwner); err != nil {
			t.Errorf("applying the old object's status: %v, want no error (its object is gone)", err)
		}
		if writer.UID != old.UID {
			t.Errorf("after its write the old object's copy became its successor (uid %s, was %s)", writer.UID, old.UID)
		}
		deleteNow(t, got)
	})

	t.Run("present", func(t *testing.T) {
		// The precondition must not get in the way of the object the write is for.
		mv := newVolume(t, "present")
		if err := ownership.ApplyStatus(ctx, k8sClient, mv, part, osseav1.ManagerFieldOwner); err != nil {
			t.Fatal(err)
		}
		if err := ownership.ApplyMetadata(ctx, k8sClient, mv, ownership.Metadata{Finalizer: osseav1.MountFinalizer, Hold: true}, osseav1.AgentFieldOwner); err != nil {
			t.Fatal(err)
		}
		got := &osseav1.MigrationVolume{}
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(mv), got); err != nil {
			t.Fatal(err)
		}
		if got.Status.VolumeID != part.VolumeID || !controllerutil.ContainsFinalizer(got, osseav1.MountFinalizer) {
			t.Errorf("writes to the live object did not land: volumeID %q, finalizers %v", got.Status.VolumeID, got.Finalizers)
		}
		if err := ownership.ApplyMetadata(ctx, k8sClient, mv, ownership.Metadata{Finalizer: osseav1.MountFinalizer, Hold: false}, osseav1.AgentFieldOwner); err != nil {
			t.Fatal(err)
		}
		deleteNow(t, mv)
	})
}

// A writer's labels and annotations travel with its finalizer, and are its own: one it
// leaves out of a later apply is removed, and nobody else's is touched.
func TestMetadataIsTheWritersOwn(t *testing.T) {
	ctx := context.Background()
	mv := newVolume(t, "metadata")
	mv.Labels = map[string]string{"team": "migration"}
	mv.Annotations = map[string]string{"note": "a person's"}
	if err := k8sClient.Update(ctx, mv); err != nil {
		t.Fatal(err)
	}
	claim := ownership.Metadata{Finalizer: osseav1.MountFinalizer, Hold: true,
		Labels: map[string]string{"example.com/node": "node-a"}, Annotations: map[string]string{"example.com/said": "yes"}}
	if err := ownership.ApplyMetadata(ctx, k8sClient, mv, claim, osseav1.AgentFieldOwner); err != nil {
		t.Fatal(err)
	}
	intent := ownership.Metadata{Finalizer: osseav1.VolumeFinalizer, Hold: true, Annotations: map[string]string{"example.com/intent": "now"}}
	if err := ownership.ApplyMetadata(ctx, k8sClient, mv, intent, osseav1.ManagerFieldOwner); err != nil {
		t.Fatal(err)
	}
	got := &osseav1.MigrationVolume{}
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(mv), got); err != nil {
		t.Fatal(err)
	}
	if got.Labels["example.com/node"] != "node-a" || got.Annotations["example.com/said"] != "yes" || got.Annotations["example.com/intent"] != "now" ||
		len(got.Finalizers) != 2 || got.Labels["team"] != "migration" || got.Annotations["note"] != "a person's" {
		t.Fatalf("after both writers' applies: labels %v, annotations %v, finalizers %v", got.Labels, got.Annotations, got.Finalizers)
	}

	// The agent lets go: its finalizer, label and annotation go; the rest stays.
	if err := ownership.ApplyMetadata(ctx, k8sClient, mv, ownership.Metadata{Finalizer: osseav1.MountFinalizer}, osseav1.AgentFieldOwner); err != nil {
		t.Fatal(err)
	}
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(mv), got); err != nil {
		t.Fatal(err)
	}
	if _, ok := got.Labels["example.com/node"]; ok || got.Annotations["example.com/said"] != "" || controllerutil.ContainsFinalizer(got, osseav1.MountFinalizer) {
		t.Errorf("the agent's metadata outlived its release: labels %v, annotations %v, finalizers %v", got.Labels, got.Annotations, got.Finalizers)
	}
	if got.Annotations["example.com/intent"] != "now" || !controllerutil.ContainsFinalizer(got, osseav1.VolumeFinalizer) ||
		got.Labels["team"] != "migration" || got.Annotations["note"] != "a person's" {
		t.Errorf("the agent's release took others' metadata: labels %v, annotations %v, finalizers %v", got.Labels, got.Annotations, got.Finalizers)
	}
	if err := ownership.ApplyMetadata(ctx, k8sClient, mv, ownership.Metadata{Finalizer: osseav1.VolumeFinalizer}, osseav1.ManagerFieldOwner); err != nil {
		t.Fatal(err)
	}
	deleteNow(t, mv)
}
