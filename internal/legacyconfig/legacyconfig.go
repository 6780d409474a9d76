// Package legacyconfig reads the OSSEA configuration of the old MigrateKit OMA in its three
// forms (environment variables, a YAML file, the JSON body of the OMA API's
// /api/v1/ossea/config), checks it against the rules the OsseaConfig CRD enforces, and
// renders the Secret and OsseaConfig that replace it.
//
// Every problem is reported as one line naming the field and where it came from (the
// environment variable or the file key), and never quoting a value: a user who swapped two
// fields would otherwise see a secret key printed as a "malformed UUID". The only value
// ever shown is the object name, which the user needs to see to know what was made of it,
// and even that is held back when it contains a credential.
package legacyconfig

import (
	"fmt"
	"strings"
)

// Config is one legacy OSSEA configuration, whichever form it came in. Values are trimmed
// of surrounding white space (CloudStack keys, UUIDs, URLs and zone names never begin or
// end with it; a trailing newline from `echo >` or a heredoc would otherwise break the key).
type Config struct {
	// Name is the legacy configuration's name, "" when the form had none.
	Name           string
	APIURL         string
	APIKey         string
	SecretKey      string
	Zone           string
	OMAVMID        string
	DiskOfferingID string
	// Domain is read only to say that it is not carried over.
	Domain string
}

// field is one setting of a legacy configuration.
type field int

const (
	fieldName field = iota
	fieldAPIURL
	fieldAPIKey
	fieldSecretKey
	fieldDomain
	fieldZone
	fieldOMAVMID
	fieldDiskOfferingID
)

// fileKeys are the keys of the YAML file and of the JSON body's configuration, in the
// order the legacy documentation lists them (also the order the "known:" hint uses).
var fileKeys = []struct {
	key   string
	field field
}{
	{"name", fieldName},
	{"api_url", fieldAPIURL},
	{"api_key", fieldAPIKey},
	{"secret_key", fieldSecretKey},
	{"domain", fieldDomain},
	{"zone", fieldZone},
	{"oma_vm_id", fieldOMAVMID},
	{"disk_offering_id", fieldDiskOfferingID},
}

// droppedFileKeys are keys the OMA API also took (for the VMs it made at failover) that
// have no place in an OsseaConfig: noted and skipped, not refused, as a body sent to the
// old API may well carry them.
var droppedFileKeys = map[string]string{
	"template_id":         "the operator makes volumes, not VMs",
	"network_id":          "the operator makes volumes, not VMs",
	"service_offering_id": "the operator makes volumes, not VMs",
}

// envVars are the environment variables of the legacy form. There is no variable for the
// name.
var envVars = []struct {
	name  string
	field field
}{
	{"OSSEA_API_URL", fieldAPIURL},
	{"OSSEA_API_KEY", fieldAPIKey},
	{"OSSEA_SECRET_KEY", fieldSecretKey},
	{"OSSEA_DOMAIN", fieldDomain},
	{"OSSEA_ZONE", fieldZone},
	{"OSSEA_OMA_VM_ID", fieldOMAVMID},
	{"OSSEA_DISK_OFFERING_ID", fieldDiskOfferingID},
}

// value returns the Config's string for f.
func (c *Config) value(f field) *string {
	switch f {
	case fieldName:
		return &c.Name
	case fieldAPIURL:
		return &c.APIURL
	case fieldAPIKey:
		return &c.APIKey
	case fieldSecretKey:
		return &c.SecretKey
	case fieldDomain:
		return &c.Domain
	case fieldZone:
		return &c.Zone
	case fieldOMAVMID:
		return &c.OMAVMID
	case fieldDiskOfferingID:
		return &c.DiskOfferingID
	}
	panic(fmt.Sprintf("legacyconfig: unknown field %d", f))
}

// Error is a problem with the input, as the one line the user sees (without "error: ").
type Error struct{ Line string }

func (e *Error) Error() string { return e.Line }

func errorf(format string, args ...any) *Error {
	return &Error{Line: fmt.Sprintf(format, args...)}
}

// Parsed is a legacy configuration and where it came from.
type Parsed struct {
	Config Config
	// Notes are lines for stderr about what was read but is not carried over.
	Notes []string

	src source
	// present records which fields the input had at all (missing differs from empty).
	present map[field]bool
}

// source says how to name a field of one input in a message.
type source interface {
	// describe names the field: "environment variable OSSEA_ZONE", "ossea.yaml: key zone".
	describe(f field) string
	// missing is the verb for a field that is not there: "is not set", "is missing".
	missing() string
}

type envSource struct{}

func (envSource) describe(f field) string {
	for _, v := range envVars {
		if v.field == f {
			return "environment variable " + v.name
		}
	}
	return "the environment"
}

func (envSource) missing() string { return "is not set" }

// fileSource names a key of a file; prefix is "configuration." for the JSON body.
type fileSource struct {
	path   string
	prefix string
}

func (s fileSource) describe(f field) string {
	return fmt.Sprintf("%s: key %s%s", s.path, s.prefix, keyOf(f))
}

func (fileSource) missing() string { return "is missing" }

func keyOf(f field) string {
	for _, k := range fileKeys {
		if k.field == f {
			return k.key
		}
	}
	return "?"
}

func knownKeys() string {
	keys := make([]string, len(fileKeys))
	for i, k := range fileKeys {
		keys[i] = k.key
	}
	return strings.Join(keys, ", ")
}

// domainNote is said whenever a legacy domain is dropped.
const domainNote = "is not carried over: an OsseaConfig has no domain, as CloudStack takes the account, and so its domain, from the API key"

func (p *Parsed) set(f field, v string) {
	if p.present == nil {
		p.present = map[field]bool{}
	}
	p.present[f] = true
	*p.Config.value(f) = strings.TrimSpace(v)
	if f == fieldDomain && p.Config.Domain != "" {
		p.Notes = append(p.Notes, fmt.Sprintf("note: %s %s", p.src.describe(f), domainNote))
	}
}
