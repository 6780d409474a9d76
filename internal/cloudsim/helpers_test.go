package cloudsim

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/cloudstack-go/v2/cloudstack"
)

// env is one simulator behind a real HTTP server, with clients in both modes.
type env struct {
	t     *testing.T
	sim   *Simulator
	srv   *httptest.Server
	api   string
	cs    *cloudstack.CloudStackClient // NewClient: async calls return a job id
	async *cloudstack.CloudStackClient // NewAsyncClient: async calls wait for the job
}

func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	if opts.World == nil {
		opts.World = DefaultWorld()
	}
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	sim, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(func() {
		srv.Close()
		if err := sim.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	api := srv.URL + "/client/api"
	async := cloudstack.NewAsyncClient(api, DefaultAPIKey, DefaultSecretKey, false)
	async.AsyncTimeout(20)
	return &env{t: t, sim: sim, srv: srv, api: api,
		cs: cloudstack.NewClient(api, DefaultAPIKey, DefaultSecretKey, false), async: async}
}

// waitJob polls queryAsyncJobResult with the plain client until the job is done.
func (e *env) waitJob(jobID string) *cloudstack.QueryAsyncJobResultResponse {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := e.cs.Asyncjob.QueryAsyncJobResult(e.cs.Asyncjob.NewQueryAsyncJobResultParams(jobID))
		if err != nil {
			e.t.Fatalf("queryAsyncJobResult %s: %v", jobID, err)
		}
		if r.Jobstatus != jobPending {
			return r
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("job %s still pending", jobID)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// createVolume creates a custom-size volume with the async client and returns it.
func (e *env) createVolume(name string, sizeGB int64) *cloudstack.CreateVolumeResponse {
	e.t.Helper()
	p := e.async.Volume.NewCreateVolumeParams()
	p.SetName(name)
	p.SetZoneid(DefaultZoneID)
	p.SetDiskofferingid(DefaultDiskOfferingID)
	p.SetSize(sizeGB)
	v, err := e.async.Volume.CreateVolume(p)
	if err != nil {
		e.t.Fatalf("createVolume %q: %v", name, err)
	}
	return v
}

func (e *env) attach(volumeID, vmID string) (*cloudstack.AttachVolumeResponse, error) {
	return e.async.Volume.AttachVolume(e.async.Volume.NewAttachVolumeParams(volumeID, vmID))
}

func (e *env) mustAttach(volumeID, vmID string) *cloudstack.AttachVolumeResponse {
	e.t.Helper()
	v, err := e.attach(volumeID, vmID)
	if err != nil {
		e.t.Fatalf("attachVolume %s: %v", volumeID, err)
	}
	return v
}

func (e *env) detach(volumeID string) (*cloudstack.DetachVolumeResponse, error) {
	p := e.async.Volume.NewDetachVolumeParams()
	p.SetId(volumeID)
	return e.async.Volume.DetachVolume(p)
}

func (e *env) volume(id string) *cloudstack.Volume {
	e.t.Helper()
	p := e.cs.Volume.NewListVolumesParams()
	p.SetId(id)
	l, err := e.cs.Volume.ListVolumes(p)
	if err != nil {
		e.t.Fatalf("listVolumes id=%s: %v", id, err)
	}
	if l.Count != 1 {
		e.t.Fatalf("listVolumes id=%s: count %d", id, l.Count)
	}
	return l.Volumes[0]
}

// signedValues signs params exactly as cloudstack-go does (its own encoder),
// so raw requests test the server against the client's algorithm.
func signedValues(params url.Values, apiKey, secret string, expires time.Time) url.Values {
	p := url.Values{}
	for k, v := range params {
		p[k] = append([]string(nil), v...)
	}
	p.Set("apiKey", apiKey)
	p.Set("response", "json")
	p.Set("signatureversion", "3")
	p.Set("expires", expires.UTC().Format(time.RFC3339))
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(strings.ToLower(cloudstack.EncodeValues(p))))
	p.Set("signature", base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	return p
}

type rawReply struct {
	status      int
	contentType string
	body        string
}

// raw sends a request the way cloudstack-go builds it: GET with the client's
// encoding in the query, or POST with a form body.
func (e *env) raw(method string, params url.Values) rawReply {
	e.t.Helper()
	return e.rawSigned(method, signedValues(params, DefaultAPIKey, DefaultSecretKey, time.Now().Add(15*time.Minute)))
}

func (e *env) rawSigned(method string, p url.Values) rawReply {
	e.t.Helper()
	var resp *http.Response
	var err error
	if method == http.MethodPost {
		resp, err = http.PostForm(e.api, p)
	} else {
		sig := p.Get("signature")
		p.Del("signature")
		resp, err = http.Get(e.api + "?" + cloudstack.EncodeValues(p) + "&signature=" + url.QueryEscape(sig))
	}
	if err != nil {
		e.t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("read body: %v", err)
	}
	return rawReply{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), body: string(b)}
}

func values(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

// inner decodes {"<key>": {...}} and returns the inner object.
func inner(t *testing.T, body, key string) map[string]any {
	t.Helper()
	var outer map[string]map[string]any
	if err := json.Unmarshal([]byte(body), &outer); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	if len(outer) != 1 || outer[key] == nil {
		t.Fatalf("body %s: want exactly the key %q", body, key)
	}
	return outer[key]
}

func wantErr(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %q", want)
	}
	if err.Error() != want {
		t.Fatalf("error\n got: %s\nwant: %s", err.Error(), want)
	}
}

// apiErr is the string cloudstack-go makes of a non-200 answer.
func apiErr(code, cs int, text string) string {
	return "CloudStack API error " + itoa(code) + " (CSExceptionErrorCode: " + itoa(cs) + "): " + text
}

// jobErr is the string cloudstack-go's async client makes of a failed job.
func jobErr(code int, text string) string {
	b, _ := json.Marshal(map[string]any{"errorcode": code, "errortext": text})
	return "Undefined error: " + string(b)
}

func itoa(n int) string { return strconv.Itoa(n) }
