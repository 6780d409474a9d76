package main

import (
	"context"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"sync"

	"sigs.k8s.io/controller-runtime/pkg/client"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudsim"
	"github.com/migratekit/ossea-operator/test/world"
)

// The cut-over variant (--cutover): at the end of each wave of the jobs run, a seed-chosen
// half of the Ready jobs is cut over, each to a Stopped target VM of its own with disk0 as
// the root disk, while the other half is deleted as usual; once every cut-over job is
// HandedOff it is deleted too, which must leave its disks on the target.

// The tags of a hand-off (the controllers' TagReplacedBy and TagHandedOffTo).
const (
	tagReplacedBy  = osseav1.ReservedTagPrefix + "replaced-by"
	tagHandedOffTo = world.HandoffKey
	rootDisk       = "disk0"
)

// cutoverBook is what the world began with and what the run decided: which job went to
// which target.
type cutoverBook struct {
	omas    map[string]bool
	targets []string // in the order they are given out
	// placeholders are the targets' root disks at the start, by target id; foreign is every
	// volume the world began with (the OMA VMs' roots and the placeholders).
	placeholders map[string]string
	foreign      map[string]bool

	mu   sync.Mutex
	jobs map[string]string // job name -> its target
}

// newCutoverBook reads the world's own volumes from the simulator's first state.
func newCutoverBook(st cloudsim.State, sim *world.Sim) (*cutoverBook, error) {
	b := &cutoverBook{omas: map[string]bool{}, targets: sim.Targets, placeholders: map[string]string{},
		foreign: map[string]bool{}, jobs: map[string]string{}}
	for _, vm := range sim.VMs {
		b.omas[strings.ToLower(vm.ID)] = true
	}
	isTarget := map[string]bool{}
	for _, t := range sim.Targets {
		isTarget[t] = true
	}
	for _, v := range st.Volumes {
		b.foreign[strings.ToLower(v.ID)] = true
		if isTarget[v.VirtualMachineID] && v.DeviceID != nil && *v.DeviceID == 0 {
			b.placeholders[v.VirtualMachineID] = v.ID
		}
	}
	for _, t := range sim.Targets {
		if b.placeholders[t] == "" {
			return nil, fmt.Errorf("target VM %s has no placeholder root disk at the start", t)
		}
	}
	return b, nil
}

// assign gives the job the next unused target.
func (b *cutoverBook) assign(job string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.jobs) == len(b.targets) {
		return "", fmt.Errorf("no target VM left for job %s: the world has %d", job, len(b.targets))
	}
	t := b.targets[len(b.jobs)]
	b.jobs[job] = t
	return t, nil
}

// cutJobs are the jobs cut over so far, with their targets.
func (b *cutoverBook) cutJobs() map[string]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]string, len(b.jobs))
	for j, t := range b.jobs {
		out[j] = t
	}
	return out
}

func (b *cutoverBook) rules() world.HandoffRules {
	targets := map[string]bool{}
	for _, t := range b.targets {
		targets[strings.ToLower(t)] = true
	}
	return world.HandoffRules{OMAs: b.omas, Targets: targets, Foreign: b.foreign}
}

// placeholderOf tells whether a volume is a target's placeholder root, and whose.
func (b *cutoverBook) placeholderOf(volumeID string) (string, bool) {
	for t, p := range b.placeholders {
		if strings.EqualFold(p, volumeID) {
			return t, true
		}
	}
	return "", false
}

// remains tells a volume that is to stay in CloudStack after the run: one handed off to the
// target of a job that was cut over, and on it.
func (b *cutoverBook) remains(v cloudsim.Volume) bool {
	to := world.Tag(v, tagHandedOffTo)
	if to == "" || !strings.EqualFold(v.VirtualMachineID, to) {
		return false
	}
	for _, t := range b.cutJobs() {
		if strings.EqualFold(t, to) {
			return true
		}
	}
	return false
}

// splitWave picks, by the seed, the half of a wave's jobs to cut over (the larger half,
// so that a wave of one is cut over) and the rest, to delete.
func splitWave(placed []string, rnd *rand.Rand) (cut, del []string) {
	perm := rnd.Perm(len(placed))
	half := (len(placed) + 1) / 2
	for i, p := range perm {
		if i < half {
			cut = append(cut, placed[p])
		} else {
			del = append(del, placed[p])
		}
	}
	sort.Strings(cut)
	sort.Strings(del)
	return cut, del
}

// cutOver sets spec.cutover on each job, to a target of its own with disk0 as root, and
// waits until every one is HandedOff; one that is not within ReadyTimeout is a violation
// (its deletion then shows what the operator does with a cut-over left half way).
func cutOver(ctx context.Context, cfg Config, c client.Client, jw *jobWatch, book *cutoverBook, res *Result, names []string) error {
	for _, name := range names {
		target, err := book.assign(name)
		if err != nil {
			return err
		}
		job := &osseav1.MigrationJob{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, job); err != nil {
			return fmt.Errorf("reading job %s to cut it over: %w", name, err)
		}
		before := job.DeepCopy()
		job.Spec.Cutover = &osseav1.MigrationJobCutover{TargetVirtualMachineID: target, RootDisk: rootDisk}
		if err := c.Patch(ctx, job, client.MergeFrom(before)); err != nil {
			return fmt.Errorf("cutting job %s over to %s: %w", name, target, err)
		}
	}
	err := waitFor(ctx, cfg.ReadyTimeout, func() bool {
		jobs := jw.Jobs()
		for _, name := range names {
			if jobs[name].HandedOff.IsZero() {
				return false
			}
		}
		return true
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		jobs := jw.Jobs()
		for _, name := range names {
			if t := jobs[name]; t.HandedOff.IsZero() {
				res.addViolation(fmt.Sprintf("job %s not HandedOff %s after its cut-over: phase %s, %s", name, cfg.ReadyTimeout, t.Phase, t.Why))
			}
		}
	}
	return nil
}

// checkHandoffRules is the continuous check of the two rules of a hand-off (see
// world.HandoffRules) against the simulator's job log and the manager's calls.
func (k *checker) checkHandoffRules(st cloudsim.State) {
	var calls []world.VolumeCall
	for _, c := range k.proxy.Calls() {
		calls = append(calls, world.VolumeCall{Command: c.Command, VolumeID: c.VolumeID, VMID: c.VMID, At: c.At})
	}
	for _, p := range k.cut.rules().Check(st.Jobs, calls, k.jobs.handoffsSeen()) {
		k.res.addViolation(p)
	}
}

// checkCutovers is the end state of the cut-over run: every cut-over job's disks on its
// target (the root disk at device 0 as ROOT, the data disks at ascending ids in disk
// order, all tagged handed-off-to, as the job and its volumes said), each attached there by
// exactly one successful attach, the target's placeholder detached, kept and tagged
// replaced-by; every target no job was given untouched.
func (k *checker) checkCutovers(st cloudsim.State, disksPerJob int) {
	byID := map[string]cloudsim.Volume{}
	onVM := map[string]map[int64]cloudsim.Volume{}
	for _, v := range st.Volumes {
		byID[strings.ToLower(v.ID)] = v
		if v.VirtualMachineID != "" && v.DeviceID != nil {
			if onVM[v.VirtualMachineID] == nil {
				onVM[v.VirtualMachineID] = map[int64]cloudsim.Volume{}
			}
			onVM[v.VirtualMachineID][*v.DeviceID] = v
		}
	}
	jobs, vols := k.jobs.Jobs(), k.jobs.volumes()
	cut := k.cut.cutJobs()
	for name, target := range cut {
		k.checkCutover(st, name, target, disksPerJob, jobs[name], vols, byID, onVM[target])
	}
	given := map[string]bool{}
	for _, t := range cut {
		given[t] = true
	}
	for _, t := range k.cut.targets {
		if given[t] {
			continue
		}
		on, holder := onVM[t], k.cut.placeholders[t]
		if len(on) != 1 || !strings.EqualFold(on[0].ID, holder) || world.Tag(on[0], tagReplacedBy) != "" {
			k.res.addViolation(fmt.Sprintf("target VM %s, given to no job, was touched: it holds %s (its placeholder is %s)", t, describeDevices(on), holder))
		}
		if n := world.SuccessfulAttaches(st.Jobs, t); len(n) > 0 {
			k.res.addViolation(fmt.Sprintf("target VM %s, given to no job, had volumes attached: %v", t, n))
		}
	}
	k.res.mu.Lock()
	k.res.JobsCutOver = len(cut)
	k.res.mu.Unlock()
}

func (k *checker) checkCutover(st cloudsim.State, name, target string, disks int, jt jobTrace, vols map[string]volumeFacts,
	byID map[string]cloudsim.Volume, on map[int64]cloudsim.Volume) {
	v := func(format string, args ...any) {
		k.res.addViolation(fmt.Sprintf("cut-over job %s (target %s): ", name, target) + fmt.Sprintf(format, args...))
	}
	if jt.HandedOff.IsZero() {
		v("never seen HandedOff (last phase %s, %s)", jt.Phase, jt.Why)
	}
	attaches := world.SuccessfulAttaches(st.Jobs, target)
	ids := map[string]bool{}
	lastDevice := int64(0)
	var rootID string
	for d := range disks {
		disk := fmt.Sprintf("disk%d", d)
		f, ok := vols[name+"-"+disk]
		if !ok || f.VolumeID == "" {
			v("the watch never saw the CloudStack volume of disk %s", disk)
			continue
		}
		id := strings.ToLower(f.VolumeID)
		ids[id] = true
		vol, ok := byID[id]
		switch {
		case !ok:
			v("disk %s's volume %s is gone from CloudStack", disk, f.VolumeID)
			continue
		case !strings.EqualFold(vol.VirtualMachineID, target) || vol.DeviceID == nil:
			v("disk %s's volume %s is attached to %q, not to the target", disk, vol.ID, vol.VirtualMachineID)
			continue
		case world.Tag(vol, tagHandedOffTo) != target:
			v("disk %s's volume %s is tagged %s=%q", disk, vol.ID, tagHandedOffTo, world.Tag(vol, tagHandedOffTo))
		}
		device := *vol.DeviceID
		if disk == rootDisk {
			rootID = vol.ID
			if device != 0 || vol.Type != "ROOT" {
				v("the root disk %s's volume %s is %s at device %d, want ROOT at 0", disk, vol.ID, vol.Type, device)
			}
		} else {
			if vol.Type != "DATADISK" || device <= lastDevice {
				v("data disk %s's volume %s is %s at device %d, want a DATADISK after device %d (disk order)", disk, vol.ID, vol.Type, device, lastDevice)
			}
			lastDevice = device
		}
		if n := attaches[id]; n != 1 {
			v("disk %s's volume %s was attached to the target by %d successful attach jobs, want exactly 1", disk, vol.ID, n)
		}
		if h := f.Handoff; h == nil || !strings.EqualFold(h.VirtualMachineID, target) || h.DeviceID != device {
			v("MigrationVolume %s showed status.handoff %+v; the volume is at device %d of the target", f.Name, h, device)
		}
		if got, ok := jt.TargetDevices[disk]; !ok || got != device {
			v("the job's status showed disk %s at target device %v (shown: %t); it is at %d", disk, got, ok, device)
		}
	}
	for id := range attaches {
		if !ids[id] {
			v("volume %s, not one of the job's, was attached to the target", id)
		}
	}
	if len(on) != disks {
		v("the target holds %d volumes, want the job's %d: %s", len(on), disks, describeDevices(on))
	}
	holder := k.cut.placeholders[target]
	switch p, ok := byID[strings.ToLower(holder)]; {
	case !ok:
		v("the placeholder root %s is gone: the operator never deletes a volume it did not create", holder)
	case p.VirtualMachineID != "":
		v("the placeholder root %s is still attached to %s", holder, p.VirtualMachineID)
	case rootID != "" && world.Tag(p, tagReplacedBy) != rootID:
		v("the placeholder root %s is tagged %s=%q, want %s", holder, tagReplacedBy, world.Tag(p, tagReplacedBy), rootID)
	}
}

// describeDevices lists a VM's volumes by device id.
func describeDevices(on map[int64]cloudsim.Volume) string {
	ids := make([]int64, 0, len(on))
	for id := range on {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	var parts []string
	for _, id := range ids {
		parts = append(parts, fmt.Sprintf("[%d %s %s]", id, on[id].Type, on[id].ID))
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, " ")
}

// handoffDetachProblem is the detach guard's word on a detach for a hand-off: the volume
// leaves the OMA VM only once the agent let it go (the mount finalizer is checked by the
// guard for every detach; this is the rest of the agent's letting go).
func handoffDetachProblem(mv *osseav1.MigrationVolume) string {
	if mv.Status.MountPath != "" || mv.Status.DevicePath != "" {
		return fmt.Sprintf("its object %s, being handed off, still showed it mounted at %q (device %q)", mv.Name, mv.Status.MountPath, mv.Status.DevicePath)
	}
	return ""
}

// placeholderDetachProblem: a placeholder is detached only once it carries replaced-by.
func placeholderDetachProblem(sim *world.Sim, target, volumeID string) string {
	st, err := sim.State()
	if err != nil {
		return ""
	}
	for _, v := range st.Volumes {
		if strings.EqualFold(v.ID, volumeID) && world.Tag(v, tagReplacedBy) == "" {
			return fmt.Sprintf("detach of target %s's placeholder root %s before it was tagged %s", target, volumeID, tagReplacedBy)
		}
	}
	return ""
}
