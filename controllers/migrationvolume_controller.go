package controllers

import (
	"context"
	"errors"
	"fmt"
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
	"sigs.k8s.io/controller-runtime/pkg/source"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudstack"
	"github.com/migratekit/ossea-operator/internal/ownership"
)

// Operations recorded in status.pendingJob.
const (
	opCreate = "create"
	opTag    = "tag"
	opAttach = "attach"
	opDetach = "detach"
	opRetain = "retain"
	// opRelease tags a volume left on the VM a person moved it to.
	opRelease = "release"
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
	// SecretMetadata reads the credentials Secrets' metadata, from a cache: a client
	// built for the Secret version it names is reused without reading the Secret's data.
	// Default: the manager's cache.
	SecretMetadata client.Reader
	// DriftInterval is how often each OsseaConfig's settled volumes are compared with
	// CloudStack, all with one call.
	DriftInterval time.Duration
	// LostCreateGrace is how long a create that got no answer may still land in
	// CloudStack; 0 means DefaultLostCreateGrace.
	LostCreateGrace time.Duration
	// HandoffRecheck is how often a hand-off whose target was refused is checked again;
	// 0 means DefaultHandoffRecheck.
	HandoffRecheck time.Duration
	// ClusterID is this cluster's identity, tagged on every volume it creates.
	ClusterID string
	// Orphans looks for each config's orphans on the drift pass; nil turns that off.
	Orphans *orphanSweeper

	// mem is what this process knows of each volume beyond its status: the jobs it
	// started, the slots it holds, which volumes to read before deciding, which objects
	// it saw being deleted (see volumeMemory).
	mem *volumeMemory
	// written is what our last write of each object left, to tell a cache that lags
	// behind it.
	written ownership.LastWrites
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
	// vol is what CloudStack said about the volume during this reconcile (a read or a
	// job's result), so later steps need not ask again; nil when nothing was heard.
	vol *cloudstack.Volume
	// lookedUp is set when this reconcile found no volume by the object's name, so that
	// the create right after need not look again.
	lookedUp bool
	// stalled is set when this pass ended on an error no retry can fix; stall is that error.
	stalled bool
	stall   *stalling
	// detachedFrom names the VM a teardown's detach, seen done in this pass, took the
	// volume from: the delete's event then tells both (one event, not two).
	detachedFrom string
	// quiet is set by a pass that has nothing to say yet (see agentLetGoWait): its status
	// is not computed or written.
	quiet bool
}

func (r *MigrationVolumeReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	mv := &osseav1.MigrationVolume{}
	if err := r.Get(ctx, req.NamespacedName, mv); err != nil {
		if apierrors.IsNotFound(err) {
			r.written.Forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if r.written.Behind(mv) {
		// The cache has not caught up with our last write yet (the event that woke us
		// came from an earlier one). Acting on the older copy would redo a step already
		// taken; its write would fail the optimistic lock, but only after the calls.
		return ctrl.Result{RequeueAfter: 50 * time.Millisecond}, nil
	}
	if !mv.DeletionTimestamp.IsZero() {
		r.mem.sawDeleting(mv.UID)
	} else if r.mem.isDeleting(mv.UID) {
		// The cache has not caught up with the deletion this process has already seen:
		// on this copy the normal path would only start what the deletion must undo.
		return ctrl.Result{RequeueAfter: 50 * time.Millisecond}, nil
	}
	if wait := r.mem.heldOff(mv.UID); wait > 0 {
		// A call on this volume got no reply a moment ago (see lostReply).
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	s := &volumeScope{
		mv:         mv,
		helper:     newPatchHelper(mv, r.Client),
		conditions: conditionSetter{&mv.Status.Conditions, mv.Generation},
	}

	defer func() {
		if s.quiet {
			return
		}
		r.refreshAgentPart(ctx, s)
		r.summarize(s)
		err := s.helper.patch(ctx, mv)
		r.written.Wrote(mv)
		if err != nil {
			if apierrors.IsConflict(err) && retErr == nil {
				// The agent changed its finalizer meanwhile (status writes are applied and never
				// refused); start over from fresh state.
				res = ctrl.Result{RequeueAfter: 100 * time.Millisecond}
				return
			}
			retErr = kerrors.NewAggregate([]error{retErr, err})
		}
		volumesByPhase.observe(mv)
	}()

	r.recallJob(ctx, s)
	r.recallCreateIntent(ctx, s)
	var err error
	if !mv.DeletionTimestamp.IsZero() {
		err = r.reconcileDelete(ctx, s)
	} else {
		// The finalizer is written with the create intent, before the create call (see
		// ensureVolume), so nothing can be created that deletion would not clean up.
		controllerutil.AddFinalizer(mv, osseav1.VolumeFinalizer)
		err = r.reconcileNormal(ctx, s)
	}
	r.recordOutcome(s, err)
	return outcomeResult(err, r.DriftInterval)
}

// reconcileNormal moves the volume on as far as it can in one go: a job found finished
// leads straight into the next step, so each step costs one status write.
func (r *MigrationVolumeReconciler) reconcileNormal(ctx context.Context, s *volumeScope) error {
	if err := r.connect(ctx, s); err != nil {
		return err
	}
	if s.mv.Status.PendingJob != nil {
		if err := r.pollPendingJob(ctx, s); err != nil {
			return err
		}
	}
	last := r.ensureAttached
	if s.mv.Spec.Handoff != nil {
		last = r.handOff
	}
	for _, phase := range []func(context.Context, *volumeScope) error{
		r.ensureVolume,
		r.ensureTags,
		last,
	} {
		if err := phase(ctx, s); err != nil {
			return err
		}
	}
	// Settled: the drift checker looks at it with the config's other volumes from now on.
	return nil
}

// recordOutcome writes into conditions and events what the pass ended with (see
// outcome.go); it is the one place that does.
func (r *MigrationVolumeReconciler) recordOutcome(s *volumeScope, err error) {
	s.stall = recordOutcome(s.conditions, r.Recorder, s.mv, err)
	s.stalled = s.stall != nil
}

// connect finds the OsseaConfig and its CloudStack client. Creating waits, without a
// single API call, while the config is not Ready; it is woken when the config becomes
// Ready.
func (r *MigrationVolumeReconciler) connect(ctx context.Context, s *volumeScope) error {
	cfg := &osseav1.OsseaConfig{}
	key := types.NamespacedName{Namespace: s.mv.Namespace, Name: s.mv.Spec.OsseaConfigRef.Name}
	err := r.Get(ctx, key, cfg)
	if client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("reading OsseaConfig %s: %w", key.Name, err)
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
			s.conditions.set(osseav1.ConditionAllocated, metav1.ConditionFalse, osseav1.ReasonOsseaConfigNotReady, msg)
		} else {
			s.conditions.set(osseav1.ConditionReconciling, metav1.ConditionTrue, osseav1.ReasonOsseaConfigNotReady, msg)
		}
		if deleting {
			// Teardown needs the config's credentials; the config cannot go while
			// volumes use it, so it is missing only briefly or by force.
			return waitFor(time.Minute)
		}
		return waitFor(0)
	}
	cloud, err := r.cloudFor(ctx, cfg)
	if err != nil {
		return err
	}
	s.cfg, s.cloud = cfg, cloud
	return nil
}

// cachedFactory is a CloudFactory that can hand out the client it built for a Secret
// version without the Secret's data (cloudstack.Factory is one).
type cachedFactory interface {
	Cached(cfg *osseav1.OsseaConfig, secretUID types.UID, secretRV string) (cloudstack.Cloud, bool)
}

// cloudFor returns the config's CloudStack client. The Secret's data is read from the API
// server only when the cached metadata shows a version the client was not built from.
func (r *MigrationVolumeReconciler) cloudFor(ctx context.Context, cfg *osseav1.OsseaConfig) (cloudstack.Cloud, error) {
	key := types.NamespacedName{Namespace: cfg.Namespace, Name: cfg.Spec.CredentialsSecretRef.Name}
	if cf, ok := r.Clouds.(cachedFactory); ok && r.SecretMetadata != nil {
		m := &metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
		if err := r.SecretMetadata.Get(ctx, key, m); err == nil {
			if cloud, ok := cf.Cached(cfg, m.UID, m.ResourceVersion); ok {
				return cloud, nil
			}
		}
	}
	secret := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, key, secret); err != nil {
		return nil, fmt.Errorf("reading the credentials of OsseaConfig %s: %w", cfg.Name, err)
	}
	cloud, err := r.Clouds.For(cfg, secret)
	if err != nil {
		return nil, fmt.Errorf("building the CloudStack client of OsseaConfig %s: %w", cfg.Name, err)
	}
	return cloud, nil
}

// refreshAgentPart reads the node agent's part of the status from the API server when
// this pass is about to report the attach. The agent claims a volume while its attach job
// runs and mounts the disk the moment it appears, often before the manager has seen the job
// end; a summary made from the cached copy would then say Ready=False (waiting for the
// device) only to be corrected by a second write a moment later. One read saves that write.
func (r *MigrationVolumeReconciler) refreshAgentPart(ctx context.Context, s *volumeScope) {
	before := s.helper.before.(*osseav1.MigrationVolume)
	if r.APIReader == nil || !s.mv.DeletionTimestamp.IsZero() ||
		!meta.IsStatusConditionTrue(s.mv.Status.Conditions, osseav1.ConditionAttached) ||
		meta.IsStatusConditionTrue(before.Status.Conditions, osseav1.ConditionAttached) {
		return
	}
	fresh := &osseav1.MigrationVolume{}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(s.mv), fresh); err != nil || fresh.UID != s.mv.UID {
		return // the summary from the cached copy is corrected when the agent's write arrives
	}
	s.mv.Status.SetAgentPart(fresh.Status.AgentPart())
}

// recallJob puts back into status the job this process started on the volume and has
// not seen end, when status does not show it: the write that was to record it was refused
// because the object had changed meanwhile (its deletion, or the agent's write). Without
// it, the next pass would see no job in flight: the normal path would start a second one,
// the delete path would detach or delete the volume under it.
func (r *MigrationVolumeReconciler) recallJob(ctx context.Context, s *volumeScope) {
	run, ok := r.mem.unfinished(s.mv.UID)
	st := &s.mv.Status
	if !ok || (st.PendingJob != nil && st.PendingJob.ID == run.job.ID) {
		return
	}
	// A job in status that differs from this process's is older: this process starts a
	// job only after it has seen the one before end.
	log.FromContext(ctx).Info("Resuming a job whose recording in status was refused",
		"job", run.job.ID, "operation", run.job.Operation, "volumeID", run.volumeID)
	st.PendingJob = run.job.DeepCopy()
	if st.VolumeID == "" {
		st.VolumeID = run.volumeID
	}
	if run.job.Operation == opAttach {
		st.AttachedVirtualMachineID = run.vmID
	}
}

// recallCreateIntent takes up a create intent that no status write followed: the manager
// stopped between its intent and the write after the call (or the status was lost), so a
// create may have been sent whose outcome nobody recorded. It is settled like a create
// whose reply was lost (see resolveLostCreate), in a normal pass or a teardown alike.
func (r *MigrationVolumeReconciler) recallCreateIntent(ctx context.Context, s *volumeScope) {
	st := &s.mv.Status
	if st.VolumeID != "" || st.PendingJob != nil {
		return
	}
	if at, ok := createIntent(s.mv); ok {
		log.FromContext(ctx).Info("Resuming a create intent whose outcome status does not record", "intentAt", at)
		st.PendingJob = &osseav1.PendingJob{Operation: opCreate, StartedAt: metav1.NewTime(at)}
	}
}

// cloudError records a CloudStack error on the volume and decides how to go on: terminal
// errors stall the volume (a person must act), the rest are retried with backoff.
func (r *MigrationVolumeReconciler) cloudError(s *volumeScope, condType, action string, err error) error {
	cloudErrors.WithLabelValues(errorClass(err)).Inc()
	if wait := throttled(err); wait != nil {
		return wait
	}
	var ce *cloudstack.Error
	if errors.As(err, &ce) {
		s.mv.Status.LastCloudStackError = &osseav1.CloudStackError{Code: int32(ce.Code), Text: truncate(ce.Text, 1024)}
	}
	// Whatever went wrong, CloudStack may have acted: read before deciding again (and,
	// when no reply came, not before a job the call may have started could have ended).
	if cloudstack.Answered(err) {
		r.mem.markStale(s.mv.UID)
	} else {
		r.mem.lostReply(s.mv.UID)
	}
	switch {
	case errors.Is(err, cloudstack.ErrAccountLimit):
		return stall(condType, osseav1.ReasonAccountLimit, fmt.Sprintf(
			"%s: the CloudStack account's volume limit is reached; raise the limit or free volumes (%v)", action, err))
	case errors.Is(err, cloudstack.ErrPermissionDenied):
		return stall(condType, osseav1.ReasonPermissionDenied, permissionMessage(action, s.cfg, err))
	case cloudstack.IsTerminal(err):
		return stall(condType, osseav1.ReasonCloudStackRejected, fmt.Sprintf("%s: CloudStack refused: %v", action, err))
	}
	return &retrying{cond: condType, reason: osseav1.ReasonCloudStackError,
		msg: fmt.Sprintf("%s: %v; retrying", action, err), err: fmt.Errorf("%s: %w", action, err)}
}

// permissionMessage says which permission CloudStack refused and what would grant it.
func permissionMessage(action string, cfg *osseav1.OsseaConfig, err error) string {
	return fmt.Sprintf("%s: CloudStack refused the account of the keys in Secret %q permission on this volume or on OMA VM %s (%v); "+
		"the volume and the OMA VM must belong to that account, or the keys must be those of an admin who may act on both",
		action, cfg.Spec.CredentialsSecretRef.Name, cfg.Spec.OMAVirtualMachineID, err)
}

func (r *MigrationVolumeReconciler) event(s *volumeScope, reason, action, msg string, args ...any) {
	r.Recorder.Eventf(s.mv, nil, corev1.EventTypeNormal, reason, action, msg, args...)
}

// SetupWithManager registers the controller. Besides its own objects it watches
// OsseaConfigs (volumes wait for theirs to be Ready) and other volumes leaving a VM (a
// volume waiting for a free slot attaches as soon as one frees), and it runs the drift
// checker, which wakes the volumes it finds changed in CloudStack.
func (r *MigrationVolumeReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	if opts.RateLimiter == nil {
		opts.RateLimiter = workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](500*time.Millisecond, time.Minute)
	}
	if opts.MaxConcurrentReconciles == 0 {
		// Reconciles mostly wait: on the API server, on CloudStack, on the rate limit, and
		// on each other, since reads of many volumes are batched into one call (see
		// cloudstack's batcher), which works only if many reconciles can wait together.
		opts.MaxConcurrentReconciles = DefaultMaxConcurrentReconciles
	}
	if r.SecretMetadata == nil {
		r.SecretMetadata = mgr.GetCache()
	}
	r.mem = newVolumeMemory()
	if r.DriftInterval > 0 {
		// Disks not the operator's are looked for again as often as drift is.
		r.mem.unmanagedTTL = r.DriftInterval
	}
	if r.HandoffRecheck == 0 {
		r.HandoffRecheck = DefaultHandoffRecheck
	}
	if r.LostCreateGrace > 0 {
		r.mem.lostCreateGrace = r.LostCreateGrace
	}
	drifted := make(chan event.GenericEvent, 1024)
	if err := mgr.Add(&driftChecker{r: r, events: drifted, log: mgr.GetLogger().WithName("drift")}); err != nil {
		return fmt.Errorf("adding the drift checker: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&osseav1.MigrationVolume{}).
		Watches(&osseav1.OsseaConfig{}, handler.EnqueueRequestsFromMapFunc(r.volumesOfConfig),
			builder.WithPredicates(readyChanged)).
		Watches(&osseav1.MigrationVolume{}, handler.EnqueueRequestsFromMapFunc(r.volumesWaitingForSlot),
			builder.WithPredicates(slotFreed)).
		WatchesRawSource(source.Channel(drifted, &handler.EnqueueRequestForObject{})).
		WithOptions(opts).
		Named("migrationvolume").
		Complete(r)
}

// DefaultMaxConcurrentReconciles is the number of MigrationVolumes reconciled at once.
const DefaultMaxConcurrentReconciles = 64

func (r *MigrationVolumeReconciler) volumesOfConfig(ctx context.Context, obj client.Object) []reconcile.Request {
	var list osseav1.MigrationVolumeList
	if err := r.List(ctx, &list, client.InNamespace(obj.GetNamespace()), client.MatchingFields{indexVolumeConfig: obj.GetName()},
		client.UnsafeDisableDeepCopy); err != nil {
		log.FromContext(ctx).Error(err, "Listing volumes of a config", "config", obj.GetName())
		return nil
	}
	return requestsFor(list.Items, func(*osseav1.MigrationVolume) bool { return true })
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
