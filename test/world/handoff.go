package world

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/migratekit/ossea-operator/internal/cloudsim"
)

// HandoffRules are the two rules a hand-off to a target VM must keep, read from the
// simulator's job log (every job it ran, with its parameters and the moments it was made and
// completed) and from the calls the manager made through a recording proxy:
//
//	(1) no attach of a volume to a target VM before its detach from the OMA VM is done: at
//	    the moment the attach is asked for, the volume's last move was a successful detach,
//	    and the VM it left was an OMA VM (or it is on that target already: an attach asked
//	    again after a lost reply, which CloudStack refuses; SuccessfulAttaches counts the
//	    attaches that took);
//	(2) no handed-off volume is ever detached or deleted afterwards. A volume counts as
//	    handed off from the first of: its successful attach to a target VM, the completion
//	    of its handed-off-to tag, and (told by the harness) the moment its MigrationVolume
//	    was seen with status.handoff.
//
// Where a volume was at any moment is replayed from the successful attach and detach jobs
// completed by then: the simulator moves a volume only when such a job completes, under the
// lock that records the completion, so the replay is exact. The calls are the proxy's, with
// the moment each arrived; the simulator runs on the same host, so their clocks agree. An
// attach is checked as a call rather than as a job so that one the simulator refused (an
// injected error, or its own rules) still counts: asking was the mistake.
//
// A target's placeholder root disk is in the world from the start, attached by no job, so
// it is never counted as handed off, and its detach is allowed; Foreign volumes (the world's
// own: the VMs' roots, the placeholders) must never be deleted, since the operator did not
// create them. Every id in the maps is lower case.
type HandoffRules struct {
	OMAs, Targets map[string]bool
	Foreign       map[string]bool
}

// VolumeCall is one attachVolume, detachVolume or deleteVolume the manager asked for.
type VolumeCall struct {
	Command  string
	VolumeID string
	VMID     string // attachVolume's virtualmachineid
	At       time.Time
}

// HandoffKey is the tag a hand-off puts on the volume it finished (the operator's
// controllers.TagHandedOffTo; the harness does not import the controllers).
const HandoffKey = "ossea.migratekit.io/handed-off-to"

// move is one successful attach (vm set) or detach (vm "") of a volume.
type move struct {
	at  time.Time
	vm  string
	job string
}

// handedMark is the first moment a volume counted as handed off, and why.
type handedMark struct {
	at  time.Time
	how string
}

// handoffLog is the job log read by volume: its moves, in completion order, and when it
// was handed off.
type handoffLog struct {
	moves  map[string][]move
	handed map[string]handedMark
}

func (r HandoffRules) read(jobs []cloudsim.Job, seen map[string]time.Time) handoffLog {
	done := make([]cloudsim.Job, 0, len(jobs))
	for _, j := range jobs {
		if j.Completed != nil && j.Status == 1 {
			done = append(done, j)
		}
	}
	sort.Slice(done, func(a, b int) bool {
		if !done[a].Completed.Equal(*done[b].Completed) {
			return done[a].Completed.Before(*done[b].Completed)
		}
		return done[a].Seq < done[b].Seq
	})
	l := handoffLog{moves: map[string][]move{}, handed: map[string]handedMark{}}
	mark := func(vol string, at time.Time, how string) {
		if h, ok := l.handed[vol]; !ok || at.Before(h.at) {
			l.handed[vol] = handedMark{at: at, how: how}
		}
	}
	for _, j := range done {
		switch j.Command {
		case "attachVolume":
			vol, vm := key(jobVolume(j)), key(j.Params["virtualmachineid"])
			l.moves[vol] = append(l.moves[vol], move{at: *j.Completed, vm: vm, job: j.ID})
			if r.Targets[vm] {
				mark(vol, *j.Completed, fmt.Sprintf("attached to target %s by job %s at %s", vm, j.ID, stamp(*j.Completed)))
			}
		case "detachVolume":
			vol := key(jobVolume(j))
			l.moves[vol] = append(l.moves[vol], move{at: *j.Completed, job: j.ID})
		case "createTags":
			params := url.Values{}
			for k, v := range j.Params {
				params.Set(k, v)
			}
			if vm := tagParams(params)[HandoffKey]; vm != "" {
				for _, id := range strings.Split(j.Params["resourceids"], ",") {
					mark(key(id), *j.Completed, fmt.Sprintf("tagged %s=%s by job %s at %s", HandoffKey, vm, j.ID, stamp(*j.Completed)))
				}
			}
		}
	}
	for vol, at := range seen {
		mark(key(vol), at, "its MigrationVolume seen with status.handoff at "+stamp(at))
	}
	return l
}

// Check returns every break of the rules: calls are the manager's attach, detach and
// delete calls; seen holds, by volume id, the first moment the harness saw a
// MigrationVolume of that volume with status.handoff.
func (r HandoffRules) Check(jobs []cloudsim.Job, calls []VolumeCall, seen map[string]time.Time) []string {
	l := r.read(jobs, seen)
	var problems []string
	for _, c := range calls {
		vol := key(c.VolumeID)
		switch c.Command {
		case "attachVolume":
			if r.Targets[key(c.VMID)] {
				if p := r.attachProblem(l, vol, key(c.VMID), c.At); p != "" {
					problems = append(problems, fmt.Sprintf("attachVolume of volume %s to target %s at %s %s", c.VolumeID, c.VMID, stamp(c.At), p))
				}
			}
		case "detachVolume", "deleteVolume":
			if h, ok := l.handed[vol]; ok && c.At.After(h.at) {
				problems = append(problems, fmt.Sprintf("%s of handed-off volume %s at %s: it was %s", c.Command, c.VolumeID, stamp(c.At), h.how))
			}
			if c.Command == "deleteVolume" && r.Foreign[vol] {
				problems = append(problems, fmt.Sprintf("deleteVolume of volume %s at %s, which the world began with (a VM's root or a target's placeholder): the operator never deletes a volume it did not create", c.VolumeID, stamp(c.At)))
			}
		}
	}
	sort.Strings(problems)
	return problems
}

// attachProblem is rule (1) for an attach of vol to target asked for at at.
func (r HandoffRules) attachProblem(l handoffLog, vol, target string, at time.Time) string {
	place, left, moved := "", "", false
	for _, m := range l.moves[vol] {
		if m.at.After(at) {
			break
		}
		left, place, moved = place, m.vm, true
	}
	switch {
	case !moved:
		return "before it was ever attached to an OMA VM and detached from it"
	case place == target:
		// Asked again after an attach whose reply was lost: the manager cannot know that
		// job, and CloudStack refuses an attached volume. Whether it was attached there
		// only once is for the successful attaches to tell (SuccessfulAttaches).
		return ""
	case r.OMAs[place]:
		return fmt.Sprintf("while it was still attached to OMA VM %s: no detach from it had succeeded", place)
	case place != "":
		return fmt.Sprintf("while it was attached to VM %s", place)
	case !r.OMAs[left]:
		return fmt.Sprintf("when its last detach was from VM %q, not from an OMA VM", left)
	}
	return ""
}

// SuccessfulAttaches counts, by volume id, the attach jobs to vm that succeeded.
func SuccessfulAttaches(jobs []cloudsim.Job, vm string) map[string]int {
	n := map[string]int{}
	for _, j := range jobs {
		if j.Command == "attachVolume" && j.Status == 1 && strings.EqualFold(j.Params["virtualmachineid"], vm) {
			n[key(jobVolume(j))]++
		}
	}
	return n
}

// jobVolume is the volume an attach or detach job moved: its id parameter, or for a detach
// by VM and device, the volume in its result.
func jobVolume(j cloudsim.Job) string {
	if id := j.Params["id"]; id != "" {
		return id
	}
	var r struct {
		Volume struct {
			ID string `json:"id"`
		} `json:"volume"`
	}
	_ = json.Unmarshal(j.Result, &r)
	return r.Volume.ID
}

func key(id string) string { return strings.ToLower(id) }

func stamp(t time.Time) string { return t.Format("15:04:05.000") }
