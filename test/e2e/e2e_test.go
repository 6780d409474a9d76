package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/migratekit/ossea-operator/internal/testkit"
	"github.com/migratekit/ossea-operator/test/world"
)

// TestSamplesEndToEnd: the samples, applied with kubectl, become real mounted filesystems;
// data written there is real; deleting the objects unmounts, detaches and deletes (or, for
// Retain, keeps) the volumes and leaves nothing behind.
func TestSamplesEndToEnd(t *testing.T) {
	startManager(t, "manager-samples")
	ns := "samples"
	applySamples(t, ns)
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", "osc", "--all", "--timeout=120s")
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", "mv", "--all", "--timeout=120s")
	t.Log("\n" + kubectl(t, "get", "-n", ns, "osc,mv", "-o", "wide"))

	mounts := mountsUnder(t, oma.MountRoot)
	want := map[string]string{
		filepath.Join(oma.MountRoot, "job-4711", "disk0"): "ext4",
		filepath.Join(oma.MountRoot, "job-4711", "disk1"): "xfs",
	}
	for path, fstype := range want {
		if mounts[path] != fstype {
			t.Errorf("findmnt: %s has %q, want a %s mount (all: %v)", path, mounts[path], fstype, mounts)
		}
		data := []byte("migrated block data for " + path)
		if err := os.WriteFile(filepath.Join(path, "data.bin"), data, 0o644); err != nil {
			t.Errorf("writing to %s: %v", path, err)
		}
		if got, err := os.ReadFile(filepath.Join(path, "data.bin")); err != nil || string(got) != string(data) {
			t.Errorf("reading back from %s: %q %v", path, got, err)
		}
	}
	if len(mounts) != len(want) {
		t.Errorf("mounts under the root: %v, want exactly %v (Block mode mounts nothing)", mounts, want)
	}
	if dev := kubectl(t, "get", "-n", ns, "mv/job-4711-disk2", "-o", "jsonpath={.status.phase} {.status.devicePath}"); !strings.HasPrefix(dev, "Published "+oma.ByIDDir) {
		t.Errorf("the Block-mode volume should be Published with its by-id path: %q", dev)
	}
	if vols := nsDataVolumes(t, ns); len(vols) != 3 {
		t.Errorf("CloudStack holds %d data volumes, want 3", len(vols))
	}

	kubectl(t, "delete", "-n", ns, "mv", "--all", "--wait=true", "--timeout=120s")
	if left := kubectl(t, "get", "-n", ns, "mv", "-o", "name"); strings.TrimSpace(left) != "" {
		t.Errorf("MigrationVolumes left: %s", left)
	}
	if m := mountsUnder(t, oma.MountRoot); len(m) != 0 {
		t.Errorf("mounts left after delete: %v", m)
	}
	vols := nsDataVolumes(t, ns)
	if len(vols) != 1 || !strings.Contains(vols[0].Name, "_disk2_") || vols[0].VirtualMachineID != "" ||
		world.Tag(vols[0], "ossea.migratekit.io/retained") != "true" {
		t.Errorf("after delete CloudStack should hold only the retained, detached disk2: %+v", vols)
	}
	if loops := loopDevicesUnder(t, w.Dir); len(loops) != 0 {
		t.Errorf("loop devices left: %v", loops)
	}

	kubectl(t, "delete", "-n", ns, "osc", "--all", "--wait=true", "--timeout=60s")
	if out := kubectl(t, "get", "-n", ns, "secret/ossea-credentials", "-o", "jsonpath={.metadata.finalizers}", "--ignore-not-found"); strings.TrimSpace(out) != "" {
		t.Errorf("finalizers left on the Secret: %s", out)
	}
	if out := kubectl(t, "get", "-n", ns, "osc,mv", "-o", "name"); strings.TrimSpace(out) != "" {
		t.Errorf("objects left: %s", out)
	}
}

// TestLeaderElection: two manager replicas; the leader is killed in the middle of the work;
// the other takes over and finishes it, with exactly one CloudStack volume per object.
func TestLeaderElection(t *testing.T) {
	ns := "leader"
	kubectl(t, "create", "namespace", ns)
	// The Lease lives where the manager's leader election Role grants it: its own namespace.
	le := []string{"--leader-elect", "--leader-elect-namespace", world.OperatorNamespace, "--leader-elect-lease-duration", "4s",
		"--leader-elect-renew-deadline", "3s", "--leader-elect-retry-period", "500ms"}
	a := startManager(t, "manager-a", le...)
	b := startManager(t, "manager-b", le...)
	var leader, follower *world.Process
	testkit.Eventually(t, 30*time.Second, func() string {
		switch {
		case strings.Contains(a.LogText(), "Successfully acquired lease"):
			leader, follower = a, b
		case strings.Contains(b.LogText(), "Successfully acquired lease"):
			leader, follower = b, a
		default:
			return "no leader elected"
		}
		return ""
	})

	manifest := fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {apiKey: cloudsim-api-key, secretKey: cloudsim-secret-key}
---
apiVersion: ossea.migratekit.io/v1alpha1
kind: OsseaConfig
metadata: {name: ossea}
spec:
  apiURL: %s/client/api
  credentialsSecretRef: {name: creds}
  zone: sim-zone-1
  omaVirtualMachineID: %s
`, sim.URL, oma.ID)
	const n = 5
	for i := range n {
		manifest += fmt.Sprintf(`---
apiVersion: ossea.migratekit.io/v1alpha1
kind: MigrationVolume
metadata: {name: lead-%d}
spec:
  osseaConfigRef: {name: ossea}
  jobID: job-leader
  vmName: leader test
  diskName: disk%d
  sizeGiB: 1
  mode: Block
`, i, i)
	}
	path := filepath.Join(t.TempDir(), "objects.yaml")
	if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	kubectl(t, "apply", "-n", ns, "-f", path)

	// Kill the leader while CloudStack jobs are in flight.
	testkit.Eventually(t, 60*time.Second, func() string {
		out, _ := w.Kubectl("get", "-n", ns, "mv", "-o", "jsonpath={.items[*].status.pendingJob.id}")
		if strings.TrimSpace(out) == "" {
			return "no CloudStack job in flight"
		}
		return ""
	})
	leader.Kill()
	t.Logf("killed the leader %s", leader.Name)
	testkit.Eventually(t, 30*time.Second, func() string {
		if !strings.Contains(follower.LogText(), "Successfully acquired lease") {
			return "the follower has not taken over"
		}
		return ""
	})
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", "mv", "--all", "--timeout=120s")

	owners := map[string]int{}
	for _, v := range simDataVolumes(t) {
		if strings.HasPrefix(world.Tag(v, "ossea.migratekit.io/owner"), ns+"/") || strings.Contains(v.Name, "_leader-test_") {
			owners[world.Tag(v, "ossea.migratekit.io/owner")]++
		}
	}
	for i := range n {
		if c := owners[fmt.Sprintf("%s/lead-%d", ns, i)]; c != 1 {
			t.Errorf("lead-%d has %d CloudStack volumes, want exactly 1 (%v)", i, c, owners)
		}
	}
	if len(owners) != n {
		t.Errorf("volumes by owner: %v, want %d owners", owners, n)
	}

	kubectl(t, "delete", "-n", ns, "mv", "--all", "--wait=true", "--timeout=120s")
	for _, v := range simDataVolumes(t) {
		if strings.HasPrefix(world.Tag(v, "ossea.migratekit.io/owner"), ns+"/") {
			t.Errorf("volume left in CloudStack: %+v", v)
		}
	}
}

// TestDeployManifestsDryRun: what `kubectl apply -k config/default` would create is
// accepted by a real API server.
func TestDeployManifestsDryRun(t *testing.T) {
	// A server-side dry run creates nothing, not even the Namespace that the namespaced
	// objects go into, so that one must exist (the world installed config/default's
	// accounts there).
	kubectl(t, "get", "namespace", world.OperatorNamespace)
	out := kubectl(t, "apply", "-k", filepath.Join(w.Root, "config", "default"), "--dry-run=server")
	for _, want := range []string{"deployment.apps/ossea-controller-manager", "daemonset.apps/", "clusterrole.rbac.authorization.k8s.io/ossea-manager-role"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run does not create %s:\n%s", want, out)
		}
	}
}

// TestRunsAsServiceAccounts: the agents and the manager this suite runs are not admins:
// each agent authenticates as the agent's ServiceAccount with a token bound to a pod on
// its own node (what the admission policy confines it by), the manager as its own.
func TestRunsAsServiceAccounts(t *testing.T) {
	mgr := startManager(t, "manager-whoami")
	want := map[string]string{mgr.Name: "system:serviceaccount:" + world.ManagerServiceAccount.Namespace + ":" + world.ManagerServiceAccount.Name}
	agents := 0
	for _, p := range w.Processes() {
		if strings.HasPrefix(p.Name, "node-agent-") {
			agents++
			want[p.Name] = "system:serviceaccount:" + world.AgentServiceAccount.Namespace + ":" + world.AgentServiceAccount.Name + " node=" + p.Name
		}
	}
	if agents != len(sim.VMs) {
		t.Fatalf("found %d agents, want one per OMA VM (%d)", agents, len(sim.VMs))
	}
	for _, p := range w.Processes() {
		if _, ok := want[p.Name]; !ok {
			continue
		}
		kubeconfig := flagValue(p.Args, "--kubeconfig")
		out := kubectl(t, "--kubeconfig", kubeconfig, "auth", "whoami", "-o",
			`jsonpath={.status.userInfo.username}{range .status.userInfo.extra.authentication\.kubernetes\.io/node-name[*]} node={@}{end}`)
		t.Logf("%s runs as %s", p.Name, out)
		if out != want[p.Name] {
			t.Errorf("%s runs as %q, want %q", p.Name, out, want[p.Name])
		}
	}
}

// flagValue is the value of a "--name value" pair in args.
func flagValue(args []string, name string) string {
	for i := range len(args) - 1 {
		if args[i] == name {
			return args[i+1]
		}
	}
	return ""
}
