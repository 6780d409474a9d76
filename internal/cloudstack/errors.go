package cloudstack

import (
	"errors"
	"fmt"
)

// Error classes. Test with errors.Is; every error returned by this package that came from
// CloudStack or the network matches at most one class (plus the parents noted below).
var (
	// ErrNotFound: the volume, VM, zone, offering or job does not exist.
	ErrNotFound = errors.New("not found")
	// ErrVolumeAttached: the volume is attached to some VM. CloudStack's text does not say
	// which one; when this package can find out, the error is refined to ErrAlreadyAttached
	// or ErrAttachedElsewhere, both of which also match ErrVolumeAttached.
	ErrVolumeAttached = errors.New("volume is attached to a VM")
	// ErrAlreadyAttached: the volume is attached to the VM it was meant for (this
	// config's OMA VM, or the VM an attach job named).
	ErrAlreadyAttached = errors.New("volume is already attached to this VM")
	// ErrAttachedElsewhere: the volume is attached to a different VM.
	ErrAttachedElsewhere = errors.New("volume is attached to another VM")
	// ErrNotAttached: a detach found the volume not attached.
	ErrNotAttached = errors.New("volume is not attached")
	// ErrCapacity: the VM already holds its maximum number of data disks.
	ErrCapacity = errors.New("VM data disk limit reached")
	// ErrAccountLimit: the account's volume (or storage) resource limit is exhausted.
	ErrAccountLimit = errors.New("account resource limit reached")
	// ErrPermissionDenied: the keys are valid but their account may not act on the
	// resource (CloudStack's 531, PermissionDeniedException): a volume or VM of another
	// account, or a role without the command. Repeating the request cannot help.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrUnauthorized: the API key or secret key was rejected.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrInvalidParameter: CloudStack rejected a parameter value; repeating the request
	// cannot help.
	ErrInvalidParameter = errors.New("invalid parameter")
	// ErrInvalidState: the VM or volume is in a state that does not allow the operation
	// now (for example a VM that is starting); it may allow it later.
	ErrInvalidState = errors.New("invalid state for the operation")
	// ErrTransient: a 5xx reply, a network error, a timeout or a lost response. The request
	// may or may not have taken effect (but see ErrRateLimited, which has not).
	ErrTransient = errors.New("transient error")
	// ErrRateLimited: CloudStack's API throttling refused the call (HTTP 429, "...has
	// reached his/her account api limit, please retry after [<n>] ms."): the account made
	// too many calls in the current interval. CloudStack refuses before it runs the
	// command, so the request had no effect at all. Also a request that the endpoint's own
	// budget (WithRateLimit) could not send before the caller's deadline, or before the
	// caller gave up waiting: it never left. Also matches ErrTransient (retry later) and
	// ErrNotSent (nothing happened).
	ErrRateLimited = errors.New("CloudStack API rate limit reached")
	// ErrUnreachable: the endpoint could not be reached at all (connection refused, DNS,
	// no route) or does not answer like a CloudStack API. Also matches ErrTransient.
	ErrUnreachable = errors.New("endpoint unreachable")
	// ErrTLS: the TLS handshake failed (unknown authority, bad certificate or host name,
	// a plain-http server behind an https URL) or the caBundle is unusable.
	ErrTLS = errors.New("TLS error")
	// ErrSecretMissing: no credentials Secret was given.
	ErrSecretMissing = errors.New("credentials secret missing")
	// ErrSecretInvalid: the credentials Secret lacks a key or has an empty one.
	ErrSecretInvalid = errors.New("credentials secret invalid")
	// ErrInvalidConfig: the OsseaConfig cannot be used as written (bad apiURL, ...).
	ErrInvalidConfig = errors.New("invalid configuration")
	// ErrNotSent: the request was not carried out and never will be. Either the caller's
	// send guard (WithSendGuard) refused it just before it was sent, so CloudStack was not
	// asked (the error also matches the guard's own error), or CloudStack's API
	// throttling refused it before running it (ErrRateLimited).
	ErrNotSent = errors.New("request not sent")
)

// Error is a classified CloudStack or transport failure. Code and Text are what a person
// should see in status; Text is already redacted.
type Error struct {
	// Class is one of the Err* sentinels, or nil when the failure fits none.
	Class error
	// Code is CloudStack's errorcode (the HTTP status for API errors, 431 for most
	// failed jobs), the HTTP status of a reply that was not CloudStack's (a proxy's
	// 502), or 0 when no reply arrived.
	Code int
	// CSCode is CloudStack's cserrorcode, 0 when the reply had none (failed jobs, 401).
	CSCode int
	// Param is the parameter an "Invalid parameter <name> value=..." text named, so a
	// caller can tell an unknown VM from an unknown volume.
	Param string
	// Text is CloudStack's errortext or the network error, with secrets removed.
	Text string

	// fromAPI marks a CloudStack reply (or failed job), as opposed to an HTTP status
	// from something in front of it, so the message does not blame CloudStack wrongly.
	fromAPI bool

	// cause is kept only for context errors and a send guard's refusal, whose texts hold
	// nothing secret, so that errors.Is(err, context.Canceled) and the guard's own error
	// keep working across the boundary.
	cause error
}

func (e *Error) Error() string {
	switch {
	case !e.fromAPI:
		return e.Text
	case e.Code != 0 && e.CSCode != 0:
		return fmt.Sprintf("CloudStack error %d (cserrorcode %d): %s", e.Code, e.CSCode, e.Text)
	case e.Code != 0:
		return fmt.Sprintf("CloudStack error %d: %s", e.Code, e.Text)
	default:
		return e.Text
	}
}

// Is makes the class and its parents match.
func (e *Error) Is(target error) bool {
	if e.Class == nil {
		return false
	}
	if target == e.Class {
		return true
	}
	switch target {
	case ErrVolumeAttached:
		return e.Class == ErrAlreadyAttached || e.Class == ErrAttachedElsewhere
	case ErrTransient:
		return e.Class == ErrUnreachable || e.Class == ErrRateLimited
	case ErrNotSent:
		return e.Class == ErrRateLimited
	}
	return false
}

func (e *Error) Unwrap() error { return e.cause }

func newError(class error, format string, args ...any) *Error {
	return &Error{Class: class, Text: fmt.Sprintf(format, args...)}
}

// Check names the part of a connection test that failed.
type Check string

// The parts of Validate, in the order they run.
const (
	CheckConnection     Check = "Connection"
	CheckZone           Check = "Zone"
	CheckVirtualMachine Check = "VirtualMachine"
	CheckDiskOffering   Check = "DiskOffering"
	CheckCapacity       Check = "Capacity"
)

// CheckError tells which check of Validate failed; Err carries the class (for example a
// CheckZone with ErrNotFound is a zone that does not exist, any check with ErrUnauthorized
// is bad credentials).
type CheckError struct {
	Check Check
	Err   error
}

func (e *CheckError) Error() string {
	return fmt.Sprintf("%s check: %v", e.Check, e.Err)
}

func (e *CheckError) Unwrap() error { return e.Err }

// Answered reports whether CloudStack itself answered the request with err: it has carried
// the request out as far as it will, and nothing of it is still on its way (for a throttled
// call, ErrRateLimited, that is not at all). A reply that never came or came cut short, a
// timeout, or a status from something in front of CloudStack is no answer: the request may
// yet land.
func Answered(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.fromAPI && e.Code != 0
}

// IsTerminal reports whether repeating the same request with the same configuration
// cannot succeed, so a controller should stop retrying and wait for a person (or for the
// object to change). Transient errors, cancelled contexts, states that change by
// themselves (a VM starting, a full VM or account whose volumes go away) and unclassified
// errors are not terminal. ErrAlreadyAttached, ErrNotAttached and ErrNotFound are terminal
// for the request but often mean the desired state already holds; check them first.
func IsTerminal(err error) bool {
	if err == nil {
		return false
	}
	for _, class := range []error{ErrTransient, ErrCapacity, ErrAccountLimit, ErrInvalidState} {
		if errors.Is(err, class) {
			return false
		}
	}
	for _, class := range []error{
		ErrNotFound, ErrVolumeAttached, ErrNotAttached, ErrUnauthorized, ErrPermissionDenied, ErrInvalidParameter,
		ErrTLS, ErrSecretMissing, ErrSecretInvalid, ErrInvalidConfig,
	} {
		if errors.Is(err, class) {
			return true
		}
	}
	return false
}
