package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudstack"
)

// Reasons of a MigrationVolume's conditions beyond the ones in the API package.
const (
	ReasonOsseaConfigNotReady = "OsseaConfigNotReady"
	ReasonCreating            = "Creating"
	ReasonTagging             = "Tagging"
	ReasonCreated             = "Created"
	ReasonAttaching           = "Attaching"
	ReasonAttached            = "Attached"
	ReasonCapacityExhausted   = "CapacityExhausted"
	ReasonNameConflict        = "NameConflict"
	ReasonVolumeLost          = "VolumeLost"
	ReasonAttachedElsewhere   = "AttachedElsewhere"
	ReasonAccountLimit        = "AccountLimitExceeded"
	ReasonCloudStackRejected  = "CloudStackRejected"
	ReasonWaitingForAgent     = "WaitingForAgent"
	ReasonDetaching           = "Detaching"
	ReasonDeleting            = "Deleting"
)

// Operations recorded in status.pendingJob.
const (
	opCreate = "create"
	opTag    = "tag"
	opAttach = "attach"
	opDetach = "detach"
	opRetain = "retain"
)

var volumeDetails = []string{osseav1.ConditionAllocated, osseav1.ConditionAttached, osseav1.ConditionMounted}

// MigrationVolumeReconciler creates, attaches, detaches and deletes the CloudStack volume
// of each MigrationVolume. It never waits on a CloudStack job: it starts one, records it in
// status.pendingJob and comes back to poll, so a restarted manager resumes from status.
type MigrationVolumeReconciler struct {
	client.Client
	APIReader client.Reader
	Recorder  events.EventRecorder
	Clouds    CloudFactory
	// DriftInterval is how often a settled volume is compared with CloudStack.
	DriftInterval time.Duration

	// checked remembers when each volume was last read from CloudStack, so that the many
	// events of a settled volume do not each cost an API call.
	checked sync.Map // types.UID -> time.Time
}

// +kubebuilder:rbac:groups=ossea.migratekit.io,resources=migrationvolumes,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=ossea.migratekit.io,resources=migrationvolumes/status,verbs=get;update;patch

// volumeScope is what one reconcile of one MigrationVolume works on.
type volumeScope struct {
	mv         *osseav1.MigrationVolume
	helper     *patchHelper
	conditions conditionSetter
	cfg        *osseav1.OsseaConfig
	cloud      cloudstack.Cloud
	// stalled is set by a phase that met an error no retry can fix.
	stalled bool
}

func (r *MigrationVolumeReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	mv := &osseav1.MigrationVolume{}
	if err := r.Get(ctx, req.NamespacedName, mv); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	s := &volumeScope{
		mv:         mv,
		helper:     newPatchHelper(mv, r.Client),
		conditions: conditionSetter{&mv.Status.Conditions, mv.Generation},
	}
	s.helper.lockStatus = true // the node agent writes the Mounted condition concurrently

	defer func() {
		r.summarize(s)
		if err := s.helper.patch(ctx, mv); err != nil {
			if apierrors.IsConflict(err) && retErr == nil {
				// Someone (usually the agent) wrote first; start over from fresh state.
				res = ctrl.Result{RequeueAfter: 100 * time.Millisecond}
				return
			}
			retErr = kerrors.NewAggregate([]error{retErr, err})
		}
		volumesByPhase.observe(mv)
	}()

	if !mv.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, s)
	}
	if !controllerutil.ContainsFinalizer(mv, osseav1.VolumeFinalizer) {
		// The finalizer is stored before any CloudStack call, so nothing can be created
		// that deletion would not clean up.
		controllerutil.AddFinalizer(mv, osseav1.VolumeFinalizer)
		return ctrl.Result{RequeueAfter: time.Millisecond}, nil
	}
	return r.reconcileNormal(ctx, s)
}

func (r *MigrationVolumeReconciler) reconcileNormal(ctx context.Context, s *volumeScope) (ctrl.Result, error) {
	if ok, err := r.connect(ctx, s); !ok || err != nil {
		return ctrl.Result{}, err
	}
	if s.mv.Status.PendingJob != nil {
		return r.pollPendingJob(ctx, s)
	}
	for _, phase := range []func(context.Context, *volumeScope) (ctrl.Result, bool, error){
		r.ensureVolume,
		r.ensureTags,
		r.ensureAttached,
	} {
		res, done, err := phase(ctx, s)
		if err != nil || !done {
			return res, err
		}
	}
	return ctrl.Result{RequeueAfter: r.DriftInterval}, nil
}

// connect finds the OsseaConfig and its CloudStack client. Creating waits, without a
// single API call, while the config is not Ready.
func (r *MigrationVolumeReconciler) connect(ctx context.Context, s *volumeScope) (bool, error) {
	cfg := &osseav1.OsseaConfig{}
	key := types.NamespacedName{Namespace: s.mv.Namespace, Name: s.mv.Spec.OsseaConfigRef.Name}
	err := r.Get(ctx, key, cfg)
	if client.IgnoreNotFound(err) != nil {
		return false, fmt.Errorf("reading OsseaConfig %s: %w", key.Name, err)
	}
	deleting := !s.mv.DeletionTimestamp.IsZero()
	if err != nil || (!deleting && !meta.IsStatusConditionTrue(cfg.Status.Conditions, osseav1.ConditionReady)) {
		msg := fmt.Sprintf("OsseaConfig %q does not exist", key.Name)
		if err == nil {
			msg = fmt.Sprintf("OsseaConfig %q is not Ready", key.Name)
			if c := meta.FindStatusCondition(cfg.Status.Conditions, osseav1.ConditionReady); c != nil {
				msg += ": " + c.Message
			}
		}
		if !meta.IsStatusConditionTrue(s.mv.Status.Conditions, osseav1.ConditionAllocated) {
			s.conditions.set(osseav1.ConditionAllocated, metav1.ConditionFalse, ReasonOsseaConfigNotReady, msg)
		} else {
			s.conditions.set(osseav1.ConditionReconciling, metav1.ConditionTrue, ReasonOsseaConfigNotReady, msg)
		}
		return false, nil
	}
	secret := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: cfg.Namespace, Name: cfg.Spec.CredentialsSecretRef.Name}, secret); err != nil {
		return false, fmt.Errorf("reading the credentials of OsseaConfig %s: %w", cfg.Name, err)
	}
	cloud, err := r.Clouds.For(cfg, secret)
	if err != nil {
		return false, fmt.Errorf("building the CloudStack client of OsseaConfig %s: %w", cfg.Name, err)
	}
	s.cfg, s.cloud = cfg, cloud
	return true, nil
}

// cloudError records a CloudStack error on the volume and decides how to go on: terminal
// errors stall the volume (a person must act), the rest are returned for a retry with
// backoff.
func (r *MigrationVolumeReconciler) cloudError(s *volumeScope, condType, action string, err error) (ctrl.Result, bool, error) {
	var ce *cloudstack.Error
	if errors.As(err, &ce) {
		s.mv.Status.LastCloudStackError = &osseav1.CloudStackError{Code: int32(ce.Code), Text: truncate(ce.Text, 1024)}
	}
	cloudErrors.WithLabelValues(errorClass(err)).Inc()
	switch {
	case errors.Is(err, cloudstack.ErrAccountLimit):
		r.stall(s, condType, ReasonAccountLimit, fmt.Sprintf(
			"%s: the CloudStack account's volume limit is reached; raise the limit or free volumes (%v)", action, err))
		return ctrl.Result{RequeueAfter: r.DriftInterval}, false, nil
	case cloudstack.IsTerminal(err):
		r.stall(s, condType, ReasonCloudStackRejected, fmt.Sprintf("%s: CloudStack refused: %v", action, err))
		return ctrl.Result{RequeueAfter: r.DriftInterval}, false, nil
	}
	s.conditions.set(condType, metav1.ConditionFalse, ReasonCloudStackError, fmt.Sprintf("%s: %v; retrying", action, err))
	return ctrl.Result{}, false, fmt.Errorf("%s: %w", action, err)
}

func (r *MigrationVolumeReconciler) stall(s *volumeScope, condType, reason, msg string) {
	s.conditions.set(condType, metav1.ConditionFalse, reason, msg)
	s.stalled = true
	r.Recorder.Eventf(s.mv, nil, corev1.EventTypeWarning, reason, "Reconcile", msg)
}

func (r *MigrationVolumeReconciler) event(s *volumeScope, reason, action, msg string, args ...any) {
	r.Recorder.Eventf(s.mv, nil, corev1.EventTypeNormal, reason, action, msg, args...)
}

// SetupWithManager registers the controller. Besides its own objects it watches
// OsseaConfigs (volumes wait for theirs to be Ready) and other volumes leaving a VM (a
// volume waiting for a free slot attaches as soon as one frees).
func (r *MigrationVolumeReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	if opts.RateLimiter == nil {
		opts.RateLimiter = workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](500*time.Millisecond, time.Minute)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&osseav1.MigrationVolume{}).
		Watches(&osseav1.OsseaConfig{}, handler.EnqueueRequestsFromMapFunc(r.volumesOfConfig),
			builder.WithPredicates(readyChanged)).
		Watches(&osseav1.MigrationVolume{}, handler.EnqueueRequestsFromMapFunc(r.volumesWaitingForCapacity),
			builder.WithPredicates(slotFreed)).
		WithOptions(opts).
		Named("migrationvolume").
		Complete(r)
}

func (r *MigrationVolumeReconciler) volumesOfConfig(ctx context.Context, obj client.Object) []reconcile.Request {
	var list osseav1.MigrationVolumeList
	if err := r.List(ctx, &list, client.InNamespace(obj.GetNamespace()), client.MatchingFields{indexVolumeConfig: obj.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "Listing volumes of a config", "config", obj.GetName())
		return nil
	}
	return requestsFor(list.Items, func(*osseav1.MigrationVolume) bool { return true })
}

func (r *MigrationVolumeReconciler) volumesWaitingForCapacity(ctx context.Context, _ client.Object) []reconcile.Request {
	var list osseav1.MigrationVolumeList
	if err := r.List(ctx, &list); err != nil {
		log.FromContext(ctx).Error(err, "Listing volumes waiting for capacity")
		return nil
	}
	return requestsFor(list.Items, func(mv *osseav1.MigrationVolume) bool {
		c := meta.FindStatusCondition(mv.Status.Conditions, osseav1.ConditionAttached)
		return c != nil && c.Reason == ReasonCapacityExhausted
	})
}

func requestsFor(items []osseav1.MigrationVolume, keep func(*osseav1.MigrationVolume) bool) []reconcile.Request {
	var reqs []reconcile.Request
	for i := range items {
		if keep(&items[i]) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&items[i])})
		}
	}
	return reqs
}

// readyChanged passes config events that can unblock or block its volumes.
var readyChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		was := meta.FindStatusCondition(e.ObjectOld.(*osseav1.OsseaConfig).Status.Conditions, osseav1.ConditionReady)
		now := meta.FindStatusCondition(e.ObjectNew.(*osseav1.OsseaConfig).Status.Conditions, osseav1.ConditionReady)
		return (was == nil) != (now == nil) || (was != nil && now != nil && was.Status != now.Status)
	},
	DeleteFunc:  func(event.DeleteEvent) bool { return false },
	GenericFunc: func(event.GenericEvent) bool { return false },
}

// slotFreed passes volume events that free a data disk slot on a VM.
var slotFreed = predicate.Funcs{
	CreateFunc: func(event.CreateEvent) bool { return false },
	UpdateFunc: func(e event.UpdateEvent) bool {
		return e.ObjectOld.(*osseav1.MigrationVolume).Status.AttachedVirtualMachineID != "" &&
			e.ObjectNew.(*osseav1.MigrationVolume).Status.AttachedVirtualMachineID == ""
	},
	GenericFunc: func(event.GenericEvent) bool { return false },
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
