package testkit

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

// fakeTB stands in for the test a helper is given, so that a failure the helper reports can
// be observed without failing the real test. Fatalf ends the goroutine as the real one does.
type fakeTB struct {
	testing.TB
	fatal string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls fn with a fakeTB on a goroutine of its own (Fatalf ends it) and says whether
// fn returned normally and what failure was reported.
func run(fn func(tb testing.TB)) (returned bool, fatal string) {
	f := &fakeTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
		returned = true
	}()
	<-done
	return returned, f.fatal
}

func TestEventuallyReturnsOnceCondHolds(t *testing.T) {
	calls := 0
	returned, fatal := run(func(tb testing.TB) {
		Eventually(tb, 10*time.Second, func() string {
			calls++
			if calls < 3 {
				return "not yet"
			}
			return ""
		})
	})
	if !returned || fatal != "" || calls != 3 {
		t.Fatalf("returned %v, failure %q, %d calls; want a return after 3 calls", returned, fatal, calls)
	}
}

func TestEventuallyFailsWithTheLastAnswer(t *testing.T) {
	calls := 0
	start := time.Now()
	returned, fatal := run(func(tb testing.TB) {
		Eventually(tb, 300*time.Millisecond, func() string {
			calls++
			return fmt.Sprintf("answer %d", calls)
		})
	})
	if returned {
		t.Fatal("Eventually returned after its timeout instead of failing the test")
	}
	if want := fmt.Sprintf("gave up after 300ms: answer %d", calls); fatal != want {
		t.Fatalf("failure %q, want %q", fatal, want)
	}
	if took := time.Since(start); took < 300*time.Millisecond || calls < 2 {
		t.Fatalf("gave up after %v and %d calls: it did not wait out its timeout", took, calls)
	}
}

func TestWaitGone(t *testing.T) {
	cm := func() *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cm"}, Data: map[string]string{"k": "v"}}
	}
	// A still function is told which call it is, and gets the test and the client so that
	// it can fail the test or delete the object.
	type stillFunc func(tb testing.TB, c client.Client, call int, got *corev1.ConfigMap) string
	cases := []struct {
		name      string
		exists    bool
		still     stillFunc // nil: WaitGone is given none
		wantFatal string    // "": WaitGone is to return
	}{
		{name: "already gone"},
		{name: "deleted while waited for", exists: true,
			still: func(_ testing.TB, c client.Client, call int, _ *corev1.ConfigMap) string {
				if call == 2 {
					if err := c.Delete(context.Background(), cm()); err != nil {
						return err.Error()
					}
				}
				return "still here"
			}},
		{name: "never goes: still's report", exists: true,
			still: func(_ testing.TB, _ client.Client, _ int, got *corev1.ConfigMap) string {
				return "data " + got.Data["k"]
			},
			wantFatal: "gave up after 300ms: data v"},
		{name: "never goes: no still", exists: true, wantFatal: "gave up after 300ms: cm still exists"},
		{name: "never goes: still says nothing", exists: true,
			still:     func(testing.TB, client.Client, int, *corev1.ConfigMap) string { return "" },
			wantFatal: "gave up after 300ms: cm still exists"},
		{name: "still fails the test at once", exists: true,
			still: func(tb testing.TB, _ client.Client, _ int, _ *corev1.ConfigMap) string {
				tb.Fatalf("stalled on the way out")
				return ""
			},
			wantFatal: "stalled on the way out"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var objs []client.Object
			if tc.exists {
				objs = append(objs, cm())
			}
			c := fake.NewClientBuilder().WithObjects(objs...).Build()
			returned, fatal := run(func(tb testing.TB) {
				var still func(*corev1.ConfigMap) string
				if tc.still != nil {
					calls := 0
					still = func(got *corev1.ConfigMap) string {
						calls++
						return tc.still(tb, c, calls, got)
					}
				}
				WaitGone(tb, c, cm(), 300*time.Millisecond, still)
			})
			if tc.wantFatal == "" && (!returned || fatal != "") {
				t.Fatalf("returned %v, failure %q; want a return", returned, fatal)
			}
			if tc.wantFatal != "" && (returned || fatal != tc.wantFatal) {
				t.Fatalf("returned %v, failure %q; want the failure %q", returned, fatal, tc.wantFatal)
			}
		})
	}
}

func TestSyncBuffer(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 100 {
				_, _ = fmt.Fprintf(&b, "writer %d\n", i)
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if n := strings.Count(b.String(), "\n"); n != 800 {
		t.Fatalf("%d lines, want 800", n)
	}
}

func TestDescribeConditions(t *testing.T) {
	conds := []metav1.Condition{
		{Type: "Ready", Status: metav1.ConditionFalse, Reason: "NotAttached", Message: "waiting for the attach"},
		{Type: "Stalled", Status: metav1.ConditionTrue, Reason: "DeviceNotFound", Message: "no device"},
	}
	want := "Ready=False/NotAttached: waiting for the attach; Stalled=True/DeviceNotFound: no device"
	if got := DescribeConditions(conds); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got := DescribeConditions(nil); got != "" {
		t.Fatalf("no conditions: got %q", got)
	}
}
