// Package e2e runs the binaries a user deploys, built from this tree, as real processes:
// etcd and kube-apiserver, the CloudStack simulator with its hypervisor hook (real loop
// devices), the manager and the node agents, driven with kubectl. The world is
// test/world's, so a failed or panicking run cleans up exactly as a passing one.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/migratekit/ossea-operator/internal/cloudsim"
	"github.com/migratekit/ossea-operator/test/world"
)

// The world TestMain starts once for every test: the API server, the simulator with two
// locally served OMA VMs, each with its own node agent (own by-id directory and mount root,
// own node: a token bound to a pod there), as two OMAs of one pool would be, and one
// stopped target VM for cut-overs. The manager and the agents run as their ServiceAccounts
// under what config/default installs (RBAC, the agent's admission policy). oma is the
// first, the one the MigrationVolume samples name.
var (
	w   *world.World
	sim *world.Sim
	oma world.SimVM
)

// omaSlots is each OMA VM's data-disk limit, spelled out because placement tests reason
// from it.
const omaSlots = 6

func TestMain(m *testing.M) {
	// The harness's own clients (installing config/default, requesting tokens) log nothing.
	ctrllog.SetLogger(logr.Discard())
	world.Main(m, world.Needs{Root: true, Tools: world.DiskTools}, startWorld)
}

func startWorld() (func(failed bool), error) {
	root, err := world.FindRoot()
	if err != nil {
		return nil, err
	}
	if w, err = world.New(root, "ossea-e2e-"); err != nil {
		return nil, err
	}
	teardown := func(failed bool) {
		if failed {
			fmt.Fprintf(os.Stderr, "e2e: the end of each process's log (%s=1 keeps them whole):\n%s", world.KeepEnv, w.LogTails(60))
		}
		if err := w.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: cleanup:", err)
		}
	}
	if err := w.Build(); err != nil {
		return teardown, err
	}
	if err := w.StartAPIServer(); err != nil {
		return teardown, err
	}
	// From here on the manager and the agents run as their ServiceAccounts, with the RBAC
	// and the admission policy config/default installs, not as the admin.
	if err := w.InstallAccess(context.Background()); err != nil {
		return teardown, err
	}
	opts := world.SimOptions{VMs: 2, MaxDataVolumes: omaSlots, Local: true, Targets: 1, JobLatency: time.Second}
	if sim, err = w.StartSimulator(opts); err != nil {
		return teardown, err
	}
	oma = sim.VMs[0]
	for i, vm := range sim.VMs {
		if _, err := w.StartAgent(fmt.Sprintf("node-agent-%d", i), vm, "--zap-log-level", "debug"); err != nil {
			return teardown, err
		}
	}
	return teardown, nil
}

func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := w.Kubectl(args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// simDataVolumes are the simulator's DATADISK volumes.
func simDataVolumes(t *testing.T) []cloudsim.Volume {
	t.Helper()
	st, err := sim.State()
	if err != nil {
		t.Fatal(err)
	}
	return world.DataVolumes(st)
}

// nsDataVolumes are the DATADISK volumes of the namespace's MigrationVolumes (by their
// owner tag): a test shares the simulator with the others, and a cut-over leaves its
// volumes on the target, and the target's replaced placeholder, for good.
func nsDataVolumes(t *testing.T, ns string) []cloudsim.Volume {
	t.Helper()
	var out []cloudsim.Volume
	for _, v := range simDataVolumes(t) {
		if strings.HasPrefix(world.Tag(v, "ossea.migratekit.io/owner"), ns+"/") {
			out = append(out, v)
		}
	}
	return out
}

// mountsUnder maps the mount points below dir to their filesystem type.
func mountsUnder(t *testing.T, dir string) map[string]string {
	t.Helper()
	ms, err := world.MountsUnder(dir)
	if err != nil {
		t.Fatal(err)
	}
	mounts := map[string]string{}
	for _, m := range ms {
		mounts[m.Target] = m.FSType
	}
	return mounts
}

// loopDevicesUnder lists the loop devices whose backing file is below dir.
func loopDevicesUnder(t *testing.T, dir string) []world.LoopDevice {
	t.Helper()
	loops, err := world.LoopDevicesUnder(dir)
	if err != nil {
		t.Fatal(err)
	}
	return loops
}

// startManager starts one manager replica, stopped when the test ends.
func startManager(t *testing.T, name string, extra ...string) *world.Process {
	t.Helper()
	p, err := w.StartManager(name, append([]string{"--zap-log-level", "debug"}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

// applySamples applies the Secret, the OsseaConfigs and the MigrationVolumes of
// config/samples into a new namespace, pointed at this test's simulator.
func applySamples(t *testing.T, ns string) {
	t.Helper()
	kubectl(t, "create", "namespace", ns)
	apply(t, ns, sample(t, "ossea_v1alpha1_osseaconfig.yaml"), sample(t, "ossea_v1alpha1_migrationvolume.yaml"))
}

// sample reads a file of config/samples, pointed at this test's simulator.
func sample(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(w.Root, "config", "samples", file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(b), "http://127.0.0.1:8080", sim.URL)
}

// apply applies YAML documents into a namespace with kubectl.
func apply(t *testing.T, ns string, docs ...string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "objects.yaml")
	if err := os.WriteFile(path, []byte(strings.Join(docs, "\n---\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	kubectl(t, "apply", "-n", ns, "-f", path)
}
