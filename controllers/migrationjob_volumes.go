package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

// volumeNameFor is the name of the MigrationVolume of one disk of a job.
func volumeNameFor(job *osseav1.MigrationJob, disk string) string { return job.Name + "-" + disk }

// desiredVolume is the MigrationVolume a placed job wants for one of its disks. It carries
// the job's watch-filter label, so that it lands in the job's shard (see CacheOptions).
func desiredVolume(job *osseav1.MigrationJob, d osseav1.MigrationJobDisk) *osseav1.MigrationVolume {
	labels := map[string]string{osseav1.JobLabel: job.Name}
	if shard, ok := job.Labels[osseav1.WatchFilterLabel]; ok {
		labels[osseav1.WatchFilterLabel] = shard
	}
	return &osseav1.MigrationVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:      volumeNameFor(job, d.Name),
			Namespace: job.Namespace,
			Labels:    labels,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(job,
				osseav1.GroupVersion.WithKind("MigrationJob"))},
		},
		Spec: osseav1.MigrationVolumeSpec{
			OsseaConfigRef: osseav1.LocalObjectReference{Name: job.Status.Placement.OsseaConfigName},
			JobID:          job.Name,
			VMName:         job.Spec.VMName,
			DiskName:       d.Name,
			SizeGiB:        d.VolumeSizeGiB(),
			DiskOfferingID: d.DiskOfferingID,
			Mode:           d.Mode,
			Filesystem:     d.Filesystem.DeepCopy(),
			DeletionPolicy: job.Spec.DeletionPolicy,
		},
	}
}

// volumeClaim is how a job stands to an existing MigrationVolume of the name it wants.
type volumeClaim int

const (
	claimOwned    volumeClaim = iota // the job's controller reference is on it
	claimAdoption                    // made for this job and disk, controlled by nobody
	claimConflict                    // someone else's: left alone
)

// claimOf decides whether mv, found under the name the job wants for disk d, is the job's,
// may be adopted, or belongs to someone else (then why, for a person to read).
func claimOf(job *osseav1.MigrationJob, d osseav1.MigrationJobDisk, mv *osseav1.MigrationVolume) (volumeClaim, string) {
	if ref := metav1.GetControllerOf(mv); ref != nil {
		if ref.UID == job.UID {
			return claimOwned, ""
		}
		return claimConflict, fmt.Sprintf("it is controlled by %s %s", ref.Kind, ref.Name)
	}
	var why []string
	if mv.Labels[osseav1.JobLabel] != job.Name {
		why = append(why, fmt.Sprintf("it is not labelled %s=%s", osseav1.JobLabel, job.Name))
	}
	if mv.Spec.JobID != job.Name || mv.Spec.DiskName != d.Name {
		why = append(why, fmt.Sprintf("it is for job %s disk %s", mv.Spec.JobID, mv.Spec.DiskName))
	}
	if p := job.Status.Placement; p != nil && mv.Spec.OsseaConfigRef.Name != p.OsseaConfigName {
		why = append(why, fmt.Sprintf("it uses OsseaConfig %s, the job was placed on %s", mv.Spec.OsseaConfigRef.Name, p.OsseaConfigName))
	}
	if !mv.DeletionTimestamp.IsZero() {
		why = append(why, "it is being deleted")
	}
	if len(why) > 0 {
		return claimConflict, strings.Join(why, ", ")
	}
	return claimAdoption, ""
}

// ensureVolumes creates, adopts and keeps up to date one MigrationVolume per disk of a placed
// job. A name taken by someone else's volume stalls the job; the other disks go on.
func (r *MigrationJobReconciler) ensureVolumes(ctx context.Context, s *jobScope) error {
	job := s.job
	var conflicts []string
	var lagging bool
	for _, d := range job.Spec.Disks {
		name := volumeNameFor(job, d.Name)
		mv := &osseav1.MigrationVolume{}
		err := r.Get(ctx, types.NamespacedName{Namespace: job.Namespace, Name: name}, mv)
		switch {
		case apierrors.IsNotFound(err):
			mv = desiredVolume(job, d)
			if err := r.Create(ctx, mv); err != nil {
				if apierrors.IsAlreadyExists(err) {
					why, err := r.outsideShard(ctx, job, name)
					if err != nil {
						return err
					}
					if why != "" {
						conflicts = append(conflicts, fmt.Sprintf("MigrationVolume %s (disk %s) exists and is not the job's: %s", name, d.Name, why))
						continue
					}
					lagging = true // made by an earlier pass the cache does not show yet
					continue
				}
				return fmt.Errorf("creating MigrationVolume %s: %w", name, err)
			}
			r.Recorder.Eventf(job, mv, corev1.EventTypeNormal, osseav1.EventCreated, "Create", "Created MigrationVolume %s for disk %s on OsseaConfig %s", name, d.Name, mv.Spec.OsseaConfigRef.Name)
		case err != nil:
			return fmt.Errorf("reading MigrationVolume %s: %w", name, err)
		}
		claim, why := claimOf(job, d, mv)
		switch claim {
		case claimConflict:
			conflicts = append(conflicts, fmt.Sprintf("MigrationVolume %s (disk %s) exists and is not the job's: %s", name, d.Name, why))
			continue
		case claimAdoption:
			if err := r.adopt(ctx, job, mv); err != nil {
				return err
			}
		}
		if err := r.syncDeletionPolicy(ctx, job, mv); err != nil {
			return err
		}
		if err := r.syncShardLabel(ctx, job, mv); err != nil {
			return err
		}
		s.volumes[d.Name] = mv
	}
	if len(conflicts) > 0 {
		return stall("", osseav1.ReasonNameConflict, strings.Join(conflicts, "; ")+"; delete or rename it")
	}
	if lagging {
		return waitFor(200 * time.Millisecond)
	}
	return nil
}

// adopt puts the job's controller reference on a volume made for it, so that it is deleted
// with the job.
func (r *MigrationJobReconciler) adopt(ctx context.Context, job *osseav1.MigrationJob, mv *osseav1.MigrationVolume) error {
	before := mv.DeepCopy()
	if err := controllerutil.SetControllerReference(job, mv, r.Scheme()); err != nil {
		return fmt.Errorf("adopting MigrationVolume %s: %w", mv.Name, err)
	}
	if err := r.Patch(ctx, mv, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("adopting MigrationVolume %s: %w", mv.Name, err)
	}
	r.Recorder.Eventf(job, mv, corev1.EventTypeNormal, osseav1.EventAdopted, "Adopt", "Adopted MigrationVolume %s", mv.Name)
	return nil
}

// syncDeletionPolicy hands a change of the job's deletionPolicy on to a volume.
func (r *MigrationJobReconciler) syncDeletionPolicy(ctx context.Context, job *osseav1.MigrationJob, mv *osseav1.MigrationVolume) error {
	want := job.Spec.DeletionPolicy
	if want == "" || mv.Spec.DeletionPolicy == want || !mv.DeletionTimestamp.IsZero() {
		return nil
	}
	before := mv.DeepCopy()
	mv.Spec.DeletionPolicy = want
	if err := r.Patch(ctx, mv, client.MergeFrom(before)); err != nil {
		return fmt.Errorf("setting the deletionPolicy of MigrationVolume %s: %w", mv.Name, err)
	}
	return nil
}

// outsideShard tells why a volume the cache does not show, but whose name is taken, is not
// simply lagging: it is in another shard (its watch-filter label differs from the job's,
// so this manager's cache never holds it). The job's own volume is carried into the job's
// shard, as after a job was moved there without its volumes; anyone else's is a conflict,
// named for a person. "" means the cache lags, or the job's volume was just relabelled.
func (r *MigrationJobReconciler) outsideShard(ctx context.Context, job *osseav1.MigrationJob, name string) (string, error) {
	mv := &osseav1.MigrationVolume{}
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: job.Namespace, Name: name}, mv)
	if apierrors.IsNotFound(err) {
		return "", nil // deleted since: the next pass creates it
	}
	if err != nil {
		return "", fmt.Errorf("reading MigrationVolume %s: %w", name, err)
	}
	want, got := job.Labels[osseav1.WatchFilterLabel], mv.Labels[osseav1.WatchFilterLabel]
	if want == got {
		return "", nil
	}
	if ref := metav1.GetControllerOf(mv); ref != nil && ref.UID == job.UID {
		return "", r.syncShardLabel(ctx, job, mv)
	}
	return fmt.Sprintf("it is labelled %s=%q, the job %q (another shard)", osseav1.WatchFilterLabel, got, want), nil
}

// syncShardLabel gives the job's volume the job's watch-filter label (or removes it, with
// the job's), so that a job relabelled into another shard takes its volumes along.
func (r *MigrationJobReconciler) syncShardLabel(ctx context.Context, job *osseav1.MigrationJob, mv *osseav1.MigrationVolume) error {
	want, has := job.Labels[osseav1.WatchFilterLabel]
	got, had := mv.Labels[osseav1.WatchFilterLabel]
	if want == got && has == had {
		return nil
	}
	before := mv.DeepCopy()
	if has {
		if mv.Labels == nil {
			mv.Labels = map[string]string{}
		}
		mv.Labels[osseav1.WatchFilterLabel] = want
	} else {
		delete(mv.Labels, osseav1.WatchFilterLabel)
	}
	if err := r.Patch(ctx, mv, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("labelling MigrationVolume %s into the job's shard: %w", mv.Name, err)
	}
	return nil
}

// reconcileDelete deletes the job's volumes and lets the job go when they are gone. A job
// deleted with --cascade=orphan leaves its volumes to the garbage collector, which keeps
// them.
func (r *MigrationJobReconciler) reconcileDelete(ctx context.Context, s *jobScope) error {
	job := s.job
	if !controllerutil.ContainsFinalizer(job, osseav1.JobFinalizer) {
		return nil
	}
	if !controllerutil.ContainsFinalizer(job, metav1.FinalizerOrphanDependents) {
		vols, err := r.ownedVolumes(ctx, r.Client, job)
		if err != nil {
			return err
		}
		if len(vols) == 0 {
			// The cache may not show a volume created just before the job was deleted.
			if vols, err = r.ownedVolumes(ctx, r.APIReader, job); err != nil {
				return err
			}
		}
		for i := range vols {
			mv := &vols[i]
			s.volumes[mv.Spec.DiskName] = mv
			if !mv.DeletionTimestamp.IsZero() {
				continue
			}
			if err := r.Delete(ctx, mv, client.Preconditions{UID: &mv.UID}); client.IgnoreNotFound(err) != nil {
				return fmt.Errorf("deleting MigrationVolume %s: %w", mv.Name, err)
			}
		}
		if len(vols) > 0 {
			return waitFor(0) // the volumes' deletion wakes the job
		}
	}
	r.book.forget(job.UID)
	controllerutil.RemoveFinalizer(job, osseav1.JobFinalizer)
	return nil
}

// ownedVolumes lists the MigrationVolumes the job controls, through reader.
func (r *MigrationJobReconciler) ownedVolumes(ctx context.Context, reader client.Reader, job *osseav1.MigrationJob) ([]osseav1.MigrationVolume, error) {
	var list osseav1.MigrationVolumeList
	if err := reader.List(ctx, &list, client.InNamespace(job.Namespace), client.MatchingLabels{osseav1.JobLabel: job.Name}); err != nil {
		return nil, fmt.Errorf("listing the job's MigrationVolumes: %w", err)
	}
	owned := list.Items[:0]
	for _, mv := range list.Items {
		if ref := metav1.GetControllerOf(&mv); ref != nil && ref.UID == job.UID {
			owned = append(owned, mv)
		}
	}
	return owned, nil
}

// summarizeJob computes the job's status from what the pass saw: the disk lines and counts,
// Ready, Reconciling and Stalled, the phase. It is the one place that does.
func summarizeJob(s *jobScope) {
	job := s.job
	st := &job.Status
	st.ObservedGeneration = job.Generation
	var ready, handed int
	st.Disks = st.Disks[:0]
	var firstNotReady string
	for _, d := range job.Spec.Disks {
		line := osseav1.MigrationJobDiskStatus{Name: d.Name}
		mv := s.volumes[d.Name]
		if mv == nil {
			st.Disks = append(st.Disks, line)
			if firstNotReady == "" {
				firstNotReady = fmt.Sprintf("disk %s: no MigrationVolume yet", d.Name)
			}
			continue
		}
		line.Phase, line.VolumeID, line.DevicePath, line.MountPath = mv.Status.Phase, mv.Status.VolumeID, mv.Status.DevicePath, mv.Status.MountPath
		if h := mv.Status.Handoff; h != nil {
			line.TargetDeviceID = &h.DeviceID
			handed++
		}
		st.Disks = append(st.Disks, line)
		if c := meta.FindStatusCondition(mv.Status.Conditions, osseav1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue && s.stalled == nil {
			s.stalled = &stalling{reason: c.Reason, msg: fmt.Sprintf("disk %s (MigrationVolume %s): %s", d.Name, mv.Name, c.Message)}
		}
		if meta.IsStatusConditionTrue(mv.Status.Conditions, osseav1.ConditionReady) {
			ready++
		} else if firstNotReady == "" {
			firstNotReady = fmt.Sprintf("disk %s: %s", d.Name, volumeProgress(mv))
		}
	}
	total := len(job.Spec.Disks)
	st.DiskCount = &osseav1.MigrationJobDiskCount{Total: int32(total), Ready: int32(ready)}
	st.DisksReady = fmt.Sprintf("%d/%d", ready, total)

	c := s.conditions
	placed := meta.FindStatusCondition(st.Conditions, osseav1.ConditionPlaced)
	switch {
	case s.stalled != nil:
		c.set(osseav1.ConditionReady, metav1.ConditionFalse, s.stalled.reason, s.stalled.msg)
	case !job.DeletionTimestamp.IsZero():
		c.set(osseav1.ConditionReady, metav1.ConditionFalse, osseav1.ReasonDeleting, fmt.Sprintf("deleting: %d MigrationVolumes left", len(s.volumes)))
	case placed == nil:
		c.set(osseav1.ConditionReady, metav1.ConditionUnknown, osseav1.ReasonProgressing, "not placed yet")
	case placed.Status != metav1.ConditionTrue:
		c.set(osseav1.ConditionReady, metav1.ConditionFalse, placed.Reason, placed.Message)
	case job.Spec.Cutover != nil:
		// Ready means the job's end state: every disk on the target VM.
		if hc := meta.FindStatusCondition(st.Conditions, osseav1.ConditionHandedOff); hc != nil {
			c.set(osseav1.ConditionReady, hc.Status, hc.Reason, hc.Message)
		} else {
			c.set(osseav1.ConditionReady, metav1.ConditionUnknown, osseav1.ReasonCuttingOver, "cut-over not started yet")
		}
	case ready == total:
		c.set(osseav1.ConditionReady, metav1.ConditionTrue, osseav1.ReasonDisksReady, fmt.Sprintf("%d/%d disks Ready on OsseaConfig %s", ready, total, st.Placement.OsseaConfigName))
	default:
		c.set(osseav1.ConditionReady, metav1.ConditionFalse, osseav1.ReasonProvisioning, fmt.Sprintf("%d/%d disks Ready; %s", ready, total, firstNotReady))
	}
	c.setProgress(s.stalled != nil, *meta.FindStatusCondition(st.Conditions, osseav1.ConditionReady))
	st.Phase = jobPhase(job, len(s.volumes), ready, handed, s.stalled != nil)
}

// volumeProgress says where a volume that is not Ready is, from its Ready condition.
func volumeProgress(mv *osseav1.MigrationVolume) string {
	c := meta.FindStatusCondition(mv.Status.Conditions, osseav1.ConditionReady)
	if c == nil {
		return "waiting for the MigrationVolume controller"
	}
	return c.Reason + ": " + c.Message
}

// jobPhase is the phase shown for a job with volumes of its disks, ready of them Ready and
// handed of them handed off.
func jobPhase(job *osseav1.MigrationJob, volumes, ready, handed int, stalled bool) osseav1.MigrationJobPhase {
	switch {
	case !job.DeletionTimestamp.IsZero():
		return osseav1.JobPhaseDeleting
	case stalled:
		return osseav1.JobPhaseFailed
	case job.Status.Placement == nil:
		return osseav1.JobPhasePending
	case job.Spec.Cutover != nil && handed == len(job.Spec.Disks):
		return osseav1.JobPhaseHandedOff
	case job.Spec.Cutover != nil:
		return osseav1.JobPhaseCuttingOver
	case volumes < len(job.Spec.Disks):
		return osseav1.JobPhasePlacing
	case ready == len(job.Spec.Disks):
		return osseav1.JobPhaseReady
	}
	return osseav1.JobPhaseProvisioning
}
