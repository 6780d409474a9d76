package nodeagent

import (
	"context"
	"fmt"
	"regexp"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Where the agent learns which VM it runs on.
const (
	// VMIDEnv is the environment variable read when --oma-vm-id is not given.
	VMIDEnv = "OMA_VM_ID"
	// VMIDLabel is the Node label read when neither flag nor environment say it.
	VMIDLabel = "ossea.migratekit.io/oma-vm-id"
)

var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// ResolveVMID returns the CloudStack UUID of the VM this agent runs on, and where it came
// from: the flag, else the environment variable OMA_VM_ID, else the label
// ossea.migratekit.io/oma-vm-id of the node nodeName (read with nodes, a direct reader
// since the agent caches no Nodes). The id selects which volumes the agent touches, so a
// value that is not a UUID is an error, never a guess.
func ResolveVMID(ctx context.Context, flagValue string, getenv func(string) string, nodes client.Reader, nodeName string) (string, string, error) {
	id, source := flagValue, "flag --oma-vm-id"
	if id == "" {
		id, source = getenv(VMIDEnv), "environment variable "+VMIDEnv
	}
	if id == "" {
		if nodeName == "" || nodes == nil {
			return "", "", fmt.Errorf("the OMA VM id is unknown: set --oma-vm-id, the environment variable %s, "+
				"or the label %s on this agent's node (name it with --node-name or NODE_NAME)", VMIDEnv, VMIDLabel)
		}
		node := &corev1.Node{}
		if err := nodes.Get(ctx, client.ObjectKey{Name: nodeName}, node); err != nil {
			return "", "", fmt.Errorf("reading node %s for its label %s: %w", nodeName, VMIDLabel, err)
		}
		id, source = node.Labels[VMIDLabel], "label "+VMIDLabel+" of node "+nodeName
		if id == "" {
			return "", "", fmt.Errorf("node %s has no label %s, and neither --oma-vm-id nor %s is set: "+
				"label the node with its CloudStack VM's UUID (kubectl label node %s %s=<uuid>)", nodeName, VMIDLabel, VMIDEnv, nodeName, VMIDLabel)
		}
	}
	if !uuidPattern.MatchString(id) {
		return "", "", fmt.Errorf("the OMA VM id %q (from the %s) is not a UUID", id, source)
	}
	return id, source, nil
}
