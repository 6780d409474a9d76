package controllers

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

// A job is placed on one OsseaConfig (one OMA VM) for all its disks. Slots are counted from
// the manager's cache, never from CloudStack: a placed job holds one slot per disk on its
// VM from the moment its placement is written until the job is gone, whether its volumes
// are attached yet or not, and a MigrationVolume that no job owns holds one. The volumes'
// own attach step still checks CloudStack when a VM is nearly full, so data disks the
// operator does not manage are caught there.
//
// Decisions are made one at a time under placementBook's lock, and a placement counts from
// the moment it is decided, before the cache shows it written: two jobs racing for the last
// slots can never both get them.

// candidate is an OsseaConfig a job may be placed on.
type candidate struct {
	name  string
	vmID  string
	limit int
	// notReady is why the config cannot take a job now ("" when it can).
	notReady string
}

// placementBook holds the placements this process decided that the cache may not show yet.
type placementBook struct {
	mu      sync.Mutex
	pending map[types.UID]bookedPlacement
}

type bookedPlacement struct {
	placement osseav1.MigrationJobPlacementStatus
	disks     int
}

func newPlacementBook() *placementBook {
	return &placementBook{pending: map[types.UID]bookedPlacement{}}
}

func (b *placementBook) forget(uid types.UID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.pending, uid)
}

// placementChoice is what choosePlacement decided.
type placementChoice struct {
	// best is the config chosen; nil when none fits.
	best *candidate
	// never is set when the job needs more slots than any candidate has at all.
	never bool
	// message says why nothing fits (or where the job went).
	message string
}

// choosePlacement picks, among the Ready candidates with a free slot for each of need disks,
// the one with the most free slots (ties by name). used counts the taken slots by VM.
func choosePlacement(need int, cands []candidate, used map[string]int) placementChoice {
	slices.SortFunc(cands, func(a, b candidate) int { return cmp.Compare(a.name, b.name) })
	var best *candidate
	bestFree, largest := -1, 0
	var lines []string
	for i := range cands {
		c := &cands[i]
		if c.notReady != "" {
			lines = append(lines, fmt.Sprintf("%s: %s", c.name, c.notReady))
			continue
		}
		free := max(0, c.limit-used[c.vmID])
		largest = max(largest, c.limit)
		lines = append(lines, fmt.Sprintf("%s: %d of %d free", c.name, free, c.limit))
		if free >= need && free > bestFree {
			best, bestFree = c, free
		}
	}
	if best != nil {
		return placementChoice{best: best, message: fmt.Sprintf("placed on OsseaConfig %s (OMA VM %s), %d of %d slots free before this job's %d", best.name, best.vmID, bestFree, best.limit, need)}
	}
	if largest == 0 {
		return placementChoice{message: "no candidate OsseaConfig is Ready: " + strings.Join(lines, "; ")}
	}
	ch := placementChoice{never: need > largest}
	if ch.never {
		ch.message = fmt.Sprintf("the job's %d disks can never fit: the largest candidate OMA VM holds %d data disks; %s", need, largest, strings.Join(lines, "; "))
	} else {
		ch.message = fmt.Sprintf("needs %d free data-disk slots on one OMA VM; %s", need, strings.Join(lines, "; "))
	}
	return ch
}

// place decides where the job goes and records it in the job's status, without writing:
// the caller writes the placement before it creates any volume. It returns nil when the
// job is placed, a waiting error when nothing fits yet and a stalling one when nothing can;
// decided is false when the placement was decided by an earlier pass.
func (r *MigrationJobReconciler) place(ctx context.Context, s *jobScope) (decided bool, err error) {
	job := s.job
	r.book.mu.Lock()
	defer r.book.mu.Unlock()
	if b, ok := r.book.pending[job.UID]; ok {
		// Decided and written by this process; the cache has not caught up yet.
		job.Status.Placement = b.placement.DeepCopy()
		s.conditions.set(osseav1.ConditionPlaced, metav1.ConditionTrue, osseav1.ReasonPlaced, placedMessage(job.Status.Placement))
		return false, nil
	}
	cands, err := r.candidates(ctx, job)
	if err != nil {
		return false, err
	}
	if len(cands) == 0 {
		reason, msg := osseav1.ReasonNoCandidates, fmt.Sprintf("no OsseaConfig in namespace %s matches the selector %s", job.Namespace, selectorText(job.Spec.Placement.OsseaConfigSelector))
		if ref := job.Spec.Placement.OsseaConfigRef; ref != nil {
			reason, msg = osseav1.ReasonOsseaConfigNotReady, fmt.Sprintf("OsseaConfig %q does not exist", ref.Name)
		}
		s.conditions.set(osseav1.ConditionPlaced, metav1.ConditionFalse, reason, msg)
		return false, waitFor(0) // a new config wakes the job
	}
	used, err := r.slotsInUse(ctx)
	if err != nil {
		return false, err
	}
	ch := choosePlacement(len(job.Spec.Disks), cands, used)
	switch {
	case ch.best != nil:
	case ch.never:
		return false, stall(osseav1.ConditionPlaced, osseav1.ReasonInsufficientCapacity, ch.message)
	default:
		reason := osseav1.ReasonInsufficientCapacity
		if job.Spec.Placement.OsseaConfigRef != nil && cands[0].notReady != "" {
			reason = osseav1.ReasonOsseaConfigNotReady
		} else if !anyReady(cands) {
			reason = osseav1.ReasonNoCandidates
		}
		s.conditions.set(osseav1.ConditionPlaced, metav1.ConditionFalse, reason, ch.message)
		return false, waitFor(0) // a job or volume deleted, or a config changed, wakes the job
	}
	p := osseav1.MigrationJobPlacementStatus{OsseaConfigName: ch.best.name, OMAVirtualMachineID: ch.best.vmID}
	r.book.pending[job.UID] = bookedPlacement{placement: p, disks: len(job.Spec.Disks)}
	job.Status.Placement = &p
	s.conditions.set(osseav1.ConditionPlaced, metav1.ConditionTrue, osseav1.ReasonPlaced, ch.message)
	log.FromContext(ctx).Info("Placed job", "osseaConfig", p.OsseaConfigName, "omaVM", p.OMAVirtualMachineID, "disks", len(job.Spec.Disks))
	return true, nil
}

func placedMessage(p *osseav1.MigrationJobPlacementStatus) string {
	return fmt.Sprintf("placed on OsseaConfig %s (OMA VM %s)", p.OsseaConfigName, p.OMAVirtualMachineID)
}

func anyReady(cands []candidate) bool {
	return slices.ContainsFunc(cands, func(c candidate) bool { return c.notReady == "" })
}

// candidates are the configs the job's placement names, Ready or not (deleting ones left
// out); none when the named config does not exist or the selector matches nothing.
func (r *MigrationJobReconciler) candidates(ctx context.Context, job *osseav1.MigrationJob) ([]candidate, error) {
	var cfgs []osseav1.OsseaConfig
	if ref := job.Spec.Placement.OsseaConfigRef; ref != nil {
		cfg := &osseav1.OsseaConfig{}
		err := r.Get(ctx, types.NamespacedName{Namespace: job.Namespace, Name: ref.Name}, cfg)
		if client.IgnoreNotFound(err) != nil {
			return nil, fmt.Errorf("reading OsseaConfig %s: %w", ref.Name, err)
		}
		if err == nil {
			cfgs = append(cfgs, *cfg)
		}
	} else {
		sel, err := metav1.LabelSelectorAsSelector(job.Spec.Placement.OsseaConfigSelector)
		if err != nil {
			return nil, stall(osseav1.ConditionPlaced, osseav1.ReasonInvalidSelector, fmt.Sprintf("spec.placement.osseaConfigSelector: %v", err))
		}
		var list osseav1.OsseaConfigList
		if err := r.List(ctx, &list, client.InNamespace(job.Namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
			return nil, fmt.Errorf("listing OsseaConfigs: %w", err)
		}
		cfgs = list.Items
	}
	var cands []candidate
	for i := range cfgs {
		cfg := &cfgs[i]
		if !cfg.DeletionTimestamp.IsZero() {
			continue
		}
		c := candidate{name: cfg.Name, vmID: cfg.Spec.OMAVirtualMachineID, limit: maxDataVolumes(cfg)}
		if ready := meta.FindStatusCondition(cfg.Status.Conditions, osseav1.ConditionReady); ready == nil || ready.Status != metav1.ConditionTrue {
			c.notReady = "not Ready"
			if ready != nil && ready.Status == metav1.ConditionFalse {
				c.notReady = fmt.Sprintf("not Ready (%s)", ready.Reason)
			}
		}
		cands = append(cands, c)
	}
	return cands, nil
}

// slotsInUse counts the slots taken on each OMA VM, by VM id: the disks of every placed job
// the cache or the book knows, and every MigrationVolume no such job owns. It prunes from
// the book what the cache shows now. Call it under the book's lock.
func (r *MigrationJobReconciler) slotsInUse(ctx context.Context) (map[string]int, error) {
	var jobs osseav1.MigrationJobList
	if err := r.List(ctx, &jobs, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing MigrationJobs: %w", err)
	}
	var vols osseav1.MigrationVolumeList
	if err := r.List(ctx, &vols, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing MigrationVolumes: %w", err)
	}
	var cfgs osseav1.OsseaConfigList
	if err := r.List(ctx, &cfgs, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing OsseaConfigs: %w", err)
	}
	return countSlots(jobs.Items, vols.Items, cfgs.Items, r.book.pending), nil
}

// countSlots is slotsInUse's arithmetic. Entries of pending that the jobs show placed, or
// whose job is gone, are removed from it.
func countSlots(jobs []osseav1.MigrationJob, vols []osseav1.MigrationVolume, cfgs []osseav1.OsseaConfig, pending map[types.UID]bookedPlacement) map[string]int {
	used := map[string]int{}
	placed := map[types.UID]bool{} // the jobs counted, whose volumes are then not
	seen := map[types.UID]bool{}
	for i := range jobs {
		j := &jobs[i]
		seen[j.UID] = true
		if p := j.Status.Placement; p != nil {
			used[p.OMAVirtualMachineID] += len(j.Spec.Disks)
			placed[j.UID] = true
			delete(pending, j.UID)
		}
	}
	for uid, b := range pending {
		if !seen[uid] {
			delete(pending, uid) // the job is gone, and its slots with it
			continue
		}
		used[b.placement.OMAVirtualMachineID] += b.disks
		placed[uid] = true
	}
	vmOf := make(map[types.NamespacedName]string, len(cfgs))
	for i := range cfgs {
		vmOf[types.NamespacedName{Namespace: cfgs[i].Namespace, Name: cfgs[i].Name}] = cfgs[i].Spec.OMAVirtualMachineID
	}
	for i := range vols {
		mv := &vols[i]
		if owner := metav1.GetControllerOf(mv); owner != nil && placed[owner.UID] {
			continue
		}
		vm := mv.Status.AttachedVirtualMachineID
		if vm == "" {
			vm = vmOf[types.NamespacedName{Namespace: mv.Namespace, Name: mv.Spec.OsseaConfigRef.Name}]
		}
		if vm != "" {
			used[vm]++
		}
	}
	return used
}

func selectorText(sel *metav1.LabelSelector) string {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || s.Empty() {
		return "{}"
	}
	return s.String()
}

// volumeGone wakes, when a MigrationVolume is deleted, the jobs waiting for its slot and
// those of its namespace whose volume name it held (NameConflict).
func (r *MigrationJobReconciler) volumeGone(ctx context.Context, obj client.Object) []reconcile.Request {
	reqs := r.waitingJobs(ctx, obj)
	var list osseav1.MigrationJobList
	if err := r.List(ctx, &list, client.InNamespace(obj.GetNamespace()), client.UnsafeDisableDeepCopy); err != nil {
		log.FromContext(ctx).Error(err, "Listing the jobs of a namespace")
		return reqs
	}
	for i := range list.Items {
		job := &list.Items[i]
		if c := meta.FindStatusCondition(job.Status.Conditions, osseav1.ConditionStalled); c != nil && c.Reason == osseav1.ReasonNameConflict &&
			strings.HasPrefix(obj.GetName(), job.Name+"-") {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(job)})
		}
	}
	return reqs
}

// waitingJobs wakes the jobs that wait for a placement: something that frees slots or adds
// a candidate happened.
func (r *MigrationJobReconciler) waitingJobs(ctx context.Context, _ client.Object) []reconcile.Request {
	var list osseav1.MigrationJobList
	if err := r.List(ctx, &list, client.MatchingFields{indexJobWaiting: "true"}); err != nil {
		log.FromContext(ctx).Error(err, "Listing the jobs waiting for a placement")
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return reqs
}
