package legacyconfig

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

func TestSanitizeName(t *testing.T) {
	long := strings.Repeat("a", 50) + "-b" + strings.Repeat("c", 20)
	cases := map[string]string{
		"ossea":                     "ossea",
		"production-ossea":          "production-ossea",
		"Production OSSEA (Zone 1)": "production-ossea-zone-1",
		"prod.ossea.example":        "prod-ossea-example",
		"--a__b--":                  "a-b",
		"OSSEA_Prod_01":             "ossea-prod-01",
		"café":                      "caf",
		"!!!":                       "",
		"日本":                        "",
		"":                          "",
		long:                        strings.Repeat("a", 50), // cut at 51 leaves a trailing '-', trimmed
		strings.Repeat("x", 80):     strings.Repeat("x", MaxNameLength),
	}
	for in, want := range cases {
		got := SanitizeName(in)
		if got != want {
			t.Errorf("SanitizeName(%q) = %q, want %q", in, got, want)
		}
		if got != "" && len(validation.IsDNS1123Label(got+SecretSuffix)) > 0 {
			t.Errorf("SanitizeName(%q) = %q: its Secret's name is not a DNS label", in, got)
		}
	}
}
