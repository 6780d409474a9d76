// Command node-agent runs on each OMA node: it finds the disks of the MigrationVolumes
// attached to its VM, formats blank ones, mounts them under the mount root, and unmounts
// them when their objects are deleted.
package main

import (
	"flag"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/nodeagent"
)

func main() {
	var (
		vmID            string
		nodeName        string
		byIDDir         string
		mountRoot       string
		deviceTimeout   time.Duration
		resyncInterval  time.Duration
		unmountRetryMax time.Duration
		formatTimeout   time.Duration
		workers         int
		metricsAddr     string
		probeAddr       string
		namespace       string
	)
	flag.StringVar(&vmID, "oma-vm-id", "", "CloudStack UUID of the OMA VM this agent runs on; else the environment variable "+
		nodeagent.VMIDEnv+", else the label "+nodeagent.VMIDLabel+" of this node.")
	flag.StringVar(&nodeName, "node-name", os.Getenv("NODE_NAME"), "Name of this agent's Kubernetes node (default: the environment variable NODE_NAME, else the host name).")
	flag.StringVar(&byIDDir, "by-id-dir", nodeagent.DefaultByIDDir, "Directory where the disks' stable by-id links appear.")
	flag.StringVar(&mountRoot, "mount-root", nodeagent.DefaultMountRoot, "Directory volumes are mounted under, as <mount-root>/<jobID>/<diskName>.")
	flag.DurationVar(&deviceTimeout, "device-timeout", nodeagent.DefaultDeviceTimeout, "How long after attachment a disk that has not appeared is waited for before it is reported DeviceNotFound.")
	flag.DurationVar(&resyncInterval, "resync-interval", nodeagent.DefaultResyncInterval, "How often a settled volume is checked again, behind the watches.")
	flag.DurationVar(&unmountRetryMax, "unmount-retry-max", nodeagent.DefaultUnmountRetryMax, "Longest wait between attempts to unmount a busy filesystem.")
	flag.DurationVar(&formatTimeout, "format-timeout", nodeagent.DefaultFormatTimeout, "Longest time one mkfs may take.")
	flag.IntVar(&workers, "max-concurrent-reconciles", nodeagent.DefaultMaxConcurrentReconciles, "Volumes handled at once (mkfs and mount included).")
	flag.StringVar(&namespace, "namespace", "", "Watch MigrationVolumes in this namespace only (config/namespaced); empty watches every namespace.")
	flag.StringVar(&metricsAddr, "metrics-bind-address", "0", "Address the metrics endpoint binds to, for example :8443; 0 turns it off.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8082", "Address the healthz and readyz endpoints bind to.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()

	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	if nodeName == "" {
		host, err := os.Hostname()
		if err != nil {
			log.Error(err, "Unable to find the node name; set --node-name or NODE_NAME")
			os.Exit(1)
		}
		nodeName = host
	}

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(osseav1.AddToScheme(scheme))

	cfg := ctrl.GetConfigOrDie()
	ctx := ctrl.SetupSignalHandler()

	// A direct client for the one Node read: the agent caches no Nodes.
	direct, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		log.Error(err, "Unable to create a client")
		os.Exit(1)
	}
	vmID, source, err := nodeagent.ResolveVMID(ctx, vmID, os.Getenv, direct, nodeName)
	if err != nil {
		log.Error(err, "Unable to tell which VM this agent serves")
		os.Exit(1)
	}

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress: probeAddr,
		// One agent per node, each with its own volumes: nothing to elect.
		LeaderElection: false,
		Cache:          nodeagent.CacheOptions(vmID, namespace),
	})
	if err != nil {
		log.Error(err, "Unable to create the manager")
		os.Exit(1)
	}

	if err := (&nodeagent.Reconciler{
		Client:          mgr.GetClient(),
		APIReader:       mgr.GetAPIReader(),
		Recorder:        mgr.GetEventRecorder("ossea-node-agent"),
		VMID:            vmID,
		NodeName:        nodeName,
		ByIDDir:         byIDDir,
		MountRoot:       mountRoot,
		DeviceTimeout:   deviceTimeout,
		ResyncInterval:  resyncInterval,
		UnmountRetryMax: unmountRetryMax,
		FormatTimeout:   formatTimeout,
	}).SetupWithManager(mgr, controller.Options{MaxConcurrentReconciles: workers}); err != nil {
		log.Error(err, "Unable to set up the controller", "controller", "nodeagent")
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

	log.Info("Starting node agent", "vmID", vmID, "vmIDFrom", source, "node", nodeName, "namespace", namespace,
		"byIDDir", byIDDir, "mountRoot", mountRoot, "deviceTimeout", deviceTimeout)
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "Node agent stopped with an error")
		os.Exit(1)
	}
}
