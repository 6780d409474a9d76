package nodeagent

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/moby/sys/mountinfo"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/guestdisk"
)

// The agent's decisions, as pure functions of what the object says and what the host
// showed: no host, no API server, no clock of their own. The reconciler gathers the facts
// through its host and acts on the answer; keeping the deciding here means every rule
// (never format a device that holds anything, never mount twice, never unmount lazily) is
// tested on its own, with tables, as any user.

// route is which of its paths a reconcile takes with a volume.
type route int

const (
	routeNothing    route = iota // not this agent's business (yet)
	routeRelease                 // deleted: unmount and let go of the finalizer
	routeHandoff                 // handed to another VM: unmount or unpublish, let go for good
	routeDetached                // no longer placed on this VM: release it if its disk left
	routeBlock                   // Block mode: find, check and publish the device
	routeFilesystem              // Filesystem mode: find, check, format if blank, mount
)

// routeOf chooses the path for a volume an agent of VM vmID on node nodeName was asked
// about. Deletion comes first: a deleted object is only ever released, and only by the
// agent that holds it.
func routeOf(mv *osseav1.MigrationVolume, vmID, nodeName string) route {
	switch {
	case !mv.DeletionTimestamp.IsZero():
		if !holds(mv, vmID, nodeName) {
			return routeNothing // Block mode, already released, or another node's
		}
		return routeRelease
	case osseav1.ReleaseForHandoff(mv):
		// The manager detaches only once this agent has let go; after that the volume is
		// never this agent's again.
		if !holds(mv, vmID, nodeName) && !published(mv, nodeName) {
			return routeNothing
		}
		return routeHandoff
	case !placedOn(mv, vmID):
		if !holds(mv, vmID, nodeName) && !published(mv, nodeName) {
			return routeNothing // not attached yet, or never ours
		}
		return routeDetached
	case mv.Spec.Mode == osseav1.VolumeModeBlock:
		return routeBlock
	}
	return routeFilesystem
}

// holds: the mount finalizer is there, and the claim is this node's (the claim label,
// applied with the finalizer; on a volume claimed by an older agent, status.nodeName,
// which it wrote before adding the finalizer; a volume older still, with neither, counts
// as held by the agent of the VM it is attached to).
func holds(mv *osseav1.MigrationVolume, vmID, nodeName string) bool {
	if !controllerutil.ContainsFinalizer(mv, osseav1.MountFinalizer) {
		return false
	}
	claim := mv.ClaimedBy()
	return claim == nodeName || (claim == "" && mv.Status.AttachedVirtualMachineID == vmID)
}

// published reports whether this node's agent published the volume's device in Block mode
// (no finalizer there): the path it reported is its to take back when the disk leaves.
func published(mv *osseav1.MigrationVolume, nodeName string) bool {
	return mv.Spec.Mode == osseav1.VolumeModeBlock && mv.Status.NodeName == nodeName && mv.Status.DevicePath != ""
}

// placedOn reports whether the manager has the volume on VM vmID: attached, or being
// attached (the manager names the VM as soon as it starts the attach job). The agent claims
// a volume being attached straight away, so that once its disk appears only the mount is
// left to do.
func placedOn(mv *osseav1.MigrationVolume, vmID string) bool {
	return mv.Status.AttachedVirtualMachineID == vmID && mv.Status.VolumeID != ""
}

// attachConfirmed reports whether the manager has seen the attach finish.
func attachConfirmed(mv *osseav1.MigrationVolume) bool {
	return meta.IsStatusConditionTrue(mv.Status.Conditions, osseav1.ConditionAttached)
}

// attachedSince is when the manager last reported the volume attached.
func attachedSince(mv *osseav1.MigrationVolume) time.Time {
	if c := meta.FindStatusCondition(mv.Status.Conditions, osseav1.ConditionAttached); c != nil {
		return c.LastTransitionTime.Time
	}
	return mv.CreationTimestamp.Time
}

// filesystemOf is the volume's filesystem type and format policy with the API defaults
// applied (the whole filesystem block is optional).
func filesystemOf(mv *osseav1.MigrationVolume) (string, osseav1.FormatPolicy) {
	fsType, policy := osseav1.FilesystemExt4, osseav1.FormatIfBlank
	if f := mv.Spec.Filesystem; f != nil {
		if f.Type != "" {
			fsType = f.Type
		}
		if f.FormatPolicy != "" {
			policy = f.FormatPolicy
		}
	}
	return string(fsType), policy
}

// deviceWait is what the agent knows about a volume whose disk is not on the node.
type deviceWait struct {
	byIDDir, vmID string
	// now is the reconcile's clock, passed in so that the decision is a function.
	now           time.Time
	deviceTimeout time.Duration
	resync        time.Duration
}

// missingDevice is the report to make about a volume whose disk has not appeared, and when
// to look again: the disk is awaited (Reason WaitingForDevice) while the attach job runs
// and until deviceTimeout after the manager has seen it finish, then reported missing
// (DeviceNotFound). The waiting message is the same before and after the attach finished
// (the Attached condition tells the two apart), so the manager's confirmation of the attach
// costs no write of the agent's, nor one of the manager's, which copies the message into
// Ready while Mounted is what it waits for. The by-id watcher brings the volume back the
// moment a link appears; the timers are only for the reports.
func missingDevice(mv *osseav1.MigrationVolume, w deviceWait) (*report, ctrl.Result) {
	names := guestdisk.LinkNames(mv.Status.VolumeID)
	if names == nil {
		return &report{status: metav1.ConditionFalse, reason: osseav1.ReasonDeviceNotFound,
			message: fmt.Sprintf("status.volumeID %q is not a CloudStack volume UUID, so its disk serial is unknown", mv.Status.VolumeID)}, ctrl.Result{}
	}
	links := make([]string, len(names))
	for i, n := range names {
		links[i] = w.byIDDir + "/" + n
	}
	want := strings.Join(links, " or ")
	waiting := &report{status: metav1.ConditionFalse, reason: osseav1.ReasonWaitingForDevice,
		message: fmt.Sprintf("waiting for the disk of CloudStack volume %s to appear as %s; it is reported missing if it has not appeared %s after the attach finished",
			mv.Status.VolumeID, want, w.deviceTimeout)}
	if !attachConfirmed(mv) {
		return waiting, ctrl.Result{RequeueAfter: w.resync}
	}
	waited := w.now.Sub(attachedSince(mv))
	if waited < w.deviceTimeout {
		return waiting, ctrl.Result{RequeueAfter: w.deviceTimeout - waited + 100*time.Millisecond}
	}
	return &report{status: metav1.ConditionFalse, reason: osseav1.ReasonDeviceNotFound,
		message: fmt.Sprintf("no disk appeared as %s within %s of the attachment: check in CloudStack that volume %s is attached to VM %s, "+
			"and on the node that the guest sees a new disk (lsblk, dmesg); the agent keeps watching", want, w.deviceTimeout, mv.Status.VolumeID, w.vmID),
	}, ctrl.Result{RequeueAfter: w.resync}
}

// deviceWaitGrace is how long after its claim the agent keeps quiet about a disk that has
// not appeared. The claim is metadata and says nothing of the disk; a disk usually appears
// within a second of it (the attach job runs meanwhile), and a status write saying "waiting
// for the disk" would be one per volume that no one reads. A disk still missing after the
// grace is worth saying: an attach that is slow or stuck. (The manager's teardown is quiet
// for as long before it says it waits for the agent: agentLetGoGrace.)
const deviceWaitGrace = 5 * time.Second

// quietAboutMissingDevice is how much longer the agent keeps rep (missingDevice's report)
// to itself, having claimed the volume at claimedAt (the API server's clock), when it is
// now; 0 means report it now. Only WaitingForDevice is kept back: DeviceNotFound (after
// the device timeout) is a failure a person must see at once. An unknown claim time (a
// copy without managed fields) counts as long ago. The grace is never longer than
// deviceWaitGrace, whatever the skew between the agent's clock and the API server's.
func quietAboutMissingDevice(rep *report, claimedAt, now time.Time) time.Duration {
	if rep.reason != osseav1.ReasonWaitingForDevice || claimedAt.IsZero() {
		return 0
	}
	return min(max(deviceWaitGrace-now.Sub(claimedAt), 0), deviceWaitGrace)
}

// claimedAt is when the agent's claim of mv was stored: the time the API server put on
// the agent's apply of its metadata (its entry in managedFields, which changes only when
// what the agent applies changes: the claim, and the release). Zero if mv shows none.
func claimedAt(mv *osseav1.MigrationVolume) time.Time {
	for _, f := range mv.ManagedFields {
		if f.Manager == osseav1.AgentFieldOwner && f.Operation == metav1.ManagedFieldsOperationApply && f.Subresource == "" && f.Time != nil {
			return f.Time.Time
		}
	}
	return time.Time{}
}

// keepMountWithoutLink decides about a volume whose by-id link is gone while something is
// mounted at its path and the status says Mounted: udev rewriting its links, usually. The
// mount itself works; calling the disk missing would only make the status flap. A disk
// that really left is detached in CloudStack, and the volume then leaves this agent's
// cache (and takes routeDetached).
func keepMountWithoutLink(mv *osseav1.MigrationVolume, mountsAtPath int) bool {
	return mountsAtPath > 0 && meta.IsStatusConditionTrue(mv.Status.Conditions, osseav1.ConditionMounted)
}

// step is what a reconcile does next with a volume's disk.
type step int

const (
	stepGoOn          step = iota // nothing against it at this stage: go on to the next check
	stepRefuse                    // leave the device as it is and report why: a person has to act
	stepReportMounted             // mounted at its path as wanted already: say so, change nothing
	stepFormat                    // blank, and formatting is allowed: mkfs, then mount
	stepRedoFormat                // the remains of the agent's own cut-short mkfs: mkfs again, then mount
	stepMount                     // holds the wanted filesystem: mount it as it is
)

func (s step) String() string {
	return [...]string{"go on", "refuse", "report mounted", "format", "redo format", "mount"}[s]
}

// decision is a step and, for stepRefuse, the Mounted reason and the message for the
// person who has to act.
type decision struct {
	step    step
	reason  string
	message string
}

func goOn() decision { return decision{step: stepGoOn} }

func refuse(reason, format string, args ...any) decision {
	return decision{step: stepRefuse, reason: reason, message: fmt.Sprintf(format, args...)}
}

// decideSize refuses a device whose size is not the volume's, in either mode, before
// anything else looks at it: it is not the volume's disk, or CloudStack resized it, and
// either way nothing on it may be trusted to be what the object describes.
func decideSize(dev *Device, sizeGiB int32) decision {
	if msg := guestdisk.SizeMismatch(dev.Link, dev.Path, dev.Size, sizeGiB); msg != "" {
		return refuse(osseav1.ReasonDeviceSizeMismatch, "%s", msg)
	}
	return goOn()
}

// decideMounts decides from the mount table before anything probes the device: atPath are
// the mounts at the volume's path (topmost last), elsewhere the device's own mounts
// anywhere (consulted only when nothing is at the path). A mount of the volume's disk at
// its path is an agent restart or a resync, recognised and reported, never made twice.
func decideMounts(dev *Device, path, fsType string, atPath, elsewhere []*mountinfo.Info) decision {
	if len(atPath) > 0 {
		top := atPath[len(atPath)-1] // the one a process sees
		switch {
		case !isDevice(top, dev):
			return refuse(osseav1.ReasonMountFailed,
				"%s already has %s (device %d:%d) mounted, not this volume's disk %s (%s, %d:%d); unmount it and the agent mounts the volume",
				path, top.Source, top.Major, top.Minor, dev.Link, dev.Path, dev.Major, dev.Minor)
		case top.FSType != fsType:
			return refuse(osseav1.ReasonFilesystemMismatch, "%s is mounted at %s as %s but spec.filesystem.type is %s", dev.Path, path, top.FSType, fsType)
		case readOnly(top):
			return refuse(osseav1.ReasonMountFailed,
				"%s is mounted read-only at %s, usually after filesystem errors: check the kernel log (dmesg), stop the writers, unmount it and repair it (fsck); the agent then mounts it again",
				dev.Path, path)
		}
		return decision{step: stepReportMounted}
	}
	if len(elsewhere) > 0 {
		return refuse(osseav1.ReasonDeviceInUse, "%s (%s) is already mounted at %s; the agent mounts it only at %s: unmount it there first",
			dev.Link, dev.Path, mountPoints(elsewhere), path)
	}
	return goOn()
}

// decideContent is the rule the agent exists to keep: a device is formatted only if it
// holds nothing (no filesystem, no partition table) and the policy allows it, or if what it
// holds is the agent's own cut-short format for this very object; a device holding the
// wanted filesystem is mounted as it is; anything else is refused and left untouched.
func decideContent(dev *Device, content diskContent, fsType string, policy osseav1.FormatPolicy) decision {
	switch {
	case content.interrupted && policy == osseav1.FormatIfBlank &&
		(content.kind == contentBlank || (content.kind == contentFilesystem && content.fsType == fsType)):
		// Our own format of this disk was cut short: what is there is a partial filesystem
		// of ours, never mounted, holding nothing.
		return decision{step: stepRedoFormat}
	case content.kind == contentPartitioned:
		return refuse(osseav1.ReasonDeviceNotBlank,
			"%s (%s) holds a partition table; the agent never formats a device that holds anything. "+
				"If its data is not needed, wipe it (wipefs -a %s) and the agent formats it; otherwise use mode Block",
			dev.Link, dev.Path, dev.Path)
	case content.kind == contentFilesystem && content.fsType != fsType:
		return refuse(osseav1.ReasonFilesystemMismatch,
			"%s (%s) holds a filesystem of type %s but spec.filesystem.type is %s; the agent never reformats. "+
				"Recreate the object with filesystem type %s to mount it, or wipe the device if its data is not needed",
			dev.Link, dev.Path, content.fsType, fsType, content.fsType)
	case content.kind == contentBlank && policy == osseav1.FormatNever:
		return refuse(osseav1.ReasonDeviceBlank,
			"%s (%s) holds no filesystem and formatPolicy is Never; the volume was expected to carry data. "+
				"Check that the right volume is attached, or recreate the object with formatPolicy IfBlank",
			dev.Link, dev.Path)
	case content.kind == contentBlank:
		return decision{step: stepFormat}
	}
	return decision{step: stepMount}
}

// checkFormatted says whether mkfs left what it was asked for; mkfs exiting 0 is not proof
// enough to mount a disk that migration data will be written to.
func checkFormatted(dev *Device, fsType string, content diskContent) error {
	if content.kind != contentFilesystem || content.fsType != fsType {
		return fmt.Errorf("after mkfs.%s, %s holds %s", fsType, dev.Path, content)
	}
	return nil
}

// checkMounted says whether mount(2) did what it said: the volume's disk is on top at dir.
func checkMounted(dev *Device, dir string, atDir []*mountinfo.Info) error {
	if len(atDir) == 0 || !isDevice(atDir[len(atDir)-1], dev) {
		return fmt.Errorf("mount(8) succeeded but %s does not show %s mounted", dir, dev.Path)
	}
	return nil
}

// mountedNote is the note of a mount's one event: what was mounted where, and whether the
// agent formatted it first (step, decideContent's). Whether a disk was formatted is an
// outcome no condition keeps, and the one a person most needs to know about a disk that
// was to carry data, so a mount that formatted nothing says so too.
func mountedNote(dev *Device, fsType, dir string, s step) string {
	switch s {
	case stepFormat:
		return fmt.Sprintf("Formatted blank device %s (%s) as %s and mounted it at %s", dev.Link, dev.Path, fsType, dir)
	case stepRedoFormat:
		return fmt.Sprintf("Formatted %s (%s) as %s again, as the agent's earlier format of it had been cut short, and mounted it at %s",
			dev.Link, dev.Path, fsType, dir)
	}
	return fmt.Sprintf("Mounted %s (%s) at %s as it was: it already held an %s filesystem, and nothing was formatted", dev.Link, dev.Path, dir, fsType)
}

// blockPublishedBefore reports whether the last reconcile already published this very
// device, so that a resync neither logs nor sends the Published event again.
func blockPublishedBefore(prev *metav1.Condition, mv *osseav1.MigrationVolume, dev *Device) bool {
	return prev != nil && prev.Status == metav1.ConditionTrue && prev.Reason == osseav1.ReasonPublished &&
		mv.Status.DevicePath == dev.Link
}

// maxStackedMounts bounds the unmounts of one release; more mounts than this stacked on one
// path is not something the agent made.
const maxStackedMounts = 8

// releaseAction is the next thing a release does at the volume's path.
type releaseAction int

const (
	releaseDone    releaseAction = iota // nothing (left) mounted: remove the directories, let go
	releaseUnmount                      // something is mounted: unmount the topmost
	releaseBusy                         // the unmount was refused, busy: report UnmountBusy, retry later
	releaseFailed                       // the unmount failed otherwise, or mounts do not end: an error, retried
)

func (a releaseAction) String() string {
	return [...]string{"done", "unmount", "busy", "failed"}[a]
}

// nextRelease decides a release's next step from the mounts now at the path, the unmounts
// it has made so far, and how the last one ended (nil before the first). It never decides
// a lazy or forced unmount: those report success while writers still write, and the
// manager would detach a disk in use.
func nextRelease(mountsAtPath, unmounts int, lastUnmount error) releaseAction {
	switch {
	case errors.Is(lastUnmount, ErrBusy):
		return releaseBusy
	case lastUnmount != nil:
		return releaseFailed
	case mountsAtPath == 0:
		return releaseDone
	case unmounts >= maxStackedMounts:
		return releaseFailed
	}
	return releaseUnmount
}

// unmountBackoff is the wait before the next attempt to unmount a busy filesystem, after
// attempts busy ones: from 250ms, doubling, capped at limit, so a briefly busy mount is let
// go quickly and a long-held one is not hammered.
func unmountBackoff(attempts int, limit time.Duration) time.Duration {
	return min(time.Duration(1<<min(attempts, 16))*250*time.Millisecond, limit)
}

// busyReport is the report for a filesystem a process still uses.
func busyReport(path string) *report {
	return &report{status: metav1.ConditionFalse, reason: osseav1.ReasonUnmountBusy,
		message: fmt.Sprintf("cannot unmount %s: it is busy, a process has a file, its working directory or a mount there. "+
			"Find it with `fuser -vm %s` (or `lsof +f -- %s`) and stop it; the agent retries with backoff and never unmounts lazily",
			path, path, path)}
}

// reportsDeleteRelease says whether the release of a deleted volume writes the Unmounted
// report before letting go, given the Mounted condition it found. Usually it does not (the
// mount finalizer's going says it, and the object is on its way out), but a condition that
// says a person must act (a refused disk, a disk never found) would keep the volume
// Stalled through the manager's detach and delete, and UnmountBusy would keep sending
// them after a process that no longer holds anything: those are corrected first.
func reportsDeleteRelease(prev *metav1.Condition) bool {
	return prev != nil && prev.Status == metav1.ConditionFalse &&
		(osseav1.NeedsPerson(prev.Reason) || prev.Reason == osseav1.ReasonUnmountBusy)
}

// unmountedReport is the report of reportsDeleteRelease.
func unmountedReport() *report {
	return &report{status: metav1.ConditionFalse, reason: osseav1.ReasonUnmounted,
		message: "unmounted; the volume may be detached", mountPath: strp("")}
}

// detachedReport is the report about a volume let go after it left this VM: its disk left
// while mounted (the mount was dead and has been unmounted), or the claim never got as far
// as a mount because the attach failed.
func detachedReport(mv *osseav1.MigrationVolume, vmID string, unmounted bool, prev *metav1.Condition) *report {
	// devicePath is the agent's too (see the ownership contract): the link is gone.
	if mv.Spec.Mode == osseav1.VolumeModeBlock {
		return &report{status: metav1.ConditionFalse, reason: osseav1.ReasonNotAttached,
			message:    fmt.Sprintf("volume %s is no longer attached to this VM (%s); its device is published again once it is", mv.Status.VolumeID, vmID),
			devicePath: strp("")}
	}
	if !unmounted && (prev == nil || prev.Status != metav1.ConditionTrue) {
		return &report{status: metav1.ConditionFalse, reason: osseav1.ReasonNotAttached,
			message:   fmt.Sprintf("volume %s is not attached to this VM (%s); the agent mounts it once it is", mv.Status.VolumeID, vmID),
			mountPath: strp(""), devicePath: strp("")}
	}
	return &report{status: metav1.ConditionFalse, reason: osseav1.ReasonDeviceDetached,
		message:   "the volume's disk left this node while mounted; the agent unmounted it and mounts it again when the volume is attached again",
		mountPath: strp(""), devicePath: strp("")}
}

// handoffReport is what the agent says once it let go of a volume for its hand-off.
func handoffReport(mv *osseav1.MigrationVolume) *report {
	return &report{status: metav1.ConditionFalse, reason: osseav1.ReasonReleasedForHandoff,
		message:   fmt.Sprintf("released for the hand-off to VM %s; the volume may be detached", mv.Spec.Handoff.VirtualMachineID),
		mountPath: strp(""), devicePath: strp("")}
}

// warnsOnReport says whether a report deserves a Warning event: on the transition into a
// failure a person has to look at, not on every resync that finds it still so.
func warnsOnReport(prev *metav1.Condition, rep *report) bool {
	changed := prev == nil || prev.Reason != rep.reason || prev.Status != rep.status
	return changed && rep.status == metav1.ConditionFalse && warningReasons[rep.reason]
}

// warningReasons are the Mounted reasons a person has to look at.
var warningReasons = map[string]bool{
	osseav1.ReasonDeviceNotFound: true, osseav1.ReasonDeviceSizeMismatch: true, osseav1.ReasonDeviceNotBlank: true,
	osseav1.ReasonFilesystemMismatch: true, osseav1.ReasonDeviceBlank: true, osseav1.ReasonDeviceInUse: true,
	osseav1.ReasonInvalidMountPath: true, osseav1.ReasonMountFailed: true, osseav1.ReasonFormatFailed: true,
	osseav1.ReasonUnmountBusy: true, osseav1.ReasonDeviceDetached: true,
}
