package nodeagent

import (
	"strings"
	"testing"

	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/controller"
)

func TestResolveVMIDOrder(t *testing.T) {
	apiServer(t)
	flagID, envID, labelID := uuid.NewString(), uuid.NewString(), uuid.NewString()
	nodeName := "oma-" + uuid.NewString()[:8]
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName, Labels: map[string]string{VMIDLabel: labelID}}}
	if err := k8s.Create(testCtx, node); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(testCtx, node) })
	unlabelled := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName + "-bare"}}
	if err := k8s.Create(testCtx, unlabelled); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(testCtx, unlabelled) })

	env := func(v string) func(string) string {
		return func(k string) string {
			if k == VMIDEnv {
				return v
			}
			return ""
		}
	}
	for _, c := range []struct {
		name, flag, env, node string
		want, wantErr         string
	}{
		{name: "flag wins", flag: flagID, env: envID, node: nodeName, want: flagID},
		{name: "then the environment", env: envID, node: nodeName, want: envID},
		{name: "then the node label", node: nodeName, want: labelID},
		{name: "no label", node: nodeName + "-bare", wantErr: "has no label " + VMIDLabel},
		{name: "no node", node: nodeName + "-missing", wantErr: "reading node"},
		{name: "nothing at all", wantErr: "the OMA VM id is unknown"},
		{name: "not a UUID", flag: "i-123 OR 1=1", wantErr: "is not a UUID"},
		{name: "selector injection", env: flagID + ",status.phase=Mounted", wantErr: "is not a UUID"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, source, err := ResolveVMID(testCtx, c.flag, env(c.env), k8s, c.node)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("ResolveVMID = %q, %v; want an error containing %q", got, err, c.wantErr)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("ResolveVMID = %q (%s), %v; want %q", got, source, err, c.want)
			}
		})
	}
}

// An agent whose node name cannot be its claim label's value (over 63 characters, as a
// node name may be) would never claim, so never mount: it refuses to start, saying why.
func TestAgentNeedsANodeNameThatIsALabelValue(t *testing.T) {
	for _, name := range []string{"", strings.Repeat("n", 64)} {
		err := (&Reconciler{VMID: "vm", NodeName: name}).SetupWithManager(nil, controller.Options{})
		if err == nil || !strings.Contains(err.Error(), "node name") {
			t.Errorf("node name %q: SetupWithManager = %v; want a refusal naming the node name", name, err)
		}
	}
}
