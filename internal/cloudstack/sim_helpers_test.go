package cloudstack

import (
	"context"
	"encoding/pem"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudsim"
)

// Extra objects of the test world, next to cloudsim's defaults.
const (
	simZone2ID         = "0a7c5b1e-3d2f-4c8b-9e6a-000000000002"
	simFixedOfferingID = "5f3d9a2c-8b1e-4f6d-a7c4-000000000002"
	simOtherVMID       = "9c1e4b7d-2a6f-4d3c-8e5b-000000000002"
	simFarVMID         = "9c1e4b7d-2a6f-4d3c-8e5b-000000000003"
	simSmallVMID       = "9c1e4b7d-2a6f-4d3c-8e5b-000000000004"
	simTenantAPIKey    = "tenant-api-key"
	simTenantSecretKey = "tenant-secret-key"
	simUnknownID       = "00000000-0000-4000-8000-000000000000"
)

// testWorld is cloudsim's default world with the admin account's keys replaced by the
// test keys (so leaks are easy to spot), a second non-admin account, a fixed-size offering,
// a second zone, and VMs that are elsewhere, far away or small.
func testWorld() *cloudsim.World {
	w := cloudsim.DefaultWorld()
	w.Accounts[0].APIKey = testAPIKey
	w.Accounts[0].SecretKey = testSecretKey
	w.Accounts = append(w.Accounts, cloudsim.Account{Name: "tenant", APIKey: simTenantAPIKey, SecretKey: simTenantSecretKey})
	w.Zones = append(w.Zones, cloudsim.Zone{ID: simZone2ID, Name: "sim-zone-2"})
	w.DiskOfferings = append(w.DiskOfferings, cloudsim.DiskOffering{ID: simFixedOfferingID, Name: "Small", DiskSizeGB: 5})
	w.VirtualMachines = append(w.VirtualMachines,
		cloudsim.VirtualMachine{ID: simOtherVMID, Name: "other", Zone: cloudsim.DefaultZoneID},
		cloudsim.VirtualMachine{ID: simFarVMID, Name: "far", Zone: simZone2ID},
		cloudsim.VirtualMachine{ID: simSmallVMID, Name: "small", Zone: cloudsim.DefaultZoneID, MaxDataVolumes: 1},
	)
	return w
}

type simEnv struct {
	sim    *cloudsim.Simulator
	srv    *httptest.Server
	apiURL string
}

// startSim serves a simulator over real HTTP (or HTTPS) on loopback.
func startSim(t *testing.T, opts cloudsim.Options, useTLS bool) *simEnv {
	t.Helper()
	if opts.World == nil {
		opts.World = testWorld()
	}
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	sim, err := cloudsim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	var srv *httptest.Server
	if useTLS {
		srv = httptest.NewTLSServer(sim.Handler())
	} else {
		srv = httptest.NewServer(sim.Handler())
	}
	t.Cleanup(func() {
		srv.Close()
		_ = sim.Close()
	})
	return &simEnv{sim: sim, srv: srv, apiURL: srv.URL + "/client/api"}
}

func (e *simEnv) caPEM() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.srv.Certificate().Raw}))
}

func (e *simEnv) config() *v1alpha1.OsseaConfig {
	cfg := newConfig(e.apiURL)
	cfg.Spec.Zone = cloudsim.DefaultZoneName
	cfg.Spec.OMAVirtualMachineID = cloudsim.DefaultOMAVMID
	return cfg
}

// cloud builds a Cloud for the admin account through a fresh factory, without the
// default rate limit unless opts set one.
func (e *simEnv) cloud(t *testing.T, opts ...Option) Cloud {
	t.Helper()
	opts = append([]Option{WithRateLimit(1000, 1000)}, opts...)
	c, err := NewFactory(opts...).For(e.config(), newSecret("1", testAPIKey, testSecretKey))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitJob polls like a controller would, between reconciles, until the job is done.
func waitJob(t *testing.T, ctx context.Context, c Cloud, jobID string) JobResult {
	t.Helper()
	for {
		res, err := c.PollJob(ctx, jobID)
		if err != nil {
			t.Fatalf("polling job %s: %v", jobID, err)
		}
		if res.Status != JobPending {
			return res
		}
		select {
		case <-ctx.Done():
			t.Fatalf("job %s still pending", jobID)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
