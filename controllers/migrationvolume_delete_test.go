package controllers

import (
	"testing"
	"time"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

func TestAgentLetGoWait(t *testing.T) {
	deleted := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	job := &osseav1.PendingJob{Operation: opAttach, ID: "job-1"}
	for _, tc := range []struct {
		name    string
		since   time.Duration // from the deletion to now
		pending *osseav1.PendingJob
		want    time.Duration
	}{
		{"just deleted: quiet for the whole grace", 0, nil, agentLetGoGrace},
		{"two seconds in: the rest of it", 2 * time.Second, nil, agentLetGoGrace - 2*time.Second},
		{"the grace is over: say it", agentLetGoGrace, nil, 0},
		{"long over", time.Hour, nil, 0},
		{"our clock behind the API server's: never more than the grace", -time.Minute, nil, agentLetGoGrace},
		{"a job in flight is put on record at once", 0, job, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := agentLetGoWait(deleted, deleted.Add(tc.since), tc.pending); got != tc.want {
				t.Errorf("agentLetGoWait = %v, want %v", got, tc.want)
			}
		})
	}
}
