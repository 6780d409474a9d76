package controllers

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/migratekit/ossea-operator/internal/cloudsim"
	"github.com/migratekit/ossea-operator/internal/cloudstack"
	"github.com/migratekit/ossea-operator/internal/testenv"
	"github.com/migratekit/ossea-operator/internal/testkit"
	"github.com/migratekit/ossea-operator/test/world"
)

// The controller tests run the real manager against a real kube-apiserver and etcd, and the
// real cloudstack-go client against the CloudStack simulator over HTTP.

var (
	// env and k8s are set by apiServer; a test reads them only after calling it (through
	// newNamespace or startManager, which every test that needs them calls first). The
	// decision tables of this package need neither and run without an API server.
	env     *testenv.Env
	k8s     client.Client
	testCtx = context.Background()

	lazyAPIServer world.LazyAPIServer
	setEnvOnce    sync.Once
)

// Short intervals, so that a fix made inside CloudStack (a VM started again, a volume
// deleted out of band) is seen within a test's patience.
const (
	revalidateInterval = 2 * time.Second
	driftInterval      = time.Second
	lostCreateGrace    = 3 * time.Second
)

// testClusterID is the cluster identity of every test manager of this package.
const testClusterID = "5e7c1a2b-0d4f-4e8a-9b6c-3f2e1d0c9b8a"

func TestMain(m *testing.M) {
	// Informers log through the global logger; the tests read each manager's own log.
	ctrl.SetLogger(logr.Discard())
	world.Main(m, world.Needs{}, func() (func(bool), error) { return lazyAPIServer.Stop, nil })
}

// apiServer starts the package's kube-apiserver and etcd the first time a test needs them.
func apiServer(t *testing.T) {
	t.Helper()
	e := lazyAPIServer.Get(t)
	setEnvOnce.Do(func() { env, k8s = e, e.Client })
}

// testManager is the manager binary's controllers, run in-process against the test API
// server, watching one namespace so that tests cannot disturb each other.
type testManager struct {
	logs *testkit.SyncBuffer
	stop func()
}

// startManager starts both controllers for the namespace and stops them when the test
// ends (or earlier, through stop, to play a crash).
func startManager(t *testing.T, ns string) *testManager {
	t.Helper()
	apiServer(t)
	return startManagerWith(t, env.Config, ctrl.Options{Cache: cache.Options{DefaultNamespaces: map[string]cache.Config{ns: {}}}})
}

// startManagerWith starts the controllers with cfg's credentials and the cache and leader
// election of opts; the rest of opts is the tests' own, as are the controllers' Options,
// which tune may change (a test that counts calls quiets the periodic ones).
func startManagerWith(t *testing.T, cfg *rest.Config, opts ctrl.Options, tune ...func(*Options)) *testManager {
	t.Helper()
	logs := &testkit.SyncBuffer{}
	// Everything the manager logs is kept, at every verbosity, so tests can search it.
	logger := zap.New(zap.WriteTo(logs), zap.Level(zapcore.Level(-4)))
	opts.Scheme = env.Scheme
	opts.Logger = logger
	opts.Metrics = metricsserver.Options{BindAddress: "0"}
	opts.HealthProbeBindAddress = "0"
	opts.Client = client.Options{
		Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}},
	}
	opts.Controller = config.Controller{SkipNameValidation: ptr.To(true)}
	mgr, err := ctrl.NewManager(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	o := Options{
		Clouds:             cloudstack.NewFactory(cloudstack.WithRateLimit(100, 100), cloudstack.WithLogger(logger.WithName("cloudstack"))),
		RevalidateInterval: revalidateInterval,
		DriftInterval:      driftInterval,
		LostCreateGrace:    lostCreateGrace,
		HandoffRecheck:     time.Second,
		ClusterID:          testClusterID,
	}
	for _, f := range tune {
		f(&o)
	}
	if err := Setup(ctx, mgr, o); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("manager: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return &testManager{logs: logs, stop: stop}
}

// sim is one simulator behind a real HTTP listener.
type sim struct {
	*cloudsim.Simulator
	srv *httptest.Server
	url string
}

// startSim starts a simulator on the default world changed by edit, over plain HTTP or,
// with useTLS, over HTTPS with a self-signed certificate.
func startSim(t *testing.T, useTLS bool, edit func(*cloudsim.World)) *sim {
	t.Helper()
	w := cloudsim.DefaultWorld()
	if edit != nil {
		edit(w)
	}
	s, err := cloudsim.New(cloudsim.Options{World: w})
	if err != nil {
		t.Fatalf("starting the simulator: %v", err)
	}
	var srv *httptest.Server
	if useTLS {
		srv = httptest.NewTLSServer(s.Handler())
	} else {
		srv = httptest.NewServer(s.Handler())
	}
	t.Cleanup(func() {
		srv.Close()
		_ = s.Close()
	})
	return &sim{Simulator: s, srv: srv, url: srv.URL + "/client/api"}
}

// newNamespace creates a namespace for one test, so tests cannot see each other's objects.
func newNamespace(t *testing.T) string {
	t.Helper()
	apiServer(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "osc-"}}
	if err := k8s.Create(testCtx, ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// assertNoLeak searches the manager's log, every event and the given objects' status for
// the secret values.
func assertNoLeak(t *testing.T, logs string, objs []client.Object, secrets ...string) {
	t.Helper()
	haystacks := map[string]string{"manager log": logs}
	var evs eventsv1.EventList
	if err := k8s.List(testCtx, &evs); err != nil {
		t.Fatal(err)
	}
	for _, e := range evs.Items {
		haystacks["event "+e.Name] = e.Note + " " + e.Reason
	}
	var corev1Events corev1.EventList
	if err := k8s.List(testCtx, &corev1Events); err != nil {
		t.Fatal(err)
	}
	for _, e := range corev1Events.Items {
		haystacks["event "+e.Name] = e.Message + " " + e.Reason
	}
	for _, o := range objs {
		if err := k8s.Get(testCtx, client.ObjectKeyFromObject(o), o); err != nil {
			continue
		}
		haystacks[fmt.Sprintf("%T %s status", o, o.GetName())] = fmt.Sprintf("%+v", o)
	}
	for where, text := range haystacks {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s contains the secret %q", where, s)
			}
		}
		if strings.Contains(text, "signature=") {
			t.Errorf("%s contains a request signature: %s", where, text[max(0, strings.Index(text, "signature=")-300):min(len(text), strings.Index(text, "signature=")+100)])
		}
	}
}
