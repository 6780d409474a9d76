package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/guestdisk"
)

// deviceWatcher wakes the volumes whose disk link appears in (or leaves) the by-id
// directory, so a new disk is mounted the moment udev (or the simulator) names it, not at
// the next poll.
type deviceWatcher struct {
	dir    string
	client client.Reader // the agent's cache: only volumes attached to this VM
	out    chan<- event.GenericEvent
	log    logr.Logger
}

// Start watches until ctx ends. The directory may not exist yet (no by-id disk so far) or
// may be recreated; the watch is then set up again with a backoff, and every volume is
// looked at once after each (re)start, for links that came meanwhile.
func (w *deviceWatcher) Start(ctx context.Context) error {
	backoff := 250 * time.Millisecond
	for {
		started := time.Now()
		err := w.watch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(started) > time.Minute {
			backoff = 250 * time.Millisecond
		}
		w.log.Info("Watch of the by-id directory ended; setting it up again", "dir", w.dir, "reason", err.Error(), "retryAfter", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

func (w *deviceWatcher) watch(ctx context.Context) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("creating an inotify watcher: %w", err)
	}
	defer fw.Close()
	if err := fw.Add(w.dir); err != nil {
		return fmt.Errorf("watching %s: %w", w.dir, err)
	}
	w.log.V(1).Info("Watching the by-id directory", "dir", w.dir)
	w.wakeAll(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return errors.New("the watcher closed its event channel")
			}
			if filepath.Clean(ev.Name) == filepath.Clean(w.dir) && ev.Has(fsnotify.Remove|fsnotify.Rename) {
				return fmt.Errorf("%s was removed", w.dir)
			}
			if serial := guestdisk.SerialOfLink(filepath.Base(ev.Name)); serial != "" {
				w.wake(ctx, func(mv *osseav1.MigrationVolume) bool { return guestdisk.Serial(mv.Status.VolumeID) == serial })
			}
		case err, ok := <-fw.Errors:
			if !ok {
				return errors.New("the watcher closed its error channel")
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				w.wakeAll(ctx) // events were lost; any volume may have changed
				continue
			}
			return err
		}
	}
}

func (w *deviceWatcher) wakeAll(ctx context.Context) {
	w.wake(ctx, func(*osseav1.MigrationVolume) bool { return true })
}

func (w *deviceWatcher) wake(ctx context.Context, match func(*osseav1.MigrationVolume) bool) {
	var list osseav1.MigrationVolumeList
	if err := w.client.List(ctx, &list); err != nil {
		w.log.Error(err, "Listing volumes to wake")
		return
	}
	for i := range list.Items {
		if match(&list.Items[i]) {
			send(ctx, w.out, &list.Items[i])
		}
	}
}

func send(ctx context.Context, out chan<- event.GenericEvent, mv *osseav1.MigrationVolume) {
	select {
	case out <- event.GenericEvent{Object: mv}:
	case <-ctx.Done():
	}
}

// heldScan looks once, at start, for volumes this agent holds (its finalizer, its node)
// that are outside its cache because they are no longer attached to its VM: their events
// happened while the agent was down, and without this nothing would ever release them.
// It lists every volume, not only those with this node's claim label: a volume claimed by
// an agent older than the label says the node in status.nodeName alone (see holds).
type heldScan struct {
	reader   client.Reader // straight from the API server
	vmID     string
	nodeName string
	out      chan<- event.GenericEvent
	log      logr.Logger
}

func (h *heldScan) Start(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		var list osseav1.MigrationVolumeList
		err := h.reader.List(ctx, &list)
		if err == nil {
			for i := range list.Items {
				mv := &list.Items[i]
				if holds(mv, h.vmID, h.nodeName) && mv.Status.AttachedVirtualMachineID != h.vmID {
					h.log.Info("Found a volume held by this agent outside its VM", "volume", client.ObjectKeyFromObject(mv))
					send(ctx, h.out, mv)
				}
			}
			return nil
		}
		h.log.Error(err, "Listing volumes held by this agent; retrying")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(min(time.Duration(attempt+1)*time.Second, 30*time.Second)):
		}
	}
}
