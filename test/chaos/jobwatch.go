package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/testenv"
	"github.com/migratekit/ossea-operator/test/world"
)

// jobTrace is what the watch saw of one MigrationJob.
type jobTrace struct {
	Name  string
	UID   types.UID
	Disks int
	// Placement is the first placement seen; every later one must equal it.
	Placement *osseav1.MigrationJobPlacementStatus
	// Waited: seen with Placed=False for InsufficientCapacity.
	Waited bool
	// First moments seen Ready (for its generation), being deleted, gone.
	Ready, Deleting, Gone time.Time
	// HandedOff: first seen in phase HandedOff with Ready=True for its generation, every
	// disk on the target. Phase and Why are the last phase and Ready condition seen, for the
	// report of a cut-over that did not end; TargetDevices the target's device id of each
	// disk, by name, as the job's status last showed them.
	HandedOff     time.Time
	Phase         osseav1.MigrationJobPhase
	Why           string
	TargetDevices map[string]int64
}

// volumeFacts is what the job invariants need of one MigrationVolume. Owners and Configs
// hold every value ever seen, so that a transient wrong one is not missed between checks.
type volumeFacts struct {
	Name, UID string
	Job       string // the job label
	Owners    map[types.UID]bool
	Configs   map[string]bool
	// checkedPlaced: the API server showed the job placed after the volume existed.
	checkedPlaced bool
	// VolumeID is the CloudStack volume's id, once seen; Handoff the first status.handoff
	// seen, and when.
	VolumeID    string
	Handoff     *osseav1.HandoffStatus
	HandoffSeen time.Time
	// LetGo is when the node agent was first seen to have let go of the volume for its
	// hand-off; revoked is the HandedOff condition first seen after that no longer asking
	// for the release, and reclaimed that the agent was seen to claim it again.
	LetGo     time.Time
	revoked   string
	reclaimed bool
}

// jobWatch records the MigrationJobs of a namespace and the MigrationVolumes they make.
// Placements seen to change are problems at once; the rest is checked by checkJobs.
type jobWatch struct {
	c      client.Client
	cancel context.CancelFunc

	mu       sync.Mutex
	jobs     map[string]*jobTrace // by name: a run never reuses a job's name
	vols     map[string]*volumeFacts
	problems []string
}

// watchJobs starts the watch; it returns once it is synced. c reads past it.
func watchJobs(ctx context.Context, cfg *rest.Config, c client.Client, ns string) (*jobWatch, error) {
	ctx, cancel := context.WithCancel(ctx)
	ca, err := cache.New(cfg, cache.Options{Scheme: testenv.NewScheme(), DefaultNamespaces: map[string]cache.Config{ns: {}}})
	if err != nil {
		cancel()
		return nil, err
	}
	jw := &jobWatch{c: c, cancel: cancel, jobs: map[string]*jobTrace{}, vols: map[string]*volumeFacts{}}
	for _, obj := range []client.Object{&osseav1.MigrationJob{}, &osseav1.MigrationVolume{}} {
		inf, err := ca.GetInformer(ctx, obj)
		if err == nil {
			_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
				AddFunc:    func(o any) { jw.observe(o, false) },
				UpdateFunc: func(_, o any) { jw.observe(o, false) },
				DeleteFunc: func(o any) {
					if d, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
						o = d.Obj
					}
					jw.observe(o, true)
				},
			})
		}
		if err != nil {
			cancel()
			return nil, err
		}
	}
	go func() { _ = ca.Start(ctx) }()
	if !ca.WaitForCacheSync(ctx) {
		cancel()
		return nil, fmt.Errorf("the watch of jobs in %s did not sync", ns)
	}
	return jw, nil
}

func (jw *jobWatch) Stop() { jw.cancel() }

func (jw *jobWatch) observe(obj any, deleted bool) {
	jw.mu.Lock()
	defer jw.mu.Unlock()
	switch o := obj.(type) {
	case *osseav1.MigrationJob:
		jw.observeJob(o, deleted)
	case *osseav1.MigrationVolume:
		jw.observeVolume(o)
	}
}

func (jw *jobWatch) observeJob(j *osseav1.MigrationJob, deleted bool) {
	now := time.Now()
	t := jw.jobs[j.Name]
	if t == nil {
		t = &jobTrace{Name: j.Name, UID: j.UID, Disks: len(j.Spec.Disks)}
		jw.jobs[j.Name] = t
	}
	if t.UID != j.UID {
		jw.problem(fmt.Sprintf("job %s seen with a second UID %s (first %s): the run never recreates a job", j.Name, j.UID, t.UID))
		return
	}
	switch p := j.Status.Placement; {
	case t.Placement == nil && p != nil:
		t.Placement = p.DeepCopy()
	case t.Placement != nil && p == nil:
		jw.problem(fmt.Sprintf("job %s lost its placement (was %s)", j.Name, placementText(t.Placement)))
	case t.Placement != nil && *p != *t.Placement:
		jw.problem(fmt.Sprintf("job %s moved from %s to %s", j.Name, placementText(t.Placement), placementText(p)))
	}
	for _, c := range j.Status.Conditions {
		if c.Type == osseav1.ConditionPlaced && c.Status == metav1.ConditionFalse && c.Reason == osseav1.ReasonInsufficientCapacity {
			t.Waited = true
		}
	}
	first := func(at *time.Time, cond bool) {
		if cond && at.IsZero() {
			*at = now
		}
	}
	current := j.Status.ObservedGeneration == j.Generation
	first(&t.Ready, world.IsTrue(j.Status.Conditions, osseav1.ConditionReady) && current)
	first(&t.Deleting, !j.DeletionTimestamp.IsZero())
	first(&t.Gone, deleted)
	if j.Spec.Cutover != nil && current {
		first(&t.HandedOff, j.Status.Phase == osseav1.JobPhaseHandedOff && world.IsTrue(j.Status.Conditions, osseav1.ConditionReady))
	}
	t.Phase = j.Status.Phase
	if c := meta.FindStatusCondition(j.Status.Conditions, osseav1.ConditionReady); c != nil {
		t.Why = fmt.Sprintf("Ready=%s %s: %s", c.Status, c.Reason, c.Message)
	}
	for _, d := range j.Status.Disks {
		if d.TargetDeviceID != nil {
			if t.TargetDevices == nil {
				t.TargetDevices = map[string]int64{}
			}
			t.TargetDevices[d.Name] = *d.TargetDeviceID
		}
	}
}

// observeVolume records a volume and reports at once what it shows wrong by itself.
func (jw *jobWatch) observeVolume(mv *osseav1.MigrationVolume) {
	f := jw.vols[mv.Name]
	if f == nil || f.UID != string(mv.UID) {
		f = &volumeFacts{Name: mv.Name, UID: string(mv.UID), Owners: map[types.UID]bool{}, Configs: map[string]bool{}}
		jw.vols[mv.Name] = f
	}
	f.Job = mv.Labels[osseav1.JobLabel]
	f.Configs[mv.Spec.OsseaConfigRef.Name] = true
	owner := metav1.GetControllerOf(mv)
	switch {
	case f.Job == "":
		jw.problem(fmt.Sprintf("MigrationVolume %s has no %s label: the run makes volumes only through jobs", mv.Name, osseav1.JobLabel))
	case owner == nil:
		jw.problem(fmt.Sprintf("MigrationVolume %s of job %s has no controller reference", mv.Name, f.Job))
	case owner.Kind != "MigrationJob" || owner.Name != f.Job:
		jw.problem(fmt.Sprintf("MigrationVolume %s labelled for job %s is controlled by %s %s", mv.Name, f.Job, owner.Kind, owner.Name))
	case mv.Spec.JobID != f.Job || mv.Name != f.Job+"-"+mv.Spec.DiskName:
		jw.problem(fmt.Sprintf("MigrationVolume %s labelled for job %s is for job %s disk %s", mv.Name, f.Job, mv.Spec.JobID, mv.Spec.DiskName))
	}
	if owner != nil {
		f.Owners[owner.UID] = true
	}
	if mv.Status.VolumeID != "" {
		f.VolumeID = mv.Status.VolumeID
	}
	jw.observeRelease(f, mv)
	switch h := mv.Status.Handoff; {
	case h == nil && f.Handoff != nil:
		jw.problem(fmt.Sprintf("MigrationVolume %s lost its status.handoff (was VM %s device %d)", mv.Name, f.Handoff.VirtualMachineID, f.Handoff.DeviceID))
	case h == nil:
	case f.Handoff == nil:
		f.Handoff, f.HandoffSeen = h.DeepCopy(), time.Now()
	case h.VirtualMachineID != f.Handoff.VirtualMachineID || h.DeviceID != f.Handoff.DeviceID:
		jw.problem(fmt.Sprintf("MigrationVolume %s's status.handoff changed from VM %s device %d to VM %s device %d",
			mv.Name, f.Handoff.VirtualMachineID, f.Handoff.DeviceID, h.VirtualMachineID, h.DeviceID))
	}
}

// observeRelease holds the node agent to its word on a hand-off: once it has let go of a
// volume (released, no mount finalizer, nothing mounted or published), it never claims it
// again; the manager detaches it from the OMA VM on the strength of that.
func (jw *jobWatch) observeRelease(f *volumeFacts, mv *osseav1.MigrationVolume) {
	held := controllerutil.ContainsFinalizer(mv, osseav1.MountFinalizer)
	released := osseav1.ReleaseForHandoff(mv)
	switch {
	case f.LetGo.IsZero():
		if released && !held && mv.Status.MountPath == "" && mv.Status.DevicePath == "" {
			f.LetGo = time.Now()
		}
	case !released && f.revoked == "" && mv.Status.Handoff == nil && mv.DeletionTimestamp.IsZero():
		f.revoked = "no release asked"
		if c := meta.FindStatusCondition(mv.Status.Conditions, osseav1.ConditionHandedOff); c != nil {
			f.revoked = fmt.Sprintf("HandedOff=%s %s: %s", c.Status, c.Reason, c.Message)
		}
	}
	if !f.LetGo.IsZero() && held && !f.reclaimed {
		f.reclaimed = true
		why := ""
		if f.revoked != "" {
			why = "; after the let-go the manager's status stopped asking for the release (" + f.revoked + ")"
		}
		jw.problem(fmt.Sprintf("MigrationVolume %s was claimed again by its node agent (the mount finalizer is back) after the agent let it go for its hand-off at %s%s",
			mv.Name, f.LetGo.Format("15:04:05.000"), why))
	}
}

// handoffsSeen are, by CloudStack volume id, the first moments a MigrationVolume of the
// volume was seen with status.handoff.
func (jw *jobWatch) handoffsSeen() map[string]time.Time {
	jw.mu.Lock()
	defer jw.mu.Unlock()
	out := map[string]time.Time{}
	for _, f := range jw.vols {
		if f.Handoff != nil && f.VolumeID != "" {
			out[f.VolumeID] = f.HandoffSeen
		}
	}
	return out
}

// volumes returns a copy of what the watch saw of each MigrationVolume, by name.
func (jw *jobWatch) volumes() map[string]volumeFacts {
	jw.mu.Lock()
	defer jw.mu.Unlock()
	out := make(map[string]volumeFacts, len(jw.vols))
	for name, f := range jw.vols {
		c := *f
		if f.Handoff != nil {
			c.Handoff = f.Handoff.DeepCopy()
		}
		out[name] = c
	}
	return out
}

// problem records a violation seen by the watch; call it under jw.mu.
func (jw *jobWatch) problem(p string) { jw.problems = append(jw.problems, p) }

func placementText(p *osseav1.MigrationJobPlacementStatus) string {
	return fmt.Sprintf("%s (OMA VM %s)", p.OsseaConfigName, p.OMAVirtualMachineID)
}

// Problems are the violations the watch saw.
func (jw *jobWatch) Problems() []string {
	jw.mu.Lock()
	defer jw.mu.Unlock()
	return append([]string(nil), jw.problems...)
}

// Jobs returns a copy of every trace, by job name.
func (jw *jobWatch) Jobs() map[string]jobTrace {
	jw.mu.Lock()
	defer jw.mu.Unlock()
	out := make(map[string]jobTrace, len(jw.jobs))
	for k, t := range jw.jobs {
		c := *t
		if t.Placement != nil {
			c.Placement = t.Placement.DeepCopy()
		}
		if t.TargetDevices != nil {
			c.TargetDevices = make(map[string]int64, len(t.TargetDevices))
			for d, id := range t.TargetDevices {
				c.TargetDevices[d] = id
			}
		}
		out[k] = c
	}
	return out
}

// disksPlaced sums, by OsseaConfig, the disks of the jobs placed there and not gone: the
// slots the operator must hold for them.
func disksPlaced(jobs map[string]jobTrace) map[string]int {
	used := map[string]int{}
	for _, t := range jobs {
		if t.Placement != nil && t.Gone.IsZero() {
			used[t.Placement.OsseaConfigName] += t.Disks
		}
	}
	return used
}

// checkVolumes holds each job's volumes to their job: controlled by it (the same UID) and
// on its placement. A volume whose job the watch does not show placed yet is checked against
// the API server: the job must have been placed before any volume was made.
func (jw *jobWatch) checkVolumes(ctx context.Context, jobs map[string]jobTrace) []string {
	jw.mu.Lock()
	var unplaced []*volumeFacts
	var problems []string
	for _, f := range jw.vols {
		if f.Job == "" {
			continue // reported when seen
		}
		t, ok := jobs[f.Job]
		if !ok || t.Placement == nil {
			if !f.checkedPlaced {
				unplaced = append(unplaced, f)
			}
			continue
		}
		for uid := range f.Owners {
			if uid != t.UID {
				problems = append(problems, fmt.Sprintf("MigrationVolume %s is controlled by UID %s, not by its job %s (%s)", f.Name, uid, t.Name, t.UID))
			}
		}
		for cfg := range f.Configs {
			if cfg != t.Placement.OsseaConfigName {
				problems = append(problems, fmt.Sprintf("MigrationVolume %s of job %s uses OsseaConfig %s; the job was placed on %s", f.Name, t.Name, cfg, t.Placement.OsseaConfigName))
			}
		}
	}
	jw.mu.Unlock()
	for _, f := range unplaced {
		if p := jw.placedBeforeVolume(ctx, f); p != "" {
			problems = append(problems, p)
		}
	}
	sort.Strings(problems)
	return problems
}

// placedBeforeVolume asks the API server for the job of a volume the watch has seen: if it
// exists unplaced, a volume was made before its placement was written.
func (jw *jobWatch) placedBeforeVolume(ctx context.Context, f *volumeFacts) string {
	j := &osseav1.MigrationJob{}
	err := jw.c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: f.Job}, j)
	switch {
	case apierrors.IsNotFound(err):
		return "" // gone: its trace, when the watch delivers it, has the placement
	case err != nil:
		return "" // asked again next time
	case j.Status.Placement == nil:
		return fmt.Sprintf("MigrationVolume %s exists while its job %s has no placement", f.Name, f.Job)
	}
	jw.mu.Lock()
	f.checkedPlaced = true
	jw.mu.Unlock()
	return ""
}

// jobNames are the names of the jobs, sorted.
func jobNames(jobs map[string]jobTrace, pred func(jobTrace) bool) []string {
	var out []string
	for n, t := range jobs {
		if pred(t) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// short lists at most a few names.
func short(names []string) string {
	if len(names) > 6 {
		return strings.Join(names[:6], ", ") + fmt.Sprintf(" and %d more", len(names)-6)
	}
	return strings.Join(names, ", ")
}
