package cloudstack

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/migratekit/ossea-operator/internal/cloudsim"
)

// createVolumes makes n volumes named prefix-i and waits for their jobs.
func createVolumes(t *testing.T, env *simEnv, c Cloud, prefix string, n int) []string {
	t.Helper()
	ctx := testContext(t)
	var ids []string
	for i := range n {
		id, job, err := c.CreateVolume(ctx, CreateVolumeRequest{
			Name: fmt.Sprintf("%s-%d", prefix, i), ZoneID: cloudsim.DefaultZoneID, DiskOfferingID: cloudsim.DefaultDiskOfferingID, SizeGiB: 1,
		})
		if err != nil {
			t.Fatal(err)
		}
		waitJob(t, ctx, c, job)
		ids = append(ids, id)
	}
	return ids
}

// TestSimBatchedReads: many concurrent reads of one client share listVolumes calls, each
// reader gets its own volume, and a deleted one is NotFound for its reader alone.
func TestSimBatchedReads(t *testing.T) {
	env := startSim(t, cloudsim.Options{}, false)
	// A slow budget makes reads queue behind the rate limit, as they do under load.
	c := env.cloud(t, WithRateLimit(5, 1))
	ids := createVolumes(t, env, env.cloud(t), "batch", 20)
	ctx := testContext(t)
	if err := c.DeleteVolume(ctx, ids[7]); err != nil {
		t.Fatal(err)
	}
	env.sim.ResetCounters()

	var wg sync.WaitGroup
	errs := make([]error, len(ids))
	got := make([]*Volume, len(ids))
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = c.GetVolume(ctx, id)
		}()
	}
	wg.Wait()
	for i := range ids {
		switch {
		case i == 7:
			if !errors.Is(errs[i], ErrNotFound) {
				t.Errorf("deleted volume: err %v, want ErrNotFound", errs[i])
			}
		case errs[i] != nil:
			t.Errorf("volume %d: %v", i, errs[i])
		case got[i].ID != ids[i] || got[i].Name != fmt.Sprintf("batch-%d", i):
			t.Errorf("volume %d: got %+v", i, got[i])
		}
	}
	if n := env.sim.Snapshot().Calls["listVolumes"]; n < 1 || n > 3 {
		t.Errorf("20 concurrent reads made %d listVolumes calls, want 1 to 3", n)
	}
}

// TestSimBatchedReadIsFresh: a read asked for after a change sees the change, even while
// an older batch is in flight.
func TestSimBatchedReadIsFresh(t *testing.T) {
	env := startSim(t, cloudsim.Options{}, false)
	c := env.cloud(t)
	ids := createVolumes(t, env, c, "fresh", 1)
	ctx := testContext(t)
	before, err := c.GetVolume(ctx, ids[0])
	if err != nil || before.Attached() {
		t.Fatalf("before attach: %+v %v", before, err)
	}
	job, err := c.AttachVolume(ctx, ids[0], cloudsim.DefaultOMAVMID)
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, ctx, c, job)
	after, err := c.GetVolume(ctx, ids[0])
	if err != nil || after.VirtualMachineID != cloudsim.DefaultOMAVMID {
		t.Fatalf("a read after the attach must see it: %+v %v", after, err)
	}
}

// TestSimBatchedNames: concurrent lookups by name share calls and each gets exactly the
// volumes with its name, including two volumes that share one.
func TestSimBatchedNames(t *testing.T) {
	env := startSim(t, cloudsim.Options{}, false)
	direct := env.cloud(t)
	ids := createVolumes(t, env, direct, "mig_name", 10)
	twin := createVolumes(t, env, direct, "mig_name", 1) // a second "mig_name-0"
	c := env.cloud(t, WithRateLimit(5, 1))
	env.sim.ResetCounters()
	ctx := testContext(t)

	var wg sync.WaitGroup
	results := make([][]Volume, 12)
	errs := make([]error, 12)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = c.FindVolumesNamed(ctx, fmt.Sprintf("mig_name-%d", i))
		}()
	}
	wg.Wait()
	for i, vols := range results {
		want := 1
		switch {
		case i == 0:
			want = 2
		case i >= 10:
			want = 0
		}
		if errs[i] != nil || len(vols) != want {
			t.Errorf("name %d: %d volumes (%v), want %d", i, len(vols), errs[i], want)
			continue
		}
		for _, v := range vols {
			if v.Name != fmt.Sprintf("mig_name-%d", i) {
				t.Errorf("name %d: got volume %s named %s", i, v.ID, v.Name)
			}
		}
		if i > 0 && i < 10 && vols[0].ID != ids[i] {
			t.Errorf("name %d: got %s, want %s", i, vols[0].ID, ids[i])
		}
	}
	if i0 := results[0]; len(i0) == 2 && i0[0].ID != twin[0] && i0[1].ID != twin[0] {
		t.Errorf("the twin volume %s is missing from %+v", twin[0], i0)
	}
	if n := env.sim.Snapshot().Calls["listVolumes"]; n < 1 || n > 3 {
		t.Errorf("12 concurrent name lookups made %d listVolumes calls, want 1 to 3", n)
	}
}

// TestFactoryCached: the client is handed out by Secret metadata only while the Secret's
// version and the config's endpoint settings are the ones it was built from.
func TestFactoryCached(t *testing.T) {
	env := startSim(t, cloudsim.Options{}, false)
	f := NewFactory()
	cfg := env.config()
	secret := newSecret("5", testAPIKey, testSecretKey)
	if _, ok := f.Cached(cfg, secret.UID, secret.ResourceVersion); ok {
		t.Fatal("Cached before For")
	}
	c, err := f.For(cfg, secret)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := f.Cached(cfg, secret.UID, secret.ResourceVersion); !ok || got != c {
		t.Error("Cached does not return the client For built")
	}
	if _, ok := f.Cached(cfg, secret.UID, "6"); ok {
		t.Error("Cached for a newer Secret version")
	}
	other := cfg.DeepCopy()
	other.Spec.InsecureSkipTLSVerify = true
	if _, ok := f.Cached(other, secret.UID, secret.ResourceVersion); ok {
		t.Error("Cached for changed TLS settings")
	}
	other = cfg.DeepCopy()
	other.Spec.APIURL = "http://127.0.0.1:1/client/api"
	if _, ok := f.Cached(other, secret.UID, secret.ResourceVersion); ok {
		t.Error("Cached for another endpoint")
	}
}

// TestSimBatchedJobPolls: polls of many jobs this process started share listAsyncJobs
// calls, each gets its own job's outcome (a failed one its error), a job started by
// someone else is asked alone, and a create's outcome, learnt in the background, costs
// its poll no call at all.
func TestSimBatchedJobPolls(t *testing.T) {
	env := startSim(t, cloudsim.Options{JobLatency: 200 * time.Millisecond}, false)
	c := env.cloud(t, WithRateLimit(5, 1))
	other := env.cloud(t)
	ids := createVolumes(t, env, other, "jobs", 12)
	ctx := testContext(t)
	var jobs []string
	for i, id := range ids[:10] {
		// The VM holds 6 data disks: half the jobs attach, half tag.
		var job string
		var err error
		if i < 5 {
			job, err = c.AttachVolume(ctx, id, cloudsim.DefaultOMAVMID)
		} else {
			job, err = c.CreateTags(ctx, id, map[string]string{"k": "v"})
		}
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, job)
	}
	// A detach of a volume that is not attached fails in its job.
	failing, err := c.DetachVolume(ctx, ids[10])
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.DetachVolume(ctx, ids[11])
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	env.sim.ResetCounters()

	var wg sync.WaitGroup
	results := make([]JobResult, len(jobs))
	errs := make([]error, len(jobs))
	for i, job := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = c.PollJob(ctx, job)
		}()
	}
	wg.Wait()
	for i := range jobs {
		if errs[i] != nil || results[i].Status != JobSucceeded || (i < 5 && (results[i].Volume == nil || results[i].Volume.ID != ids[i])) {
			t.Errorf("job %d: %+v, %v", i, results[i], errs[i])
		}
	}
	if res, err := c.PollJob(ctx, failing); err != nil || res.Status != JobFailed || !errors.Is(res.Err, ErrNotAttached) {
		t.Errorf("failing detach: %+v, %v; want failed, not attached", res, err)
	}
	calls := env.sim.Snapshot().Calls
	if calls["listAsyncJobs"] < 1 || calls["listAsyncJobs"] > 3 || calls["queryAsyncJobResult"] != 0 {
		t.Errorf("11 polls of this process's jobs made %v, want 1 to 3 listAsyncJobs and no queryAsyncJobResult", calls)
	}
	if res, err := c.PollJob(ctx, foreign); err != nil || res.Status != JobFailed {
		t.Errorf("another process's job: %+v, %v", res, err)
	}
	if n := env.sim.Snapshot().Calls["queryAsyncJobResult"]; n != 1 {
		t.Errorf("the poll of a job started elsewhere made %d queryAsyncJobResult calls, want 1", n)
	}

	_, create, err := c.CreateVolume(ctx, CreateVolumeRequest{Name: "watched", ZoneID: cloudsim.DefaultZoneID, DiskOfferingID: cloudsim.DefaultDiskOfferingID, SizeGiB: 1})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * watchEvery)
	env.sim.ResetCounters()
	if res, err := c.PollJob(ctx, create); err != nil || res.Status != JobSucceeded {
		t.Errorf("watched create: %+v, %v", res, err)
	}
	if calls := env.sim.Snapshot().Calls; len(calls) != 0 {
		t.Errorf("the poll of a create watched to its end made calls %v, want none", calls)
	}
}
