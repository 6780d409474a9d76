package legacyconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// FromEnv reads the legacy environment variables out of environ (os.Environ's form). An
// OSSEA_ variable the import does not know is noted, not refused: the environment is shared
// with other programs, but a misspelt optional variable should not vanish unnoticed.
func FromEnv(environ []string) (*Parsed, error) {
	p := &Parsed{src: envSource{}}
	known := map[string]field{}
	for _, v := range envVars {
		known[v.name] = v.field
	}
	var unknown []string
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if f, ok := known[name]; ok {
			p.set(f, value)
		} else if strings.HasPrefix(name, "OSSEA_") {
			unknown = append(unknown, name)
		}
	}
	sort.Strings(unknown)
	for _, name := range unknown {
		p.Notes = append(p.Notes, fmt.Sprintf("note: environment variable %s is not a setting the import knows; ignored", name))
	}
	return p, nil
}

// FromFile reads a legacy YAML file or the JSON body of the OMA API, told apart by their
// content: the JSON body is an object, so it starts with '{' (a flat YAML file cannot,
// short of being JSON itself, which then is read as the API body). path names the file in
// messages.
func FromFile(path string, data []byte) (*Parsed, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a UTF-8 BOM from Windows editors
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, errorf("%s is empty", path)
	}
	if trimmed[0] == '{' {
		return fromJSONBody(path, trimmed)
	}
	return fromYAML(path, data)
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// fromYAML reads the flat YAML file. The parser's message is never passed on: go-yaml
// quotes the text it choked on, which may be a key.
func fromYAML(path string, data []byte) (*Parsed, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		what := "invalid YAML"
		if strings.Contains(err.Error(), "already set in map") {
			what = "a key is given twice"
		}
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			return nil, errorf("%s: %s at line %s", path, what, m[1])
		}
		return nil, errorf("%s: invalid YAML", path)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(js, &top); err != nil || top == nil {
		return nil, errorf("%s: not a YAML mapping of keys (name, api_url, api_key, ...)", path)
	}
	return fromFlat(fileSource{path: path}, top)
}

// apiBody is the JSON body the OMA API took at POST /api/v1/ossea/config. Its handler
// decoded the configuration from "config", while its documentation shows
// "configuration"; bodies of both kinds exist, so both are read (not both at once).
type apiBody struct {
	Action        *string                    `json:"action"`
	Configuration map[string]json.RawMessage `json:"configuration"`
	Config        map[string]json.RawMessage `json:"config"`
	// ID is the database row an update named; it means nothing here.
	ID json.RawMessage `json:"id"`
}

// importActions are the actions whose body holds a whole configuration. The API also had
// get, delete (an id only) and test (a configuration to try, not to keep).
var importActions = map[string]bool{"create": true, "update": true}

// fromJSONBody reads the OMA API body. encoding/json's messages can quote input too, so
// only the byte offset of a syntax error is passed on.
func fromJSONBody(path string, data []byte) (*Parsed, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var body apiBody
	if err := dec.Decode(&body); err != nil {
		return nil, jsonError(path, err)
	}
	if dec.More() {
		return nil, errorf("%s: invalid JSON: more than one value", path)
	}
	if body.Action == nil {
		return nil, errorf(`%s: key action is missing (the OMA API body is {"action":"create","configuration":{...}})`, path)
	}
	if !importActions[*body.Action] {
		return nil, errorf(`%s: action %q is not an import: only the body of a "create" or "update" holds a configuration to keep`, path, clip(*body.Action))
	}
	switch {
	case body.Configuration != nil && body.Config != nil:
		return nil, errorf("%s: keys configuration and config are both set; keep one", path)
	case body.Configuration != nil:
		return fromFlat(fileSource{path: path, prefix: "configuration."}, body.Configuration)
	case body.Config != nil:
		return fromFlat(fileSource{path: path, prefix: "config."}, body.Config)
	}
	return nil, errorf("%s: key configuration is missing", path)
}

// jsonError turns a decoding error into a line that names a key or an offset, never a value.
func jsonError(path string, err error) *Error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return errorf("%s: invalid JSON at byte %d", path, syn.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errorf("%s: invalid JSON: it ends before its last object is closed", path)
	case errors.As(err, &typ) && typ.Field != "":
		return errorf("%s: key %s has the wrong type", path, typ.Field)
	case errors.As(err, &typ):
		return errorf("%s: not a JSON object", path)
	}
	// DisallowUnknownFields reports `json: unknown field "x"`: the key is the user's
	// spelling of a key, not a value, but is shown only if it looks like one.
	if k, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return errorf(`%s: unknown key %s (known: action, configuration)`, path, showKey("", strings.Trim(k, `"`)))
	}
	return errorf("%s: invalid JSON", path)
}

// fromFlat reads the flat map of the YAML file or the body's configuration. Unknown keys
// are refused before missing ones are looked for, since a misspelt key is the usual cause
// of a missing one.
func fromFlat(src fileSource, m map[string]json.RawMessage) (*Parsed, error) {
	p := &Parsed{src: src}
	byKey := map[string]field{}
	for _, k := range fileKeys {
		byKey[k.key] = k.field
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, ok := byKey[k]; !ok && droppedFileKeys[k] == "" {
			return nil, errorf("%s: unknown key %s (known: %s)", src.path, showKey(src.prefix, k), knownKeys())
		}
	}
	for _, k := range keys {
		f, ok := byKey[k]
		if !ok {
			p.Notes = append(p.Notes, fmt.Sprintf("note: %s: key %s%s is not carried over: %s", src.path, src.prefix, k, droppedFileKeys[k]))
			continue
		}
		v, err := stringValue(m[k])
		if err != nil {
			return nil, errorf("%s %s", src.describe(f), err.Line)
		}
		p.set(f, v)
	}
	return p, nil
}

// stringValue reads a JSON string; null (an empty YAML value) reads as "".
func stringValue(raw json.RawMessage) (string, *Error) {
	if string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", errorf("must be a string (quote it)")
	}
	return s, nil
}

// plainKey is what a key name looks like: letters, digits and '_', short. CloudStack keys
// are 86 characters of base64url ('-' included), so a key glued to its name (`api_key<the
// key>: x`, a colon lost) does not match and is held back.
var plainKey = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,23}$`)

// showKey quotes prefix+k if k looks like a key name, else holds it back.
func showKey(prefix, k string) string {
	if plainKey.MatchString(k) {
		return fmt.Sprintf("%q", prefix+k)
	}
	return "(not shown: it does not look like a key name and may hold a value)"
}

// clip holds back an action that does not look like one, as showKey does a key.
func clip(s string) string {
	if !plainKey.MatchString(s) {
		return "(not shown)"
	}
	return s
}
