package cloudsim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadExampleWorld(t *testing.T) {
	w, err := LoadWorld("testdata/world.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Accounts) != 2 || len(w.Zones) != 2 || len(w.DiskOfferings) != 2 || len(w.VirtualMachines) != 3 {
		t.Fatalf("world = %+v", w)
	}
	oma := w.VirtualMachines[0]
	if oma.Local == nil || oma.Local.ByIDDir != "/run/cloudsim/by-id" || oma.Local.Bus != "virtio" || oma.MaxDataVolumes != 6 {
		t.Fatalf("oma = %+v", oma)
	}
	if far := w.VirtualMachines[1]; far.State != "Running" || far.Account != "admin" || far.MaxDataVolumes != DefaultMaxDataVolumes {
		t.Fatalf("defaults not applied: %+v", far)
	}
	if target := w.VirtualMachines[2]; target.State != "Stopped" || target.Local != nil || target.Hypervisor != "KVM" {
		t.Fatalf("target = %+v", target)
	}
	if w.Accounts[1].DomainID != DefaultDomainID || w.Accounts[1].ID == "" || w.Accounts[1].ID == w.Accounts[0].ID {
		t.Fatalf("account defaults: %+v", w.Accounts[1])
	}
}

func TestDefaultWorldRoundTrips(t *testing.T) {
	b, err := DefaultWorld().YAML()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "w.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := LoadWorld(path)
	if err != nil {
		t.Fatalf("printed default world does not load: %v\n%s", err, b)
	}
	if w.Accounts[0].APIKey != DefaultAPIKey || w.VirtualMachines[0].ID != DefaultOMAVMID || !w.DiskOfferings[0].Customized {
		t.Fatalf("round trip: %+v", w)
	}
}

func TestInvalidWorlds(t *testing.T) {
	for name, yaml := range map[string]string{
		"no accounts":     "zones: []",
		"unknown field":   "accounts: [{name: a, apiKey: k, secretKey: s}]\nflavours: []",
		"dangling zone":   "accounts: [{name: a, apiKey: k, secretKey: s}]\nvirtualMachines: [{id: v, name: v, zone: nowhere}]",
		"duplicate id":    "accounts: [{name: a, apiKey: k, secretKey: s}]\nzones: [{id: x, name: z}]\ndiskOfferings: [{id: x, name: o, customized: true}]",
		"fixed size zero": "accounts: [{name: a, apiKey: k, secretKey: s}]\ndiskOfferings: [{id: o, name: o}]",
		"bad vm state":    "accounts: [{name: a, apiKey: k, secretKey: s}]\nzones: [{id: z, name: z}]\nvirtualMachines: [{id: v, name: v, zone: z, state: Napping}]",
		"local half set":  "accounts: [{name: a, apiKey: k, secretKey: s}]\nzones: [{id: z, name: z}]\nvirtualMachines: [{id: v, name: v, zone: z, local: {byIdDir: /x}}]",
		"bad hypervisor":  "accounts: [{name: a, apiKey: k, secretKey: s}]\nzones: [{id: z, name: z}]\nvirtualMachines: [{id: v, name: v, zone: z, hypervisor: QEMU}]",
	} {
		path := filepath.Join(t.TempDir(), "w.yaml")
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadWorld(path); err == nil {
			t.Errorf("%s: loaded", name)
		} else if !strings.Contains(err.Error(), "w.yaml") {
			t.Errorf("%s: error does not name the file: %v", name, err)
		}
	}
}

// Restarting on the same state file keeps volumes, devices, tags, removed ids
// and VM states; a job pending at shutdown completes at its due time after it.
func TestStateFileSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	e := newEnv(t, Options{StateFile: path})
	first := e.sim
	kept := e.createVolume("kept", 1)
	e.mustAttach(kept.Id, DefaultOMAVMID)
	if _, err := e.async.Resourcetags.CreateTags(e.async.Resourcetags.NewCreateTagsParams([]string{kept.Id}, "Volume", map[string]string{"k": "v"})); err != nil {
		t.Fatal(err)
	}
	gone := e.createVolume("gone", 1)
	if _, err := e.cs.Volume.DeleteVolume(e.cs.Volume.NewDeleteVolumeParams(gone.Id)); err != nil {
		t.Fatal(err)
	}
	if err := first.SetVMState(DefaultOMAVMID, "Stopped"); err != nil {
		t.Fatal(err)
	}
	// A job still pending when the process stops.
	slow := e.createVolume("slow", 1)
	first.mu.Lock()
	first.opts.JobLatency = 500 * time.Millisecond
	first.mu.Unlock()
	pending, err := e.cs.Volume.AttachVolume(e.cs.Volume.NewAttachVolumeParams(slow.Id, DefaultOMAVMID))
	if err != nil {
		t.Fatal(err)
	}
	if st := first.Snapshot(); st.Jobs[len(st.Jobs)-1].Status != jobPending {
		t.Fatal("attach job done before shutdown; the test needs it pending")
	}
	e.srv.Close()
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	r := newEnv(t, Options{StateFile: path})
	got := r.volume(kept.Id)
	if got.Deviceid != 1 || got.State != "Ready" || len(got.Tags) != 1 || got.Vmstate != "Stopped" {
		t.Fatalf("after restart: %+v", got)
	}
	if res := r.waitJob(pending.JobID); res.Jobstatus != jobSucceeded {
		t.Fatalf("pending job after restart: %+v", res)
	}
	if r.volume(slow.Id).Deviceid != 2 {
		t.Fatal("job pending at shutdown did not attach after restart")
	}
	_, err = r.cs.Volume.DeleteVolume(r.cs.Volume.NewDeleteVolumeParams(gone.Id))
	if err == nil || !strings.Contains(err.Error(), "Unable to find volume with ID") {
		t.Fatalf("deleted id after restart: %v", err)
	}
	if n := len(r.sim.Snapshot().Volumes); n != 3 { // ROOT, kept, slow: no second ROOT
		t.Fatalf("%d volumes after restart", n)
	}
}
