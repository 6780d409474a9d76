package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/moby/sys/mountinfo"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

// reconcileFilesystem takes a volume in Filesystem mode to mounted: claim it, find its
// disk, check the disk, format it only if it is blank and allowed, mount it. Every step is
// checked against the machine's actual state first, so running it again (a resync, an
// agent restart) changes nothing once the volume is mounted. What to do at each step is
// decided in decide.go; this function gathers the facts and acts.
func (r *Reconciler) reconcileFilesystem(ctx context.Context, s *volumeScope) (ctrl.Result, error) {
	mv := s.mv
	dev, waiting, res, err := r.lookForDevice(s)
	if err != nil {
		return ctrl.Result{}, err
	}
	if !controllerutil.ContainsFinalizer(mv, osseav1.MountFinalizer) {
		// Claim and hold in one write: the label says which node's agent the finalizer
		// belongs to, and both are stored before the device is touched, so the manager can
		// never detach a disk from under a mount this agent is about to make. The status
		// says nothing yet: a disk that has not appeared is reported only after a grace
		// (see quietAboutMissingDevice), and the Mounted report says the node.
		if ok, err := r.applyClaim(ctx, mv, true); !ok || err != nil {
			return retrySoon, err
		}
		s.log.V(1).Info("Claimed volume", "node", r.NodeName)
	}

	fsType, policy := filesystemOf(mv)
	path, err := MountPath(r.MountRoot, mv.Spec.JobID, mv.Spec.DiskName)
	if err != nil {
		// Both fields are immutable, so retrying cannot help; only a new object can.
		return ctrl.Result{}, r.setStatus(ctx, s, &report{status: metav1.ConditionFalse, reason: osseav1.ReasonInvalidMountPath,
			message: fmt.Sprintf("cannot mount under %s: %v; jobID and diskName must be DNS labels: recreate the object with valid values", r.MountRoot, err)})
	}

	if dev == nil {
		at, err := r.host.mountsAt(path)
		if err != nil {
			return ctrl.Result{}, err
		}
		if keepMountWithoutLink(mv, len(at)) {
			s.log.V(1).Info("By-id link missing while mounted; keeping the mount", "path", path)
			return ctrl.Result{RequeueAfter: r.ResyncInterval}, nil
		}
		if quiet := quietAboutMissingDevice(waiting, claimedAt(mv), time.Now()); quiet > 0 {
			// The by-id watcher brings the volume back the moment its link appears.
			s.log.V(1).Info("Disk not on the node yet, just after the claim; not reported yet", "reportIn", quiet)
			return ctrl.Result{RequeueAfter: quiet}, nil
		}
		return res, r.setStatus(ctx, s, waiting)
	}
	if d := decideSize(dev, mv.Spec.SizeGiB); d.step == stepRefuse {
		return r.refuse(ctx, s, dev, d)
	}
	unlock := r.devices.lock(dev)
	defer unlock()

	// Already mounted (an agent restart or a resync), or mounted where it should not be.
	at, err := r.host.mountsAt(path)
	if err != nil {
		return ctrl.Result{}, err
	}
	var elsewhere []*mountinfo.Info
	if len(at) == 0 {
		if elsewhere, err = r.host.mountsOfDevice(dev); err != nil {
			return ctrl.Result{}, err
		}
	}
	switch d := decideMounts(dev, path, fsType, at, elsewhere); d.step {
	case stepRefuse:
		return r.refuse(ctx, s, dev, d)
	case stepReportMounted:
		return r.reportMounted(ctx, s, dev, path, fsType)
	}

	content, err := r.host.probe(dev, mv.Status.VolumeID, mv.UID)
	if err != nil {
		return ctrl.Result{}, err
	}
	d := decideContent(dev, content, fsType, policy)
	switch d.step {
	case stepRefuse:
		return r.refuse(ctx, s, dev, d)
	case stepRedoFormat:
		s.log.Info("An earlier format of this device was interrupted; formatting it again", "device", dev.Path, "found", content.String())
		if res, err := r.format(ctx, s, dev, fsType, true); err != nil || !res.IsZero() {
			return res, err
		}
	case stepFormat:
		if res, err := r.format(ctx, s, dev, fsType, false); err != nil || !res.IsZero() {
			return res, err
		}
	}
	formatted := d.step == stepFormat || d.step == stepRedoFormat

	dir, err := ensureMountDir(r.MountRoot, mv.Spec.JobID, mv.Spec.DiskName)
	if err != nil {
		var pe *PathError
		if errors.As(err, &pe) {
			return r.refuse(ctx, s, dev, refuse(osseav1.ReasonInvalidMountPath, "cannot mount at %s: %v; remove it and the agent retries", path, err))
		}
		return ctrl.Result{}, err
	}
	if err := r.host.mount(dev, dir, fsType); err != nil {
		return r.fail(ctx, s, dev, osseav1.ReasonMountFailed, err)
	}
	at, err = r.host.mountsAt(dir)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := checkMounted(dev, dir, at); err != nil {
		return r.fail(ctx, s, dev, osseav1.ReasonMountFailed, err)
	}
	observeMounted(dev, formatted)
	s.log.Info("Mounted volume", "device", dev.Path, "link", dev.Link, "path", dir, "filesystem", fsType, "formatted", formatted)
	r.event(s, osseav1.ReasonMounted, "Mount", "%s", mountedNote(dev, fsType, dir, d.step))
	return r.reportMounted(ctx, s, dev, dir, fsType)
}

// format creates the filesystem on a blank device (or, with redo, over the remains of an
// interrupted format of ours) and checks that it is there. The host marks the format on
// the node from before mkfs starts until it is seen done here (see formatMarks). An empty
// result means go on.
func (r *Reconciler) format(ctx context.Context, s *volumeScope, dev *Device, fsType string, redo bool) (ctrl.Result, error) {
	s.log.Info("Formatting blank device", "device", dev.Path, "filesystem", fsType)
	start := time.Now()
	volumeID := s.mv.Status.VolumeID
	if err := r.host.format(ctx, dev, fsType, volumeID, s.mv.UID, redo); err != nil {
		return r.fail(ctx, s, dev, osseav1.ReasonFormatFailed, err)
	}
	content, err := r.host.probe(dev, volumeID, s.mv.UID)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := checkFormatted(dev, fsType, content); err != nil {
		return r.fail(ctx, s, dev, osseav1.ReasonFormatFailed, err)
	}
	if err := r.host.forgetFormat(volumeID); err != nil {
		return ctrl.Result{}, err
	}
	// No event of its own: the mount's event that follows says the disk was formatted.
	s.log.Info("Formatted device", "device", dev.Path, "filesystem", fsType, "took", time.Since(start).Round(time.Millisecond))
	return ctrl.Result{}, nil
}

func (r *Reconciler) reportMounted(ctx context.Context, s *volumeScope, dev *Device, path, fsType string) (ctrl.Result, error) {
	// The message is a pure function of the state, so a resync or a restart that finds the
	// same mount writes nothing.
	err := r.setStatus(ctx, s, &report{
		status: metav1.ConditionTrue, reason: osseav1.ReasonMounted,
		message:    fmt.Sprintf("%s (%s, %s) is mounted read-write at %s", dev.Link, dev.Path, fsType, path),
		devicePath: strp(dev.Link), mountPath: strp(path), filesystemType: strp(fsType),
	})
	return ctrl.Result{RequeueAfter: r.ResyncInterval}, err
}

// lookForDevice finds the volume's disk, or returns the report to make while it is not
// there and when to look again (see missingDevice).
func (r *Reconciler) lookForDevice(s *volumeScope) (*Device, *report, ctrl.Result, error) {
	dev, err := r.host.findDevice(s.mv.Status.VolumeID)
	if err != nil || dev != nil {
		return dev, nil, ctrl.Result{}, err
	}
	waiting, res := missingDevice(s.mv, deviceWait{
		byIDDir: r.ByIDDir, vmID: r.VMID, now: time.Now(), deviceTimeout: r.DeviceTimeout, resync: r.ResyncInterval,
	})
	return nil, waiting, res, nil
}

// refuse reports a device the agent will not use as it is. A person has to act; the resync
// notices when they have.
func (r *Reconciler) refuse(ctx context.Context, s *volumeScope, dev *Device, d decision) (ctrl.Result, error) {
	err := r.setStatus(ctx, s, &report{status: metav1.ConditionFalse, reason: d.reason, message: d.message, devicePath: strp(dev.Link)})
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
