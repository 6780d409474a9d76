package cloudstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/migratekit/ossea-operator/internal/cloudsim"
)

// TestSecretsNeverLeak provokes every kind of failure with known keys and looks for them,
// and for any signature value, in the errors returned and in everything logged, at every
// verbosity, through both the factory's logger and the caller's context logger.
func TestSecretsNeverLeak(t *testing.T) {
	core, logs := observer.New(zapcore.Level(-10))
	logger := zapr.NewLogger(zap.New(core))
	ctx := logr.NewContext(testContext(t), logger.WithName("ctx"))

	env := startSim(t, cloudsim.Options{}, false)
	tlsEnv := startSim(t, cloudsim.Options{}, true)
	lossy := startSim(t, cloudsim.Options{Seed: 7, Faults: cloudsim.Faults{LostResponseRate: 1}}, false)
	f := NewFactory(WithRateLimit(1000, 1000), WithLogger(logger.WithName("factory")))

	refused := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return "http://" + addr + "/client/api"
	}()

	type provoke struct {
		name   string
		apiURL string
		secret string
		class  error
	}
	cases := []provoke{
		{"unknown host", "http://cloudstack.invalid/client/api", testSecretKey, ErrUnreachable},
		{"connection refused", refused, testSecretKey, ErrUnreachable},
		{"TLS without trust", tlsEnv.apiURL, testSecretKey, ErrTLS},
		{"401 wrong secret", env.apiURL, "not-" + testSecretKey, ErrUnauthorized},
		{"lost responses", lossy.apiURL, testSecretKey, ErrTransient},
	}
	var collected []string
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := newConfig(tc.apiURL)
			c, err := f.For(cfg, newSecret(tc.name, testAPIKey, tc.secret))
			if err != nil {
				t.Fatal(err)
			}
			// GET commands (the signed URL is in *url.Error) and POST commands alike; the
			// lossy simulator drops or 502s each reply after acting on it.
			var errs []error
			_, err = c.GetVolume(ctx, simUnknownID)
			errs = append(errs, err)
			_, err = c.FindVolumes(ctx, VolumeQuery{Name: "x", Tags: map[string]string{"k": "v"}})
			errs = append(errs, err)
			_, _, err = c.CreateVolume(ctx, CreateVolumeRequest{Name: "leak", ZoneID: cloudsim.DefaultZoneID,
				DiskOfferingID: cloudsim.DefaultDiskOfferingID, SizeGiB: 1})
			errs = append(errs, err)
			_, err = c.AttachVolume(ctx, simUnknownID, cloudsim.DefaultOMAVMID)
			errs = append(errs, err)
			_, err = c.PollJob(ctx, simUnknownID)
			errs = append(errs, err)
			_, err = c.Validate(ctx, ValidateRequest{Zone: cloudsim.DefaultZoneName, OMAVirtualMachineID: cloudsim.DefaultOMAVMID})
			errs = append(errs, err)
			for i, err := range errs {
				if err == nil {
					t.Fatalf("call %d did not fail", i)
				}
				if !errors.Is(err, tc.class) {
					t.Errorf("call %d: %v is not %v", i, err, tc.class)
				}
				for e := err; e != nil; e = errors.Unwrap(e) {
					collected = append(collected, e.Error(), fmt.Sprintf("%+v %#v", e, e))
				}
			}
			t.Logf("e.g. %v", errs[0])
		})
	}
	if n := lossy.sim.Snapshot().InjectedFaults["lostResponse"]; n == 0 {
		t.Fatal("the lossy simulator lost no response")
	}

	entries := logs.All()
	if len(entries) == 0 {
		t.Fatal("nothing was logged, the log check would prove nothing")
	}
	failed := 0
	for _, e := range entries {
		if strings.Contains(e.Message, "failed") {
			failed++
		}
		collected = append(collected, e.Message, e.LoggerName, fmt.Sprint(e.ContextMap()))
	}
	if failed == 0 {
		t.Fatal("no failed call was logged")
	}
	all := strings.Join(collected, "\n")
	assertNoSecrets(t, all)
	for _, needle := range []string{testAPIKey, testSecretKey} {
		if strings.Contains(all, needle) {
			t.Fatalf("%q leaked", needle)
		}
	}
	if !strings.Contains(all, "Get ") || !strings.Contains(all, "/client/api:") {
		t.Fatal("expected a *url.Error of a GET among the errors: is the signed-URL path still exercised?")
	}
	t.Logf("checked %d error texts and %d log entries", len(collected)-3*len(entries), len(entries))
}

// TestCanceledContext shows cancellation crosses the package boundary recognisably.
func TestCanceledContext(t *testing.T) {
	env := startSim(t, cloudsim.Options{}, false)
	c := env.cloud(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.GetVolume(ctx, simUnknownID)
	if !errors.Is(err, context.Canceled) || IsTerminal(err) {
		t.Fatalf("cancelled call: %v", err)
	}
}
