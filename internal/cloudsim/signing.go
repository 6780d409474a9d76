package cloudsim

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net/url"
	"sort"
	"strings"
	"time"
)

// javaURLEncode is java.net.URLEncoder.encode(s, "UTF-8") followed by the
// "+" → "%20" replacement ApiServer applies. Java keeps only [A-Za-z0-9.*_-]
// unescaped, so unlike Go's url.QueryEscape it escapes "~" (as %7E): a client that
// signs with Go's encoding fails on values containing "~", as on a real server.
func javaURLEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '.', c == '-', c == '*', c == '_':
			b.WriteByte(c)
		case c == ' ':
			b.WriteString("%20")
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// signatureOf computes the version-3 signature the way ApiServer.verifyRequest does:
// every parameter but "signature", sorted by name (case-sensitive), first value
// only, joined, lower-cased, HMAC-SHA1, standard base64.
func signatureOf(params url.Values, secret string) string {
	names := make([]string, 0, len(params))
	for name := range params {
		if !strings.EqualFold(name, "signature") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, name := range names {
		parts[i] = name + "=" + javaURLEncode(params[name][0])
	}
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(strings.ToLower(strings.Join(parts, "&"))))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// caller returns the account whose API key the request carries, or nil for the
// reasons CloudStack answers 401 before it looks at the signature: no key or no
// signature, a version-3 request without a valid future "expires", an unknown key.
// ApiServer.verifyRequest checks the account's API limit between these checks and
// the signature's (see Throttle).
func (s *Simulator) caller(params url.Values, now time.Time) *Account {
	apiKey := paramFold(params, "apikey")
	signature := paramFold(params, "signature")
	if apiKey == "" || signature == "" {
		return nil
	}
	if paramFold(params, "signatureversion") == "3" {
		expires, ok := parseExpires(paramFold(params, "expires"))
		if !ok || !expires.After(now) {
			return nil
		}
	}
	return s.byAPIKey[apiKey]
}

// signedBy reports whether the request carries a's signature; if not, CloudStack
// answers 401.
func signedBy(params url.Values, a *Account) bool {
	return hmac.Equal([]byte(signatureOf(params, a.SecretKey)), []byte(paramFold(params, "signature")))
}

// parseExpires accepts what CloudStack's DateUtil accepts for "expires": ISO 8601
// with either a "Z"/"+hh:mm" zone (Go clients) or a "+hhmm" zone (Java clients).
func parseExpires(v string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05-0700"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// paramFold looks a parameter up ignoring case, as ApiServer does for the
// authentication parameters (apiKey is sent camel-cased). ApiServer walks the
// sorted names and keeps the last match; so does this.
func paramFold(params url.Values, name string) string {
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names)
	value := ""
	for _, k := range names {
		if strings.EqualFold(k, name) && len(params[k]) > 0 {
			value = params[k][0]
		}
	}
	return value
}
