package controllers

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudsim"
)

// CloudStack's API throttling refuses calls before acting on them (HTTP 429). A refused
// call, a read as much as a change, is taken again once the window has ended: it is no
// error of the volume's (nothing about it on the object), no reason for a backoff, and no
// "Reconciler error" in the log. The manager's budget (100/s here) is far above the
// throttle (6 calls a second, enough for one connection test), so reads and changes alike are refused.
func TestVolumeThrottledCallsAreTakenAgainQuietly(t *testing.T) {
	s := startVolumeSim(t, cloudsim.Options{Throttle: cloudsim.Throttle{Max: 6, Interval: time.Second}})
	e := newVolumeEnv(t, s, func(cfg *osseav1.OsseaConfig) { cfg.Spec.MaxDataVolumes = ptr.To[int32](6) })

	var mvs []*osseav1.MigrationVolume
	for i := range 6 {
		mv := e.newVolume(fmt.Sprintf("disk-%d", i), nil)
		create(t, mv)
		mvs = append(mvs, mv)
	}
	for _, mv := range mvs {
		got := waitVolume(t, mv, 2*time.Minute, conditionIs(osseav1.ConditionAttached, metav1.ConditionTrue, ""))
		if e := got.Status.LastCloudStackError; e != nil && e.Code == 429 {
			t.Errorf("%s: a throttled call is recorded as the volume's last CloudStack error: %+v", got.Name, e)
		}
	}

	st := s.Snapshot()
	reads := st.Throttled["listVolumes"] + st.Throttled["listAsyncJobs"] + st.Throttled["queryAsyncJobResult"]
	if reads == 0 {
		t.Fatalf("no read was throttled (throttled calls %v): the test did not test what it is for", st.Throttled)
	}
	for _, line := range strings.Split(e.mgr.logs.String(), "\n") {
		// CloudStack's text says "account api limit"; the endpoint's own budget's, "rate limit".
		if strings.Contains(line, "Reconciler error") && (strings.Contains(line, "api limit") || strings.Contains(line, "rate limit")) {
			t.Errorf("a throttled call was logged as a reconcile error (%d reads and %d calls in all refused): %s",
				reads, total(st.Throttled), truncate(line, 600))
			break
		}
	}
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
