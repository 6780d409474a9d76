package world

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/migratekit/ossea-operator/internal/cloudsim"
)

// TestCallRules feeds CallRules calls as a proxy would, against a made-up simulator state.
func TestCallRules(t *testing.T) {
	const (
		vol      = "5d1b6c8e-2f0a-4b8e-9d3c-7a6b5c4d3e2f"
		uid      = "0123abcd-0000-4000-8000-000000000001"
		name     = "mig_vm_disk0_0123abcd"
		jobID    = "9f8e7d6c-0000-4000-8000-000000000001"
		uidTag   = "ossea.migratekit.io/uid"
		retained = "ossea.migratekit.io/retained"
	)
	done := time.Now()
	params := func(kv ...string) url.Values {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	attachReply := []byte(`{"attachvolumeresponse":{"jobid":"` + jobID + `"}}`)
	cases := []struct {
		name      string
		deleting  bool
		tagged    bool       // the volume carries its ownership tag
		jobDone   bool       // the simulator has finished the attach job
		jobKnown  bool       // the attach's reply reached the manager
		restarted bool       // the manager was replaced since
		recorded  bool       // the job is recorded in the object's status
		command   string     // the call checked
		params    url.Values // its parameters
		wantFound string     // a part of the problem, "" for none
	}{
		{name: "delete during a known attach job", jobKnown: true, command: "deleteVolume", params: params("id", vol),
			wantFound: "deleteVolume of volume " + vol + " while the manager's attachVolume job " + jobID},
		{name: "detach during a known attach job", jobKnown: true, command: "detachVolume", params: params("id", vol),
			wantFound: "detachVolume of volume " + vol},
		{name: "delete after the job ended", jobKnown: true, jobDone: true, command: "deleteVolume", params: params("id", vol)},
		{name: "delete during a job whose reply was lost", command: "deleteVolume", params: params("id", vol)},
		{name: "delete during a job a replaced manager learnt and never recorded", jobKnown: true, restarted: true,
			command: "deleteVolume", params: params("id", vol)},
		{name: "delete during a job a replaced manager recorded in status", jobKnown: true, restarted: true, recorded: true,
			command: "deleteVolume", params: params("id", vol), wantFound: "deleteVolume of volume " + vol},
		{name: "attach while not deleting", command: "attachVolume", params: params("id", vol, "virtualmachineid", "vm")},
		{name: "attach while deleting", deleting: true, command: "attachVolume", params: params("id", vol, "virtualmachineid", "vm"),
			wantFound: "attachVolume of " + vol + " for mv-0, which was being deleted"},
		{name: "create while deleting", deleting: true, command: "createVolume", params: params("name", name),
			wantFound: "createVolume of " + name},
		{name: "a volume not named by the operator is no one's", deleting: true, command: "createVolume", params: params("name", "other")},
		{name: "normal-path tags while deleting", deleting: true, tagged: true, command: "createTags",
			params:    params("resourcetype", "Volume", "resourceids", vol, "tags[0].key", "wave", "tags[0].value", "3"),
			wantFound: "createTags of " + vol},
		{name: "teardown's retained tag", deleting: true, tagged: true, command: "createTags",
			params: params("resourcetype", "Volume", "resourceids", vol, "tags[0].key", retained, "tags[0].value", "true")},
		{name: "teardown's ownership tags on an untagged volume", deleting: true, command: "createTags",
			params: params("resourcetype", "Volume", "resourceids", vol, "tags[0].key", uidTag, "tags[0].value", uid)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			job := cloudsim.Job{ID: jobID, Command: "attachVolume", InstanceID: vol, Created: done.Add(-time.Second)}
			if tc.jobDone {
				job.Completed, job.Status = &done, 1
			}
			v := cloudsim.Volume{ID: vol, Name: name, Type: "DATADISK"}
			if tc.tagged {
				v.Tags = []cloudsim.Tag{{Key: uidTag, Value: uid}}
			}
			k := &CallRules{
				State: func() (cloudsim.State, error) {
					return cloudsim.State{Volumes: []cloudsim.Volume{v}, Jobs: []cloudsim.Job{job}}, nil
				},
				Deleting: func(uid8 string) (string, bool) { return "mv-0", uid8 == uid[:8] && tc.deleting },
				Recorded: func(v, j string) bool { return tc.recorded && v == vol && j == jobID },
			}
			if tc.jobKnown {
				k.After(k.Generation(), "attachVolume", params("id", vol, "virtualmachineid", "vm"), attachReply)
			}
			if tc.restarted {
				k.ManagerRestarted()
			}
			if !k.Checks(tc.command) {
				t.Fatalf("%s is not checked", tc.command)
			}
			got := k.Before(tc.command, tc.params)
			if (tc.wantFound == "") != (got == "") || !strings.Contains(got, tc.wantFound) {
				t.Fatalf("problem %q, want one containing %q", got, tc.wantFound)
			}
		})
	}
}
