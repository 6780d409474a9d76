package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudstack"
)

var configDetails = []string{osseav1.ConditionCredentialsValid, osseav1.ConditionConnected, osseav1.ConditionResourcesFound}

// CloudFactory builds the CloudStack client of an OsseaConfig from its credentials Secret.
type CloudFactory interface {
	For(cfg *osseav1.OsseaConfig, secret *corev1.Secret) (cloudstack.Cloud, error)
}

// OsseaConfigReconciler keeps each OsseaConfig's connection test current and holds the
// config and its Secret in place while volumes depend on them.
type OsseaConfigReconciler struct {
	client.Client
	// APIReader reads Secrets straight from the API server; the manager does not cache them.
	APIReader          client.Reader
	Recorder           events.EventRecorder
	Clouds             CloudFactory
	RevalidateInterval time.Duration
	// Orphans holds what the orphan checks found, published here into status.orphans.
	Orphans *orphanSweeper

	// validatedWith remembers the Secret resourceVersion each config last passed its test
	// with, so a rotated Secret is tested at once and an unchanged one not on every event.
	validatedWith sync.Map // types.NamespacedName -> string
}

// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;patch;update

// configScope is what one reconcile of one OsseaConfig works on.
type configScope struct {
	cfg        *osseav1.OsseaConfig
	conditions conditionSetter
	secret     *corev1.Secret
	volumes    []string // names of the MigrationVolumes that use the config
	stalled    bool
}

func (r *OsseaConfigReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, retErr error) {
	cfg := &osseav1.OsseaConfig{}
	if err := r.Get(ctx, req.NamespacedName, cfg); err != nil {
		if apierrors.IsNotFound(err) {
			r.Orphans.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	helper := newPatchHelper(cfg, r.Client)
	wasReady := meta.FindStatusCondition(cfg.Status.Conditions, osseav1.ConditionReady).DeepCopy()
	s := &configScope{cfg: cfg, conditions: conditionSetter{&cfg.Status.Conditions, cfg.Generation}}

	defer func() {
		cfg.Status.ObservedGeneration = cfg.Generation
		if err := helper.patch(ctx, cfg); err != nil {
			retErr = kerrors.NewAggregate([]error{retErr, err})
			return
		}
		r.recordReadyTransition(cfg, wasReady)
	}()

	volumes, err := r.volumesUsing(ctx, cfg)
	if err != nil {
		return ctrl.Result{}, err
	}
	s.volumes = volumes
	if report, ok := r.Orphans.reportOf(req.NamespacedName); ok {
		cfg.Status.Orphans = &report
	}

	if !cfg.DeletionTimestamp.IsZero() {
		err = r.reconcileDelete(ctx, s)
	} else {
		err = r.reconcileNormal(ctx, s)
	}
	if err == nil && (cfg.DeletionTimestamp.IsZero() || len(s.volumes) > 0) {
		// Passed, or not due: come back when the test is next due.
		return ctrl.Result{RequeueAfter: r.untilRecheck(cfg)}, nil
	}
	return outcomeResult(err, wait.Jitter(r.RevalidateInterval, 0.1))
}

// untilRecheck is how long until the connection test is due again, jittered so that the
// configs tested together do not stay in step.
func (r *OsseaConfigReconciler) untilRecheck(cfg *osseav1.OsseaConfig) time.Duration {
	due := r.RevalidateInterval
	if cfg.Status.LastValidated != nil {
		due = max(time.Until(cfg.Status.LastValidated.Add(r.RevalidateInterval)), time.Second)
	}
	return wait.Jitter(due, 0.1)
}

func (r *OsseaConfigReconciler) reconcileNormal(ctx context.Context, s *configScope) error {
	if len(s.volumes) > 0 {
		controllerutil.AddFinalizer(s.cfg, osseav1.InUseFinalizer)
	}
	err := r.validate(ctx, s)
	if len(s.volumes) > 0 && s.secret != nil {
		if perr := r.protectSecret(ctx, s.secret); perr != nil {
			err = kerrors.NewAggregate([]error{err, perr})
		}
	}
	if len(s.volumes) == 0 && controllerutil.ContainsFinalizer(s.cfg, osseav1.InUseFinalizer) {
		if rerr := r.releaseSecret(ctx, s.cfg); rerr != nil {
			return kerrors.NewAggregate([]error{err, rerr})
		}
		controllerutil.RemoveFinalizer(s.cfg, osseav1.InUseFinalizer)
	}
	return err
}

// reconcileDelete lets the config go only once no volume needs its credentials for cleanup.
// It keeps testing the connection meanwhile, since the volume controller still uses it.
func (r *OsseaConfigReconciler) reconcileDelete(ctx context.Context, s *configScope) error {
	if len(s.volumes) > 0 {
		err := r.validate(ctx, s)
		msg := fmt.Sprintf("deletion waits for %d MigrationVolume(s) that use this config to be deleted: %s",
			len(s.volumes), summarizeNames(s.volumes))
		s.conditions.set(osseav1.ConditionReconciling, metav1.ConditionTrue, osseav1.ReasonDeletionBlocked, msg)
		r.Recorder.Eventf(s.cfg, nil, corev1.EventTypeNormal, osseav1.ReasonDeletionBlocked, "Delete", msg)
		return err
	}
	if err := r.releaseSecret(ctx, s.cfg); err != nil {
		return err
	}
	controllerutil.RemoveFinalizer(s.cfg, osseav1.InUseFinalizer)
	r.validatedWith.Delete(client.ObjectKeyFromObject(s.cfg))
	r.Orphans.forget(client.ObjectKeyFromObject(s.cfg))
	return nil
}

// validate runs the connection test when something could have changed its outcome, and
// records the result in the detail conditions and the status fields. A failed test ends in
// an outcome (see outcome.go), recorded here, before Ready is summarised.
func (r *OsseaConfigReconciler) validate(ctx context.Context, s *configScope) (err error) {
	cfg := s.cfg
	key := client.ObjectKeyFromObject(cfg)
	defer func() {
		r.recordOutcome(s, err)
		s.conditions.summarize(configDetails, s.stalled, osseav1.ReasonConnected, connectedMessage(cfg))
	}()

	secret := &corev1.Secret{}
	err = r.APIReader.Get(ctx, types.NamespacedName{Namespace: cfg.Namespace, Name: cfg.Spec.CredentialsSecretRef.Name}, secret)
	switch {
	case apierrors.IsNotFound(err):
		return stall(osseav1.ConditionCredentialsValid, osseav1.ReasonSecretMissing, fmt.Sprintf(
			"Secret %q does not exist in namespace %q: create it with the keys apiKey and secretKey",
			cfg.Spec.CredentialsSecretRef.Name, cfg.Namespace))
	case err != nil:
		return fmt.Errorf("reading Secret %s: %w", cfg.Spec.CredentialsSecretRef.Name, err)
	}
	s.secret = secret

	if !r.needsValidation(cfg, secret) {
		return nil
	}

	cloud, err := r.Clouds.For(cfg, secret)
	if err != nil {
		return validationFailed(cfg, err)
	}
	s.conditions.set(osseav1.ConditionCredentialsValid, metav1.ConditionTrue, osseav1.ReasonSecretFound,
		fmt.Sprintf("Secret %q holds apiKey and secretKey", secret.Name))

	v, err := cloud.Validate(ctx, cloudstack.ValidateRequest{
		Zone:                cfg.Spec.Zone,
		OMAVirtualMachineID: cfg.Spec.OMAVirtualMachineID,
		DiskOfferingID:      cfg.Spec.DiskOfferingID,
		MaxDataVolumes:      cfg.Spec.MaxDataVolumes,
	})
	if wait := throttled(err); wait != nil {
		// A call of the test never ran: the test says nothing about the config, whose
		// standing stays as it was.
		log.FromContext(ctx).V(1).Info("Connection test refused for the rate limit; taking it again")
		return wait
	}
	recordValidation(cfg, v)
	var check *cloudstack.CheckError
	if err == nil || (errors.As(err, &check) && check.Check != cloudstack.CheckConnection && !errors.Is(err, cloudstack.ErrTransient)) {
		s.conditions.set(osseav1.ConditionConnected, metav1.ConditionTrue, osseav1.ReasonConnected,
			fmt.Sprintf("CloudStack %s accepted the credentials", cfg.Status.CloudStackVersion))
	}
	if err != nil {
		return validationFailed(cfg, err)
	}

	s.conditions.set(osseav1.ConditionResourcesFound, metav1.ConditionTrue, osseav1.ReasonResourcesFound, fmt.Sprintf(
		"zone %s, OMA VM %s (%s), disk offering %s", v.Zone.Name, v.VirtualMachine.Name, v.VirtualMachine.State, v.DiskOffering.Name))
	now := metav1.Now()
	cfg.Status.LastValidated = &now
	r.validatedWith.Store(key, secret.ResourceVersion)
	log.FromContext(ctx).V(1).Info("Connection test passed", "zone", v.Zone.Name, "omaVM", v.VirtualMachine.Name)
	return nil
}

// validationFailed is the outcome of a failed connection test: stalled when a person must
// act, else retried with the controller's backoff, which paces retries against a flaky
// endpoint.
func validationFailed(cfg *osseav1.OsseaConfig, err error) error {
	reason, stalled, msg := classifyValidation(cfg, err)
	if stalled {
		return stall(conditionFor(reason), reason, msg)
	}
	return &retrying{cond: conditionFor(reason), reason: reason, msg: msg, err: fmt.Errorf("testing the connection: %w", err)}
}

// recordOutcome writes a failed test into the detail conditions.
func (r *OsseaConfigReconciler) recordOutcome(s *configScope, err error) {
	var st *stalling
	var re *retrying
	switch {
	case errors.As(err, &st):
		r.fail(s, st.cond, st.reason, true, st.msg)
	case errors.As(err, &re):
		r.fail(s, re.cond, re.reason, false, re.msg)
	}
}

func (r *OsseaConfigReconciler) needsValidation(cfg *osseav1.OsseaConfig, secret *corev1.Secret) bool {
	ready := meta.FindStatusCondition(cfg.Status.Conditions, osseav1.ConditionReady)
	if ready == nil || ready.Status != metav1.ConditionTrue || ready.ObservedGeneration != cfg.Generation {
		return true
	}
	if cfg.Status.LastValidated == nil || time.Since(cfg.Status.LastValidated.Time) >= r.RevalidateInterval {
		return true
	}
	rv, ok := r.validatedWith.Load(client.ObjectKeyFromObject(cfg))
	return !ok || rv.(string) != secret.ResourceVersion
}

// fail records a failed check: its condition False, the checks after it not evaluated.
func (r *OsseaConfigReconciler) fail(s *configScope, condType, reason string, stalled bool, msg string) {
	after := false
	for _, t := range configDetails {
		switch {
		case t == condType:
			s.conditions.set(t, metav1.ConditionFalse, reason, msg)
			after = true
		case after:
			s.conditions.set(t, metav1.ConditionUnknown, osseav1.ReasonNotChecked, "not checked: "+condType+" failed first")
		}
	}
	s.stalled = stalled
}

func recordValidation(cfg *osseav1.OsseaConfig, v *cloudstack.Validation) {
	if v == nil {
		return
	}
	st := &cfg.Status
	if v.CloudStackVersion != "" {
		st.CloudStackVersion = v.CloudStackVersion
	}
	if v.Zone.ID != "" {
		st.ZoneID = v.Zone.ID
	}
	if v.VirtualMachine.ID != "" {
		st.OMAVirtualMachineName = v.VirtualMachine.Name
		st.OMAVirtualMachineState = v.VirtualMachine.State
	}
	if v.DiskOffering.ID != "" {
		st.DiskOfferingID = v.DiskOffering.ID
	}
	if v.MaxDataVolumes > 0 {
		st.Capacity = &osseav1.OsseaConfigCapacity{
			AttachedDataVolumes: int32(v.AttachedDataVolumes),
			MaxDataVolumes:      int32(v.MaxDataVolumes),
		}
	}
}

// classifyValidation turns a failed connection test into a Reason, whether a person must
// act (stalled), and a message that says what to fix.
func classifyValidation(cfg *osseav1.OsseaConfig, err error) (reason string, stalled bool, msg string) {
	var check *cloudstack.CheckError
	errors.As(err, &check)
	switch {
	case errors.Is(err, cloudstack.ErrSecretMissing):
		return osseav1.ReasonSecretMissing, true, fmt.Sprintf("Secret %q is missing: %v", cfg.Spec.CredentialsSecretRef.Name, err)
	case errors.Is(err, cloudstack.ErrSecretInvalid):
		return osseav1.ReasonSecretInvalid, true, fmt.Sprintf(
			"Secret %q is not usable: %v; it needs the keys apiKey and secretKey", cfg.Spec.CredentialsSecretRef.Name, err)
	case errors.Is(err, cloudstack.ErrInvalidConfig):
		return osseav1.ReasonUnreachable, true, fmt.Sprintf("apiURL %q cannot be used: %v", cfg.Spec.APIURL, err)
	case errors.Is(err, cloudstack.ErrUnauthorized):
		return osseav1.ReasonUnauthorized, true, fmt.Sprintf(
			"CloudStack at %s rejected the credentials in Secret %q: check apiKey and secretKey (%v)",
			cfg.Spec.APIURL, cfg.Spec.CredentialsSecretRef.Name, err)
	case errors.Is(err, cloudstack.ErrPermissionDenied):
		return osseav1.ReasonPermissionDenied, true, permissionMessage("testing the connection", cfg, err)
	case errors.Is(err, cloudstack.ErrTLS):
		return osseav1.ReasonTLSError, true, fmt.Sprintf(
			"TLS with %s failed: set caBundle to the CA that signed the server's certificate (%v)", cfg.Spec.APIURL, err)
	case errors.Is(err, cloudstack.ErrUnreachable):
		return osseav1.ReasonUnreachable, false, fmt.Sprintf(
			"cannot reach CloudStack at %s: check apiURL and the network; retrying (%v)", cfg.Spec.APIURL, err)
	case check != nil && check.Check == cloudstack.CheckZone && errors.Is(err, cloudstack.ErrNotFound):
		return osseav1.ReasonZoneNotFound, true, fmt.Sprintf(
			"zone %q does not exist or is not visible to this account: set spec.zone to a zone name or UUID", cfg.Spec.Zone)
	case check != nil && check.Check == cloudstack.CheckVirtualMachine && errors.Is(err, cloudstack.ErrNotFound):
		return osseav1.ReasonOMAVMNotFound, true, fmt.Sprintf(
			"OMA VM %s does not exist in zone %q or is not visible to this account: check spec.omaVirtualMachineID",
			cfg.Spec.OMAVirtualMachineID, cfg.Spec.Zone)
	case check != nil && check.Check == cloudstack.CheckVirtualMachine && !errors.Is(err, cloudstack.ErrTransient):
		// A VM that is starting or migrating gets there by itself; one that is destroyed
		// or broken needs a person.
		return osseav1.ReasonOMAVMNotUsable, deadVMStates[cfg.Status.OMAVirtualMachineState] || cloudstack.IsTerminal(err), fmt.Sprintf(
			"OMA VM %s cannot take volumes: %v", cfg.Spec.OMAVirtualMachineID, err)
	case check != nil && check.Check == cloudstack.CheckDiskOffering && !errors.Is(err, cloudstack.ErrTransient):
		return osseav1.ReasonDiskOfferingInvalid, true, fmt.Sprintf(
			"disk offering cannot be used: %v; set spec.diskOfferingID to an offering with a custom size", err)
	default:
		return osseav1.ReasonCloudStackError, cloudstack.IsTerminal(err), fmt.Sprintf("CloudStack at %s failed the connection test: %v; retrying", cfg.Spec.APIURL, err)
	}
}

// deadVMStates are the VM states that do not end without someone acting.
var deadVMStates = map[string]bool{"Destroyed": true, "Expunging": true, "Expunged": true, "Error": true}

func conditionFor(reason string) string {
	switch reason {
	case osseav1.ReasonSecretMissing, osseav1.ReasonSecretInvalid:
		return osseav1.ConditionCredentialsValid
	case osseav1.ReasonZoneNotFound, osseav1.ReasonOMAVMNotFound, osseav1.ReasonOMAVMNotUsable, osseav1.ReasonDiskOfferingInvalid:
		return osseav1.ConditionResourcesFound
	default:
		return osseav1.ConditionConnected
	}
}

func connectedMessage(cfg *osseav1.OsseaConfig) string {
	st := cfg.Status
	return fmt.Sprintf("connected to CloudStack %s; OMA VM %s is %s", st.CloudStackVersion, st.OMAVirtualMachineName, st.OMAVirtualMachineState)
}

func (r *OsseaConfigReconciler) recordReadyTransition(cfg *osseav1.OsseaConfig, was *metav1.Condition) {
	now := meta.FindStatusCondition(cfg.Status.Conditions, osseav1.ConditionReady)
	if now == nil || (was != nil && was.Status == now.Status && was.Reason == now.Reason) {
		return
	}
	eventType := corev1.EventTypeNormal
	if now.Status != metav1.ConditionTrue {
		eventType = corev1.EventTypeWarning
	}
	r.Recorder.Eventf(cfg, nil, eventType, now.Reason, "Validate", "Ready=%s: %s", now.Status, now.Message)
}

// volumesUsing lists the MigrationVolumes in the config's namespace that reference it.
func (r *OsseaConfigReconciler) volumesUsing(ctx context.Context, cfg *osseav1.OsseaConfig) ([]string, error) {
	var list osseav1.MigrationVolumeList
	if err := r.List(ctx, &list, client.InNamespace(cfg.Namespace), client.MatchingFields{indexVolumeConfig: cfg.Name}); err != nil {
		return nil, fmt.Errorf("listing MigrationVolumes that use %s: %w", cfg.Name, err)
	}
	names := make([]string, 0, len(list.Items))
	for _, v := range list.Items {
		names = append(names, v.Name)
	}
	return names, nil
}

// protectSecret puts the in-use finalizer on the credentials Secret so the credentials that
// cleanup needs cannot be deleted before the volumes are.
func (r *OsseaConfigReconciler) protectSecret(ctx context.Context, secret *corev1.Secret) error {
	if controllerutil.ContainsFinalizer(secret, osseav1.InUseFinalizer) {
		return nil
	}
	patch := client.MergeFromWithOptions(secret.DeepCopy(), client.MergeFromWithOptimisticLock{})
	before := secret.ResourceVersion
	controllerutil.AddFinalizer(secret, osseav1.InUseFinalizer)
	if err := r.Patch(ctx, secret, patch); err != nil {
		return fmt.Errorf("adding finalizer to Secret %s: %w", secret.Name, err)
	}
	r.ownSecretEdit(secret.Namespace, before, secret.ResourceVersion)
	return nil
}

// ownSecretEdit carries the configs validated with a Secret's version over to the version
// our own finalizer edit made: the keys did not change, so the connection test need not
// run again (a new resourceVersion otherwise means rotated credentials).
func (r *OsseaConfigReconciler) ownSecretEdit(namespace, before, after string) {
	r.validatedWith.Range(func(k, v any) bool {
		if k.(types.NamespacedName).Namespace == namespace && v.(string) == before {
			r.validatedWith.Store(k, after)
		}
		return true
	})
}

// releaseSecret removes the in-use finalizer from the config's Secret unless another
// config that is still in use shares the Secret.
func (r *OsseaConfigReconciler) releaseSecret(ctx context.Context, cfg *osseav1.OsseaConfig) error {
	// Asked of the API server, not the cache: a config of another shard (--watch-filter)
	// may share the Secret, and this manager's cache does not hold it.
	var configs osseav1.OsseaConfigList
	if err := r.APIReader.List(ctx, &configs, client.InNamespace(cfg.Namespace)); err != nil {
		return fmt.Errorf("listing OsseaConfigs that share Secret %s: %w", cfg.Spec.CredentialsSecretRef.Name, err)
	}
	for _, other := range configs.Items {
		if other.Name != cfg.Name && other.Spec.CredentialsSecretRef.Name == cfg.Spec.CredentialsSecretRef.Name &&
			controllerutil.ContainsFinalizer(&other, osseav1.InUseFinalizer) {
			return nil
		}
	}
	secret := &corev1.Secret{}
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: cfg.Namespace, Name: cfg.Spec.CredentialsSecretRef.Name}, secret)
	if apierrors.IsNotFound(err) || (err == nil && !controllerutil.ContainsFinalizer(secret, osseav1.InUseFinalizer)) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading Secret %s: %w", cfg.Spec.CredentialsSecretRef.Name, err)
	}
	patch := client.MergeFromWithOptions(secret.DeepCopy(), client.MergeFromWithOptimisticLock{})
	before := secret.ResourceVersion
	controllerutil.RemoveFinalizer(secret, osseav1.InUseFinalizer)
	if err := r.Patch(ctx, secret, patch); err != nil {
		return fmt.Errorf("removing finalizer from Secret %s: %w", secret.Name, err)
	}
	r.ownSecretEdit(secret.Namespace, before, secret.ResourceVersion)
	return nil
}

func summarizeNames(names []string) string {
	const show = 5
	if len(names) <= show {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:show], ", "), len(names)-show)
}

// SetupWithManager registers the controller. Secrets are watched by metadata only, so the
// manager never holds Secret data in memory; their contents are read uncached on demand.
func (r *OsseaConfigReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		For(&osseav1.OsseaConfig{})
	if r.Orphans != nil {
		b = b.WatchesRawSource(source.Channel(r.Orphans.changed, &handler.EnqueueRequestForObject{}))
	}
	return b.
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.configsForSecret)).
		Watches(&osseav1.MigrationVolume{}, handler.EnqueueRequestsFromMapFunc(configForVolume),
			builder.WithPredicates(createOrDelete)).
		Named("osseaconfig").
		Complete(r)
}

func (r *OsseaConfigReconciler) configsForSecret(ctx context.Context, secret client.Object) []reconcile.Request {
	var configs osseav1.OsseaConfigList
	if err := r.List(ctx, &configs, client.InNamespace(secret.GetNamespace()),
		client.MatchingFields{indexConfigSecret: secret.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "Listing OsseaConfigs for a Secret", "secret", secret.GetName())
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(configs.Items))
	for _, c := range configs.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&c)})
	}
	return reqs
}

func configForVolume(_ context.Context, obj client.Object) []reconcile.Request {
	mv, ok := obj.(*osseav1.MigrationVolume)
	if !ok {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: mv.Namespace, Name: mv.Spec.OsseaConfigRef.Name}}}
}

// createOrDelete passes the events that change how many volumes use a config.
var createOrDelete = predicate.Funcs{
	UpdateFunc: func(event.UpdateEvent) bool { return false },
}
