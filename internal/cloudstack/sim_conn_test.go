package cloudstack

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/migratekit/ossea-operator/internal/cloudsim"
)

// TestSimRateLimit reads the spacing of calls from the simulator's own arrival
// timestamps: ten concurrent callers of one config share a 5 QPS, burst 1 budget.
func TestSimRateLimit(t *testing.T) {
	env := startSim(t, cloudsim.Options{}, false)
	c, err := NewFactory(WithRateLimit(5, 1)).For(env.config(), newSecret("1", testAPIKey, testSecretKey))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	env.sim.ResetCounters()

	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.FindVolumes(ctx, VolumeQuery{Name: "x"})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	times := env.sim.Snapshot().CallTimes["listVolumes"]
	if len(times) != 10 {
		t.Fatalf("simulator saw %d listVolumes calls, want 10", len(times))
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	// Nominal spacing is 200ms. A single gap can shrink when the request before it was
	// delayed on its way, so single gaps get a wide margin and the average a narrow one.
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < 120*time.Millisecond {
			t.Errorf("calls %d and %d arrived %v apart", i-1, i, gap)
		}
	}
	if span := times[9].Sub(times[0]); span < 9*180*time.Millisecond {
		t.Errorf("10 calls spanned %v, want about 1.8s", span)
	}
	t.Logf("10 calls over %v", times[9].Sub(times[0]))
}

// TestSimRotatedSecret changes the Secret under one long-lived factory, as the
// OsseaConfig controller does on a Secret event: the next Cloud uses the new keys.
func TestSimRotatedSecret(t *testing.T) {
	env := startSim(t, cloudsim.Options{}, false)
	f := NewFactory(WithRateLimit(1000, 1000))
	cfg := env.config()
	ctx := testContext(t)
	req := ValidateRequest{Zone: cloudsim.DefaultZoneName, OMAVirtualMachineID: cloudsim.DefaultOMAVMID}

	// A stale secret key: rejected.
	c, err := f.For(cfg, newSecret("10", testAPIKey, "revoked-secret"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Validate(ctx, req); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("stale key: %v", err)
	}
	// The Secret is updated (new resourceVersion): accepted at once, same factory.
	c, err = f.For(cfg, newSecret("11", testAPIKey, testSecretKey))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Validate(ctx, req); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
	volID, jobID, err := c.CreateVolume(ctx, CreateVolumeRequest{Name: "owned-by-admin", ZoneID: cloudsim.DefaultZoneID,
		DiskOfferingID: cloudsim.DefaultDiskOfferingID, SizeGiB: 1})
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, ctx, c, jobID)

	// Rotated to another account's keys: the calls are now that account's, which cannot
	// see the admin's volume (it is a plain user), so the new keys are really in use.
	c, err = f.For(cfg, newSecret("12", simTenantAPIKey, simTenantSecretKey))
	if err != nil {
		t.Fatal(err)
	}
	if found, err := c.FindVolumes(ctx, VolumeQuery{Name: "owned-by-admin"}); err != nil || len(found) != 0 {
		t.Fatalf("tenant must not see the admin's volume: %+v %v", found, err)
	}
	// And back to a revoked key: rejected again, no restart, no Forget.
	c, err = f.For(cfg, newSecret("13", simTenantAPIKey, "revoked-secret"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetVolume(ctx, volID); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("revoked tenant key: %v", err)
	}
}

func TestSimTLS(t *testing.T) {
	env := startSim(t, cloudsim.Options{}, true)
	f := NewFactory(WithRateLimit(1000, 1000))
	ctx := testContext(t)
	secret := newSecret("1", testAPIKey, testSecretKey)
	req := ValidateRequest{Zone: cloudsim.DefaultZoneName, OMAVirtualMachineID: cloudsim.DefaultOMAVMID}

	cfg := env.config()
	cfg.Spec.CABundle = env.caPEM()
	c, err := f.For(cfg, secret)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Validate(ctx, req); err != nil {
		t.Fatalf("trusted through caBundle: %v", err)
	}

	for name, mutate := range map[string]func(){
		"system roots only": func() { cfg.Spec.CABundle = "" },
		"another CA":        func() { cfg.Spec.CABundle = selfSignedCAPEM(t) },
	} {
		cfg = env.config()
		mutate()
		c, err := f.For(cfg, secret)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Validate(ctx, req)
		var ce *CheckError
		if !errors.Is(err, ErrTLS) || errors.Is(err, ErrTransient) || !IsTerminal(err) ||
			!errors.As(err, &ce) || ce.Check != CheckConnection {
			t.Fatalf("%s: %v", name, err)
		}
		assertNoSecrets(t, err.Error())
	}

	cfg = env.config()
	cfg.Spec.InsecureSkipTLSVerify = true
	c, err = f.For(cfg, secret)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Validate(ctx, req); err != nil {
		t.Fatalf("insecureSkipTLSVerify: %v", err)
	}
}

// selfSignedCAPEM is a CA unrelated to httptest's built-in certificate.
func selfSignedCAPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "unrelated test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
