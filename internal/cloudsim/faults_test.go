package cloudsim

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Error faults answer 530 or 534 and change nothing.
func TestFaultErrorRate(t *testing.T) {
	e := newEnv(t, Options{Seed: 1, Faults: Faults{ErrorRate: 1, Commands: []string{"createVolume"}}})
	seen := map[string]bool{}
	for i := 0; i < 40; i++ {
		p := e.cs.Volume.NewCreateVolumeParams()
		p.SetZoneid(DefaultZoneID)
		p.SetDiskofferingid(DefaultDiskOfferingID)
		p.SetSize(1)
		_, err := e.cs.Volume.CreateVolume(p)
		switch {
		case err == nil:
			t.Fatal("createVolume succeeded at error rate 1")
		case err.Error() == apiErr(530, 4250, textInternal):
			seen["530"] = true
		case err.Error() == apiErr(534, 4380, textHostUnreachable):
			seen["534"] = true
		default:
			t.Fatalf("unexpected error %v", err)
		}
	}
	if !seen["530"] || !seen["534"] {
		t.Fatalf("kinds seen: %v", seen)
	}
	st := e.sim.Snapshot()
	if len(st.Volumes) != 1 || st.InjectedFaults["error"] != 40 || st.Calls["createVolume"] != 40 {
		t.Fatalf("volumes %d, injected %v, calls %v", len(st.Volumes), st.InjectedFaults, st.Calls)
	}
	// Commands not named are untouched.
	if _, err := e.cs.Zone.ListZones(e.cs.Zone.NewListZonesParams()); err != nil {
		t.Fatalf("listZones with faults on createVolume only: %v", err)
	}
}

// The same seed gives the same faults in the same order; a rate is a rate.
func TestFaultsDeterministicFromSeed(t *testing.T) {
	run := func(seed int64) string {
		e := newEnv(t, Options{Seed: seed, Faults: Faults{ErrorRate: 0.5}})
		var b strings.Builder
		for i := 0; i < 200; i++ {
			b.WriteString(itoa(e.raw(http.MethodGet, values("command", "listZones")).status) + " ")
		}
		return b.String()
	}
	a, b, c := run(42), run(42), run(43)
	if a != b {
		t.Fatal("same seed, different faults")
	}
	if a == c {
		t.Fatal("different seeds, same faults")
	}
	if ok := strings.Count(a, "200 "); ok < 70 || ok > 130 {
		t.Fatalf("%d of 200 succeeded at error rate 0.5", ok)
	}
}

// A lost response still makes the change: the volume exists though the client
// got no answer (a dropped connection or a proxy's 502).
func TestFaultLostResponse(t *testing.T) {
	e := newEnv(t, Options{Seed: 3, Faults: Faults{LostResponseRate: 1, Commands: []string{"createVolume", "attachVolume"}}})
	kinds := map[string]int{}
	for i := 0; i < 20; i++ {
		p := e.cs.Volume.NewCreateVolumeParams()
		p.SetName("lost")
		p.SetZoneid(DefaultZoneID)
		p.SetDiskofferingid(DefaultDiskOfferingID)
		p.SetSize(1)
		_, err := e.cs.Volume.CreateVolume(p)
		switch {
		case err == nil:
			t.Fatal("createVolume answered at lost-response rate 1")
		case strings.Contains(err.Error(), "EOF"):
			kinds["dropped"]++
		case strings.Contains(err.Error(), "invalid character '<'"): // the 502 page
			kinds["502"]++
		default:
			t.Fatalf("unexpected error %v", err)
		}
	}
	if kinds["dropped"] == 0 || kinds["502"] == 0 {
		t.Fatalf("kinds: %v", kinds)
	}
	p := e.cs.Volume.NewListVolumesParams()
	p.SetName("lost")
	l, err := e.cs.Volume.ListVolumes(p)
	if err != nil || l.Count != 20 {
		t.Fatalf("volumes made behind lost responses: %+v, %v", l, err)
	}
	// An async command's job runs even though its job id was lost.
	id := l.Volumes[0].Id
	if _, err := e.attach(id, DefaultOMAVMID); err == nil {
		t.Fatal("attachVolume answered")
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.volume(id).Virtualmachineid != DefaultOMAVMID {
		if time.Now().After(deadline) {
			t.Fatal("attach behind a lost response never happened")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := e.sim.Snapshot().InjectedFaults["lostResponse"]; got != 21 {
		t.Fatalf("lostResponse count %d", got)
	}
}

func TestFaultJobFailure(t *testing.T) {
	e := newEnv(t, Options{Faults: Faults{JobFailureRate: 1, Commands: []string{"attachVolume"}}})
	v := e.createVolume("f", 1) // not faulted: the rate applies to attachVolume only
	_, err := e.attach(v.Id, DefaultOMAVMID)
	wantErr(t, err, jobErr(530, textInternal))
	if got := e.volume(v.Id); got.Virtualmachineid != "" || got.State != "Allocated" {
		t.Fatalf("failed job changed the volume: %+v", got)
	}
	if got := e.sim.Snapshot().InjectedFaults["jobFailure"]; got != 1 {
		t.Fatalf("jobFailure count %d", got)
	}
}

func TestFaultExtraLatency(t *testing.T) {
	e := newEnv(t, Options{Faults: Faults{ExtraLatency: 200 * time.Millisecond, Commands: []string{"listZones"}}})
	start := time.Now()
	if _, err := e.cs.Zone.ListZones(e.cs.Zone.NewListZonesParams()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("listZones took %v with 200ms extra latency", d)
	}
	start = time.Now()
	if _, err := e.cs.Volume.ListVolumes(e.cs.Volume.NewListVolumesParams()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 150*time.Millisecond {
		t.Fatalf("listVolumes took %v; latency applies to listZones only", d)
	}
}

// Faults change at run time through PUT /admin/faults.
func TestAdminFaults(t *testing.T) {
	e := newEnv(t, Options{})
	put := func(body string) (int, string) {
		req, _ := http.NewRequest(http.MethodPut, e.srv.URL+"/admin/faults", strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := put(`{"errorRate":1,"extraLatency":"10ms","commands":["listZones"]}`); code != 200 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	if f := e.sim.Snapshot().Faults; f.ErrorRate != 1 || f.ExtraLatency != 10*time.Millisecond || f.Commands[0] != "listZones" {
		t.Fatalf("faults now %+v", f)
	}
	if _, err := e.cs.Zone.ListZones(e.cs.Zone.NewListZonesParams()); err == nil {
		t.Fatal("listZones succeeded after PUT errorRate 1")
	}
	resp, err := http.Get(e.srv.URL + "/admin/faults")
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if got["extraLatency"] != "10ms" || got["errorRate"] != 1.0 {
		t.Fatalf("GET /admin/faults = %v", got)
	}
	for _, bad := range []string{`{"errorRate":2}`, `{"nonsense":1}`, `{"extraLatency":"soon"}`} {
		if code, _ := put(bad); code != 400 {
			t.Errorf("PUT %s: %d, want 400", bad, code)
		}
	}
	if code, _ := put(`{}`); code != 200 {
		t.Fatal("clearing faults failed")
	}
	if _, err := e.cs.Zone.ListZones(e.cs.Zone.NewListZonesParams()); err != nil {
		t.Fatalf("listZones after clearing faults: %v", err)
	}
}
