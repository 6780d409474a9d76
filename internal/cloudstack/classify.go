package cloudstack

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// cloudstack-go has no typed errors: a non-200 reply becomes this string (CSError.Error in
// cloudstack.go), and GetAsyncJobResult turns a failed job into "Undefined error: <raw
// jobresult JSON>". Both are parsed back here.
var (
	apiErrorRe     = regexp.MustCompile(`CloudStack API error (\d+) \(CSExceptionErrorCode: (\d+)\): ((?s).*)`)
	invalidParamRe = regexp.MustCompile(`(?i)invalid parameter (\w+) value=`)
)

const undefinedJobErrorPrefix = "Undefined error: "

// jobFailure is the jobresult of a failed async job.
type jobFailure struct {
	ErrorCode   int    `json:"errorcode"`
	CSErrorCode int    `json:"cserrorcode"`
	ErrorText   string `json:"errortext"`
}

// classify turns any error from cloudstack-go, net/http or the transport into a redacted,
// classified *Error. It is the only way errors cross the package boundary.
func classify(err error, red *redactor) *Error {
	if err == nil {
		return nil
	}
	var ce *Error
	if errors.As(err, &ce) {
		return ce
	}
	msg := err.Error()

	if m := apiErrorRe.FindStringSubmatch(msg); m != nil {
		code, _ := strconv.Atoi(m[1])
		cs, _ := strconv.Atoi(m[2])
		return apiError(code, cs, red.String(m[3]))
	}
	if i := strings.Index(msg, undefinedJobErrorPrefix); i >= 0 {
		return jobError([]byte(msg[i+len(undefinedJobErrorPrefix):]), red)
	}
	return networkError(err, red)
}

// jobError classifies the jobresult of a failed job, raw JSON or, for jobresulttype
// "text", a bare message.
func jobError(raw []byte, red *redactor) *Error {
	var f jobFailure
	if err := json.Unmarshal(raw, &f); err == nil && (f.ErrorCode != 0 || f.ErrorText != "") {
		return apiError(f.ErrorCode, f.CSErrorCode, red.String(f.ErrorText))
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		raw = []byte(s)
	}
	return apiError(0, 0, red.String(strings.TrimSpace(string(raw))))
}

func apiError(code, cs int, text string) *Error {
	e := &Error{Class: apiClass(code, text), Code: code, CSCode: cs, Text: text, fromAPI: true}
	if m := invalidParamRe.FindStringSubmatch(text); m != nil {
		e.Param = strings.ToLower(m[1])
	}
	return e
}

// apiClass reads the text before the code: CloudStack reuses 431 and the generic 4350 for
// very different failures (an attached volume on delete is 431/4350 too), so a code alone
// must never decide "not found".
func apiClass(code int, text string) error {
	t := strings.ToLower(text)
	switch {
	case code == 429:
		// API_LIMIT_EXCEED: CloudStack's API throttling refused the call before running it
		// (ApiServer answers 429 with cserrorcode 9999; a reply without one is read the same).
		// Checked first so that no text match can ever read it as anything else.
		return ErrRateLimited
	case code == 401 || code == 403:
		return ErrUnauthorized
	case code == 531, strings.Contains(t, "does not have permission"):
		// PermissionDeniedException: a 5xx code, but nothing transient about it.
		return ErrPermissionDenied
	case strings.Contains(t, "specify a volume that is not attached to any vm"):
		return ErrVolumeAttached
	case strings.Contains(t, "volume is not attached to a vm"):
		return ErrNotAttached
	case strings.Contains(t, "maximum number of data disks"):
		return ErrCapacity
	case strings.Contains(t, "maximum amount of resources of type"):
		return ErrAccountLimit
	case strings.Contains(t, "specify a vm that is either running or stopped"),
		// The simulator's refusal to delete or detach a volume an attach or detach job is
		// working on (its text is not confirmed against CloudStack's): retry once it ends.
		strings.Contains(t, "by a job in progress"):
		return ErrInvalidState
	case strings.Contains(t, "entity does not exist"),
		strings.Contains(t, "unable to find volume"),
		strings.Contains(t, "unable to find vm"),
		strings.Contains(t, "unable to find virtual machine"):
		return ErrNotFound
	case code == 535:
		return ErrAccountLimit
	case code == 536:
		return ErrInvalidState
	case code >= 500:
		return ErrTransient
	case code == 431 || code == 432 || code == 400:
		return ErrInvalidParameter
	}
	return nil
}

func networkError(err error, red *redactor) *Error {
	e := &Error{Text: red.String(networkText(err))}
	if errors.Is(err, context.Canceled) {
		e.cause = context.Canceled
	} else if errors.Is(err, context.DeadlineExceeded) {
		e.cause = context.DeadlineExceeded
	}

	var status *httpStatusError
	var dnsErr *net.DNSError
	var opErr *net.OpError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var certErr x509.CertificateInvalidError
	var verifyErr *tls.CertificateVerificationError
	var recordErr tls.RecordHeaderError
	var syntaxErr *json.SyntaxError
	var notSent *notSentError
	var refused *budgetRefusal
	switch {
	case errors.As(err, &refused):
		e.Class, e.cause = ErrRateLimited, refused.err
	case errors.As(err, &notSent):
		e.Class, e.cause = ErrNotSent, notSent.err
	case errors.As(err, &status):
		e.Code = status.Code
		e.Class = statusClass(status.Code)
	case errors.Is(err, context.Canceled):
		e.Class = ErrTransient
	case errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &certErr),
		errors.As(err, &verifyErr), errors.As(err, &recordErr),
		strings.Contains(e.Text, "x509: "), strings.Contains(e.Text, "tls: "),
		strings.Contains(e.Text, "server gave HTTP response to HTTPS client"):
		e.Class = ErrTLS
	case errors.As(err, &dnsErr),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH),
		errors.As(err, &opErr) && opErr.Op == "dial":
		e.Class = ErrUnreachable
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE),
		errors.Is(err, net.ErrClosed),
		errors.As(err, &syntaxErr),
		strings.Contains(e.Text, "Unable to extract the raw value"):
		// A reply that never arrived, or arrived cut short or garbled: the request may
		// have been carried out, so only a retry after re-reading is safe.
		e.Class = ErrTransient
	default:
		var ne net.Error
		if errors.As(err, &ne) {
			e.Class = ErrTransient
		}
	}
	return e
}

// networkText drops the query from a *url.Error: it holds the signed request (key,
// signature, every parameter) and nothing a person needs, since the caller's wrapping
// names the operation and the ids.
func networkText(err error) string {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err.Error()
	}
	endpoint := ue.URL
	if i := strings.IndexAny(endpoint, "?#"); i >= 0 {
		endpoint = endpoint[:i]
	}
	return fmt.Sprintf("%s %s: %v", ue.Op, endpoint, ue.Err)
}

// statusClass classifies an HTTP reply that did not carry a CloudStack envelope, which
// means a proxy or a server that is not CloudStack answered.
func statusClass(code int) error {
	switch {
	case code == 401 || code == 403:
		return ErrUnauthorized
	case code == 404 || code == 405:
		return ErrUnreachable
	case code == 429 || code == 408 || code >= 500:
		return ErrTransient
	}
	return nil
}
