// Command manager runs the ossea-operator's controllers: the OsseaConfig connection test
// and the MigrationVolume and MigrationJob lifecycles in CloudStack.
package main

import (
	"context"
	"flag"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/controllers"
	"github.com/migratekit/ossea-operator/internal/cloudstack"
)

func main() {
	var (
		metricsAddr        string
		probeAddr          string
		leaderElect        bool
		leaderElectNS      string
		leaseDuration      time.Duration
		renewDeadline      time.Duration
		retryPeriod        time.Duration
		revalidateInterval time.Duration
		driftInterval      time.Duration
		handoffRecheck     time.Duration
		cloudQPS           float64
		cloudBurst         int
		cloudTimeout       time.Duration
		volumeWorkers      int
		identityNS         string
		namespace          string
		watchFilter        string
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", "0", "Address the metrics endpoint binds to, for example :8443; 0 turns it off.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address the healthz and readyz endpoints bind to.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader so that only one manager replica acts at a time.")
	flag.StringVar(&leaderElectNS, "leader-elect-namespace", "", "Namespace of the leader election Lease; defaults to the manager's own namespace in a cluster.")
	flag.DurationVar(&leaseDuration, "leader-elect-lease-duration", 15*time.Second, "How long a lost leader's lease blocks the other replicas.")
	flag.DurationVar(&renewDeadline, "leader-elect-renew-deadline", 10*time.Second, "How long the leader tries to renew before it gives up leading.")
	flag.DurationVar(&retryPeriod, "leader-elect-retry-period", 2*time.Second, "How often replicas try to take or renew the lease.")
	flag.DurationVar(&revalidateInterval, "revalidate-interval", 5*time.Minute, "How often each OsseaConfig's connection test is repeated (jittered by up to 10%).")
	flag.DurationVar(&handoffRecheck, "handoff-recheck", controllers.DefaultHandoffRecheck, "How often a hand-off or cut-over refused by a check on its target VM (a Running VM, say) is checked again.")
	flag.DurationVar(&driftInterval, "drift-interval", 5*time.Minute, "How often each OsseaConfig's settled MigrationVolumes are compared with CloudStack (one call per config).")
	flag.StringVar(&namespace, "namespace", "", "Watch only this namespace (config/namespaced); empty watches every namespace. Also the default of --leader-elect-namespace.")
	flag.StringVar(&watchFilter, "watch-filter", "", "Reconcile only the OsseaConfigs, MigrationJobs and MigrationVolumes labelled "+osseav1.WatchFilterLabel+
		"=<value> (one shard; its own leader election Lease); empty reconciles all.")
	flag.IntVar(&volumeWorkers, "max-concurrent-reconciles", controllers.DefaultMaxConcurrentReconciles, "MigrationVolumes reconciled at once.")
	flag.Float64Var(&cloudQPS, "cloudstack-qps", cloudstack.DefaultQPS, "CloudStack API calls per second allowed per CloudStack endpoint, shared by the OsseaConfigs that use it.")
	flag.IntVar(&cloudBurst, "cloudstack-burst", cloudstack.DefaultBurst, "CloudStack API calls allowed in a burst per CloudStack endpoint.")
	flag.DurationVar(&cloudTimeout, "cloudstack-timeout", cloudstack.DefaultRequestTimeout, "Timeout of one CloudStack API call.")
	flag.StringVar(&identityNS, "identity-namespace", "", "Namespace of the ConfigMap "+osseav1.ClusterIdentityConfigMap+
		" that keeps this cluster's identity, tagged on every volume (default: the environment variable POD_NAMESPACE, else the pod's own namespace, else --namespace, else default).")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()

	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(osseav1.AddToScheme(scheme))

	if leaderElectNS == "" {
		leaderElectNS = namespace // the Lease lives where the Role lets the manager write
	}
	cacheOpts, err := controllers.CacheOptions(namespace, watchFilter)
	if err != nil {
		log.Error(err, "Invalid --watch-filter")
		os.Exit(1)
	}
	if identityNS == "" {
		identityNS = ownNamespace(namespace)
	}
	restConfig := ctrl.GetConfigOrDie()
	ctx := ctrl.SetupSignalHandler()
	clusterID, err := clusterIdentity(ctx, restConfig, scheme, identityNS)
	if err != nil {
		log.Error(err, "Unable to find this cluster's identity")
		os.Exit(1)
	}

	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:  probeAddr,
		LeaderElection:          leaderElect,
		LeaderElectionID:        controllers.LeaderElectionID(watchFilter),
		LeaderElectionNamespace: leaderElectNS,
		LeaseDuration:           &leaseDuration,
		RenewDeadline:           &renewDeadline,
		RetryPeriod:             &retryPeriod,
		// A replica that stops leading exits at once, so two never act together.
		LeaderElectionReleaseOnCancel: true,
		Cache:                         cacheOpts,
		Client: client.Options{
			// Secrets are read straight from the API server, never cached: the manager
			// needs a handful of them and must not hold every Secret of the cluster.
			Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}},
		},
	})
	if err != nil {
		log.Error(err, "Unable to create the manager")
		os.Exit(1)
	}

	if err := controllers.Setup(ctx, mgr, controllers.Options{
		Clouds: cloudstack.NewFactory(
			cloudstack.WithRateLimit(cloudQPS, cloudBurst),
			cloudstack.WithRequestTimeout(cloudTimeout),
			cloudstack.WithLogger(ctrl.Log.WithName("cloudstack")),
		),
		RevalidateInterval:      revalidateInterval,
		DriftInterval:           driftInterval,
		MaxConcurrentReconciles: volumeWorkers,
		LostCreateGrace:         2 * cloudTimeout,
		HandoffRecheck:          handoffRecheck,
		ClusterID:               clusterID,
	}); err != nil {
		log.Error(err, "Unable to set up the controllers")
		os.Exit(1)
	}

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		log.Error(err, "Unable to set up the health check")
		os.Exit(1)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		log.Error(err, "Unable to set up the ready check")
		os.Exit(1)
	}

	log.Info("Starting manager", "namespace", namespace, "watchFilter", watchFilter, "leaderElect", leaderElect, "revalidateInterval", revalidateInterval.String(), "clusterID", clusterID)
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "Manager stopped with an error")
		os.Exit(1)
	}
}

// ownNamespace is where the manager runs: POD_NAMESPACE (set from the downward API in
// config/manager), else the namespace of the pod's ServiceAccount, else, for a manager run
// from a workstation, the one namespace it watches (its Role's), else default.
func ownNamespace(watched string) string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil && len(b) > 0 {
		return strings.TrimSpace(string(b))
	}
	if watched != "" {
		return watched
	}
	return "default"
}

// clusterIdentity reads (or, the first time, creates) the cluster identity, with a client
// of its own since the manager's cache has not started yet.
func clusterIdentity(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme, namespace string) (string, error) {
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return controllers.EnsureClusterIdentity(ctx, c, namespace)
}
