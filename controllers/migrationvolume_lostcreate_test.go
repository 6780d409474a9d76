package controllers

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/cloudsim"
)

// TestVolumeCreateThatLandsLate: the first createVolume gets no reply, and the request
// itself reaches CloudStack only a second later, held in front of it (as a dying manager's
// request, or one queued by a busy proxy, can be). The manager's lookup in between finds
// no volume; it must not create a second one before the first could have landed. (Seen in
// chaos on a loaded machine: two objects each left with two volumes.)
func TestVolumeCreateThatLandsLate(t *testing.T) {
	s := startVolumeSim(t, cloudsim.Options{})
	const holdFor = time.Second
	var once sync.Once
	landed := make(chan struct{})
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		params := req.URL.Query()
		if form, err := url.ParseQuery(string(body)); err == nil {
			for k, v := range form {
				params[k] = v
			}
		}
		first := false
		if params.Get("command") == "createVolume" {
			once.Do(func() { first = true })
		}
		if !first {
			req.Body = io.NopCloser(bytes.NewReader(body))
			s.Handler().ServeHTTP(w, req)
			return
		}
		late := req.Clone(context.Background())
		late.Body = io.NopCloser(bytes.NewReader(body))
		go func() {
			time.Sleep(holdFor)
			s.Handler().ServeHTTP(httptest.NewRecorder(), late)
			close(landed)
		}()
		// No reply: the manager sees the connection drop.
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Errorf("hijacking the connection: %v", err)
			return
		}
		_ = conn.Close()
	}))
	t.Cleanup(front.Close)

	e := newVolumeEnv(t, &sim{Simulator: s.Simulator, srv: front, url: front.URL + "/client/api"}, nil)
	mv := e.newVolume("disk0", nil)
	create(t, mv)
	got := waitVolume(t, mv, 30*time.Second, conditionIs(osseav1.ConditionAttached, metav1.ConditionTrue, osseav1.ReasonAttached))
	select {
	case <-landed:
	case <-time.After(10 * time.Second):
		t.Fatal("the held create never reached the simulator")
	}
	if vols := simVolumes(s, got); len(vols) != 1 || vols[0].ID != got.Status.VolumeID {
		t.Fatalf("CloudStack holds %d volumes for the object, want exactly the one in status (%s): %+v", len(vols), got.Status.VolumeID, vols)
	}
	if n := s.Snapshot().Calls["createVolume"]; n != 1 {
		t.Errorf("createVolume reached CloudStack %d times, want 1 (the held one)", n)
	}
}
