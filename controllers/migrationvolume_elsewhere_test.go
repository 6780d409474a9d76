package controllers

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudsim"
	"github.com/migratekit/ossea-operator/internal/testkit"
)

const handVMID = "7d1c2b3a-4e5f-4a6b-9c7d-0000000000f1"

// TestVolumeMovedByHandIsNeverPulledOff: a person moves a volume from the OMA VM to another
// VM (the migrated VM, say), then deletes its object. Whatever the deletionPolicy, the
// volume is neither detached nor deleted: the deletion stalls with AttachedElsewhere naming
// the VM, until the release annotation names that VM; then the object goes and the volume
// stays where the person put it, tagged as released to it.
func TestVolumeMovedByHandIsNeverPulledOff(t *testing.T) {
	w := cloudsim.DefaultWorld()
	w.VirtualMachines = append(w.VirtualMachines, cloudsim.VirtualMachine{ID: handVMID, Name: "migrated-web", Zone: cloudsim.DefaultZoneID, State: "Stopped"})
	volumeWorld(w)
	s := startVolumeSim(t, cloudsim.Options{World: w})
	e := newVolumeEnv(t, s, nil)
	cloud := directCloud(t, e)

	for _, policy := range []osseav1.DeletionPolicy{osseav1.DeletionPolicyDelete, osseav1.DeletionPolicyRetain} {
		t.Run(string(policy), func(t *testing.T) {
			mv := e.newVolume("moved-"+strings.ToLower(string(policy)), func(mv *osseav1.MigrationVolume) {
				mv.Spec.DeletionPolicy = policy
				mv.Spec.Mode = osseav1.VolumeModeBlock
			})
			create(t, mv)
			got := waitVolume(t, mv, 30*time.Second, conditionIs(osseav1.ConditionAttached, metav1.ConditionTrue, osseav1.ReasonAttached))
			volID := got.Status.VolumeID

			// The person's move, with CloudStack's own API.
			jobID, err := cloud.DetachVolume(testCtx, volID)
			if err != nil {
				t.Fatal(err)
			}
			waitJob(t, cloud, jobID)
			if jobID, err = cloud.AttachVolume(testCtx, volID, handVMID); err != nil {
				t.Fatal(err)
			}
			waitJob(t, cloud, jobID)
			detaches, deletes := s.Snapshot().Calls["detachVolume"], s.Snapshot().Calls["deleteVolume"]

			if err := k8s.Delete(testCtx, mv); err != nil {
				t.Fatal(err)
			}
			stalled := waitVolume(t, mv, 30*time.Second, func(mv *osseav1.MigrationVolume) string {
				c := meta.FindStatusCondition(mv.Status.Conditions, osseav1.ConditionStalled)
				// (The normal path may have stalled already, before the deletion, with its own
				// message: the deletion's names the annotation.)
				if c == nil || c.Status != metav1.ConditionTrue || c.Reason != osseav1.ReasonAttachedElsewhere || !strings.Contains(c.Message, osseav1.ReleaseToAnnotation) {
					return "not Stalled by the deletion with AttachedElsewhere"
				}
				return ""
			})
			msg := meta.FindStatusCondition(stalled.Status.Conditions, osseav1.ConditionStalled).Message
			for _, want := range []string{handVMID, osseav1.ReleaseToAnnotation + "=" + handVMID} {
				if !strings.Contains(msg, want) {
					t.Errorf("Stalled message %q does not say %q", msg, want)
				}
			}
			// A few more passes (the stall is looked at again every drift interval): still
			// nothing sent.
			time.Sleep(3 * driftInterval)
			assertOnVM(t, s, volID, handVMID)
			if d := s.Snapshot().Calls["detachVolume"]; d != detaches {
				t.Errorf("detachVolume called %d more times after the move", d-detaches)
			}

			// The person says the volume stays there.
			cur := &osseav1.MigrationVolume{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: mv.Name}}
			update(t, cur, func() { cur.Annotations = map[string]string{osseav1.ReleaseToAnnotation: handVMID} })
			testkit.WaitGone(t, k8s, mv, 30*time.Second, nil)
			v := assertOnVM(t, s, volID, handVMID)
			if tag := tagOf(v, TagReleasedTo); tag != handVMID {
				t.Errorf("released volume tagged %s=%q, want %s", TagReleasedTo, tag, handVMID)
			}
			if d, x := s.Snapshot().Calls["detachVolume"], s.Snapshot().Calls["deleteVolume"]; d != detaches || x != deletes {
				t.Errorf("detachVolume %d→%d, deleteVolume %d→%d: the moved volume was touched", detaches, d, deletes, x)
			}
			if !hasEvent(t, e.ns, mv.Name, osseav1.EventReleased) {
				t.Error("no Released event")
			}
		})
	}
}

// assertOnVM checks that the simulator holds the volume, attached to vm, and returns it.
func assertOnVM(t *testing.T, s *sim, volID, vm string) cloudsim.Volume {
	t.Helper()
	for _, v := range s.Snapshot().Volumes {
		if v.ID == volID {
			if v.VirtualMachineID != vm {
				t.Errorf("volume %s is attached to %q, want it left on %s", volID, v.VirtualMachineID, vm)
			}
			return v
		}
	}
	t.Fatalf("volume %s is gone from CloudStack", volID)
	return cloudsim.Volume{}
}

func tagOf(v cloudsim.Volume, key string) string {
	for _, tag := range v.Tags {
		if tag.Key == key {
			return tag.Value
		}
	}
	return ""
}
