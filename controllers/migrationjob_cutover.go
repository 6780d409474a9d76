package controllers

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudstack"
)

// The cut-over of a job (spec.cutover) hands its disks to the target VM through their
// MigrationVolumes' spec.handoff, one at a time: the root disk first, at device 0, then the
// data disks in spec.disks order, each only once the one before is on the target, so that
// the target's device ids ascend in the source's order. Before the first disk leaves the
// OMA, the target is checked for all of them at once; a refusal leaves every disk mounted.

// cutoverOrder is the order in which the job's disks are handed off.
func cutoverOrder(job *osseav1.MigrationJob) []string {
	root := job.Spec.Cutover.RootDisk
	order := make([]string, 0, len(job.Spec.Disks))
	if root != "" {
		order = append(order, root)
	}
	for _, d := range job.Spec.Disks {
		if d.Name != root {
			order = append(order, d.Name)
		}
	}
	return order
}

// cutOver moves the cut-over on by one step; nil when every disk is handed off.
func (r *MigrationJobReconciler) cutOver(ctx context.Context, s *jobScope) error {
	job, c := s.job, s.job.Spec.Cutover
	order := cutoverOrder(job)
	started := false
	for _, name := range order {
		mv := s.volumes[name]
		if mv == nil {
			return waitFor(0) // the volumes are made first
		}
		started = started || mv.Spec.Handoff != nil
	}
	if !started {
		if notReady := len(order) - readyVolumes(s); notReady > 0 {
			s.conditions.set(osseav1.ConditionHandedOff, metav1.ConditionFalse, osseav1.ReasonProvisioning,
				fmt.Sprintf("waiting for %d disks to be Ready before the cut-over", notReady))
			return waitFor(0)
		}
		if err := r.checkTarget(ctx, s); err != nil {
			return err
		}
	}
	for i, name := range order {
		mv := s.volumes[name]
		if mv.Status.Handoff != nil {
			continue
		}
		if mv.Spec.Handoff == nil {
			if err := r.startHandoff(ctx, mv, c.TargetVirtualMachineID, name == c.RootDisk); err != nil {
				return err
			}
		}
		msg := fmt.Sprintf("handing off disk %s (%d of %d) to VM %s", name, i+1, len(order), c.TargetVirtualMachineID)
		if hc := meta.FindStatusCondition(mv.Status.Conditions, osseav1.ConditionHandedOff); hc != nil && hc.Message != "" {
			msg += ": " + hc.Reason + ": " + hc.Message
		}
		s.conditions.set(osseav1.ConditionHandedOff, metav1.ConditionFalse, osseav1.ReasonCuttingOver, msg)
		return waitFor(0) // the volume's progress wakes the job
	}
	s.conditions.set(osseav1.ConditionHandedOff, metav1.ConditionTrue, osseav1.ReasonHandedOff,
		fmt.Sprintf("all %d disks handed off to VM %s", len(order), c.TargetVirtualMachineID))
	return nil
}

func readyVolumes(s *jobScope) int {
	n := 0
	for _, mv := range s.volumes {
		if meta.IsStatusConditionTrue(mv.Status.Conditions, osseav1.ConditionReady) {
			n++
		}
	}
	return n
}

// startHandoff sets a volume's spec.handoff.
func (r *MigrationJobReconciler) startHandoff(ctx context.Context, mv *osseav1.MigrationVolume, vmID string, asRoot bool) error {
	before := mv.DeepCopy()
	mv.Spec.Handoff = &osseav1.VolumeHandoff{VirtualMachineID: vmID, AsRoot: asRoot}
	if err := r.Patch(ctx, mv, client.MergeFrom(before)); err != nil {
		return fmt.Errorf("handing off MigrationVolume %s: %w", mv.Name, err)
	}
	return nil
}

// checkTarget checks, with the job's OsseaConfig's credentials, that the target can take
// every disk of the job: the same checks each volume makes for itself later (see
// targetProblem), for all of them at once.
func (r *MigrationJobReconciler) checkTarget(ctx context.Context, s *jobScope) error {
	job, c := s.job, s.job.Spec.Cutover
	cfg := &osseav1.OsseaConfig{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: job.Namespace, Name: job.Status.Placement.OsseaConfigName}, cfg); err != nil {
		return fmt.Errorf("reading OsseaConfig %s: %w", job.Status.Placement.OsseaConfigName, err)
	}
	secret := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: cfg.Namespace, Name: cfg.Spec.CredentialsSecretRef.Name}, secret); err != nil {
		return fmt.Errorf("reading the credentials of OsseaConfig %s: %w", cfg.Name, err)
	}
	cloud, err := r.Clouds.For(cfg, secret)
	if err != nil {
		return fmt.Errorf("building the CloudStack client of OsseaConfig %s: %w", cfg.Name, err)
	}
	target, err := cloud.GetVirtualMachine(ctx, c.TargetVirtualMachineID)
	if err != nil && !errors.Is(err, cloudstack.ErrNotFound) {
		return fmt.Errorf("reading the target VM %s: %w", c.TargetVirtualMachineID, err)
	}
	need := targetNeed{vmID: c.TargetVirtualMachineID, root: c.RootDisk != "", data: len(job.Spec.Disks)}
	if need.root {
		need.data--
	}
	dataDisks := 0
	if target != nil && need.data > 0 {
		if dataDisks, err = cloud.CountDataVolumes(ctx, c.TargetVirtualMachineID); err != nil {
			return fmt.Errorf("counting the target VM's data disks: %w", err)
		}
	}
	if reason, msg := targetProblem(need, target, cfg.Status.ZoneID, dataDisks, maxDataVolumes(cfg)); reason != "" {
		return &stalling{cond: osseav1.ConditionHandedOff, reason: reason, msg: msg + "; every disk is still on the OMA", recheck: r.HandoffRecheck}
	}
	return nil
}
