package nodeagent

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/ownership"
	"github.com/migratekit/ossea-operator/internal/testkit"
	testworld "github.com/migratekit/ossea-operator/test/world"
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
		"validatingadmissionpolicy.admissionregistration.k8s.io/node-agent-confinement",
		"validatingadmissionpolicybinding.admissionregistration.k8s.io/node-agent-confinement",
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
// of config/agent, with only the rights its ClusterRole grants and under its admission
// policy, with a token bound to a Pod on its node as a DaemonSet pod's; and it may not
// read Secrets or touch OsseaConfigs.
func TestAgentWorksWithItsOwnRBAC(t *testing.T) {
	requireRoot(t)
	apiServer(t)
	installAgentConfig(t)
	w := newWorld(t)

	// The Node label is how a DaemonSet pod learns its VM: readable with the granted get.
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: w.nodeName, Labels: map[string]string{VMIDLabel: w.vmID}}}
	if err := k8s.Create(testCtx, node); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(testCtx, node) })
	sa := agentConfigOn(t, w.nodeName)
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

// The admission policy of config/agent confines each agent to its own node's volumes. Two
// agents, of nodes A and B, each with a token bound to a Pod on its node (TokenRequest, no
// impersonation: the API server itself puts the node in the token), write as the agent
// does (server-side apply of its status part, and of its finalizer with its claim label,
// package ownership): each may claim an unclaimed volume for its own node and change its
// own node's volumes, and is refused, with a message naming both nodes, on the other's,
// whether the other claimed it by the label or, as agents before the label did, by
// status.nodeName; a token of the agent's account that is bound to no pod is refused
// everything; the manager (here the admin) is not affected.
func TestAgentConfinedToItsNode(t *testing.T) {
	apiServer(t)
	installAgentConfig(t)
	w := newAPIWorld(t)
	nodeA, nodeB := w.nodeName+"-a", w.nodeName+"-b"
	agentA := confinedClient(t, agentConfigOn(t, nodeA))
	agentB := confinedClient(t, agentConfigOn(t, nodeB))
	unbound, err := testworld.ServiceAccountToken(testCtx, k8s, agentSA, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	agentU := confinedClient(t, testworld.BearerConfig(env.Config, unbound))

	// The API server says which node each token is of, under the key the policy reads.
	for c, want := range map[client.Client]string{agentA: nodeA, agentB: nodeB, agentU: ""} {
		review := &authenticationv1.SelfSubjectReview{}
		if err := c.Create(testCtx, review); err != nil {
			t.Fatal(err)
		}
		got := strings.Join(review.Status.UserInfo.Extra[nodeNameExtra], ",")
		t.Logf("%s: %s=%q", review.Status.UserInfo.Username, nodeNameExtra, got)
		if got != want {
			t.Errorf("the token's %s is %q, want %q", nodeNameExtra, got, want)
		}
	}

	ofB := w.claimedVolume("of-b", nodeB)
	// The policy takes effect once the API server's informers have it: wait for it to
	// refuse a dry run (which changes nothing if it is let through), then check everything
	// against a policy in force.
	testkit.Eventually(t, 30*time.Second, func() string {
		patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"`+osseav1.NodeLabel+`":"`+nodeA+`"}}}`))
		if err := agentA.Patch(testCtx, ofB.DeepCopy(), patch, client.DryRunAll); err == nil {
			return "the policy does not refuse the agent of node A yet"
		}
		return ""
	})
	msg := refusal(t, applyAgentStatus(agentA, ofB.DeepCopy(), nodeA))
	t.Logf("agent A, status of a volume of node B: %s", msg)
	for _, want := range []string{"node " + nodeA, "held by node " + nodeB + " (label " + osseav1.NodeLabel + ")", w.ns + "/of-b",
		"kubectl label migrationvolume -n " + w.ns + " of-b " + osseav1.NodeLabel + "-", "kubectl patch"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the refusal does not say %q: %s", want, msg)
		}
	}
	msg = refusal(t, ownership.ApplyMetadata(testCtx, agentA, ofB.DeepCopy(), claimOf(nodeA, true), osseav1.AgentFieldOwner))
	t.Logf("agent A, claiming a volume of node B: %s", msg)
	if !strings.Contains(msg, "held by node "+nodeB) {
		t.Errorf("the refusal does not name node B: %s", msg)
	}
	refusal(t, ownership.ApplyMetadata(testCtx, agentA, ofB.DeepCopy(), ownership.Metadata{Finalizer: osseav1.MountFinalizer, Hold: true}, osseav1.AgentFieldOwner))
	if got := w.get(ofB); got.Labels[osseav1.NodeLabel] != nodeB || len(got.Finalizers) != 0 {
		t.Errorf("the refused writes changed the volume: labels %v, finalizers %v", got.Labels, got.Finalizers)
	}

	// Node B's agent holds and reports its own volume; A's agent may not let go of it.
	if err := ownership.ApplyMetadata(testCtx, agentB, ofB, claimOf(nodeB, true), osseav1.AgentFieldOwner); err != nil {
		t.Fatalf("the agent of node B holding its own volume: %v", err)
	}
	if err := applyAgentStatus(agentB, ofB, nodeB); err != nil {
		t.Fatalf("the agent of node B reporting its own volume: %v", err)
	}
	msg = refusal(t, ownership.ApplyMetadata(testCtx, agentA, ofB.DeepCopy(), claimOf(nodeA, false), osseav1.AgentFieldOwner))
	t.Logf("agent A, releasing a volume of node B: %s", msg)

	// A volume an agent older than the label claimed (status.nodeName) is that node's too.
	olderB := w.claimedByOlderAgent("older-of-b", nodeB)
	msg = refusal(t, ownership.ApplyMetadata(testCtx, agentA, olderB.DeepCopy(), claimOf(nodeA, true), osseav1.AgentFieldOwner))
	t.Logf("agent A, claiming a volume an older agent of node B claimed: %s", msg)
	if !strings.Contains(msg, "held by node "+nodeB+" (status.nodeName)") {
		t.Errorf("the refusal does not name node B's claim in status.nodeName: %s", msg)
	}
	refusal(t, applyAgentStatus(agentA, olderB.DeepCopy(), nodeA))
	if err := ownership.ApplyMetadata(testCtx, agentB, olderB, claimOf(nodeB, true), osseav1.AgentFieldOwner); err != nil {
		t.Fatalf("the agent of node B holding a volume its older agent claimed: %v", err)
	}

	// An unclaimed volume: A's agent may claim it for node A, not for node B.
	free := w.claimedVolume("unclaimed", "")
	msg = refusal(t, ownership.ApplyMetadata(testCtx, agentA, free.DeepCopy(), claimOf(nodeB, true), osseav1.AgentFieldOwner))
	t.Logf("agent A, setting the claim label to node B: %s", msg)
	if !strings.Contains(msg, "label "+osseav1.NodeLabel) || !strings.Contains(msg, "to "+nodeB) || !strings.Contains(msg, "its own node only") {
		t.Errorf("the refusal does not say the agent may claim for its own node only: %s", msg)
	}
	msg = refusal(t, applyAgentStatus(agentA, free.DeepCopy(), nodeB))
	t.Logf("agent A, setting status.nodeName to node B: %s", msg)
	if !strings.Contains(msg, "status.nodeName") || !strings.Contains(msg, "to "+nodeB) || !strings.Contains(msg, "its own node only") {
		t.Errorf("the refusal does not say the agent may claim for its own node only: %s", msg)
	}

	// Its own volume, through the whole life the agent gives it: claim and hold in one
	// write, report, and on delete let go (the last finalizer: the object goes).
	if err := ownership.ApplyMetadata(testCtx, agentA, free, claimOf(nodeA, true), osseav1.AgentFieldOwner); err != nil {
		t.Fatalf("the agent of node A claiming an unclaimed volume: %v", err)
	}
	if got := w.get(free).Labels[osseav1.NodeLabel]; got != nodeA {
		t.Errorf("after the claim the label is %q, want %q", got, nodeA)
	}
	if err := applyAgentStatus(agentA, free, nodeA); err != nil {
		t.Fatalf("the agent of node A reporting its own volume: %v", err)
	}
	msg = refusal(t, applyAgentStatus(agentU, free.DeepCopy(), nodeA))
	t.Logf("the agent's account without a pod-bound token: %s", msg)
	if !strings.Contains(msg, "bound to a Pod on a Node") {
		t.Errorf("the refusal of an unbound token does not say what is missing: %s", msg)
	}
	msg = refusal(t, applyAgentStatus(agentB, free.DeepCopy(), nodeB))
	t.Logf("agent B, status of a volume of node A: %s", msg)
	refusal(t, ownership.ApplyMetadata(testCtx, agentB, free.DeepCopy(), claimOf(nodeB, true), osseav1.AgentFieldOwner))
	if err := k8s.Delete(testCtx, free); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Get(testCtx, client.ObjectKeyFromObject(free), free); err != nil {
		t.Fatal(err)
	}
	if err := ownership.ApplyMetadata(testCtx, agentA, free, claimOf(nodeA, false), osseav1.AgentFieldOwner); err != nil {
		t.Fatalf("the agent of node A releasing its own deleted volume: %v", err)
	}
	w.waitGone(free, 10*time.Second)

	// What the refusal tells an administrator to do when a volume really moved lets the
	// new node's agent claim it; the label alone is not enough while status.nodeName still
	// names the old node.
	moved := w.claimedVolume("moved", nodeB)
	w.updateStatus(moved, func(st *osseav1.MigrationVolumeStatus) { st.NodeName = nodeB })
	kubectl(t, "label", "migrationvolume", "-n", w.ns, "moved", osseav1.NodeLabel+"-")
	msg = refusal(t, ownership.ApplyMetadata(testCtx, agentA, w.get(moved), claimOf(nodeA, true), osseav1.AgentFieldOwner))
	if !strings.Contains(msg, "held by node "+nodeB+" (status.nodeName)") {
		t.Errorf("with status.nodeName left, the refusal does not name it: %s", msg)
	}
	kubectl(t, "patch", "migrationvolume", "-n", w.ns, "moved", "--subresource=status", "--type=merge", "-p", `{"status":{"nodeName":null}}`)
	moved = w.get(moved)
	if err := ownership.ApplyMetadata(testCtx, agentA, moved, claimOf(nodeA, true), osseav1.AgentFieldOwner); err != nil {
		t.Fatalf("the agent of node A claiming a volume whose claim was cleared: %v", err)
	}
	if err := applyAgentStatus(agentA, moved, nodeA); err != nil {
		t.Fatalf("the agent of node A reporting a volume whose claim was cleared: %v", err)
	}

	// The manager is not confined: it still writes a volume of node B.
	w.updateStatus(ofB, func(st *osseav1.MigrationVolumeStatus) { st.CloudStackState = "Ready" })
}

// claimOf is the agent's metadata for node: its finalizer and claim label when it holds
// the volume, neither when it lets go.
func claimOf(node string, hold bool) ownership.Metadata {
	m := ownership.Metadata{Finalizer: osseav1.MountFinalizer, Hold: hold}
	if hold {
		m.Labels = map[string]string{osseav1.NodeLabel: node}
	}
	return m
}

// nodeNameExtra is where the API server puts the node of a pod-bound ServiceAccount token
// in the user info.
const nodeNameExtra = "authentication.kubernetes.io/node-name"

func confinedClient(t *testing.T, cfg *rest.Config) client.Client {
	t.Helper()
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// claimedVolume creates a volume (as the manager would: attached) whose claim label is
// node, or that is unclaimed.
func (w *world) claimedVolume(name, node string) *osseav1.MigrationVolume {
	w.t.Helper()
	mv := w.newVolume(name, "job-confine", name, 1)
	w.attach(mv, uuid.NewString())
	if node != "" {
		base := mv.DeepCopy()
		mv.Labels = map[string]string{osseav1.NodeLabel: node}
		if err := k8s.Patch(testCtx, mv, client.MergeFrom(base)); err != nil {
			w.t.Fatal(err)
		}
	}
	return w.get(mv)
}

// claimedByOlderAgent creates a volume (attached) claimed for node as agents before the
// claim label did: by status.nodeName.
func (w *world) claimedByOlderAgent(name, node string) *osseav1.MigrationVolume {
	w.t.Helper()
	mv := w.newVolume(name, "job-confine", name, 1)
	w.attach(mv, uuid.NewString())
	w.updateStatus(mv, func(st *osseav1.MigrationVolumeStatus) { st.NodeName = node })
	return w.get(mv)
}

// applyAgentStatus writes the agent's part of mv's status as the agent does, claiming it
// for node.
func applyAgentStatus(c client.Client, mv *osseav1.MigrationVolume, node string) error {
	st := mv.Status.DeepCopy()
	rep := &report{status: metav1.ConditionFalse, reason: osseav1.ReasonDeviceNotFound, message: "waiting for the disk", nodeName: &node}
	rep.apply(st, mv.Generation)
	return ownership.ApplyStatus(testCtx, c, mv, st.AgentPart(), osseav1.AgentFieldOwner)
}

// refusal is the API server's message for a request the admission policy refused; any
// other outcome fails the test.
func refusal(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		t.Fatal("the request was allowed; the admission policy should have refused it")
	}
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "ValidatingAdmissionPolicy") {
		t.Fatalf("want a refusal by the admission policy, got: %v", err)
	}
	return err.Error()
}

// agentSA is config/agent's ServiceAccount, before an overlay renames it.
var agentSA = types.NamespacedName{Namespace: agentNamespace, Name: "node-agent"}

// installAgentConfig applies what config/agent renders but the DaemonSet: the agent's
// ServiceAccount, its RBAC and its admission policy.
func installAgentConfig(t *testing.T) {
	t.Helper()
	ensureNamespace(t, agentNamespace)
	objs, err := testworld.Render(filepath.Join(env.BinaryDir, "kubectl"), filepath.Join("..", "..", "config", "agent"))
	if err != nil {
		t.Fatal(err)
	}
	if err := testworld.ApplyObjects(testCtx, k8s, testworld.Without(objs, testworld.Workloads...)); err != nil {
		t.Fatal(err)
	}
}

// agentConfigOn is a client config of the agent's ServiceAccount with a token bound to a
// Pod on node, as the agent of a DaemonSet pod there has: no impersonation, the API server
// authenticates the token and learns the node from it.
func agentConfigOn(t *testing.T, node string) *rest.Config {
	t.Helper()
	token, err := testworld.PodBoundToken(testCtx, k8s, agentSA, node, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return testworld.BearerConfig(env.Config, token)
}
