// Package testkit holds the helpers the tests of several packages share: polling until a
// condition holds, waiting for an object to leave the API server, a log sink that
// goroutines write to while the test reads it, a condition list on one line, and the mount
// table as the tests of the node agent look at it. It is imported only from _test.go files and the
// test/ mains; nothing that ships links it.
package testkit

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// PollInterval is how often Eventually and WaitGone look again: often enough that a test
// waits little past the moment its condition holds, seldom enough that polling the API
// server (or a kubectl process) is no load on a small machine.
const PollInterval = 100 * time.Millisecond

// Eventually calls cond every PollInterval until it returns "", and fails the test once
// timeout has passed. cond returns what is still missing, so that a failure tells the state
// the test gave up on ("gave up after 30s: Mounted is False/DeviceNotFound"), not just that
// time ran out. cond runs on the test's goroutine and may itself fail the test at once.
func Eventually(t testing.TB, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s: %s", timeout, msg)
		}
		time.Sleep(PollInterval)
	}
}

// WaitGone waits until obj, by its namespace and name, is no longer found, and fails the test
// once timeout has passed. While the object is still there, still is called with the copy
// just read and returns what to report about it; it may also fail the test at once, for a
// state the caller knows the object must not pass through on its way out. With still nil,
// or when it returns "", the report is only that the object still exists. A failed read
// reports the error and waits on.
func WaitGone[O any, P interface {
	*O
	client.Object
}](t testing.TB, c client.Client, obj P, timeout time.Duration, still func(got P) string) {
	t.Helper()
	key := client.ObjectKeyFromObject(obj)
	Eventually(t, timeout, func() string {
		got := P(new(O))
		err := c.Get(context.Background(), key, got)
		switch {
		case apierrors.IsNotFound(err):
			return ""
		case err != nil:
			return err.Error()
		}
		if still != nil {
			if msg := still(got); msg != "" {
				return msg
			}
		}
		return fmt.Sprintf("%s still exists", key.Name)
	})
}

// DescribeConditions puts an object's conditions on one line, Type=Status/Reason: Message
// each, for the message of a test that waited on them in vain.
func DescribeConditions(conds []metav1.Condition) string {
	var parts []string
	for _, c := range conds {
		parts = append(parts, fmt.Sprintf("%s=%s/%s: %s", c.Type, c.Status, c.Reason, c.Message))
	}
	return strings.Join(parts, "; ")
}

// SyncBuffer is a bytes.Buffer that may be written from several goroutines while the test
// reads it: the sink of a logger or a child process's output that the test searches.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
