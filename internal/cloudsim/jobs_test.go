package cloudsim

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// queryAsyncJobResult in CloudStack's three shapes, checked on the wire.
func TestQueryAsyncJobResultShapes(t *testing.T) {
	e := newEnv(t, Options{JobLatency: 200 * time.Millisecond})
	r := e.raw(http.MethodPost, values("command", "createVolume", "zoneid", DefaultZoneID, "diskofferingid", DefaultDiskOfferingID, "size", "1"))
	created := inner(t, r.body, "createvolumeresponse")
	jobID, volID := created["jobid"].(string), created["id"].(string)

	query := func(id string) map[string]any {
		t.Helper()
		r := e.raw(http.MethodGet, values("command", "queryAsyncJobResult", "jobid", id))
		if r.status != 200 {
			t.Fatalf("query: %d %s", r.status, r.body)
		}
		return inner(t, r.body, "queryasyncjobresultresponse")
	}
	pending := query(jobID)
	if pending["jobid"] != jobID || pending["jobstatus"] != 0.0 || pending["jobprocstatus"] != 0.0 || pending["jobresultcode"] != 0.0 ||
		pending["cmd"] != "org.apache.cloudstack.api.command.user.volume.CreateVolumeCmd" || pending["created"] == nil {
		t.Fatalf("pending = %v", pending)
	}
	for _, k := range []string{"jobresult", "jobresulttype", "completed"} {
		if _, ok := pending[k]; ok {
			t.Errorf("pending job has %q", k)
		}
	}

	e.waitJob(jobID)
	done := query(jobID)
	result, _ := done["jobresult"].(map[string]any)
	vol, _ := result["volume"].(map[string]any)
	if done["jobstatus"] != 1.0 || done["jobresultcode"] != 0.0 || done["jobresulttype"] != "object" ||
		done["jobinstancetype"] != "Volume" || done["jobinstanceid"] != volID || done["completed"] == nil ||
		vol["id"] != volID || vol["state"] != "Allocated" {
		t.Fatalf("done = %v", done)
	}
	if _, ok := vol["deviceid"]; ok {
		t.Errorf("created volume has a deviceid: %v", vol)
	}

	r = e.raw(http.MethodPost, values("command", "detachVolume", "id", volID))
	failedID := inner(t, r.body, "detachvolumeresponse")["jobid"].(string)
	e.waitJob(failedID)
	failed := query(failedID)
	errResult, _ := failed["jobresult"].(map[string]any)
	if failed["jobstatus"] != 2.0 || failed["jobresultcode"] != 431.0 || failed["jobresulttype"] != "object" ||
		errResult["errorcode"] != 431.0 || errResult["errortext"] != textNotAttached || len(errResult) != 2 {
		t.Fatalf("failed = %v", failed)
	}

	const unknown = "99999999-9999-4999-8999-999999999999"
	_, err := e.cs.Asyncjob.QueryAsyncJobResult(e.cs.Asyncjob.NewQueryAsyncJobResultParams(unknown))
	wantErr(t, err, apiErr(431, 9999, "Unable to execute API command queryasyncjobresult due to invalid value. Invalid parameter jobid value="+unknown+
		" due to incorrect long value format, or entity does not exist or due to incorrect parameter annotation for the field in api cmd class."))
}

func TestListAsyncJobs(t *testing.T) {
	e := newEnv(t, Options{})
	v := e.createVolume("j", 1)
	e.mustAttach(v.Id, DefaultOMAVMID)
	l, err := e.cs.Asyncjob.ListAsyncJobs(e.cs.Asyncjob.NewListAsyncJobsParams())
	if err != nil || l.Count != 2 || l.AsyncJobs[1].Cmd != "org.apache.cloudstack.api.command.user.volume.AttachVolumeCmd" || l.AsyncJobs[1].Jobstatus != 1 {
		t.Fatalf("listAsyncJobs: %+v, %v", l, err)
	}
}

// startdate keeps the jobs created at or after it; a value that is no date is refused.
func TestListAsyncJobsSince(t *testing.T) {
	var offset atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	e := newEnv(t, Options{Clock: clock})
	create := func() string {
		p := signedValues(values("command", "createVolume", "zoneid", DefaultZoneID, "diskofferingid", DefaultDiskOfferingID, "size", "1"),
			DefaultAPIKey, DefaultSecretKey, clock().Add(time.Minute))
		return inner(t, e.rawSigned(http.MethodPost, p).body, "createvolumeresponse")["jobid"].(string)
	}
	create()
	offset.Store(int64(time.Hour))
	second := create()
	since := clock().Add(-time.Minute).UTC()
	for _, v := range []string{since.Format("2006-01-02T15:04:05-0700"), since.Format("2006-01-02 15:04:05")} {
		p := signedValues(values("command", "listAsyncJobs", "startdate", v), DefaultAPIKey, DefaultSecretKey, clock().Add(time.Minute))
		l := inner(t, e.rawSigned(http.MethodGet, p).body, "listasyncjobsresponse")
		jobs, _ := l["asyncjobs"].([]any)
		if l["count"] != 1.0 || len(jobs) != 1 || jobs[0].(map[string]any)["jobid"] != second {
			t.Fatalf("startdate %s: %v, want only job %s", v, l, second)
		}
	}
	p := signedValues(values("command", "listAsyncJobs", "startdate", "yesterday"), DefaultAPIKey, DefaultSecretKey, clock().Add(time.Minute))
	if r := e.rawSigned(http.MethodGet, p); r.status != 431 {
		t.Fatalf("startdate yesterday: %d %s, want 431", r.status, r.body)
	}
}

// Jitter is drawn from the seed: two simulators with one seed agree.
func TestJobJitterIsSeeded(t *testing.T) {
	dues := func() []time.Duration {
		e := newEnv(t, Options{JobLatency: time.Hour, JobJitter: time.Hour, Seed: 7})
		for i := 0; i < 5; i++ {
			e.raw(http.MethodPost, values("command", "createVolume", "zoneid", DefaultZoneID, "diskofferingid", DefaultDiskOfferingID, "size", "1"))
		}
		var out []time.Duration
		for _, j := range e.sim.Snapshot().Jobs {
			d := j.Due.Sub(j.Created)
			if d < time.Hour || d >= 2*time.Hour {
				t.Fatalf("due after %v, want within [1h, 2h)", d)
			}
			out = append(out, d)
		}
		return out
	}
	a, b := dues(), dues()
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("jitter differs between runs with one seed: %v vs %v", a, b)
		}
	}
	if a[0] == a[1] && a[1] == a[2] {
		t.Fatalf("no jitter: %v", a)
	}
}

// A simulator Clock that jumps ahead completes jobs at the next request.
func TestInjectedClockCompletesJobs(t *testing.T) {
	var offset atomic.Int64 // read by the simulator's job runner
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	e := newEnv(t, Options{JobLatency: time.Hour, Clock: clock})
	r := e.raw(http.MethodPost, values("command", "createVolume", "zoneid", DefaultZoneID, "diskofferingid", DefaultDiskOfferingID, "size", "1"))
	jobID := inner(t, r.body, "createvolumeresponse")["jobid"].(string)
	if q := e.raw(http.MethodGet, values("command", "queryAsyncJobResult", "jobid", jobID)); inner(t, q.body, "queryasyncjobresultresponse")["jobstatus"] != 0.0 {
		t.Fatalf("done early: %s", q.body)
	}
	offset.Store(int64(2 * time.Hour))
	// Sign with an expiry in the simulator's future.
	p := signedValues(values("command", "queryAsyncJobResult", "jobid", jobID), DefaultAPIKey, DefaultSecretKey, clock().Add(time.Minute))
	if q := e.rawSigned(http.MethodGet, p); inner(t, q.body, "queryasyncjobresultresponse")["jobstatus"] != 1.0 {
		t.Fatalf("not done after the clock moved: %s", q.body)
	}
}
