package cloudstack

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/migratekit/ossea-operator/internal/cloudsim"
)

// throttledWorld is the test world with the admin account a plain user account: CloudStack
// never throttles a root admin.
func throttledWorld() *cloudsim.World {
	w := testWorld()
	w.Accounts[0].Admin = false
	return w
}

// Every call CloudStack's API throttling refuses comes back rate limited, whatever the
// command: transient, not sent, answered, and never not-found, invalid or terminal, even
// for a volume or job that does not exist. A refused create made no volume. Each call uses
// a fresh client, whose budget a 429 has not paused yet.
func TestSimThrottledCallsAreRateLimited(t *testing.T) {
	env := startSim(t, cloudsim.Options{World: throttledWorld(), JobLatency: time.Hour,
		Throttle: cloudsim.Throttle{Max: 2, Interval: time.Hour}}, false)
	ctx := testContext(t)
	create := CreateVolumeRequest{Name: "v", ZoneID: cloudsim.DefaultZoneID, DiskOfferingID: cloudsim.DefaultDiskOfferingID, SizeGiB: 1}
	volumeID, jobID, err := env.cloud(t).CreateVolume(ctx, create) // call 1 of 2
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.cloud(t).GetVolume(ctx, volumeID); err != nil { // call 2 of 2
		t.Fatal(err)
	}

	calls := []struct {
		name string
		call func(c Cloud) error
	}{
		{"createVolume", func(c Cloud) error {
			_, _, err := c.CreateVolume(ctx, CreateVolumeRequest{Name: "w", ZoneID: cloudsim.DefaultZoneID, DiskOfferingID: cloudsim.DefaultDiskOfferingID, SizeGiB: 1})
			return err
		}},
		{"attachVolume", func(c Cloud) error { _, err := c.AttachVolume(ctx, volumeID, cloudsim.DefaultOMAVMID); return err }},
		{"createTags", func(c Cloud) error { _, err := c.CreateTags(ctx, volumeID, map[string]string{"k": "v"}); return err }},
		{"deleteVolume", func(c Cloud) error { return c.DeleteVolume(ctx, volumeID) }},
		{"deleteVolume of an unknown volume", func(c Cloud) error { return c.DeleteVolume(ctx, simUnknownID) }},
		{"listVolumes by id", func(c Cloud) error { _, err := c.GetVolume(ctx, volumeID); return err }},
		{"listVolumes of an unknown volume", func(c Cloud) error { _, err := c.GetVolume(ctx, simUnknownID); return err }},
		{"listVolumes by name", func(c Cloud) error { _, err := c.FindVolumesNamed(ctx, "v"); return err }},
		{"listVirtualMachines", func(c Cloud) error { _, err := c.GetVirtualMachine(ctx, cloudsim.DefaultOMAVMID); return err }},
		{"queryAsyncJobResult", func(c Cloud) error { _, err := c.PollJob(ctx, jobID); return err }},
		{"queryAsyncJobResult of an unknown job", func(c Cloud) error { _, err := c.PollJob(ctx, simUnknownID); return err }},
	}
	for _, tc := range calls {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(env.cloud(t))
			var ce *Error
			if !errors.As(err, &ce) || ce.Class != ErrRateLimited || ce.Code != 429 || ce.CSCode != 9999 ||
				!strings.HasPrefix(ce.Text, "The given user has reached his/her account api limit, please retry after [") {
				t.Fatalf("got %v (%+v), want a 429 classified rate limited", err, ce)
			}
			if !errors.Is(err, ErrTransient) || !errors.Is(err, ErrNotSent) || !Answered(err) || IsTerminal(err) {
				t.Fatalf("%v: transient %v, not sent %v, answered %v, terminal %v", err,
					errors.Is(err, ErrTransient), errors.Is(err, ErrNotSent), Answered(err), IsTerminal(err))
			}
			for _, class := range []error{ErrNotFound, ErrInvalidParameter, ErrInvalidState, ErrVolumeAttached, ErrNotAttached, ErrUnauthorized} {
				if errors.Is(err, class) {
					t.Fatalf("%v taken for %v", err, class)
				}
			}
		})
	}

	st := env.sim.Snapshot()
	data := 0
	for _, v := range st.Volumes {
		if v.Type == "DATADISK" {
			data++
		}
	}
	if data != 1 || len(st.Jobs) != 1 {
		t.Fatalf("%d data volumes and %d jobs: a refused call changed something", data, len(st.Jobs))
	}
	throttled := 0
	for _, n := range st.Throttled {
		throttled += n
	}
	if throttled != len(calls) {
		t.Fatalf("the simulator throttled %d calls (%v), want %d", throttled, st.Throttled, len(calls))
	}
}

// After a 429 the client sends nothing more until the window CloudStack named has ended,
// so the next call succeeds instead of being refused (and counted) again.
func TestSimThrottlePausesTheBudget(t *testing.T) {
	const window = 400 * time.Millisecond
	env := startSim(t, cloudsim.Options{World: throttledWorld(), Throttle: cloudsim.Throttle{Max: 2, Interval: window}}, false)
	ctx := testContext(t)
	c := env.cloud(t)
	start := time.Now()
	for i := range 2 {
		if _, err := c.GetVirtualMachine(ctx, cloudsim.DefaultOMAVMID); err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
	}
	if _, err := c.GetVirtualMachine(ctx, cloudsim.DefaultOMAVMID); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("call 3: %v, want rate limited", err)
	}
	for i := range 2 { // the next window's two
		if _, err := c.GetVirtualMachine(ctx, cloudsim.DefaultOMAVMID); err != nil {
			t.Fatalf("call %d after the 429: %v", i+4, err)
		}
	}
	if took := time.Since(start); took < window {
		t.Fatalf("the calls after the 429 went out %v after the first, inside the %v window", took, window)
	}
	if n := env.sim.Snapshot().Throttled["listVirtualMachines"]; n != 1 {
		t.Fatalf("%d calls throttled, want only the one that found the limit", n)
	}
}
