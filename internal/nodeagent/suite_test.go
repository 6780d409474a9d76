package nodeagent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/guestdisk"
	"github.com/migratekit/ossea-operator/internal/testenv"
	"github.com/migratekit/ossea-operator/internal/testkit"
	testworld "github.com/migratekit/ossea-operator/test/world"
)

// The agent's tests come in three kinds, and each test says what it needs:
//   - the decisions and the pure helpers (decide_test.go, paths_test.go, device_test.go)
//     need nothing: no root, no API server;
//   - tests of the status writes, the RBAC and the VM id need the API server (apiServer);
//   - the agent on real loop devices, with real mkfs and mount, needs root and the disk
//     tools (requireRoot, which newWorld calls) as well as the API server.
//
// The API server is started once, by the first test that asks for it, and stopped after
// the last; a run of only the first kind never starts it. Everything runs in the sandbox
// of test/world, which a guard process sweeps however the run ends.
//
// Each real-device test is its own world: a VM id, a by-id directory and a mount root of
// its own, so agents of different tests never see each other's volumes. The test stands
// in for the manager: it writes volumeID, attachedVirtualMachineID and the Attached
// condition, and makes the disk appear by creating the loop device and its by-id link.

var (
	// env and k8s are set by apiServer; a test reads them only after calling it.
	env     *testenv.Env
	k8s     client.Client
	testCtx context.Context

	lazyAPIServer testworld.LazyAPIServer
	setEnvOnce    sync.Once
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	testCtx = context.Background()
	testworld.Main(m, testworld.Needs{}, func() (func(bool), error) { return lazyAPIServer.Stop, nil })
}

// apiServer starts the package's kube-apiserver and etcd the first time a test needs them,
// and fails the test if they cannot start. It sets env and k8s.
func apiServer(t *testing.T) *testenv.Env {
	t.Helper()
	e := lazyAPIServer.Get(t)
	setEnvOnce.Do(func() { env, k8s = e, e.Client })
	return env
}

// requireRoot fails (never skips: a real-device test that does not run is a test that
// does not pass) unless the test can make loop devices, format and mount them: it must run
// as root, with the disk tools on PATH.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("%s makes loop devices, formats and mounts them: run it as root (make test does); "+
			"the decision tests (go test -run 'Decide|Fake') need no root", t.Name())
	}
	root, err := testworld.FindRoot()
	if err != nil {
		t.Fatalf("finding the repository root: %v", err)
	}
	if err := (testworld.Needs{Tools: testworld.DiskTools}).Check(root); err != nil {
		t.Fatal(err)
	}
}

// world is one test's node: its VM, its by-id directory, its mount root, its loop devices.
type world struct {
	t         *testing.T
	vmID      string
	nodeName  string
	byIDDir   string
	mountRoot string
	ns        string

	mu     sync.Mutex
	loops  []string // loop devices this test made, detached at the end
	agents []*agent
}

// newWorld is the world of a real-device test: it needs root and the API server.
func newWorld(t *testing.T) *world {
	t.Helper()
	requireRoot(t)
	return newAPIWorld(t)
}

// newAPIWorld is a world for a test that only writes objects: it needs the API server, but
// no root, and makes no devices.
func newAPIWorld(t *testing.T) *world {
	t.Helper()
	apiServer(t)
	base := t.TempDir()
	w := &world{
		t:         t,
		vmID:      uuid.NewString(),
		nodeName:  "oma-" + strings.ToLower(uuid.NewString()[:8]),
		byIDDir:   filepath.Join(base, "by-id"),
		mountRoot: filepath.Join(base, "mnt"),
	}
	for _, d := range []string{w.byIDDir, w.mountRoot} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Registered after TempDir, so it runs before the directory is removed: agents stop
	// first, then what they mounted under this world's root is unmounted, then the loop
	// devices this test made are detached. Nothing outside the world is touched.
	t.Cleanup(w.cleanup)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "agent-"}}
	if err := k8s.Create(testCtx, ns); err != nil {
		t.Fatal(err)
	}
	w.ns = ns.Name
	return w
}

func (w *world) cleanup() {
	w.mu.Lock()
	agents, loops := w.agents, w.loops
	w.mu.Unlock()
	for _, a := range agents {
		a.stop()
	}
	root, err := filepath.EvalSymlinks(w.mountRoot)
	if err != nil {
		root = w.mountRoot
	}
	for attempt := 0; ; attempt++ {
		ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(root))
		if err != nil {
			w.t.Errorf("reading the mount table: %v", err)
			break
		}
		if len(ms) == 0 {
			break
		}
		for _, m := range ms {
			if m.Mountpoint == root {
				continue
			}
			flags := 0
			if attempt > 20 {
				flags = unix.MNT_DETACH // cleanup of a failed test only; the agent never does this
			}
			if err := unix.Unmount(m.Mountpoint, flags); err != nil && attempt > 20 {
				w.t.Errorf("cleanup: unmounting %s: %v", m.Mountpoint, err)
			}
		}
		if attempt > 21 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, dev := range loops {
		if out, err := exec.Command("losetup", "--detach", dev).CombinedOutput(); err != nil {
			w.t.Errorf("cleanup: losetup --detach %s: %v: %s", dev, err, out)
		}
	}
}

// agent is one in-process agent: a controller-runtime manager running the Reconciler.
type agent struct {
	r      *Reconciler
	cancel context.CancelFunc
	done   chan error

	mu         sync.Mutex
	reconciled map[types.NamespacedName]int
}

type agentOption func(*Reconciler)

// startAgent starts an agent for the world. The default timers are long, so that a test
// passing quickly shows the watches did the work, not a timer.
func (w *world) startAgent(opts ...agentOption) *agent {
	w.t.Helper()
	return w.startAgentAs(env.Config, opts...)
}

// startAgentAs starts an agent that talks to the API server with cfg.
func (w *world) startAgentAs(cfg *rest.Config, opts ...agentOption) *agent {
	w.t.Helper()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 env.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  CacheOptions(w.vmID, ""),
	})
	if err != nil {
		w.t.Fatal(err)
	}
	a := &agent{done: make(chan error, 1), reconciled: map[types.NamespacedName]int{}}
	a.r = &Reconciler{
		Client:          mgr.GetClient(),
		APIReader:       mgr.GetAPIReader(),
		Recorder:        mgr.GetEventRecorder("ossea-node-agent"),
		VMID:            w.vmID,
		NodeName:        w.nodeName,
		ByIDDir:         w.byIDDir,
		MountRoot:       w.mountRoot,
		DeviceTimeout:   5 * time.Minute,
		ResyncInterval:  5 * time.Minute,
		UnmountRetryMax: 500 * time.Millisecond,
		afterReconcile: func(key types.NamespacedName) {
			a.mu.Lock()
			a.reconciled[key]++
			a.mu.Unlock()
		},
	}
	for _, o := range opts {
		o(a.r)
	}
	skip := true
	if err := a.r.SetupWithManager(mgr, controller.Options{SkipNameValidation: &skip}); err != nil {
		w.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(testCtx)
	a.cancel = cancel
	go func() { a.done <- mgr.Start(ctx) }()
	w.mu.Lock()
	w.agents = append(w.agents, a)
	w.mu.Unlock()
	return a
}

// stop stops the agent like a kill would: the mounts it made stay.
func (a *agent) stop() {
	if a.cancel == nil {
		return
	}
	a.cancel()
	<-a.done
	a.cancel = nil
}

func (a *agent) reconciles(key types.NamespacedName) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.reconciled[key]
}

// loopDevice makes a sparse file of size bytes and a loop device on it.
func (w *world) loopDevice(size int64) string {
	w.t.Helper()
	f, err := os.CreateTemp(w.t.TempDir(), "disk-*.img")
	if err != nil {
		w.t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		w.t.Fatal(err)
	}
	_ = f.Close()
	out, err := exec.Command("losetup", "--find", "--show", f.Name()).CombinedOutput()
	if err != nil {
		w.t.Fatalf("losetup: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	w.mu.Lock()
	w.loops = append(w.loops, dev)
	w.mu.Unlock()
	return dev
}

// link makes the disk of volumeID appear: <by-id>/virtio-<serial> -> dev.
func (w *world) link(volumeID, dev string) string {
	w.t.Helper()
	l := filepath.Join(w.byIDDir, guestdisk.LinkNames(volumeID)[0])
	if err := os.Symlink(dev, l); err != nil {
		w.t.Fatal(err)
	}
	return l
}

type mvOption func(*osseav1.MigrationVolume)

func withFilesystem(fsType osseav1.FilesystemType, policy osseav1.FormatPolicy) mvOption {
	return func(mv *osseav1.MigrationVolume) {
		mv.Spec.Filesystem = &osseav1.FilesystemSpec{Type: fsType, FormatPolicy: policy}
	}
}

func blockMode(mv *osseav1.MigrationVolume) { mv.Spec.Mode = osseav1.VolumeModeBlock }

// newVolume creates a MigrationVolume of sizeGiB for job/disk.
func (w *world) newVolume(name, job, disk string, sizeGiB int32, opts ...mvOption) *osseav1.MigrationVolume {
	w.t.Helper()
	mv := &osseav1.MigrationVolume{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: name},
		Spec: osseav1.MigrationVolumeSpec{
			OsseaConfigRef: osseav1.LocalObjectReference{Name: "cloud"},
			JobID:          job,
			VMName:         "Source VM (" + name + ")",
			DiskName:       disk,
			SizeGiB:        sizeGiB,
		},
	}
	for _, o := range opts {
		o(mv)
	}
	if err := k8s.Create(testCtx, mv); err != nil {
		w.t.Fatal(err)
	}
	return mv
}

// attach plays the manager: the volume is attached to this world's VM.
func (w *world) attach(mv *osseav1.MigrationVolume, volumeID string) {
	w.t.Helper()
	w.updateStatus(mv, func(st *osseav1.MigrationVolumeStatus) {
		dev := int64(1)
		st.VolumeID = volumeID
		st.AttachedVirtualMachineID = w.vmID
		st.DeviceID = &dev
		st.SizeBytes = int64(mv.Spec.SizeGiB) << 30
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: osseav1.ConditionAttached, Status: metav1.ConditionTrue,
			Reason: "Attached", Message: "attached by the test", ObservedGeneration: mv.Generation})
	})
}

// updateStatus changes the status like the manager does: read, change, write with the
// read's resourceVersion, retry on conflict.
func (w *world) updateStatus(mv *osseav1.MigrationVolume, change func(*osseav1.MigrationVolumeStatus)) {
	w.t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(testCtx, client.ObjectKeyFromObject(mv), mv); err != nil {
			return err
		}
		change(&mv.Status)
		return k8s.Status().Update(testCtx, mv)
	})
	if err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) get(mv *osseav1.MigrationVolume) *osseav1.MigrationVolume {
	w.t.Helper()
	got := &osseav1.MigrationVolume{}
	if err := k8s.Get(testCtx, client.ObjectKeyFromObject(mv), got); err != nil {
		w.t.Fatal(err)
	}
	return got
}

// waitMounted waits for the Mounted condition to have status and reason.
func (w *world) waitMounted(mv *osseav1.MigrationVolume, status metav1.ConditionStatus, reason string, timeout time.Duration) *osseav1.MigrationVolume {
	w.t.Helper()
	got := &osseav1.MigrationVolume{}
	testkit.Eventually(w.t, timeout, func() string {
		if err := k8s.Get(testCtx, client.ObjectKeyFromObject(mv), got); err != nil {
			return err.Error()
		}
		c := meta.FindStatusCondition(got.Status.Conditions, osseav1.ConditionMounted)
		if c == nil || c.Status != status || c.Reason != reason {
			return fmt.Sprintf("Mounted is %+v, want %s/%s", c, status, reason)
		}
		return ""
	})
	return got
}

// deleteAndWaitGone deletes the object and waits until the agent has let it go.
func (w *world) deleteAndWaitGone(mv *osseav1.MigrationVolume, timeout time.Duration) {
	w.t.Helper()
	if err := k8s.Delete(testCtx, mv); client.IgnoreNotFound(err) != nil {
		w.t.Fatal(err)
	}
	w.waitGone(mv, timeout)
}

func (w *world) waitGone(mv *osseav1.MigrationVolume, timeout time.Duration) {
	w.t.Helper()
	testkit.WaitGone(w.t, k8s, mv, timeout, func(got *osseav1.MigrationVolume) string {
		return fmt.Sprintf("still there with finalizers %v, Mounted %+v", got.Finalizers,
			meta.FindStatusCondition(got.Status.Conditions, osseav1.ConditionMounted))
	})
}

// waitEvent waits for an event about the object with the reason, and returns its note.
func (w *world) waitEvent(mv *osseav1.MigrationVolume, eventType, reason string) string {
	w.t.Helper()
	var note string
	testkit.Eventually(w.t, 10*time.Second, func() string {
		note = w.findEvent(mv, eventType, reason)
		if note == "" {
			return fmt.Sprintf("no %s event %s for %s", eventType, reason, mv.Name)
		}
		return ""
	})
	return note
}

func (w *world) findEvent(mv *osseav1.MigrationVolume, eventType, reason string) string {
	w.t.Helper()
	var evs eventsv1.EventList
	if err := k8s.List(testCtx, &evs, client.InNamespace(w.ns)); err != nil {
		w.t.Fatal(err)
	}
	for _, e := range evs.Items {
		if e.Regarding.Name == mv.Name && e.Type == eventType && e.Reason == reason {
			return e.Note
		}
	}
	return ""
}

// firstMiB is the sha256 of the device's first MiB, where any partition table, filesystem
// signature or superblock a format would write lives.
func firstMiB(t *testing.T, dev string) string {
	t.Helper()
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(h, f, 1<<20); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func isNotExist(err error) bool { return errors.Is(err, os.ErrNotExist) }
