package cloudsim

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxRequestBody bounds a POST form; CloudStack's Jetty refuses far less.
const maxRequestBody = 1 << 20

// serveAPI is /client/api: parse, count, authenticate (throttling on the way, as
// CloudStack does), inject faults, execute.
func (s *Simulator) serveAPI(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	params, parseErr := requestParams(w, r)
	name := params.Get("command")
	now := s.clock()
	s.mu.Lock()
	s.counters.record(name, now)
	s.mu.Unlock()

	cmd := commands[name]
	if cmd == nil {
		writeReply(w, errorReply("errorresponse", errAuth()))
		return
	}
	key := responseKey(name)
	account := s.caller(params, now)
	if parseErr != nil || account == nil {
		writeReply(w, errorReply(key, errAuth()))
		return
	}
	// CloudStack checks the account's API limit before the signature (see Throttle).
	s.mu.Lock()
	refused := s.throttleLocked(account, now)
	if refused != nil {
		s.counters.throttled[name]++
	}
	s.mu.Unlock()
	if refused != nil {
		writeReply(w, errorReply(key, refused))
		return
	}
	if !signedBy(params, account) {
		writeReply(w, errorReply(key, errAuth()))
		return
	}

	plan := s.planFaults(name)
	if !sleepCtx(r.Context(), plan.latency) {
		return
	}
	if plan.err != nil {
		writeReply(w, errorReply(key, plan.err))
		return
	}
	rep := s.execute(&call{s: s, cmd: cmd, account: account, params: params, now: s.clock(), failJob: plan.failJob})
	if plan.lose {
		loseResponse(w, plan.lose502)
		return
	}
	writeReply(w, rep)
}

// requestParams merges the query string and, for a POST, the form body, as the
// servlet's getParameterMap does. A malformed encoding makes the request
// unverifiable; what did parse is still returned so the call is counted.
func requestParams(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
	err := r.ParseForm()
	if r.Form == nil {
		r.Form = url.Values{}
	}
	return r.Form, err
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func writeReply(w http.ResponseWriter, rep reply) {
	w.Header().Set("Content-Type", contentTypeJSON)
	w.WriteHeader(rep.status)
	_, _ = w.Write(rep.body)
}

// execute runs a command under the lock, after completing every job that is due,
// so a caller never observes a job as pending past its due time.
func (s *Simulator) execute(c *call) reply {
	key := responseKey(c.cmd.name)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settleLocked()
	payload, apiErr := c.cmd.run(c)
	if c.mutated {
		s.persistLocked()
	}
	if apiErr != nil {
		return errorReply(key, apiErr)
	}
	return envelope(http.StatusOK, key, payload)
}

// call is one authenticated request being executed.
type call struct {
	s       *Simulator
	cmd     *command
	account *Account
	params  url.Values
	now     time.Time
	failJob bool // the fault plan says the job this call starts must fail
	mutated bool
}

// apiName is how CloudStack names the command in parameter errors: the response
// name without "response", i.e. the command in lower case.
func (c *call) apiName() string { return strings.ToLower(c.cmd.name) }

// param returns a parameter's first value. Names are matched exactly: CloudStack
// ignores a parameter spelled in another case.
func (c *call) param(name string) string { return c.params.Get(name) }

func (c *call) has(name string) bool { return c.params.Has(name) }

func (c *call) require(name string) (string, *apiError) {
	v := c.param(name)
	if v == "" {
		return "", errMissing(c.apiName(), name)
	}
	return v, nil
}

// int64Param parses an optional Long parameter; ok is false when it is absent.
func (c *call) int64Param(name string) (n int64, ok bool, err *apiError) {
	if !c.has(name) || c.param(name) == "" {
		return 0, false, nil
	}
	v := c.param(name)
	n, valid := parseJavaLong(v)
	if !valid {
		return 0, false, errBadValue(c.apiName(), name, v)
	}
	return n, true, nil
}

// boolParam is Boolean.valueOf: anything but "true" (any case) is false.
func (c *call) boolParam(name string) bool { return strings.EqualFold(c.param(name), "true") }

// parseJavaLong is Long.parseLong: optional sign, decimal digits, 64-bit range
// (Go's ParseInt also accepts "0x" and "_" forms with base 0, Java does not).
func parseJavaLong(v string) (int64, bool) {
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}
