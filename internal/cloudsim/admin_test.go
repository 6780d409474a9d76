package cloudsim

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func getState(t *testing.T, e *env) State {
	t.Helper()
	resp, err := http.Get(e.srv.URL + "/admin/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st State
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestAdminStateAndCounters(t *testing.T) {
	e := newEnv(t, Options{})
	before := time.Now()
	v := e.createVolume("counted", 1) // createVolume + one queryAsyncJobResult
	e.mustAttach(v.Id, DefaultOMAVMID)
	for i := 0; i < 3; i++ {
		if _, err := e.cs.Zone.ListZones(e.cs.Zone.NewListZonesParams()); err != nil {
			t.Fatal(err)
		}
	}
	e.raw(http.MethodGet, values("command", "noSuchCommand"))

	st := getState(t, e)
	if st.Calls["listZones"] != 3 || st.Calls["createVolume"] != 1 || st.Calls["attachVolume"] != 1 ||
		st.Calls["queryAsyncJobResult"] != 2 || st.Calls["noSuchCommand"] != 1 {
		t.Fatalf("calls = %v", st.Calls)
	}
	if times := st.CallTimes["listZones"]; len(times) != 3 || times[0].Before(before) || times[2].Before(times[0]) {
		t.Fatalf("call times = %v", times)
	}
	if len(st.Volumes) != 2 || len(st.Jobs) != 2 || st.VirtualMachines[0].DataVolumes != 1 {
		t.Fatalf("state = %+v", st)
	}
	var attached *Volume
	for i := range st.Volumes {
		if st.Volumes[i].ID == v.Id {
			attached = &st.Volumes[i]
		}
	}
	if attached == nil || *attached.DeviceID != 1 || attached.State != "Ready" || attached.SizeBytes != gib {
		t.Fatalf("volume in state = %+v", attached)
	}

	resp, err := http.Post(e.srv.URL+"/admin/reset-counters", "", nil)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("reset: %v %v", resp, err)
	}
	resp.Body.Close()
	if st := getState(t, e); len(st.Calls) != 0 || len(st.CallTimes) != 0 || len(st.Volumes) != 2 {
		t.Fatalf("after reset: calls %v, volumes %d", st.Calls, len(st.Volumes))
	}
	// The admin API answers only under /admin/, with its own methods.
	if resp, _ := http.Get(e.srv.URL + "/admin/faults/x"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /admin/faults/x: %d", resp.StatusCode)
	}
	if resp, _ := http.Post(e.srv.URL+"/admin/state", "", nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /admin/state: %d", resp.StatusCode)
	}
}

func TestAdminVMState(t *testing.T) {
	e := newEnv(t, Options{})
	put := func(id, body string) int {
		req, _ := http.NewRequest(http.MethodPut, e.srv.URL+"/admin/virtualmachines/"+id+"/state", strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := put(DefaultOMAVMID, `{"state":"Stopped"}`); code != http.StatusNoContent {
		t.Fatalf("PUT state: %d", code)
	}
	p := e.cs.VirtualMachine.NewListVirtualMachinesParams()
	p.SetId(DefaultOMAVMID)
	l, err := e.cs.VirtualMachine.ListVirtualMachines(p)
	if err != nil || l.Count != 1 || l.VirtualMachines[0].State != "Stopped" {
		t.Fatalf("listVirtualMachines: %+v, %v", l, err)
	}
	if code := put(DefaultOMAVMID, `{"state":"Sleeping"}`); code != http.StatusBadRequest {
		t.Errorf("unknown state: %d", code)
	}
	if code := put("nope", `{"state":"Stopped"}`); code != http.StatusBadRequest {
		t.Errorf("unknown VM: %d", code)
	}
}
