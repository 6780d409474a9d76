package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/migratekit/ossea-operator/test/world"
)

// call is one request the manager sent to CloudStack through the recording proxy, for the
// commands whose order matters.
type call struct {
	At        time.Time
	Command   string
	VolumeID  string
	VMID      string // attachVolume's virtualmachineid
	Status    int    // 0 when the reply was lost
	ErrorCode int
	ErrorText string
}

// recorder sits between the manager and the simulator and writes down every detach,
// delete and attach: when it was asked for, of which volume, and what CloudStack answered.
// The simulator counts calls but not their parameters or answers.
type recorder struct {
	proxy *httputil.ReverseProxy
	srv   *http.Server
	url   string

	// before, when set, runs before a recorded call is passed on: it can look at the world
	// as it is at the moment the manager asks, and say what is wrong with asking now.
	before func(call) string
	// rules, when set, checks the rules of starts and teardowns at the moment of each call
	// it knows, and learns the jobs the manager started from the replies.
	rules *world.CallRules

	mu       sync.Mutex
	calls    []call
	problems []string
}

var recorded = map[string]bool{"detachVolume": true, "deleteVolume": true, "attachVolume": true}

// startRecorder serves the proxy on a free loopback port; its API is at url.
func startRecorder(upstream string) (*recorder, error) {
	target, err := url.Parse(upstream)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &recorder{url: "http://" + ln.Addr().String() + "/client/api"}
	r.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		// No reused connections to the simulator: Go retries a GET on a reused connection
		// that was dropped, which would turn one lost reply into two calls.
		Transport: &http.Transport{DisableKeepAlives: true},
		// The simulator dropped the connection to lose a reply: drop ours too, so the
		// manager sees what it would have seen without the proxy.
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					_ = conn.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		},
	}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *recorder) serve(w http.ResponseWriter, req *http.Request) {
	params := req.URL.Query()
	if req.Method == http.MethodPost && req.Body != nil {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		if form, err := url.ParseQuery(string(body)); err == nil {
			for k, v := range form {
				params[k] = v
			}
		}
	}
	cmd := params.Get("command")
	checked := r.rules != nil && r.rules.Checks(cmd)
	if !recorded[cmd] && !checked {
		r.proxy.ServeHTTP(w, req)
		return
	}
	c := call{At: time.Now(), Command: cmd, VolumeID: params.Get("id"), VMID: params.Get("virtualmachineid")}
	if r.before != nil && recorded[cmd] {
		r.problem(r.before(c))
	}
	gen := 0
	if checked {
		gen = r.rules.Generation()
		r.problem(r.rules.Before(cmd, params))
	}
	rec := &responseRecorder{ResponseWriter: w}
	defer func() {
		if checked {
			// A lost reply leaves the body empty: the manager never learnt the job.
			r.rules.After(gen, cmd, params, rec.body.Bytes())
		}
		if !recorded[cmd] {
			return
		}
		c.Status = rec.status
		c.ErrorCode, c.ErrorText = errorOf(rec.body.Bytes())
		r.mu.Lock()
		r.calls = append(r.calls, c)
		r.mu.Unlock()
	}()
	r.proxy.ServeHTTP(rec, req)
}

func (r *recorder) problem(p string) {
	if p == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.problems = append(r.problems, time.Now().Format("15:04:05.000 ")+p)
}

// errorOf reads CloudStack's error envelope {"<command>response": {"errorcode": N, ...}}.
func errorOf(body []byte) (int, string) {
	var env map[string]json.RawMessage
	if json.Unmarshal(body, &env) != nil {
		return 0, ""
	}
	for _, raw := range env {
		var e struct {
			ErrorCode int    `json:"errorcode"`
			ErrorText string `json:"errortext"`
		}
		if json.Unmarshal(raw, &e) == nil && e.ErrorCode != 0 {
			return e.ErrorCode, e.ErrorText
		}
	}
	return 0, ""
}

// responseRecorder keeps the status and the body while passing them on.
type responseRecorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (r *responseRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *responseRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.body.Len() < 64<<10 {
		r.body.Write(b)
	}
	return r.ResponseWriter.Write(b)
}

// Hijack lets the proxy's error handler drop the connection through the wrapper.
func (r *responseRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return r.ResponseWriter.(http.Hijacker).Hijack()
}

func (r *recorder) Calls() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]call(nil), r.calls...)
}

// Problems are what before found.
func (r *recorder) Problems() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.problems...)
}

func (r *recorder) Close() { _ = r.srv.Close() }

// isAttachedRefusal is CloudStack's answer to deleting (or attaching) an attached volume.
func isAttachedRefusal(c call) bool {
	return c.ErrorCode != 0 && strings.Contains(c.ErrorText, "not attached to any VM")
}
