package plugin

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// Distinctive credentials, so that a leak into stderr is found by a substring search.
const (
	apiKey    = "APIKEY-LEAKCHECK-7c3e1d"
	secretKey = "SECRETKEY-LEAKCHECK-0b9f44"
	omaVMID   = "9c1e4b7d-2a6f-4d3c-8e5b-000000000001"
	offering  = "6e2a1b3c-4d5e-4f60-8a1b-000000000002"
	apiURL    = "https://cloud.example.com/client/api"
)

// goodEnv is a complete legacy environment, with unrelated variables around it.
func goodEnv() []string {
	return []string{
		"PATH=/usr/bin", "HOME=/root",
		"OSSEA_API_URL=" + apiURL,
		"OSSEA_API_KEY=" + apiKey,
		"OSSEA_SECRET_KEY=" + secretKey,
		"OSSEA_ZONE=zone1",
		"OSSEA_OMA_VM_ID=" + omaVMID,
	}
}

// envWith is goodEnv with name set to value, or removed when value is nil.
func envWith(name string, value *string) []string {
	var out []string
	for _, kv := range goodEnv() {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	if value != nil {
		out = append(out, name+"="+*value)
	}
	return out
}

func strp(s string) *string { return &s }

const goodYAML = `name: production-ossea
api_url: "` + apiURL + `"
api_key: "` + apiKey + `"
secret_key: "` + secretKey + `"
domain: ROOT
zone: zone1
oma_vm_id: "` + omaVMID + `"
disk_offering_id: "` + offering + `"
`

// goodJSON is the body of the OMA API's documentation ("configuration").
const goodJSON = `{
  "action": "create",
  "configuration": {
    "name": "production-ossea",
    "api_url": "` + apiURL + `",
    "api_key": "` + apiKey + `",
    "secret_key": "` + secretKey + `",
    "domain": "/",
    "zone": "zone1",
    "oma_vm_id": "` + omaVMID + `"
  }
}`

// yamlWithout is goodYAML without the lines starting with any of prefixes, plus extra.
func yamlWithout(extra string, prefixes ...string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(goodYAML, "\n") {
		keep := true
		for _, p := range prefixes {
			if strings.HasPrefix(line, p) {
				keep = false
			}
		}
		if keep {
			b.WriteString(line)
		}
	}
	return b.String() + extra
}

// flatJSON is a complete configuration's keys, without braces.
const flatJSON = `"name":"production-ossea","api_url":"` + apiURL + `","api_key":"` + apiKey + `","secret_key":"` + secretKey + `","zone":"zone1","oma_vm_id":"` + omaVMID + `"`

// jsonBody is an OMA API body with the given action and the configuration key.
func jsonBody(action, key, config string) string {
	if config == "" {
		config = flatJSON
	}
	return fmt.Sprintf(`{"action":%q,%q:{%s}}`, action, key, config)
}

type runResult struct {
	code           int
	stdout, stderr string
}

// run runs the plugin in-process with env as its environment and files as the only
// readable files.
func run(t *testing.T, env []string, files map[string]string, args ...string) runResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), args, IO{
		Stdout:  &stdout,
		Stderr:  &stderr,
		Environ: env,
		ReadFile: func(path string) ([]byte, error) {
			if data, ok := files[path]; ok {
				return []byte(data), nil
			}
			return nil, &os.PathError{Op: "open", Path: path, Err: os.ErrNotExist}
		},
	})
	return runResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// TestImportBadInput: every bad input gets exactly one line on stderr naming the field and
// its source, a non-zero exit code, nothing on stdout, and never a key or secret key.
func TestImportBadInput(t *testing.T) {
	cases := []struct {
		name  string
		env   []string
		files map[string]string
		args  []string
		want  string // the one line on stderr, without its newline
	}{
		{"neither source", goodEnv(), nil, []string{"import"},
			"error: import: give exactly one of --from-env and --from-file"},
		{"both sources", goodEnv(), map[string]string{"c.yaml": goodYAML}, []string{"import", "--from-env", "--from-file", "c.yaml"},
			"error: import: give exactly one of --from-env and --from-file"},
		{"env: key missing", envWith("OSSEA_API_KEY", nil), nil, []string{"import", "--from-env"},
			"error: environment variable OSSEA_API_KEY is not set"},
		{"env: secret empty", envWith("OSSEA_SECRET_KEY", strp("  ")), nil, []string{"import", "--from-env"},
			"error: environment variable OSSEA_SECRET_KEY is empty"},
		{"env: zone missing", envWith("OSSEA_ZONE", nil), nil, []string{"import", "--from-env"},
			"error: environment variable OSSEA_ZONE is not set"},
		{"env: secret where the VM id goes", envWith("OSSEA_OMA_VM_ID", strp(secretKey)), nil, []string{"import", "--from-env"},
			"error: environment variable OSSEA_OMA_VM_ID is not a UUID (8-4-4-4-12 hex digits)"},
		{"env: URL not http", envWith("OSSEA_API_URL", strp("ftp://cloud.example.com/client/api")), nil, []string{"import", "--from-env"},
			"error: environment variable OSSEA_API_URL is not an http:// or https:// URL with a host"},
		{"env: URL without host", envWith("OSSEA_API_URL", strp("http:///client/api")), nil, []string{"import", "--from-env"},
			"error: environment variable OSSEA_API_URL is not an http:// or https:// URL with a host"},
		{"env: key as the URL", envWith("OSSEA_API_URL", strp(apiKey)), nil, []string{"import", "--from-env"},
			"error: environment variable OSSEA_API_URL is not an http:// or https:// URL with a host"},
		{"env: URL with a password", envWith("OSSEA_API_URL", strp("https://admin:"+secretKey+"@cloud.example.com/client/api")), nil, []string{"import", "--from-env"},
			"error: environment variable OSSEA_API_URL must not carry a user name or password; the keys go in the Secret"},
		{"env: zone with a control character", envWith("OSSEA_ZONE", strp("zone\x1b[31m1")), nil, []string{"import", "--from-env"},
			"error: environment variable OSSEA_ZONE contains control characters"},
		{"env: disk offering not a UUID", append(goodEnv(), "OSSEA_DISK_OFFERING_ID=custom-100"), nil, []string{"import", "--from-env"},
			"error: environment variable OSSEA_DISK_OFFERING_ID is not a UUID (8-4-4-4-12 hex digits)"},
		{"env: secret with a newline inside", envWith("OSSEA_SECRET_KEY", strp(secretKey+"\n"+secretKey)), nil, []string{"import", "--from-env"},
			"error: environment variable OSSEA_SECRET_KEY contains white space or control characters"},
		{"yaml: unknown key", nil, map[string]string{"c.yaml": yamlWithout("api_secret: "+secretKey+"\n", "secret_key:")}, []string{"import", "--from-file", "c.yaml"},
			`error: c.yaml: unknown key "api_secret" (known: name, api_url, api_key, secret_key, domain, zone, oma_vm_id, disk_offering_id)`},
		{"yaml: key and value run together", nil, map[string]string{"c.yaml": yamlWithout("api_key"+apiKey+": x\n", "api_key:")}, []string{"import", "--from-file", "c.yaml"},
			"error: c.yaml: unknown key (not shown: it does not look like a key name and may hold a value) (known: name, api_url, api_key, secret_key, domain, zone, oma_vm_id, disk_offering_id)"},
		{"yaml: colon lost after the key", nil, map[string]string{"c.yaml": yamlWithout("api_key:"+apiKey+"\n", "api_key:")}, []string{"import", "--from-file", "c.yaml"},
			"error: c.yaml: invalid YAML at line 9"},
		{"yaml: zone missing", nil, map[string]string{"c.yaml": yamlWithout("", "zone:")}, []string{"import", "--from-file", "c.yaml"},
			"error: c.yaml: key zone is missing"},
		{"yaml: api key empty", nil, map[string]string{"c.yaml": yamlWithout("api_key:\n", "api_key:")}, []string{"import", "--from-file", "c.yaml"},
			"error: c.yaml: key api_key is empty"},
		{"yaml: zone a number", nil, map[string]string{"c.yaml": yamlWithout("zone: 5\n", "zone:")}, []string{"import", "--from-file", "c.yaml"},
			"error: c.yaml: key zone must be a string (quote it)"},
		{"yaml: key given twice", nil, map[string]string{"c.yaml": goodYAML + "secret_key: " + secretKey + "x\n"}, []string{"import", "--from-file", "c.yaml"},
			"error: c.yaml: a key is given twice at line 9"},
		{"yaml: unterminated quote in the secret", nil, map[string]string{"c.yaml": yamlWithout("secret_key: '"+secretKey+"\n", "secret_key:")}, []string{"import", "--from-file", "c.yaml"},
			"error: c.yaml: invalid YAML at line 9"},
		{"yaml: a list", nil, map[string]string{"c.yaml": "- " + apiKey + "\n- " + secretKey + "\n"}, []string{"import", "--from-file", "c.yaml"},
			"error: c.yaml: not a YAML mapping of keys (name, api_url, api_key, ...)"},
		{"yaml: URL malformed", nil, map[string]string{"c.yaml": yamlWithout("api_url: https://\n", "api_url:")}, []string{"import", "--from-file", "c.yaml"},
			"error: c.yaml: key api_url is not an http:// or https:// URL with a host"},
		{"json: action delete", nil, map[string]string{"b.json": `{"action":"delete","id":3}`}, []string{"import", "--from-file", "b.json"},
			`error: b.json: action "delete" is not an import: only the body of a "create" or "update" holds a configuration to keep`},
		{"json: action test", nil, map[string]string{"b.json": jsonBody("test", "config", "")}, []string{"import", "--from-file", "b.json"},
			`error: b.json: action "test" is not an import: only the body of a "create" or "update" holds a configuration to keep`},
		{"json: action missing", nil, map[string]string{"b.json": `{"configuration":{"zone":"z"}}`}, []string{"import", "--from-file", "b.json"},
			`error: b.json: key action is missing (the OMA API body is {"action":"create","configuration":{...}})`},
		{"json: action not a string", nil, map[string]string{"b.json": `{"action":5}`}, []string{"import", "--from-file", "b.json"},
			"error: b.json: key action has the wrong type"},
		{"json: configuration missing", nil, map[string]string{"b.json": `{"action":"create"}`}, []string{"import", "--from-file", "b.json"},
			"error: b.json: key configuration is missing"},
		{"json: config and configuration", nil, map[string]string{"b.json": `{"action":"create","config":{},"configuration":{}}`}, []string{"import", "--from-file", "b.json"},
			"error: b.json: keys configuration and config are both set; keep one"},
		{"json: unknown top-level key", nil, map[string]string{"b.json": `{"action":"create","secret":"` + secretKey + `"}`}, []string{"import", "--from-file", "b.json"},
			`error: b.json: unknown key "secret" (known: action, configuration)`},
		{"json: unknown configuration key", nil, map[string]string{"b.json": jsonBody("create", "configuration", `"apikey":"`+apiKey+`"`)}, []string{"import", "--from-file", "b.json"},
			`error: b.json: unknown key "configuration.apikey" (known: name, api_url, api_key, secret_key, domain, zone, oma_vm_id, disk_offering_id)`},
		{"json: VM id malformed", nil, map[string]string{"b.json": strings.Replace(goodJSON, omaVMID, "oma-appliance", 1)}, []string{"import", "--from-file", "b.json"},
			"error: b.json: key configuration.oma_vm_id is not a UUID (8-4-4-4-12 hex digits)"},
		{"json: secret key missing", nil, map[string]string{"b.json": strings.Replace(goodJSON, `"secret_key": "`+secretKey+`",`, "", 1)}, []string{"import", "--from-file", "b.json"},
			"error: b.json: key configuration.secret_key is missing"},
		{"json: cut off inside the secret", nil, map[string]string{"b.json": goodJSON[:strings.Index(goodJSON, secretKey)+10]}, []string{"import", "--from-file", "b.json"},
			"error: b.json: invalid JSON: it ends before its last object is closed"},
		{"json: comma missing after the secret", nil, map[string]string{"b.json": strings.Replace(goodJSON, secretKey+`",`, secretKey+`"`, 1)}, []string{"import", "--from-file", "b.json"},
			fmt.Sprintf("error: b.json: invalid JSON at byte %d", strings.Index(goodJSON, secretKey)+len(secretKey)+7)}, // the quote opening the next key, counted from 1
		{"json: secret not a string", nil, map[string]string{"b.json": jsonBody("create", "config", `"secret_key":["`+secretKey+`"]`)}, []string{"import", "--from-file", "b.json"},
			"error: b.json: key config.secret_key must be a string (quote it)"},
		{"file empty", nil, map[string]string{"e.yaml": " \n\t\n"}, []string{"import", "--from-file", "e.yaml"},
			"error: e.yaml is empty"},
		{"file unreadable", nil, nil, []string{"import", "--from-file", "missing.yaml"},
			"error: cannot read missing.yaml: file does not exist"},
		{"name not sanitisable", goodEnv(), nil, []string{"import", "--from-env", "--name", "!!!"},
			`error: --name "!!!": nothing of it can make a name (a-z, 0-9 and '-'); choose one with --name`},
		{"legacy name not sanitisable", nil, map[string]string{"c.yaml": yamlWithout("name: \"日本\"\n", "name:")}, []string{"import", "--from-file", "c.yaml"},
			`error: c.yaml: key name "日本": nothing of it can make a name (a-z, 0-9 and '-'); choose one with --name`},
		{"namespace not a DNS label", goodEnv(), nil, []string{"import", "--from-env", "-n", "Team_A"},
			`error: --namespace "Team_A": not a DNS label (a-z, 0-9 and '-', at most 63)`},
		{"unknown flag carrying the key", goodEnv(), nil, []string{"import", "--from-env", "--api-key=" + apiKey},
			"error: import: unknown flag: --api-key; see kubectl ossea import -h"},
		{"stray argument", goodEnv(), nil, []string{"import", "--from-env", apiKey},
			"error: import takes no arguments; see kubectl ossea import -h"},
		{"unknown command", nil, nil, []string{"impot"},
			`error: unknown command "impot"; see kubectl ossea -h`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := run(t, tc.env, tc.files, tc.args...)
			if got.code == 0 {
				t.Errorf("exit code 0, want non-zero")
			}
			if got.stdout != "" {
				t.Errorf("stdout is not empty:\n%s", got.stdout)
			}
			if got.stderr != tc.want+"\n" {
				t.Errorf("stderr:\n got %q\nwant %q", got.stderr, tc.want+"\n")
			}
			for _, s := range []string{apiKey, secretKey} {
				if strings.Contains(got.stderr, s) {
					t.Errorf("stderr shows a credential: %q", got.stderr)
				}
			}
			t.Logf("%s -> %s", tc.name, strings.TrimSpace(got.stderr))
		})
	}
}

// imported is what the plugin printed, read back.
type imported struct {
	secret struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
		Type       string            `json:"type"`
		StringData map[string]string `json:"stringData"`
	}
	config struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
		Spec map[string]any `json:"spec"`
	}
}

func parseImported(t *testing.T, out string) imported {
	t.Helper()
	docs := strings.Split(out, "\n---\n")
	if len(docs) != 2 {
		t.Fatalf("want 2 YAML documents, got %d:\n%s", len(docs), out)
	}
	var im imported
	if err := yaml.UnmarshalStrict([]byte(docs[0]), &im.secret); err != nil {
		t.Fatalf("the Secret: %v\n%s", err, docs[0])
	}
	if err := yaml.UnmarshalStrict([]byte(docs[1]), &im.config); err != nil {
		t.Fatalf("the OsseaConfig: %v\n%s", err, docs[1])
	}
	return im
}

// TestImportGood: each legacy form gives the same objects, with the notes it should.
func TestImportGood(t *testing.T) {
	domainNote := " is not carried over: an OsseaConfig has no domain, as CloudStack takes the account, and so its domain, from the API key"
	cases := []struct {
		name      string
		env       []string
		files     map[string]string
		args      []string
		wantName  string
		wantNS    string
		wantSpec  map[string]any
		wantNotes []string
	}{
		{
			name:     "environment, no name",
			env:      append(goodEnv(), "OSSEA_DOMAIN=/", "OSSEA_DISK_OFFERING_ID="+offering, "OSSEA_DEBUG=1"),
			args:     []string{"import", "--from-env"},
			wantName: "ossea",
			wantSpec: map[string]any{"diskOfferingID": offering},
			wantNotes: []string{
				"note: environment variable OSSEA_DOMAIN" + domainNote,
				"note: environment variable OSSEA_DEBUG is not a setting the import knows; ignored",
				"note: no name given; the config is named ossea (choose one with --name)",
			},
		},
		{
			name:     "environment, --name and --namespace",
			env:      append(goodEnv(), "OSSEA_DISK_OFFERING_ID="),
			args:     []string{"import", "--from-env", "--name", "oma-1", "--namespace", "migration"},
			wantName: "oma-1",
			wantNS:   "migration",
		},
		{
			name:      "YAML file",
			files:     map[string]string{"ossea-prod.yaml": goodYAML},
			args:      []string{"import", "--from-file", "ossea-prod.yaml"},
			wantName:  "production-ossea",
			wantSpec:  map[string]any{"diskOfferingID": offering},
			wantNotes: []string{"note: ossea-prod.yaml: key domain" + domainNote},
		},
		{
			name:     "YAML file with a name to sanitise, padded values and a BOM",
			files:    map[string]string{"c.yml": "\xef\xbb\xbf" + yamlWithout("name: \"Production OSSEA (Zone 1)\"\nzone: \" zone1\\n\"\n", "name:", "zone:", "domain:")},
			args:     []string{"import", "--from-file", "c.yml"},
			wantName: "production-ossea-zone-1",
			wantSpec: map[string]any{"diskOfferingID": offering},
			wantNotes: []string{
				`note: c.yml: key name "Production OSSEA (Zone 1)" is not a DNS label of at most 51 characters; the config is named "production-ossea-zone-1"`,
			},
		},
		{
			name:      "JSON body as documented (configuration)",
			files:     map[string]string{"body.json": goodJSON},
			args:      []string{"import", "--from-file", "body.json"},
			wantName:  "production-ossea",
			wantNotes: []string{"note: body.json: key configuration.domain" + domainNote},
		},
		{
			name:     "JSON update body as the handler read it (config, id, failover keys)",
			files:    map[string]string{"body.json": `{"action":"update","id":1,"config":{` + flatJSON + `,"template_id":"t-1","disk_offering_id":""}}`},
			args:     []string{"import", "--from-file", "body.json", "--name", "ossea-b"},
			wantName: "ossea-b",
			wantNotes: []string{
				"note: body.json: key config.template_id is not carried over: the operator makes volumes, not VMs",
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := run(t, tc.env, tc.files, tc.args...)
			if got.code != 0 {
				t.Fatalf("exit code %d, stderr:\n%s", got.code, got.stderr)
			}
			wantStderr := ""
			for _, n := range tc.wantNotes {
				wantStderr += n + "\n"
			}
			if got.stderr != wantStderr {
				t.Errorf("stderr:\n got %q\nwant %q", got.stderr, wantStderr)
			}
			if strings.Contains(got.stderr, apiKey) || strings.Contains(got.stderr, secretKey) {
				t.Errorf("stderr shows a credential")
			}
			im := parseImported(t, got.stdout)
			checkSecret(t, im, tc.wantName, tc.wantNS)
			wantSpec := map[string]any{
				"apiURL":               apiURL,
				"credentialsSecretRef": map[string]any{"name": tc.wantName + "-credentials"},
				"zone":                 "zone1",
				"omaVirtualMachineID":  omaVMID,
			}
			for k, v := range tc.wantSpec {
				wantSpec[k] = v
			}
			if im.config.APIVersion != "ossea.migratekit.io/v1alpha1" || im.config.Kind != "OsseaConfig" ||
				im.config.Metadata.Name != tc.wantName || im.config.Metadata.Namespace != tc.wantNS {
				t.Errorf("OsseaConfig head: %+v %+v", im.config.APIVersion+" "+im.config.Kind, im.config.Metadata)
			}
			if fmt.Sprint(im.config.Spec) != fmt.Sprint(wantSpec) {
				t.Errorf("spec:\n got %v\nwant %v", im.config.Spec, wantSpec)
			}
		})
	}
}

func checkSecret(t *testing.T, im imported, name, ns string) {
	t.Helper()
	s := im.secret
	if s.APIVersion != "v1" || s.Kind != "Secret" || s.Type != "Opaque" {
		t.Errorf("Secret head: %s %s %s", s.APIVersion, s.Kind, s.Type)
	}
	if s.Metadata.Name != name+"-credentials" || s.Metadata.Namespace != ns {
		t.Errorf("Secret metadata: %+v, want %s-credentials in %q", s.Metadata, name, ns)
	}
	if len(s.StringData) != 2 || s.StringData["apiKey"] != apiKey || s.StringData["secretKey"] != secretKey {
		t.Errorf("Secret stringData has the wrong keys or values (%d keys)", len(s.StringData))
	}
}

func TestCommandFirst(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"jobs -A", "jobs -A"},
		{"--kubeconfig k -n team-a jobs", "jobs --kubeconfig k -n team-a"},
		{"-n x orphans -A", "orphans -n x -A"},
		{"--from-env import", "import --from-env"},
		{"-h", "-h"},
		{"impot", "impot"},
	} {
		if got := strings.Join(commandFirst(strings.Fields(c.in)), " "); got != c.want {
			t.Errorf("commandFirst(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
