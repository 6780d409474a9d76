package cloudstack

import (
	"testing"

	csgo "github.com/apache/cloudstack-go/v2/cloudstack"
)

func TestVolumeFrom(t *testing.T) {
	detached := volumeFrom(&csgo.Volume{Id: "v", Deviceid: 0, Created: "2026-03-01T12:00:00+0000",
		Tags: []csgo.Tags{{Key: "k", Value: "v"}}})
	if detached.DeviceID != nil || detached.Attached() || detached.Tags["k"] != "v" || detached.Created.IsZero() {
		t.Fatalf("detached: %+v", detached)
	}
	root := volumeFrom(&csgo.Volume{Id: "r", Type: VolumeTypeRoot, Virtualmachineid: "vm", Deviceid: 0})
	if root.DeviceID == nil || *root.DeviceID != 0 {
		t.Fatalf("an attached ROOT disk has device id 0: %+v", root)
	}
}

func TestVolumeQueryMatches(t *testing.T) {
	v := &Volume{Name: "mig_vm_disk0_abc", ZoneID: "Z", VirtualMachineID: "VM", Type: VolumeTypeDataDisk,
		Tags: map[string]string{"uid": "1", "job": "j"}}
	for q, want := range map[*VolumeQuery]bool{
		{}: true,
		{Name: "mig_vm_disk0_abc", Tags: map[string]string{"uid": "1"}}: true,
		{Name: "MIG_VM_DISK0_ABC"}:                                      false, // the database collation would match it
		{Tags: map[string]string{"uid": "1", "job": "other"}}:           false, // CloudStack may OR tags
		{Tags: map[string]string{"missing": ""}}:                        false,
		{ZoneID: "z", VirtualMachineID: "vm", Type: "datadisk"}:         true,
		{ZoneID: "other"}:           false,
		{VirtualMachineID: "other"}: false,
		{Type: VolumeTypeRoot}:      false,
	} {
		if got := q.matches(v); got != want {
			t.Errorf("%+v matches = %v, want %v", *q, got, want)
		}
	}
}

func TestShortCommand(t *testing.T) {
	for in, want := range map[string]string{
		"org.apache.cloudstack.api.command.user.volume.AttachVolumeCmd": "AttachVolume",
		"createVolume": "createVolume",
		"":             "",
	} {
		if got := shortCommand(in); got != want {
			t.Errorf("shortCommand(%q) = %q", in, got)
		}
	}
}
