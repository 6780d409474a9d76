package cloudsim

import (
	"encoding/json"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Job statuses as queryAsyncJobResult reports them.
const (
	jobPending   = 0
	jobSucceeded = 1
	jobFailed    = 2
)

// Job is an async job. Its command's change is made when it completes.
type Job struct {
	ID      string `json:"id"`
	Seq     int64  `json:"seq"`
	Command string `json:"command"`
	Account string `json:"account"`
	// Params are the request's parameters, minus authentication; the job reads
	// them when it completes (and after a restart).
	Params       map[string]string `json:"params,omitempty"`
	InstanceType string            `json:"instanceType,omitempty"`
	InstanceID   string            `json:"instanceId,omitempty"`
	Status       int               `json:"status"`
	ResultCode   int               `json:"resultCode"`
	Result       json.RawMessage   `json:"result,omitempty"`
	Created      time.Time         `json:"created"`
	Due          time.Time         `json:"due"`
	Completed    *time.Time        `json:"completed,omitempty"`
	// InjectedFailure records the fault draw made when the job started.
	InjectedFailure bool `json:"injectedFailure,omitempty"`
}

var authParams = map[string]bool{"apikey": true, "signature": true, "signatureversion": true, "expires": true, "command": true, "response": true}

// startJob queues the call's job and returns its id at once, as CloudStack does.
func (c *call) startJob(instanceType, instanceID string) string {
	s := c.s
	s.nextJobSeq++
	latency := s.opts.JobLatency
	if s.opts.JobJitter > 0 {
		latency += time.Duration(draw(s.opts.Seed, "job-jitter", uint64(s.nextJobSeq), "") * float64(s.opts.JobJitter))
	}
	params := map[string]string{}
	for k, v := range c.params {
		if !authParams[strings.ToLower(k)] && len(v) > 0 {
			params[k] = v[0]
		}
	}
	j := &Job{
		ID: newUUID(), Seq: s.nextJobSeq, Command: c.cmd.name, Account: c.account.Name, Params: params,
		InstanceType: instanceType, InstanceID: instanceID,
		Created: c.now, Due: c.now.Add(latency), InjectedFailure: c.failJob,
	}
	s.jobs[j.ID] = j
	s.pending[j.ID] = j
	c.mutated = true
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return j.ID
}

// runJobs completes jobs when they fall due, whether or not anyone is asking:
// the hypervisor's disks must appear at that moment, not at the next poll.
func (s *Simulator) runJobs() {
	defer close(s.jobsDone)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		s.mu.Lock()
		s.settleLocked()
		wait := s.untilNextDueLocked()
		s.mu.Unlock()
		t.Reset(wait)
		select {
		case <-s.stop:
			return
		case <-s.wake:
		case <-t.C:
		}
	}
}

func (s *Simulator) untilNextDueLocked() time.Duration {
	wait := time.Hour
	now := s.clock()
	for _, j := range s.pending {
		wait = min(wait, j.Due.Sub(now))
	}
	// An injected Clock may stand still; poll rather than spin.
	return max(wait, time.Millisecond)
}

// settleLocked completes the jobs that are due, in due order.
func (s *Simulator) settleLocked() {
	if s.closed {
		return
	}
	now := s.clock()
	var due []*Job
	for _, j := range s.pending {
		if !j.Due.After(now) {
			due = append(due, j)
		}
	}
	if len(due) == 0 {
		return
	}
	sort.Slice(due, func(a, b int) bool {
		if !due[a].Due.Equal(due[b].Due) {
			return due[a].Due.Before(due[b].Due)
		}
		return due[a].Seq < due[b].Seq
	})
	for _, j := range due {
		s.completeLocked(j, now)
	}
	s.persistLocked()
}

func (s *Simulator) completeLocked(j *Job, now time.Time) {
	var result any
	var err *apiError
	if j.InjectedFailure {
		s.counters.injected["jobFailure"]++
		err = errInternal(textInternal)
	} else {
		result, err = commands[j.Command].complete(s, j)
	}
	j.Completed = &now
	delete(s.pending, j.ID)
	var raw []byte
	if err != nil {
		j.Status, j.ResultCode = jobFailed, err.Code
		raw, _ = json.Marshal(struct {
			ErrorCode int    `json:"errorcode"`
			ErrorText string `json:"errortext"`
		}{err.Code, err.Text})
	} else {
		j.Status, j.ResultCode = jobSucceeded, 0
		raw, _ = json.Marshal(result)
	}
	j.Result = raw
}

// jobJSON is AsyncJobResponse. Pending jobs carry no result fields at all.
type jobJSON struct {
	AccountID       string          `json:"accountid"`
	UserID          string          `json:"userid"`
	Cmd             string          `json:"cmd"`
	JobStatus       int             `json:"jobstatus"`
	JobProcStatus   int             `json:"jobprocstatus"`
	JobResultCode   int             `json:"jobresultcode"`
	JobResultType   string          `json:"jobresulttype,omitempty"`
	JobResult       json.RawMessage `json:"jobresult,omitempty"`
	JobInstanceType string          `json:"jobinstancetype,omitempty"`
	JobInstanceID   string          `json:"jobinstanceid,omitempty"`
	Created         string          `json:"created"`
	Completed       string          `json:"completed,omitempty"`
	JobID           string          `json:"jobid"`
}

func (s *Simulator) jobJSON(j *Job) jobJSON {
	out := jobJSON{
		Cmd: commands[j.Command].class, JobStatus: j.Status, JobResultCode: j.ResultCode,
		JobInstanceType: j.InstanceType, JobInstanceID: j.InstanceID,
		Created: csTime(j.Created), JobID: j.ID,
	}
	if a := s.world.account(j.Account); a != nil {
		out.AccountID, out.UserID = a.ID, a.UserID
	}
	if j.Status != jobPending {
		out.JobResultType = "object"
		out.JobResult = j.Result
		out.Completed = csTime(*j.Completed)
	}
	return out
}

func queryAsyncJobResult(c *call) (any, *apiError) {
	id, err := c.require("jobid")
	if err != nil {
		return nil, err
	}
	j := c.s.jobs[id]
	if j == nil {
		return nil, errBadEntity(c.apiName(), "jobid", id)
	}
	return c.s.jobJSON(j), nil
}

// listAsyncJobs lists the account's jobs oldest first, as CloudStack does (by id). Its
// startdate keeps the jobs created at or after it (CloudStack's TZDATE parameter:
// yyyy-MM-dd'T'HH:mm:ssZ; a bare yyyy-MM-dd means that day's start, UTC here).
func listAsyncJobs(c *call) (any, *apiError) {
	var since time.Time
	if v := c.param("startdate"); v != "" {
		t, ok := parseDateParam(v)
		if !ok {
			return nil, errBadValue(c.apiName(), "startdate", v)
		}
		since = t
	}
	var items []any
	for _, j := range c.s.sortedJobsLocked() {
		if c.canSee(j.Account) && !j.Created.Before(since) {
			items = append(items, c.s.jobJSON(c.s.jobs[j.ID]))
		}
	}
	return c.page("asyncjobs", items)
}

// parseDateParam reads a CloudStack date parameter in the formats its API accepts.
func parseDateParam(v string) (time.Time, bool) {
	for _, layout := range []string{"2006-01-02T15:04:05-0700", "2006-01-02T15:04:05Z07:00", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

func (j Job) clone() Job {
	c := j
	c.Params = make(map[string]string, len(j.Params))
	for k, v := range j.Params {
		c.Params[k] = v
	}
	c.Result = append(json.RawMessage(nil), j.Result...)
	if j.Completed != nil {
		t := *j.Completed
		c.Completed = &t
	}
	return c
}

// param reads a job's saved request parameter.
func (j *Job) param(name string) string { return j.Params[name] }

// values gives a job's parameters back the shape of a request, for the
// parsers (tags[n].key) shared with synchronous commands.
func (j *Job) values() url.Values {
	v := url.Values{}
	for k, val := range j.Params {
		v.Set(k, val)
	}
	return v
}
