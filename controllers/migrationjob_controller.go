package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

// DefaultJobConcurrency is how many MigrationJobs are reconciled at once. A job's work is
// cache reads and a few writes; placements are decided one at a time whatever this is.
const DefaultJobConcurrency = 4

// jobStallRecheck is how often a stalled job is looked at again; its volumes' changes wake
// it sooner.
const jobStallRecheck = time.Minute

// MigrationJobReconciler places each MigrationJob on one OsseaConfig of its pool and keeps
// one MigrationVolume per disk; the volumes do the CloudStack and node work. It never calls
// CloudStack itself, but to check the target of a cut-over.
type MigrationJobReconciler struct {
	client.Client
	// APIReader reads past the cache where acting on a stale list would lose a volume.
	APIReader client.Reader
	Recorder  events.EventRecorder
	// Clouds builds the CloudStack client with which the cut-over checks its target VM, the
	// one call the job controller makes.
	Clouds CloudFactory
	// HandoffRecheck is how often a cut-over whose target was refused is checked again;
	// 0 means DefaultHandoffRecheck.
	HandoffRecheck time.Duration

	book *placementBook
}

// +kubebuilder:rbac:groups=ossea.migratekit.io,resources=migrationjobs,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=ossea.migratekit.io,resources=migrationjobs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=ossea.migratekit.io,resources=migrationjobs/finalizers,verbs=update
// +kubebuilder:rbac:groups=ossea.migratekit.io,resources=migrationvolumes,verbs=create;delete

// jobScope is what one reconcile of one MigrationJob works on.
type jobScope struct {
	job        *osseav1.MigrationJob
	helper     *patchHelper
	conditions conditionSetter
	// volumes are the job's own MigrationVolumes by disk name, as this pass saw them.
	volumes map[string]*osseav1.MigrationVolume
	// stalled is what keeps the job from going on until a person acts: its own problem or
	// one of its disks'; nil when nothing does.
	stalled *stalling
}

func (r *MigrationJobReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	job := &osseav1.MigrationJob{}
	if err := r.Get(ctx, req.NamespacedName, job); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	s := &jobScope{
		job:        job,
		helper:     newPatchHelper(job, r.Client),
		conditions: conditionSetter{&job.Status.Conditions, job.Generation},
		volumes:    map[string]*osseav1.MigrationVolume{},
	}
	defer func() {
		summarizeJob(s)
		if err := s.helper.patch(ctx, job); err != nil {
			if apierrors.IsConflict(err) && retErr == nil {
				res = ctrl.Result{RequeueAfter: 100 * time.Millisecond}
				return
			}
			retErr = kerrors.NewAggregate([]error{retErr, err})
		}
	}()

	var err error
	if !job.DeletionTimestamp.IsZero() {
		err = r.reconcileDelete(ctx, s)
	} else {
		// Written with the placement, before any volume exists.
		controllerutil.AddFinalizer(job, osseav1.JobFinalizer)
		err = r.reconcileNormal(ctx, s)
	}
	r.recordOutcome(s, err)
	return outcomeResult(err, jobStallRecheck)
}

func (r *MigrationJobReconciler) reconcileNormal(ctx context.Context, s *jobScope) error {
	if s.job.Status.Placement == nil {
		decided, err := r.place(ctx, s)
		if err != nil {
			return err
		}
		// The placement is stored before any volume is created, so that a restart can only
		// find the job placed where its volumes are.
		if err := s.helper.patch(ctx, s.job); err != nil {
			// Not written: the slots go back, and the deferred write must not store it either.
			r.book.forget(s.job.UID)
			s.job.Status.Placement = nil
			s.conditions.remove(osseav1.ConditionPlaced)
			return fmt.Errorf("writing the placement: %w", err)
		}
		if decided {
			placed := meta.FindStatusCondition(s.job.Status.Conditions, osseav1.ConditionPlaced)
			r.Recorder.Eventf(s.job, nil, corev1.EventTypeNormal, osseav1.ReasonPlaced, "Place", placed.Message)
		}
	} else if !meta.IsStatusConditionTrue(s.job.Status.Conditions, osseav1.ConditionPlaced) {
		s.conditions.set(osseav1.ConditionPlaced, metav1.ConditionTrue, osseav1.ReasonPlaced, placedMessage(s.job.Status.Placement))
	}
	if err := r.ensureVolumes(ctx, s); err != nil {
		return err
	}
	if s.job.Spec.Cutover != nil {
		return r.cutOver(ctx, s)
	}
	return nil
}

// recordOutcome writes into conditions and events what the pass ended with (see
// outcome.go); it is the one place that does.
func (r *MigrationJobReconciler) recordOutcome(s *jobScope, err error) {
	s.stalled = recordOutcome(s.conditions, r.Recorder, s.job, err)
}

// SetupWithManager registers the controller. A job waiting for slots is woken by what can
// free them or add a candidate (a job or volume gone, a config changed), never by a timer.
func (r *MigrationJobReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	r.book = newPlacementBook()
	if r.HandoffRecheck == 0 {
		r.HandoffRecheck = DefaultHandoffRecheck
	}
	wake := handler.EnqueueRequestsFromMapFunc(r.waitingJobs)
	onDelete := builder.WithPredicates(predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		UpdateFunc:  func(event.UpdateEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
	})
	return ctrl.NewControllerManagedBy(mgr).
		For(&osseav1.MigrationJob{}).
		Owns(&osseav1.MigrationVolume{}).
		Watches(&osseav1.OsseaConfig{}, wake).
		Watches(&osseav1.MigrationVolume{}, handler.EnqueueRequestsFromMapFunc(r.volumeGone), onDelete).
		Watches(&osseav1.MigrationJob{}, wake, onDelete).
		WithOptions(opts).
		Named("migrationjob").
		Complete(r)
}
