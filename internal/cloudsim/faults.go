package cloudsim

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"strings"
	"time"
)

// Faults is what goes wrong, and how often. Each request to a matching command
// draws its faults from the seed, the command and the command's call number, so
// a run with the same seed and the same per-command call order sees the same
// faults whatever the interleaving between commands.
type Faults struct {
	// ErrorRate answers a call with 530 or 534 before it changes anything.
	ErrorRate float64 `json:"errorRate"`
	// LostResponseRate makes the change, then drops the connection without an
	// answer or answers 502 from a "proxy": the client cannot tell what happened.
	// (Go's transport silently retries a GET whose reused connection is dropped,
	// so a lost list call may show up as two calls.)
	LostResponseRate float64 `json:"lostResponseRate"`
	// JobFailureRate makes an async job fail with 530 and change nothing. A
	// createVolume's volume was allocated before its job, so it stays, Allocated,
	// as it does when a create job fails in CloudStack.
	JobFailureRate float64 `json:"jobFailureRate"`
	// ExtraLatency delays every matching call. In JSON a Go duration string
	// ("250ms") or a number of nanoseconds.
	ExtraLatency time.Duration `json:"extraLatency"`
	// Commands limits the faults to these API commands (any case); empty means all.
	Commands []string `json:"commands,omitempty"`
}

type faultsJSON Faults

func (f Faults) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		faultsJSON
		ExtraLatency string `json:"extraLatency"`
	}{faultsJSON(f), f.ExtraLatency.String()})
}

func (f *Faults) UnmarshalJSON(b []byte) error {
	aux := struct {
		*faultsJSON
		ExtraLatency json.RawMessage `json:"extraLatency"`
	}{faultsJSON: (*faultsJSON)(f)}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&aux); err != nil {
		return err
	}
	f.ExtraLatency = 0
	if len(aux.ExtraLatency) == 0 || string(aux.ExtraLatency) == "null" {
		return nil
	}
	var text string
	if err := json.Unmarshal(aux.ExtraLatency, &text); err == nil {
		d, err := time.ParseDuration(text)
		if err != nil {
			return fmt.Errorf("extraLatency: %w", err)
		}
		f.ExtraLatency = d
		return nil
	}
	var ns int64
	if err := json.Unmarshal(aux.ExtraLatency, &ns); err != nil {
		return fmt.Errorf("extraLatency: want a duration string or nanoseconds")
	}
	f.ExtraLatency = time.Duration(ns)
	return nil
}

func (f Faults) validate() error {
	for name, rate := range map[string]float64{
		"errorRate": f.ErrorRate, "lostResponseRate": f.LostResponseRate, "jobFailureRate": f.JobFailureRate,
	} {
		if rate < 0 || rate > 1 {
			return fmt.Errorf("cloudsim: fault %s must be within [0, 1], got %v", name, rate)
		}
	}
	if f.ExtraLatency < 0 {
		return fmt.Errorf("cloudsim: fault extraLatency must not be negative")
	}
	return nil
}

func (f Faults) applies(command string) bool {
	if len(f.Commands) == 0 {
		return true
	}
	for _, c := range f.Commands {
		if strings.EqualFold(c, command) {
			return true
		}
	}
	return false
}

// faultPlan is decided before a call runs, so the outcome depends only on the
// draw and not on how long the call takes.
type faultPlan struct {
	latency time.Duration
	err     *apiError
	lose    bool
	lose502 bool
	failJob bool
}

func (s *Simulator) planFaults(command string) faultPlan {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faults
	if !f.applies(command) {
		return faultPlan{}
	}
	n := s.counters.faultSeq[command]
	s.counters.faultSeq[command]++
	roll := func(kind string) float64 { return draw(s.opts.Seed, command, n, kind) }

	var p faultPlan
	if f.ExtraLatency > 0 {
		p.latency = f.ExtraLatency
		s.counters.injected["latency"]++
	}
	if roll("error") < f.ErrorRate {
		s.counters.injected["error"]++
		p.err = &apiError{Code: codeInternal, CSCode: csRuntime, Text: textInternal}
		if roll("error-kind") < 0.5 {
			p.err = &apiError{Code: codeUnavailable, CSCode: csUnavailable, Text: textHostUnreachable}
		}
		return p
	}
	if roll("lost") < f.LostResponseRate {
		s.counters.injected["lostResponse"]++
		p.lose = true
		p.lose502 = roll("lost-kind") < 0.5
	}
	p.failJob = roll("job") < f.JobFailureRate
	return p
}

// draw is a uniform number in [0, 1) fixed by its inputs.
func draw(seed int64, stream string, n uint64, kind string) float64 {
	h := fnv.New64a()
	var buf [8]byte
	binary.LittleEndian.PutUint64(buf[:], uint64(seed))
	h.Write(buf[:])
	h.Write([]byte(stream + "\x00" + kind + "\x00"))
	binary.LittleEndian.PutUint64(buf[:], n)
	h.Write(buf[:])
	// splitmix64's finalizer: FNV alone is poorly mixed in its high bits for
	// inputs that differ only in the counter.
	z := h.Sum64() + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return float64(z>>11) / (1 << 53)
}

const badGatewayBody = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n" +
	"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"

// loseResponse drops a reply whose change has already been made: either the
// connection dies without a byte of answer, or a proxy in front answers 502.
func loseResponse(w http.ResponseWriter, as502 bool) {
	if as502 {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte(badGatewayBody))
		return
	}
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	// No hijackable connection (HTTP/2): aborting the handler resets the stream.
	panic(http.ErrAbortHandler)
}
