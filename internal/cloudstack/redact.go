package cloudstack

import (
	"net/url"
	"regexp"
	"strings"
)

const redacted = "REDACTED"

// signedParamRe finds the query values that authenticate a request. cloudstack-go puts the
// whole signed URL into its errors, and net/http's *url.Error repeats it.
var signedParamRe = regexp.MustCompile(`(?i)\b(apikey|signature)(=|%3D)[^&\s"'<>\\]*`)

// redactor scrubs one config's credentials out of text before it leaves the package.
type redactor struct {
	literals []string
}

func newRedactor(secrets ...string) *redactor {
	r := &redactor{}
	seen := map[string]bool{}
	for _, s := range secrets {
		// Every form in which a key can appear in a URL or a form body.
		for _, form := range []string{s, url.QueryEscape(s), url.PathEscape(s)} {
			if form == "" || seen[form] {
				continue
			}
			seen[form] = true
			r.literals = append(r.literals, form)
		}
	}
	return r
}

// String removes apiKey and signature values and any literal occurrence of the keys.
func (r *redactor) String(s string) string {
	s = signedParamRe.ReplaceAllString(s, "${1}${2}"+redacted)
	if r == nil {
		return s
	}
	for _, lit := range r.literals {
		s = strings.ReplaceAll(s, lit, redacted)
	}
	return s
}
