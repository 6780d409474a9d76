package nodeagent

import (
	"context"
	"fmt"

	"github.com/moby/sys/mountinfo"
	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

// reconcileDelete releases a deleted volume this agent holds (see routeOf): unmount,
// remove the empty directories, then let go of the finalizer and the claim, in one write,
// so the manager can detach the disk. Usually no status write: the finalizer's going is
// what the manager waits for, and the object is on its way out. Until it is gone (the
// manager's detach and delete, usually seconds) the Mounted condition and mountPath keep
// the last report, while the deletionTimestamp and the missing mount finalizer say the
// volume is being torn down and no longer mounted (a report that a person must act is
// corrected first: see reportsDeleteRelease). Should the agent stop between the unmount
// and the write, the volume is still held (and found by the startup scan if it left the
// cache), and the release runs again: with nothing mounted, it only lets go.
func (r *Reconciler) reconcileDelete(ctx context.Context, s *volumeScope) (ctrl.Result, error) {
	done, _, res, err := r.release(ctx, s)
	if !done || err != nil {
		return res, err
	}
	if reportsDeleteRelease(s.prev) {
		if err := r.setStatus(ctx, s, unmountedReport()); err != nil {
			return ctrl.Result{}, err
		}
	}
	if ok, err := r.applyClaim(ctx, s.mv, false); !ok || err != nil {
		return retrySoon, err
	}
	s.log.Info("Released volume")
	return ctrl.Result{}, nil
}

// reconcileHandoff lets go of a volume the manager hands to another VM: the filesystem is
// unmounted (which flushes it) or the device unpublished, and the claim dropped. The manager
// detaches the volume only after that.
func (r *Reconciler) reconcileHandoff(ctx context.Context, s *volumeScope) (ctrl.Result, error) {
	mv := s.mv
	held := holds(mv, r.VMID, r.NodeName)
	// A copy from a cache that lags behind our own release shows nothing left to do.
	changed := held || mv.Status.DevicePath != "" || mv.Status.MountPath != ""
	if held {
		done, _, res, err := r.release(ctx, s)
		if !done || err != nil {
			return res, err
		}
	}
	if err := r.setStatus(ctx, s, handoffReport(mv)); err != nil {
		return ctrl.Result{}, err
	}
	if held {
		if ok, err := r.applyClaim(ctx, mv, false); !ok || err != nil {
			return retrySoon, err
		}
	}
	if changed {
		s.log.Info("Released volume for its hand-off", "targetVM", mv.Spec.Handoff.VirtualMachineID)
	}
	return ctrl.Result{}, nil
}

// reconcileDetached handles a volume this agent holds that the manager no longer reports
// attached (or being attached) to this VM (see routeOf). If its disk is really gone from
// the node (no by-id link left), the mount is dead: every access fails. It is released, so
// that the object can be deleted and a re-attachment gets a clean mount. A claim that never
// got as far as a mount (its attach failed) is simply let go. While the link is still there
// the disk is still here, whatever the status says, and nothing is touched.
func (r *Reconciler) reconcileDetached(ctx context.Context, s *volumeScope) (ctrl.Result, error) {
	mv := s.mv
	if dev, err := r.host.findDevice(mv.Status.VolumeID); err != nil || dev != nil {
		return ctrl.Result{RequeueAfter: r.ResyncInterval}, err
	}
	if !holds(mv, r.VMID, r.NodeName) {
		// Block mode: nothing on the node to undo, only the published path to take back.
		return ctrl.Result{}, r.setStatus(ctx, s, detachedReport(mv, r.VMID, false, s.prev))
	}
	done, unmounted, res, err := r.release(ctx, s)
	if !done || err != nil {
		return res, err
	}
	if err := r.setStatus(ctx, s, detachedReport(mv, r.VMID, unmounted, s.prev)); err != nil {
		return ctrl.Result{}, err
	}
	if ok, err := r.applyClaim(ctx, mv, false); !ok || err != nil {
		return retrySoon, err
	}
	return ctrl.Result{}, nil
}

// release unmounts whatever is mounted at the volume's path and removes the empty mount
// and job directories; unmounted says whether there was anything to unmount. done is
// false while the filesystem is busy; then the result says when to try again. Each step is
// nextRelease's decision, which never unmounts lazily.
func (r *Reconciler) release(ctx context.Context, s *volumeScope) (done, unmounted bool, _ ctrl.Result, _ error) {
	mv := s.mv
	path, err := MountPath(r.MountRoot, mv.Spec.JobID, mv.Spec.DiskName)
	if err != nil {
		return true, false, ctrl.Result{}, nil // no such path was ever made
	}
	var lastUnmount error
release:
	for unmounts := 0; ; unmounts++ {
		var at []*mountinfo.Info
		if lastUnmount == nil { // after a failed unmount, the table has nothing to add
			if at, err = r.host.mountsAt(path); err != nil {
				return false, unmounted, ctrl.Result{}, err
			}
		}
		switch nextRelease(len(at), unmounts, lastUnmount) {
		case releaseDone:
			break release
		case releaseUnmount:
			lastUnmount = r.host.unmount(path)
			unmounted = unmounted || lastUnmount == nil
		case releaseBusy:
			res, err := r.busy(ctx, s, path)
			return false, unmounted, res, err
		case releaseFailed:
			if lastUnmount == nil {
				lastUnmount = fmt.Errorf("%s still has %d mounts stacked on it after %d unmounts", path, len(at), unmounts)
			}
			return false, unmounted, ctrl.Result{}, lastUnmount
		}
	}
	r.unmountAttempts.Delete(mv.UID)
	if unmounted {
		// No event: what follows says it. On delete the mount finalizer's going says it,
		// and the manager's detach comes only after it; for a hand-off the condition says
		// ReleasedForHandoff for good; a disk that left while mounted gets the Warning
		// DeviceDetached, which says the agent unmounted it.
		unmountsTotal.Inc()
		s.log.Info("Unmounted volume", "path", path)
	}
	removed, err := removeMountDir(r.MountRoot, mv.Spec.JobID, mv.Spec.DiskName)
	if err != nil {
		return false, unmounted, ctrl.Result{}, err
	}
	if err := r.host.forgetFormat(mv.Status.VolumeID); err != nil {
		return false, unmounted, ctrl.Result{}, err
	}
	if !removed {
		// Files in the bare directory were written while nothing was mounted there. They
		// are not the volume's, and the agent never deletes data: leave them, and say so.
		s.log.Info("Mount directory not empty after unmount; left in place", "path", path)
		r.Recorder.Eventf(mv, nil, corev1.EventTypeWarning, osseav1.EventDirectoryNotEmpty, "Unmount",
			"%s holds files written while the volume was not mounted; left in place", path)
	}
	return true, unmounted, ctrl.Result{}, nil
}

// busy reports a busy filesystem and schedules the next attempt with exponential backoff.
func (r *Reconciler) busy(ctx context.Context, s *volumeScope, path string) (ctrl.Result, error) {
	n := 0
	if v, ok := r.unmountAttempts.Load(s.mv.UID); ok {
		n = v.(int)
	}
	r.unmountAttempts.Store(s.mv.UID, n+1)
	delay := unmountBackoff(n, r.UnmountRetryMax)
	s.log.Info("Filesystem busy; unmount retried later", "path", path, "attempt", n+1, "retryAfter", delay)
	err := r.setStatus(ctx, s, busyReport(path))
	return ctrl.Result{RequeueAfter: delay}, err
}
