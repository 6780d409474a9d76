package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/guestdisk"
	"github.com/migratekit/ossea-operator/internal/nodeagent"
	"github.com/migratekit/ossea-operator/internal/testenv"
	"github.com/migratekit/ossea-operator/internal/testkit"
	"github.com/migratekit/ossea-operator/test/world"
)

// The binary itself: flags, the VM id from the Node label, a SIGKILL while a volume is
// mounted and a restart, a clean SIGTERM. The test binary plays the agent binary: run with
// NODE_AGENT_RUN_MAIN=1 it is main().

const runMainEnv = "NODE_AGENT_RUN_MAIN"

var (
	env *testenv.Env
	ctx = context.Background()
)

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		return
	}
	world.MainWithAPIServer(m, world.Needs{Root: true, Tools: world.DiskTools}, func(e *testenv.Env) { env = e })
}

type agentProc struct {
	cmd   *exec.Cmd
	out   *testkit.SyncBuffer
	probe string
	// exited is closed when the process has ended; err is then its exit status.
	exited chan struct{}
	err    error
}

func startAgent(t *testing.T, kubeconfig, nodeName string, args ...string) *agentProc {
	t.Helper()
	probe := freeAddr(t)
	p := &agentProc{out: &testkit.SyncBuffer{}, probe: probe, exited: make(chan struct{})}
	p.cmd = exec.Command(os.Args[0], append([]string{"--kubeconfig", kubeconfig, "--health-probe-bind-address", probe,
		"--metrics-bind-address", "0"}, args...)...)
	p.cmd.Env = append(os.Environ(), runMainEnv+"=1", "NODE_NAME="+nodeName, nodeagent.VMIDEnv+"=")
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("agent output:\n%s", p.out.String())
		}
	})
	return p
}

func (p *agentProc) waitReady(t *testing.T) {
	t.Helper()
	testkit.Eventually(t, 30*time.Second, func() string {
		resp, err := http.Get("http://" + p.probe + "/readyz")
		if err != nil {
			return err.Error()
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return resp.Status
		}
		return ""
	})
}

// A Node label names the VM; the agent mounts a volume; killed with SIGKILL and started
// again it recognises the mount (one entry in the mount table, the object not rewritten);
// it releases the volume on deletion; SIGTERM stops it cleanly.
func TestBinaryKilledAndRestartedWhileMounted(t *testing.T) {
	k8s := env.Client
	base := t.TempDir()
	kubeconfig := filepath.Join(base, "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.Kubeconfig(), 0o600); err != nil {
		t.Fatal(err)
	}
	byID, mountRoot := filepath.Join(base, "by-id"), filepath.Join(base, "mnt")
	if err := os.MkdirAll(byID, 0o755); err != nil {
		t.Fatal(err)
	}
	// Runs after the agents are killed (cleanups run last-registered first): unmount what
	// is left under this test's root, then detach this test's loop device.
	var loop string
	t.Cleanup(func() {
		if loop != "" {
			_ = exec.Command("losetup", "--detach", loop).Run()
		}
	})
	t.Cleanup(func() {
		if err := world.UnmountUnder(mountRoot); err != nil {
			t.Error(err)
		}
	})

	vmID := uuid.NewString()
	nodeName := "oma-" + vmID[:8]
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName, Labels: map[string]string{nodeagent.VMIDLabel: vmID}}}
	if err := k8s.Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "bin-"}}
	if err := k8s.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}

	img := filepath.Join(base, "disk.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 1<<30); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v: %s", err, out)
	}
	loop = strings.TrimSpace(string(out))
	volID := uuid.NewString()
	if err := os.Symlink(loop, filepath.Join(byID, guestdisk.LinkNames(volID)[0])); err != nil {
		t.Fatal(err)
	}

	args := []string{"--by-id-dir", byID, "--mount-root", mountRoot, "--resync-interval", "200ms"}
	first := startAgent(t, kubeconfig, nodeName, args...)
	first.waitReady(t)

	mv := &osseav1.MigrationVolume{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "bin"},
		Spec: osseav1.MigrationVolumeSpec{OsseaConfigRef: osseav1.LocalObjectReference{Name: "c"},
			JobID: "job-bin", VMName: "vm", DiskName: "disk-0", SizeGiB: 1},
	}
	if err := k8s.Create(ctx, mv); err != nil {
		t.Fatal(err)
	}
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(mv), mv); err != nil {
			return err
		}
		mv.Status.VolumeID, mv.Status.AttachedVirtualMachineID = volID, vmID
		meta.SetStatusCondition(&mv.Status.Conditions, metav1.Condition{Type: osseav1.ConditionAttached, Status: metav1.ConditionTrue, Reason: "Attached", Message: "test"})
		return k8s.Status().Update(ctx, mv)
	}); err != nil {
		t.Fatal(err)
	}

	waitMounted := func() *osseav1.MigrationVolume {
		t.Helper()
		got := &osseav1.MigrationVolume{}
		testkit.Eventually(t, 30*time.Second, func() string {
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(mv), got); err != nil {
				return err.Error()
			}
			if c := meta.FindStatusCondition(got.Status.Conditions, osseav1.ConditionMounted); c == nil || c.Reason != osseav1.ReasonMounted {
				return fmt.Sprintf("Mounted %+v", c)
			}
			return ""
		})
		return got
	}
	before := waitMounted()
	path := before.Status.MountPath
	if before.Status.NodeName != nodeName || !strings.HasPrefix(path, mountRoot) {
		t.Fatalf("status %+v", before.Status)
	}

	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-first.exited
	if n := len(testkit.MountsAt(t, path)); n != 1 {
		t.Fatalf("%d mounts at %s after the kill", n, path)
	}

	second := startAgent(t, kubeconfig, nodeName, args...)
	second.waitReady(t)
	time.Sleep(2 * time.Second) // ten resyncs
	if n := len(testkit.MountsAt(t, path)); n != 1 {
		t.Errorf("%d mounts at %s after the restart, want 1", n, path)
	}
	after := waitMounted()
	if after.ResourceVersion != before.ResourceVersion {
		t.Errorf("the restarted agent rewrote the object: %+v", after.Status)
	}
	if !strings.Contains(second.out.String(), `"vmIDFrom":"label `+nodeagent.VMIDLabel) {
		t.Errorf("the agent did not take its VM id from the node label:\n%s", second.out.String())
	}

	if err := k8s.Delete(ctx, mv); err != nil {
		t.Fatal(err)
	}
	testkit.WaitGone(t, k8s, mv, 20*time.Second, func(*osseav1.MigrationVolume) string { return "still there" })
	if n := len(testkit.MountsAt(t, path)); n != 0 {
		t.Errorf("%d mounts at %s after deletion", n, path)
	}

	if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-second.exited:
		if second.err != nil {
			t.Errorf("the agent exited with %v on SIGTERM", second.err)
		}
	case <-time.After(20 * time.Second):
		t.Error("the agent did not stop within 20s of SIGTERM")
	}
}

// Without a VM id from anywhere, the agent refuses to start and says how to give one.
func TestBinaryWithoutVMIDExplainsAndExits(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.Kubeconfig(), 0o600); err != nil {
		t.Fatal(err)
	}
	nodeName := "bare-" + uuid.NewString()[:8]
	if err := env.Client.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}}); err != nil {
		t.Fatal(err)
	}
	p := startAgent(t, kubeconfig, nodeName, "--mount-root", t.TempDir())
	select {
	case <-p.exited:
		if p.err == nil {
			t.Fatal("the agent started without a VM id")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the agent neither started nor exited")
	}
	if !strings.Contains(p.out.String(), "has no label "+nodeagent.VMIDLabel) {
		t.Errorf("the error does not say what to do:\n%s", p.out.String())
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// With --metrics-bind-address set, the agent serves its own metrics (names prefixed
// ossea_agent_) beside controller-runtime's, every label value present from the start.
func TestBinaryServesAgentMetrics(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.Kubeconfig(), 0o600); err != nil {
		t.Fatal(err)
	}
	metricsAddr := freeAddr(t)
	p := startAgent(t, kubeconfig, "metrics-"+uuid.NewString()[:8], "--oma-vm-id", uuid.NewString(),
		"--mount-root", t.TempDir(), "--by-id-dir", t.TempDir(), "--metrics-bind-address", metricsAddr)
	p.waitReady(t)
	// The agent's own metrics are there from the start; controller-runtime's reconcile
	// counters only once the controller has started, which may be a moment after the agent
	// reports ready (its cache syncs first).
	var body string
	testkit.Eventually(t, 10*time.Second, func() string {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err.Error()
		}
		body = string(b)
		if !strings.Contains(body, "controller_runtime_reconcile_total") {
			return "/metrics lacks controller_runtime_reconcile_total:\n" + body
		}
		return ""
	})
	for _, want := range []string{
		"ossea_agent_mounts_total 0", "ossea_agent_unmounts_total 0",
		`ossea_agent_formats_total{outcome="formatted"} 0`, `ossea_agent_formats_total{outcome="kept"} 0`,
		"ossea_agent_mount_duration_seconds_count 0",
		`ossea_agent_errors_total{reason="` + osseav1.ReasonMountFailed + `"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
}
