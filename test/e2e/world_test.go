// Package e2e runs the binaries a user deploys, built from this tree, as real processes:
// etcd and kube-apiserver, the CloudStack simulator with its hypervisor hook (real loop
// devices), the manager and the node agent, driven with kubectl.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const omaVMID = "9c1e4b7d-2a6f-4d3c-8e5b-000000000001"

// world is what TestMain starts once for every test.
var world struct {
	root       string // the repository
	dir        string // scratch space: binaries, logs, disks, mounts
	bin        string
	kubectl    string
	kubeconfig string
	simURL     string // http://127.0.0.1:<port>
	byID       string
	mountRoot  string
	disks      string
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "e2e: must run as root: the node agent formats and mounts loop devices")
		return 1
	}
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	dir, err := os.MkdirTemp("", "ossea-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	world.root, world.dir = root, dir
	world.bin = filepath.Join(dir, "bin")
	world.byID = filepath.Join(dir, "by-id")
	world.disks = filepath.Join(dir, "disks")
	world.mountRoot = filepath.Join(dir, "mnt", "migration")
	world.kubeconfig = filepath.Join(dir, "kubeconfig")
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(root, "bin", "k8s", "1.37.2-linux-amd64")
	}
	world.kubectl = filepath.Join(assets, "kubectl")
	for _, d := range []string{world.bin, world.byID, world.disks, world.mountRoot} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	keep := false
	defer func() {
		stopAll()
		if keep {
			fmt.Fprintf(os.Stderr, "e2e: logs kept in %s\n", filepath.Join(dir, "logs"))
		} else {
			_ = os.RemoveAll(dir)
		}
	}()

	if err := buildBinaries(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := startProcess("apiserver", filepath.Join(world.bin, "localapi"), "--assets", assets, "--kubeconfig-out", world.kubeconfig); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := waitUntil(60*time.Second, func() bool { _, err := os.Stat(world.kubeconfig); return err == nil }); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: the API server did not start:", err)
		return 1
	}
	if out, err := kubectlCmd("apply", "-k", filepath.Join(root, "config", "crd")); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: installing CRDs:", err, out)
		return 1
	}
	if out, err := kubectlCmd("wait", "--for=condition=Established", "crd", "--all", "--timeout=30s"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: CRDs not established:", err, out)
		return 1
	}
	if err := startSimulator(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := startProcess("node-agent", filepath.Join(world.bin, "node-agent"), "--kubeconfig", world.kubeconfig,
		"--oma-vm-id", omaVMID, "--node-name", "e2e-node", "--by-id-dir", world.byID, "--mount-root", world.mountRoot,
		"--health-probe-bind-address", "0", "--zap-log-level", "debug"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	keep = code != 0
	return code
}

func buildBinaries() error {
	for _, pkg := range []string{"./cmd/manager", "./cmd/node-agent", "./cmd/cloudsim", "./hack/localapi"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(world.bin, filepath.Base(pkg)), pkg)
		cmd.Dir = world.root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("building %s: %v\n%s", pkg, err, out)
		}
	}
	return nil
}

func startSimulator() error {
	port, err := freePort()
	if err != nil {
		return err
	}
	world.simURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	worldFile := filepath.Join(world.dir, "world.yaml")
	err = os.WriteFile(worldFile, []byte(fmt.Sprintf(`accounts:
- {name: admin, apiKey: cloudsim-api-key, secretKey: cloudsim-secret-key, admin: true}
zones:
- {id: 0a7c5b1e-3d2f-4c8b-9e6a-000000000001, name: sim-zone-1}
diskOfferings:
- {id: 5f3d9a2c-8b1e-4f6d-a7c4-000000000001, name: Custom, customized: true}
virtualMachines:
- id: %s
  name: oma
  zone: 0a7c5b1e-3d2f-4c8b-9e6a-000000000001
  local: {byIdDir: %s, backingDir: %s}
`, omaVMID, world.byID, world.disks)), 0o644)
	if err != nil {
		return err
	}
	if _, err := startProcess("cloudsim", filepath.Join(world.bin, "cloudsim"), "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--world", worldFile, "--job-latency", "1s"); err != nil {
		return err
	}
	return waitUntil(20*time.Second, func() bool {
		resp, err := http.Get(world.simURL + "/admin/state")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
}

// process is one binary running in the background, its output in a log file.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

var (
	procsMu sync.Mutex
	procs   []*process
)

func startProcess(name, bin string, args ...string) (*process, error) {
	logs := filepath.Join(world.dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return nil, err
	}
	logPath := filepath.Join(logs, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	procsMu.Lock()
	procs = append(procs, p)
	procsMu.Unlock()
	return p, nil
}

// stop asks the process to end and waits; after 10 seconds it is killed.
func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// kill ends the process at once, as a crash or an OOM kill would.
func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (p *process) logText() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// stopAll stops the processes in reverse order of starting: the simulator removes its loop
// devices on the way out.
func stopAll() {
	procsMu.Lock()
	defer procsMu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].stop()
	}
	procs = nil
}

func kubectlCmd(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, world.kubectl, append([]string{"--kubeconfig", world.kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := kubectlCmd(args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// simState reads the simulator's admin view.
type simVolume struct {
	ID               string `json:"id"`
	Name             string `json:"name"`
	Type             string `json:"type"`
	State            string `json:"state"`
	VirtualMachineID string `json:"virtualMachineId"`
	LoopDevice       string `json:"loopDevice"`
	Tags             []struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	} `json:"tags"`
}

func simDataVolumes(t *testing.T) []simVolume {
	t.Helper()
	resp, err := http.Get(world.simURL + "/admin/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Volumes []simVolume `json:"volumes"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	var out []simVolume
	for _, v := range st.Volumes {
		if v.Type == "DATADISK" {
			out = append(out, v)
		}
	}
	return out
}

func (v simVolume) tag(key string) string {
	for _, t := range v.Tags {
		if t.Key == key {
			return t.Value
		}
	}
	return ""
}

// mountsUnder lists the mount points below dir, from /proc/self/mountinfo via findmnt.
func mountsUnder(t *testing.T, dir string) map[string]string {
	t.Helper()
	out, err := exec.Command("findmnt", "-rn", "-o", "TARGET,FSTYPE").Output()
	if err != nil {
		t.Fatalf("findmnt: %v", err)
	}
	mounts := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && strings.HasPrefix(f[0], dir+"/") {
			mounts[f[0]] = f[1]
		}
	}
	return mounts
}

// loopDevicesOn lists the loop devices whose backing file is below dir.
func loopDevicesOn(t *testing.T, dir string) []string {
	t.Helper()
	out, err := exec.Command("losetup", "-a").Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	var loops []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, dir+"/") {
			loops = append(loops, line)
		}
	}
	return loops
}

func waitUntil(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("gave up after %s", timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if err := waitUntil(timeout, cond); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startManager starts one manager replica.
func startManager(t *testing.T, name string, extra ...string) *process {
	t.Helper()
	args := append([]string{"--kubeconfig", world.kubeconfig, "--health-probe-bind-address", "0",
		"--metrics-bind-address", "0", "--zap-log-level", "debug"}, extra...)
	p, err := startProcess(name, filepath.Join(world.bin, "manager"), args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.stop)
	return p
}

// applySamples applies config/samples into a namespace, pointed at this test's simulator.
func applySamples(t *testing.T, ns string) {
	t.Helper()
	kubectl(t, "create", "namespace", ns)
	var docs []string
	for _, f := range []string{"ossea_v1alpha1_osseaconfig.yaml", "ossea_v1alpha1_migrationvolume.yaml"} {
		b, err := os.ReadFile(filepath.Join(world.root, "config", "samples", f))
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, strings.ReplaceAll(string(b), "http://127.0.0.1:8080", world.simURL))
	}
	path := filepath.Join(t.TempDir(), "samples.yaml")
	if err := os.WriteFile(path, []byte(strings.Join(docs, "\n---\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	kubectl(t, "apply", "-n", ns, "-f", path)
}
