package world

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

// StartManager starts a manager against the world's API server; extra flags go last, so
// they win. After InstallAccess it runs as its ServiceAccount, in that account's namespace
// (POD_NAMESPACE, as the Deployment's pod would have it); before, as the admin.
func (w *World) StartManager(name string, extra ...string) (*Process, error) {
	kubeconfig, env, err := w.managerIdentity()
	if err != nil {
		return nil, err
	}
	args := append([]string{"--kubeconfig", kubeconfig, "--health-probe-bind-address", "0",
		"--metrics-bind-address", "0"}, extra...)
	return w.StartWithEnv(name, env, w.BinPath("manager"), args...)
}

// managerIdentity is the kubeconfig and environment of a manager: one token of the
// manager's ServiceAccount, shared by every replica, as the Deployment's pods share it.
func (w *World) managerIdentity() (string, []string, error) {
	if !w.hasAccess() {
		return w.Kubeconfig, nil, nil
	}
	env := []string{"POD_NAMESPACE=" + ManagerServiceAccount.Namespace}
	w.mu.Lock()
	path := w.managerConfig
	w.mu.Unlock()
	if path != "" {
		return path, env, nil
	}
	path, err := w.ServiceAccountKubeconfig(context.Background(), "manager", ManagerServiceAccount, "")
	if err != nil {
		return "", nil, fmt.Errorf("a kubeconfig for the manager: %w", err)
	}
	w.mu.Lock()
	w.managerConfig = path
	w.mu.Unlock()
	return path, env, nil
}

// StartAgent starts the node agent of one locally served VM, with its own node name and
// mount root. After InstallAccess it runs as the agent's ServiceAccount with a token bound
// to a Pod on its own node (named name), so the admission policy confines it to that
// node's volumes as it would a DaemonSet pod; before, as the admin.
func (w *World) StartAgent(name string, vm SimVM, extra ...string) (*Process, error) {
	if vm.ByIDDir == "" {
		return nil, fmt.Errorf("VM %s is not served locally: no by-id directory for an agent", vm.ID)
	}
	kubeconfig := w.Kubeconfig
	if w.hasAccess() {
		var err error
		if kubeconfig, err = w.ServiceAccountKubeconfig(context.Background(), name, AgentServiceAccount, name); err != nil {
			return nil, fmt.Errorf("a kubeconfig for the agent of node %s: %w", name, err)
		}
	}
	args := append([]string{"--kubeconfig", kubeconfig, "--oma-vm-id", vm.ID, "--node-name", name,
		"--by-id-dir", vm.ByIDDir, "--mount-root", vm.MountRoot,
		"--health-probe-bind-address", "0", "--metrics-bind-address", "0"}, extra...)
	return w.Start(name, w.BinPath("node-agent"), args...)
}

// ConfigName is the name of the OsseaConfig of the i-th VM.
func ConfigName(i int) string { return fmt.Sprintf("oma-%d", i) }

// CreateConfigs creates the namespace, one credentials Secret and one OsseaConfig per VM of
// the simulator, each with room for maxDataVolumes (0: the simulator's VM limit applies).
func CreateConfigs(ctx context.Context, c client.Client, ns string, sim *Sim, apiURL string, maxDataVolumes int32) error {
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "credentials"},
		StringData: map[string]string{"apiKey": APIKey, "secretKey": SecretKey},
	}
	if err := c.Create(ctx, secret); err != nil {
		return err
	}
	for i, vm := range sim.VMs {
		cfg := &osseav1.OsseaConfig{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: ConfigName(i)},
			Spec: osseav1.OsseaConfigSpec{
				APIURL:               apiURL,
				CredentialsSecretRef: osseav1.LocalObjectReference{Name: secret.Name},
				Zone:                 ZoneName,
				OMAVirtualMachineID:  vm.ID,
			},
		}
		if maxDataVolumes > 0 {
			cfg.Spec.MaxDataVolumes = &maxDataVolumes
		}
		if err := c.Create(ctx, cfg); err != nil {
			return err
		}
	}
	return nil
}

// ConfigsReady reports whether every OsseaConfig in ns is Ready.
func ConfigsReady(ctx context.Context, c client.Client, ns string, want int) bool {
	var list osseav1.OsseaConfigList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil || len(list.Items) != want {
		return false
	}
	for _, cfg := range list.Items {
		if !IsTrue(cfg.Status.Conditions, osseav1.ConditionReady) || cfg.Status.ObservedGeneration != cfg.Generation {
			return false
		}
	}
	return true
}

// IsTrue reports whether the condition of that type is True.
func IsTrue(conds []metav1.Condition, condType string) bool {
	for _, c := range conds {
		if c.Type == condType {
			return c.Status == metav1.ConditionTrue
		}
	}
	return false
}
