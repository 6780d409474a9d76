package cloudstack

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Result code label for a call that got no HTTP reply at all.
const codeNoReply = "error"

var (
	apiCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ossea_cloudstack_api_calls_total",
		Help: "CloudStack API calls by command and HTTP result code (\"error\" when no reply arrived).",
	}, []string{"command", "code"})

	apiLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "ossea_cloudstack_api_call_duration_seconds",
		Help:    "Time from sending a CloudStack API request to having read its reply, by command.",
		Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
	}, []string{"command"})

	rateLimitWait = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "ossea_cloudstack_rate_limit_wait_seconds",
		Help:    "Time a CloudStack API call waited for the client-side rate limiter.",
		Buckets: []float64{0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
	})

	batchSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "ossea_cloudstack_batched_lookups",
		Help:    "Lookups (volume reads, name searches) answered by one batched CloudStack call.",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 100},
	})

	jobsFinished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ossea_cloudstack_async_jobs_finished_total",
		Help: "CloudStack async jobs seen finished by PollJob, by result (succeeded, failed).",
	}, []string{"result"})
)

// init registers on controller-runtime's registry so the manager's /metrics serves these
// without any wiring; init runs once per process, so there is no double registration.
func init() {
	metrics.Registry.MustRegister(apiCalls, apiLatency, rateLimitWait, batchSize, jobsFinished)
}
