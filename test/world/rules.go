package world

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudsim"
)

// CallRules checks, at the moment each CloudStack call of the manager arrives, the two rules
// a teardown relies on:
//
//	(a) no createVolume, attachVolume or createTags of the normal path for an object that is
//	    being deleted;
//	(b) no deleteVolume or detachVolume of a volume while a job the manager started on it is
//	    unfinished.
//
// For (b) a job counts as started by the manager once its id reached the manager process
// that makes the call, in the reply to the call that started it, or once it is recorded in
// status.pendingJob, which a restarted manager resumes from; whether it is finished is asked
// of the simulator at the moment of the delete or detach, which is exact (the simulator
// completes a job and makes its change under one lock). A job whose reply was lost, or
// reached a manager that died before recording it, is not counted: no manager can know it,
// and CloudStack refuses to delete or detach a volume in transition anyway.
//
// Feed it every call: Before when the call arrives, After with the reply and the
// Generation taken when the call arrived; ManagerRestarted when the manager is replaced.
type CallRules struct {
	// State reads the simulator's state as it is now.
	State func() (cloudsim.State, error)
	// Deleting tells whether the object whose UID begins with uid8 counts as being deleted
	// at this moment, and its name.
	Deleting func(uid8 string) (name string, deleting bool)
	// Recorded, needed only with ManagerRestarted, tells whether the job is recorded in
	// status.pendingJob of the object whose volume it is, at this moment.
	Recorded func(volumeID, jobID string) bool

	mu         sync.Mutex
	generation int                 // the manager process now running, counted from 0
	jobs       map[string]knownJob // by "<job id>/<volume id>": the jobs whose id reached the manager
	ended      map[string]bool     // the keys of jobs seen finished
}

type knownJob struct {
	volumeID   string
	generation int // the manager process that learnt it
}

// ManagerRestarted notes that the manager process was replaced: the jobs the old one
// learnt count for the new one only once they are recorded in status.
func (k *CallRules) ManagerRestarted() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.generation++
}

// Generation is the manager process a call arriving now comes from.
func (k *CallRules) Generation() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.generation
}

// Starts and stops are the commands CallRules looks at.
var ruleCommands = map[string]bool{
	"createVolume": true, "attachVolume": true, "createTags": true, "detachVolume": true, "deleteVolume": true,
}

// Checks reports whether CallRules has anything to say about a command, so a proxy need not
// read the replies of the others.
func (k *CallRules) Checks(command string) bool { return ruleCommands[command] }

// Before returns what is wrong with the call arriving now ("" when nothing is).
func (k *CallRules) Before(command string, params url.Values) string {
	switch command {
	case "detachVolume", "deleteVolume":
		return k.jobInFlight(command, params.Get("id"))
	case "createVolume":
		return k.startWhileDeleting(command, params.Get("name"), "")
	case "attachVolume":
		return k.startOfVolume(command, params.Get("id"), nil)
	case "createTags":
		if !strings.EqualFold(params.Get("resourcetype"), "Volume") {
			return ""
		}
		tags := tagParams(params)
		var problems []string
		for _, id := range strings.Split(params.Get("resourceids"), ",") {
			if p := k.startOfVolume(command, id, tags); p != "" {
				problems = append(problems, p)
			}
		}
		return strings.Join(problems, "; ")
	}
	return ""
}

// After learns the job a call started from its reply; generation is the Generation taken
// when the call arrived.
func (k *CallRules) After(generation int, command string, params url.Values, reply []byte) {
	var volumes []string
	switch command {
	case "attachVolume", "detachVolume":
		volumes = []string{params.Get("id")}
	case "createTags":
		volumes = strings.Split(params.Get("resourceids"), ",")
	case "createVolume":
		// The volume's id is in the reply.
	default:
		return
	}
	var env map[string]struct {
		ID    string `json:"id"`
		JobID string `json:"jobid"`
	}
	if json.Unmarshal(reply, &env) != nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.jobs == nil {
		k.jobs, k.ended = map[string]knownJob{}, map[string]bool{}
	}
	// Keyed by job and volume: one createTags job may tag several volumes.
	for _, r := range env {
		if r.JobID == "" {
			continue
		}
		if command == "createVolume" {
			volumes = []string{r.ID}
		}
		for _, v := range volumes {
			k.jobs[r.JobID+"/"+v] = knownJob{volumeID: v, generation: generation}
		}
	}
}

// jobInFlight is rule (b).
func (k *CallRules) jobInFlight(command, volumeID string) string {
	k.mu.Lock()
	open := map[string]string{} // job id -> its key
	gone := map[string]bool{}   // job id -> learnt by a manager process that is gone
	for key, j := range k.jobs {
		if strings.EqualFold(j.volumeID, volumeID) && !k.ended[key] {
			id := key[:strings.IndexByte(key, '/')]
			open[id], gone[id] = key, j.generation != k.generation
		}
	}
	k.mu.Unlock()
	if len(open) == 0 {
		return ""
	}
	st, err := k.State()
	if err != nil {
		return fmt.Sprintf("%s of volume %s: cannot read the simulator's state to check its jobs: %v", command, volumeID, err)
	}
	running := map[string]cloudsim.Job{}
	var ended []string
	for _, j := range st.Jobs {
		if _, ok := open[j.ID]; !ok {
			continue
		}
		if j.Completed == nil {
			running[j.ID] = j
		} else {
			ended = append(ended, j.ID)
		}
	}
	var problems []string
	for id, j := range running {
		if gone[id] && (k.Recorded == nil || !k.Recorded(volumeID, id)) {
			continue // no manager running now can know it
		}
		problems = append(problems, fmt.Sprintf("%s of volume %s while the manager's %s job %s (started %s) was still running",
			command, volumeID, j.Command, id, j.Created.Format("15:04:05.000")))
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, id := range ended {
		k.ended[open[id]] = true
	}
	sort.Strings(problems)
	return strings.Join(problems, "; ")
}

// startOfVolume is rule (a) for a call on an existing volume; tags are createTags' tags.
func (k *CallRules) startOfVolume(command, volumeID string, tags map[string]string) string {
	st, err := k.State()
	if err != nil {
		return ""
	}
	for _, v := range st.Volumes {
		if !strings.EqualFold(v.ID, volumeID) {
			continue
		}
		if tags != nil && teardownTags(v, tags) {
			return ""
		}
		return k.startWhileDeleting(command, v.Name, volumeID)
	}
	return ""
}

// teardownTags tells the tags a teardown puts on from those of the normal path: the
// retained mark, or the ownership tags on a volume that was deleted before it was tagged
// (see controllers/migrationvolume_delete.go). The latter looks like the normal path's
// first tagging; both are allowed on an untagged volume.
func teardownTags(v cloudsim.Volume, tags map[string]string) bool {
	if len(tags) == 1 && tags[osseav1.ReservedTagPrefix+"retained"] == "true" {
		return true
	}
	return Tag(v, osseav1.ReservedTagPrefix+"uid") == "" && tags[osseav1.ReservedTagPrefix+"uid"] != ""
}

// volumeNameRe matches the operator's volume names, mig_<vm>_<disk>_<first 8 chars of UID>.
var volumeNameRe = regexp.MustCompile(`^mig_.*_([0-9a-f]{8})$`)

func (k *CallRules) startWhileDeleting(command, volumeName, volumeID string) string {
	m := volumeNameRe.FindStringSubmatch(volumeName)
	if m == nil {
		return ""
	}
	name, deleting := k.Deleting(m[1])
	if !deleting {
		return ""
	}
	what := volumeName
	if volumeID != "" {
		what = volumeID
	}
	return fmt.Sprintf("%s of %s for %s, which was being deleted", command, what, name)
}

var tagKeyRe = regexp.MustCompile(`^tags\[(\d+)\]\.key$`)

// tagParams reads tags[N].key / tags[N].value.
func tagParams(params url.Values) map[string]string {
	tags := map[string]string{}
	for k := range params {
		if m := tagKeyRe.FindStringSubmatch(k); m != nil {
			tags[params.Get(k)] = params.Get("tags[" + m[1] + "].value")
		}
	}
	return tags
}
