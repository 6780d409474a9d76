// Command localapi runs a real etcd and kube-apiserver (built from source into bin/k8s by
// hack/build-envtest.sh) for the demo and the end-to-end tests: it writes an admin
// kubeconfig and serves until interrupted. CRDs are left to `kubectl apply`.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

func main() {
	assets := flag.String("assets", os.Getenv("KUBEBUILDER_ASSETS"), "Directory holding etcd, kube-apiserver and kubectl.")
	kubeconfig := flag.String("kubeconfig-out", "kubeconfig", "Where to write the admin kubeconfig.")
	flag.Parse()

	env := &envtest.Environment{BinaryAssetsDirectory: *assets}
	if _, err := env.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "localapi: starting etcd and kube-apiserver from %s: %v\n", *assets, err)
		os.Exit(1)
	}
	if err := writeAtomically(*kubeconfig, env.KubeConfig); err != nil {
		fmt.Fprintf(os.Stderr, "localapi: writing %s: %v\n", *kubeconfig, err)
		_ = env.Stop()
		os.Exit(1)
	}
	fmt.Printf("localapi: kube-apiserver at %s, kubeconfig %s\n", env.Config.Host, *kubeconfig)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	if err := env.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "localapi: stopping: %v\n", err)
		os.Exit(1)
	}
}

// writeAtomically writes the file under another name and renames it, so that a reader
// that sees the file finds it whole.
func writeAtomically(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
