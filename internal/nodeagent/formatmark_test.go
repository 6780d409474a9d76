package nodeagent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/guestdisk"
)

// markFormat leaves the mark an agent killed during mkfs leaves behind.
func (w *world) markFormat(volumeID string, uid string) string {
	w.t.Helper()
	root, err := filepath.EvalSymlinks(w.mountRoot)
	if err != nil {
		w.t.Fatal(err)
	}
	p := filepath.Join(root, formatMarkPrefix+guestdisk.Serial(volumeID))
	if err := os.WriteFile(p, []byte(uid+"\n"), 0o600); err != nil {
		w.t.Fatal(err)
	}
	return p
}

// An agent killed while mkfs ran (found by the chaos run: a half-made xfs does not mount,
// and is not blank, so it was never touched again) leaves a mark; the next agent formats
// the disk again, and the mark goes once the format is done. Here the disk holds a partial
// xfs (its superblock fails the checksum, as mkfs cut short leaves it) or a whole one (mkfs
// finished, the agent died before it noted that).
func TestInterruptedFormatIsRedone(t *testing.T) {
	w := newWorld(t)
	w.startAgent()
	for _, c := range []struct {
		name    string
		partial bool
	}{{"partial", true}, {"complete", false}} {
		t.Run(c.name, func(t *testing.T) {
			volID := uuid.NewString()
			dev := w.loopDevice(1 << 30)
			run(t, "mkfs.xfs", "-q", dev)
			if c.partial {
				// sb_inprogress, set while mkfs.xfs runs; changing it also breaks the CRC.
				f, err := os.OpenFile(dev, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.WriteAt([]byte{1}, 126); err != nil {
					t.Fatal(err)
				}
				f.Close()
			}
			before := run(t, "blkid", "-p", "-s", "UUID", "-o", "value", dev)
			disk := "disk-" + c.name
			mv := w.newVolume("redo-"+c.name, "job-r", disk, 1, withFilesystem(osseav1.FilesystemXFS, osseav1.FormatIfBlank))
			mark := w.markFormat(volID, string(mv.UID))
			w.link(volID, dev)
			w.attach(mv, volID)
			w.waitMounted(mv, metav1.ConditionTrue, osseav1.ReasonMounted, 30*time.Second)
			assertMountedRW(t, w.mountPath("job-r", disk), dev, "xfs")
			if after := run(t, "blkid", "-p", "-s", "UUID", "-o", "value", dev); after == before {
				t.Errorf("filesystem UUID still %s: the interrupted format was not redone", after)
			}
			if _, err := os.Lstat(mark); !isNotExist(err) {
				t.Errorf("the format mark is still there after the format: %v", err)
			}
			if note := w.waitEvent(mv, corev1.EventTypeNormal, osseav1.ReasonMounted); !strings.Contains(note, "as xfs again, as the agent's earlier format of it had been cut short") {
				t.Errorf("the Mounted event does not say the cut-short format was redone: %q", note)
			}
			w.deleteAndWaitGone(mv, 20*time.Second)
		})
	}
}

// A mark left for another object (its UID) is not this object's format: a disk holding a
// filesystem is mounted as it is, never formatted, and the mark goes with the release.
func TestFormatMarkOfAnotherObjectIsIgnored(t *testing.T) {
	w := newWorld(t)
	w.startAgent()
	volID := uuid.NewString()
	dev := w.loopDevice(1 << 30)
	run(t, "mkfs.xfs", "-q", dev)
	before := run(t, "blkid", "-p", "-s", "UUID", "-o", "value", dev)
	mark := w.markFormat(volID, uuid.NewString())
	mv := w.newVolume("stale-mark", "job-s", "disk-0", 1, withFilesystem(osseav1.FilesystemXFS, osseav1.FormatIfBlank))
	w.link(volID, dev)
	w.attach(mv, volID)
	w.waitMounted(mv, metav1.ConditionTrue, osseav1.ReasonMounted, 30*time.Second)
	if after := run(t, "blkid", "-p", "-s", "UUID", "-o", "value", dev); after != before {
		t.Errorf("filesystem UUID changed from %s to %s: a disk holding a filesystem was formatted", before, after)
	}
	if note := w.waitEvent(mv, corev1.EventTypeNormal, osseav1.ReasonMounted); !strings.Contains(note, "nothing was formatted") {
		t.Errorf("the Mounted event does not say the disk was mounted as it was: %q", note)
	}
	w.deleteAndWaitGone(mv, 20*time.Second)
	if _, err := os.Lstat(mark); !isNotExist(err) {
		t.Errorf("the stale format mark is still there after the release: %v", err)
	}
}
