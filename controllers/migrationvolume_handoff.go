package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudstack"
)

// The hand-off of a finished volume to its target VM (spec.handoff). Every pass derives the
// next step from what CloudStack shows now, read fresh, so a restart, a lost reply or a
// failed job ends in the same place:
//
//  1. on the OMA VM, not yet let go: check the target (nothing is touched if it fails),
//     then ask the node agent to let go (HandedOff=False, Releasing);
//  2. on the OMA VM, let go: detach it from the OMA VM;
//  3. detached: as root, tag the target's placeholder root disk replaced-by this volume and
//     detach it (it is kept); then attach this volume, at device 0 as root;
//  4. on the target: tag it handed-off-to, record status.handoff. From then on the volume
//     is the target's and nothing touches it again, deletion included.
//
// A step's job is polled by asking CloudStack about the job itself, never by reading the
// volume: the attach to the target is sent only once the detach from the OMA VM is known
// to be over and a fresh read shows the volume attached nowhere.

// Hand-off operations recorded in status.pendingJob.
const (
	opHandoffDetach = "handoff-detach" // this volume, from the OMA VM
	opRootTag       = "root-tag"       // the target's placeholder root: replaced-by
	opRootDetach    = "root-detach"    // the target's placeholder root, from the target
	opHandoffAttach = "handoff-attach" // this volume, to the target
	opHandoffTag    = "handoff-tag"    // this volume: handed-off-to
	rootDeviceID    = int64(0)         // CloudStack's device id of a root disk
	handoffStepPoll = 200 * time.Millisecond
)

// DefaultHandoffRecheck is how often a refused check on the target is repeated: its cause
// is fixed in CloudStack (a VM stopped), which sends no event.
const DefaultHandoffRecheck = 15 * time.Second

// TagReplacedBy and TagHandedOffTo mark the volumes of a hand-off: the placeholder root disk
// a volume replaced (kept, never deleted), and the volume handed to a VM.
const (
	TagReplacedBy  = osseav1.ReservedTagPrefix + "replaced-by"
	TagHandedOffTo = osseav1.ReservedTagPrefix + "handed-off-to"
)

// rootAttachHypervisors are the hypervisors on which CloudStack attaches a root disk.
var rootAttachHypervisors = []string{"XenServer", "VMware", "KVM", "Simulator"}

func isHandoffOp(op string) bool {
	switch op {
	case opHandoffDetach, opRootTag, opRootDetach, opHandoffAttach, opHandoffTag:
		return true
	}
	return false
}

// handOff moves the volume one step towards its target VM (see above).
func (r *MigrationVolumeReconciler) handOff(ctx context.Context, s *volumeScope) error {
	mv := s.mv
	h := mv.Spec.Handoff
	if mv.Status.Handoff != nil {
		return nil
	}
	vol, err := r.readVolume(ctx, s)
	if err != nil {
		return err
	}
	omaVM := s.cfg.Spec.OMAVirtualMachineID
	if vol.VirtualMachineID != omaVM {
		// Off the OMA VM for good: the slot the attach held there is free for others.
		r.mem.releaseSlot(mv.UID)
	}
	switch vol.VirtualMachineID {
	case h.VirtualMachineID:
		return r.finishHandoff(ctx, s, vol)
	case omaVM:
		if !osseav1.ReleaseForHandoff(mv) {
			if _, err := r.checkTarget(ctx, s); err != nil {
				return err
			}
			r.handoffStep(s, osseav1.ReasonReleasing, "waiting for the node agent to unmount the volume and let it go")
			// The agent must see the request before anything is sent: even one that holds
			// nothing yet could be about to claim the volume.
			return waitFor(time.Second)
		}
		if !agentLetGo(mv) {
			return waitFor(0) // the agent's write wakes the volume
		}
		if err := r.awaitCreate(ctx, s); err != nil {
			return err
		}
		jobID, err := s.cloud.DetachVolume(r.unlessDeleting(ctx, s.mv), vol.ID)
		if err != nil {
			return r.handoffCallFailed(ctx, s, "detaching the volume from the OMA VM for its hand-off", err)
		}
		r.startJob(s, opHandoffDetach, jobID)
		r.handoffStep(s, osseav1.ReasonDetaching, fmt.Sprintf("detaching CloudStack volume %s from the OMA VM %s", vol.ID, omaVM))
		return waitFor(handoffStepPoll)
	case "":
		return r.attachToTarget(ctx, s, vol)
	}
	return stall(osseav1.ConditionHandedOff, osseav1.ReasonAttachedElsewhere, fmt.Sprintf(
		"CloudStack volume %s is attached to VM %s, neither the OMA VM nor the hand-off target %s; detach it there first",
		vol.ID, vol.VirtualMachineID, h.VirtualMachineID))
}

// agentLetGo reports whether the node agent has let go of the volume: no mount finalizer,
// nothing mounted or published.
func agentLetGo(mv *osseav1.MigrationVolume) bool {
	return !controllerutil.ContainsFinalizer(mv, osseav1.MountFinalizer) && mv.Status.MountPath == "" && mv.Status.DevicePath == ""
}

func (r *MigrationVolumeReconciler) handoffStep(s *volumeScope, reason, msg string) {
	s.conditions.set(osseav1.ConditionHandedOff, metav1.ConditionFalse, reason, msg)
}

// checkTarget is the check made before the volume leaves the OMA VM, and again before each
// attach: the target exists, is in the config's zone, can take the volume (as root: its
// hypervisor allows it, it is Stopped and its root is not one the operator handed to it;
// as data: it has a free data-disk slot). For a root disk it returns the target's root, if
// it has one, which the attach must replace.
func (r *MigrationVolumeReconciler) checkTarget(ctx context.Context, s *volumeScope) (*cloudstack.Volume, error) {
	h := s.mv.Spec.Handoff
	target, err := s.cloud.GetVirtualMachine(ctx, h.VirtualMachineID)
	if err != nil && !errors.Is(err, cloudstack.ErrNotFound) {
		return nil, r.cloudError(s, osseav1.ConditionHandedOff, "reading the hand-off target VM", err)
	}
	dataDisks := 0
	if target != nil && !h.AsRoot {
		if dataDisks, err = s.cloud.CountDataVolumes(ctx, h.VirtualMachineID); err != nil {
			return nil, r.cloudError(s, osseav1.ConditionHandedOff, "counting the target VM's data disks", err)
		}
	}
	need := targetNeed{vmID: h.VirtualMachineID, root: h.AsRoot}
	if !h.AsRoot {
		need.data = 1
	}
	if reason, msg := targetProblem(need, target, s.cfg.Status.ZoneID, dataDisks, maxDataVolumes(s.cfg)); reason != "" {
		return nil, &stalling{cond: osseav1.ConditionHandedOff, reason: reason, msg: msg, recheck: r.HandoffRecheck}
	}
	if !h.AsRoot {
		return nil, nil
	}
	onTarget, err := s.cloud.FindVolumes(ctx, cloudstack.VolumeQuery{VirtualMachineID: h.VirtualMachineID})
	if err != nil {
		return nil, r.cloudError(s, osseav1.ConditionHandedOff, "listing the target VM's volumes", err)
	}
	root := rootOf(onTarget)
	if root == nil || root.ID == s.mv.Status.VolumeID {
		return nil, nil
	}
	return root, rootReplaceable(root, h.VirtualMachineID, r.HandoffRecheck)
}

// targetNeed is what a hand-off asks of its target VM: a root disk, and data disk slots.
type targetNeed struct {
	vmID string
	root bool
	data int
}

// targetProblem is the decision of the checks on the target: the Reason and message of what
// keeps it from taking the disks, or "" when nothing does. target is nil when CloudStack
// does not show it to the config's credentials; dataDisks counts its data disks now.
func targetProblem(need targetNeed, target *cloudstack.VirtualMachine, zoneID string, dataDisks, limit int) (string, string) {
	switch {
	case target == nil:
		return osseav1.ReasonTargetVMNotFound, fmt.Sprintf("the target VM %s does not exist or is not visible to the OsseaConfig's credentials; "+
			"fix the target's id (recreate the object) or the account's access", need.vmID)
	case zoneID != "" && !strings.EqualFold(target.ZoneID, zoneID):
		return osseav1.ReasonTargetVMWrongZone, fmt.Sprintf("the target VM %s (%s) is in zone %s, the volume in zone %s; a volume attaches only within its zone",
			target.ID, target.Name, target.ZoneID, zoneID)
	case need.root && !slices.ContainsFunc(rootAttachHypervisors, func(hv string) bool { return strings.EqualFold(hv, target.Hypervisor) }):
		return osseav1.ReasonRootAttachUnsupported, fmt.Sprintf("the target VM %s (%s) runs on %s; CloudStack attaches a root disk only on %s",
			target.ID, target.Name, target.Hypervisor, strings.Join(rootAttachHypervisors, ", "))
	case need.root && target.State != "Stopped":
		return osseav1.ReasonTargetVMNotStopped, fmt.Sprintf("the target VM %s (%s) is %s; stop it to hand it its root disk (nothing was touched; the hand-off goes on once it is Stopped)",
			target.ID, target.Name, target.State)
	case target.State != "Running" && target.State != "Stopped":
		return osseav1.ReasonTargetVMNotStopped, fmt.Sprintf("the target VM %s (%s) is %s; CloudStack attaches disks only to a Running or Stopped VM",
			target.ID, target.Name, target.State)
	case dataDisks+need.data > limit:
		return osseav1.ReasonTargetVMCapacityExhausted, fmt.Sprintf("the target VM %s (%s) holds %d of %d data disks, and %d more are to come; free slots there",
			target.ID, target.Name, dataDisks, limit, need.data)
	}
	return "", ""
}

// attachToTarget attaches the detached volume to the target: as root, once the target's
// placeholder root disk is tagged and detached.
func (r *MigrationVolumeReconciler) attachToTarget(ctx context.Context, s *volumeScope, vol *cloudstack.Volume) error {
	h := s.mv.Spec.Handoff
	s.mv.Status.AttachedVirtualMachineID = ""
	root, err := r.checkTarget(ctx, s)
	if err != nil {
		return err
	}
	if !h.AsRoot {
		jobID, err := s.cloud.AttachVolume(r.unlessDeleting(ctx, s.mv), vol.ID, h.VirtualMachineID)
		if err != nil {
			return r.handoffCallFailed(ctx, s, "attaching the volume to the target VM", err)
		}
		r.startJob(s, opHandoffAttach, jobID)
		r.handoffStep(s, osseav1.ReasonAttaching, fmt.Sprintf("attaching CloudStack volume %s to the target VM %s as a data disk", vol.ID, h.VirtualMachineID))
		return waitFor(handoffStepPoll)
	}
	if root != nil {
		return r.replaceRoot(ctx, s, vol, root)
	}
	jobID, err := s.cloud.AttachVolumeAt(r.unlessDeleting(ctx, s.mv), vol.ID, h.VirtualMachineID, rootDeviceID)
	if err != nil {
		return r.handoffCallFailed(ctx, s, "attaching the volume to the target VM as its root disk", err)
	}
	r.startJob(s, opHandoffAttach, jobID)
	r.handoffStep(s, osseav1.ReasonAttaching, fmt.Sprintf("attaching CloudStack volume %s to the target VM %s as its root disk", vol.ID, h.VirtualMachineID))
	return waitFor(handoffStepPoll)
}

// rootOf is the volume at device 0 among a VM's volumes, nil when there is none.
func rootOf(vols []cloudstack.Volume) *cloudstack.Volume {
	for i := range vols {
		if d := vols[i].DeviceID; d != nil && *d == rootDeviceID {
			return &vols[i]
		}
	}
	return nil
}

// rootReplaceable refuses to take off a root disk the operator handed to the VM: a
// handed-off volume is never detached again.
func rootReplaceable(root *cloudstack.Volume, vmID string, recheck time.Duration) error {
	if root.Tags[TagHandedOffTo] == "" {
		return nil
	}
	return &stalling{cond: osseav1.ConditionHandedOff, reason: osseav1.ReasonTargetVMRootInUse, recheck: recheck, msg: fmt.Sprintf(
		"the target VM %s already boots from volume %s, handed to it by the operator; it is never taken off again. Choose another target", vmID, root.ID)}
}

// replaceRoot takes the target's current root disk off, tagged first with what replaced it
// so that it is never mistaken for an orphan; it is kept, never deleted: the operator did
// not create it.
func (r *MigrationVolumeReconciler) replaceRoot(ctx context.Context, s *volumeScope, vol, root *cloudstack.Volume) error {
	if root.Tags[TagReplacedBy] != vol.ID {
		jobID, err := s.cloud.CreateTags(r.unlessDeleting(ctx, s.mv), root.ID, map[string]string{TagReplacedBy: vol.ID})
		if err != nil {
			return r.handoffCallFailed(ctx, s, "tagging the target VM's root disk", err)
		}
		r.startJob(s, opRootTag, jobID)
	} else {
		jobID, err := s.cloud.DetachVolume(r.unlessDeleting(ctx, s.mv), root.ID)
		if err != nil {
			return r.handoffCallFailed(ctx, s, "detaching the target VM's root disk", err)
		}
		r.startJob(s, opRootDetach, jobID)
	}
	r.handoffStep(s, osseav1.ReasonReplacingRoot, fmt.Sprintf("detaching the target VM's root disk %s (kept, tagged %s=%s)", root.ID, TagReplacedBy, vol.ID))
	return waitFor(handoffStepPoll)
}

// finishHandoff records a volume found on its target: tagged handed-off-to, then status.
func (r *MigrationVolumeReconciler) finishHandoff(ctx context.Context, s *volumeScope, vol *cloudstack.Volume) error {
	mv, h := s.mv, s.mv.Spec.Handoff
	if vol.Tags[TagHandedOffTo] != h.VirtualMachineID {
		jobID, err := s.cloud.CreateTags(r.unlessDeleting(ctx, s.mv), vol.ID, map[string]string{TagHandedOffTo: h.VirtualMachineID})
		if err != nil {
			return r.handoffCallFailed(ctx, s, "tagging the handed-off volume", err)
		}
		r.startJob(s, opHandoffTag, jobID)
		r.handoffStep(s, osseav1.ReasonTagging, fmt.Sprintf("tagging CloudStack volume %s %s=%s", vol.ID, TagHandedOffTo, h.VirtualMachineID))
		return waitFor(handoffStepPoll)
	}
	device := derefOr(vol.DeviceID, -1)
	mv.Status.Handoff = &osseav1.HandoffStatus{VirtualMachineID: h.VirtualMachineID, DeviceID: device, CompletedAt: metav1.Now()}
	s.conditions.set(osseav1.ConditionHandedOff, metav1.ConditionTrue, osseav1.ReasonHandedOff,
		fmt.Sprintf("CloudStack volume %s is attached to VM %s as device %d; it is that VM's now", vol.ID, h.VirtualMachineID, device))
	s.conditions.set(osseav1.ConditionAttached, metav1.ConditionFalse, osseav1.ReasonNotAttached,
		fmt.Sprintf("handed off to VM %s; no longer on the OMA VM", h.VirtualMachineID))
	r.Recorder.Eventf(mv, nil, corev1.EventTypeNormal, osseav1.ReasonHandedOff, "Handoff",
		"Handed CloudStack volume %s to VM %s as device %d", vol.ID, h.VirtualMachineID, device)
	return nil
}

// handoffCallFailed is the outcome of a hand-off step whose call failed: not sent, because
// the object is being deleted (the deletion takes over), or refused by CloudStack.
func (r *MigrationVolumeReconciler) handoffCallFailed(ctx context.Context, s *volumeScope, action string, err error) error {
	if errors.Is(err, cloudstack.ErrNotSent) {
		return r.notSent(ctx, action, err)
	}
	return r.cloudError(s, osseav1.ConditionHandedOff, action, err)
}

// handedOff reports whether a volume being deleted belongs to its target VM: recorded so,
// or found there by a read.
func handedOff(mv *osseav1.MigrationVolume, vol *cloudstack.Volume) bool {
	if mv.Status.Handoff != nil {
		return true
	}
	h := mv.Spec.Handoff
	return h != nil && vol != nil && vol.VirtualMachineID == h.VirtualMachineID
}
