package controllers

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

// Table tests of a MigrationVolume's phase and Ready/Reconciling/Stalled summary
// (migrationvolume_status.go), and of the summary both kinds share (conditions.go). Like
// all the Decision tests, they need neither the API server nor CloudStack:
// go test ./controllers -run Decision

// TestDecisionPhase: every phase phaseOf returns, and which wins when several could.
func TestDecisionPhase(t *testing.T) {
	cond := func(condType string, status metav1.ConditionStatus, reason string) metav1.Condition {
		return metav1.Condition{Type: condType, Status: status, Reason: reason}
	}
	allocated := cond(osseav1.ConditionAllocated, metav1.ConditionTrue, osseav1.ReasonCreated)
	attached := cond(osseav1.ConditionAttached, metav1.ConditionTrue, osseav1.ReasonAttached)
	mounted := cond(osseav1.ConditionMounted, metav1.ConditionTrue, osseav1.ReasonMounted)
	published := cond(osseav1.ConditionMounted, metav1.ConditionTrue, osseav1.ReasonPublished)
	cases := []struct {
		name       string
		conds      []metav1.Condition
		volumeID   string
		pendingJob bool
		vmID       string // status.attachedVirtualMachineID
		deleting   bool
		finalizers []string
		stalled    bool
		want       osseav1.Phase
	}{
		{name: "nothing yet", want: osseav1.PhasePending},
		{name: "waiting for the config", conds: []metav1.Condition{cond(osseav1.ConditionAllocated, metav1.ConditionFalse, osseav1.ReasonOsseaConfigNotReady)},
			want: osseav1.PhasePending},
		{name: "create job in flight", pendingJob: true, want: osseav1.PhaseAllocated},
		{name: "volume id known, not yet tagged", volumeID: "vol-1",
			conds: []metav1.Condition{cond(osseav1.ConditionAllocated, metav1.ConditionFalse, osseav1.ReasonTagging)}, want: osseav1.PhaseAllocated},
		{name: "allocated", volumeID: "vol-1", conds: []metav1.Condition{allocated}, want: osseav1.PhaseReady},
		{name: "allocated, attach refused for now", volumeID: "vol-1",
			conds: []metav1.Condition{allocated, cond(osseav1.ConditionAttached, metav1.ConditionFalse, osseav1.ReasonCapacityExhausted)}, want: osseav1.PhaseReady},
		{name: "attached", volumeID: "vol-1", vmID: "vm", conds: []metav1.Condition{allocated, attached}, want: osseav1.PhaseAttached},
		{name: "attached, agent waiting for the device", volumeID: "vol-1", vmID: "vm",
			conds: []metav1.Condition{allocated, attached, cond(osseav1.ConditionMounted, metav1.ConditionFalse, osseav1.ReasonWaitingForDevice)}, want: osseav1.PhaseAttached},
		{name: "attached, Mounted unknown", volumeID: "vol-1", vmID: "vm",
			conds: []metav1.Condition{allocated, attached, cond(osseav1.ConditionMounted, metav1.ConditionUnknown, "Unknown")}, want: osseav1.PhaseAttached},
		{name: "mounted", volumeID: "vol-1", vmID: "vm", conds: []metav1.Condition{allocated, attached, mounted}, want: osseav1.PhaseMounted},
		{name: "published (Block)", volumeID: "vol-1", vmID: "vm", conds: []metav1.Condition{allocated, attached, published}, want: osseav1.PhasePublished},
		{name: "Mounted is read before Attached", volumeID: "vol-1", vmID: "vm",
			conds: []metav1.Condition{allocated, cond(osseav1.ConditionAttached, metav1.ConditionFalse, osseav1.ReasonAttaching), mounted}, want: osseav1.PhaseMounted},
		{name: "stalled", volumeID: "vol-1", conds: []metav1.Condition{allocated}, stalled: true, want: osseav1.PhaseFailed},
		{name: "stalled wins over mounted", volumeID: "vol-1", vmID: "vm", conds: []metav1.Condition{allocated, attached, mounted}, stalled: true,
			want: osseav1.PhaseFailed},
		{name: "stalled before anything", stalled: true, want: osseav1.PhaseFailed},
		{name: "deleting, the agent still holds it", volumeID: "vol-1", vmID: "vm", deleting: true,
			finalizers: []string{osseav1.MountFinalizer, osseav1.VolumeFinalizer}, conds: []metav1.Condition{allocated, attached, mounted}, want: osseav1.PhaseUnmounting},
		{name: "deleting, unmounted, still attached", volumeID: "vol-1", vmID: "vm", deleting: true,
			finalizers: []string{osseav1.VolumeFinalizer}, conds: []metav1.Condition{allocated, attached}, want: osseav1.PhaseDetaching},
		{name: "deleting, detached", volumeID: "vol-1", deleting: true, finalizers: []string{osseav1.VolumeFinalizer},
			conds: []metav1.Condition{allocated}, want: osseav1.PhaseDeleting},
		{name: "deleting wins over stalled", volumeID: "vol-1", vmID: "vm", deleting: true, finalizers: []string{osseav1.VolumeFinalizer},
			stalled: true, want: osseav1.PhaseDetaching},
		{name: "deleting before anything was made", deleting: true, finalizers: []string{osseav1.VolumeFinalizer}, want: osseav1.PhaseDeleting},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mv := memVolume("a")
			mv.Finalizers = tc.finalizers
			if tc.deleting {
				mv.DeletionTimestamp = &metav1.Time{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			}
			mv.Status.Conditions = tc.conds
			mv.Status.VolumeID = tc.volumeID
			mv.Status.AttachedVirtualMachineID = tc.vmID
			if tc.pendingJob {
				mv.Status.PendingJob = pending("job-1", opCreate)
			}
			if got := phaseOf(mv, tc.stalled); got != tc.want {
				t.Fatalf("phase %s, want %s", got, tc.want)
			}
		})
	}
}

// summaryConds are the three conditions the summary writes, as "Status/Reason: Message", ""
// when absent.
type summaryConds struct{ ready, reconciling, stalled string }

func summaryOf(conds []metav1.Condition) summaryConds {
	show := func(condType string) string {
		for _, c := range conds {
			if c.Type == condType {
				return fmt.Sprintf("%s/%s: %s", c.Status, c.Reason, c.Message)
			}
		}
		return ""
	}
	return summaryConds{show(osseav1.ConditionReady), show(osseav1.ConditionReconciling), show(osseav1.ConditionStalled)}
}

// TestDecisionReadySummary: conditionSetter.summarize, which both kinds use. Ready is True
// with the given reason when every detail is True; Unknown/Progressing at the first one not
// reported yet; else a copy of the first one that is not True. Reconciling and Stalled, per
// kstatus, are present only while True.
func TestDecisionReadySummary(t *testing.T) {
	details := []string{osseav1.ConditionAllocated, osseav1.ConditionAttached, osseav1.ConditionMounted}
	c := func(condType string, status metav1.ConditionStatus, reason, msg string) metav1.Condition {
		return metav1.Condition{Type: condType, Status: status, Reason: reason, Message: msg}
	}
	const T, F, U = metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionUnknown
	allTrue := []metav1.Condition{
		c(osseav1.ConditionAllocated, T, osseav1.ReasonCreated, "created"),
		c(osseav1.ConditionAttached, T, osseav1.ReasonAttached, "attached"),
		c(osseav1.ConditionMounted, T, osseav1.ReasonMounted, "mounted"),
	}
	staleReconciling := c(osseav1.ConditionReconciling, T, osseav1.ReasonProgressing, "from before")
	staleStalled := c(osseav1.ConditionStalled, T, osseav1.ReasonDeviceNotFound, "from before")
	with := func(base []metav1.Condition, more ...metav1.Condition) []metav1.Condition {
		return append(append([]metav1.Condition(nil), base...), more...)
	}
	cases := []struct {
		name    string
		details []string
		conds   []metav1.Condition
		stalled bool
		want    summaryConds
	}{
		{name: "all True: Ready True with the given reason", conds: allTrue,
			want: summaryConds{ready: "True/Mounted: ready message"}},
		{name: "all True: Reconciling and Stalled from before are removed", conds: with(allTrue, staleReconciling, staleStalled),
			want: summaryConds{ready: "True/Mounted: ready message"}},
		{name: "nothing reported: waiting for the first detail",
			want: summaryConds{
				ready:       "Unknown/Progressing: waiting for the Allocated condition to be reported",
				reconciling: "True/Progressing: waiting for the Allocated condition to be reported"}},
		{name: "a later detail missing", conds: allTrue[:1],
			want: summaryConds{
				ready:       "Unknown/Progressing: waiting for the Attached condition to be reported",
				reconciling: "True/Progressing: waiting for the Attached condition to be reported"}},
		{name: "the last detail missing", conds: allTrue[:2],
			want: summaryConds{
				ready:       "Unknown/Progressing: waiting for the Mounted condition to be reported",
				reconciling: "True/Progressing: waiting for the Mounted condition to be reported"}},
		{name: "the first False detail is copied", conds: []metav1.Condition{
			allTrue[0],
			c(osseav1.ConditionAttached, F, osseav1.ReasonCapacityExhausted, "VM full"),
			c(osseav1.ConditionMounted, F, osseav1.ReasonWaitingForDevice, "no device"),
		}, want: summaryConds{ready: "False/CapacityExhausted: VM full", reconciling: "True/CapacityExhausted: VM full"}},
		{name: "a False detail before a missing one is copied", conds: []metav1.Condition{
			c(osseav1.ConditionAllocated, F, osseav1.ReasonOsseaConfigNotReady, "config not ready"),
		}, want: summaryConds{ready: "False/OsseaConfigNotReady: config not ready", reconciling: "True/OsseaConfigNotReady: config not ready"}},
		{name: "a missing detail before a False one: waiting for it", conds: []metav1.Condition{
			c(osseav1.ConditionAttached, F, osseav1.ReasonAttaching, "attaching"),
		}, want: summaryConds{
			ready:       "Unknown/Progressing: waiting for the Allocated condition to be reported",
			reconciling: "True/Progressing: waiting for the Allocated condition to be reported"}},
		{name: "an Unknown detail makes Ready False with its reason", conds: []metav1.Condition{
			allTrue[0], c(osseav1.ConditionAttached, U, "Checking", "checking"),
		}, want: summaryConds{ready: "False/Checking: checking", reconciling: "True/Checking: checking"}},
		{name: "stalled: Stalled carries Ready's reason, Reconciling goes", stalled: true, conds: []metav1.Condition{
			allTrue[0], c(osseav1.ConditionAttached, F, osseav1.ReasonAttachedElsewhere, "attached to vm-x"), staleReconciling,
		}, want: summaryConds{ready: "False/AttachedElsewhere: attached to vm-x", stalled: "True/AttachedElsewhere: attached to vm-x"}},
		{name: "stalled while waiting for a detail", stalled: true,
			want: summaryConds{
				ready:   "Unknown/Progressing: waiting for the Allocated condition to be reported",
				stalled: "True/Progressing: waiting for the Allocated condition to be reported"}},
		{name: "stalled with every detail True: Stalled and Ready both True", stalled: true, conds: allTrue,
			want: summaryConds{ready: "True/Mounted: ready message", stalled: "True/Mounted: ready message"}},
		{name: "no longer stalled: Stalled goes, Reconciling comes", conds: []metav1.Condition{
			allTrue[0], c(osseav1.ConditionAttached, F, osseav1.ReasonAttaching, "attaching"), staleStalled,
		}, want: summaryConds{ready: "False/Attaching: attaching", reconciling: "True/Attaching: attaching"}},
		{name: "no details: Ready True", details: []string{}, want: summaryConds{ready: "True/Mounted: ready message"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conds := with(tc.conds)
			s := conditionSetter{conditions: &conds, generation: 7}
			d := details
			if tc.details != nil {
				d = tc.details
			}
			s.summarize(d, tc.stalled, osseav1.ReasonMounted, "ready message")
			if got := summaryOf(conds); got != tc.want {
				t.Fatalf("got\n  %+v\nwant\n  %+v", got, tc.want)
			}
			for _, cond := range conds {
				isSummary := cond.Type == osseav1.ConditionReady || cond.Type == osseav1.ConditionReconciling || cond.Type == osseav1.ConditionStalled
				if isSummary && cond.ObservedGeneration != 7 {
					t.Errorf("%s written for generation %d, want 7", cond.Type, cond.ObservedGeneration)
				}
			}
			// The details are read, never written.
			for _, before := range tc.conds {
				if before.Type == osseav1.ConditionReady || before.Type == osseav1.ConditionReconciling || before.Type == osseav1.ConditionStalled {
					continue
				}
				found := false
				for _, after := range conds {
					if after.Type == before.Type {
						found = after.Status == before.Status && after.Reason == before.Reason && after.Message == before.Message
					}
				}
				if !found {
					t.Errorf("detail %s changed or removed", before.Type)
				}
			}
		})
	}
}

// TestDecisionVolumeSummary: the MigrationVolume's own summary around the common one: the
// agent's Mounted reasons that need a person stall the volume, a wait for the config keeps
// its Reconciling reason, a volume being deleted is Ready False with the teardown step,
// and the phase and observedGeneration follow.
func TestDecisionVolumeSummary(t *testing.T) {
	c := func(condType string, status metav1.ConditionStatus, reason, msg string) metav1.Condition {
		return metav1.Condition{Type: condType, Status: status, Reason: reason, Message: msg}
	}
	const T, F = metav1.ConditionTrue, metav1.ConditionFalse
	allocated := c(osseav1.ConditionAllocated, T, osseav1.ReasonCreated, "created")
	attached := c(osseav1.ConditionAttached, T, osseav1.ReasonAttached, "attached")
	configWait := c(osseav1.ConditionReconciling, T, osseav1.ReasonOsseaConfigNotReady, "waiting for OsseaConfig ossea")
	cases := []struct {
		name      string
		conds     []metav1.Condition
		mountPath string
		noVolume  bool // no CloudStack volume yet (else status.volumeID is vol-1)
		deleting  bool
		vmID      string
		stalled   bool
		want      summaryConds
		wantPhase osseav1.Phase
	}{
		{name: "mounted", mountPath: "/mnt/job/disk0",
			conds: []metav1.Condition{allocated, attached, c(osseav1.ConditionMounted, T, osseav1.ReasonMounted, "mounted")},
			want:  summaryConds{ready: "True/Mounted: CloudStack volume vol-1 is attached and mounted at /mnt/job/disk0"}, wantPhase: osseav1.PhaseMounted},
		{name: "published",
			conds: []metav1.Condition{allocated, attached, c(osseav1.ConditionMounted, T, osseav1.ReasonPublished, "published")},
			want:  summaryConds{ready: "True/Published: CloudStack volume vol-1 is attached and published at /dev/disk/by-id/virtio-1"}, wantPhase: osseav1.PhasePublished},
		{name: "the agent waits for the device: progressing",
			conds:     []metav1.Condition{allocated, attached, c(osseav1.ConditionMounted, F, osseav1.ReasonWaitingForDevice, "no device yet")},
			want:      summaryConds{ready: "False/WaitingForDevice: no device yet", reconciling: "True/WaitingForDevice: no device yet"},
			wantPhase: osseav1.PhaseAttached},
		{name: "the agent needs a person: stalled",
			conds:     []metav1.Condition{allocated, attached, c(osseav1.ConditionMounted, F, osseav1.ReasonDeviceNotBlank, "holds ext4")},
			want:      summaryConds{ready: "False/DeviceNotBlank: holds ext4", stalled: "True/DeviceNotBlank: holds ext4"},
			wantPhase: osseav1.PhaseFailed},
		{name: "a phase stalled the volume", stalled: true,
			conds:     []metav1.Condition{c(osseav1.ConditionAllocated, F, osseav1.ReasonNameConflict, "two volumes")},
			want:      summaryConds{ready: "False/NameConflict: two volumes", stalled: "True/NameConflict: two volumes"},
			wantPhase: osseav1.PhaseFailed},
		{name: "allocated, waiting for the config: its Reconciling reason is kept",
			conds: []metav1.Condition{allocated, configWait},
			want: summaryConds{
				ready:       "Unknown/Progressing: waiting for the Attached condition to be reported",
				reconciling: "True/OsseaConfigNotReady: waiting for OsseaConfig ossea"},
			wantPhase: osseav1.PhaseReady},
		{name: "allocated, waiting for the config, Ready already written: the reason is still kept",
			conds: []metav1.Condition{allocated, configWait,
				c(osseav1.ConditionReady, metav1.ConditionUnknown, osseav1.ReasonProgressing, "waiting for the Attached condition to be reported")},
			want: summaryConds{
				ready:       "Unknown/Progressing: waiting for the Attached condition to be reported",
				reconciling: "True/OsseaConfigNotReady: waiting for OsseaConfig ossea"},
			wantPhase: osseav1.PhaseReady},
		{name: "not allocated, waiting for the config: Reconciling follows Ready",
			conds: []metav1.Condition{c(osseav1.ConditionAllocated, F, osseav1.ReasonOsseaConfigNotReady, "config not ready"), configWait},
			want: summaryConds{
				ready:       "False/OsseaConfigNotReady: config not ready",
				reconciling: "True/OsseaConfigNotReady: config not ready"},
			noVolume: true, wantPhase: osseav1.PhasePending},
		{name: "waiting for the config but stalled: no Reconciling", stalled: true,
			conds: []metav1.Condition{allocated, configWait},
			want: summaryConds{
				ready:   "Unknown/Progressing: waiting for the Attached condition to be reported",
				stalled: "True/Progressing: waiting for the Attached condition to be reported"},
			wantPhase: osseav1.PhaseFailed},
		{name: "deleting, no step reported: tearing down", deleting: true, conds: []metav1.Condition{allocated},
			want: summaryConds{ready: "False/Deleting: tearing down"}, wantPhase: osseav1.PhaseDeleting},
		{name: "deleting: Ready tells the teardown step", deleting: true, vmID: "vm",
			conds:     []metav1.Condition{allocated, attached, c(osseav1.ConditionReconciling, T, osseav1.ReasonDetaching, "detaching from vm")},
			want:      summaryConds{ready: "False/Detaching: detaching from vm", reconciling: "True/Detaching: detaching from vm"},
			wantPhase: osseav1.PhaseDetaching},
		{name: "deleting and stalled", deleting: true, stalled: true, vmID: "vm",
			conds: []metav1.Condition{allocated, attached, c(osseav1.ConditionReconciling, T, osseav1.ReasonDetaching, "detaching from vm")},
			want: summaryConds{ready: "False/Detaching: detaching from vm", reconciling: "True/Detaching: detaching from vm",
				stalled: "True/Detaching: detaching from vm"},
			wantPhase: osseav1.PhaseDetaching},
		{name: "deleting, no longer stalled: Stalled goes", deleting: true,
			conds: []metav1.Condition{allocated, c(osseav1.ConditionStalled, T, osseav1.ReasonCloudStackRejected, "from before")},
			want:  summaryConds{ready: "False/Deleting: tearing down"}, wantPhase: osseav1.PhaseDeleting},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mv := memVolume("a")
			mv.Generation = 3
			mv.Finalizers = []string{osseav1.VolumeFinalizer}
			if tc.deleting {
				mv.DeletionTimestamp = &metav1.Time{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			}
			mv.Status.Conditions = append([]metav1.Condition(nil), tc.conds...)
			if !tc.noVolume {
				mv.Status.VolumeID = "vol-1"
			}
			mv.Status.MountPath = tc.mountPath
			mv.Status.DevicePath = "/dev/disk/by-id/virtio-1"
			mv.Status.AttachedVirtualMachineID = tc.vmID
			s := &volumeScope{mv: mv, conditions: conditionSetter{&mv.Status.Conditions, mv.Generation}, stalled: tc.stalled}
			(&MigrationVolumeReconciler{}).summarize(s)
			if got := summaryOf(mv.Status.Conditions); got != tc.want {
				t.Fatalf("got\n  %+v\nwant\n  %+v", got, tc.want)
			}
			if mv.Status.Phase != tc.wantPhase || mv.Status.ObservedGeneration != 3 {
				t.Fatalf("phase %s, observedGeneration %d; want %s, 3", mv.Status.Phase, mv.Status.ObservedGeneration, tc.wantPhase)
			}
		})
	}
}
