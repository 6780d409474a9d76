package legacyconfig

import (
	"bytes"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

const (
	// SecretSuffix turns the config's name into its Secret's name.
	SecretSuffix = "-credentials"
	// MaxNameLength keeps the Secret's name a DNS label too (63 characters).
	MaxNameLength = validation.DNS1123LabelMaxLength - len(SecretSuffix)
	// DefaultName is used when neither --name nor the legacy form names the config: the
	// name the README's samples use.
	DefaultName = "ossea"
)

// Options are the command line's choices for the objects.
type Options struct {
	// Name is --name; "" means the legacy name, else DefaultName.
	Name string
	// Namespace is --namespace; "" leaves metadata.namespace out, so that `kubectl apply
	// -n` (or the context's namespace) decides.
	Namespace string
}

// Import is the result: the YAML for stdout and the notes for stderr.
type Import struct {
	YAML  []byte
	Notes []string
}

// Build validates p and renders the Secret and the OsseaConfig as two YAML documents, the
// Secret first so that the config finds it at once.
func Build(p *Parsed, o Options) (*Import, error) {
	if o.Namespace != "" && len(validation.IsDNS1123Label(o.Namespace)) > 0 {
		return nil, errorf("--namespace %s: not a DNS label (a-z, 0-9 and '-', at most 63)", p.show(o.Namespace))
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	notes := append([]string(nil), p.Notes...)
	name, note, err := p.chooseName(o.Name)
	if err != nil {
		return nil, err
	}
	if note != "" {
		notes = append(notes, note)
	}
	out, err := render(p.Config, name, o.Namespace)
	if err != nil {
		return nil, err
	}
	return &Import{YAML: out, Notes: notes}, nil
}

// chooseName picks --name, else the legacy name, else DefaultName, and makes a DNS label
// of it, saying so when it changed.
func (p *Parsed) chooseName(flag string) (name, note string, err error) {
	from, raw := "--name", flag
	if raw == "" && p.Config.Name != "" {
		from, raw = p.src.describe(fieldName), p.Config.Name
	}
	if raw == "" {
		return DefaultName, fmt.Sprintf("note: no name given; the config is named %s (choose one with --name)", DefaultName), nil
	}
	clean := SanitizeName(raw)
	switch {
	case clean == "":
		return "", "", errorf("%s %s: nothing of it can make a name (a-z, 0-9 and '-'); choose one with --name", from, p.show(raw))
	case clean != raw:
		note = fmt.Sprintf("note: %s %s is not a DNS label of at most %d characters; the config is named %q", from, p.show(raw), MaxNameLength, clean)
	}
	return clean, note, nil
}

// SanitizeName makes a DNS label of at most MaxNameLength characters out of s: lower case,
// each run of other characters one '-', no '-' at either end. "" when nothing is left.
func SanitizeName(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			b.WriteRune(r)
			dash = false
		} else {
			dash = true
		}
	}
	out := b.String()
	if len(out) > MaxNameLength {
		out = strings.TrimRight(out[:MaxNameLength], "-")
	}
	return out
}

// show quotes a name for a message, unless it holds one of the keys (a shifted line in a
// hand-edited file can put one there).
func (p *Parsed) show(s string) string {
	for _, secret := range []string{p.Config.APIKey, p.Config.SecretKey} {
		if secret != "" && strings.Contains(s, secret) {
			return "(not shown: it contains a key)"
		}
	}
	return fmt.Sprintf("%q", s)
}

type objectMeta struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
}

type secretDoc struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   objectMeta        `json:"metadata"`
	Type       string            `json:"type"`
	StringData map[string]string `json:"stringData"`
}

type configDoc struct {
	APIVersion string                  `json:"apiVersion"`
	Kind       string                  `json:"kind"`
	Metadata   objectMeta              `json:"metadata"`
	Spec       osseav1.OsseaConfigSpec `json:"spec"`
}

// render writes the two documents. Plain structs rather than the API types, whose YAML
// would carry creationTimestamp: null and an empty status.
func render(c Config, name, namespace string) ([]byte, error) {
	secret := secretDoc{
		APIVersion: "v1",
		Kind:       "Secret",
		Metadata:   objectMeta{Name: name + SecretSuffix, Namespace: namespace},
		Type:       "Opaque",
		StringData: map[string]string{"apiKey": c.APIKey, "secretKey": c.SecretKey},
	}
	config := configDoc{
		APIVersion: osseav1.GroupVersion.String(),
		Kind:       "OsseaConfig",
		Metadata:   objectMeta{Name: name, Namespace: namespace},
		Spec: osseav1.OsseaConfigSpec{
			APIURL:               c.APIURL,
			CredentialsSecretRef: osseav1.LocalObjectReference{Name: name + SecretSuffix},
			Zone:                 c.Zone,
			OMAVirtualMachineID:  c.OMAVMID,
			DiskOfferingID:       c.DiskOfferingID,
		},
	}
	var out bytes.Buffer
	for i, doc := range []any{secret, config} {
		b, err := yaml.Marshal(doc)
		if err != nil {
			return nil, fmt.Errorf("rendering the objects: %w", err)
		}
		if i > 0 {
			out.WriteString("---\n")
		}
		out.Write(b)
	}
	return out.Bytes(), nil
}
