package cloudstack

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	csgo "github.com/apache/cloudstack-go/v2/cloudstack"
)

// Job polls are batched like volume reads: one listAsyncJobs, from just before the oldest
// job asked about, answers the polls of every job of the account started since. A job is
// batched only if this process started it (so its start is known and the listing can be
// bounded); any other job, and a job the listing does not show (CloudStack's clock far
// behind ours, or a server that reads startdate by the day and pages past it), is asked
// for on its own with queryAsyncJobResult, as before.
//
// Create jobs are also watched in the background: the controllers do not wait for them
// (a new volume is listed, and can be tagged and attached, from the create's reply on),
// but must know one has ended before the volume may be detached or deleted. The watch
// learns each create's end with the batched listing, about once a second for all of
// them, and keeps the outcome until PollJob asks, so that the ask costs no call.
const (
	// jobListSlack is how far before the oldest job asked about a listing starts: room for
	// CloudStack's clock running behind ours.
	jobListSlack = 10 * time.Second
	// jobListMaxPages bounds one batched listing; jobs it does not reach are asked alone.
	jobListMaxPages = 4
	// jobBookMax bounds each of the book's maps; past it the oldest knowledge is dropped,
	// which costs a call later, never a wrong answer.
	jobBookMax = 1 << 16
	// watchEvery is how often the background watch asks about the jobs it watches.
	watchEvery = time.Second
	// watchRounds is how many listings may miss a watched job before the watch leaves it
	// to PollJob's own query.
	watchRounds = 5
	// startDateLayout is CloudStack's TZDATE format (yyyy-MM-dd'T'HH:mm:ssZ).
	startDateLayout = "2006-01-02T15:04:05-0700"
)

// jobReply is what a poll needs of a job, from queryAsyncJobResult or listAsyncJobs; the
// result is kept only for a job that did not succeed, or while it is handed over at once.
type jobReply struct {
	Cmd        string
	Status     int
	ResultCode int
	Result     json.RawMessage
	InstanceID string
}

func replyOf(r *csgo.QueryAsyncJobResultResponse) jobReply {
	return jobReply{Cmd: r.Cmd, Status: r.Jobstatus, ResultCode: r.Jobresultcode, Result: r.Jobresult, InstanceID: r.Jobinstanceid}
}

// jobBook is what the clients of one account know of the jobs they started. It outlives
// rebuilds of a client (a rotated key keeps the account's endpoint and jobs).
type jobBook struct {
	mu       sync.Mutex
	started  map[string]time.Time // jobs started by this process, until seen ended
	watched  map[string]int       // create jobs watched in the background: listings that missed each
	outcomes map[string]jobReply  // watched jobs seen ended, until PollJob takes them
	watching bool
	// list batches the polls of jobs in started; set by the first client of the account.
	list *batcher[jobReply]
}

func newJobBook() *jobBook {
	return &jobBook{started: map[string]time.Time{}, watched: map[string]int{}, outcomes: map[string]jobReply{}}
}

// began records a job this process has just started: its reply has come, so CloudStack
// created the job within that call's round trip before now (jobListSlack covers the round
// trip and a CloudStack clock running behind ours).
func (b *jobBook) began(jobID string) {
	if jobID == "" {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	bounded(b.started)
	b.started[jobID] = time.Now()
}

// watch has the job's end learnt in the background (see the comment at the top).
func (b *jobBook) watch(jobID string) {
	if jobID == "" {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	bounded(b.watched)
	b.watched[jobID] = 0
	if !b.watching && b.list != nil {
		b.watching = true
		go b.watchLoop()
	}
}

func (b *jobBook) watchLoop() {
	for {
		time.Sleep(watchEvery)
		b.mu.Lock()
		keys := make([]string, 0, len(b.watched))
		for id := range b.watched {
			keys = append(keys, id)
		}
		if len(keys) == 0 {
			b.watching = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		answers := b.list.getAll(context.Background(), keys)
		b.mu.Lock()
		for id, a := range answers {
			switch {
			case a.err == nil && a.found && a.v.Status != csJobPending:
				delete(b.watched, id)
				delete(b.started, id)
				bounded(b.outcomes)
				r := a.v
				if r.Status == csJobSucceeded {
					r.Result = nil // the poll of a watched create needs only that it ended well
				}
				b.outcomes[id] = r
			case a.err == nil && !a.found:
				if b.watched[id]++; b.watched[id] >= watchRounds {
					delete(b.watched, id)
				}
			}
		}
		b.mu.Unlock()
	}
}

// known returns what the book can say of a job without a call: its outcome, if the watch
// saw it end (then the book forgets it), and whether this process started it.
func (b *jobBook) known(jobID string) (reply jobReply, ended, started bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if r, ok := b.outcomes[jobID]; ok {
		delete(b.outcomes, jobID)
		delete(b.watched, jobID)
		return r, true, true
	}
	_, started = b.started[jobID]
	return jobReply{}, false, started
}

// ended forgets a job seen ended.
func (b *jobBook) ended(jobID string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.started, jobID)
	delete(b.watched, jobID)
	delete(b.outcomes, jobID)
}

// since is when a listing that covers jobIDs starts. The batch holds only started jobs.
func (b *jobBook) since(jobIDs []string) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	var oldest time.Time
	for _, id := range jobIDs {
		if at, ok := b.started[id]; ok && (oldest.IsZero() || at.Before(oldest)) {
			oldest = at
		}
	}
	if oldest.IsZero() {
		oldest = time.Now()
	}
	return oldest.Add(-jobListSlack)
}

// bounded makes room for one more entry, dropping an arbitrary one when the map is full.
func bounded[V any](m map[string]V) {
	if len(m) < jobBookMax {
		return
	}
	for k := range m {
		delete(m, k)
		return
	}
}

// listJobs is the batched poll: listAsyncJobs from just before the oldest job asked about,
// page by page until every job is found or jobListMaxPages were read.
func (a *adapter) listJobs(ctx context.Context, jobIDs []string) (map[string]jobReply, error) {
	want := make(map[string]bool, len(jobIDs))
	for _, id := range jobIDs {
		want[id] = true
	}
	since := a.book.since(jobIDs).UTC().Format(startDateLayout)
	cs := a.client(ctx)
	out := make(map[string]jobReply, len(jobIDs))
	for page := 1; page <= jobListMaxPages && len(out) < len(want); page++ {
		p := cs.Asyncjob.NewListAsyncJobsParams()
		p.SetStartdate(since)
		p.SetPage(page)
		p.SetPagesize(listPageSize)
		r, err := cs.Asyncjob.ListAsyncJobs(p)
		if err != nil {
			return nil, a.fail(err, "listing async jobs")
		}
		for _, j := range r.AsyncJobs {
			if j != nil && want[j.JobID] {
				out[j.JobID] = replyOf((*csgo.QueryAsyncJobResultResponse)(j))
			}
		}
		if len(r.AsyncJobs) < listPageSize {
			break
		}
	}
	return out, nil
}

// queryJobAlone is the batch's fallback for one job: queryAsyncJobResult.
func (a *adapter) queryJobAlone(ctx context.Context, jobID string) (jobReply, bool, error) {
	r, err := a.queryJob(ctx, jobID)
	if err != nil {
		return jobReply{}, false, a.fail(err, "polling job %s", jobID)
	}
	return replyOf(r), true, nil
}
