package nodeagent

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

// config/agent is what a cluster gets. These tests apply it to the real API server and run
// the agent with exactly the rights it grants.

const agentNamespace = "system" // the kubebuilder placeholder config/default renames

func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.Kubeconfig(), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(env.BinaryDir, "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func ensureNamespace(t *testing.T, name string) {
	t.Helper()
	err := k8s.Create(testCtx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// The API server accepts every object of config/agent (server-side dry run: schema,
// defaults and admission), and the DaemonSet has what the agent needs.
func TestAgentManifestsDryRun(t *testing.T) {
	apiServer(t)
	ensureNamespace(t, agentNamespace)
	out := kubectl(t, "apply", "--dry-run=server", "-k", filepath.Join("..", "..", "config", "agent"))
	for _, want := range []string{
		"serviceaccount/node-agent", "clusterrole.rbac.authorization.k8s.io/node-agent-role",
		"clusterrolebinding.rbac.authorization.k8s.io/node-agent-rolebinding", "daemonset.apps/node-agent",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the dry run does not create %s:\n%s", want, out)
		}
	}
	rendered := kubectl(t, "kustomize", filepath.Join("..", "..", "config", "agent"))
	for _, want := range []string{
		"privileged: true", "mountPropagation: Bidirectional", "path: /dev\n", "path: /mnt/migration",
		"ossea.migratekit.io/oma-node: \"true\"", "fieldPath: spec.nodeName", "name: OMA_VM_ID", "optional: true",
	} {
		if !strings.Contains(rendered, want) {
			t.Errorf("config/agent lacks %q", want)
		}
	}
	if strings.Contains(strings.ToLower(rendered), "secrets") {
		t.Error("config/agent mentions secrets; the agent must have no access to them")
	}
}

// The agent does its whole job (claim, mount, report, event, release) as the ServiceAccount
// of config/agent, with only the rights its ClusterRole grants; and it may not read
// Secrets or touch OsseaConfigs.
func TestAgentWorksWithItsOwnRBAC(t *testing.T) {
	requireRoot(t)
	apiServer(t)
	ensureNamespace(t, agentNamespace)
	applyRendered(t, kubectl(t, "kustomize", filepath.Join("..", "..", "config", "agent")), "ClusterRole", "ClusterRoleBinding", "ServiceAccount")

	sa := rest.CopyConfig(env.Config)
	sa.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + agentNamespace + ":node-agent",
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + agentNamespace, "system:authenticated"},
	}
	saClient, err := client.New(sa, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	can := func(attr authorizationv1.ResourceAttributes) bool {
		t.Helper()
		review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &attr}}
		if err := saClient.Create(testCtx, review); err != nil {
			t.Fatal(err)
		}
		return review.Status.Allowed
	}
	for _, attr := range []authorizationv1.ResourceAttributes{
		{Verb: "watch", Group: "ossea.migratekit.io", Resource: "migrationvolumes"},
		{Verb: "patch", Group: "ossea.migratekit.io", Resource: "migrationvolumes", Subresource: "status", Namespace: "default"},
		{Verb: "get", Resource: "nodes", Name: "any"},
	} {
		if !can(attr) {
			t.Errorf("the agent may not %s %s/%s %s", attr.Verb, attr.Group, attr.Resource, attr.Subresource)
		}
	}
	for _, attr := range []authorizationv1.ResourceAttributes{
		{Verb: "get", Resource: "secrets", Namespace: "default"},
		{Verb: "list", Resource: "secrets"},
		{Verb: "get", Group: "ossea.migratekit.io", Resource: "osseaconfigs", Namespace: "default"},
		{Verb: "delete", Group: "ossea.migratekit.io", Resource: "migrationvolumes", Namespace: "default"},
		{Verb: "create", Group: "ossea.migratekit.io", Resource: "migrationvolumes", Namespace: "default"},
		{Verb: "list", Resource: "nodes"},
		{Verb: "patch", Resource: "nodes"},
	} {
		if can(attr) {
			t.Errorf("the agent may %s %s/%s; it must not", attr.Verb, attr.Group, attr.Resource)
		}
	}

	// The Node label is how a DaemonSet pod learns its VM: readable with the granted get.
	w := newWorld(t)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: w.nodeName, Labels: map[string]string{VMIDLabel: w.vmID}}}
	if err := k8s.Create(testCtx, node); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(testCtx, node) })
	id, _, err := ResolveVMID(testCtx, "", func(string) string { return "" }, saClient, w.nodeName)
	if err != nil || id != w.vmID {
		t.Fatalf("ResolveVMID as the agent = %q, %v; want %q", id, err, w.vmID)
	}

	w.startAgentAs(sa)
	volID := uuid.NewString()
	dev := w.loopDevice(1 << 30)
	w.link(volID, dev)
	mv := w.newVolume("rbac", "job-rbac", "disk-0", 1)
	w.attach(mv, volID)
	w.waitMounted(mv, metav1.ConditionTrue, osseav1.ReasonMounted, 30*time.Second)
	w.waitEvent(mv, corev1.EventTypeNormal, osseav1.ReasonMounted)
	w.deleteAndWaitGone(mv, 20*time.Second)
}

// applyRendered creates the objects of the given kinds from a multi-document YAML, in the
// order the kinds are given.
func applyRendered(t *testing.T, rendered string, kinds ...string) {
	t.Helper()
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader([]byte(rendered)), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatal(err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
	for _, kind := range kinds {
		for _, u := range objs {
			if u.GetKind() != kind {
				continue
			}
			if err := k8s.Create(testCtx, u); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatalf("creating %s %s: %v", kind, u.GetName(), err)
			}
		}
	}
}
