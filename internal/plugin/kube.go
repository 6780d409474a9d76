package plugin

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

// kubeFlags are kubectl's own connection flags (--kubeconfig, --context, -n, --cluster,
// --user, --server, --token, ...), through clientcmd, so the plugin finds the cluster
// exactly as the kubectl that runs it does; plus -A.
type kubeFlags struct {
	rules         *clientcmd.ClientConfigLoadingRules
	overrides     *clientcmd.ConfigOverrides
	allNamespaces bool
}

func bindKubeFlags(fs *pflag.FlagSet) *kubeFlags {
	k := &kubeFlags{rules: clientcmd.NewDefaultClientConfigLoadingRules(), overrides: &clientcmd.ConfigOverrides{}}
	fs.StringVar(&k.rules.ExplicitPath, "kubeconfig", "", "path to the kubeconfig file (default: KUBECONFIG, else ~/.kube/config)")
	clientcmd.BindOverrideFlags(k.overrides, fs, clientcmd.RecommendedConfigOverrideFlags(""))
	fs.BoolVarP(&k.allNamespaces, "all-namespaces", "A", false, "list across all namespaces")
	return k
}

// connect returns a client and the namespace to list: "" for all namespaces, else -n,
// else the context's namespace, else "default".
func (k *kubeFlags) connect() (client.Client, string, error) {
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(k.rules, k.overrides)
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("loading the kubeconfig: %w", err)
	}
	ns := ""
	if !k.allNamespaces {
		if ns, _, err = cc.Namespace(); err != nil {
			return nil, "", fmt.Errorf("finding the namespace: %w", err)
		}
	}
	scheme := runtime.NewScheme()
	if err := osseav1.AddToScheme(scheme); err != nil {
		return nil, "", fmt.Errorf("building the scheme: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, "", fmt.Errorf("connecting to the API server: %w", err)
	}
	return c, ns, nil
}

// scope names where the command looked, for messages.
func scope(ns string) string {
	if ns == "" {
		return "any namespace"
	}
	return "namespace " + ns
}

const jobsSummary = `Usage: kubectl ossea jobs [-n NS | -A]

A table of MigrationJobs: NAME, VM, CONFIG (the OsseaConfig the job was placed on),
DISKS (ready/total), PHASE, TARGET (the cut-over target VM, or -), AGE; with -A a
NAMESPACE column first.`

func runJobs(ctx context.Context, args []string, io IO) error {
	fs := newFlags("jobs")
	k := bindKubeFlags(fs)
	if err := parseFlags(fs, args, jobsSummary, io.Stdout); err != nil {
		return err
	}
	c, ns, err := k.connect()
	if err != nil {
		return err
	}
	var jobs osseav1.MigrationJobList
	if err := c.List(ctx, &jobs, client.InNamespace(ns)); err != nil {
		return fmt.Errorf("listing MigrationJobs in %s: %w", scope(ns), err)
	}
	if len(jobs.Items) == 0 {
		// As kubectl get: the message to stderr, so a pipe sees no rows.
		fmt.Fprintf(io.Stderr, "No MigrationJobs found in %s.\n", scope(ns))
		return nil
	}
	return PrintJobs(io.Stdout, jobs.Items, ns == "", time.Now())
}

const orphansSummary = `Usage: kubectl ossea orphans [-n NS | -A]

A table of the orphaned CloudStack volumes the OsseaConfigs report in status.orphans,
one row per volume id: NAMESPACE, CONFIG, POLICY, VOLUME ID. Notes on stderr say when
a config has more orphans than its status lists, which configs were not checked yet,
or that there are none.`

func runOrphans(ctx context.Context, args []string, io IO) error {
	fs := newFlags("orphans")
	k := bindKubeFlags(fs)
	if err := parseFlags(fs, args, orphansSummary, io.Stdout); err != nil {
		return err
	}
	c, ns, err := k.connect()
	if err != nil {
		return err
	}
	var configs osseav1.OsseaConfigList
	if err := c.List(ctx, &configs, client.InNamespace(ns)); err != nil {
		return fmt.Errorf("listing OsseaConfigs in %s: %w", scope(ns), err)
	}
	r := Orphans(configs.Items, scope(ns))
	if err := PrintOrphans(io.Stdout, r.Rows); err != nil {
		return err
	}
	for _, n := range r.Notes {
		fmt.Fprintln(io.Stderr, n)
	}
	return nil
}
