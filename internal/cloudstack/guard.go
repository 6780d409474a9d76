package cloudstack

import "context"

// A send guard is the caller's last word on a call that changes something in CloudStack:
// it runs after the request has its rate-limit token, immediately before the request is
// sent, so that what it checks holds when CloudStack acts, however long the call waited
// for its turn. The controllers use it to confirm that the object a create, tag or attach
// is for is not being deleted.

type sendGuardKey struct{}

// WithSendGuard returns a context whose requests that change something (every command
// but the reads and the job polls) are sent only if check, run just before sending,
// returns nil. Otherwise nothing is sent and the call fails with an error of class
// ErrNotSent that also matches check's error.
func WithSendGuard(ctx context.Context, check func(context.Context) error) context.Context {
	return context.WithValue(ctx, sendGuardKey{}, check)
}

// checkSendGuard runs ctx's send guard for a request of the given lane.
func checkSendGuard(ctx context.Context, l lane) error {
	check, ok := ctx.Value(sendGuardKey{}).(func(context.Context) error)
	if !ok || l == laneRead {
		return nil
	}
	if err := check(ctx); err != nil {
		return &notSentError{err: err}
	}
	return nil
}

// notSentError carries a guard's refusal through cloudstack-go and net/http, which wrap
// it, to classify.
type notSentError struct{ err error }

func (e *notSentError) Error() string { return "not sent: " + e.err.Error() }

func (e *notSentError) Unwrap() error { return e.err }
