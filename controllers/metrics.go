package controllers

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudstack"
)

var (
	volumesByPhase = &phaseGauge{
		gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ossea_migrationvolumes",
			Help: "MigrationVolumes by phase.",
		}, []string{"phase"}),
	}
	stepDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "ossea_migrationvolume_step_duration_seconds",
		Help:    "Time from starting a CloudStack job for a MigrationVolume to seeing it succeed, by operation.",
		Buckets: prometheus.ExponentialBuckets(0.25, 2, 10),
	}, []string{"operation"})
	cloudErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ossea_migrationvolume_cloudstack_errors_total",
		Help: "CloudStack errors met while reconciling MigrationVolumes, by class.",
	}, []string{"class"})
	orphanVolumes = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ossea_orphan_volumes",
		Help: "Volumes this cluster made for an OsseaConfig that no MigrationVolume stands for, at the last check.",
	}, []string{"namespace", "osseaconfig"})
	orphansDeleted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ossea_orphan_volumes_deleted_total",
		Help: "Orphaned volumes deleted under orphanPolicy Delete.",
	}, []string{"namespace", "osseaconfig"})
)

func init() {
	metrics.Registry.MustRegister(volumesByPhase.gauge, stepDuration, cloudErrors, orphanVolumes, orphansDeleted)
}

// phaseGauge counts volumes by their last seen phase.
type phaseGauge struct {
	gauge *prometheus.GaugeVec
	mu    sync.Mutex
	last  map[types.UID]osseav1.Phase
}

func (g *phaseGauge) observe(mv *osseav1.MigrationVolume) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.last == nil {
		g.last = map[types.UID]osseav1.Phase{}
	}
	if old, ok := g.last[mv.UID]; ok {
		g.gauge.WithLabelValues(string(old)).Dec()
		delete(g.last, mv.UID)
	}
	if !mv.DeletionTimestamp.IsZero() && len(mv.Finalizers) == 0 {
		return // gone
	}
	g.last[mv.UID] = mv.Status.Phase
	g.gauge.WithLabelValues(string(mv.Status.Phase)).Inc()
}

// errorClass names an error's class for the metric.
func errorClass(err error) string {
	for _, c := range []struct {
		err  error
		name string
	}{
		{cloudstack.ErrNotFound, "not_found"},
		{cloudstack.ErrAlreadyAttached, "already_attached"},
		{cloudstack.ErrAttachedElsewhere, "attached_elsewhere"},
		{cloudstack.ErrVolumeAttached, "attached"},
		{cloudstack.ErrNotAttached, "not_attached"},
		{cloudstack.ErrCapacity, "capacity"},
		{cloudstack.ErrAccountLimit, "account_limit"},
		{cloudstack.ErrUnauthorized, "unauthorized"},
		{cloudstack.ErrPermissionDenied, "permission_denied"},
		{cloudstack.ErrInvalidParameter, "invalid_parameter"},
		{cloudstack.ErrInvalidState, "invalid_state"},
		{cloudstack.ErrRateLimited, "rate_limited"},
		{cloudstack.ErrUnreachable, "unreachable"},
		{cloudstack.ErrTransient, "transient"},
		{cloudstack.ErrTLS, "tls"},
	} {
		if errors.Is(err, c.err) {
			return c.name
		}
	}
	return "other"
}
