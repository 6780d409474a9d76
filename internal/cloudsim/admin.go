package cloudsim

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"
)

// maxCallTimes bounds the per-command timestamp history kept for rate tests.
const maxCallTimes = 10000

type counters struct {
	calls    map[string]int
	times    map[string][]time.Time
	injected map[string]int
	// throttled counts, by command, the calls of calls that throttling refused.
	throttled map[string]int
	// faultSeq numbers each command's calls for the fault draws. Unlike calls it is
	// never reset, so resetting the counters does not replay the same faults.
	faultSeq map[string]uint64
}

func newCounters() counters {
	return counters{calls: map[string]int{}, times: map[string][]time.Time{}, injected: map[string]int{},
		throttled: map[string]int{}, faultSeq: map[string]uint64{}}
}

func (c *counters) record(command string, at time.Time) {
	c.calls[command]++
	t := append(c.times[command], at)
	if len(t) > maxCallTimes {
		t = t[len(t)-maxCallTimes:]
	}
	c.times[command] = t
}

// routes mounts the CloudStack endpoint and the admin API. The admin API lives
// outside /client/api so no CloudStack client can reach it by accident, and it
// is never subject to faults.
func (s *Simulator) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/client/api", s.serveAPI)
	mux.HandleFunc("GET /admin/state", func(w http.ResponseWriter, r *http.Request) {
		writeAdminJSON(w, http.StatusOK, s.Snapshot())
	})
	mux.HandleFunc("GET /admin/faults", func(w http.ResponseWriter, r *http.Request) {
		writeAdminJSON(w, http.StatusOK, s.currentFaults())
	})
	mux.HandleFunc("PUT /admin/faults", s.putFaults)
	mux.HandleFunc("POST /admin/reset-counters", func(w http.ResponseWriter, r *http.Request) {
		s.ResetCounters()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("PUT /admin/virtualmachines/{id}/state", s.putVMState)
	mux.HandleFunc("POST /admin/virtualmachines/{id}/start", s.postVMChange(s.StartVM))
	mux.HandleFunc("POST /admin/virtualmachines/{id}/stop", s.postVMChange(s.StopVM))
	return mux
}

// ResetCounters zeroes the call and fault counters (POST /admin/reset-counters).
func (s *Simulator) ResetCounters() {
	s.mu.Lock()
	defer s.mu.Unlock()
	seq := s.counters.faultSeq
	s.counters = newCounters()
	s.counters.faultSeq = seq
}

func (s *Simulator) currentFaults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

func (s *Simulator) putFaults(w http.ResponseWriter, r *http.Request) {
	var f Faults
	if err := decodeAdminBody(r, &f); err != nil {
		writeAdminJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	if err := f.validate(); err != nil {
		writeAdminJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	s.SetFaults(f)
	writeAdminJSON(w, http.StatusOK, f)
}

// putVMState lets an e2e or chaos test stop or destroy a VM from outside the
// process, as SetVMState does from inside it. Body: {"state":"Stopped"}.
func (s *Simulator) putVMState(w http.ResponseWriter, r *http.Request) {
	var body struct {
		State string `json:"state"`
	}
	if err := decodeAdminBody(r, &body); err != nil {
		writeAdminJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	if err := s.SetVMState(r.PathValue("id"), body.State); err != nil {
		writeAdminJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// postVMChange serves start and stop: 204 when done, 409 with CloudStack's text
// when the VM's state refuses it, 404 for an unknown VM. Unlike the state PUT it
// follows the API's rules, so a VM without a root disk does not start.
func (s *Simulator) postVMChange(change func(vmID string) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := change(r.PathValue("id"))
		var refused *vmRefused
		switch {
		case err == nil:
			w.WriteHeader(http.StatusNoContent)
		case errors.As(err, &refused):
			writeAdminJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
		default:
			writeAdminJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
		}
	}
}

func decodeAdminBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func writeAdminJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
