package cloudstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
)

// maxReplyBytes bounds what one reply may hold; a listVolumes of thousands of volumes is
// well under it, a runaway proxy page is not.
const maxReplyBytes = 32 << 20

// errRateLimitWait is returned when the caller's deadline would pass before the rate
// limiter lets the request through; the request was never sent.
var errRateLimitWait = errors.New("client-side rate limit: the request would not be sent before the context deadline")

// budgetRefusal is a request the endpoint's budget gave no token: the caller's deadline
// would have passed first (errRateLimitWait), or the caller gave up while it waited. It was
// never sent, and classifies as ErrRateLimited.
type budgetRefusal struct{ err error }

func (e *budgetRefusal) Error() string { return e.err.Error() }
func (e *budgetRefusal) Unwrap() error { return e.err }

// httpStatusError is a non-200 reply without a CloudStack JSON envelope (a proxy page, a
// wrong URL). cloudstack-go would report only a JSON syntax error for it, losing the
// status, so the transport turns it into an error that keeps the code.
type httpStatusError struct {
	Code   int
	Status string
}

func (e *httpStatusError) Error() string {
	if e.Code >= 500 {
		return fmt.Sprintf("HTTP %s instead of a CloudStack reply (CloudStack or a proxy in front of it is failing)", e.Status)
	}
	return fmt.Sprintf("HTTP %s instead of a CloudStack reply (is apiURL the CloudStack API endpoint?)", e.Status)
}

// transport sits under cloudstack-go, which has no context support: it applies the
// caller's context, the endpoint's rate limit and a per-request timeout, reads the reply
// completely, and records metrics and a redacted debug log line per call.
type transport struct {
	next    http.RoundTripper
	limiter *budget
	timeout time.Duration
	red     *redactor
	log     logr.Logger
}

// reserve takes a token for a read that is not built yet, and returns the context to send
// it with.
func (t *transport) reserve(ctx context.Context) (context.Context, error) {
	if err := t.wait(ctx, laneRead); err != nil {
		return ctx, err
	}
	return withHeldToken(ctx), nil
}

// wait takes a token from the endpoint's budget and records how long that took.
func (t *transport) wait(ctx context.Context, l lane) error {
	start := time.Now()
	if err := t.limiter.wait(ctx, l); err != nil {
		return &budgetRefusal{err: err}
	}
	rateLimitWait.Observe(time.Since(start).Seconds())
	return nil
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	// A shallow copy, so that putting the body back after reading the command does not
	// touch the caller's request.
	req = req.WithContext(ctx)
	log := t.log
	if l, err := logr.FromContext(ctx); err == nil {
		log = l
	}
	command, err := commandOf(req)
	if err != nil {
		return nil, err
	}
	log = log.WithValues("command", command)

	if !spendHeldToken(ctx) {
		if err := t.wait(ctx, laneOf(command)); err != nil {
			return nil, err
		}
	}

	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	// The guard's check shares the request's timeout: a check that hangs must not hold
	// the reconcile forever.
	if err := checkSendGuard(ctx, laneOf(command)); err != nil {
		log.V(1).Info("CloudStack API call not sent: its guard refused", "reason", err.Error())
		return nil, err
	}
	start := time.Now()
	resp, err := t.next.RoundTrip(req.WithContext(ctx))
	var body []byte
	if err == nil {
		body, err = readReply(resp)
	}
	elapsed := time.Since(start)
	apiLatency.WithLabelValues(command).Observe(elapsed.Seconds())
	if err != nil {
		apiCalls.WithLabelValues(command, codeNoReply).Inc()
		log.V(1).Info("CloudStack API call failed", "duration", elapsed, "error", t.red.String(err.Error()))
		return nil, err
	}
	apiCalls.WithLabelValues(command, strconv.Itoa(resp.StatusCode)).Inc()
	log.V(1).Info("CloudStack API call", "code", resp.StatusCode, "duration", elapsed)

	if resp.StatusCode != http.StatusOK && !looksLikeEnvelope(body) {
		return nil, &httpStatusError{Code: resp.StatusCode, Status: resp.Status}
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		// CloudStack's API throttling: the account's calls are refused until its window
		// ends, so none is sent before then (the caller gets ErrRateLimited from the body).
		wait := throttleWait(body)
		t.limiter.pause(wait)
		log.Info("CloudStack refused a call for the account's API limit; pausing the endpoint's calls", "pause", wait)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	return resp, nil
}

// readReply reads the whole body while the per-request timeout still applies, so a reply
// cut off mid-body surfaces here as a lost response.
func readReply(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading reply: %w", err)
	}
	if len(body) > maxReplyBytes {
		return nil, fmt.Errorf("reply larger than %d bytes", maxReplyBytes)
	}
	return body, nil
}

// retryAfterRe finds the wait in CloudStack's throttling text, "...please retry after [<n>]
// ms." (4.20; older releases leave out the brackets).
var retryAfterRe = regexp.MustCompile(`retry after \[?(\d+)\]? ms`)

// defaultThrottleWait is api.throttling.interval's default, for a 429 that names no wait.
const defaultThrottleWait = time.Second

// throttleMargin is added to the wait a 429 names: CloudStack rounds it down to the
// millisecond, and a call that arrives at the window's last millisecond still counts in it.
const throttleMargin = 10 * time.Millisecond

// throttleWait is how long after a 429 reply the account's window has surely ended.
func throttleWait(body []byte) time.Duration {
	m := retryAfterRe.FindSubmatch(body)
	if m == nil {
		return defaultThrottleWait
	}
	ms, err := strconv.ParseInt(string(m[1]), 10, 64)
	if err != nil {
		return defaultThrottleWait
	}
	return time.Duration(min(ms, maxPause.Milliseconds()))*time.Millisecond + throttleMargin
}

func looksLikeEnvelope(body []byte) bool {
	return bytes.HasPrefix(bytes.TrimSpace(body), []byte("{"))
}

// commandOf finds the CloudStack command for the metric label: in the query for GET, in
// the form body for POST (whose body is then put back for the real request).
func commandOf(req *http.Request) (string, error) {
	if c := req.URL.Query().Get("command"); c != "" {
		return metricCommand(c), nil
	}
	if req.Body == nil || req.Body == http.NoBody {
		return "unknown", nil
	}
	b, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return "", fmt.Errorf("reading request body: %w", err)
	}
	req.Body = io.NopCloser(bytes.NewReader(b))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	form, err := url.ParseQuery(string(b))
	if err != nil || form.Get("command") == "" {
		return "unknown", nil
	}
	return metricCommand(form.Get("command")), nil
}

// metricCommand keeps label values bounded and tidy: only this package issues requests,
// but a label must never carry arbitrary text.
func metricCommand(c string) string {
	if c == "" || len(c) > 64 || strings.IndexFunc(c, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) >= 0 {
		return "unknown"
	}
	return c
}

// boundTransport gives every request of one call the caller's context, which cloudstack-go
// cannot pass down itself.
type boundTransport struct {
	ctx  context.Context
	next http.RoundTripper
}

func (b boundTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return b.next.RoundTrip(req.WithContext(b.ctx))
}
