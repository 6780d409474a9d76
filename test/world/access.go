package world

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

// The processes a user deploys run as their own ServiceAccounts, with the RBAC and the
// admission policy config/ ships, not as a cluster admin: that is the only way a missing
// verb, or a policy that refuses a legitimate write, fails a test instead of a first
// install. This file installs what config/ renders and gives each process a token of its
// account, a node agent's bound to a Pod on its own node, as a DaemonSet pod's would be.

// The names config/default gives the operator's accounts (its namePrefix and namespace).
var (
	OperatorNamespace     = "ossea-system"
	AgentServiceAccount   = types.NamespacedName{Namespace: OperatorNamespace, Name: "ossea-node-agent"}
	ManagerServiceAccount = types.NamespacedName{Namespace: OperatorNamespace, Name: "ossea-controller-manager"}
)

// TokenLifetime is how long the tokens the world hands out are valid: longer than the
// longest run (a bench or chaos run), since nothing renews them.
const TokenLifetime = 2 * time.Hour

// fieldOwner is the field manager of what the harness applies.
const fieldOwner = "ossea-tests"

// Render runs `kubectl kustomize dir` and decodes the objects, in the order rendered.
func Render(kubectl, dir string) ([]*unstructured.Unstructured, error) {
	out, err := exec.Command(kubectl, "kustomize", dir).Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return nil, fmt.Errorf("kubectl kustomize %s: %w\n%s", dir, err, exit.Stderr)
		}
		return nil, fmt.Errorf("kubectl kustomize %s: %w", dir, err)
	}
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, fmt.Errorf("decoding what kubectl kustomize %s rendered: %w", dir, err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
}

// Workloads are the kinds of config/ that run something: the harness runs those processes
// itself, and nothing in its API server would run them. CRDs are installed on their own.
var Workloads = []string{"Deployment", "DaemonSet", "CustomResourceDefinition"}

// Without returns the objects that are not of the given kinds.
func Without(objs []*unstructured.Unstructured, kinds ...string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, u := range objs {
		if !slices.Contains(kinds, u.GetKind()) {
			out = append(out, u)
		}
	}
	return out
}

// ApplyObjects applies the objects server-side, Namespaces first so that what goes into
// them finds them. A cluster-scoped object loses the namespace kustomize gave it: kustomize
// does not know every cluster-scoped kind (ValidatingAdmissionPolicy, for one).
func ApplyObjects(ctx context.Context, c client.Client, objs []*unstructured.Unstructured) error {
	ordered := slices.Clone(objs)
	slices.SortStableFunc(ordered, func(a, b *unstructured.Unstructured) int {
		return rank(a) - rank(b)
	})
	for _, u := range ordered {
		u = u.DeepCopy()
		namespaced, err := c.IsObjectNamespaced(u)
		if err != nil {
			return fmt.Errorf("is %s %s namespaced: %w", u.GetKind(), u.GetName(), err)
		}
		if !namespaced {
			u.SetNamespace("")
		}
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(fieldOwner), client.ForceOwnership); err != nil {
			return fmt.Errorf("applying %s %s: %w", u.GetKind(), u.GetName(), err)
		}
	}
	return nil
}

func rank(u *unstructured.Unstructured) int {
	if u.GetKind() == "Namespace" {
		return 0
	}
	return 1
}

// PodBoundToken returns a token of the ServiceAccount sa bound to a Pod on node, valid for
// ttl: what the kubelet gives a DaemonSet pod. The Node and the Pod (named after both, in
// sa's namespace) are created if missing; the Pod never runs (there is no kubelet), it only
// has to exist for as long as the token is used, since the API server checks it on every
// request. The API server writes the node's name into the token, and hands it back as the
// user's extra authentication.kubernetes.io/node-name, which the agent's admission policy
// confines it by.
func PodBoundToken(ctx context.Context, c client.Client, sa types.NamespacedName, node string, ttl time.Duration) (string, error) {
	if err := createIfMissing(ctx, c, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}); err != nil {
		return "", fmt.Errorf("creating node %s: %w", node, err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: sa.Namespace, Name: sa.Name + "-" + node},
		Spec: corev1.PodSpec{
			NodeName:                     node,
			ServiceAccountName:           sa.Name,
			AutomountServiceAccountToken: ptr.To(false),
			Containers:                   []corev1.Container{{Name: "agent", Image: "ossea-operator/node-agent:latest"}},
		},
	}
	if err := createIfMissing(ctx, c, pod); err != nil {
		return "", fmt.Errorf("creating pod %s/%s on node %s: %w", pod.Namespace, pod.Name, node, err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(pod), pod); err != nil {
		return "", fmt.Errorf("reading pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return requestToken(ctx, c, sa, ttl, &authenticationv1.BoundObjectReference{
		Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID,
	})
}

// ServiceAccountToken returns a token of sa bound to nothing (as `kubectl create token`
// makes), valid for ttl.
func ServiceAccountToken(ctx context.Context, c client.Client, sa types.NamespacedName, ttl time.Duration) (string, error) {
	return requestToken(ctx, c, sa, ttl, nil)
}

func requestToken(ctx context.Context, c client.Client, sa types.NamespacedName, ttl time.Duration, bound *authenticationv1.BoundObjectReference) (string, error) {
	account := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: sa.Namespace, Name: sa.Name}}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: ptr.To(int64(ttl / time.Second)),
		BoundObjectRef:    bound,
	}}
	if err := c.SubResource("token").Create(ctx, account, req); err != nil {
		return "", fmt.Errorf("requesting a token of %s: %w", sa, err)
	}
	return req.Status.Token, nil
}

func createIfMissing(ctx context.Context, c client.Client, obj client.Object) error {
	if err := c.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// BearerConfig is admin's server and CA with token as the only credential: no client
// certificate and no impersonation, so the API server authenticates the token alone.
func BearerConfig(admin *rest.Config, token string) *rest.Config {
	cfg := rest.AnonymousClientConfig(admin)
	cfg.BearerToken = token
	return cfg
}

// InstallAccess applies what config/default renders but the workloads: the operator's
// namespace, ServiceAccounts, RBAC (the manager's ClusterRole as its markers generate it)
// and the agent's admission policy, as `kubectl apply -k config/default` would. From then
// on StartManager and StartAgent run their processes as those ServiceAccounts.
func (w *World) InstallAccess(ctx context.Context) error {
	objs, err := Render(filepath.Join(w.Assets, "kubectl"), filepath.Join(w.Root, "config", "default"))
	if err != nil {
		return err
	}
	c, err := w.Client()
	if err != nil {
		return err
	}
	if err := ApplyObjects(ctx, c, Without(objs, Workloads...)); err != nil {
		return fmt.Errorf("installing config/default's accounts, RBAC and policy: %w", err)
	}
	cfg, err := w.RESTConfig()
	if err != nil {
		return err
	}
	if err := WaitConfinement(ctx, c, cfg, AgentServiceAccount, OperatorNamespace, 30*time.Second); err != nil {
		return err
	}
	w.mu.Lock()
	w.accessInstalled = true
	w.mu.Unlock()
	return nil
}

func (w *World) hasAccess() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.accessInstalled
}

// ServiceAccountKubeconfig writes a kubeconfig for this world's API server whose only
// credential is a token of sa, valid for TokenLifetime: bound to a Pod on node if node is
// set (see PodBoundToken), bound to nothing if not. It returns the file's path, in the
// world's directory.
func (w *World) ServiceAccountKubeconfig(ctx context.Context, name string, sa types.NamespacedName, node string) (string, error) {
	c, err := w.Client()
	if err != nil {
		return "", err
	}
	var token string
	if node != "" {
		token, err = PodBoundToken(ctx, c, sa, node, TokenLifetime)
	} else {
		token, err = ServiceAccountToken(ctx, c, sa, TokenLifetime)
	}
	if err != nil {
		return "", err
	}
	admin, err := clientcmd.LoadFromFile(w.Kubeconfig)
	if err != nil {
		return "", fmt.Errorf("reading the admin kubeconfig: %w", err)
	}
	current := admin.Contexts[admin.CurrentContext]
	if current == nil || admin.Clusters[current.Cluster] == nil {
		return "", fmt.Errorf("the admin kubeconfig %s names no current cluster", w.Kubeconfig)
	}
	cluster := admin.Clusters[current.Cluster]
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = cluster
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name, Namespace: sa.Namespace}
	cfg.CurrentContext = name
	path := filepath.Join(w.Dir, name+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	return path, os.Chmod(path, 0o600)
}

// WaitConfinement waits until the agent's admission policy is in force: the API server
// loads a new policy asynchronously, and a test that starts agents before then would pass
// without ever being confined. It creates a throwaway MigrationVolume in ns claimed by
// another node (the claim label), and has a pod-bound agent token of a node of its own try
// a dry-run claim of it (the label, as the agent claims) until the policy refuses it.
func WaitConfinement(ctx context.Context, admin client.Client, adminConfig *rest.Config, sa types.NamespacedName, ns string, timeout time.Duration) error {
	token, err := PodBoundToken(ctx, admin, sa, "confinement-probe", 10*time.Minute)
	if err != nil {
		return err
	}
	agent, err := client.New(BearerConfig(adminConfig, token), client.Options{Scheme: admin.Scheme()})
	if err != nil {
		return err
	}
	mv := &osseav1.MigrationVolume{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "confinement-probe-",
			Labels: map[string]string{osseav1.NodeLabel: "another-node"}},
		Spec: osseav1.MigrationVolumeSpec{OsseaConfigRef: osseav1.LocalObjectReference{Name: "none"},
			JobID: "probe", VMName: "probe", DiskName: "probe", SizeGiB: 1},
	}
	if err := admin.Create(ctx, mv); err != nil {
		return fmt.Errorf("creating the probe volume: %w", err)
	}
	defer func() { _ = admin.Delete(context.Background(), mv) }()
	claim := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"`+osseav1.NodeLabel+`":"confinement-probe"}}}`))
	var last error
	err = WaitUntil(timeout, func() bool {
		last = agent.Patch(ctx, mv.DeepCopy(), claim, client.DryRunAll)
		return apierrors.IsForbidden(last) && strings.Contains(last.Error(), "held by node another-node")
	})
	if err != nil {
		return fmt.Errorf("the agent's admission policy is not in force (a cross-node claim got %v): %w", last, err)
	}
	return nil
}
