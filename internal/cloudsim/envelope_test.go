package cloudsim

import (
	"net/http"
	"strings"
	"testing"
)

func TestEmptyListEnvelope(t *testing.T) {
	e := newEnv(t, Options{})
	r := e.raw(http.MethodGet, values("command", "listVolumes", "name", "nothing-has-this-name"))
	if r.status != 200 || r.contentType != contentTypeJSON || r.body != `{"listvolumesresponse":{}}` {
		t.Fatalf("got %d %q %s", r.status, r.contentType, r.body)
	}
	p := e.cs.Volume.NewListVolumesParams()
	p.SetName("nothing-has-this-name")
	l, err := e.cs.Volume.ListVolumes(p)
	if err != nil || l.Count != 0 || len(l.Volumes) != 0 {
		t.Fatalf("client: %+v, %v", l, err)
	}
	for _, cmd := range []string{"listTags", "listAsyncJobs"} {
		if r := e.raw(http.MethodGet, values("command", cmd)); r.body != `{"`+strings.ToLower(cmd)+`response":{}}` {
			t.Errorf("%s: %s", cmd, r.body)
		}
	}
}

// Every answer is one key, <lower-case command>response, with CloudStack's fields.
func TestResponseEnvelopes(t *testing.T) {
	e := newEnv(t, Options{})
	get := func(cmd string, kv ...string) map[string]any {
		t.Helper()
		r := e.raw(http.MethodGet, values(append([]string{"command", cmd}, kv...)...))
		if r.status != 200 || r.contentType != contentTypeJSON {
			t.Fatalf("%s: %d %q %s", cmd, r.status, r.contentType, r.body)
		}
		return inner(t, r.body, strings.ToLower(cmd)+"response")
	}
	first := func(m map[string]any, list string) map[string]any {
		t.Helper()
		if m["count"] != 1.0 {
			t.Fatalf("count = %v in %v", m["count"], m)
		}
		return m[list].([]any)[0].(map[string]any)
	}

	zone := first(get("listZones"), "zone")
	if zone["id"] != DefaultZoneID || zone["name"] != DefaultZoneName || zone["networktype"] != "Advanced" || zone["allocationstate"] != "Enabled" {
		t.Errorf("zone = %v", zone)
	}
	off := first(get("listDiskOfferings"), "diskoffering")
	if off["id"] != DefaultDiskOfferingID || off["disksize"] != 0.0 || off["iscustomized"] != true || off["displaytext"] == nil {
		t.Errorf("diskoffering = %v", off)
	}
	vm := first(get("listVirtualMachines"), "virtualmachine")
	if vm["id"] != DefaultOMAVMID || vm["state"] != "Running" || vm["zoneid"] != DefaultZoneID || vm["hypervisor"] != "KVM" || vm["displayname"] != DefaultOMAVMName {
		t.Errorf("virtualmachine = %v", vm)
	}
	capability := get("listCapabilities")["capability"].(map[string]any)
	if capability["cloudstackversion"] != "4.20.0.0" || capability["customdiskofferingmaxsize"] != 1024.0 {
		t.Errorf("capability = %v", capability)
	}

	r := e.raw(http.MethodPost, values("command", "createVolume", "zoneid", DefaultZoneID, "diskofferingid", DefaultDiskOfferingID, "size", "2"))
	created := inner(t, r.body, "createvolumeresponse")
	if len(created) != 2 || created["id"] == nil || created["jobid"] == nil {
		t.Fatalf("createvolumeresponse = %s", r.body)
	}
	id := created["id"].(string)
	e.waitJob(created["jobid"].(string))
	r = e.raw(http.MethodPost, values("command", "attachVolume", "id", id, "virtualmachineid", DefaultOMAVMID))
	if att := inner(t, r.body, "attachvolumeresponse"); len(att) != 1 || att["jobid"] == nil {
		t.Fatalf("attachvolumeresponse = %s", r.body)
	}
	e.waitJob(inner(t, r.body, "attachvolumeresponse")["jobid"].(string))
	attached := first(get("listVolumes", "id", id), "volume")
	for _, k := range []string{"virtualmachineid", "deviceid", "attached", "vmname", "vmstate"} {
		if attached[k] == nil {
			t.Errorf("attached volume lacks %q: %v", k, attached)
		}
	}
	r = e.raw(http.MethodPost, values("command", "detachVolume", "id", id))
	e.waitJob(inner(t, r.body, "detachvolumeresponse")["jobid"].(string))
	detached := first(get("listVolumes", "id", id), "volume")
	for _, k := range []string{"virtualmachineid", "deviceid", "attached", "vmname", "vmstate"} {
		if _, ok := detached[k]; ok {
			t.Errorf("detached volume still has %q: %v", k, detached)
		}
	}
	if detached["size"] != float64(2*gib) || detached["state"] != "Ready" || detached["type"] != "DATADISK" {
		t.Errorf("detached volume = %v", detached)
	}
	r = e.raw(http.MethodPost, values("command", "deleteVolume", "id", id))
	if r.status != 200 || r.body != `{"deletevolumeresponse":{"success":true}}` {
		t.Fatalf("deleteVolume: %d %s", r.status, r.body)
	}
	if r := e.raw(http.MethodGet, values("command", "listVolumes", "id", id)); r.body != `{"listvolumesresponse":{}}` {
		t.Fatalf("listVolumes after delete: %s", r.body)
	}
}

func TestErrorEnvelope(t *testing.T) {
	e := newEnv(t, Options{})
	r := e.raw(http.MethodPost, values("command", "deleteVolume"))
	want := `{"deletevolumeresponse":{"uuidList":[],"errorcode":431,"cserrorcode":9999,"errortext":"Unable to execute API command deletevolume due to missing parameter id"}}`
	if r.status != 431 || r.contentType != contentTypeJSON || r.body != want {
		t.Fatalf("got %d %q\n%s\nwant\n%s", r.status, r.contentType, r.body, want)
	}
}
