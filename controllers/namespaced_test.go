package controllers

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudsim"
)

// config/namespaced is the least-privilege install: the manager watches one namespace and
// holds a Role there, derived from the generated ClusterRole. These tests apply it to the
// real API server and run the controllers with exactly the rights it grants.

const (
	// namespacedNS is config/namespaced's namespace (its one line to change).
	namespacedNS = "ossea-migration"
	// namespacedManagerSA is the manager's ServiceAccount there, after the ossea- prefix.
	namespacedManagerSA = "ossea-controller-manager"
)

var namespacedDir = filepath.Join("..", "config", "namespaced")

// renderNamespaced is `kubectl kustomize config/namespaced`, decoded.
func renderNamespaced(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	out, err := kubectl(t, "kustomize", namespacedDir)
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", namespacedDir, err, out)
	}
	return decodeAll(t, []byte(out))
}

func decodeAll(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return objs
			}
			t.Fatal(err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
}

func ensureNamespace(t *testing.T, name string) {
	t.Helper()
	err := k8s.Create(testCtx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// generatedManagerRules are the rules of the ClusterRole `make manifests` writes from the
// markers, config/rbac/role.yaml.
func generatedManagerRules(t *testing.T) []rbacv1.PolicyRule {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range decodeAll(t, data) {
		if u.GetKind() == "ClusterRole" && u.GetName() == "manager-role" {
			var cr rbacv1.ClusterRole
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &cr); err != nil {
				t.Fatal(err)
			}
			return cr.Rules
		}
	}
	t.Fatal("config/rbac/role.yaml has no ClusterRole manager-role")
	return nil
}

// The API server accepts config/namespaced (server-side dry run); the manager's rights in it
// are a Role with exactly the generated rules, bound in the namespace; the only
// cluster-scoped grant is the agent's Node reader; the CRDs are left to the admin.
func TestNamespacedManifestsDryRun(t *testing.T) {
	apiServer(t)
	// A dry run creates nothing, not even the Namespace the namespaced objects go into.
	ensureNamespace(t, namespacedNS)
	out, err := kubectl(t, "apply", "-k", namespacedDir, "--dry-run=server")
	if err != nil {
		t.Fatalf("kubectl apply -k config/namespaced --dry-run=server: %v\n%s", err, out)
	}
	t.Logf("kubectl apply -k config/namespaced --dry-run=server:\n%s", out)
	for _, want := range []string{
		"role.rbac.authorization.k8s.io/ossea-manager-role", "rolebinding.rbac.authorization.k8s.io/ossea-manager-rolebinding",
		"role.rbac.authorization.k8s.io/ossea-node-agent-role", "rolebinding.rbac.authorization.k8s.io/ossea-node-agent-rolebinding",
		"clusterrole.rbac.authorization.k8s.io/ossea-node-agent-node-reader",
		"deployment.apps/ossea-controller-manager", "daemonset.apps/ossea-node-agent",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the dry run does not create %s", want)
		}
	}

	var managerRole *rbacv1.Role
	for _, u := range renderNamespaced(t) {
		switch kind := u.GetKind(); {
		case kind == "CustomResourceDefinition":
			t.Errorf("config/namespaced installs the CRD %s; the admin installs CRDs once (config/crd)", u.GetName())
		case kind == "ClusterRole" && u.GetName() != "ossea-node-agent-node-reader",
			kind == "ClusterRoleBinding" && u.GetName() != "ossea-node-agent-node-reader":
			t.Errorf("config/namespaced grants cluster-wide: %s %s", kind, u.GetName())
		case kind == "Role" && u.GetName() == "ossea-manager-role":
			managerRole = &rbacv1.Role{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, managerRole); err != nil {
				t.Fatal(err)
			}
		case kind == "Deployment" || kind == "DaemonSet":
			containers, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
			if !strings.Contains(fmt.Sprint(containers), "--namespace=$(POD_NAMESPACE)") {
				t.Errorf("%s %s is not told --namespace=$(POD_NAMESPACE)", kind, u.GetName())
			}
		}
		if ns := u.GetNamespace(); ns != "" && ns != namespacedNS {
			t.Errorf("%s %s is in namespace %s, want %s", u.GetKind(), u.GetName(), ns, namespacedNS)
		}
	}
	if managerRole == nil {
		t.Fatal("config/namespaced has no Role ossea-manager-role")
	}
	if want := generatedManagerRules(t); !reflect.DeepEqual(managerRole.Rules, want) {
		t.Errorf("the manager's Role differs from the generated ClusterRole:\n got %+v\nwant %+v", managerRole.Rules, want)
	}
}

// applyNamespacedRBAC creates config/namespaced's ServiceAccounts and RBAC, and returns a
// rest.Config that acts as the manager's ServiceAccount (impersonated, as the API server
// would authenticate its token: same user name and groups).
func applyNamespacedRBAC(t *testing.T) *rest.Config {
	t.Helper()
	ensureNamespace(t, namespacedNS)
	objs := renderNamespaced(t)
	for _, kind := range []string{"ServiceAccount", "ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding"} {
		for _, u := range objs {
			if u.GetKind() != kind {
				continue
			}
			if err := k8s.Create(testCtx, u); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatalf("creating %s %s: %v", kind, u.GetName(), err)
			}
		}
	}
	sa := rest.CopyConfig(env.Config)
	sa.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + namespacedNS + ":" + namespacedManagerSA,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + namespacedNS, "system:authenticated"},
	}
	return sa
}

// The manager of config/namespaced, as its own ServiceAccount: a Secret of another
// namespace is Forbidden to it, while its controllers, on the namespaced cache and with
// leader election in the namespace, make an OsseaConfig of its namespace Ready and never
// touch one of another namespace.
func TestNamespacedManagerStaysInItsNamespace(t *testing.T) {
	apiServer(t)
	saConfig := applyNamespacedRBAC(t)
	saClient, err := client.New(saConfig, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	s := startSim(t, false, nil)

	other := newNamespace(t)
	foreign := newConfig(other, "foreign", s.url)
	for _, obj := range []client.Object{
		credentials(other, "foreign-credentials", cloudsim.DefaultAPIKey, cloudsim.DefaultSecretKey), foreign,
	} {
		if err := k8s.Create(testCtx, obj); err != nil {
			t.Fatal(err)
		}
	}

	// The Secret next door: Forbidden, by name and by listing.
	err = saClient.Get(testCtx, client.ObjectKey{Namespace: other, Name: "foreign-credentials"}, &corev1.Secret{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("the manager's ServiceAccount read a Secret of namespace %s: err = %v, want Forbidden", other, err)
	}
	t.Logf("Get of Secret %s/foreign-credentials as the manager: %v", other, err)
	err = saClient.List(testCtx, &corev1.SecretList{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("the manager's ServiceAccount listed the cluster's Secrets: err = %v, want Forbidden", err)
	}
	t.Logf("List of every namespace's Secrets as the manager: %v", err)

	own := newConfig(namespacedNS, "own-"+strings.ToLower(other[len(other)-5:]), s.url)
	ownSecret := credentials(namespacedNS, own.Name+"-credentials", cloudsim.DefaultAPIKey, cloudsim.DefaultSecretKey)
	for _, obj := range []client.Object{ownSecret, own} {
		if err := k8s.Create(testCtx, obj); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = k8s.Delete(testCtx, obj) })
	}
	// Its own namespace's Secret it may read, straight from the API server as it does.
	if err := saClient.Get(testCtx, client.ObjectKeyFromObject(ownSecret), &corev1.Secret{}); err != nil {
		t.Fatalf("the manager's ServiceAccount cannot read a Secret of its own namespace: %v", err)
	}

	leaseID := "ossea-namespaced-" + own.Name
	m := startManagerWith(t, saConfig, ctrl.Options{
		Cache:                   mustCacheOptions(t, namespacedNS, ""),
		LeaderElection:          true,
		LeaderElectionID:        leaseID,
		LeaderElectionNamespace: namespacedNS,
	})
	start := time.Now()
	waitReady(t, client.ObjectKeyFromObject(own), metav1.ConditionTrue, osseav1.ReasonConnected)
	t.Logf("the OsseaConfig %s/%s became Ready %s after the manager started", namespacedNS, own.Name, time.Since(start).Round(time.Millisecond))

	if err := k8s.Get(testCtx, client.ObjectKey{Namespace: namespacedNS, Name: leaseID}, &coordinationv1.Lease{}); err != nil {
		t.Errorf("no leader election Lease in %s: %v", namespacedNS, err)
	}

	// A revalidation period and more: the config next door is still as it was created.
	time.Sleep(2*revalidateInterval + time.Second)
	got := &osseav1.OsseaConfig{}
	if err := k8s.Get(testCtx, client.ObjectKeyFromObject(foreign), got); err != nil {
		t.Fatal(err)
	}
	if len(got.Status.Conditions) != 0 || got.Status.ObservedGeneration != foreign.Status.ObservedGeneration ||
		len(got.Finalizers) != 0 || got.ResourceVersion != foreign.ResourceVersion {
		t.Errorf("the OsseaConfig of namespace %s was touched: finalizers %v, status %+v", other, got.Finalizers, got.Status)
	}
	if logs := m.logs.String(); strings.Contains(strings.ToLower(logs), "forbidden") {
		t.Errorf("the manager met a Forbidden in its own namespace:\n%s", logs)
	}
}
