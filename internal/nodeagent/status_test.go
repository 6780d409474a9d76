package nodeagent

import (
	"context"
	"testing"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/ownership"
)

// The manager and the agent write the status at the same time, each from a copy that does
// not show the other's last write. Neither write is refused, neither reverts the other,
// and a report that changes nothing is not sent.
func TestStatusWritersNeverRefuseNorRevertEachOther(t *testing.T) {
	w := newAPIWorld(t)
	mv := w.newVolume("race", "job-race", "disk-0", 1)
	w.attach(mv, "0b3f5c2e-9a41-4d6e-8f00-123456789abc")
	agentCopy, managerCopy := w.get(mv), w.get(mv)

	raw, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	writes, refused := 0, 0
	c := interceptor.NewClient(raw, interceptor.Funcs{
		SubResourceApply: func(ctx context.Context, c client.Client, sub string, obj runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
			writes++
			err := c.SubResource(sub).Apply(ctx, obj, opts...)
			if apierrors.IsConflict(err) {
				refused++
			}
			return err
		},
	})
	r := &Reconciler{Client: c, NodeName: "node-a"}

	// The manager's write lands first.
	managerPart := managerCopy.Status.ManagerPart()
	meta.SetStatusCondition(&managerPart.Conditions, metav1.Condition{Type: osseav1.ConditionAllocated, Status: metav1.ConditionTrue, Reason: "Created", Message: "manager"})
	managerPart.CloudStackState = "Ready"
	if err := ownership.ApplyStatus(testCtx, c, managerCopy, managerPart, osseav1.ManagerFieldOwner); err != nil {
		t.Fatal(err)
	}
	// The agent reports from its older copy.
	mounted := &report{status: metav1.ConditionTrue, reason: osseav1.ReasonMounted, message: "mounted",
		mountPath: strp("/mnt/migration/job-race/disk-0"), filesystemType: strp("ext4")}
	if err := r.setStatus(testCtx, &volumeScope{mv: agentCopy, log: logr.Discard()}, mounted); err != nil {
		t.Fatal(err)
	}
	got := w.get(mv)
	if a := meta.FindStatusCondition(got.Status.Conditions, osseav1.ConditionAllocated); a == nil || a.Message != "manager" || got.Status.CloudStackState != "Ready" {
		t.Errorf("the manager's write was reverted: %+v", got.Status)
	}
	if m := meta.FindStatusCondition(got.Status.Conditions, osseav1.ConditionMounted); m == nil || m.Reason != osseav1.ReasonMounted ||
		got.Status.MountPath != "/mnt/migration/job-race/disk-0" || got.Status.NodeName != "node-a" {
		t.Errorf("the agent's write is missing: %+v", got.Status)
	}

	// Now the manager writes from its copy, which has never seen Mounted: Mounted stays.
	managerPart.CloudStackState = "Ready again"
	if err := ownership.ApplyStatus(testCtx, c, managerCopy, managerPart, osseav1.ManagerFieldOwner); err != nil {
		t.Fatal(err)
	}
	got = w.get(mv)
	if m := meta.FindStatusCondition(got.Status.Conditions, osseav1.ConditionMounted); m == nil || m.Reason != osseav1.ReasonMounted || got.Status.MountPath == "" ||
		got.Status.CloudStackState != "Ready again" {
		t.Errorf("after the manager's second write: %+v", got.Status)
	}
	if a := meta.FindStatusCondition(got.Status.Conditions, osseav1.ConditionAttached); a == nil || a.Status != metav1.ConditionTrue {
		t.Errorf("Attached lost: %+v", got.Status.Conditions)
	}
	if writes != 3 || refused != 0 {
		t.Errorf("%d writes, %d refused; want 3 and none refused", writes, refused)
	}

	// The same report again, from the current copy, sends nothing: a restarted agent leaves
	// the object alone.
	before := got.ResourceVersion
	if err := r.setStatus(testCtx, &volumeScope{mv: got, log: logr.Discard()}, mounted); err != nil {
		t.Fatal(err)
	}
	if writes != 3 || w.get(mv).ResourceVersion != before {
		t.Errorf("an unchanged report was written (%d writes)", writes)
	}

	// The agent lets go (for a hand-off): its fields it clears are removed, the manager's stay.
	released := &report{status: metav1.ConditionFalse, reason: osseav1.ReasonReleasedForHandoff, message: "released", mountPath: strp(""), filesystemType: strp("")}
	if err := r.setStatus(testCtx, &volumeScope{mv: w.get(mv), log: logr.Discard()}, released); err != nil {
		t.Fatal(err)
	}
	got = w.get(mv)
	if got.Status.MountPath != "" || got.Status.FilesystemType != "" || got.Status.CloudStackState != "Ready again" {
		t.Errorf("after the release: %+v", got.Status)
	}
}
