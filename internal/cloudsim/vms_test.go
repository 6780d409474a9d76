package cloudsim

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/apache/cloudstack-go/v2/cloudstack"
)

func (e *env) startVM(id string) (*cloudstack.StartVirtualMachineResponse, error) {
	return e.async.VirtualMachine.StartVirtualMachine(e.async.VirtualMachine.NewStartVirtualMachineParams(id))
}

func (e *env) stopVM(id string) (*cloudstack.StopVirtualMachineResponse, error) {
	return e.async.VirtualMachine.StopVirtualMachine(e.async.VirtualMachine.NewStopVirtualMachineParams(id))
}

func (e *env) vmState(id string) string {
	e.t.Helper()
	p := e.cs.VirtualMachine.NewListVirtualMachinesParams()
	p.SetId(id)
	l, err := e.cs.VirtualMachine.ListVirtualMachines(p)
	if err != nil || l.Count != 1 {
		e.t.Fatalf("listVirtualMachines id=%s: %+v, %v", id, l, err)
	}
	return l.VirtualMachines[0].State
}

// startVirtualMachine and stopVirtualMachine through the async client: the job's
// result is the VM; refusals fail the job (or, for the parameters, the call).
func TestStartStopVirtualMachine(t *testing.T) {
	const unknownVM = "00000000-0000-4000-8000-00000000beef"
	rows := []struct {
		name      string
		setup     func(e *env)
		act       func(e *env) (string, error) // the state the job reports
		vm        string
		want      string // error; "" for success
		wantState string // listed afterwards
	}{
		{name: "stop a running VM", vm: runningVMID, wantState: "Stopped",
			act: func(e *env) (string, error) { r, err := e.stopVM(runningVMID); return stateOf(r, err) }},
		{name: "start a stopped VM", vm: targetVMID, wantState: "Running",
			act: func(e *env) (string, error) { r, err := e.startVM(targetVMID); return startedState(r, err) }},
		{name: "stop a stopped VM: nothing to do", vm: targetVMID, wantState: "Stopped",
			act: func(e *env) (string, error) { r, err := e.stopVM(targetVMID); return stateOf(r, err) }},
		{name: "stop a destroyed VM: nothing to do", vm: targetVMID, wantState: "Destroyed",
			setup: func(e *env) { e.setVMState(targetVMID, "Destroyed") },
			act:   func(e *env) (string, error) { r, err := e.stopVM(targetVMID); return stateOf(r, err) }},
		{name: "start a running VM", vm: runningVMID, wantState: "Running",
			act:  func(e *env) (string, error) { r, err := e.startVM(runningVMID); return startedState(r, err) },
			want: jobErr(431, "The virtual machine "+runningVMID+" (running-target) is already running")},
		{name: "start a VM without a root volume", vm: targetVMID, wantState: "Stopped",
			setup: func(e *env) { e.mustDetach(rootOf(targetVMID)) },
			act:   func(e *env) (string, error) { r, err := e.startVM(targetVMID); return startedState(r, err) },
			want:  jobErr(530, "Unable to start VM target: it has no root volume")},
		{name: "start a destroyed VM", vm: targetVMID, wantState: "Destroyed",
			setup: func(e *env) { e.setVMState(targetVMID, "Destroyed") },
			act:   func(e *env) (string, error) { r, err := e.startVM(targetVMID); return startedState(r, err) },
			want:  jobErr(530, "Cannot start VM[User|i-2-3-VM] in Destroyed state")},
		{name: "stop a VM that is starting", vm: targetVMID, wantState: "Starting",
			setup: func(e *env) { e.setVMState(targetVMID, "Starting") },
			act:   func(e *env) (string, error) { r, err := e.stopVM(targetVMID); return stateOf(r, err) },
			want:  jobErr(530, "We cannot stop VM[User|i-2-3-VM] when it is in state Starting")},
		{name: "start an unknown VM", vm: targetVMID, wantState: "Stopped",
			act: func(e *env) (string, error) { r, err := e.startVM(unknownVM); return startedState(r, err) },
			want: apiErr(431, 9999, "Unable to execute API command startvirtualmachine due to invalid value. Invalid parameter id value="+unknownVM+
				" due to incorrect long value format, or entity does not exist or due to incorrect parameter annotation for the field in api cmd class.")},
		{name: "stop another account's VM", vm: runningVMID, wantState: "Running",
			act: func(e *env) (string, error) {
				limited := cloudstack.NewClient(e.api, "limited-key", "limited-secret", false)
				_, err := limited.VirtualMachine.StopVirtualMachine(limited.VirtualMachine.NewStopVirtualMachineParams(runningVMID))
				return "", err
			},
			want: apiErr(531, 4365, textPermission)},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			e := newEnv(t, Options{World: handoffWorld()})
			if row.setup != nil {
				row.setup(e)
			}
			reported, err := row.act(e)
			if row.want != "" {
				wantErr(t, err, row.want)
			} else if err != nil || reported != row.wantState {
				t.Fatalf("job reported %q, %v; want %q", reported, err, row.wantState)
			}
			if got := e.vmState(row.vm); got != row.wantState {
				t.Fatalf("listed as %q, want %q", got, row.wantState)
			}
		})
	}
}

func stateOf(r *cloudstack.StopVirtualMachineResponse, err error) (string, error) {
	if err != nil {
		return "", err
	}
	return r.State, nil
}

func startedState(r *cloudstack.StartVirtualMachineResponse, err error) (string, error) {
	if err != nil {
		return "", err
	}
	return r.State, nil
}

// id is required; its absence is the parameter processor's error.
func TestStartVirtualMachineNeedsID(t *testing.T) {
	e := newEnv(t, Options{})
	rep := e.raw(http.MethodPost, values("command", "startVirtualMachine"))
	body := inner(t, rep.body, "startvirtualmachineresponse")
	if rep.status != 431 || body["errortext"] != "Unable to execute API command startvirtualmachine due to missing parameter id" {
		t.Fatalf("startVirtualMachine without id: %d %s", rep.status, rep.body)
	}
}

// The state changes when the job completes, not when it is asked for; the job
// is a VirtualMachine job and its result the VM.
func TestStopChangesStateWhenTheJobCompletes(t *testing.T) {
	e := newEnv(t, Options{World: handoffWorld(), JobLatency: 300 * time.Millisecond})
	r, err := e.cs.VirtualMachine.StopVirtualMachine(e.cs.VirtualMachine.NewStopVirtualMachineParams(runningVMID))
	if err != nil || r.JobID == "" {
		t.Fatalf("stopVirtualMachine: %+v, %v", r, err)
	}
	if got := e.vmState(runningVMID); got != "Running" {
		t.Fatalf("state %q before the job completed", got)
	}
	res := e.waitJob(r.JobID)
	if res.Jobstatus != jobSucceeded || res.Jobinstancetype != "VirtualMachine" || res.Jobinstanceid != runningVMID ||
		res.Cmd != "org.apache.cloudstack.api.command.user.vm.StopVMCmd" {
		t.Fatalf("stop job = %+v", res)
	}
	vm := inner(t, string(res.Jobresult), "virtualmachine")
	if vm["id"] != runningVMID || vm["state"] != "Stopped" || vm["hypervisor"] != "KVM" {
		t.Fatalf("job result = %s", res.Jobresult)
	}
	if got := e.vmState(runningVMID); got != "Stopped" {
		t.Fatalf("state %q after the job", got)
	}
}

// A running target is stopped through the API, its root replaced, and started again.
func TestStopReplaceRootStart(t *testing.T) {
	e := newEnv(t, Options{World: handoffWorld()})
	root := e.createVolume("migrated-root", 1)
	if _, err := e.attachAt(root.Id, runningVMID, 0); err == nil {
		t.Fatal("root attach to a running VM succeeded")
	}
	if _, err := e.stopVM(runningVMID); err != nil {
		t.Fatal(err)
	}
	e.mustDetach(rootOf(runningVMID))
	if _, err := e.attachAt(root.Id, runningVMID, 0); err != nil {
		t.Fatal(err)
	}
	if r, err := e.startVM(runningVMID); err != nil || r.State != "Running" {
		t.Fatalf("start with the new root: %+v, %v", r, err)
	}
}

// The admin API starts and stops by the same rules, at once.
func TestAdminStartStop(t *testing.T) {
	e := newEnv(t, Options{World: handoffWorld()})
	e.mustDetach(rootOf(targetVMID))
	post := func(id, action string) (int, string) {
		resp, err := http.Post(e.srv.URL+"/admin/virtualmachines/"+id+"/"+action, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ Error string }
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body.Error
	}
	for _, step := range []struct {
		id, action string
		code       int
		text       string
		state      string
	}{
		{runningVMID, "stop", http.StatusNoContent, "", "Stopped"},
		{runningVMID, "stop", http.StatusNoContent, "", "Stopped"},
		{runningVMID, "start", http.StatusNoContent, "", "Running"},
		{runningVMID, "start", http.StatusConflict, "The virtual machine " + runningVMID + " (running-target) is already running", "Running"},
		{targetVMID, "start", http.StatusConflict, "Unable to start VM target: it has no root volume", "Stopped"},
		{"nope", "start", http.StatusNotFound, `cloudsim: unknown VM "nope"`, ""},
	} {
		code, text := post(step.id, step.action)
		if code != step.code || text != step.text {
			t.Fatalf("%s %s: %d %q, want %d %q", step.action, step.id, code, text, step.code, step.text)
		}
		if step.state != "" {
			if got := e.vmState(step.id); got != step.state {
				t.Fatalf("%s %s: state %q, want %q", step.action, step.id, got, step.state)
			}
		}
	}
}
