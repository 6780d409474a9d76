package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudstack"
)

// Two rules every path keeps, because a teardown relies on them:
//
//	(a) no create, tag or attach step is started for an object that is being deleted;
//	(b) no detach or delete of a volume while a job this process started on it runs.
//
// (a) A pass may act on a cached copy that does not show the deletion yet, and the
// deletion may come while a call waits for its turn under the rate limit. So every start
// of the normal path is sent through a send guard (cloudstack.WithSendGuard) that, once
// the call has its rate-limit token and just before it is sent, asks the API server itself
// (an uncached read of the object's metadata) whether the object is still there and not
// being deleted. That is the cheapest check that makes a start after a deletion the
// manager could know of impossible: one read per start, no write (a recorded intent would
// be a write per step), and nothing is sent on a cached word. A deletion that lands after
// the read, in the moment before CloudStack receives the call, cannot be seen by anyone;
// its start is then a job like any other, which (b) protects. The objects seen being
// deleted are remembered, so passes over older copies start nothing and ask nothing.
// Two starts need no read of their own. The create follows the write of its intent, whose
// answer is the API server's word on the object; sent within freshAnswer of that answer,
// the create is as well guarded as by a read, which would take as long on a busy API
// server (see unlessDeletingSince). The first tagging of a volume just created is not a
// start a teardown would undo but one it needs: a volume may be detached or deleted only
// with its ownership tags on it, and a teardown that finds it untagged tags it first (see
// reconcileDelete). So it is sent at once, deletion or not.
//
// (b) The memory remembers every job this process started until it sees it end, even when
// the status write that was to record it was refused; recallJob puts such a job back into
// status before anything is decided, the delete path asks the job itself whether it has
// ended (a read of the volume could show its change made by another job), and
// teardownAllowed refuses a detach or delete while the memory still holds a job. A
// restarted manager resumes from status.pendingJob. A job whose reply never came (lost, or
// the manager died first) cannot be known; CloudStack refuses to detach or delete a volume
// such a job is working on, and the refusal is retried.

// errBeingDeleted is a send guard's refusal: the object is being deleted, or is gone.
var errBeingDeleted = errors.New("the MigrationVolume is being deleted")

// unlessDeleting returns ctx with a send guard for a start of the normal path: the call is
// sent only if the API server shows the object, with this UID, not being deleted.
func (r *MigrationVolumeReconciler) unlessDeleting(ctx context.Context, mv *osseav1.MigrationVolume) context.Context {
	return cloudstack.WithSendGuard(ctx, func(ctx context.Context) error {
		return r.confirmNotDeleting(ctx, mv)
	})
}

// freshAnswer is how old the API server's answer to a write of ours may be for a start to
// be sent on it without a read of its own.
const freshAnswer = 100 * time.Millisecond

// unlessDeletingSince is unlessDeleting for a start that follows a write of ours to the
// object, answered at answered with the object not being deleted: sent within freshAnswer
// of that answer, the call needs no read; one that waited longer for its turn (the rate
// limit) asks the API server as unlessDeleting does.
func (r *MigrationVolumeReconciler) unlessDeletingSince(ctx context.Context, mv *osseav1.MigrationVolume, answered time.Time) context.Context {
	return cloudstack.WithSendGuard(ctx, r.notDeletingSince(mv, answered))
}

func (r *MigrationVolumeReconciler) notDeletingSince(mv *osseav1.MigrationVolume, answered time.Time) func(context.Context) error {
	return func(ctx context.Context) error {
		if !r.mem.isDeleting(mv.UID) && time.Since(answered) < freshAnswer {
			return nil
		}
		return r.confirmNotDeleting(ctx, mv)
	}
}

func (r *MigrationVolumeReconciler) confirmNotDeleting(ctx context.Context, mv *osseav1.MigrationVolume) error {
	if r.mem.isDeleting(mv.UID) {
		return errBeingDeleted
	}
	cur := &metav1.PartialObjectMetadata{}
	cur.SetGroupVersionKind(osseav1.GroupVersion.WithKind("MigrationVolume"))
	err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(mv), cur)
	switch {
	case apierrors.IsNotFound(err) || (err == nil && cur.UID != mv.UID):
		return errBeingDeleted
	case err != nil:
		return fmt.Errorf("confirming that MigrationVolume %s is not being deleted: %w", mv.Name, err)
	case !cur.DeletionTimestamp.IsZero():
		r.mem.sawDeleting(mv.UID)
		return errBeingDeleted
	}
	return nil
}

// notSent ends a pass whose start its send guard kept from CloudStack: nothing happened
// there, so nothing is recorded. A deletion is taken up by the next pass, once the cache
// shows it; a failed check is retried with backoff.
func (r *MigrationVolumeReconciler) notSent(ctx context.Context, action string, err error) error {
	if errors.Is(err, errBeingDeleted) {
		log.FromContext(ctx).V(1).Info("Not started: the object is being deleted", "step", action)
		return waitFor(100 * time.Millisecond)
	}
	if wait := throttled(err); wait != nil {
		log.FromContext(ctx).V(1).Info("Not started: refused for the rate limit", "step", action)
		return wait
	}
	return fmt.Errorf("%s: %w", action, err)
}

// teardownAllowed is rule (b), checked right before a detach or delete is sent. recallJob
// has put any job the memory holds into status, and the delete path polls it first (and
// a create left running, see awaitCreate), so a refusal here means a path forgot to: it
// is logged as the bug it is, and nothing is sent.
func (r *MigrationVolumeReconciler) teardownAllowed(ctx context.Context, s *volumeScope, action string) error {
	run, ok := r.mem.unfinished(s.mv.UID)
	if !ok {
		if run, ok = r.mem.createRunning(s.mv.UID); !ok {
			return nil
		}
	}
	err := fmt.Errorf("%s: the %s job %s this manager started on volume %s has not been seen to end", action, run.job.Operation, run.job.ID, run.volumeID)
	log.FromContext(ctx).Error(err, "Refusing a teardown step under a running job")
	return err
}
