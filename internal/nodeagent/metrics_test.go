package nodeagent

import (
	"testing"
	"time"

	"github.com/google/uuid"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

// agentMetrics is one reading of the agent's metrics from controller-runtime's registry
// (which also proves they are registered there).
type agentMetrics struct {
	mounts, formatted, kept, unmounts, sizeErrors float64
	mountLatencies                                uint64
	mountLatencySum                               float64
}

func readAgentMetrics(t *testing.T) agentMetrics {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var m agentMetrics
	for _, f := range families {
		for _, s := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch f.GetName() {
			case "ossea_agent_mounts_total":
				m.mounts = s.GetCounter().GetValue()
			case "ossea_agent_unmounts_total":
				m.unmounts = s.GetCounter().GetValue()
			case "ossea_agent_formats_total":
				switch labels["outcome"] {
				case formatOutcomeFormatted:
					m.formatted = s.GetCounter().GetValue()
				case formatOutcomeKept:
					m.kept = s.GetCounter().GetValue()
				}
			case "ossea_agent_errors_total":
				if labels["reason"] == osseav1.ReasonDeviceSizeMismatch {
					m.sizeErrors = s.GetCounter().GetValue()
				}
			case "ossea_agent_mount_duration_seconds":
				m.mountLatencies = s.GetHistogram().GetSampleCount()
				m.mountLatencySum = s.GetHistogram().GetSampleSum()
			}
		}
	}
	return m
}

// On real loop devices: a blank disk formatted and mounted, unmounted on deletion, mounted
// again as it is for a new object, and a disk of the wrong size refused; each moves its
// metric by one, and the mount latency is observed from the link's appearance.
func TestAgentMetricsMoveWithMountsFormatsAndErrors(t *testing.T) {
	w := newWorld(t)
	w.startAgent()
	volID := uuid.NewString()
	mv := w.newVolume("metrics", "job-m", "disk-0", 1)
	w.attach(mv, volID)
	before := readAgentMetrics(t)

	dev := w.loopDevice(1 << 30)
	w.link(volID, dev)
	start := time.Now()
	w.waitMounted(mv, metav1.ConditionTrue, osseav1.ReasonMounted, 30*time.Second)
	took := time.Since(start).Seconds()
	afterMount := readAgentMetrics(t)
	t.Logf("after the first mount: %+v (before: %+v)", afterMount, before)
	if afterMount.mounts != before.mounts+1 || afterMount.formatted != before.formatted+1 || afterMount.kept != before.kept {
		t.Errorf("mounts %v -> %v, formatted %v -> %v, kept %v -> %v; want +1, +1, +0",
			before.mounts, afterMount.mounts, before.formatted, afterMount.formatted, before.kept, afterMount.kept)
	}
	if afterMount.mountLatencies != before.mountLatencies+1 {
		t.Errorf("mount latency samples %d -> %d, want +1", before.mountLatencies, afterMount.mountLatencies)
	}
	// The link appeared just before start; the agent mounted before the test saw Mounted.
	if latency := afterMount.mountLatencySum - before.mountLatencySum; latency <= 0 || latency > took+1 {
		t.Errorf("mount latency observed %.3fs; the test saw the mount %.3fs after making the link", latency, took)
	}

	w.deleteAndWaitGone(mv, 20*time.Second)
	if got := readAgentMetrics(t).unmounts; got != before.unmounts+1 {
		t.Errorf("unmounts %v -> %v, want +1", before.unmounts, got)
	}

	// The same disk for a new object holds ext4 now: kept, not formatted.
	again := w.newVolume("metrics-again", "job-m", "disk-0", 1)
	w.attach(again, volID)
	w.waitMounted(again, metav1.ConditionTrue, osseav1.ReasonMounted, 30*time.Second)
	afterKeep := readAgentMetrics(t)
	if afterKeep.mounts != before.mounts+2 || afterKeep.kept != before.kept+1 || afterKeep.formatted != before.formatted+1 {
		t.Errorf("after the second mount: %+v; want mounts +2, kept +1, formatted +1 since %+v", afterKeep, before)
	}
	w.deleteAndWaitGone(again, 20*time.Second)

	// A 1 GiB disk for a 2 GiB volume: refused, counted once under its Reason.
	wrongID := uuid.NewString()
	w.link(wrongID, w.loopDevice(1<<30))
	wrong := w.newVolume("metrics-wrong-size", "job-m", "disk-1", 2)
	w.attach(wrong, wrongID)
	w.waitMounted(wrong, metav1.ConditionFalse, osseav1.ReasonDeviceSizeMismatch, 30*time.Second)
	if got := readAgentMetrics(t); got.sizeErrors != before.sizeErrors+1 || got.mounts != afterKeep.mounts {
		t.Errorf("errors{reason=%s} %v -> %v (want +1), mounts %v -> %v (want +0)",
			osseav1.ReasonDeviceSizeMismatch, before.sizeErrors, got.sizeErrors, afterKeep.mounts, got.mounts)
	}
	w.deleteAndWaitGone(wrong, 20*time.Second)
}
