package cloudsim

import (
	"fmt"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"
)

// userWorld is the default world with its account a plain user account: CloudStack
// never throttles a root admin.
func userWorld() *World {
	w := DefaultWorld()
	w.Accounts[0].Admin = false
	return w
}

// frozenClock stands still until moved, so that window edges are exact.
type frozenClock struct {
	t0     time.Time
	offset atomic.Int64
}

func newFrozenClock() *frozenClock { return &frozenClock{t0: time.Now().Truncate(time.Second)} }

func (c *frozenClock) now() time.Time          { return c.t0.Add(time.Duration(c.offset.Load())) }
func (c *frozenClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

func throttledBody(key string, leftMS int) string {
	return fmt.Sprintf(`{"%s":{"uuidList":[],"errorcode":429,"cserrorcode":9999,"errortext":"The given user has reached his/her account api limit, please retry after [%d] ms."}}`, key, leftMS)
}

// N calls pass, the next is refused with 429 and CloudStack's text, and the window
// resets once it has passed (and not a moment before: its end still belongs to it).
func TestThrottleWindow(t *testing.T) {
	clock := newFrozenClock()
	e := newEnv(t, Options{World: userWorld(), Clock: clock.now, Throttle: Throttle{Max: 3, Interval: time.Second}})
	listZones := values("command", "listZones")
	steps := []struct {
		name    string
		advance time.Duration
		want    int
		leftMS  int // for a 429: what the text says is left of the window
	}{
		{"1st call opens the window", 0, 200, 0},
		{"2nd", 100 * time.Millisecond, 200, 0},
		{"3rd, the last allowed", 100 * time.Millisecond, 200, 0},
		{"4th is refused", 100 * time.Millisecond, 429, 700},
		{"and so is the next", 200 * time.Millisecond, 429, 500},
		{"at the window's very end", 500 * time.Millisecond, 429, 0},
		{"after it, a new window", time.Millisecond, 200, 0},
		{"2nd of the new window", 0, 200, 0},
		{"3rd of the new window", 0, 200, 0},
		{"4th of the new window", 0, 429, 1000},
	}
	for _, s := range steps {
		clock.advance(s.advance)
		r := e.raw(http.MethodGet, listZones)
		if r.status != s.want {
			t.Fatalf("%s: status %d, want %d (%s)", s.name, r.status, s.want, r.body)
		}
		if s.want == 429 {
			if want := throttledBody("listzonesresponse", s.leftMS); r.body != want {
				t.Fatalf("%s:\n got %s\nwant %s", s.name, r.body, want)
			}
			if r.contentType != contentTypeJSON {
				t.Fatalf("%s: content type %q", s.name, r.contentType)
			}
		}
	}
	st := e.sim.Snapshot()
	if st.Calls["listZones"] != len(steps) || st.Throttled["listZones"] != 4 {
		t.Fatalf("calls %v throttled %v, want %d calls of which 4 throttled", st.Calls, st.Throttled, len(steps))
	}
}

// Every call of the account counts, whatever its command, and a refused call is not run:
// a createVolume refused makes no volume. cloudstack-go reports the refusal as
// "CloudStack API error 429 (CSExceptionErrorCode: 9999): ...".
func TestThrottleCountsEveryCommandAndRefusesBeforeRunning(t *testing.T) {
	clock := newFrozenClock()
	e := newEnv(t, Options{World: userWorld(), Clock: clock.now, JobLatency: time.Hour, Throttle: Throttle{Max: 4}})
	create := e.cs.Volume.NewCreateVolumeParams()
	create.SetName("v")
	create.SetZoneid(DefaultZoneID)
	create.SetDiskofferingid(DefaultDiskOfferingID)
	create.SetSize(1)
	v, err := e.cs.Volume.CreateVolume(create) // 1
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.cs.Asyncjob.QueryAsyncJobResult(e.cs.Asyncjob.NewQueryAsyncJobResultParams(v.JobID)); err != nil { // 2
		t.Fatal(err)
	}
	if _, err := e.cs.Volume.ListVolumes(e.cs.Volume.NewListVolumesParams()); err != nil { // 3
		t.Fatal(err)
	}
	if _, err := e.cs.Zone.ListZones(e.cs.Zone.NewListZonesParams()); err != nil { // 4
		t.Fatal(err)
	}
	_, err = e.cs.Volume.CreateVolume(create) // 5: refused
	wantErr(t, err, apiErr(429, 9999, fmt.Sprintf(textThrottled, 1000)))
	// 6: refused (sent raw: cloudstack-go's QueryAsyncJobResult tries three times)
	if r := e.raw(http.MethodGet, values("command", "queryAsyncJobResult", "jobid", v.JobID)); r.body != throttledBody("queryasyncjobresultresponse", 1000) {
		t.Fatalf("queryAsyncJobResult over the limit: %d %s", r.status, r.body)
	}

	st := e.sim.Snapshot()
	data := 0
	for _, vol := range st.Volumes {
		if vol.Type == volumeTypeData {
			data++
		}
	}
	if data != 1 || len(st.Jobs) != 1 {
		t.Fatalf("%d data volumes and %d jobs after one create that ran and one refused", data, len(st.Jobs))
	}
	wantThrottled := map[string]int{"createVolume": 1, "queryAsyncJobResult": 1}
	if len(st.Throttled) != len(wantThrottled) || st.Throttled["createVolume"] != 1 || st.Throttled["queryAsyncJobResult"] != 1 {
		t.Fatalf("throttled %v, want %v", st.Throttled, wantThrottled)
	}
	if st.Calls["createVolume"] != 2 || st.Calls["queryAsyncJobResult"] != 2 {
		t.Fatalf("calls %v: refused calls are calls too", st.Calls)
	}
	e.sim.ResetCounters()
	if st := e.sim.Snapshot(); len(st.Throttled) != 0 {
		t.Fatalf("throttled after a reset: %v", st.Throttled)
	}
}

// Each account has its own window; root admins have none; off (the default) is off.
func TestThrottleAccounts(t *testing.T) {
	w := DefaultWorld() // admin: a root admin
	w.Accounts = append(w.Accounts,
		Account{Name: "alice", APIKey: "alice-key", SecretKey: "alice-secret"},
		Account{Name: "bob", APIKey: "bob-key", SecretKey: "bob-secret"})
	clock := newFrozenClock()
	throttled := newEnv(t, Options{World: w, Clock: clock.now, Throttle: Throttle{Max: 2}})
	off := newEnv(t, Options{World: w, Clock: clock.now})

	call := func(e *env, key, secret string) int {
		return e.rawSigned(http.MethodGet, signedValues(values("command", "listZones"), key, secret, time.Now().Add(time.Minute))).status
	}
	cases := []struct {
		name   string
		e      *env
		key    string
		secret string
		want   []int
	}{
		{"alice", throttled, "alice-key", "alice-secret", []int{200, 200, 429, 429}},
		{"bob, after alice", throttled, "bob-key", "bob-secret", []int{200, 200, 429}},
		{"root admin", throttled, DefaultAPIKey, DefaultSecretKey, []int{200, 200, 200, 200, 200}},
		{"throttling off", off, "alice-key", "alice-secret", []int{200, 200, 200, 200, 200}},
	}
	for _, tc := range cases {
		for i, want := range tc.want {
			if got := call(tc.e, tc.key, tc.secret); got != want {
				t.Fatalf("%s: call %d answered %d, want %d", tc.name, i+1, got, want)
			}
		}
	}
}

// CloudStack checks the limit after the API key and before the signature: a call with
// a known key and a bad signature counts, and is refused 429 rather than 401 once over
// the limit; a call with an unknown key neither counts nor is throttled.
func TestThrottleBeforeSignature(t *testing.T) {
	clock := newFrozenClock()
	e := newEnv(t, Options{World: userWorld(), Clock: clock.now, Throttle: Throttle{Max: 2}})
	badSig := func() url.Values {
		p := signedValues(values("command", "listZones"), DefaultAPIKey, DefaultSecretKey, time.Now().Add(time.Minute))
		p.Set("signature", "bad")
		return p
	}
	unknown := signedValues(values("command", "listZones"), "nobody", "x", time.Now().Add(time.Minute))
	for i, step := range []struct {
		p    url.Values
		want int
	}{
		{unknown, 401}, {unknown, 401}, {unknown, 401},
		{badSig(), 401},
		{signedValues(values("command", "listZones"), DefaultAPIKey, DefaultSecretKey, time.Now().Add(time.Minute)), 200},
		{badSig(), 429},
	} {
		if r := e.rawSigned(http.MethodGet, step.p); r.status != step.want {
			t.Fatalf("step %d: status %d, want %d (%s)", i, r.status, step.want, r.body)
		}
	}
}

func TestThrottleRejectsBadSettings(t *testing.T) {
	for _, th := range []Throttle{{Max: -1}, {Max: 5, Interval: -time.Second}} {
		if _, err := New(Options{World: DefaultWorld(), Throttle: th}); err == nil {
			t.Errorf("%+v: no error", th)
		}
	}
}
