package cloudstack

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/migratekit/ossea-operator/internal/cloudsim"
)

func TestSimValidate(t *testing.T) {
	env := startSim(t, cloudsim.Options{}, false)
	c := env.cloud(t)
	ctx := testContext(t)
	limit := int32(4)

	for _, zone := range []string{cloudsim.DefaultZoneName, cloudsim.DefaultZoneID} {
		v, err := c.Validate(ctx, ValidateRequest{Zone: zone, OMAVirtualMachineID: cloudsim.DefaultOMAVMID})
		if err != nil {
			t.Fatalf("zone %s: %v", zone, err)
		}
		if v.CloudStackVersion != cloudsim.DefaultCloudStackVersion || v.Zone.ID != cloudsim.DefaultZoneID ||
			v.Zone.Name != cloudsim.DefaultZoneName || v.VirtualMachine.Name != cloudsim.DefaultOMAVMName ||
			v.VirtualMachine.State != "Running" || v.DiskOffering.ID != cloudsim.DefaultDiskOfferingID ||
			!v.DiskOffering.CustomSize || v.AttachedDataVolumes != 0 || v.MaxDataVolumes != DefaultMaxDataVolumesPerVM {
			t.Fatalf("zone %s: unexpected validation %s", zone, v)
		}
	}
	v, err := c.Validate(ctx, ValidateRequest{Zone: cloudsim.DefaultZoneName, OMAVirtualMachineID: cloudsim.DefaultOMAVMID,
		DiskOfferingID: cloudsim.DefaultDiskOfferingID, MaxDataVolumes: &limit})
	if err != nil || v.MaxDataVolumes != 4 || v.DiskOffering.ID != cloudsim.DefaultDiskOfferingID {
		t.Fatalf("explicit offering and limit: %v %v", v, err)
	}

	if err := env.sim.SetVMState(cloudsim.DefaultOMAVMID, "Stopped"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Validate(ctx, ValidateRequest{Zone: cloudsim.DefaultZoneName, OMAVirtualMachineID: cloudsim.DefaultOMAVMID}); err != nil {
		t.Fatalf("a Stopped OMA VM is usable: %v", err)
	}

	failures := []struct {
		name  string
		req   ValidateRequest
		setup func()
		check Check
		class error
	}{
		{"unknown zone", ValidateRequest{Zone: "nowhere", OMAVirtualMachineID: cloudsim.DefaultOMAVMID}, nil, CheckZone, ErrNotFound},
		{"unknown VM", ValidateRequest{Zone: cloudsim.DefaultZoneName, OMAVirtualMachineID: simUnknownID}, nil, CheckVirtualMachine, ErrNotFound},
		{"VM in another zone", ValidateRequest{Zone: cloudsim.DefaultZoneName, OMAVirtualMachineID: simFarVMID}, nil, CheckVirtualMachine, ErrInvalidParameter},
		{"VM starting", ValidateRequest{Zone: cloudsim.DefaultZoneName, OMAVirtualMachineID: cloudsim.DefaultOMAVMID},
			func() { _ = env.sim.SetVMState(cloudsim.DefaultOMAVMID, "Starting") }, CheckVirtualMachine, ErrInvalidState},
		{"fixed-size offering", ValidateRequest{Zone: cloudsim.DefaultZoneName, OMAVirtualMachineID: simOtherVMID, DiskOfferingID: simFixedOfferingID}, nil, CheckDiskOffering, ErrInvalidParameter},
		{"unknown offering", ValidateRequest{Zone: cloudsim.DefaultZoneName, OMAVirtualMachineID: simOtherVMID, DiskOfferingID: simUnknownID}, nil, CheckDiskOffering, ErrNotFound},
	}
	for _, tc := range failures {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			v, err := c.Validate(ctx, tc.req)
			var ce *CheckError
			if !errors.As(err, &ce) || ce.Check != tc.check || !errors.Is(err, tc.class) {
				t.Fatalf("got %v, want check %s with %v", err, tc.check, tc.class)
			}
			if v == nil || v.CloudStackVersion == "" {
				t.Fatal("a failed validation still reports what it found")
			}
		})
	}

	bad, err := NewFactory().For(env.config(), newSecret("1", testAPIKey, "wrong"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.Validate(ctx, ValidateRequest{Zone: cloudsim.DefaultZoneName, OMAVirtualMachineID: cloudsim.DefaultOMAVMID})
	var ce *CheckError
	if !errors.As(err, &ce) || ce.Check != CheckConnection || !errors.Is(err, ErrUnauthorized) || !IsTerminal(err) {
		t.Fatalf("bad secret: %v", err)
	}
}

func TestSimVolumeLifecycle(t *testing.T) {
	env := startSim(t, cloudsim.Options{JobLatency: 150 * time.Millisecond}, false)
	c := env.cloud(t)
	ctx := testContext(t)
	name := "mig_vm1_disk0_0123abcd"
	tags := map[string]string{"managed-by": "ossea-operator", "uid": "0123abcd-0000"}

	volID, jobID, err := c.CreateVolume(ctx, CreateVolumeRequest{Name: name, ZoneID: cloudsim.DefaultZoneID,
		DiskOfferingID: cloudsim.DefaultDiskOfferingID, SizeGiB: 3})
	if err != nil || volID == "" || jobID == "" {
		t.Fatalf("create: %q %q %v", volID, jobID, err)
	}
	// The job runs 150ms: the first poll sees it pending, nothing blocked on it.
	if res, err := c.PollJob(ctx, jobID); err != nil || res.Status != JobPending {
		t.Fatalf("first poll: %+v %v", res, err)
	}
	res := waitJob(t, ctx, c, jobID)
	if res.Status != JobSucceeded || res.Err != nil || res.Volume == nil || res.Volume.ID != volID ||
		res.Volume.State != "Allocated" || res.Volume.SizeBytes != 3<<30 || res.Volume.DeviceID != nil {
		t.Fatalf("create job: %+v (volume %+v)", res, res.Volume)
	}

	jobID, err = c.CreateTags(ctx, volID, tags)
	if err != nil {
		t.Fatal(err)
	}
	if res := waitJob(t, ctx, c, jobID); res.Status != JobSucceeded {
		t.Fatalf("tag job: %+v", res)
	}
	for _, q := range []VolumeQuery{{Name: name}, {Tags: tags}, {Tags: map[string]string{"uid": "0123abcd-0000"}, ZoneID: cloudsim.DefaultZoneID}} {
		found, err := c.FindVolumes(ctx, q)
		if err != nil || len(found) != 1 || found[0].ID != volID || found[0].Tags["managed-by"] != "ossea-operator" {
			t.Fatalf("find %+v: %+v %v", q, found, err)
		}
	}
	if found, err := c.FindVolumes(ctx, VolumeQuery{Tags: map[string]string{"uid": "someone-else"}}); err != nil || len(found) != 0 {
		t.Fatalf("find by a foreign tag: %+v %v", found, err)
	}

	jobID, err = c.AttachVolume(ctx, volID, cloudsim.DefaultOMAVMID)
	if err != nil {
		t.Fatal(err)
	}
	res = waitJob(t, ctx, c, jobID)
	if res.Status != JobSucceeded || res.Volume == nil || res.Volume.VirtualMachineID != cloudsim.DefaultOMAVMID ||
		res.Volume.DeviceID == nil || *res.Volume.DeviceID != 1 || res.Volume.State != "Ready" {
		t.Fatalf("attach job: %+v (volume %+v)", res, res.Volume)
	}
	v, err := c.GetVolume(ctx, volID)
	if err != nil || !v.Attached() || *v.DeviceID != 1 || v.Type != VolumeTypeDataDisk || v.Tags["uid"] != "0123abcd-0000" {
		t.Fatalf("get attached: %+v %v", v, err)
	}
	if n, err := c.CountDataVolumes(ctx, cloudsim.DefaultOMAVMID); err != nil || n != 1 {
		t.Fatalf("count: %d %v", n, err)
	}

	// A second attach (a retry after a lost reply) fails as a job, refined to "here".
	jobID, err = c.AttachVolume(ctx, volID, cloudsim.DefaultOMAVMID)
	if err != nil {
		t.Fatal(err)
	}
	res = waitJob(t, ctx, c, jobID)
	if res.Status != JobFailed || !errors.Is(res.Err, ErrAlreadyAttached) || !errors.Is(res.Err, ErrVolumeAttached) {
		t.Fatalf("second attach: %+v", res)
	}
	var ce *Error
	if !errors.As(res.Err, &ce) || ce.Code != 431 || ce.Text != "Please specify a volume that is not attached to any VM." {
		t.Fatalf("the job error must carry CloudStack's code and text: %+v", ce)
	}
	if err := c.DeleteVolume(ctx, volID); !errors.Is(err, ErrAlreadyAttached) {
		t.Fatalf("delete while attached must not look like success or not-found: %v", err)
	}

	jobID, err = c.DetachVolume(ctx, volID)
	if err != nil {
		t.Fatal(err)
	}
	res = waitJob(t, ctx, c, jobID)
	if res.Status != JobSucceeded || res.Volume == nil || res.Volume.Attached() || res.Volume.DeviceID != nil {
		t.Fatalf("detach job: %+v", res)
	}
	jobID, err = c.DetachVolume(ctx, volID)
	if err != nil {
		t.Fatal(err)
	}
	if res := waitJob(t, ctx, c, jobID); res.Status != JobFailed || !errors.Is(res.Err, ErrNotAttached) {
		t.Fatalf("second detach: %+v", res)
	}

	jobID, err = c.DeleteTags(ctx, volID, map[string]string{"uid": "0123abcd-0000"})
	if err != nil {
		t.Fatal(err)
	}
	if res := waitJob(t, ctx, c, jobID); res.Status != JobSucceeded {
		t.Fatalf("untag job: %+v", res)
	}
	v, err = c.GetVolume(ctx, volID)
	if err != nil || v.Tags["uid"] != "" || v.Tags["managed-by"] != "ossea-operator" || v.State != "Ready" {
		t.Fatalf("after untag: %+v %v", v, err)
	}

	if err := c.DeleteVolume(ctx, volID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetVolume(ctx, volID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if err := c.DeleteVolume(ctx, volID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := c.PollJob(ctx, simUnknownID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown job: %v", err)
	}
	// An id CloudStack never knew is refused by its parameter processor (431/9999), one it
	// deleted lists as the empty envelope: both are not found.
	if _, err := c.GetVolume(ctx, simUnknownID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get of an unknown id: %v", err)
	}
	if _, err := c.CountDataVolumes(ctx, simUnknownID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("count on an unknown VM: %v", err)
	}
	if n, err := c.CountDataVolumes(ctx, cloudsim.DefaultOMAVMID); err != nil || n != 0 {
		t.Fatalf("count after delete: %d %v", n, err)
	}
}

func TestSimRejections(t *testing.T) {
	env := startSim(t, cloudsim.Options{}, false)
	c := env.cloud(t)
	ctx := testContext(t)

	create := func(name string) string {
		t.Helper()
		id, jobID, err := c.CreateVolume(ctx, CreateVolumeRequest{Name: name, ZoneID: cloudsim.DefaultZoneID,
			DiskOfferingID: cloudsim.DefaultDiskOfferingID, SizeGiB: 1})
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		if res := waitJob(t, ctx, c, jobID); res.Status != JobSucceeded {
			t.Fatalf("create %s: %+v", name, res)
		}
		return id
	}
	attach := func(volID, vmID string) JobResult {
		t.Helper()
		jobID, err := c.AttachVolume(ctx, volID, vmID)
		if err != nil {
			t.Fatalf("attach %s to %s: %v", volID, vmID, err)
		}
		return waitJob(t, ctx, c, jobID)
	}
	detach := func(volID string) {
		t.Helper()
		jobID, err := c.DetachVolume(ctx, volID)
		if err != nil {
			t.Fatal(err)
		}
		if res := waitJob(t, ctx, c, jobID); res.Status != JobSucceeded {
			t.Fatalf("detach %s: %+v", volID, res)
		}
	}

	_, _, err := c.CreateVolume(ctx, CreateVolumeRequest{Name: "nosize", ZoneID: cloudsim.DefaultZoneID, DiskOfferingID: cloudsim.DefaultDiskOfferingID})
	if !errors.Is(err, ErrInvalidParameter) || errors.Is(err, ErrNotFound) || !IsTerminal(err) {
		t.Fatalf("custom offering without size: %v", err)
	}
	_, _, err = c.CreateVolume(ctx, CreateVolumeRequest{Name: "fixed", ZoneID: cloudsim.DefaultZoneID, DiskOfferingID: simFixedOfferingID, SizeGiB: 2})
	if !errors.Is(err, ErrInvalidParameter) || errors.Is(err, ErrNotFound) {
		t.Fatalf("fixed offering with size: %v", err)
	}

	a, b := create("a"), create("b")
	_, err = c.AttachVolume(ctx, a, simUnknownID)
	var ce *Error
	if !errors.Is(err, ErrNotFound) || !errors.As(err, &ce) || ce.Param != "virtualmachineid" || ce.Code != 431 {
		t.Fatalf("attach to an unknown VM: %v", err)
	}

	if err := env.sim.SetVMState(simOtherVMID, "Stopping"); err != nil {
		t.Fatal(err)
	}
	if res := attach(a, simOtherVMID); !errors.Is(res.Err, ErrInvalidState) || IsTerminal(res.Err) {
		t.Fatalf("attach to a stopping VM: %+v", res)
	}
	if err := env.sim.SetVMState(simOtherVMID, "Running"); err != nil {
		t.Fatal(err)
	}
	if res := attach(a, simFarVMID); !errors.Is(res.Err, ErrInvalidParameter) {
		t.Fatalf("attach to a VM in another zone: %+v", res)
	}

	// Attached to another VM: the OMA's attach and delete say "elsewhere".
	if res := attach(a, simOtherVMID); res.Status != JobSucceeded {
		t.Fatalf("attach to other: %+v", res)
	}
	if res := attach(a, cloudsim.DefaultOMAVMID); !errors.Is(res.Err, ErrAttachedElsewhere) || !IsTerminal(res.Err) ||
		!strings.Contains(res.Err.Error(), simOtherVMID) {
		t.Fatalf("attach of a volume held elsewhere: %+v", res)
	}
	if err := c.DeleteVolume(ctx, a); !errors.Is(err, ErrAttachedElsewhere) {
		t.Fatalf("delete of a volume held elsewhere: %v", err)
	}
	detach(a)

	// The small VM takes one data disk.
	if res := attach(a, simSmallVMID); res.Status != JobSucceeded {
		t.Fatalf("attach a to small: %+v", res)
	}
	res := attach(b, simSmallVMID)
	if res.Status != JobFailed || !errors.Is(res.Err, ErrCapacity) || IsTerminal(res.Err) {
		t.Fatalf("attach beyond the data disk limit: %+v", res)
	}
	if n, err := c.CountDataVolumes(ctx, simSmallVMID); err != nil || n != 1 {
		t.Fatalf("count on small: %d %v", n, err)
	}
	detach(a)
}

func TestSimAccountLimit(t *testing.T) {
	w := testWorld()
	// CloudStack counts ROOT disks against the limit: every VM's is there already.
	w.Accounts[0].VolumeLimit = len(w.VirtualMachines)
	env := startSim(t, cloudsim.Options{World: w}, false)
	c := env.cloud(t)
	_, _, err := c.CreateVolume(testContext(t), CreateVolumeRequest{Name: "over", ZoneID: cloudsim.DefaultZoneID,
		DiskOfferingID: cloudsim.DefaultDiskOfferingID, SizeGiB: 1})
	var ce *Error
	if !errors.Is(err, ErrAccountLimit) || IsTerminal(err) || !errors.As(err, &ce) || ce.Code != 535 || ce.CSCode != 4370 {
		t.Fatalf("account limit: %v", err)
	}
}

// TestSimVolumeInTransition: a delete or detach of a volume an attach job is working on is
// refused; the refusal is a state that passes (retry), never a stall.
func TestSimVolumeInTransition(t *testing.T) {
	env := startSim(t, cloudsim.Options{JobLatency: 300 * time.Millisecond}, false)
	c := env.cloud(t)
	ctx := testContext(t)
	volID, jobID, err := c.CreateVolume(ctx, CreateVolumeRequest{Name: "busy", ZoneID: cloudsim.DefaultZoneID,
		DiskOfferingID: cloudsim.DefaultDiskOfferingID, SizeGiB: 1})
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, ctx, c, jobID)
	if jobID, err = c.AttachVolume(ctx, volID, cloudsim.DefaultOMAVMID); err != nil {
		t.Fatal(err)
	}
	_, detachErr := c.DetachVolume(ctx, volID)
	for what, err := range map[string]error{"delete": c.DeleteVolume(ctx, volID), "detach": detachErr} {
		var ce *Error
		if !errors.Is(err, ErrInvalidState) || IsTerminal(err) || errors.Is(err, ErrTransient) ||
			!errors.As(err, &ce) || ce.Code != 431 || ce.CSCode != 4350 {
			t.Errorf("%s during the attach job: %v", what, err)
		}
	}
	if res := waitJob(t, ctx, c, jobID); res.Status != JobSucceeded {
		t.Fatalf("the attach job: %+v", res)
	}
}

// TestSimSendGuard: a send guard runs just before each call that changes something, after
// the rate limit; a refusal keeps the call from CloudStack and comes back as ErrNotSent
// with the guard's own error. Reads are never held back.
func TestSimSendGuard(t *testing.T) {
	env := startSim(t, cloudsim.Options{}, false)
	c := env.cloud(t)
	ctx := testContext(t)
	volID, jobID, err := c.CreateVolume(ctx, CreateVolumeRequest{Name: "guarded", ZoneID: cloudsim.DefaultZoneID,
		DiskOfferingID: cloudsim.DefaultDiskOfferingID, SizeGiB: 1})
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, ctx, c, jobID)
	env.sim.ResetCounters()

	deleting := errors.New("the object is being deleted")
	checks := 0
	refuse := WithSendGuard(ctx, func(context.Context) error { checks++; return deleting })
	_, attachErr := c.AttachVolume(refuse, volID, cloudsim.DefaultOMAVMID)
	_, tagErr := c.CreateTags(refuse, volID, map[string]string{"k": "v"})
	_, _, createErr := c.CreateVolume(refuse, CreateVolumeRequest{Name: "never", ZoneID: cloudsim.DefaultZoneID,
		DiskOfferingID: cloudsim.DefaultDiskOfferingID, SizeGiB: 1})
	for what, err := range map[string]error{"attach": attachErr, "tag": tagErr, "create": createErr} {
		if !errors.Is(err, ErrNotSent) || !errors.Is(err, deleting) || errors.Is(err, ErrTransient) || IsTerminal(err) {
			t.Errorf("%s refused by its guard: %v", what, err)
		}
	}
	if _, err := c.GetVolume(refuse, volID); err != nil {
		t.Errorf("a read with a guard: %v", err)
	}
	if calls := env.sim.Snapshot().Calls; checks != 3 || len(calls) != 1 || calls["listVolumes"] != 1 {
		t.Fatalf("%d guard checks, calls %v: want 3 checks and only the read sent", checks, calls)
	}

	allow := WithSendGuard(ctx, func(context.Context) error { return nil })
	if jobID, err = c.AttachVolume(allow, volID, cloudsim.DefaultOMAVMID); err != nil {
		t.Fatalf("attach with a guard that allows it: %v", err)
	}
	if res := waitJob(t, ctx, c, jobID); res.Status != JobSucceeded {
		t.Fatalf("attach job: %+v", res)
	}
}

func TestSimJobFailure(t *testing.T) {
	env := startSim(t, cloudsim.Options{JobLatency: 50 * time.Millisecond,
		Faults: cloudsim.Faults{JobFailureRate: 1, Commands: []string{"createVolume"}}}, false)
	c := env.cloud(t)
	ctx := testContext(t)
	volID, jobID, err := c.CreateVolume(ctx, CreateVolumeRequest{Name: "doomed", ZoneID: cloudsim.DefaultZoneID,
		DiskOfferingID: cloudsim.DefaultDiskOfferingID, SizeGiB: 1})
	if err != nil {
		t.Fatal(err)
	}
	res := waitJob(t, ctx, c, jobID)
	var ce *Error
	if res.Status != JobFailed || !errors.Is(res.Err, ErrTransient) || IsTerminal(res.Err) ||
		!errors.As(res.Err, &ce) || ce.Code != 530 || res.InstanceID != volID {
		t.Fatalf("failed create job: %+v", res)
	}
}

// TestSimLocalChecksAndOptions: requests that would be dangerous or pointless are refused
// before any call (an empty id would list every volume, an empty deleteTags would remove
// every tag), and the factory's timeout and limit options reach the calls.
func TestSimLocalChecksAndOptions(t *testing.T) {
	env := startSim(t, cloudsim.Options{}, false)
	c := env.cloud(t, WithRequestTimeout(150*time.Millisecond), WithDefaultMaxDataVolumes(3))
	ctx := testContext(t)
	env.sim.ResetCounters()

	_, err1 := c.GetVolume(ctx, "")
	_, _, err2 := c.CreateVolume(ctx, CreateVolumeRequest{Name: "x", ZoneID: cloudsim.DefaultZoneID})
	_, err3 := c.DeleteTags(ctx, simUnknownID, nil)
	_, err4 := c.CreateTags(ctx, simUnknownID, map[string]string{})
	_, err5 := c.AttachVolume(ctx, simUnknownID, "")
	_, err6 := c.PollJob(ctx, " ")
	err7 := c.DeleteVolume(ctx, "")
	_, err8 := c.CountDataVolumes(ctx, "")
	for i, err := range []error{err1, err2, err3, err4, err5, err6, err7, err8} {
		if !errors.Is(err, ErrInvalidParameter) {
			t.Errorf("check %d: %v", i+1, err)
		}
	}
	if calls := env.sim.Snapshot().Calls; len(calls) != 0 {
		t.Fatalf("refused requests reached CloudStack: %v", calls)
	}

	v, err := c.Validate(ctx, ValidateRequest{Zone: cloudsim.DefaultZoneID, OMAVirtualMachineID: cloudsim.DefaultOMAVMID})
	if err != nil || v.MaxDataVolumes != 3 {
		t.Fatalf("default data volume limit: %v %v", v, err)
	}

	env.sim.SetFaults(cloudsim.Faults{ExtraLatency: time.Second, Commands: []string{"listZones"}})
	start := time.Now()
	_, err = c.Validate(ctx, ValidateRequest{Zone: cloudsim.DefaultZoneID, OMAVirtualMachineID: cloudsim.DefaultOMAVMID})
	if !errors.Is(err, ErrTransient) || !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 900*time.Millisecond {
		t.Fatalf("a slow reply must hit the per-request timeout: %v after %v", err, time.Since(start))
	}
}
