package controllers

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudsim"
	"github.com/migratekit/ossea-operator/internal/testkit"
	"github.com/migratekit/ossea-operator/test/world"
)

// secondOMAVMID is a second OMA VM of the tenant, for the tests that spread volumes over two.
const secondOMAVMID = "9c1e4b7d-2a6f-4d3c-8e5b-0000000000b2"

// ruleCheckedSim is a simulator behind a handler that checks, at the moment each call
// arrives, the rules a teardown relies on (see world.CallRules).
type ruleCheckedSim struct {
	*sim
	rules *world.CallRules

	mu       sync.Mutex
	problems []string
	deleted  map[string]deletion // by the first 8 characters of the object's UID
}

type deletion struct {
	name string
	at   time.Time
}

// startGrace is how long after the test's delete of an object returned a create, tag or
// attach for it may still arrive without breaking rule (a): the manager checks the object
// with the API server just before it sends such a call, and a delete can land between that
// check and the call's arrival here. The manager's check is immediately before the send, so
// the window is milliseconds; the grace leaves room for a loaded machine.
const startGrace = 250 * time.Millisecond

func startRuleCheckedSim(t *testing.T, opts cloudsim.Options) *ruleCheckedSim {
	t.Helper()
	s, err := cloudsim.New(opts)
	if err != nil {
		t.Fatalf("starting the simulator: %v", err)
	}
	rs := &ruleCheckedSim{deleted: map[string]deletion{}}
	rs.rules = &world.CallRules{
		State: func() (cloudsim.State, error) { return s.Snapshot(), nil },
		Deleting: func(uid8 string) (string, bool) {
			rs.mu.Lock()
			defer rs.mu.Unlock()
			d, ok := rs.deleted[uid8]
			return d.name, ok && time.Since(d.at) > startGrace
		},
	}
	srv := httptest.NewServer(rs.check(s.Handler()))
	t.Cleanup(func() {
		srv.Close()
		_ = s.Close()
	})
	rs.sim = &sim{Simulator: s, srv: srv, url: srv.URL + "/client/api"}
	return rs
}

// check passes every call on and notes what the rules find wrong with it.
func (rs *ruleCheckedSim) check(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		params := req.URL.Query()
		if req.Method == http.MethodPost {
			body, _ := io.ReadAll(req.Body)
			req.Body = io.NopCloser(bytes.NewReader(body))
			form, _ := url.ParseQuery(string(body))
			for k, v := range form {
				params[k] = v
			}
		}
		cmd := params.Get("command")
		if !rs.rules.Checks(cmd) {
			next.ServeHTTP(w, req)
			return
		}
		gen := rs.rules.Generation()
		if p := rs.rules.Before(cmd, params); p != "" {
			rs.mu.Lock()
			rs.problems = append(rs.problems, time.Now().Format("15:04:05.000")+" "+p)
			rs.mu.Unlock()
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, req)
		rs.rules.After(gen, cmd, params, rec.Body.Bytes())
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
}

// delete deletes the object and notes when the API server had taken the deletion.
func (rs *ruleCheckedSim) delete(t *testing.T, mv *osseav1.MigrationVolume) {
	t.Helper()
	if err := k8s.Delete(testCtx, mv); err != nil {
		t.Fatalf("deleting %s: %v", mv.Name, err)
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.deleted[string(mv.UID)[:8]] = deletion{name: mv.Name, at: time.Now()}
}

func (rs *ruleCheckedSim) found() []string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return append([]string(nil), rs.problems...)
}

// TestVolumeDeleteRacesAttach replays, small, the run that found the manager deleting volumes
// under their own attach jobs: Block-mode volumes on two OMA VMs, three times more than the
// VMs have slots, so most wait with CapacityExhausted; then every object is deleted, the
// waiting ones just as the first slots free, while their attaches start. The attach calls,
// and the listings of the nearly full VMs before them, are slowed, as a loaded CloudStack's
// are, so that deletions land while a reconcile that read the object before its deletion is
// still on its way to the attach or in it. At the moment of every call the
// simulator's view is checked: (a) no create, tag or attach for an object being deleted;
// (b) no delete or detach of a volume while a job the manager started on it runs. At the end
// nothing is left.
func TestVolumeDeleteRacesAttach(t *testing.T) {
	const (
		slots = 4
		perVM = 3 * slots
	)
	w := cloudsim.DefaultWorld()
	volumeWorld(w)
	w.VirtualMachines[0].MaxDataVolumes = slots
	w.VirtualMachines = append(w.VirtualMachines, cloudsim.VirtualMachine{
		ID: secondOMAVMID, Name: "oma-2", Zone: cloudsim.DefaultZoneID, Account: "tenant", MaxDataVolumes: slots,
	})
	s := startRuleCheckedSim(t, cloudsim.Options{World: w, JobLatency: time.Second})
	e := newVolumeEnv(t, s.sim, func(cfg *osseav1.OsseaConfig) { cfg.Spec.MaxDataVolumes = ptr.To[int32](slots) })
	second := newConfig(e.ns, "ossea-2", s.url)
	second.Spec.CredentialsSecretRef.Name = "ossea-credentials"
	second.Spec.OMAVirtualMachineID = secondOMAVMID
	second.Spec.MaxDataVolumes = ptr.To[int32](slots)
	create(t, second)
	waitReady(t, client.ObjectKeyFromObject(second), metav1.ConditionTrue, osseav1.ReasonConnected)

	var mvs []*osseav1.MigrationVolume
	for i := range 2 * perVM {
		mv := e.newVolume(fmt.Sprintf("disk%02d", i), func(mv *osseav1.MigrationVolume) {
			mv.Spec.Mode = osseav1.VolumeModeBlock
			if i%2 == 1 {
				mv.Spec.OsseaConfigRef.Name = second.Name
			}
		})
		create(t, mv)
		mvs = append(mvs, mv)
	}
	var attached, waiting []*osseav1.MigrationVolume
	testkit.Eventually(t, 45*time.Second, func() string {
		attached, waiting = nil, nil
		for _, mv := range mvs {
			got := &osseav1.MigrationVolume{}
			if err := k8s.Get(testCtx, client.ObjectKeyFromObject(mv), got); err != nil {
				return err.Error()
			}
			c := meta.FindStatusCondition(got.Status.Conditions, osseav1.ConditionAttached)
			switch {
			case c != nil && c.Status == metav1.ConditionTrue:
				attached = append(attached, got)
			case c != nil && c.Reason == osseav1.ReasonCapacityExhausted:
				waiting = append(waiting, got)
			}
		}
		if len(attached) != 2*slots || len(waiting) != len(mvs)-2*slots {
			return fmt.Sprintf("%d attached and %d waiting for a slot, want %d and %d", len(attached), len(waiting), 2*slots, len(mvs)-2*slots)
		}
		return ""
	})

	// Slow attaches, and slow listings of a nearly full VM's volumes before them, keep a
	// reconcile that read the object before its deletion busy while the deletion lands.
	s.SetFaults(cloudsim.Faults{ExtraLatency: 300 * time.Millisecond, Commands: []string{"attachVolume", "listVolumes"}})
	for _, mv := range attached {
		s.delete(t, mv)
	}
	// The waiting volumes are deleted one by one from the moment the first detach is done,
	// so that their deletions and the attaches the freed slots allow overlap.
	testkit.Eventually(t, 30*time.Second, func() string {
		for _, vm := range s.Snapshot().VirtualMachines {
			if (vm.ID == cloudsim.DefaultOMAVMID || vm.ID == secondOMAVMID) && vm.DataVolumes < slots {
				return ""
			}
		}
		return "no slot freed yet"
	})
	for _, mv := range waiting {
		s.delete(t, mv)
		time.Sleep(60 * time.Millisecond)
	}
	for _, mv := range mvs {
		testkit.WaitGone(t, k8s, mv, 60*time.Second, nil)
	}

	for _, p := range s.found() {
		t.Error(p)
	}
	snap := s.Snapshot()
	if left := world.DataVolumes(snap); len(left) != 0 {
		t.Errorf("%d data volumes left in CloudStack after every object is gone: %+v", len(left), left)
	}
	for _, j := range snap.Jobs {
		if j.Status == 2 /* failed */ && strings.Contains(string(j.Result), "valid type") {
			t.Errorf("%s job %s of volume %s failed because its volume was deleted under it: %s", j.Command, j.ID, j.InstanceID, j.Result)
		}
	}
	attaches := 0
	for _, j := range snap.Jobs {
		if strings.EqualFold(j.Command, "attachVolume") {
			attaches++
		}
	}
	// The race must have happened for the test to have tested anything: a start whose
	// status write the deletion refused (resumed from memory), or a start the deletion
	// came before (not sent).
	logs := e.mgr.logs.String()
	resumed, notSent := strings.Count(logs, "Resuming a job whose recording"), strings.Count(logs, "Not started: the object is being deleted")
	t.Logf("%d attach jobs, %d detach and %d delete calls; %d jobs resumed from memory, %d starts not sent",
		attaches, snap.Calls["detachVolume"], snap.Calls["deleteVolume"], resumed, notSent)
	if resumed+notSent == 0 {
		t.Error("no deletion raced a start: the test did not test what it is for; make the attaches slower")
	}
}

// TestVolumeTeardownWaitsOutAJobWhoseReplyWasLost: the reply to an attach is lost, so the
// manager does not know the job it started, and the object is deleted while that job runs.
// CloudStack refuses to delete a volume an attach job is working on; the manager takes the
// refusal for a passing state and retries (it never stalls) until the attach is done, then
// detaches and deletes.
func TestVolumeTeardownWaitsOutAJobWhoseReplyWasLost(t *testing.T) {
	s := startVolumeSim(t, cloudsim.Options{JobLatency: 2 * time.Second})
	e := newVolumeEnv(t, s, nil)
	mv := e.newVolume("disk0", func(mv *osseav1.MigrationVolume) { mv.Spec.Mode = osseav1.VolumeModeBlock })
	s.SetFaults(cloudsim.Faults{LostResponseRate: 1, Commands: []string{"attachVolume"}})
	create(t, mv)
	testkit.Eventually(t, 30*time.Second, func() string {
		for _, j := range s.Snapshot().Jobs {
			if strings.EqualFold(j.Command, "attachVolume") && j.Completed == nil {
				return ""
			}
		}
		return "no attach job running yet"
	})
	if err := k8s.Delete(testCtx, mv); err != nil {
		t.Fatal(err)
	}
	refused := false
	testkit.WaitGone(t, k8s, mv, 30*time.Second, func(got *osseav1.MigrationVolume) string {
		if c := meta.FindStatusCondition(got.Status.Conditions, osseav1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue {
			t.Fatalf("the volume stalled while its teardown waited for the attach job: %s", testkit.DescribeConditions(got.Status.Conditions))
		}
		if e := got.Status.LastCloudStackError; e != nil && strings.Contains(e.Text, "by a job in progress") {
			refused = true
		}
		return "not gone yet"
	})
	snap := s.Snapshot()
	if left := world.DataVolumes(snap); len(left) != 0 {
		t.Errorf("volumes left in CloudStack: %+v", left)
	}
	if !refused || snap.Calls["deleteVolume"] < 2 {
		t.Errorf("deleteVolume called %d times (refusal seen in status: %v): the delete was meant to meet the running attach job and be retried",
			snap.Calls["deleteVolume"], refused)
	}
}
