package cloudsim

import (
	"strings"
	"testing"
	"time"

	"github.com/apache/cloudstack-go/v2/cloudstack"
)

const (
	zone2ID    = "0a7c5b1e-3d2f-4c8b-9e6a-000000000002"
	fixedOffID = "5f3d9a2c-8b1e-4f6d-a7c4-000000000002"
	farVMID    = "9c1e4b7d-2a6f-4d3c-8e5b-000000000002"
)

// twoZoneWorld adds a second zone with a VM, a fixed offering and a limited account.
func twoZoneWorld() *World {
	w := DefaultWorld()
	w.Zones = append(w.Zones, Zone{ID: zone2ID, Name: "sim-zone-2"})
	w.DiskOfferings = append(w.DiskOfferings, DiskOffering{ID: fixedOffID, Name: "Small", DiskSizeGB: 5})
	w.VirtualMachines = append(w.VirtualMachines, VirtualMachine{ID: farVMID, Name: "far", Zone: zone2ID})
	w.Accounts = append(w.Accounts, Account{Name: "limited", APIKey: "limited-key", SecretKey: "limited-secret", VolumeLimit: 2})
	return w
}

// Each row of the reference's "Real error texts" table, through the real client,
// with the code, the class (sync answer or failed job) and the exact text.
func TestReferenceErrorTable(t *testing.T) {
	const unknownVM = "00000000-0000-4000-8000-00000000dead"
	rows := []struct {
		name string
		run  func(e *env) error
		want string
	}{
		{"attach an attached volume (job 431)", func(e *env) error {
			v := e.createVolume("a", 1)
			e.mustAttach(v.Id, DefaultOMAVMID)
			_, err := e.attach(v.Id, DefaultOMAVMID)
			return err
		}, jobErr(431, "Please specify a volume that is not attached to any VM.")},

		{"attach to an unknown VM id (sync 431/9999)", func(e *env) error {
			v := e.createVolume("a", 1)
			_, err := e.attach(v.Id, unknownVM)
			return err
		}, apiErr(431, 9999, "Unable to execute API command attachvolume due to invalid value. Invalid parameter virtualmachineid value="+unknownVM+
			" due to incorrect long value format, or entity does not exist or due to incorrect parameter annotation for the field in api cmd class.")},

		{"VM not Running/Stopped (job 431)", func(e *env) error {
			v := e.createVolume("a", 1)
			if err := e.sim.SetVMState(DefaultOMAVMID, "Destroyed"); err != nil {
				t.Fatal(err)
			}
			_, err := e.attach(v.Id, DefaultOMAVMID)
			return err
		}, jobErr(431, "Please specify a VM that is either running or stopped.")},

		{"VM in another zone (job 431)", func(e *env) error {
			v := e.createVolume("a", 1)
			_, err := e.attach(v.Id, farVMID)
			return err
		}, jobErr(431, "Please specify a VM that is in the same zone as the volume.")},

		{"too many data disks (job 431)", func(e *env) error {
			for i := 0; i < DefaultMaxDataVolumes; i++ {
				e.mustAttach(e.createVolume("a", 1).Id, DefaultOMAVMID)
			}
			_, err := e.attach(e.createVolume("b", 1).Id, DefaultOMAVMID)
			return err
		}, jobErr(431, "The specified VM already has the maximum number of data disks (6) attached. Please specify another VM.")},

		{"delete an attached volume (sync 431/4350)", func(e *env) error {
			v := e.createVolume("a", 1)
			e.mustAttach(v.Id, DefaultOMAVMID)
			_, err := e.cs.Volume.DeleteVolume(e.cs.Volume.NewDeleteVolumeParams(v.Id))
			return err
		}, apiErr(431, 4350, "Please specify a volume that is not attached to any VM.")},

		{"detach a volume that is not attached (job 431)", func(e *env) error {
			_, err := e.detach(e.createVolume("a", 1).Id)
			return err
		}, jobErr(431, "The specified volume is not attached to a VM.")},

		{"account volume limit (sync 535/4370)", func(e *env) error {
			limited := cloudstack.NewClient(e.api, "limited-key", "limited-secret", false)
			var err error
			for i := 0; i < 3 && err == nil; i++ {
				p := limited.Volume.NewCreateVolumeParams()
				p.SetZoneid(DefaultZoneID)
				p.SetDiskofferingid(DefaultDiskOfferingID)
				p.SetSize(1)
				_, err = limited.Volume.CreateVolume(p)
			}
			return err
		}, apiErr(535, 4370, "Maximum amount of resources of Type = 'volume' for Account Name = limited in Domain Id = 1 is exceeded: "+
			"Account Resource Limit = 2, Current Account Resource Amount = 2, Requested Resource Amount = 1.")},

		{"missing parameter (sync 431/9999)", func(e *env) error {
			p := e.cs.Volume.NewCreateVolumeParams()
			p.SetDiskofferingid(DefaultDiskOfferingID)
			p.SetSize(1)
			_, err := e.cs.Volume.CreateVolume(p)
			return err
		}, apiErr(431, 9999, "Unable to execute API command createvolume due to missing parameter zoneid")},

		// The offering rules of the reference's Volumes section.
		{"custom offering without size (sync 431/4350)", func(e *env) error {
			p := e.cs.Volume.NewCreateVolumeParams()
			p.SetZoneid(DefaultZoneID)
			p.SetDiskofferingid(DefaultDiskOfferingID)
			_, err := e.cs.Volume.CreateVolume(p)
			return err
		}, apiErr(431, 4350, "This disk offering requires a custom size specified")},

		{"fixed offering with size (sync 431/4350)", func(e *env) error {
			p := e.cs.Volume.NewCreateVolumeParams()
			p.SetZoneid(DefaultZoneID)
			p.SetDiskofferingid(fixedOffID)
			p.SetSize(3)
			_, err := e.cs.Volume.CreateVolume(p)
			return err
		}, apiErr(431, 4350, "This disk offering does not allow custom size")},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			e := newEnv(t, Options{World: twoZoneWorld()})
			wantErr(t, row.run(e), row.want)
		})
	}
}

// The same job failures seen by a caller polling with the plain client: the
// job's status, result code and result object.
func TestFailedJobWithPlainClient(t *testing.T) {
	e := newEnv(t, Options{JobLatency: 20 * time.Millisecond})
	cp := e.cs.Volume.NewCreateVolumeParams()
	cp.SetZoneid(DefaultZoneID)
	cp.SetDiskofferingid(DefaultDiskOfferingID)
	cp.SetSize(1)
	v, err := e.cs.Volume.CreateVolume(cp)
	if err != nil {
		t.Fatal(err)
	}
	e.waitJob(v.JobID)
	p := e.cs.Volume.NewDetachVolumeParams()
	p.SetId(v.Id)
	r, err := e.cs.Volume.DetachVolume(p)
	if err != nil || r.JobID == "" {
		t.Fatalf("detachVolume: %+v, %v", r, err)
	}
	res := e.waitJob(r.JobID)
	if res.Jobstatus != jobFailed || res.Jobresultcode != 431 || res.Jobresulttype != "object" ||
		string(res.Jobresult) != `{"errorcode":431,"errortext":"The specified volume is not attached to a VM."}` {
		t.Fatalf("failed job = %+v result %s", res, res.Jobresult)
	}
}

// An explicit device id must be free and in 0..max data volumes + 1, not 3; a
// refusal fails the job with 530 and names the VM by its internal id (the OMA is
// the first VM of the world: 1).
func TestExplicitDeviceID(t *testing.T) {
	for _, tc := range []struct {
		name   string
		device int64
		want   string // "" for success
	}{
		{"taken", 1, jobErr(530, "deviceId 1 is used by vm 1")},
		{"the root's", 0, jobErr(431, "Root volume detach can happen only when vm is in states: Stopped or Destroyed")},
		{"the CD-ROM's", 3, jobErr(530, "deviceId should be 0,1,2,4-7")},
		{"past the limit", 8, jobErr(530, "deviceId should be 0,1,2,4-7")},
		{"negative", -1, jobErr(530, "deviceId should be 0,1,2,4-7")},
		{"free", 5, ""},
		{"the last", 7, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			e.mustAttach(e.createVolume("a", 1).Id, DefaultOMAVMID) // device 1
			b := e.createVolume("b", 1)
			p := e.async.Volume.NewAttachVolumeParams(b.Id, DefaultOMAVMID)
			p.SetDeviceid(tc.device)
			got, err := e.async.Volume.AttachVolume(p)
			if tc.want != "" {
				wantErr(t, err, tc.want)
				if v := e.volume(b.Id); v.Virtualmachineid != "" {
					t.Fatalf("refused attach changed the volume: %+v", v)
				}
				return
			}
			if err != nil || got.Deviceid != tc.device {
				t.Fatalf("explicit free deviceid %d: %+v, %v", tc.device, got, err)
			}
		})
	}
}

// The internal id is the VM's place in the world file: the target is the third.
func TestDeviceIDInUseNamesTheVMsInternalID(t *testing.T) {
	e := newEnv(t, Options{World: handoffWorld()})
	e.mustAttach(e.createVolume("a", 1).Id, targetVMID)
	p := e.async.Volume.NewAttachVolumeParams(e.createVolume("b", 1).Id, targetVMID)
	p.SetDeviceid(1)
	_, err := e.async.Volume.AttachVolume(p)
	wantErr(t, err, jobErr(530, "deviceId 1 is used by vm 3"))
}

func TestDeletedAndUnknownIDs(t *testing.T) {
	e := newEnv(t, Options{})
	v := e.createVolume("a", 1)
	if _, err := e.cs.Volume.DeleteVolume(e.cs.Volume.NewDeleteVolumeParams(v.Id)); err != nil {
		t.Fatal(err)
	}
	// A deleted id still resolves: the failure comes from the rule, not the parser.
	_, err := e.cs.Volume.DeleteVolume(e.cs.Volume.NewDeleteVolumeParams(v.Id))
	if err == nil || !strings.HasPrefix(err.Error(), apiErr(431, 4350, "Unable to find volume with ID: ")) {
		t.Fatalf("second delete: %v", err)
	}
	_, err = e.attach(v.Id, DefaultOMAVMID)
	wantErr(t, err, jobErr(431, "Please specify a volume with the valid type: ROOT or DATADISK"))
	// An id that never existed is the parameter processor's error.
	const never = "11111111-2222-4333-8444-555555555555"
	_, err = e.cs.Volume.DeleteVolume(e.cs.Volume.NewDeleteVolumeParams(never))
	wantErr(t, err, apiErr(431, 9999, "Unable to execute API command deletevolume due to invalid value. Invalid parameter id value="+never+
		" due to incorrect long value format, or entity does not exist or due to incorrect parameter annotation for the field in api cmd class."))
	// cloudstack-go's GetVolumeByID recognises this text as "not found".
	if _, n, err := e.cs.Volume.GetVolumeByID(never); err == nil || n != 0 || !strings.Contains(err.Error(), "No match found for "+never) {
		t.Fatalf("GetVolumeByID(never) = %d, %v", n, err)
	}
}
