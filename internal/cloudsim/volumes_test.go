package cloudsim

import (
	"testing"
	"time"
)

// The whole lifecycle with the plain client, polling each job as the manager does.
func TestVolumeLifecyclePlainClient(t *testing.T) {
	e := newEnv(t, Options{JobLatency: 30 * time.Millisecond})
	cp := e.cs.Volume.NewCreateVolumeParams()
	cp.SetName("mig_vm1_disk0_abcd1234")
	cp.SetZoneid(DefaultZoneID)
	cp.SetDiskofferingid(DefaultDiskOfferingID)
	cp.SetSize(3)
	created, err := e.cs.Volume.CreateVolume(cp)
	if err != nil || created.Id == "" || created.JobID == "" {
		t.Fatalf("createVolume: %+v, %v", created, err)
	}
	// Allocated at once, before the job completes, as CloudStack's create phase.
	if v := e.volume(created.Id); v.State != "Allocated" || v.Size != 3*gib || v.Virtualmachineid != "" {
		t.Fatalf("after create: %+v", v)
	}
	if res := e.waitJob(created.JobID); res.Jobstatus != jobSucceeded || res.Jobinstancetype != "Volume" || res.Jobinstanceid != created.Id {
		t.Fatalf("create job = %+v", res)
	}

	att, err := e.cs.Volume.AttachVolume(e.cs.Volume.NewAttachVolumeParams(created.Id, DefaultOMAVMID))
	if err != nil || att.JobID == "" {
		t.Fatalf("attachVolume: %+v, %v", att, err)
	}
	e.waitJob(att.JobID)
	if v := e.volume(created.Id); v.State != "Ready" || v.Deviceid != 1 || v.Virtualmachineid != DefaultOMAVMID || v.Vmname != DefaultOMAVMName {
		t.Fatalf("after attach: %+v", v)
	}

	dp := e.cs.Volume.NewDetachVolumeParams()
	dp.SetId(created.Id)
	det, err := e.cs.Volume.DetachVolume(dp)
	if err != nil {
		t.Fatal(err)
	}
	e.waitJob(det.JobID)
	if v := e.volume(created.Id); v.State != "Ready" || v.Virtualmachineid != "" || v.Attached != "" {
		t.Fatalf("after detach: %+v", v)
	}

	del, err := e.cs.Volume.DeleteVolume(e.cs.Volume.NewDeleteVolumeParams(created.Id))
	if err != nil || !del.Success {
		t.Fatalf("deleteVolume: %+v, %v", del, err)
	}
	p := e.cs.Volume.NewListVolumesParams()
	p.SetId(created.Id)
	if l, err := e.cs.Volume.ListVolumes(p); err != nil || l.Count != 0 {
		t.Fatalf("listVolumes after delete: %+v, %v", l, err)
	}
}

// The same with the async client, which waits for each job itself.
func TestVolumeLifecycleAsyncClient(t *testing.T) {
	e := newEnv(t, Options{})
	v := e.createVolume("async", 2)
	if v.State != "Allocated" || v.Deviceid != 0 || v.Size != 2*gib || v.Zoneid != DefaultZoneID {
		t.Fatalf("create result = %+v", v)
	}
	att := e.mustAttach(v.Id, DefaultOMAVMID)
	if att.State != "Ready" || att.Deviceid != 1 || att.Virtualmachineid != DefaultOMAVMID {
		t.Fatalf("attach result = %+v", att)
	}
	det, err := e.detach(v.Id)
	if err != nil || det.State != "Ready" || det.Virtualmachineid != "" {
		t.Fatalf("detach result = %+v, %v", det, err)
	}
	if _, err := e.async.Volume.DeleteVolume(e.async.Volume.NewDeleteVolumeParams(v.Id)); err != nil {
		t.Fatal(err)
	}
}

// Allocated until the first attach, Ready from then on, also after a detach.
func TestAllocatedToReady(t *testing.T) {
	e := newEnv(t, Options{})
	v := e.createVolume("state", 1)
	if got := e.volume(v.Id); got.State != "Allocated" || got.Storage != "" {
		t.Fatalf("created: %+v", got)
	}
	e.mustAttach(v.Id, DefaultOMAVMID)
	if got := e.volume(v.Id); got.State != "Ready" || got.Storage == "" {
		t.Fatalf("attached: %+v", got)
	}
	if _, err := e.detach(v.Id); err != nil {
		t.Fatal(err)
	}
	if got := e.volume(v.Id); got.State != "Ready" {
		t.Fatalf("detached: %+v", got)
	}
}

// Lowest free id from 1, skipping 3 (the CD-ROM), reusing freed slots.
func TestDeviceIDSequence(t *testing.T) {
	e := newEnv(t, Options{})
	var ids []int64
	var vols []string
	for i := 0; i < 4; i++ {
		v := e.createVolume("seq", 1)
		vols = append(vols, v.Id)
		ids = append(ids, e.mustAttach(v.Id, DefaultOMAVMID).Deviceid)
	}
	if want := []int64{1, 2, 4, 5}; !equalInts(ids, want) {
		t.Fatalf("device ids %v, want %v", ids, want)
	}
	if _, err := e.detach(vols[1]); err != nil {
		t.Fatal(err)
	}
	if got := e.mustAttach(e.createVolume("seq", 1).Id, DefaultOMAVMID).Deviceid; got != 2 {
		t.Fatalf("after freeing 2, next id %d", got)
	}
}

// The per-VM limit counts data disks; ids run to limit + 1 because 3 is skipped.
func TestDataDiskLimit(t *testing.T) {
	w := DefaultWorld()
	w.VirtualMachines[0].MaxDataVolumes = 3
	e := newEnv(t, Options{World: w})
	var ids []int64
	for i := 0; i < 3; i++ {
		ids = append(ids, e.mustAttach(e.createVolume("lim", 1).Id, DefaultOMAVMID).Deviceid)
	}
	if want := []int64{1, 2, 4}; !equalInts(ids, want) {
		t.Fatalf("ids %v, want %v", ids, want)
	}
	extra := e.createVolume("lim", 1)
	_, err := e.attach(extra.Id, DefaultOMAVMID)
	wantErr(t, err, jobErr(431, "The specified VM already has the maximum number of data disks (3) attached. Please specify another VM."))
	if got := e.volume(extra.Id); got.Virtualmachineid != "" || got.State != "Allocated" {
		t.Fatalf("refused attach changed the volume: %+v", got)
	}
	// The default limit is 6: ids 1, 2, 4, 5, 6, 7.
	d := newEnv(t, Options{})
	ids = nil
	for i := 0; i < DefaultMaxDataVolumes; i++ {
		ids = append(ids, d.mustAttach(d.createVolume("lim", 1).Id, DefaultOMAVMID).Deviceid)
	}
	if want := []int64{1, 2, 4, 5, 6, 7}; !equalInts(ids, want) {
		t.Fatalf("default ids %v, want %v", ids, want)
	}
}

// A change becomes visible only when its job completes.
func TestChangesWaitForTheJob(t *testing.T) {
	e := newEnv(t, Options{JobLatency: 300 * time.Millisecond})
	cp := e.cs.Volume.NewCreateVolumeParams()
	cp.SetZoneid(DefaultZoneID)
	cp.SetDiskofferingid(DefaultDiskOfferingID)
	cp.SetSize(1)
	created, err := e.cs.Volume.CreateVolume(cp)
	if err != nil {
		t.Fatal(err)
	}
	e.waitJob(created.JobID)
	att, err := e.cs.Volume.AttachVolume(e.cs.Volume.NewAttachVolumeParams(created.Id, DefaultOMAVMID))
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	if v := e.volume(created.Id); v.Virtualmachineid != "" || v.State != "Allocated" {
		t.Fatalf("attach visible before its job completed: %+v", v)
	}
	if r, _ := e.cs.Asyncjob.QueryAsyncJobResult(e.cs.Asyncjob.NewQueryAsyncJobResultParams(att.JobID)); r.Jobstatus != jobPending {
		t.Fatalf("job not pending: %+v", r)
	}
	e.waitJob(att.JobID)
	if waited := time.Since(started); waited < 200*time.Millisecond {
		t.Fatalf("job completed after %v, latency is 300ms", waited)
	}
	if v := e.volume(created.Id); v.Virtualmachineid != DefaultOMAVMID {
		t.Fatalf("attach not visible after its job: %+v", v)
	}
}

// A volume an attach or detach job is working on can be neither deleted nor detached
// until the job has completed; afterwards the usual rules apply.
func TestNoDeleteOrDetachDuringAJob(t *testing.T) {
	e := newEnv(t, Options{JobLatency: 300 * time.Millisecond})
	v := e.createVolume("busy-disk", 1)
	del := func() error {
		_, err := e.cs.Volume.DeleteVolume(e.cs.Volume.NewDeleteVolumeParams(v.Id))
		return err
	}
	detach := func() error {
		p := e.cs.Volume.NewDetachVolumeParams()
		p.SetId(v.Id)
		_, err := e.cs.Volume.DetachVolume(p)
		return err
	}

	att, err := e.cs.Volume.AttachVolume(e.cs.Volume.NewAttachVolumeParams(v.Id, DefaultOMAVMID))
	if err != nil {
		t.Fatal(err)
	}
	attaching := apiErr(431, 4350, "Volume "+v.Id+" is being attached by a job in progress; retry once the job has completed")
	wantErr(t, del(), attaching)
	wantErr(t, detach(), attaching)
	if r := e.waitJob(att.JobID); r.Jobstatus != jobSucceeded {
		t.Fatalf("the attach job failed: %s", r.Jobresult)
	}

	p := e.cs.Volume.NewDetachVolumeParams()
	p.SetId(v.Id)
	det, err := e.cs.Volume.DetachVolume(p)
	if err != nil {
		t.Fatal(err)
	}
	detaching := apiErr(431, 4350, "Volume "+v.Id+" is being detached by a job in progress; retry once the job has completed")
	wantErr(t, del(), detaching)
	wantErr(t, detach(), detaching)
	if r := e.waitJob(det.JobID); r.Jobstatus != jobSucceeded {
		t.Fatalf("the detach job failed: %s", r.Jobresult)
	}
	if err := del(); err != nil {
		t.Fatalf("deleting the detached volume: %v", err)
	}
}

func TestListVolumesFilters(t *testing.T) {
	e := newEnv(t, Options{})
	a, b := e.createVolume("alpha-disk", 1), e.createVolume("beta-disk", 1)
	e.mustAttach(b.Id, DefaultOMAVMID)

	count := func(kv ...string) (int, []string) {
		t.Helper()
		p := e.cs.Volume.NewListVolumesParams()
		for i := 0; i < len(kv); i += 2 {
			switch kv[i] {
			case "keyword":
				p.SetKeyword(kv[i+1])
			case "type":
				p.SetType(kv[i+1])
			case "virtualmachineid":
				p.SetVirtualmachineid(kv[i+1])
			case "ids":
				p.SetIds([]string{a.Id, b.Id})
			case "page":
				p.SetPage(atoi(kv[i+1]))
			case "pagesize":
				p.SetPagesize(atoi(kv[i+1]))
			}
		}
		l, err := e.cs.Volume.ListVolumes(p)
		if err != nil {
			t.Fatalf("listVolumes %v: %v", kv, err)
		}
		var names []string
		for _, v := range l.Volumes {
			names = append(names, v.Name)
		}
		return l.Count, names
	}
	if n, names := count("keyword", "ALPHA"); n != 1 || names[0] != "alpha-disk" {
		t.Errorf("keyword: %d %v", n, names)
	}
	if n, names := count("type", "ROOT"); n != 1 || names[0] != "ROOT-1" {
		t.Errorf("type ROOT: %d %v", n, names)
	}
	if n, _ := count("virtualmachineid", DefaultOMAVMID); n != 2 { // ROOT + beta
		t.Errorf("virtualmachineid: %d", n)
	}
	if n, _ := count("ids", ""); n != 2 {
		t.Errorf("ids: %d", n)
	}
	// count is the number of matches; the page holds at most pagesize of them.
	if n, names := count("page", "2", "pagesize", "2"); n != 3 || len(names) != 1 || names[0] != "beta-disk" {
		t.Errorf("page 2 of 2: %d %v", n, names)
	}
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}
