package nodeagent

import (
	"context"
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

// reconcileFilesystem takes a volume in Filesystem mode to mounted: claim it, find its
// disk, check the disk, format it only if it is blank and allowed, mount it. Every step is
// checked against the machine's actual state first, so running it again (a resync, an
// agent restart) changes nothing once the volume is mounted.
func (r *Reconciler) reconcileFilesystem(ctx context.Context, s *volumeScope) (ctrl.Result, error) {
	mv := s.mv
	dev, waiting, res, err := r.lookForDevice(s)
	if err != nil {
		return ctrl.Result{}, err
	}
	if !controllerutil.ContainsFinalizer(mv, osseav1.MountFinalizer) {
		// Claim first, then hold: nodeName says which agent the finalizer belongs to, and
		// the finalizer is stored before the device is touched, so the manager can never
		// detach a disk from under a mount this agent is about to make. A volume whose
		// disk has not appeared yet (usually: its attach is still running) is claimed
		// with the report that it waits for it, in the same write.
		claim := waiting
		if claim == nil {
			claim = &report{}
		}
		if err := r.setStatus(ctx, s, claim); err != nil {
			return ctrl.Result{}, err
		}
		if ok, err := r.patchFinalizers(ctx, mv, controllerutil.AddFinalizer); !ok || err != nil {
			return retrySoon, err
		}
	}

	fsType, policy := filesystemOf(mv)
	path, err := MountPath(r.MountRoot, mv.Spec.JobID, mv.Spec.DiskName)
	if err != nil {
		// Both fields are immutable, so retrying cannot help; only a new object can.
		return ctrl.Result{}, r.setStatus(ctx, s, &report{status: metav1.ConditionFalse, reason: ReasonInvalidMountPath,
			message: fmt.Sprintf("cannot mount under %s: %v; jobID and diskName must be DNS labels: recreate the object with valid values", r.MountRoot, err)})
	}

	if dev == nil {
		at, err := mountsAt(path)
		if err != nil {
			return ctrl.Result{}, err
		}
		if len(at) > 0 && meta.IsStatusConditionTrue(mv.Status.Conditions, osseav1.ConditionMounted) {
			// Mounted, and the link is gone while the manager still reports the disk
			// attached: udev rewriting its links, usually. The mount itself works; calling
			// it missing would only make the status flap. A disk that really left is
			// detached in CloudStack, and the volume then leaves this agent's cache.
			s.log.V(1).Info("By-id link missing while mounted; keeping the mount", "path", path)
			return ctrl.Result{RequeueAfter: r.ResyncInterval}, nil
		}
		return res, r.setStatus(ctx, s, waiting)
	}
	if msg := guestdisk.SizeMismatch(dev.Link, dev.Path, dev.Size, mv.Spec.SizeGiB); msg != "" {
		return r.refuse(ctx, s, dev, ReasonDeviceSizeMismatch, msg)
	}
	unlock := r.devices.lock(dev)
	defer unlock()

	// Already mounted: an agent restart or a resync. Recognise it, never mount twice.
	at, err := mountsAt(path)
	if err != nil {
		return ctrl.Result{}, err
	}
	if len(at) > 0 {
		return r.reportExistingMount(ctx, s, dev, path, fsType, at)
	}
	if elsewhere, err := mountsOfDevice(dev); err != nil {
		return ctrl.Result{}, err
	} else if len(elsewhere) > 0 {
		return r.refuse(ctx, s, dev, ReasonDeviceInUse, fmt.Sprintf(
			"%s (%s) is already mounted at %s; the agent mounts it only at %s: unmount it there first",
			dev.Link, dev.Path, mountPoints(elsewhere), path))
	}

	content, err := r.formatter.detect(dev.Path)
	if err != nil {
		return ctrl.Result{}, err
	}
	interrupted, err := r.marks.interrupted(mv.Status.VolumeID, mv.UID)
	if err != nil {
		return ctrl.Result{}, err
	}
	switch {
	case interrupted && policy == osseav1.FormatIfBlank &&
		(content.kind == contentBlank || (content.kind == contentFilesystem && content.fsType == fsType)):
		// Our own format of this disk was cut short: what is there is a partial filesystem
		// of ours, never mounted, holding nothing.
		s.log.Info("An earlier format of this device was interrupted; formatting it again", "device", dev.Path, "found", content.String())
		if res, err := r.format(ctx, s, dev, fsType, true); err != nil || !res.IsZero() {
			return res, err
		}
	case content.kind == contentPartitioned:
		return r.refuse(ctx, s, dev, ReasonDeviceNotBlank, fmt.Sprintf(
			"%s (%s) holds a partition table; the agent never formats a device that holds anything. "+
				"If its data is not needed, wipe it (wipefs -a %s) and the agent formats it; otherwise use mode Block",
			dev.Link, dev.Path, dev.Path))
	case content.kind == contentFilesystem && content.fsType != fsType:
		return r.refuse(ctx, s, dev, ReasonFilesystemMismatch, fmt.Sprintf(
			"%s (%s) holds a filesystem of type %s but spec.filesystem.type is %s; the agent never reformats. "+
				"Recreate the object with filesystem type %s to mount it, or wipe the device if its data is not needed",
			dev.Link, dev.Path, content.fsType, fsType, content.fsType))
	case content.kind == contentBlank && policy == osseav1.FormatNever:
		return r.refuse(ctx, s, dev, ReasonDeviceBlank, fmt.Sprintf(
			"%s (%s) holds no filesystem and formatPolicy is Never; the volume was expected to carry data. "+
				"Check that the right volume is attached, or recreate the object with formatPolicy IfBlank",
			dev.Link, dev.Path))
	case content.kind == contentBlank:
		if res, err := r.format(ctx, s, dev, fsType, false); err != nil || !res.IsZero() {
			return res, err
		}
	}

	dir, err := ensureMountDir(r.MountRoot, mv.Spec.JobID, mv.Spec.DiskName)
	if err != nil {
		var pe *PathError
		if errors.As(err, &pe) {
			return r.refuse(ctx, s, dev, ReasonInvalidMountPath, fmt.Sprintf("cannot mount at %s: %v; remove it and the agent retries", path, err))
		}
		return ctrl.Result{}, err
	}
	if err := r.mounter.mount(dev.Path, dir, fsType); err != nil {
		return r.fail(ctx, s, dev, ReasonMountFailed, err)
	}
	at, err = mountsAt(dir)
	if err != nil {
		return ctrl.Result{}, err
	}
	if len(at) == 0 || !isDevice(at[len(at)-1], dev) {
		return r.fail(ctx, s, dev, ReasonMountFailed, fmt.Errorf("mount(8) succeeded but %s does not show %s mounted", dir, dev.Path))
	}
	s.log.Info("Mounted volume", "device", dev.Path, "link", dev.Link, "path", dir, "filesystem", fsType)
	r.event(s, ReasonMounted, "Mount", "Mounted %s (%s, %s) at %s", dev.Link, dev.Path, fsType, dir)
	return r.reportMounted(ctx, s, dev, dir, fsType)
}

// format creates the filesystem on a blank device (or, with redo, over the remains of an
// interrupted format of ours) and checks that it is there. The format is marked on the node
// from before mkfs starts until it is seen done (see formatMarks). An empty result means
// go on.
func (r *Reconciler) format(ctx context.Context, s *volumeScope, dev *Device, fsType string, redo bool) (ctrl.Result, error) {
	s.log.Info("Formatting blank device", "device", dev.Path, "filesystem", fsType)
	start := time.Now()
	if err := r.marks.set(s.mv.Status.VolumeID, s.mv.UID); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.formatter.format(ctx, dev.Path, fsType, redo); err != nil {
		return r.fail(ctx, s, dev, ReasonFormatFailed, err)
	}
	content, err := r.formatter.detect(dev.Path)
	if err != nil {
		return ctrl.Result{}, err
	}
	if content.kind != contentFilesystem || content.fsType != fsType {
		return r.fail(ctx, s, dev, ReasonFormatFailed, fmt.Errorf("after mkfs.%s, %s holds %s", fsType, dev.Path, content))
	}
	if err := r.marks.clear(s.mv.Status.VolumeID); err != nil {
		return ctrl.Result{}, err
	}
	r.event(s, ReasonFormatted, "Format", "Created a %s filesystem on blank device %s (%s)", fsType, dev.Link, dev.Path)
	s.log.Info("Formatted device", "device", dev.Path, "filesystem", fsType, "took", time.Since(start).Round(time.Millisecond))
	return ctrl.Result{}, nil
}

// reportExistingMount decides about a mount found at the volume's path.
func (r *Reconciler) reportExistingMount(ctx context.Context, s *volumeScope, dev *Device, path, fsType string, at []*mountinfo.Info) (ctrl.Result, error) {
	top := at[len(at)-1] // the one a process sees
	switch {
	case !isDevice(top, dev):
		return r.refuse(ctx, s, dev, ReasonMountFailed, fmt.Sprintf(
			"%s already has %s (device %d:%d) mounted, not this volume's disk %s (%s, %d:%d); unmount it and the agent mounts the volume",
			path, top.Source, top.Major, top.Minor, dev.Link, dev.Path, dev.Major, dev.Minor))
	case top.FSType != fsType:
		return r.refuse(ctx, s, dev, ReasonFilesystemMismatch, fmt.Sprintf(
			"%s is mounted at %s as %s but spec.filesystem.type is %s", dev.Path, path, top.FSType, fsType))
	case readOnly(top):
		return r.refuse(ctx, s, dev, ReasonMountFailed, fmt.Sprintf(
			"%s is mounted read-only at %s, usually after filesystem errors: check the kernel log (dmesg), stop the writers, unmount it and repair it (fsck); the agent then mounts it again",
			dev.Path, path))
	}
	return r.reportMounted(ctx, s, dev, path, fsType)
}

func (r *Reconciler) reportMounted(ctx context.Context, s *volumeScope, dev *Device, path, fsType string) (ctrl.Result, error) {
	// The message is a pure function of the state, so a resync or a restart that finds the
	// same mount writes nothing.
	err := r.setStatus(ctx, s, &report{
		status: metav1.ConditionTrue, reason: ReasonMounted,
		message:    fmt.Sprintf("%s (%s, %s) is mounted read-write at %s", dev.Link, dev.Path, fsType, path),
		devicePath: strp(dev.Link), mountPath: strp(path), filesystemType: strp(fsType),
	})
	return ctrl.Result{RequeueAfter: r.ResyncInterval}, err
}

// lookForDevice finds the volume's disk. When it is not there, it returns the report to
// make and when to look again: while the attach job runs, the disk is simply awaited;
// once the manager has seen the attach finish, it is awaited (Reason WaitingForDevice)
// until DeviceTimeout after that, then reported missing (DeviceNotFound). The by-id
// watcher brings the volume back the moment a link appears; the timers are only for the
// reports.
func (r *Reconciler) lookForDevice(s *volumeScope) (*Device, *report, ctrl.Result, error) {
	mv := s.mv
	dev, err := findDevice(r.ByIDDir, mv.Status.VolumeID)
	if err != nil || dev != nil {
		return dev, nil, ctrl.Result{}, err
	}
	names := guestdisk.LinkNames(mv.Status.VolumeID)
	if names == nil {
		return nil, &report{status: metav1.ConditionFalse, reason: ReasonDeviceNotFound,
			message: fmt.Sprintf("status.volumeID %q is not a CloudStack volume UUID, so its disk serial is unknown", mv.Status.VolumeID)}, ctrl.Result{}, nil
	}
	links := make([]string, len(names))
	for i, n := range names {
		links[i] = r.ByIDDir + "/" + n
	}
	want := strings.Join(links, " or ")
	if !attachConfirmed(mv) {
		return nil, &report{status: metav1.ConditionFalse, reason: ReasonWaitingForDevice,
			message: fmt.Sprintf("CloudStack is attaching volume %s to this VM; waiting for its disk to appear as %s", mv.Status.VolumeID, want),
		}, ctrl.Result{RequeueAfter: r.ResyncInterval}, nil
	}
	waited := time.Since(attachedSince(mv))
	if waited < r.DeviceTimeout {
		return nil, &report{status: metav1.ConditionFalse, reason: ReasonWaitingForDevice,
			message: fmt.Sprintf("waiting up to %s for the disk of CloudStack volume %s to appear as %s", r.DeviceTimeout, mv.Status.VolumeID, want),
		}, ctrl.Result{RequeueAfter: r.DeviceTimeout - waited + 100*time.Millisecond}, nil
	}
	return nil, &report{status: metav1.ConditionFalse, reason: ReasonDeviceNotFound,
		message: fmt.Sprintf("no disk appeared as %s within %s of the attachment: check in CloudStack that volume %s is attached to VM %s, "+
			"and on the node that the guest sees a new disk (lsblk, dmesg); the agent keeps watching", want, r.DeviceTimeout, mv.Status.VolumeID, r.VMID),
	}, ctrl.Result{RequeueAfter: r.ResyncInterval}, nil
}

// attachedSince is when the manager last reported the volume attached.
func attachedSince(mv *osseav1.MigrationVolume) time.Time {
	if c := meta.FindStatusCondition(mv.Status.Conditions, osseav1.ConditionAttached); c != nil {
		return c.LastTransitionTime.Time
	}
	return mv.CreationTimestamp.Time
}

// refuse reports a device the agent will not use as it is. A person has to act; the resync
// notices when they have.
func (r *Reconciler) refuse(ctx context.Context, s *volumeScope, dev *Device, reason, msg string) (ctrl.Result, error) {
	err := r.setStatus(ctx, s, &report{status: metav1.ConditionFalse, reason: reason, message: msg, devicePath: strp(dev.Link)})
	return ctrl.Result{RequeueAfter: r.ResyncInterval}, err
}

// fail reports an operation that failed and may work when retried; the error makes the
// controller retry with backoff.
func (r *Reconciler) fail(ctx context.Context, s *volumeScope, dev *Device, reason string, opErr error) (ctrl.Result, error) {
	if err := r.setStatus(ctx, s, &report{status: metav1.ConditionFalse, reason: reason, message: opErr.Error() + "; retrying", devicePath: strp(dev.Link)}); err != nil {
		return ctrl.Result{}, errors.Join(opErr, err)
	}
	return ctrl.Result{}, opErr
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
