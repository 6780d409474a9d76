package nodeagent

import (
	"context"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

// The manager writes between the agent's read and the agent's write: the agent's write
// must fail with Conflict rather than revert the manager's, then succeed on the new
// version, changing only the agent's condition and fields.
func TestWriteStatusNeverRevertsAConcurrentWrite(t *testing.T) {
	w := newAPIWorld(t)
	mv := w.newVolume("race", "job-race", "disk-0", 1)
	w.attach(mv, "0b3f5c2e-9a41-4d6e-8f00-123456789abc")

	raw, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	patches, conflicts := 0, 0
	c := interceptor.NewClient(raw, interceptor.Funcs{
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			patches++
			if patches == 1 {
				// The manager's write lands between the agent's read and its write.
				w.updateStatus(mv.DeepCopy(), func(st *osseav1.MigrationVolumeStatus) {
					meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: osseav1.ConditionAllocated, Status: metav1.ConditionTrue, Reason: "Created", Message: "manager"})
					st.CloudStackState = "Ready"
				})
			}
			err := c.Status().Patch(ctx, obj, patch, opts...)
			if apierrors.IsConflict(err) {
				conflicts++
			}
			return err
		},
	})

	rep := &report{status: metav1.ConditionTrue, reason: ReasonMounted, message: "mounted",
		mountPath: strp("/mnt/migration/job-race/disk-0"), filesystemType: strp("ext4"), nodeName: strp("node-a")}
	if err := writeStatus(testCtx, c, raw, client.ObjectKeyFromObject(mv), mv.Generation, mv.Status.VolumeID, rep); err != nil {
		t.Fatal(err)
	}
	if patches != 2 || conflicts != 1 {
		t.Errorf("%d patches with %d conflicts; want 2 with 1 (the first, stale one refused)", patches, conflicts)
	}
	got := w.get(mv)
	if a := meta.FindStatusCondition(got.Status.Conditions, osseav1.ConditionAllocated); a == nil || a.Message != "manager" || got.Status.CloudStackState != "Ready" {
		t.Errorf("the manager's write was reverted: %+v", got.Status)
	}
	if m := meta.FindStatusCondition(got.Status.Conditions, osseav1.ConditionMounted); m == nil || m.Reason != ReasonMounted ||
		got.Status.MountPath != "/mnt/migration/job-race/disk-0" || got.Status.NodeName != "node-a" {
		t.Errorf("the agent's write is missing: %+v", got.Status)
	}
	if a := meta.FindStatusCondition(got.Status.Conditions, osseav1.ConditionAttached); a == nil || a.Status != metav1.ConditionTrue {
		t.Errorf("Attached lost: %+v", got.Status.Conditions)
	}

	// Writing the same again sends nothing: an agent restart leaves the object alone.
	before := got.ResourceVersion
	patches = 0
	if err := writeStatus(testCtx, c, raw, client.ObjectKeyFromObject(mv), mv.Generation, mv.Status.VolumeID, rep); err != nil {
		t.Fatal(err)
	}
	if patches != 0 || w.get(mv).ResourceVersion != before {
		t.Errorf("an unchanged report was written (%d patches)", patches)
	}

	// A report about a volume the manager has since replaced is dropped.
	if err := writeStatus(testCtx, c, raw, client.ObjectKeyFromObject(mv), mv.Generation, "another-volume",
		&report{status: metav1.ConditionFalse, reason: ReasonDeviceNotFound, message: "stale"}); err != nil {
		t.Fatal(err)
	}
	if m := meta.FindStatusCondition(w.get(mv).Status.Conditions, osseav1.ConditionMounted); m.Reason != ReasonMounted {
		t.Errorf("a report about another volume was written: %+v", m)
	}
}

// From a current copy the write needs no read; from a stale one it is refused, read again
// and redone without reverting the manager's write.
func TestWriteStatusFromCachedCopy(t *testing.T) {
	w := newAPIWorld(t)
	mv := w.newVolume("cached", "job-cached", "disk-0", 1)
	w.attach(mv, "0b3f5c2e-9a41-4d6e-8f00-123456789abc")
	current := w.get(mv)

	raw, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	gets, patches := 0, 0
	reader := interceptor.NewClient(raw, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			gets++
			return c.Get(ctx, key, obj, opts...)
		},
	})
	c := interceptor.NewClient(raw, interceptor.Funcs{
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			patches++
			return c.Status().Patch(ctx, obj, patch, opts...)
		},
	})
	key := client.ObjectKeyFromObject(mv)
	mounted := func(msg string) *report {
		return &report{status: metav1.ConditionTrue, reason: ReasonMounted, message: msg, mountPath: strp("/mnt/migration/job-cached/disk-0")}
	}
	claim := &report{status: metav1.ConditionUnknown, reason: "Claimed", message: "claimed", nodeName: strp("node-a")}
	seen := &osseav1.MigrationVolume{}
	if err := writeStatusSeen(testCtx, c, reader, key, current.Generation, current.Status.VolumeID, claim, seen, current); err != nil {
		t.Fatal(err)
	}
	if gets != 0 || patches != 1 || seen.ResourceVersion == current.ResourceVersion || seen.Status.NodeName != "node-a" {
		t.Fatalf("from a current copy: %d reads, %d patches, seen %s (was %s); want 0, 1 and a newer version",
			gets, patches, seen.ResourceVersion, current.ResourceVersion)
	}

	// The manager writes elsewhere in the status; the agent still holds the copy from
	// before. The guarded patch goes through without a read, and keeps both writes.
	w.updateStatus(w.get(mv), func(st *osseav1.MigrationVolumeStatus) { st.CloudStackState = "Ready" })
	gets, patches = 0, 0
	waiting := &report{status: metav1.ConditionFalse, reason: ReasonWaitingForDevice, message: "waiting"}
	if err := writeStatusSeen(testCtx, c, reader, key, seen.Generation, seen.Status.VolumeID, waiting, seen, seen.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	if gets != 0 || patches != 1 {
		t.Errorf("from a copy stale elsewhere: %d reads, %d patches; want 0 and 1", gets, patches)
	}
	got := w.get(mv)
	if m := meta.FindStatusCondition(got.Status.Conditions, osseav1.ConditionMounted); got.Status.CloudStackState != "Ready" ||
		m == nil || m.Reason != ReasonWaitingForDevice || got.Status.NodeName != "node-a" {
		t.Errorf("a write was lost: %+v", got.Status)
	}

	// What the report was computed from changed under the copy: the Mounted condition (here
	// its status), or its place in the list (a condition before it removed). The guarded
	// patch is refused, the object read, and the report written on what was read.
	for name, change := range map[string]func(*osseav1.MigrationVolumeStatus){
		"Mounted changed": func(st *osseav1.MigrationVolumeStatus) {
			meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: osseav1.ConditionMounted, Status: metav1.ConditionUnknown, Reason: "Other", Message: "other"})
		},
		"Mounted moved": func(st *osseav1.MigrationVolumeStatus) {
			meta.RemoveStatusCondition(&st.Conditions, osseav1.ConditionAttached)
		},
	} {
		stale := w.get(mv)
		w.updateStatus(stale.DeepCopy(), change)
		gets, patches = 0, 0
		if err := writeStatusSeen(testCtx, c, reader, key, stale.Generation, stale.Status.VolumeID, mounted(name), nil, stale); err != nil {
			t.Fatal(err)
		}
		if gets != 1 || patches != 2 {
			t.Errorf("%s: %d reads, %d patches; want 1 and 2 (the stale one refused)", name, gets, patches)
		}
		got = w.get(mv)
		m := meta.FindStatusCondition(got.Status.Conditions, osseav1.ConditionMounted)
		if m == nil || m.Message != name || m.Status != metav1.ConditionTrue || got.Status.CloudStackState != "Ready" {
			t.Errorf("%s: Mounted %+v, status %+v", name, m, got.Status)
		}
		n := 0
		for _, c := range got.Status.Conditions {
			if c.Type == osseav1.ConditionMounted {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: %d Mounted conditions, want 1: %+v", name, n, got.Status.Conditions)
		}
		// Back to the state the next case starts from.
		w.updateStatus(w.get(mv), func(st *osseav1.MigrationVolumeStatus) {
			meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: osseav1.ConditionAttached, Status: metav1.ConditionTrue, Reason: "Attached", Message: "attached"})
			meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: osseav1.ConditionMounted, Status: metav1.ConditionFalse, Reason: ReasonWaitingForDevice, Message: "waiting"})
		})
	}

	// The last report, on a current copy.
	got = w.get(mv)
	if err := writeStatusSeen(testCtx, c, reader, key, got.Generation, got.Status.VolumeID, mounted("mounted"), nil, got); err != nil {
		t.Fatal(err)
	}
	got = w.get(mv)

	// A stale copy by which nothing would change sends nothing; the newer version's watch
	// event starts the reconcile that writes, from that version.
	w.updateStatus(w.get(mv), func(st *osseav1.MigrationVolumeStatus) { st.MountPath = "" })
	gets, patches = 0, 0
	if err := writeStatusSeen(testCtx, c, reader, key, got.Generation, got.Status.VolumeID, mounted("mounted"), nil, got); err != nil {
		t.Fatal(err)
	}
	if gets != 0 || patches != 0 {
		t.Errorf("an unchanged report on a stale copy: %d reads, %d patches; want none", gets, patches)
	}
	newer := w.get(mv)
	if err := writeStatusSeen(testCtx, c, reader, key, newer.Generation, newer.Status.VolumeID, mounted("mounted"), nil, newer); err != nil {
		t.Fatal(err)
	}
	if gets != 0 || patches != 1 || w.get(mv).Status.MountPath != "/mnt/migration/job-cached/disk-0" {
		t.Errorf("from the newer copy: %d reads, %d patches, mountPath %q; want 0, 1 and the path restored",
			gets, patches, w.get(mv).Status.MountPath)
	}
}
