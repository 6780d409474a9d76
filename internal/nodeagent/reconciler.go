package nodeagent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/guestdisk"
	"github.com/migratekit/ossea-operator/internal/ownership"
)

// Defaults of the Reconciler's knobs.
const (
	DefaultByIDDir         = guestdisk.DefaultByIDDir
	DefaultMountRoot       = "/mnt/migration"
	DefaultDeviceTimeout   = 2 * time.Minute
	DefaultResyncInterval  = time.Minute
	DefaultUnmountRetryMax = 30 * time.Second
	DefaultFormatTimeout   = 30 * time.Minute
	// DefaultMaxConcurrentReconciles: the disks of one migration job arrive together, and
	// each waits mostly on the API server; a long mkfs of one must not hold up the others.
	DefaultMaxConcurrentReconciles = 4
)

// attachedVMField is the selectable field the agent's cache is narrowed by.
const attachedVMField = "status.attachedVirtualMachineID"

// CacheOptions narrows the agent's cache to the MigrationVolumes attached to its VM, so an
// agent holds and watches only its own few objects, never a cluster's worth. A namespace
// (the --namespace flag of config/namespaced) narrows it further to that namespace, so a
// Role there is all the agent needs for MigrationVolumes; "" means every namespace.
func CacheOptions(vmID, namespace string) cache.Options {
	o := cache.Options{ByObject: map[client.Object]cache.ByObject{
		&osseav1.MigrationVolume{}: {Field: fields.OneTermEqualSelector(attachedVMField, vmID)},
	}}
	if namespace != "" {
		o.DefaultNamespaces = map[string]cache.Config{namespace: {}}
	}
	return o
}

// Reconciler takes the MigrationVolumes attached to one OMA VM from attached to mounted (or
// published), and back on deletion.
type Reconciler struct {
	// Client reads from a cache narrowed with CacheOptions(VMID), and writes.
	Client client.Client
	// APIReader reads straight from the API server: for fresh reads before status writes,
	// and for objects that left the cache while the agent still holds them.
	APIReader client.Reader
	Recorder  events.EventRecorder

	// VMID is the CloudStack UUID of the OMA VM this agent runs on.
	VMID string
	// NodeName is the Kubernetes node, reported in status.nodeName.
	NodeName string
	// ByIDDir is where the disks' by-id links appear (/dev/disk/by-id).
	ByIDDir string
	// MountRoot is the directory volumes are mounted under (/mnt/migration).
	MountRoot string
	// DeviceTimeout is how long after attachment a missing disk is waited for before
	// Reason DeviceNotFound.
	DeviceTimeout time.Duration
	// ResyncInterval is how often a settled volume is checked again, as a safety net
	// behind the watches.
	ResyncInterval time.Duration
	// UnmountRetryMax caps the backoff between attempts to unmount a busy filesystem.
	UnmountRetryMax time.Duration
	// FormatTimeout bounds one mkfs run.
	FormatTimeout time.Duration

	// host is what the agent does to the node; SetupWithManager makes it the real one
	// (linuxHost) unless a test has put another in its place.
	host    host
	devices deviceLocks
	// unmountAttempts counts busy unmounts per object, for the backoff.
	unmountAttempts sync.Map // types.UID -> int
	// failures counts each volume's failure Reasons for ossea_agent_errors_total.
	failures failureCounter
	// ownWrites is what this agent's own last write of each object left.
	ownWrites ownership.LastWrites
	// afterReconcile, when set (by tests), runs after every reconcile.
	afterReconcile func(types.NamespacedName)
}

// volumeScope is what one reconcile of one MigrationVolume works on.
type volumeScope struct {
	mv  *osseav1.MigrationVolume
	log logr.Logger
	// prev is the Mounted condition as the reconcile found it, to tell transitions (worth
	// an event) from repetitions.
	prev *metav1.Condition
}

// SetupWithManager fills in defaults, prepares the mount root, and registers the
// controller, the by-id watcher and the startup scan with mgr.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	if r.VMID == "" {
		return fmt.Errorf("the OMA VM id is not set")
	}
	// The node's name is the value of the agent's claim label: an agent that could not
	// claim would never mount anything, so it does not start.
	if r.NodeName == "" {
		return fmt.Errorf("the node name is not set")
	}
	if errs := validation.IsValidLabelValue(r.NodeName); len(errs) > 0 {
		return fmt.Errorf("the node name %q cannot be the value of the claim label %s, so this agent could claim no volume: %s",
			r.NodeName, osseav1.NodeLabel, strings.Join(errs, "; "))
	}
	r.defaults()
	if err := os.MkdirAll(r.MountRoot, 0o755); err != nil {
		return fmt.Errorf("creating mount root %s: %w", r.MountRoot, err)
	}
	// The root is resolved once, here, and trusted from then on; everything below it is
	// checked for symlinks (see ensureMountDir). The mount table shows resolved paths.
	root, err := filepath.EvalSymlinks(r.MountRoot)
	if err != nil {
		return fmt.Errorf("resolving mount root %s: %w", r.MountRoot, err)
	}
	r.MountRoot = root
	if r.host == nil {
		r.host = newLinuxHost(r.ByIDDir, root, r.FormatTimeout)
	}

	if opts.RateLimiter == nil {
		opts.RateLimiter = workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](250*time.Millisecond, time.Minute)
	}
	if opts.MaxConcurrentReconciles == 0 {
		opts.MaxConcurrentReconciles = DefaultMaxConcurrentReconciles
	}

	deviceEvents := make(chan event.GenericEvent, 64)
	log := mgr.GetLogger().WithName("nodeagent")
	if err := mgr.Add(&deviceWatcher{dir: r.ByIDDir, client: r.Client, out: deviceEvents, log: log.WithName("watcher")}); err != nil {
		return fmt.Errorf("adding the by-id watcher: %w", err)
	}
	if err := mgr.Add(&heldScan{reader: r.APIReader, vmID: r.VMID, nodeName: r.NodeName, out: deviceEvents, log: log.WithName("scan")}); err != nil {
		return fmt.Errorf("adding the startup scan: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&osseav1.MigrationVolume{}).
		WatchesRawSource(source.Channel(deviceEvents, &handler.EnqueueRequestForObject{})).
		WithOptions(opts).
		Named("nodeagent").
		Complete(r)
}

func (r *Reconciler) defaults() {
	if r.ByIDDir == "" {
		r.ByIDDir = DefaultByIDDir
	}
	if r.MountRoot == "" {
		r.MountRoot = DefaultMountRoot
	}
	if r.DeviceTimeout == 0 {
		r.DeviceTimeout = DefaultDeviceTimeout
	}
	if r.ResyncInterval == 0 {
		r.ResyncInterval = DefaultResyncInterval
	}
	if r.UnmountRetryMax == 0 {
		r.UnmountRetryMax = DefaultUnmountRetryMax
	}
	if r.FormatTimeout == 0 {
		r.FormatTimeout = DefaultFormatTimeout
	}
}

// Reconcile takes one volume one step towards what its object asks for. The agent's RBAC
// is written by hand in config/agent, deliberately without kubebuilder markers here:
// controller-gen scans ./... and would merge them into the manager's role.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	if r.afterReconcile != nil {
		defer r.afterReconcile(req.NamespacedName)
	}
	mv, err := r.get(ctx, req.NamespacedName)
	if mv == nil || err != nil {
		if err == nil {
			r.failures.forget(req.NamespacedName) // gone, or no longer this agent's
			r.ownWrites.Forget(req.NamespacedName)
		}
		return ctrl.Result{}, err
	}
	if r.ownWrites.Behind(mv) {
		// The cache has not caught up with this agent's own last write (a reconcile queued
		// while that write was made runs right after it): this copy would have it write
		// again what is stored already. The watch brings the volume back once the cache has
		// the write; the requeue is only a safety net behind it.
		ctrl.LoggerFrom(ctx).V(1).Info("Cached copy older than the agent's own last write; looking again once it has caught up",
			"cached", mv.ResourceVersion)
		return ctrl.Result{RequeueAfter: ownWriteWait}, nil
	}
	s := &volumeScope{
		mv:   mv,
		log:  ctrl.LoggerFrom(ctx).WithValues("volumeID", mv.Status.VolumeID),
		prev: meta.FindStatusCondition(mv.Status.Conditions, osseav1.ConditionMounted).DeepCopy(),
	}
	ctx = ctrl.LoggerInto(ctx, s.log)

	switch routeOf(mv, r.VMID, r.NodeName) {
	case routeRelease:
		return r.reconcileDelete(ctx, s)
	case routeHandoff:
		return r.reconcileHandoff(ctx, s)
	case routeDetached:
		return r.reconcileDetached(ctx, s)
	case routeBlock:
		return r.reconcileBlock(ctx, s)
	case routeFilesystem:
		return r.reconcileFilesystem(ctx, s)
	}
	return ctrl.Result{}, nil
}

// get reads the object from the cache, or, when it has left the cache (it is no longer
// attached to this VM, or was deleted), straight from the API server if this agent still
// holds it: a mount must never be forgotten, and the manager's teardown waits on our
// finalizer. It returns nil when there is nothing for this agent to do.
func (r *Reconciler) get(ctx context.Context, key types.NamespacedName) (*osseav1.MigrationVolume, error) {
	mv := &osseav1.MigrationVolume{}
	err := r.Client.Get(ctx, key, mv)
	if err == nil {
		return mv, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("reading %s from the cache: %w", key, err)
	}
	if err := r.APIReader.Get(ctx, key, mv); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	if !holds(mv, r.VMID, r.NodeName) && !published(mv, r.NodeName) {
		return nil, nil
	}
	return mv, nil
}

// setStatus writes the report and, on a transition into a failure, a Warning event.
func (r *Reconciler) setStatus(ctx context.Context, s *volumeScope, rep *report) error {
	if rep.nodeName == nil {
		rep.nodeName = strp(r.NodeName)
	}
	// The agent's part of the status, applied server-side as its owner: the manager's
	// concurrent writes neither refuse it nor are reverted by it, whatever the age of the
	// copy it was computed from. A report that changes nothing is not sent, so a restarted
	// agent leaves its objects alone.
	want := s.mv.Status.DeepCopy()
	rep.apply(want, s.mv.Generation)
	if part := want.AgentPart(); !equality.Semantic.DeepEqual(part, s.mv.Status.AgentPart()) {
		// On success s.mv is the object as stored: a finalizer patch that follows starts
		// from its current resourceVersion.
		if err := ownership.ApplyStatus(ctx, r.Client, s.mv, part, osseav1.AgentFieldOwner); err != nil {
			return err
		}
		r.ownWrites.Wrote(s.mv)
	}
	r.failures.observe(client.ObjectKeyFromObject(s.mv), rep)
	if warnsOnReport(s.prev, rep) {
		r.Recorder.Eventf(s.mv, nil, corev1.EventTypeWarning, rep.reason, "Mount", "%s", truncate(rep.message, maxEventNote))
		s.log.Info("Volume needs attention", "reason", rep.reason, "message", rep.message)
	}
	return nil
}

func (r *Reconciler) event(s *volumeScope, reason, action, note string, args ...any) {
	r.Recorder.Eventf(s.mv, nil, corev1.EventTypeNormal, reason, action, "%s", truncate(fmt.Sprintf(note, args...), maxEventNote))
}

// maxEventNote keeps event notes under the events API's 1 kB limit; the full text is in
// the condition.
const maxEventNote = 1000

// deviceLocks serialises the probe-format-mount sequence per block device, so that two
// objects naming the same disk can never both find it blank and both format it.
type deviceLocks struct{ m sync.Map } // "major:minor" -> *sync.Mutex

func (d *deviceLocks) lock(dev *Device) func() {
	mu, _ := d.m.LoadOrStore(fmt.Sprintf("%d:%d", dev.Major, dev.Minor), &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	return mu.(*sync.Mutex).Unlock
}

// applyClaim holds the volume for this agent's node, or lets go of it: the mount
// finalizer and the claim label (osseav1.NodeLabel) are applied together, as the agent's
// own metadata (see package ownership), in one write, and letting go removes both. The
// manager's finalizer and everyone else's labels are never touched, and no write of the
// manager's in between can refuse it. ok is false when the object changed under the
// removal of a finalizer an older agent added by update (see ownership.ApplyMetadata), or
// is not the one read (gone, or recreated under its name), and the caller should look
// again.
func (r *Reconciler) applyClaim(ctx context.Context, mv *osseav1.MigrationVolume, hold bool) (bool, error) {
	held := controllerutil.ContainsFinalizer(mv, osseav1.MountFinalizer)
	labelled := mv.Labels[osseav1.NodeLabel] == r.NodeName
	if (hold && held && labelled) || (!hold && !held && mv.Labels[osseav1.NodeLabel] == "") {
		return true, nil
	}
	m := ownership.Metadata{Finalizer: osseav1.MountFinalizer, Hold: hold}
	if hold {
		m.Labels = map[string]string{osseav1.NodeLabel: r.NodeName}
	}
	if err := ownership.ApplyMetadata(ctx, r.Client, mv, m, osseav1.AgentFieldOwner); err != nil {
		if apierrors.IsConflict(err) {
			return false, nil
		}
		return false, err
	}
	r.ownWrites.Wrote(mv)
	return true, nil
}

// ownWriteWait is when a reconcile skipped for a cached copy older than the agent's own
// last write looks again, should the watch event of that write not have come by then.
const ownWriteWait = time.Second

// retrySoon is the result for "a newer version of the object exists; look again".
var retrySoon = ctrl.Result{RequeueAfter: 100 * time.Millisecond}
