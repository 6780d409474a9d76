package controllers

import (
	"errors"
	"fmt"
	"testing"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

func TestOutcomeResultTable(t *testing.T) {
	boom := errors.New("boom")
	retry := &retrying{cond: osseav1.ConditionAttached, reason: osseav1.ReasonCloudStackError, msg: "m", err: boom}
	cases := []struct {
		name    string
		err     error
		want    ctrl.Result
		wantErr error // nil: no error for controller-runtime
	}{
		{"done", nil, ctrl.Result{}, nil},
		{"waiting for an event", waitFor(0), ctrl.Result{}, nil},
		{"waiting for a job", waitFor(1500 * time.Millisecond), ctrl.Result{RequeueAfter: 1500 * time.Millisecond}, nil},
		{"waiting, wrapped", fmt.Errorf("step: %w", waitFor(time.Second)), ctrl.Result{RequeueAfter: time.Second}, nil},
		{"stalled: looked at again now and then", stall(osseav1.ConditionAllocated, osseav1.ReasonNameConflict, "m"),
			ctrl.Result{RequeueAfter: time.Hour}, nil},
		{"retrying: backoff", retry, ctrl.Result{}, boom},
		{"any other error: backoff", boom, ctrl.Result{}, boom},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := outcomeResult(tc.err, time.Hour)
			if res != tc.want {
				t.Errorf("result %+v, want %+v", res, tc.want)
			}
			if (err == nil) != (tc.wantErr == nil) || (err != nil && !errors.Is(err, tc.wantErr)) {
				t.Errorf("error %v, want %v", err, tc.wantErr)
			}
		})
	}
}
