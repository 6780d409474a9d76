package cloudstack

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// metricValue reads a sample from controller-runtime's registry, which also proves the
// collectors are registered there.
func metricValue(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}

func newTestTransport(qps float64, burst int, timeout time.Duration) *transport {
	return &transport{
		next:    http.DefaultTransport,
		limiter: newBudget(qps, burst),
		timeout: timeout,
		red:     testRedactor,
		log:     logr.Discard(),
	}
}

func TestTransportCommandsBodiesAndMetrics(t *testing.T) {
	var gotForm url.Values
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Error(err)
		}
		gotForm = r.Form
		switch r.Form.Get("command") {
		case "createVolume":
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"createvolumeresponse":{"id":"v","jobid":"j"}}`)
		case "attachVolume":
			// A CloudStack error keeps its envelope and reaches cloudstack-go.
			w.WriteHeader(431)
			_, _ = io.WriteString(w, `{"attachvolumeresponse":{"errorcode":431,"cserrorcode":4350,"errortext":"x"}}`)
		default:
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, "<html>502 Bad Gateway</html>")
		}
	}))
	defer srv.Close()
	client := &http.Client{Transport: newTestTransport(0, 1, 5*time.Second)}

	before := metricValue(t, "ossea_cloudstack_api_calls_total", map[string]string{"command": "createVolume", "code": "200"})
	form := url.Values{"command": {"createVolume"}, "apiKey": {testAPIKey}, "name": {"vol 1"}}
	resp, err := client.PostForm(srv.URL, form)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"jobid":"j"`) {
		t.Fatalf("body = %s", body)
	}
	if gotForm.Get("name") != "vol 1" || gotForm.Get("command") != "createVolume" {
		t.Fatalf("the POST body did not reach the server intact: %v", gotForm)
	}
	after := metricValue(t, "ossea_cloudstack_api_calls_total", map[string]string{"command": "createVolume", "code": "200"})
	if after != before+1 {
		t.Fatalf("calls counter %v -> %v", before, after)
	}
	if metricValue(t, "ossea_cloudstack_api_call_duration_seconds", map[string]string{"command": "createVolume"}) < 1 {
		t.Fatal("latency not observed")
	}

	resp, err = client.PostForm(srv.URL, url.Values{"command": {"attachVolume"}})
	if err != nil || resp.StatusCode != 431 {
		t.Fatalf("a JSON error reply must pass through: %v %v", resp, err)
	}
	resp.Body.Close()
	if metricValue(t, "ossea_cloudstack_api_calls_total", map[string]string{"command": "attachVolume", "code": "431"}) < 1 {
		t.Fatal("431 not counted")
	}

	_, err = client.Get(srv.URL + "?command=listVolumes&signature=abc%2B")
	var se *httpStatusError
	if !errors.As(err, &se) || se.Code != 502 {
		t.Fatalf("a 502 page must become an httpStatusError: %v", err)
	}
	if e := classify(err, testRedactor); !errors.Is(e, ErrTransient) || e.Code != 502 {
		t.Fatalf("502 classified as %+v", e)
	}
}

func TestTransportRequestTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	client := &http.Client{Transport: newTestTransport(0, 1, 200*time.Millisecond)}

	_, err := client.Get(srv.URL + "?command=listZones")
	e := classify(err, testRedactor)
	if !errors.Is(e, ErrTransient) || !errors.Is(e, context.DeadlineExceeded) {
		t.Fatalf("timeout classified as %+v", e)
	}
	if metricValue(t, "ossea_cloudstack_api_calls_total", map[string]string{"command": "listZones", "code": codeNoReply}) < 1 {
		t.Fatal("a call without reply must be counted as error")
	}
}

func TestTransportRateLimitHonoursContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"listzonesresponse":{}}`)
	}))
	defer srv.Close()
	tr := newTestTransport(0.5, 1, time.Second) // one call, then one every 2s

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	client := &http.Client{Transport: boundTransport{ctx: ctx, next: tr}}
	if _, err := client.Get(srv.URL + "?command=listZones"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := client.Get(srv.URL + "?command=listZones")
	if err == nil {
		t.Fatal("the second call must wait longer than the context allows")
	}
	if e := classify(err, testRedactor); !errors.Is(e, ErrTransient) {
		t.Fatalf("rate limit refusal classified as %+v", e)
	}
	if time.Since(start) > time.Second {
		t.Fatal("the limiter must give up at once when the deadline cannot be met, not sleep")
	}
}

func TestMetricCommand(t *testing.T) {
	for in, want := range map[string]string{
		"listVolumes": "listVolumes", "": "unknown", "a b": "unknown", strings.Repeat("x", 65): "unknown",
	} {
		if got := metricCommand(in); got != want {
			t.Errorf("metricCommand(%q) = %q", in, got)
		}
	}
}

func TestThrottleWait(t *testing.T) {
	for _, tc := range []struct {
		body string
		want time.Duration
	}{
		{`{"createvolumeresponse":{"uuidList":[],"errorcode":429,"cserrorcode":9999,"errortext":"The given user has reached his/her account api limit, please retry after [734] ms."}}`, 734*time.Millisecond + throttleMargin},
		{`{"x":{"errorcode":429,"errortext":"The given user has reached his/her account api limit, please retry after 20 ms."}}`, 20*time.Millisecond + throttleMargin},
		{`{"x":{"errorcode":429,"errortext":"slow down"}}`, defaultThrottleWait},
		{`{"x":{"errortext":"please retry after [99999999999999999999] ms."}}`, defaultThrottleWait},
		{`{"x":{"errortext":"please retry after [3600000] ms."}}`, maxPause + throttleMargin},
	} {
		if got := throttleWait([]byte(tc.body)); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.body, got, tc.want)
		}
	}
}
