package legacyconfig

import (
	"net/url"
	"regexp"
	"strings"
)

// The limits and patterns of api/v1alpha1/osseaconfig_types.go, checked here so that a bad
// value is named against the legacy key the user wrote, not refused later by the API server
// against a field of an object the user never wrote.
const (
	maxURLLength  = 2048
	maxZoneLength = 255
)

var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// rule checks one field's (trimmed, non-empty) value and says what is wrong, or "".
type rule func(v string) string

// required lists the fields every form must have, in the order they are checked.
var required = []struct {
	field field
	check rule
}{
	{fieldAPIURL, checkURL},
	{fieldAPIKey, checkCredential},
	{fieldSecretKey, checkCredential},
	{fieldZone, checkZone},
	{fieldOMAVMID, checkUUID},
}

// optional fields: absent and empty mean the same (the OMA API returned "" for unset).
var optional = []struct {
	field field
	check rule
}{
	{fieldDiskOfferingID, checkUUID},
}

// Validate checks the configuration against the CRD's rules; the first problem wins.
func (p *Parsed) Validate() error {
	for _, r := range required {
		v := *p.Config.value(r.field)
		switch {
		case !p.present[r.field]:
			return errorf("%s %s", p.src.describe(r.field), p.src.missing())
		case v == "":
			return errorf("%s is empty", p.src.describe(r.field))
		}
		if msg := r.check(v); msg != "" {
			return errorf("%s %s", p.src.describe(r.field), msg)
		}
	}
	for _, r := range optional {
		if v := *p.Config.value(r.field); v != "" {
			if msg := r.check(v); msg != "" {
				return errorf("%s %s", p.src.describe(r.field), msg)
			}
		}
	}
	return nil
}

func checkURL(v string) string {
	const bad = "is not an http:// or https:// URL with a host"
	if len(v) > maxURLLength {
		return "is longer than 2048 characters"
	}
	if hasControl(v) || strings.ContainsAny(v, " \t") {
		return bad
	}
	// The CRD's rule is startsWith('http://') || startsWith('https://'): case matters.
	if !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "https://") {
		return bad
	}
	u, err := url.Parse(v)
	if err != nil || u.Hostname() == "" {
		return bad
	}
	if u.User != nil {
		// It would end up in the OsseaConfig's spec, which is no place for a password.
		return "must not carry a user name or password; the keys go in the Secret"
	}
	return ""
}

func checkCredential(v string) string {
	if hasControl(v) || strings.ContainsAny(v, " \t") {
		return "contains white space or control characters"
	}
	return ""
}

func checkZone(v string) string {
	if hasControl(v) {
		return "contains control characters"
	}
	if len(v) > maxZoneLength {
		return "is longer than 255 characters"
	}
	return ""
}

func checkUUID(v string) string {
	if !uuidPattern.MatchString(v) {
		return "is not a UUID (8-4-4-4-12 hex digits)"
	}
	return ""
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}
