// Package world starts and stops the local world the end-to-end tests, the benchmarks and the
// chaos runs share: a real etcd and kube-apiserver (hack/localapi), the CloudStack simulator,
// the manager and node agents, each a real process built from this tree, with everything
// they leave on the host (loop devices, mounts) kept inside one scratch directory so that it
// can be cleaned up, and only that, even after a failure.
package world

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/migratekit/ossea-operator/internal/testenv"
)

// World is one scratch directory inside the process's sandbox, and the processes started
// in it.
type World struct {
	Root       string // the repository
	Dir        string // scratch space: binaries, logs, disks, mounts
	Bin        string
	Logs       string
	Assets     string // etcd, kube-apiserver and kubectl
	Kubeconfig string

	mu              sync.Mutex
	procs           []*Process
	accessInstalled bool   // see InstallAccess
	managerConfig   string // the manager's kubeconfig, once made
}

// New makes a scratch directory inside the process's sandbox (entered here if the process
// has none yet) for a world of the repository at root. Nothing runs yet.
func New(root, prefix string) (*World, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return nil, fmt.Errorf("%s is not the repository root: %w", root, err)
	}
	sb, err := EnterSandbox(prefix)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(sb.Dir, prefix)
	if err != nil {
		return nil, err
	}
	w := &World{Root: root, Dir: dir, Bin: filepath.Join(dir, "bin"), Logs: filepath.Join(dir, "logs"),
		Kubeconfig: filepath.Join(dir, "kubeconfig")}
	w.Assets = os.Getenv("KUBEBUILDER_ASSETS")
	if w.Assets == "" {
		w.Assets = filepath.Join(root, "bin", "k8s", fmt.Sprintf("%s-%s-%s", testenv.K8sVersion, runtime.GOOS, runtime.GOARCH))
	}
	for _, d := range []string{w.Bin, w.Logs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// FindRoot walks up from the working directory to the directory holding go.mod.
func FindRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Binaries the world runs, by package.
var Binaries = []string{"./cmd/manager", "./cmd/node-agent", "./cmd/cloudsim", "./hack/localapi"}

// Build compiles the binaries into Bin.
func (w *World) Build() error {
	for _, pkg := range Binaries {
		cmd := exec.Command("go", "build", "-o", filepath.Join(w.Bin, filepath.Base(pkg)), pkg)
		cmd.Dir = w.Root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("building %s: %v\n%s", pkg, err, out)
		}
	}
	return nil
}

// BinPath is the path of a built binary.
func (w *World) BinPath(name string) string { return filepath.Join(w.Bin, name) }

// StartAPIServer starts etcd and kube-apiserver through hack/localapi, waits for its
// kubeconfig and installs the CRDs with kubectl.
func (w *World) StartAPIServer() error {
	if _, err := os.Stat(filepath.Join(w.Assets, "kube-apiserver")); err != nil {
		return fmt.Errorf("no kube-apiserver in %s: run `make envtest` first", w.Assets)
	}
	if _, err := w.Start("apiserver", w.BinPath("localapi"), "--assets", w.Assets, "--kubeconfig-out", w.Kubeconfig); err != nil {
		return err
	}
	if err := WaitUntil(90*time.Second, func() bool { _, err := os.Stat(w.Kubeconfig); return err == nil }); err != nil {
		return fmt.Errorf("the API server did not start: %w", err)
	}
	if out, err := w.Kubectl("apply", "-k", filepath.Join(w.Root, "config", "crd")); err != nil {
		return fmt.Errorf("installing the CRDs: %v\n%s", err, out)
	}
	if out, err := w.Kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"); err != nil {
		return fmt.Errorf("the CRDs were not established: %v\n%s", err, out)
	}
	return nil
}

// Kubectl runs the kubectl that matches the API server against it.
func (w *World) Kubectl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(w.Assets, "kubectl"), append([]string{"--kubeconfig", w.Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// RESTConfig is the admin config of the API server, with client-side throttling raised so
// that the harness, not its own rate limit, decides how fast objects are applied.
func (w *World) RESTConfig() (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", w.Kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 1000, 2000
	return cfg, nil
}

// Client is an uncached client with the project's kinds.
func (w *World) Client() (client.Client, error) {
	cfg, err := w.RESTConfig()
	if err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: testenv.NewScheme()})
}

// Processes are the processes started so far.
func (w *World) Processes() []*Process {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*Process(nil), w.procs...)
}

// StopAll stops the processes in reverse order of starting: agents and the manager first,
// the simulator (which removes its loop devices on the way out) and the API server last.
func (w *World) StopAll() {
	w.mu.Lock()
	procs := w.procs
	w.procs = nil
	w.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].Stop()
	}
}

// Close stops every process in order, then sweeps the world's directory: whatever a
// process left (a mount, a loop device, a child) is removed, and the directory too unless
// KeepEnv=1. Nothing outside Dir is touched.
func (w *World) Close() error {
	w.StopAll()
	return Sweep(w.Dir, Keep())
}

// WaitUntil polls cond every 100ms until it holds or the timeout passes.
func WaitUntil(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("gave up after %s", timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// FreePort finds a free loopback TCP port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
