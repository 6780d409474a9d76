// Package testenv starts a real kube-apiserver and etcd (built from source by
// hack/build-envtest.sh) with the project's CRDs installed, for tests.
package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

// K8sVersion is the kube-apiserver version the Makefile builds; keep the two in step.
const K8sVersion = "1.37.2"

// Env is a running API server with the CRDs installed.
type Env struct {
	Config *rest.Config
	Client client.Client
	Scheme *k8sruntime.Scheme
	// BinaryDir holds kube-apiserver, etcd and a kubectl of the same version.
	BinaryDir string

	env *envtest.Environment
}

// NewScheme returns a scheme with the built-in kinds and the ossea.migratekit.io kinds.
func NewScheme() *k8sruntime.Scheme {
	s := k8sruntime.NewScheme()
	must(clientgoscheme.AddToScheme(s))
	must(osseav1.AddToScheme(s))
	return s
}

// Start starts etcd and kube-apiserver and installs the CRDs found under
// <repoRoot>/config/crd/bases. The binaries come from KUBEBUILDER_ASSETS, else from
// <repoRoot>/bin/k8s/<version>-<os>-<arch> where `make envtest` puts them.
func Start(repoRoot string) (*Env, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(repoRoot, "bin", "k8s", fmt.Sprintf("%s-%s-%s", K8sVersion, runtime.GOOS, runtime.GOARCH))
	}
	if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); err != nil {
		return nil, fmt.Errorf("no kube-apiserver in %s: run `make envtest` first: %w", assets, err)
	}
	s := NewScheme()
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(repoRoot, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                s,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting the API server from %s: %w", assets, err)
	}
	c, err := client.New(cfg, client.Options{Scheme: s})
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("creating a client: %w", err)
	}
	return &Env{Config: cfg, Client: c, Scheme: s, BinaryDir: assets, env: env}, nil
}

// Kubeconfig returns a kubeconfig file's contents for an admin of the API server.
func (e *Env) Kubeconfig() []byte { return e.env.KubeConfig }

// Stop stops the API server and etcd.
func (e *Env) Stop() error { return e.env.Stop() }

func must(err error) {
	if err != nil {
		panic(err)
	}
}
