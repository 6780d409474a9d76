package nodeagent

import (
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// The agent's metrics, on controller-runtime's registry: served by the agent's metrics
// endpoint (--metrics-bind-address, off by default) beside the controller's own.
var (
	mountsTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ossea_agent_mounts_total",
		Help: "Volumes this agent mounted (a mount it finds already made, after a restart, is not counted).",
	})
	formatsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ossea_agent_formats_total",
		Help: "Filesystems of mounted volumes, by outcome: formatted (mkfs ran on a blank device) or kept (an existing filesystem was mounted as it was).",
	}, []string{"outcome"})
	mountDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "ossea_agent_mount_duration_seconds",
		Help:    "Time from the disk's by-id link appearing (the link's own modification time) to the volume mounted, mkfs included.",
		Buckets: prometheus.ExponentialBuckets(0.05, 2, 14), // 50 ms to about 7 minutes
	})
	unmountsTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ossea_agent_unmounts_total",
		Help: "Volumes this agent unmounted (on deletion, hand-off or detach).",
	})
	errorsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ossea_agent_errors_total",
		Help: "Failures reported on a volume's Mounted condition, by Reason: one per transition of a volume into the Reason.",
	}, []string{"reason"})
)

// Outcomes of ossea_agent_formats_total.
const (
	formatOutcomeFormatted = "formatted"
	formatOutcomeKept      = "kept"
)

func init() {
	metrics.Registry.MustRegister(mountsTotal, formatsTotal, mountDuration, unmountsTotal, errorsTotal)
	// Every label value shown from the start at 0, so that rate() and alerts see a series
	// before its first increment.
	for _, o := range []string{formatOutcomeFormatted, formatOutcomeKept} {
		formatsTotal.WithLabelValues(o)
	}
	for reason := range warningReasons {
		errorsTotal.WithLabelValues(reason)
	}
}

// observeMounted counts a mount this agent made and how long the disk waited for it. The
// start is the by-id link's modification time, which is when udev (or the simulator's
// hypervisor) made the link: the moment the disk became usable on the node, whatever the
// agent was doing then (restarting, say). No start is known if the link cannot be read.
func observeMounted(dev *Device, formatted bool) {
	mountsTotal.Inc()
	outcome := formatOutcomeKept
	if formatted {
		outcome = formatOutcomeFormatted
	}
	formatsTotal.WithLabelValues(outcome).Inc()
	if fi, err := os.Lstat(dev.Link); err == nil {
		mountDuration.Observe(max(0, time.Since(fi.ModTime()).Seconds()))
	}
}

// failureCounter counts a volume's failure Reason once per transition into it. The
// condition's previous value cannot tell: a reconcile that runs on a cached copy older than
// the last status write sees the failure as new again. So the last Reason counted for each
// volume is remembered, until the volume reports something else or leaves the agent.
type failureCounter struct {
	last sync.Map // types.NamespacedName -> string
}

func (f *failureCounter) observe(key types.NamespacedName, rep *report) {
	if rep.status != metav1.ConditionFalse || !warningReasons[rep.reason] {
		if rep.reason != "" { // a claim without a report says nothing about failures
			f.last.Delete(key)
		}
		return
	}
	if prev, loaded := f.last.Swap(key, rep.reason); !loaded || prev.(string) != rep.reason {
		errorsTotal.WithLabelValues(rep.reason).Inc()
	}
}

func (f *failureCounter) forget(key types.NamespacedName) { f.last.Delete(key) }
