// Package integration runs the manager's controllers and the node agent together, in
// process, against a real API server and the CloudStack simulator whose hypervisor makes
// every attachment a real loop device: the whole path from `kubectl apply` to a mounted
// filesystem and back, on one machine. It must run as root.
package integration

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/controllers"
	"github.com/migratekit/ossea-operator/internal/cloudsim"
	"github.com/migratekit/ossea-operator/internal/cloudstack"
	"github.com/migratekit/ossea-operator/internal/nodeagent"
	"github.com/migratekit/ossea-operator/internal/testenv"
	"github.com/migratekit/ossea-operator/internal/testkit"
	testworld "github.com/migratekit/ossea-operator/test/world"
)

var (
	env     *testenv.Env
	k8s     client.Client
	testCtx = context.Background()
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	testworld.MainWithAPIServer(m, testworld.Needs{Root: true, Tools: testworld.DiskTools}, func(e *testenv.Env) { env, k8s = e, e.Client })
}

// world is the simulator with a local OMA VM, the manager and the agent.
type world struct {
	t         *testing.T
	sim       *cloudsim.Simulator
	ns        string
	byIDDir   string
	mountRoot string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	base := t.TempDir()
	w := &world{t: t, byIDDir: filepath.Join(base, "by-id"), mountRoot: filepath.Join(base, "mnt")}

	cw := cloudsim.DefaultWorld()
	cw.VirtualMachines[0].Local = &cloudsim.LocalDisks{ByIDDir: w.byIDDir, BackingDir: filepath.Join(base, "backing")}
	sim, err := cloudsim.New(cloudsim.Options{World: cw, JobLatency: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler())
	w.sim = sim
	// Runs last: the simulator detaches the loop devices it made (after the mounts on
	// them are gone, see below).
	t.Cleanup(func() {
		srv.Close()
		if err := sim.Close(); err != nil {
			t.Errorf("closing the simulator: %v", err)
		}
	})
	// Runs before the simulator closes, after the controllers stopped: whatever is still
	// mounted under this test's mount root (a failed test) is unmounted.
	t.Cleanup(func() {
		if err := testworld.UnmountUnder(w.mountRoot); err != nil {
			t.Error(err)
		}
	})

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "fullpath-"}}
	if err := k8s.Create(testCtx, ns); err != nil {
		t.Fatal(err)
	}
	w.ns = ns.Name
	w.startControllers(srv.URL + "/client/api")
	return w
}

// startControllers runs the manager's two reconcilers and the node agent of the OMA VM.
func (w *world) startControllers(apiURL string) {
	t := w.t
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 env.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{DefaultNamespaces: map[string]cache.Config{w.ns: {}}},
		Client:                 client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(testCtx)
	if err := controllers.Setup(ctx, mgr, controllers.Options{
		Clouds: cloudstack.NewFactory(cloudstack.WithRateLimit(100, 100)), RevalidateInterval: time.Minute, DriftInterval: 5 * time.Second,
		ClusterID: "full-path-test",
	}); err != nil {
		t.Fatal(err)
	}

	agentMgr, err := ctrl.NewManager(agentConfig(t, "oma-node"), ctrl.Options{
		Scheme:                 env.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  nodeagent.CacheOptions(cloudsim.DefaultOMAVMID, ""),
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := (&nodeagent.Reconciler{
		Client: agentMgr.GetClient(), APIReader: agentMgr.GetAPIReader(), Recorder: agentMgr.GetEventRecorder("ossea-node-agent"),
		VMID: cloudsim.DefaultOMAVMID, NodeName: "oma-node", ByIDDir: w.byIDDir, MountRoot: w.mountRoot,
		UnmountRetryMax: 500 * time.Millisecond,
	}).SetupWithManager(agentMgr, controller.Options{}); err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 2)
	go func() { done <- mgr.Start(ctx) }()
	go func() { done <- agentMgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("manager: %v", err)
			}
		}
	})

	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: "ossea-credentials"},
		StringData: map[string]string{"apiKey": cloudsim.DefaultAPIKey, "secretKey": cloudsim.DefaultSecretKey},
	}
	cfg := &osseav1.OsseaConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: "ossea"},
		Spec: osseav1.OsseaConfigSpec{
			APIURL:               apiURL,
			CredentialsSecretRef: osseav1.LocalObjectReference{Name: secret.Name},
			Zone:                 cloudsim.DefaultZoneName,
			OMAVirtualMachineID:  cloudsim.DefaultOMAVMID,
		},
	}
	for _, o := range []client.Object{secret, cfg} {
		if err := k8s.Create(testCtx, o); err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, 30*time.Second, func() string {
		if err := k8s.Get(testCtx, client.ObjectKeyFromObject(cfg), cfg); err != nil {
			return err.Error()
		}
		if !meta.IsStatusConditionTrue(cfg.Status.Conditions, osseav1.ConditionReady) {
			return fmt.Sprintf("OsseaConfig not Ready: %+v", cfg.Status.Conditions)
		}
		return ""
	})
}

// agentConfig installs what config/agent renders (but the DaemonSet) and returns a client
// config of the agent's ServiceAccount with a token bound to a Pod on node: the agent then
// runs with exactly its RBAC and under its admission policy, confined to node's volumes,
// as a DaemonSet pod would. The policy is in force before it returns.
func agentConfig(t *testing.T, node string) *rest.Config {
	t.Helper()
	root, err := testworld.FindRoot()
	if err != nil {
		t.Fatal(err)
	}
	objs, err := testworld.Render(filepath.Join(env.BinaryDir, "kubectl"), filepath.Join(root, "config", "agent"))
	if err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: agentSA.Namespace}}
	if err := k8s.Create(testCtx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if err := testworld.ApplyObjects(testCtx, k8s, testworld.Without(objs, testworld.Workloads...)); err != nil {
		t.Fatal(err)
	}
	if err := testworld.WaitConfinement(testCtx, k8s, env.Config, agentSA, agentSA.Namespace, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	token, err := testworld.PodBoundToken(testCtx, k8s, agentSA, node, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return testworld.BearerConfig(env.Config, token)
}

// agentSA is config/agent's ServiceAccount (config/default renames it).
var agentSA = types.NamespacedName{Namespace: "system", Name: "node-agent"}

func (w *world) volume(name string, edit func(*osseav1.MigrationVolume)) *osseav1.MigrationVolume {
	mv := &osseav1.MigrationVolume{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: name},
		Spec: osseav1.MigrationVolumeSpec{
			OsseaConfigRef: osseav1.LocalObjectReference{Name: "ossea"},
			JobID:          "job-42", VMName: "Web Server (Prod) 01", DiskName: name, SizeGiB: 1,
		},
	}
	if edit != nil {
		edit(mv)
	}
	if err := k8s.Create(testCtx, mv); err != nil {
		w.t.Fatal(err)
	}
	return mv
}

func (w *world) waitReady(mv *osseav1.MigrationVolume, phase osseav1.Phase) *osseav1.MigrationVolume {
	w.t.Helper()
	testkit.Eventually(w.t, 60*time.Second, func() string {
		if err := k8s.Get(testCtx, client.ObjectKeyFromObject(mv), mv); err != nil {
			return err.Error()
		}
		if !meta.IsStatusConditionTrue(mv.Status.Conditions, osseav1.ConditionReady) || mv.Status.Phase != phase {
			return fmt.Sprintf("%s: phase %s, conditions %s", mv.Name, mv.Status.Phase, testkit.DescribeConditions(mv.Status.Conditions))
		}
		return ""
	})
	return mv
}

func (w *world) simVolume(id string) (cloudsim.Volume, bool) {
	for _, v := range w.sim.Snapshot().Volumes {
		if v.ID == id {
			return v, true
		}
	}
	return cloudsim.Volume{}, false
}

// Create → attach → a real loop device appears in the by-id directory → the agent mounts
// it → delete → unmounted, detached, deleted, and no loop device left. Along the way a
// busy mount holds the whole teardown: the manager does not detach until it is released.
func TestFullPathWithTheSimulatorsHypervisor(t *testing.T) {
	w := newWorld(t)
	fs := w.volume("disk-0", nil)
	xfs := w.volume("disk-1", func(mv *osseav1.MigrationVolume) {
		mv.Spec.Filesystem = &osseav1.FilesystemSpec{Type: osseav1.FilesystemXFS}
	})
	blk := w.volume("disk-2", func(mv *osseav1.MigrationVolume) { mv.Spec.Mode = osseav1.VolumeModeBlock })

	root, err := filepath.EvalSymlinks(w.mountRoot)
	if err != nil {
		t.Fatal(err)
	}
	type attached struct {
		mv                  *osseav1.MigrationVolume
		loop, link, backing string
	}
	var all []attached
	for _, c := range []struct {
		mv     *osseav1.MigrationVolume
		phase  osseav1.Phase
		fsType string
	}{{fs, osseav1.PhaseMounted, "ext4"}, {xfs, osseav1.PhaseMounted, "xfs"}, {blk, osseav1.PhasePublished, ""}} {
		mv := w.waitReady(c.mv, c.phase)
		v, ok := w.simVolume(mv.Status.VolumeID)
		if !ok || v.VirtualMachineID != cloudsim.DefaultOMAVMID || v.LoopDevice == "" {
			t.Fatalf("%s: the simulator has %+v", mv.Name, v)
		}
		if mv.Status.DevicePath != v.DeviceLink || mv.Status.NodeName != "oma-node" {
			t.Errorf("%s: devicePath %q, nodeName %q; the disk's link is %s", mv.Name, mv.Status.DevicePath, mv.Status.NodeName, v.DeviceLink)
		}
		if c.fsType != "" {
			want := filepath.Join(root, "job-42", mv.Spec.DiskName)
			if mv.Status.MountPath != want || mv.Status.FilesystemType != c.fsType {
				t.Errorf("%s: mountPath %q, filesystemType %q; want %q, %s", mv.Name, mv.Status.MountPath, mv.Status.FilesystemType, want, c.fsType)
			}
			ms := testkit.MountsAt(t, want)
			if len(ms) != 1 || ms[0].FSType != c.fsType || ms[0].Source != v.LoopDevice {
				t.Errorf("%s: mount table at %s: %+v; want one %s mount of %s", mv.Name, want, ms, c.fsType, v.LoopDevice)
			}
		} else if mv.Status.MountPath != "" || len(mountsOfSource(t, v.LoopDevice)) != 0 {
			t.Errorf("%s (Block): mountPath %q, mounts %v", mv.Name, mv.Status.MountPath, mountsOfSource(t, v.LoopDevice))
		}
		all = append(all, attached{mv: mv, loop: v.LoopDevice, link: v.DeviceLink, backing: v.BackingFile})
	}

	// Data goes where the job expects it.
	data := filepath.Join(fs.Status.MountPath, "disk.vmdk.part")
	if err := os.WriteFile(data, []byte("migrated blocks"), 0o600); err != nil {
		t.Fatal(err)
	}

	// A busy mount: the open file holds the whole teardown of disk-0.
	f, err := os.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = f.Close()
		}
	})
	for _, a := range all {
		if err := k8s.Delete(testCtx, a.mv); err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, 30*time.Second, func() string {
		if err := k8s.Get(testCtx, client.ObjectKeyFromObject(fs), fs); err != nil {
			return err.Error()
		}
		c := meta.FindStatusCondition(fs.Status.Conditions, osseav1.ConditionMounted)
		if c == nil || c.Reason != osseav1.ReasonUnmountBusy {
			return fmt.Sprintf("disk-0 Mounted %+v, want UnmountBusy", c)
		}
		return ""
	})
	// The others go all the way meanwhile.
	for _, a := range all[1:] {
		waitGone(t, a.mv, 60*time.Second)
	}
	// The manager says the teardown waits for the agent once the agent has held the volume
	// for a while (see controllers.agentLetGoWait), with several unmount attempts made.
	testkit.Eventually(t, 20*time.Second, func() string {
		if err := k8s.Get(testCtx, client.ObjectKeyFromObject(fs), fs); err != nil {
			return err.Error()
		}
		if fs.Status.Phase != osseav1.PhaseUnmounting {
			return fmt.Sprintf("disk-0 phase %q, want Unmounting", fs.Status.Phase)
		}
		return ""
	})
	if v, ok := w.simVolume(fs.Status.VolumeID); !ok || v.VirtualMachineID != cloudsim.DefaultOMAVMID || v.LoopDevice == "" {
		t.Fatalf("disk-0 was detached while its filesystem was busy: %+v", v)
	}
	if len(testkit.MountsAt(t, fs.Status.MountPath)) != 1 {
		t.Fatalf("disk-0 is no longer mounted while busy")
	}

	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	waitGone(t, fs, 60*time.Second)

	// Nothing is left: no mounts, no directories, no CloudStack volumes, no loop devices,
	// no links.
	if ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(root)); err != nil || len(ms) > 1 {
		t.Errorf("mounts left under %s: %v (%v)", root, ms, err)
	}
	if entries, err := os.ReadDir(root); err != nil || len(entries) != 0 {
		t.Errorf("left under the mount root: %v (%v)", entries, err)
	}
	for _, a := range all {
		if v, ok := w.simVolume(a.mv.Status.VolumeID); ok {
			t.Errorf("%s: CloudStack volume left: %+v", a.mv.Name, v)
		}
		if _, err := os.Lstat(a.link); !os.IsNotExist(err) {
			t.Errorf("%s: link %s left: %v", a.mv.Name, a.link, err)
		}
		if a.backing != "" {
			out, err := exec.Command("losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE").CombinedOutput()
			if err != nil {
				t.Fatalf("losetup --list: %v: %s", err, out)
			}
			if strings.Contains(string(out), a.backing) {
				t.Errorf("%s: loop device left on %s: %s", a.mv.Name, a.backing, out)
			}
			if _, err := os.Stat(a.backing); !os.IsNotExist(err) {
				t.Errorf("%s: backing file %s left: %v", a.mv.Name, a.backing, err)
			}
		}
	}
}

func waitGone(t *testing.T, mv *osseav1.MigrationVolume, timeout time.Duration) {
	t.Helper()
	testkit.WaitGone(t, k8s, mv, timeout, func(got *osseav1.MigrationVolume) string {
		return fmt.Sprintf("%s still there: phase %s, finalizers %v, %s", mv.Name, got.Status.Phase, got.Finalizers, testkit.DescribeConditions(got.Status.Conditions))
	})
}

func mountsOfSource(t *testing.T, source string) []*mountinfo.Info {
	t.Helper()
	ms, err := mountinfo.GetMounts(func(i *mountinfo.Info) (bool, bool) { return i.Source != source, false })
	if err != nil {
		t.Fatal(err)
	}
	return ms
}
