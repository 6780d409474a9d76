package plugin

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/controllers"
	"github.com/migratekit/ossea-operator/internal/cloudsim"
	"github.com/migratekit/ossea-operator/internal/cloudstack"
	"github.com/migratekit/ossea-operator/internal/testenv"
	"github.com/migratekit/ossea-operator/test/world"
)

// The tests below run the plugin against a real kube-apiserver, the manager's controllers
// in-process and the CloudStack simulator: the imported objects are applied with the real
// kubectl, as a user would, and must become Ready. The table tests of this package need
// none of it and start none of it.

var lazyAPIServer world.LazyAPIServer

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	world.Main(m, world.Needs{}, func() (func(bool), error) { return lazyAPIServer.Stop, nil })
}

// cluster is the API server as the plugin sees it: a kubeconfig file.
type cluster struct {
	env        *testenv.Env
	kubeconfig string
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	env := lazyAPIServer.Get(t)
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, env.Kubeconfig(), 0o600); err != nil {
		t.Fatal(err)
	}
	return &cluster{env: env, kubeconfig: path}
}

func (c *cluster) namespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "plugin-"}}
	if err := c.env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// kubectl runs the API server's own kubectl with stdin.
func (c *cluster) kubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(c.env.BinaryDir, "kubectl"), append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// plugin runs a jobs or orphans command against the cluster and fails the test on a
// non-zero exit.
func (c *cluster) plugin(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code := Run(context.Background(), append(args, "--kubeconfig", c.kubeconfig), IO{Stdout: &o, Stderr: &e})
	if code != 0 {
		t.Fatalf("kubectl ossea %s: exit %d\n%s", strings.Join(args, " "), code, e.String())
	}
	return o.String(), e.String()
}

// startSim serves the simulator's default world over HTTP.
func startSim(t *testing.T) string {
	t.Helper()
	s, err := cloudsim.New(cloudsim.Options{World: cloudsim.DefaultWorld()})
	if err != nil {
		t.Fatalf("starting the simulator: %v", err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		srv.Close()
		_ = s.Close()
	})
	return srv.URL + "/client/api"
}

// startManager runs the manager's controllers (controllers.Setup, as cmd/manager does) for
// one namespace until the test ends.
func startManager(t *testing.T, c *cluster, ns string) {
	t.Helper()
	mgr, err := ctrl.NewManager(c.env.Config, ctrl.Options{
		Scheme:                 c.env.Scheme,
		Logger:                 logr.Discard(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{DefaultNamespaces: map[string]cache.Config{ns: {}}},
		Client:                 client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := controllers.Setup(ctx, mgr, controllers.Options{
		Clouds:             cloudstack.NewFactory(cloudstack.WithRateLimit(100, 100)),
		RevalidateInterval: time.Minute,
		DriftInterval:      time.Minute,
		ClusterID:          "plugin-test",
	}); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
}

// TestImportEachFormBecomesReady turns each legacy form, pointing at the simulator, into
// objects with the plugin, applies them with `kubectl apply -f -` and waits with `kubectl
// wait --for=condition=Ready`, as the README tells a user to. Then it lists the job it
// places on one of them.
func TestImportEachFormBecomesReady(t *testing.T) {
	c := startCluster(t)
	simURL := startSim(t)
	ns := c.namespace(t)
	startManager(t, c, ns)
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	legacyEnv := []string{
		"OSSEA_API_URL=" + simURL,
		"OSSEA_API_KEY=" + cloudsim.DefaultAPIKey,
		"OSSEA_SECRET_KEY=" + cloudsim.DefaultSecretKey,
		"OSSEA_DOMAIN=/",
		"OSSEA_ZONE=" + cloudsim.DefaultZoneName,
		"OSSEA_OMA_VM_ID=" + cloudsim.DefaultOMAVMID,
		"OSSEA_DISK_OFFERING_ID=" + cloudsim.DefaultDiskOfferingID,
	}
	yamlFile := write("ossea-prod.yaml", fmt.Sprintf("name: Production OSSEA\napi_url: %s\napi_key: %s\nsecret_key: %s\ndomain: ROOT\nzone: %s\noma_vm_id: %s\n",
		simURL, cloudsim.DefaultAPIKey, cloudsim.DefaultSecretKey, cloudsim.DefaultZoneID, cloudsim.DefaultOMAVMID))
	jsonFile := write("create.json", fmt.Sprintf(`{"action":"create","configuration":{"name":"oma-api","api_url":%q,"api_key":%q,"secret_key":%q,"zone":%q,"oma_vm_id":%q,"disk_offering_id":%q}}`,
		simURL, cloudsim.DefaultAPIKey, cloudsim.DefaultSecretKey, cloudsim.DefaultZoneName, cloudsim.DefaultOMAVMID, cloudsim.DefaultDiskOfferingID))

	forms := []struct {
		form string
		args []string
		name string
	}{
		{"environment", []string{"import", "--from-env"}, "ossea"},
		{"YAML file", []string{"import", "--from-file", yamlFile}, "production-ossea"},
		{"JSON body", []string{"import", "--from-file", jsonFile, "--namespace", ns}, "oma-api"},
	}
	for _, f := range forms {
		var stdout, stderr bytes.Buffer
		start := time.Now()
		code := Run(context.Background(), f.args, IO{Stdout: &stdout, Stderr: &stderr, Environ: legacyEnv, ReadFile: os.ReadFile})
		if code != 0 {
			t.Fatalf("%s: import: exit %d\n%s", f.form, code, stderr.String())
		}
		if strings.Contains(stderr.String(), cloudsim.DefaultAPIKey) || strings.Contains(stderr.String(), cloudsim.DefaultSecretKey) {
			t.Errorf("%s: stderr shows a credential:\n%s", f.form, stderr.String())
		}
		c.kubectl(t, stdout.String(), "apply", "-n", ns, "-f", "-")
		c.kubectl(t, "", "wait", "-n", ns, "--for=condition=Ready", "--timeout=60s", "osc/"+f.name)
		t.Logf("%s: osc/%s Ready %.1fs after the import; notes: %q", f.form, f.name, time.Since(start).Seconds(), stderr.String())
	}

	// A job placed on the imported config shows where it went.
	job := &osseav1.MigrationJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "job-4711"},
		Spec: osseav1.MigrationJobSpec{
			VMName:    "Web Server (Prod) 01",
			Placement: osseav1.MigrationJobPlacement{OsseaConfigRef: &osseav1.LocalObjectReference{Name: "production-ossea"}},
			Disks:     []osseav1.MigrationJobDisk{{Name: "disk0", SizeGiB: ptr.To[int32](1)}, {Name: "disk1", SizeGiB: ptr.To[int32](1)}},
		},
	}
	if err := c.env.Client.Create(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	c.kubectl(t, "", "wait", "-n", ns, "--for=jsonpath={.status.placement.osseaConfigName}=production-ossea", "--timeout=60s", "mj/job-4711")
	out, _ := c.plugin(t, "jobs", "-n", ns)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || fields(lines[0]) != "NAME VM CONFIG DISKS PHASE TARGET AGE" ||
		!strings.HasPrefix(lines[1], "job-4711") || !strings.Contains(lines[1], "   Web Server (Prod) 01   production-ossea   ") ||
		!strings.Contains(lines[1], "/2 ") || !strings.Contains(lines[1], " -   ") {
		t.Errorf("kubectl ossea jobs -n %s:\n%s", ns, out)
	}
	t.Logf("kubectl ossea jobs -n %s:\n%s", ns, out)

	// The manager fills no status.orphans yet on this branch; the command says none.
	out, errOut := c.plugin(t, "orphans", "-n", ns)
	if out != "" || !strings.Contains(errOut, "No orphans found in namespace "+ns+" (") {
		t.Errorf("kubectl ossea orphans -n %s:\nstdout:\n%s\nstderr:\n%s", ns, out, errOut)
	}
}

// fields squeezes a table line's padding to single spaces.
func fields(line string) string { return strings.Join(strings.Fields(line), " ") }

// TestTablesFromStatus lists objects whose status the test writes itself, in namespaces no
// manager watches, so every column is known: the jobs table with -A and a cut-over target,
// and the orphans a config reports (the manager's orphan check fills status.orphans; here
// the test does, through the status subresource, as the manager would).
func TestTablesFromStatus(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	k := c.env.Client
	nsA, nsB := c.namespace(t), c.namespace(t)

	target := "7d1c2b3a-4e5f-4a6b-9c7d-000000000003"
	handedOff := &osseav1.MigrationJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: nsA, Name: "job-1"},
		Spec: osseav1.MigrationJobSpec{
			VMName:    "db-01",
			Placement: osseav1.MigrationJobPlacement{OsseaConfigSelector: &metav1.LabelSelector{}},
			Disks:     []osseav1.MigrationJobDisk{{Name: "disk0", SizeGiB: ptr.To[int32](8)}, {Name: "disk1", SizeGiB: ptr.To[int32](8)}},
			Cutover:   &osseav1.MigrationJobCutover{TargetVirtualMachineID: target, RootDisk: "disk0"},
		},
	}
	waiting := &osseav1.MigrationJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: nsB, Name: "job-2"},
		Spec: osseav1.MigrationJobSpec{
			VMName:    "web 02",
			Placement: osseav1.MigrationJobPlacement{OsseaConfigRef: &osseav1.LocalObjectReference{Name: "b"}},
			Disks:     []osseav1.MigrationJobDisk{{Name: "disk0", SizeGiB: ptr.To[int32](1)}},
		},
	}
	for _, j := range []*osseav1.MigrationJob{handedOff, waiting} {
		if err := k.Create(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	handedOff.Status.Phase = osseav1.JobPhaseHandedOff
	handedOff.Status.Placement = &osseav1.MigrationJobPlacementStatus{OsseaConfigName: "a", OMAVirtualMachineID: cloudsim.DefaultOMAVMID}
	handedOff.Status.DiskCount = &osseav1.MigrationJobDiskCount{Total: 2, Ready: 2}
	handedOff.Status.DisksReady = "2/2"
	if err := k.Status().Update(ctx, handedOff); err != nil {
		t.Fatal(err)
	}

	out, _ := c.plugin(t, "jobs", "-A")
	want := map[string]string{
		nsA: nsA + " job-1 db-01 a 2/2 HandedOff " + target,
		nsB: nsB + " job-2 web 02 - 0/1 - -",
	}
	checkRows(t, "jobs -A", out, "NAMESPACE NAME VM CONFIG DISKS PHASE TARGET AGE", want)
	t.Logf("kubectl ossea jobs -A:\n%s", out)
	out, _ = c.plugin(t, "jobs", "-n", nsB)
	checkRows(t, "jobs -n", out, "NAME VM CONFIG DISKS PHASE TARGET AGE", map[string]string{"job-2": "job-2 web 02 - 0/1 - -"})

	// Orphans: a reports three (policy Delete after 1h), b reports 60 of which its status
	// lists the 50 longest orphaned, c has not been checked yet.
	ids := func(prefix string, n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("%s-%04d-4000-8000-000000000000", prefix, i))
		}
		return out
	}
	configs := []struct {
		name    string
		ns      string
		policy  osseav1.OrphanPolicy
		orphans *osseav1.OsseaConfigOrphans
	}{
		{"a", nsA, osseav1.OrphanDelete, &osseav1.OsseaConfigOrphans{Count: 3, VolumeIDs: ids("aaaaaaaa", 3)}},
		{"b", nsB, "", &osseav1.OsseaConfigOrphans{Count: 60, VolumeIDs: ids("bbbbbbbb", osseav1.MaxReportedOrphans)}},
		{"c", nsB, "", nil},
	}
	for _, cf := range configs {
		osc := &osseav1.OsseaConfig{
			ObjectMeta: metav1.ObjectMeta{Namespace: cf.ns, Name: cf.name},
			Spec: osseav1.OsseaConfigSpec{
				APIURL: "http://127.0.0.1:1/client/api", CredentialsSecretRef: osseav1.LocalObjectReference{Name: cf.name + "-credentials"},
				Zone: "z", OMAVirtualMachineID: cloudsim.DefaultOMAVMID, OrphanPolicy: cf.policy,
			},
		}
		if cf.policy == osseav1.OrphanDelete {
			osc.Spec.OrphanGracePeriod = &metav1.Duration{Duration: time.Hour}
		}
		if err := k.Create(ctx, osc); err != nil {
			t.Fatal(err)
		}
		if cf.orphans != nil {
			osc.Status.Orphans = cf.orphans
			if err := k.Status().Update(ctx, osc); err != nil {
				t.Fatal(err)
			}
		}
	}
	out, errOut := c.plugin(t, "orphans", "-n", nsA)
	checkRows(t, "orphans -n", out, "NAMESPACE CONFIG POLICY VOLUME ID", map[string]string{
		"aaaaaaaa-0000": nsA + " a Delete(after 1h0m0s) aaaaaaaa-0000-4000-8000-000000000000",
		"aaaaaaaa-0001": nsA + " a Delete(after 1h0m0s) aaaaaaaa-0001-4000-8000-000000000000",
		"aaaaaaaa-0002": nsA + " a Delete(after 1h0m0s) aaaaaaaa-0002-4000-8000-000000000000",
	})
	if errOut != "" {
		t.Errorf("orphans -n %s: stderr %q", nsA, errOut)
	}
	t.Logf("kubectl ossea orphans -n %s:\n%s", nsA, out)

	out, errOut = c.plugin(t, "orphans", "-n", nsB)
	if n := strings.Count(out, "\n"); n != 1+osseav1.MaxReportedOrphans || !strings.Contains(out, nsB+"   b        Report   bbbbbbbb-0049-") {
		t.Errorf("orphans -n %s: %d lines:\n%s", nsB, n, out)
	}
	wantNotes := fmt.Sprintf("note: %s/b has 60 orphans; its status lists 50 (at most 50, the longest orphaned first)\nnote: not checked for orphans yet (status.orphans unset): %s/c\n", nsB, nsB)
	if errOut != wantNotes {
		t.Errorf("orphans -n %s: stderr\n got %q\nwant %q", nsB, errOut, wantNotes)
	}
	t.Logf("kubectl ossea orphans -n %s: %d rows; stderr:\n%s", nsB, strings.Count(out, "\n")-1, errOut)

	out, errOut = c.plugin(t, "orphans", "-A")
	if strings.Count(out, "\n") < 1+3+osseav1.MaxReportedOrphans || !strings.Contains(errOut, nsB+"/b has 60 orphans") {
		t.Errorf("orphans -A:\n%s\n%s", out, errOut)
	}

	empty := c.namespace(t)
	out, errOut = c.plugin(t, "orphans", "-n", empty)
	if out != "" || errOut != "No orphans found in namespace "+empty+" (0 OsseaConfigs checked).\n" {
		t.Errorf("orphans -n %s (empty): stdout %q stderr %q", empty, out, errOut)
	}
	out, errOut = c.plugin(t, "jobs", "-n", empty)
	if out != "" || errOut != "No MigrationJobs found in namespace "+empty+".\n" {
		t.Errorf("jobs -n %s (empty): stdout %q stderr %q", empty, out, errOut)
	}
}

// checkRows checks a table's header and that, for each key, exactly one row contains it and
// reads as want once its padding is squeezed (AGE, the last column, is cut off when the
// wanted row does not name it).
func checkRows(t *testing.T, what, table, header string, want map[string]string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(table, "\n"), "\n")
	if fields(lines[0]) != header {
		t.Errorf("%s: header %q, want %q", what, fields(lines[0]), header)
	}
	for key, row := range want {
		var found []string
		for _, l := range lines[1:] {
			if strings.Contains(l, key) {
				found = append(found, fields(l))
			}
		}
		if len(found) != 1 || !strings.HasPrefix(found[0], row) {
			t.Errorf("%s: rows with %q: %q, want one starting %q", what, key, found, row)
		}
	}
}
