package cloudstack

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	csgo "github.com/apache/cloudstack-go/v2/cloudstack"
)

// CloudStack's jobstatus values.
const (
	csJobPending   = 0
	csJobSucceeded = 1
	csJobFailed    = 2
)

func (a *adapter) PollJob(ctx context.Context, jobID string) (JobResult, error) {
	res := JobResult{JobID: jobID}
	if err := required("job id", jobID); err != nil {
		return res, fmt.Errorf("polling job: %w", err)
	}
	r, err := a.pollReply(ctx, jobID)
	if err != nil {
		return res, err
	}
	res.Command = r.Cmd
	res.InstanceID = r.InstanceID

	switch r.Status {
	case csJobPending:
		res.Status = JobPending
		return res, nil
	case csJobSucceeded:
		res.Status = JobSucceeded
		var out struct {
			Volume *csgo.Volume `json:"volume"`
		}
		if len(r.Result) > 0 && json.Unmarshal(r.Result, &out) == nil && out.Volume != nil {
			v := volumeFrom(out.Volume)
			res.Volume = &v
		}
		a.jobs.forget(jobID)
		a.book.ended(jobID)
		jobsFinished.WithLabelValues("succeeded").Inc()
		return res, nil
	case csJobFailed:
		res.Status = JobFailed
		e := jobError(r.Result, a.red)
		if e.Code == 0 && r.ResultCode != 0 {
			// A text jobresult carries no code; the envelope's still classifies it.
			e = apiError(r.ResultCode, e.CSCode, e.Text)
		}
		if e.Text == "" {
			e.Text = "the job failed without saying why"
		}
		target, known := a.jobs.lookup(jobID)
		if !known {
			target = jobTarget{volumeID: r.InstanceID, vmID: a.omaVMID}
		}
		e = a.refineAttached(ctx, e, target.volumeID, target.vmID)
		res.Err = fmt.Errorf("job %s (%s) failed: %w", jobID, shortCommand(r.Cmd), e)
		a.jobs.forget(jobID)
		a.book.ended(jobID)
		jobsFinished.WithLabelValues("failed").Inc()
		return res, nil
	}
	return res, fmt.Errorf("polling job %s: %w", jobID,
		&Error{Text: fmt.Sprintf("unknown jobstatus %d", r.Status)})
}

// pollReply asks about a job the cheapest way there is: what the background watch saw,
// else the account's batched listing for a job this process started, else the job alone.
func (a *adapter) pollReply(ctx context.Context, jobID string) (jobReply, error) {
	r, ended, started := a.book.known(jobID)
	if ended {
		return r, nil
	}
	if started {
		r, found, err := a.book.list.get(ctx, jobID)
		if err != nil {
			return jobReply{}, fmt.Errorf("polling job %s: %w", jobID, err)
		}
		if found {
			return r, nil
		}
	}
	r, _, err := a.queryJobAlone(ctx, jobID)
	return r, err
}

// queryJob asks once. cloudstack-go's own QueryAsyncJobResult retries three times with
// sleeps in between, which would stall a reconcile worker on exactly the errors (401,
// unknown job, outage) where a prompt, classified answer is wanted; its generic request
// gives one attempt.
func (a *adapter) queryJob(ctx context.Context, jobID string) (*csgo.QueryAsyncJobResultResponse, error) {
	cs := a.client(ctx)
	custom, ok := cs.Custom.(*csgo.CustomService)
	if !ok {
		return nil, fmt.Errorf("cloudstack-go has no generic request service (%T)", cs.Custom)
	}
	p := &csgo.CustomServiceParams{}
	p.SetParam("jobid", jobID)
	var r csgo.QueryAsyncJobResultResponse
	if err := custom.CustomRequest("queryAsyncJobResult", p, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// jobTarget remembers what an attach job was for, so its failure can be refined against
// the VM it named rather than assumed to be the OMA VM.
type jobTarget struct {
	volumeID string
	vmID     string
}

// jobTargets is bounded because jobs whose results are never polled (a controller that
// adopts by re-reading instead) would otherwise accumulate; after a restart the map is
// empty and the job's instance id and the OMA VM stand in.
type jobTargets struct {
	mu sync.Mutex
	m  map[string]jobTarget
}

const maxJobTargets = 4096

func newJobTargets() *jobTargets { return &jobTargets{m: map[string]jobTarget{}} }

func (j *jobTargets) remember(jobID string, t jobTarget) {
	if jobID == "" {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.m) >= maxJobTargets {
		for k := range j.m {
			delete(j.m, k)
			break
		}
	}
	j.m[jobID] = t
}

func (j *jobTargets) lookup(jobID string) (jobTarget, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	t, ok := j.m[jobID]
	return t, ok
}

func (j *jobTargets) forget(jobID string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	delete(j.m, jobID)
}
