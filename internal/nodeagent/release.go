package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

// maxStackedMounts bounds the unmount loop; more mounts than this stacked on one path is
// not something the agent made.
const maxStackedMounts = 8

// reconcileDelete releases a deleted volume: unmount, remove the empty directories, then
// let go of the finalizer so the manager can detach the disk.
func (r *Reconciler) reconcileDelete(ctx context.Context, s *volumeScope) (ctrl.Result, error) {
	mv := s.mv
	if !controllerutil.ContainsFinalizer(mv, osseav1.MountFinalizer) || !r.holds(mv) {
		return ctrl.Result{}, nil // Block mode, already released, or another node's
	}
	done, _, res, err := r.release(ctx, s)
	if !done || err != nil {
		return res, err
	}
	if err := r.setStatus(ctx, s, &report{status: metav1.ConditionFalse, reason: ReasonUnmounted,
		message: "unmounted; the volume may be detached", mountPath: strp("")}); err != nil {
		return ctrl.Result{}, err
	}
	if ok, err := r.patchFinalizers(ctx, mv, controllerutil.RemoveFinalizer); !ok || err != nil {
		return retrySoon, err
	}
	s.log.Info("Released volume")
	return ctrl.Result{}, nil
}

// reconcileDetached handles a volume the manager no longer reports attached (or being
// attached) to this VM. If the agent still holds it and its disk is really gone from the
// node (no by-id link left), the mount is dead: every access fails. It is released, so that
// the object can be deleted and a re-attachment gets a clean mount. A claim that never got
// as far as a mount (its attach failed) is simply let go. While the link is still there the
// disk is still here, whatever the status says, and nothing is touched.
func (r *Reconciler) reconcileDetached(ctx context.Context, s *volumeScope) (ctrl.Result, error) {
	mv := s.mv
	if !r.holds(mv) && !r.published(mv) {
		return ctrl.Result{}, nil // not attached yet, or never ours
	}
	if dev, err := findDevice(r.ByIDDir, mv.Status.VolumeID); err != nil || dev != nil {
		return ctrl.Result{RequeueAfter: r.ResyncInterval}, err
	}
	if !r.holds(mv) {
		// Block mode: nothing on the node to undo, only the published path to take back.
		return ctrl.Result{}, r.setStatus(ctx, s, &report{status: metav1.ConditionFalse, reason: ReasonNotAttached,
			message:    fmt.Sprintf("volume %s is no longer attached to this VM (%s); its device is published again once it is", mv.Status.VolumeID, r.VMID),
			devicePath: strp("")})
	}
	done, unmounted, res, err := r.release(ctx, s)
	if !done || err != nil {
		return res, err
	}
	rep := &report{status: metav1.ConditionFalse, reason: ReasonDeviceDetached,
		message:   "the volume's disk left this node while mounted; the agent unmounted it and mounts it again when the volume is attached again",
		mountPath: strp(""), devicePath: strp("")}
	if !unmounted && (s.prev == nil || s.prev.Status != metav1.ConditionTrue) {
		rep = &report{status: metav1.ConditionFalse, reason: ReasonNotAttached,
			message:   fmt.Sprintf("volume %s is not attached to this VM (%s); the agent mounts it once it is", mv.Status.VolumeID, r.VMID),
			mountPath: strp(""), devicePath: strp("")}
	}
	if err := r.setStatus(ctx, s, rep); err != nil {
		return ctrl.Result{}, err
	}
	if ok, err := r.patchFinalizers(ctx, mv, controllerutil.RemoveFinalizer); !ok || err != nil {
		return retrySoon, err
	}
	return ctrl.Result{}, nil
}

// release unmounts whatever is mounted at the volume's path and removes the empty mount
// and job directories; unmounted says whether there was anything to unmount. done is
// false while the filesystem is busy; then the result says when to try again. The unmount is never lazy: a lazy unmount would report success while
// writers still write, and the manager would detach a disk in use.
func (r *Reconciler) release(ctx context.Context, s *volumeScope) (done, unmounted bool, _ ctrl.Result, _ error) {
	mv := s.mv
	path, err := MountPath(r.MountRoot, mv.Spec.JobID, mv.Spec.DiskName)
	if err != nil {
		return true, false, ctrl.Result{}, nil // no such path was ever made
	}
	for range maxStackedMounts {
		at, err := mountsAt(path)
		if err != nil {
			return false, unmounted, ctrl.Result{}, err
		}
		if len(at) == 0 {
			break
		}
		err = r.mounter.unmount(path)
		if errors.Is(err, ErrBusy) {
			res, err := r.busy(ctx, s, path)
			return false, unmounted, res, err
		}
		if err != nil {
			return false, unmounted, ctrl.Result{}, err
		}
		unmounted = true
	}
	if at, err := mountsAt(path); err != nil || len(at) > 0 {
		return false, unmounted, ctrl.Result{}, errors.Join(err, fmt.Errorf("%s still has %d mounts stacked on it after %d unmounts", path, len(at), maxStackedMounts))
	}
	r.unmountAttempts.Delete(mv.UID)
	if unmounted {
		s.log.Info("Unmounted volume", "path", path)
		r.event(s, ReasonUnmounted, "Unmount", "Unmounted %s", path)
	}
	removed, err := removeMountDir(r.MountRoot, mv.Spec.JobID, mv.Spec.DiskName)
	if err != nil {
		return false, unmounted, ctrl.Result{}, err
	}
	if err := r.marks.clear(mv.Status.VolumeID); err != nil {
		return false, unmounted, ctrl.Result{}, err
	}
	if !removed {
		// Files in the bare directory were written while nothing was mounted there. They
		// are not the volume's, and the agent never deletes data: leave them, and say so.
		s.log.Info("Mount directory not empty after unmount; left in place", "path", path)
		r.Recorder.Eventf(mv, nil, corev1.EventTypeWarning, "DirectoryNotEmpty", "Unmount",
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
	delay := min(time.Duration(1<<min(n, 16))*250*time.Millisecond, r.UnmountRetryMax)
	s.log.Info("Filesystem busy; unmount retried later", "path", path, "attempt", n+1, "retryAfter", delay)
	err := r.setStatus(ctx, s, &report{status: metav1.ConditionFalse, reason: ReasonUnmountBusy,
		message: fmt.Sprintf("cannot unmount %s: it is busy, a process has a file, its working directory or a mount there. "+
			"Find it with `fuser -vm %s` (or `lsof +f -- %s`) and stop it; the agent retries with backoff and never unmounts lazily",
			path, path, path)})
	return ctrl.Result{RequeueAfter: delay}, err
}
