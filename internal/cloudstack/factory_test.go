package cloudstack

import (
	"encoding/pem"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/migratekit/ossea-operator/api/v1alpha1"
)

const testOMAVMID = "6f1a4c1e-1b7e-4c39-9d68-0c1e0d1c0a11"

func newConfig(apiURL string) *v1alpha1.OsseaConfig {
	return &v1alpha1.OsseaConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "osc"},
		Spec: v1alpha1.OsseaConfigSpec{
			APIURL:               apiURL,
			CredentialsSecretRef: v1alpha1.LocalObjectReference{Name: "creds"},
			Zone:                 "zone1",
			OMAVirtualMachineID:  testOMAVMID,
		},
	}
}

func newSecret(resourceVersion, apiKey, secretKey string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "creds", UID: "uid-1", ResourceVersion: resourceVersion},
		Data:       map[string][]byte{SecretKeyAPIKey: []byte(apiKey), SecretKeySecretKey: []byte(secretKey)},
	}
}

func TestFactorySecretErrors(t *testing.T) {
	f := NewFactory()
	cfg := newConfig("https://cloud.example.com/client/api")

	if _, err := f.For(cfg, nil); !errors.Is(err, ErrSecretMissing) {
		t.Fatalf("nil secret: %v", err)
	}
	for _, missing := range []string{SecretKeyAPIKey, SecretKeySecretKey} {
		s := newSecret("1", testAPIKey, testSecretKey)
		delete(s.Data, missing)
		_, err := f.For(cfg, s)
		if !errors.Is(err, ErrSecretInvalid) || IsTerminal(err) == false {
			t.Fatalf("missing %s: %v", missing, err)
		}
		if !strings.Contains(err.Error(), `"`+missing+`"`) {
			t.Fatalf("error does not name the key %s: %v", missing, err)
		}
		assertNoSecrets(t, err.Error())
	}
	s := newSecret("1", "  \n", testSecretKey)
	if _, err := f.For(cfg, s); !errors.Is(err, ErrSecretInvalid) {
		t.Fatalf("blank apiKey: %v", err)
	}
	// The trailing newline of `echo key | base64` is not part of the key.
	s = newSecret("1", testAPIKey+"\n", testSecretKey+"\n")
	c, err := f.For(cfg, s)
	if err != nil {
		t.Fatal(err)
	}
	if a := c.(*adapter); a.apiKey != testAPIKey || a.secretKey != testSecretKey {
		t.Fatal("keys not trimmed")
	}
}

func TestFactoryConfigErrors(t *testing.T) {
	f := NewFactory()
	secret := newSecret("1", testAPIKey, testSecretKey)
	for _, u := range []string{"ftp://cloud.example.com/client/api", "https:///client/api", "://x",
		"https://cloud.example.com/client/api?apiKey=" + testAPIKey} {
		_, err := f.For(newConfig(u), secret)
		if !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("apiURL %q: %v", u, err)
		}
		assertNoSecrets(t, err.Error())
	}

	both := newConfig("https://cloud.example.com/client/api")
	both.Spec.CABundle = testCAPEM(t)
	both.Spec.InsecureSkipTLSVerify = true
	if _, err := f.For(both, secret); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("caBundle with insecureSkipTLSVerify: %v", err)
	}

	for name, bundle := range map[string]string{
		"not PEM":       "hello",
		"bad DER":       string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")})),
		"truncated":     testCAPEM(t)[:200],
		"only a key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("k")})),
		"trailing junk": testCAPEM(t) + "\n-----BEGIN CERTIFICATE-----\nMIIB",
	} {
		cfg := newConfig("https://cloud.example.com/client/api")
		cfg.Spec.CABundle = bundle
		_, err := f.For(cfg, secret)
		if !errors.Is(err, ErrTLS) || !strings.Contains(err.Error(), "caBundle") {
			t.Fatalf("caBundle %s: %v", name, err)
		}
	}
}

func TestFactoryCacheAndRebuild(t *testing.T) {
	f := NewFactory()
	cfg := newConfig("https://cloud.example.com/client/api")
	secret := newSecret("1", testAPIKey, testSecretKey)
	key := types.NamespacedName{Namespace: "ns", Name: "osc"}

	first, err := f.For(cfg, secret)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := f.For(cfg.DeepCopy(), secret.DeepCopy())
	if again != first {
		t.Fatal("same config and secret must reuse the cached client")
	}
	limiter := f.entries[key].limiter

	// A second config on the same endpoint (another OMA VM) shares its budget, and keeps
	// the endpoint's limiter alive while the first one moves away and back below.
	sibling := cfg.DeepCopy()
	sibling.Name = "osc2"
	sibling.Spec.APIURL = "https://CLOUD.example.com/client/api/"
	s2, err := f.For(sibling, secret)
	if err != nil {
		t.Fatal(err)
	}
	siblingKey := types.NamespacedName{Namespace: "ns", Name: "osc2"}
	if s2 == first || f.entries[siblingKey].limiter != limiter {
		t.Fatal("two configs on one endpoint must have their own clients and one rate limiter")
	}
	if a, b := f.entries[siblingKey].cloud, f.entries[key].cloud; a.volumes != b.volumes || a.names != b.names || a.book != b.book {
		t.Fatal("two configs of one account must share their batched reads and their book of jobs")
	}

	changes := map[string]func(*v1alpha1.OsseaConfig, *corev1.Secret){
		"secret resourceVersion": func(_ *v1alpha1.OsseaConfig, s *corev1.Secret) { s.ResourceVersion = "2" },
		"secret keys":            func(_ *v1alpha1.OsseaConfig, s *corev1.Secret) { s.Data[SecretKeySecretKey] = []byte("other") },
		"apiURL": func(c *v1alpha1.OsseaConfig, _ *corev1.Secret) {
			c.Spec.APIURL = "https://other.example.com/client/api"
		},
		"caBundle":              func(c *v1alpha1.OsseaConfig, _ *corev1.Secret) { c.Spec.CABundle = testCAPEM(t) },
		"insecureSkipTLSVerify": func(c *v1alpha1.OsseaConfig, _ *corev1.Secret) { c.Spec.InsecureSkipTLSVerify = true },
	}
	prev := first
	for name, change := range changes {
		c, s := cfg.DeepCopy(), secret.DeepCopy()
		change(c, s)
		got, err := f.For(c, s)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got == prev {
			t.Fatalf("a change of %s must rebuild the client", name)
		}
		sameEndpoint := name != "apiURL"
		if (f.entries[key].limiter == limiter) != sameEndpoint {
			t.Fatalf("after a change of %s: shares the rate limiter = %v, want %v (one budget per endpoint)",
				name, f.entries[key].limiter == limiter, sameEndpoint)
		}
		prev = got
	}
	elsewhere := cfg.DeepCopy()
	elsewhere.Name = "osc3"
	elsewhere.Spec.APIURL = "https://third.example.com/client/api"
	if _, err := f.For(elsewhere, secret); err != nil {
		t.Fatal(err)
	}
	if e3 := f.entries[types.NamespacedName{Namespace: "ns", Name: "osc3"}]; e3.limiter == limiter || e3.cloud.volumes == f.entries[siblingKey].cloud.volumes {
		t.Fatal("a config on another endpoint must have its own rate limiter and reads")
	}

	f.Forget(key)
	if _, ok := f.entries[key]; ok {
		t.Fatal("Forget left the entry")
	}
	f.Forget(siblingKey)
	f.Forget(types.NamespacedName{Namespace: "ns", Name: "osc3"})
	if len(f.limiters) != 0 || len(f.readers) != 0 {
		t.Fatalf("limiters (%d) or readers (%d) of forgotten configs are kept", len(f.limiters), len(f.readers))
	}
}

func TestTLSConfig(t *testing.T) {
	spec := &v1alpha1.OsseaConfigSpec{}
	c, err := tlsConfigFor(spec)
	if err != nil || c.InsecureSkipVerify || c.RootCAs != nil {
		t.Fatalf("default must verify against system roots: %+v %v", c, err)
	}
	spec.InsecureSkipTLSVerify = true
	if c, _ = tlsConfigFor(spec); !c.InsecureSkipVerify {
		t.Fatal("insecureSkipTLSVerify ignored")
	}
	spec = &v1alpha1.OsseaConfigSpec{CABundle: testCAPEM(t)}
	if c, err = tlsConfigFor(spec); err != nil || c.RootCAs == nil || c.InsecureSkipVerify {
		t.Fatalf("caBundle: %+v %v", c, err)
	}
}

// testCAPEM is the certificate of an httptest TLS server, a valid self-signed CA.
func testCAPEM(t *testing.T) string {
	t.Helper()
	srv := httptest.NewTLSServer(nil)
	defer srv.Close()
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
}
