package controllers

import (
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/migratekit/ossea-operator/internal/cloudstack"
)

// How a step ends. A step returns nil when its part of the desired state holds, so the next
// step may run; otherwise it returns one of the outcomes below (or any other error, which is
// retried with backoff). The reconcilers turn outcomes into conditions, events and the
// result in one place (see MigrationVolumeReconciler.outcome), as Flux's source-controller
// does with its Waiting, Stalling and Generic errors.

// waiting ends the pass without a failure: a job runs, a slot or the node agent is awaited.
// after is when to come back; zero leaves it to an event (a watch, a freed slot).
type waiting struct{ after time.Duration }

func (w *waiting) Error() string {
	if w.after == 0 {
		return "waiting for an event"
	}
	return fmt.Sprintf("waiting %s", w.after)
}

// waitFor ends the pass and comes back after d (d = 0: when an event comes).
func waitFor(d time.Duration) error { return &waiting{after: d} }

// throttled is the outcome of a call that never ran for the rate limit: CloudStack's API
// throttling refused it (the endpoint's budget then pauses until its window ends), or the
// budget itself could not send it before its caller's deadline. Nothing happened, so the
// step is simply taken again a second later: no read first, no backoff, nothing reported
// on the object and no error logged (the errors metric counts them). nil when err is not
// such a call's.
func throttled(err error) error {
	if errors.Is(err, cloudstack.ErrRateLimited) {
		return waitFor(time.Second)
	}
	return nil
}

// stalling ends the pass on something no retry can fix: a person has to act. The condition
// cond is set False with the reason and message, a Warning event says the same, and the
// object is looked at again now and then in case the cause went away.
type stalling struct {
	cond, reason, msg string
	// recheck, when set, is how soon to look again instead of the reconciler's default:
	// for a cause a person fixes outside the cluster (a VM to stop), where the fix is not
	// an event.
	recheck time.Duration
}

func (s *stalling) Error() string { return s.reason + ": " + s.msg }

func stall(cond, reason, msg string) error { return &stalling{cond: cond, reason: reason, msg: msg} }

// retrying ends the pass on an error that may pass (CloudStack busy or unreachable, a job
// that failed for a transient cause). The condition cond is set False with reason and msg,
// and the error goes back to the work queue for backoff.
type retrying struct {
	cond, reason, msg string
	err               error
}

func (r *retrying) Error() string { return r.err.Error() }
func (r *retrying) Unwrap() error { return r.err }

// outcomeResult is the result and error for controller-runtime of what a pass ended with;
// stallRecheck is how often a stalled object is looked at again.
func outcomeResult(err error, stallRecheck time.Duration) (ctrl.Result, error) {
	var w *waiting
	var s *stalling
	switch {
	case err == nil:
		return ctrl.Result{}, nil
	case errors.As(err, &w):
		return ctrl.Result{RequeueAfter: w.after}, nil
	case errors.As(err, &s):
		if s.recheck > 0 {
			return ctrl.Result{RequeueAfter: s.recheck}, nil
		}
		return ctrl.Result{RequeueAfter: stallRecheck}, nil
	}
	return ctrl.Result{}, err
}

// recordOutcome writes what a pass of obj ended with into its conditions and events: a
// stall (returned, for the summary) sets its condition False, if it names one, and says the
// same in a Warning event; a retry sets its condition False.
func recordOutcome(conds conditionSetter, rec events.EventRecorder, obj runtime.Object, err error) *stalling {
	var st *stalling
	var re *retrying
	switch {
	case errors.As(err, &st):
		if st.cond != "" {
			conds.set(st.cond, metav1.ConditionFalse, st.reason, st.msg)
		}
		rec.Eventf(obj, nil, corev1.EventTypeWarning, st.reason, "Reconcile", st.msg)
		return st
	case errors.As(err, &re):
		conds.set(re.cond, metav1.ConditionFalse, re.reason, re.msg)
	}
	return nil
}
