package cloudstack

import (
	"strings"
	"time"

	csgo "github.com/apache/cloudstack-go/v2/cloudstack"
)

// CloudStack's date format, e.g. 2025-03-01T12:00:00+0000.
const csTimeLayout = "2006-01-02T15:04:05-0700"

func volumeFrom(v *csgo.Volume) Volume {
	out := Volume{
		ID:               v.Id,
		Name:             v.Name,
		Type:             v.Type,
		State:            v.State,
		ZoneID:           v.Zoneid,
		DiskOfferingID:   v.Diskofferingid,
		SizeBytes:        v.Size,
		VirtualMachineID: v.Virtualmachineid,
		VMState:          v.Vmstate,
	}
	// cloudstack-go decodes a missing deviceid as 0, which is also the ROOT disk's id, so
	// the id only means something while the volume is attached.
	if v.Virtualmachineid != "" {
		id := v.Deviceid
		out.DeviceID = &id
	}
	if len(v.Tags) > 0 {
		out.Tags = make(map[string]string, len(v.Tags))
		for _, t := range v.Tags {
			out.Tags[t.Key] = t.Value
		}
	}
	if t, err := time.Parse(csTimeLayout, v.Created); err == nil {
		out.Created = t
	}
	return out
}

// matches applies a query on the client side too: CloudStack's name filter follows the
// database collation (case-insensitive) and several tags filter as "any", not "all".
func (q VolumeQuery) matches(v *Volume) bool {
	if q.Name != "" && v.Name != q.Name {
		return false
	}
	if q.ZoneID != "" && !strings.EqualFold(v.ZoneID, q.ZoneID) {
		return false
	}
	if q.VirtualMachineID != "" && !strings.EqualFold(v.VirtualMachineID, q.VirtualMachineID) {
		return false
	}
	if q.Type != "" && !strings.EqualFold(v.Type, q.Type) {
		return false
	}
	for k, want := range q.Tags {
		if got, ok := v.Tags[k]; !ok || got != want {
			return false
		}
	}
	return true
}

// shortCommand turns a job's cmd (a Java class such as
// org.apache.cloudstack.api.command.user.volume.AttachVolumeCmd) into "AttachVolume".
func shortCommand(cmd string) string {
	if i := strings.LastIndexByte(cmd, '.'); i >= 0 {
		cmd = cmd[i+1:]
	}
	return strings.TrimSuffix(cmd, "Cmd")
}
