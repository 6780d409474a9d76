package nodeagent

import (
	"encoding/binary"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/moby/sys/mountinfo"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/guestdisk"
	"github.com/migratekit/ossea-operator/internal/testkit"
)

func (w *world) mountPath(job, disk string) string {
	w.t.Helper()
	root, err := filepath.EvalSymlinks(w.mountRoot)
	if err != nil {
		w.t.Fatal(err)
	}
	return filepath.Join(root, job, disk)
}

// A blank disk is formatted and mounted as soon as its link appears (the watch, not a
// timer: the agent's timers are 5 minutes here), and what is written there survives
// unmounting and mounting again.
func TestBlankDeviceFormattedMountedAndDataSurvivesRemount(t *testing.T) {
	w := newWorld(t)
	w.startAgent()
	volID := uuid.NewString()
	mv := w.newVolume("blank", "job-1", "disk-0", 1)
	w.attach(mv, volID)

	// The claim (label and finalizer, one write) comes at once; the wait for the disk is
	// reported after a grace.
	w.waitMounted(mv, metav1.ConditionFalse, osseav1.ReasonWaitingForDevice, 20*time.Second)
	if got := w.get(mv); !controllerutil.ContainsFinalizer(got, osseav1.MountFinalizer) || got.Labels[osseav1.NodeLabel] != w.nodeName ||
		got.Status.NodeName != w.nodeName {
		t.Fatalf("while waiting for the disk: finalizers %v, labels %v, nodeName %q; want the mount finalizer and the claim of %q",
			got.Finalizers, got.Labels, got.Status.NodeName, w.nodeName)
	}

	dev := w.loopDevice(1 << 30)
	link := w.link(volID, dev)
	start := time.Now()
	got := w.waitMounted(mv, metav1.ConditionTrue, osseav1.ReasonMounted, 30*time.Second)
	t.Logf("mounted %s after the link appeared", time.Since(start).Round(time.Millisecond))

	path := w.mountPath("job-1", "disk-0")
	st := got.Status
	if st.MountPath != path || st.FilesystemType != "ext4" || st.DevicePath != link || st.NodeName != w.nodeName {
		t.Errorf("status: mountPath %q, filesystemType %q, devicePath %q, nodeName %q; want %q, ext4, %q, %q",
			st.MountPath, st.FilesystemType, st.DevicePath, st.NodeName, path, link, w.nodeName)
	}
	if c := meta.FindStatusCondition(st.Conditions, osseav1.ConditionMounted); c.ObservedGeneration != got.Generation {
		t.Errorf("Mounted.observedGeneration = %d, want %d", c.ObservedGeneration, got.Generation)
	}
	if a := meta.FindStatusCondition(st.Conditions, osseav1.ConditionAttached); a == nil || a.Status != metav1.ConditionTrue {
		t.Errorf("the manager's Attached condition was changed: %+v", a)
	}
	assertMountedRW(t, path, dev, "ext4")
	if typ := run(t, "blkid", "-p", "-s", "TYPE", "-o", "value", dev); typ != "ext4" {
		t.Errorf("blkid says %q, want ext4", typ)
	}
	// One event says it all: formatted, and mounted where.
	if note := w.waitEvent(mv, corev1.EventTypeNormal, osseav1.ReasonMounted); !strings.HasPrefix(note, "Formatted blank device "+link) ||
		!strings.Contains(note, "as ext4 and mounted it at "+path) {
		t.Errorf("the Mounted event does not say that %s was formatted as ext4 and mounted at %s: %q", link, path, note)
	}

	data := []byte("migration data " + volID)
	writeSynced(t, filepath.Join(path, "data.bin"), data)

	w.deleteAndWaitGone(mv, 20*time.Second)
	if n := len(testkit.MountsAt(t, path)); n != 0 {
		t.Fatalf("%d mounts left at %s after deletion", n, path)
	}
	for _, d := range []string{path, filepath.Dir(path)} {
		if _, err := os.Lstat(d); !isNotExist(err) {
			t.Errorf("%s left behind after deletion: %v", d, err)
		}
	}

	// The same disk for a new object: it holds ext4 now, so it is mounted, not formatted.
	again := w.newVolume("blank-again", "job-1", "disk-0", 1)
	w.attach(again, volID)
	w.waitMounted(again, metav1.ConditionTrue, osseav1.ReasonMounted, 30*time.Second)
	if b, err := os.ReadFile(filepath.Join(path, "data.bin")); err != nil || string(b) != string(data) {
		t.Fatalf("after unmount and re-mount the file reads %q, %v; want %q", b, err, data)
	}
	if note := w.waitEvent(again, corev1.EventTypeNormal, osseav1.ReasonMounted); !strings.Contains(note, "already held an ext4 filesystem, and nothing was formatted") {
		t.Errorf("the Mounted event does not say that the disk was mounted as it was: %q", note)
	}
	w.deleteAndWaitGone(again, 20*time.Second)
}

func TestBlankDeviceFormattedXFS(t *testing.T) {
	w := newWorld(t)
	w.startAgent()
	volID := uuid.NewString()
	dev := w.loopDevice(1 << 30)
	w.link(volID, dev)
	mv := w.newVolume("xfs", "job-x", "disk-0", 1, withFilesystem(osseav1.FilesystemXFS, osseav1.FormatIfBlank))
	w.attach(mv, volID)
	got := w.waitMounted(mv, metav1.ConditionTrue, osseav1.ReasonMounted, 30*time.Second)
	if got.Status.FilesystemType != "xfs" {
		t.Errorf("filesystemType %q, want xfs", got.Status.FilesystemType)
	}
	assertMountedRW(t, w.mountPath("job-x", "disk-0"), dev, "xfs")
	w.deleteAndWaitGone(mv, 20*time.Second)
}

// A disk that already holds a filesystem of the asked type is mounted as it is: same
// filesystem UUID, files intact, no Formatted event.
func TestExistingFilesystemMountedWithoutFormatting(t *testing.T) {
	w := newWorld(t)
	w.startAgent()
	for _, fsType := range []osseav1.FilesystemType{osseav1.FilesystemExt4, osseav1.FilesystemXFS} {
		t.Run(string(fsType), func(t *testing.T) {
			volID := uuid.NewString()
			dev := w.loopDevice(1 << 30)
			if fsType == osseav1.FilesystemExt4 {
				// mke2fs -d fills the new filesystem from a directory: data without a mount.
				src := t.TempDir()
				if err := os.WriteFile(filepath.Join(src, "restored.txt"), []byte("from the source disk"), 0o644); err != nil {
					t.Fatal(err)
				}
				run(t, "mkfs.ext4", "-q", "-d", src, dev)
			} else {
				run(t, "mkfs.xfs", "-q", dev)
			}
			fsUUID := run(t, "blkid", "-p", "-s", "UUID", "-o", "value", dev)
			w.link(volID, dev)
			disk := "disk-" + string(fsType)
			mv := w.newVolume("existing-"+string(fsType), "job-e", disk, 1, withFilesystem(fsType, osseav1.FormatIfBlank))
			w.attach(mv, volID)
			w.waitMounted(mv, metav1.ConditionTrue, osseav1.ReasonMounted, 30*time.Second)
			path := w.mountPath("job-e", disk)
			assertMountedRW(t, path, dev, string(fsType))
			if after := run(t, "blkid", "-p", "-s", "UUID", "-o", "value", dev); after != fsUUID {
				t.Errorf("filesystem UUID changed from %s to %s: the disk was formatted", fsUUID, after)
			}
			if fsType == osseav1.FilesystemExt4 {
				if b, err := os.ReadFile(filepath.Join(path, "restored.txt")); err != nil || string(b) != "from the source disk" {
					t.Errorf("restored.txt reads %q, %v", b, err)
				}
			}
			if note := w.waitEvent(mv, corev1.EventTypeNormal, osseav1.ReasonMounted); !strings.Contains(note, "nothing was formatted") {
				t.Errorf("the Mounted event of a disk that held %s does not say it was mounted as it was: %q", fsType, note)
			}
			w.deleteAndWaitGone(mv, 20*time.Second)
		})
	}
}

// Every disk the agent must not use is refused with its own reason and left exactly as it
// was. A volume attached to another VM is not even looked at.
func TestRefusedDevicesAreLeftUntouched(t *testing.T) {
	w := newWorld(t)
	w.startAgent()

	type refusal struct {
		name   string
		size   int64
		opts   []mvOption
		prep   func(t *testing.T, dev string)
		reason string
	}
	cases := []refusal{
		{name: "partition-table", size: 1 << 30, prep: writeMBR, reason: osseav1.ReasonDeviceNotBlank},
		{name: "wrong-size", size: 2 << 30, reason: osseav1.ReasonDeviceSizeMismatch},
		{name: "never-on-blank", size: 1 << 30, opts: []mvOption{withFilesystem(osseav1.FilesystemExt4, osseav1.FormatNever)}, reason: osseav1.ReasonDeviceBlank},
		{name: "xfs-asked-ext4", size: 1 << 30, prep: func(t *testing.T, dev string) { run(t, "mkfs.xfs", "-q", dev) },
			opts: []mvOption{withFilesystem(osseav1.FilesystemExt4, osseav1.FormatIfBlank)}, reason: osseav1.ReasonFilesystemMismatch},
		{name: "ext4-asked-xfs", size: 1 << 30, prep: func(t *testing.T, dev string) { run(t, "mkfs.ext4", "-q", dev) },
			opts: []mvOption{withFilesystem(osseav1.FilesystemXFS, osseav1.FormatIfBlank)}, reason: osseav1.ReasonFilesystemMismatch},
	}
	type prepared struct {
		refusal
		mv   *osseav1.MigrationVolume
		dev  string
		hash string
	}
	var all []prepared
	for _, c := range cases {
		dev := w.loopDevice(c.size)
		if c.prep != nil {
			c.prep(t, dev)
		}
		volID := uuid.NewString()
		w.link(volID, dev)
		mv := w.newVolume(c.name, "job-r", c.name, 1, c.opts...)
		all = append(all, prepared{refusal: c, mv: mv, dev: dev, hash: firstMiB(t, dev)})
		w.attach(mv, volID)
	}

	// Attached to some other VM, disk link present on this node: not this agent's.
	otherID := uuid.NewString()
	otherDev := w.loopDevice(1 << 30)
	w.link(otherID, otherDev)
	other := w.newVolume("other-vm", "job-r", "other", 1)
	otherHash := firstMiB(t, otherDev)
	w.updateStatus(other, func(st *osseav1.MigrationVolumeStatus) {
		st.VolumeID = otherID
		st.AttachedVirtualMachineID = uuid.NewString()
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: osseav1.ConditionAttached, Status: metav1.ConditionTrue, Reason: "Attached", Message: "elsewhere"})
	})

	for _, p := range all {
		t.Run(p.name, func(t *testing.T) {
			got := w.waitMounted(p.mv, metav1.ConditionFalse, p.reason, 30*time.Second)
			c := meta.FindStatusCondition(got.Status.Conditions, osseav1.ConditionMounted)
			t.Logf("%s: %s", c.Reason, c.Message)
			if !strings.Contains(c.Message, p.dev) {
				t.Errorf("the message does not name the device %s: %s", p.dev, c.Message)
			}
			note := w.waitEvent(p.mv, corev1.EventTypeWarning, p.reason)
			if note != c.Message {
				t.Errorf("event note %q differs from the condition message %q", note, c.Message)
			}
			path := w.mountPath("job-r", p.name)
			if n := len(testkit.MountsAt(t, path)); n != 0 {
				t.Errorf("%d mounts at %s", n, path)
			}
			if _, err := os.Lstat(path); !isNotExist(err) {
				t.Errorf("the mount directory was created for a refused disk: %v", err)
			}
			if got.Status.MountPath != "" || got.Status.FilesystemType != "" {
				t.Errorf("mountPath %q, filesystemType %q reported for a refused disk", got.Status.MountPath, got.Status.FilesystemType)
			}
			if !controllerutil.ContainsFinalizer(got, osseav1.MountFinalizer) {
				t.Errorf("no mount finalizer: it must be added before the disk is looked at")
			}
			if h := firstMiB(t, p.dev); h != p.hash {
				t.Errorf("the first MiB of %s changed", p.dev)
			}
			w.deleteAndWaitGone(p.mv, 20*time.Second)
			if h := firstMiB(t, p.dev); h != p.hash {
				t.Errorf("the first MiB of %s changed during teardown", p.dev)
			}
		})
	}

	if got := w.get(other); len(got.Finalizers) != 0 || meta.FindStatusCondition(got.Status.Conditions, osseav1.ConditionMounted) != nil || got.Status.NodeName != "" {
		t.Errorf("the volume of another VM was touched: finalizers %v, status %+v", got.Finalizers, got.Status)
	}
	if h := firstMiB(t, otherDev); h != otherHash {
		t.Errorf("the other VM's disk changed")
	}
}

// A disk that never appears is waited for (quietly: the timeout here is shorter than the
// grace before the wait is reported), then reported missing, and mounted the moment it
// does appear.
func TestDeviceNotFoundAfterTimeoutThenRecovers(t *testing.T) {
	w := newWorld(t)
	w.startAgent(func(r *Reconciler) { r.DeviceTimeout = 1500 * time.Millisecond })
	volID := uuid.NewString()
	mv := w.newVolume("late", "job-l", "disk-0", 1)
	w.attach(mv, volID)
	got := w.waitMounted(mv, metav1.ConditionFalse, osseav1.ReasonDeviceNotFound, 10*time.Second)
	msg := meta.FindStatusCondition(got.Status.Conditions, osseav1.ConditionMounted).Message
	if !strings.Contains(msg, guestdisk.LinkNames(volID)[0]) || !strings.Contains(msg, w.vmID) {
		t.Errorf("DeviceNotFound message names neither the link nor the VM: %s", msg)
	}
	w.waitEvent(mv, corev1.EventTypeWarning, osseav1.ReasonDeviceNotFound)

	dev := w.loopDevice(1 << 30)
	w.link(volID, dev)
	w.waitMounted(mv, metav1.ConditionTrue, osseav1.ReasonMounted, 30*time.Second)
	w.deleteAndWaitGone(mv, 20*time.Second)
}

// An agent killed while a volume is mounted and started again recognises the mount: no
// second mount, not one byte of the object changed.
func TestRestartWhileMountedDoesNotMountTwice(t *testing.T) {
	w := newWorld(t)
	first := w.startAgent()
	volID := uuid.NewString()
	dev := w.loopDevice(1 << 30)
	w.link(volID, dev)
	mv := w.newVolume("restart", "job-s", "disk-0", 1)
	w.attach(mv, volID)
	w.waitMounted(mv, metav1.ConditionTrue, osseav1.ReasonMounted, 30*time.Second)
	w.waitEvent(mv, corev1.EventTypeNormal, osseav1.ReasonMounted)
	path := w.mountPath("job-s", "disk-0")
	writeSynced(t, filepath.Join(path, "before-restart"), []byte("x"))

	first.stop() // cancels the manager mid-flight, like a kill: nothing is unmounted
	before := w.get(mv)
	if n := len(testkit.MountsAt(t, path)); n != 1 {
		t.Fatalf("%d mounts at %s after the agent stopped, want 1", n, path)
	}

	// A short resync, so the new agent looks at the mount many times.
	second := w.startAgent(func(r *Reconciler) { r.ResyncInterval = 200 * time.Millisecond })
	key := client.ObjectKeyFromObject(mv)
	testkit.Eventually(t, 20*time.Second, func() string {
		if n := second.reconciles(key); n < 5 {
			return fmt.Sprintf("the new agent reconciled the volume %d times, waiting for 5", n)
		}
		return ""
	})
	if n := len(testkit.MountsAt(t, path)); n != 1 {
		t.Errorf("%d mounts at %s after the restart, want 1", n, path)
	}
	after := w.get(mv)
	if after.ResourceVersion != before.ResourceVersion || !equality.Semantic.DeepEqual(before.Status, after.Status) {
		t.Errorf("the restart changed the object: resourceVersion %s -> %s\nbefore %+v\nafter  %+v",
			before.ResourceVersion, after.ResourceVersion, before.Status, after.Status)
	}
	if _, err := os.Stat(filepath.Join(path, "before-restart")); err != nil {
		t.Errorf("the file written before the restart is not visible: %v", err)
	}
	if n := countEvents(t, w, mv, osseav1.ReasonMounted); n != 1 {
		t.Errorf("%d Mounted events, want 1 (no second mount)", n)
	}
	w.deleteAndWaitGone(mv, 20*time.Second)
}

// A busy filesystem is never unmounted lazily: UnmountBusy, the finalizer stays, and as
// soon as the file is closed, teardown completes.
func TestBusyMountBlocksTeardownUntilReleased(t *testing.T) {
	w := newWorld(t)
	w.startAgent()
	volID := uuid.NewString()
	dev := w.loopDevice(1 << 30)
	w.link(volID, dev)
	mv := w.newVolume("busy", "job-b", "disk-0", 1)
	w.attach(mv, volID)
	w.waitMounted(mv, metav1.ConditionTrue, osseav1.ReasonMounted, 30*time.Second)
	path := w.mountPath("job-b", "disk-0")

	f, err := os.Create(filepath.Join(path, "open-file"))
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = f.Close()
		}
	})
	if err := k8s.Delete(testCtx, mv); err != nil {
		t.Fatal(err)
	}
	got := w.waitMounted(mv, metav1.ConditionFalse, osseav1.ReasonUnmountBusy, 20*time.Second)
	t.Logf("UnmountBusy: %s", meta.FindStatusCondition(got.Status.Conditions, osseav1.ConditionMounted).Message)
	w.waitEvent(mv, corev1.EventTypeWarning, osseav1.ReasonUnmountBusy)

	// Several retries (the backoff is capped at 500ms here) change nothing while busy.
	time.Sleep(2 * time.Second)
	got = w.get(mv)
	if !controllerutil.ContainsFinalizer(got, osseav1.MountFinalizer) {
		t.Fatal("the mount finalizer was removed while the filesystem is busy")
	}
	if n := len(testkit.MountsAt(t, path)); n != 1 {
		t.Fatalf("%d mounts at %s while busy, want 1 (a lazy unmount would show 0)", n, path)
	}
	if _, err := f.WriteString("still writing"); err != nil {
		t.Fatalf("writing to the busy filesystem: %v", err)
	}

	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	w.waitGone(mv, 20*time.Second)
	if n := len(testkit.MountsAt(t, path)); n != 0 {
		t.Errorf("%d mounts at %s after release", n, path)
	}
	if _, err := os.Lstat(path); !isNotExist(err) {
		t.Errorf("mount directory left: %v", err)
	}
}

// Block mode: the disk is found, verified and published; never formatted, never mounted,
// no finalizer. Its whole life costs the agent one status write and one event.
func TestBlockModePublishesWithoutTouching(t *testing.T) {
	w := newWorld(t)
	writes := &writeCounter{}
	w.startAgent(countWrites(writes))
	volID := uuid.NewString()
	dev := w.loopDevice(1 << 30)
	link := w.link(volID, dev)
	hash := firstMiB(t, dev)
	mv := w.newVolume("block", "job-k", "disk-0", 1, blockMode)
	w.attach(mv, volID)
	got := w.waitMounted(mv, metav1.ConditionTrue, osseav1.ReasonPublished, 30*time.Second)
	if got.Status.DevicePath != link || got.Status.MountPath != "" || got.Status.FilesystemType != "" || got.Status.NodeName != w.nodeName {
		t.Errorf("status %+v: want devicePath %s, no mountPath, no filesystemType", got.Status, link)
	}
	if len(got.Finalizers) != 0 {
		t.Errorf("finalizers %v in Block mode, want none", got.Finalizers)
	}
	w.waitEvent(mv, corev1.EventTypeNormal, osseav1.ReasonPublished)
	if _, err := os.Lstat(filepath.Join(w.mountRoot, "job-k")); !isNotExist(err) {
		t.Errorf("a mount directory was made in Block mode: %v", err)
	}
	if h := firstMiB(t, dev); h != hash {
		t.Error("the device changed in Block mode")
	}
	if ms, _ := mountsOfDevice(&Device{Major: major(t, dev), Minor: minor(t, dev)}); len(ms) != 0 {
		t.Errorf("the block device is mounted at %s", mountPoints(ms))
	}
	w.deleteAndWaitGone(mv, 10*time.Second)
	if got := writes.take(); !maps.Equal(got, map[string]int{"status": 1}) {
		t.Errorf("the agent wrote %v in the volume's life; want one status write (Published)", got)
	}
	time.Sleep(time.Second) // events are sent in the background
	if n := countEvents(t, w, mv, osseav1.ReasonPublished); n != 1 {
		t.Errorf("%d Published events, want 1", n)
	}
}

// The agent's status writes never revert the manager's: while the agent goes from waiting
// to mounted, the test (as the manager) rewrites its own condition again and again; the
// last manager write is what remains.
func TestStatusWritesNeverClobberTheManager(t *testing.T) {
	w := newWorld(t)
	w.startAgent()
	volID := uuid.NewString()
	mv := w.newVolume("shared", "job-c", "disk-0", 1)
	w.attach(mv, volID)
	w.waitMounted(mv, metav1.ConditionFalse, osseav1.ReasonWaitingForDevice, 20*time.Second)

	dev := w.loopDevice(1 << 30)
	const writes = 40
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= writes; i++ {
			w.updateStatus(mv.DeepCopy(), func(st *osseav1.MigrationVolumeStatus) {
				meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: osseav1.ConditionAllocated,
					Status: metav1.ConditionTrue, Reason: "Created", Message: fmt.Sprintf("manager write %d", i)})
				st.CloudStackState = fmt.Sprintf("Ready-%d", i)
			})
			if i == 5 {
				w.link(volID, dev) // the agent mounts while the manager keeps writing
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	<-done
	got := w.waitMounted(mv, metav1.ConditionTrue, osseav1.ReasonMounted, 30*time.Second)
	alloc := meta.FindStatusCondition(got.Status.Conditions, osseav1.ConditionAllocated)
	if alloc == nil || alloc.Message != fmt.Sprintf("manager write %d", writes) || got.Status.CloudStackState != fmt.Sprintf("Ready-%d", writes) {
		t.Errorf("the manager's last write was reverted: Allocated %+v, cloudStackState %q", alloc, got.Status.CloudStackState)
	}
	if a := meta.FindStatusCondition(got.Status.Conditions, osseav1.ConditionAttached); a == nil || a.Status != metav1.ConditionTrue {
		t.Errorf("Attached lost: %+v", a)
	}
	w.deleteAndWaitGone(mv, 20*time.Second)
}

// A disk that leaves the node while mounted (detached outside the operator) leaves a dead
// mount; the agent releases it even though the object has left its cache, and mounts the
// disk again when it is attached again. The same holds when it happens while the agent is
// down.
func TestDetachedWhileMountedIsReleased(t *testing.T) {
	w := newWorld(t)
	a := w.startAgent()
	volID := uuid.NewString()
	dev := w.loopDevice(1 << 30)
	link := w.link(volID, dev)
	mv := w.newVolume("detached", "job-d", "disk-0", 1)
	w.attach(mv, volID)
	w.waitMounted(mv, metav1.ConditionTrue, osseav1.ReasonMounted, 30*time.Second)
	path := w.mountPath("job-d", "disk-0")
	writeSynced(t, filepath.Join(path, "kept"), []byte("kept"))

	detach := func() {
		if err := os.Remove(link); err != nil {
			t.Fatal(err)
		}
		w.updateStatus(mv, func(st *osseav1.MigrationVolumeStatus) {
			st.AttachedVirtualMachineID = ""
			st.DevicePath = ""
			meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: osseav1.ConditionAttached, Status: metav1.ConditionFalse, Reason: "NotAttached", Message: "detached"})
		})
	}
	released := func() {
		t.Helper()
		w.waitMounted(mv, metav1.ConditionFalse, osseav1.ReasonDeviceDetached, 20*time.Second)
		testkit.Eventually(t, 10*time.Second, func() string {
			got := w.get(mv)
			if controllerutil.ContainsFinalizer(got, osseav1.MountFinalizer) || got.Status.MountPath != "" {
				return fmt.Sprintf("after release: finalizers %v, mountPath %q", got.Finalizers, got.Status.MountPath)
			}
			return ""
		})
	}
	detach()
	released()
	if n := len(testkit.MountsAt(t, path)); n != 0 {
		t.Errorf("%d mounts left at %s", n, path)
	}

	w.link(volID, dev)
	w.attach(mv, volID)
	w.waitMounted(mv, metav1.ConditionTrue, osseav1.ReasonMounted, 30*time.Second)
	if b, err := os.ReadFile(filepath.Join(path, "kept")); err != nil || string(b) != "kept" {
		t.Fatalf("after re-attachment the file reads %q, %v", b, err)
	}

	// Again, with the agent down while it happens: the startup scan finds it.
	a.stop()
	detach()
	w.startAgent()
	released()
	if n := len(testkit.MountsAt(t, path)); n != 0 {
		t.Errorf("%d mounts left at %s after the restarted agent released it", n, path)
	}
	w.deleteAndWaitGone(mv, 10*time.Second)
}

// A volume claimed and mounted by an agent older than the claim label (its finalizer and
// status.nodeName, no label) is still this node's: a restarted agent leaves it as it is
// (it is not claimed again: no write), and releases it when it is deleted, even when it
// was detached and deleted while the agent was down and so is outside its cache (the
// startup scan finds it).
func TestOlderAgentsClaimIsStillHeld(t *testing.T) {
	w := newWorld(t)
	first := w.startAgent()
	volID := uuid.NewString()
	link := w.link(volID, w.loopDevice(1<<30))
	mv := w.newVolume("older", "job-o", "disk-0", 1)
	w.attach(mv, volID)
	w.waitMounted(mv, metav1.ConditionTrue, osseav1.ReasonMounted, 30*time.Second)
	path := w.mountPath("job-o", "disk-0")
	first.stop()

	// As an agent before the label left it.
	got := w.get(mv)
	base := got.DeepCopy()
	delete(got.Labels, osseav1.NodeLabel)
	if err := k8s.Patch(testCtx, got, client.MergeFrom(base)); err != nil {
		t.Fatal(err)
	}
	if got := w.get(mv); got.Labels[osseav1.NodeLabel] != "" || got.Status.NodeName != w.nodeName || !controllerutil.ContainsFinalizer(got, osseav1.MountFinalizer) {
		t.Fatalf("not as an older agent claims: labels %v, nodeName %q, finalizers %v", got.Labels, got.Status.NodeName, got.Finalizers)
	}

	writes := &writeCounter{}
	second := w.startAgent(countWrites(writes), func(r *Reconciler) { r.ResyncInterval = 200 * time.Millisecond })
	key := client.ObjectKeyFromObject(mv)
	testkit.Eventually(t, 20*time.Second, func() string {
		if n := second.reconciles(key); n < 3 {
			return fmt.Sprintf("the new agent reconciled the volume %d times, waiting for 3", n)
		}
		return ""
	})
	if got := writes.take(); len(got) != 0 {
		t.Errorf("the new agent wrote %v to a volume an older agent holds; want nothing", got)
	}
	if n := len(testkit.MountsAt(t, path)); n != 1 {
		t.Fatalf("%d mounts at %s, want 1", n, path)
	}
	second.stop()

	// Detached and deleted while no agent runs: the object leaves the agent's cache.
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	w.updateStatus(mv, func(st *osseav1.MigrationVolumeStatus) { st.AttachedVirtualMachineID = "" })
	if err := k8s.Delete(testCtx, mv); err != nil {
		t.Fatal(err)
	}
	w.startAgent()
	w.waitGone(mv, 20*time.Second)
	if n := len(testkit.MountsAt(t, path)); n != 0 {
		t.Errorf("%d mounts left at %s after the release", n, path)
	}
}

// An agent stopped between the unmount of a deleted volume and letting go of it (the one
// write of the release) finds the volume still held when it starts again, and lets go:
// with nothing mounted, the release is that one write and nothing else.
func TestRestartBetweenUnmountAndLettingGo(t *testing.T) {
	w := newWorld(t)
	first := w.startAgent()
	volID := uuid.NewString()
	w.link(volID, w.loopDevice(1<<30))
	mv := w.newVolume("half-released", "job-h", "disk-0", 1)
	w.attach(mv, volID)
	w.waitMounted(mv, metav1.ConditionTrue, osseav1.ReasonMounted, 30*time.Second)
	path := w.mountPath("job-h", "disk-0")
	first.stop()

	// As the stopped agent left it: unmounted, still held, the object deleted.
	run(t, "umount", path)
	if err := k8s.Delete(testCtx, mv); err != nil {
		t.Fatal(err)
	}
	if got := w.get(mv); !holds(got, w.vmID, w.nodeName) {
		t.Fatalf("not held after the delete: finalizers %v, labels %v", got.Finalizers, got.Labels)
	}

	writes := &writeCounter{}
	w.startAgent(countWrites(writes))
	w.waitGone(mv, 20*time.Second)
	if got := writes.take(); !maps.Equal(got, map[string]int{"object": 1}) {
		t.Errorf("the release after the restart wrote %v; want only the finalizer and the claim let go, %v", got, map[string]int{"object": 1})
	}
	if _, err := os.Stat(path); !isNotExist(err) {
		t.Errorf("the mount directory is still there after the release: %v", err)
	}
}

// On delete the agent lets go in one write and leaves its report as it was, unless the
// report says a person must act: a refused disk's is corrected to Unmounted first, so that
// the volume does not look Stalled while the manager detaches and deletes it. (The test
// holds the manager's finalizer, so that the objects stay to be looked at.)
func TestDeleteReleaseCorrectsOnlyAReportThatAPersonMustAct(t *testing.T) {
	w := newWorld(t)
	w.startAgent()
	managerHolds := func(mv *osseav1.MigrationVolume) { mv.Finalizers = append(mv.Finalizers, osseav1.VolumeFinalizer) }

	volID := uuid.NewString()
	w.link(volID, w.loopDevice(1<<30))
	mounted := w.newVolume("mounted", "job-k", "disk-0", 1, managerHolds)
	w.attach(mounted, volID)
	w.waitMounted(mounted, metav1.ConditionTrue, osseav1.ReasonMounted, 30*time.Second)

	refusedID := uuid.NewString()
	dev := w.loopDevice(1 << 30)
	writeMBR(t, dev)
	w.link(refusedID, dev)
	refused := w.newVolume("refused", "job-k", "disk-1", 1, managerHolds)
	w.attach(refused, refusedID)
	w.waitMounted(refused, metav1.ConditionFalse, osseav1.ReasonDeviceNotBlank, 30*time.Second)

	for _, mv := range []*osseav1.MigrationVolume{mounted, refused} {
		if err := k8s.Delete(testCtx, mv); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 20*time.Second, func() string {
			if got := w.get(mv); controllerutil.ContainsFinalizer(got, osseav1.MountFinalizer) || got.Labels[osseav1.NodeLabel] != "" {
				return fmt.Sprintf("%s not let go: finalizers %v, labels %v", mv.Name, got.Finalizers, got.Labels)
			}
			return ""
		})
	}
	if n := len(testkit.MountsAt(t, w.mountPath("job-k", "disk-0"))); n != 0 {
		t.Errorf("%d mounts left after the release", n)
	}
	if c := meta.FindStatusCondition(w.get(mounted).Status.Conditions, osseav1.ConditionMounted); c == nil || c.Reason != osseav1.ReasonMounted {
		t.Errorf("the release of a mounted volume wrote its status: Mounted %+v; want the last report, Mounted", c)
	}
	if c := meta.FindStatusCondition(w.get(refused).Status.Conditions, osseav1.ConditionMounted); c == nil || c.Reason != osseav1.ReasonUnmounted {
		t.Errorf("the release of a refused disk left Mounted %+v; want Unmounted", c)
	}

	for _, mv := range []*osseav1.MigrationVolume{mounted, refused} {
		got := w.get(mv)
		base := got.DeepCopy()
		controllerutil.RemoveFinalizer(got, osseav1.VolumeFinalizer)
		if err := k8s.Patch(testCtx, got, client.MergeFrom(base)); err != nil {
			t.Fatal(err)
		}
		w.waitGone(mv, 10*time.Second)
	}
}

// writeMBR writes a DOS partition table with one Linux partition.
func writeMBR(t *testing.T, dev string) {
	t.Helper()
	mbr := make([]byte, 512)
	entry := mbr[446:462]
	entry[4] = 0x83 // Linux
	binary.LittleEndian.PutUint32(entry[8:], 2048)
	binary.LittleEndian.PutUint32(entry[12:], 1<<20)
	mbr[510], mbr[511] = 0x55, 0xAA
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(mbr, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if pt := run(t, "blkid", "-p", "-s", "PTTYPE", "-o", "value", dev); pt != "dos" {
		t.Fatalf("blkid sees partition table %q, want dos", pt)
	}
}

func writeSynced(t *testing.T, p string, data []byte) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// assertMountedRW checks the mount table: exactly one mount at path, of dev, of fsType,
// read-write, without set-uid programs or device files.
func assertMountedRW(t *testing.T, path, dev, fsType string) {
	t.Helper()
	ms, err := mountinfo.GetMounts(func(i *mountinfo.Info) (bool, bool) { return i.Mountpoint != path, false })
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 {
		t.Fatalf("%d mounts at %s, want 1", len(ms), path)
	}
	m := ms[0]
	opts := strings.Split(m.Options, ",")
	if m.FSType != fsType || m.Major != int(major(t, dev)) || m.Minor != int(minor(t, dev)) ||
		!slices.Contains(opts, "rw") || !slices.Contains(opts, "nosuid") || !slices.Contains(opts, "nodev") {
		t.Errorf("mount at %s: %s %d:%d options %s; want %s of %s, rw,nosuid,nodev", path, m.FSType, m.Major, m.Minor, m.Options, fsType, dev)
	}
}

func major(t *testing.T, dev string) uint32 {
	d, err := describeBlockDevice(dev)
	if err != nil {
		t.Fatal(err)
	}
	return d.Major
}

func minor(t *testing.T, dev string) uint32 {
	d, err := describeBlockDevice(dev)
	if err != nil {
		t.Fatal(err)
	}
	return d.Minor
}

// countEvents counts the occurrences of events with the reason about the object,
// including repeats the events API folded into a series.
func countEvents(t *testing.T, w *world, mv *osseav1.MigrationVolume, reason string) int {
	t.Helper()
	return countEventsWhere(t, w, mv, func(e eventsv1.Event) bool { return e.Reason == reason })
}

// countFormats counts the mounts of the object whose event says the disk was formatted.
func countFormats(t *testing.T, w *world, mv *osseav1.MigrationVolume) int {
	t.Helper()
	return countEventsWhere(t, w, mv, func(e eventsv1.Event) bool {
		return e.Reason == osseav1.ReasonMounted && strings.HasPrefix(e.Note, "Formatted ")
	})
}

func countEventsWhere(t *testing.T, w *world, mv *osseav1.MigrationVolume, match func(eventsv1.Event) bool) int {
	t.Helper()
	var evs eventsv1.EventList
	if err := k8s.List(testCtx, &evs, client.InNamespace(w.ns)); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs.Items {
		if e.Regarding.Name == mv.Name && match(e) {
			n++
			if e.Series != nil {
				n += int(e.Series.Count) - 1
			}
		}
	}
	return n
}

// udev rewriting a disk's links while it is mounted (remove, then create) changes nothing:
// no second mount, no DeviceNotFound, no Warning event.
func TestLinkFlapWhileMountedKeepsTheMount(t *testing.T) {
	w := newWorld(t)
	w.startAgent(func(r *Reconciler) { r.DeviceTimeout = time.Second })
	volID := uuid.NewString()
	dev := w.loopDevice(1 << 30)
	link := w.link(volID, dev)
	mv := w.newVolume("flap", "job-f", "disk-0", 1)
	w.attach(mv, volID)
	w.waitMounted(mv, metav1.ConditionTrue, osseav1.ReasonMounted, 30*time.Second)
	before := w.get(mv)

	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // past the device timeout
	w.link(volID, dev)
	time.Sleep(500 * time.Millisecond)

	after := w.get(mv)
	if after.ResourceVersion != before.ResourceVersion {
		t.Errorf("the status changed while the link flapped: %+v", after.Status)
	}
	if n := len(testkit.MountsAt(t, w.mountPath("job-f", "disk-0"))); n != 1 {
		t.Errorf("%d mounts, want 1", n)
	}
	if note := w.findEvent(mv, corev1.EventTypeWarning, osseav1.ReasonDeviceNotFound); note != "" {
		t.Errorf("Warning event for a link that only flapped: %s", note)
	}
	w.deleteAndWaitGone(mv, 20*time.Second)
}

// Two objects that name the same disk (a bug elsewhere, or a hand-made object): the disk
// is formatted at most once and mounted at one place only; the other is refused.
func TestSameDiskForTwoObjectsMountsOnce(t *testing.T) {
	w := newWorld(t)
	w.startAgent()
	volID := uuid.NewString()
	dev := w.loopDevice(1 << 30)
	w.link(volID, dev)
	a := w.newVolume("twin-a", "job-t", "disk-a", 1)
	b := w.newVolume("twin-b", "job-t", "disk-b", 1)
	w.attach(a, volID)
	w.attach(b, volID)

	var mounted, refused *osseav1.MigrationVolume
	testkit.Eventually(t, 30*time.Second, func() string {
		mounted, refused = nil, nil
		for _, mv := range []*osseav1.MigrationVolume{a, b} {
			c := meta.FindStatusCondition(w.get(mv).Status.Conditions, osseav1.ConditionMounted)
			switch {
			case c == nil:
			case c.Status == metav1.ConditionTrue:
				mounted = mv
			case c.Reason == osseav1.ReasonDeviceInUse:
				refused = mv
			}
		}
		if mounted == nil || refused == nil {
			return fmt.Sprintf("want one Mounted and one DeviceInUse; have mounted %v, refused %v", mounted != nil, refused != nil)
		}
		return ""
	})
	if n := countFormats(t, w, a) + countFormats(t, w, b); n != 1 {
		t.Errorf("formatted %d times, want once", n)
	}
	if ms, _ := mountsOfDevice(&Device{Major: major(t, dev), Minor: minor(t, dev)}); len(ms) != 1 {
		t.Errorf("the disk is mounted at %s; want one place", mountPoints(ms))
	}
	w.deleteAndWaitGone(refused, 20*time.Second)
	w.deleteAndWaitGone(mounted, 20*time.Second)
}

// attaching plays the manager starting an attach job: the volume names this world's VM,
// and Attached is False until the job is seen done.
func (w *world) attaching(mv *osseav1.MigrationVolume, volumeID string) {
	w.t.Helper()
	w.updateStatus(mv, func(st *osseav1.MigrationVolumeStatus) {
		st.VolumeID = volumeID
		st.AttachedVirtualMachineID = w.vmID
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: osseav1.ConditionAttached, Status: metav1.ConditionFalse,
			Reason: "Attaching", Message: "attaching, says the test", ObservedGeneration: mv.Generation})
	})
}

// TestClaimedWhileAttaching: a volume is claimed (label, finalizer) while its attach job
// runs, and mounted as soon as its disk appears, before the manager has seen the job
// finish. An attach that is slow is reported as waited for once the grace after the claim
// has passed, not before. A claim whose attach fails is let go without a warning.
func TestClaimedWhileAttaching(t *testing.T) {
	w := newWorld(t)
	w.startAgent()
	claimed := func(mv *osseav1.MigrationVolume) {
		t.Helper()
		var at time.Time
		testkit.Eventually(t, 10*time.Second, func() string {
			got := w.get(mv)
			if !controllerutil.ContainsFinalizer(got, osseav1.MountFinalizer) || got.Labels[osseav1.NodeLabel] != w.nodeName {
				return fmt.Sprintf("while attaching: finalizers %v, labels %v; want the claim of node %s", got.Finalizers, got.Labels, w.nodeName)
			}
			at = time.Now()
			if c := meta.FindStatusCondition(got.Status.Conditions, osseav1.ConditionMounted); c != nil {
				t.Errorf("the claim came with a report, before the grace: Mounted %+v", c)
			}
			return ""
		})
		got := w.waitMounted(mv, metav1.ConditionFalse, osseav1.ReasonWaitingForDevice, 20*time.Second)
		// The grace is counted from the API server's stamp on the claim, in whole seconds.
		if waited := time.Since(at); waited < deviceWaitGrace-time.Second {
			t.Errorf("the wait for the disk was reported %s after the claim; want no sooner than the grace, %s", waited, deviceWaitGrace)
		}
		c := meta.FindStatusCondition(got.Status.Conditions, osseav1.ConditionMounted)
		if got.Status.NodeName != w.nodeName || !strings.Contains(c.Message, "waiting for the disk of CloudStack volume") {
			t.Errorf("while attaching: nodeName %q, Mounted %+v; want the wait for the disk reported by node %s", got.Status.NodeName, c, w.nodeName)
		}
	}

	volID := uuid.NewString()
	mv := w.newVolume("early", "job-e", "disk-0", 1)
	w.attaching(mv, volID)
	claimed(mv)
	dev := w.loopDevice(1 << 30)
	w.link(volID, dev)
	got := w.waitMounted(mv, metav1.ConditionTrue, osseav1.ReasonMounted, 20*time.Second)
	if meta.IsStatusConditionTrue(got.Status.Conditions, osseav1.ConditionAttached) {
		t.Fatal("the test never reported the attach done, yet Attached is True")
	}
	path := w.mountPath("job-e", "disk-0")
	if n := len(testkit.MountsAt(t, path)); n != 1 {
		t.Fatalf("%d mounts at %s, want 1", n, path)
	}
	w.attach(mv, volID) // the manager sees the job done: nothing changes on the node
	w.waitMounted(mv, metav1.ConditionTrue, osseav1.ReasonMounted, 5*time.Second)
	if n := len(testkit.MountsAt(t, path)); n != 1 {
		t.Fatalf("%d mounts at %s after the attach was confirmed, want 1", n, path)
	}

	// The attach job fails: the manager stops naming the VM, and the claim goes.
	failed := w.newVolume("failed", "job-e", "disk-1", 1)
	w.attaching(failed, uuid.NewString())
	claimed(failed)
	w.updateStatus(failed, func(st *osseav1.MigrationVolumeStatus) {
		st.AttachedVirtualMachineID = ""
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: osseav1.ConditionAttached, Status: metav1.ConditionFalse,
			Reason: "CloudStackError", Message: "the attach job failed, says the test", ObservedGeneration: failed.Generation})
	})
	w.waitMounted(failed, metav1.ConditionFalse, osseav1.ReasonNotAttached, 20*time.Second)
	testkit.Eventually(t, 10*time.Second, func() string {
		if got := w.get(failed); controllerutil.ContainsFinalizer(got, osseav1.MountFinalizer) || got.Labels[osseav1.NodeLabel] != "" {
			return fmt.Sprintf("the failed attach still carries the claim: finalizers %v, labels %v", got.Finalizers, got.Labels)
		}
		return ""
	})
	if note := w.findEvent(failed, corev1.EventTypeWarning, osseav1.ReasonDeviceDetached); note != "" {
		t.Errorf("a claim that never mounted was reported as a disk lost while mounted: %s", note)
	}
	if _, err := os.Stat(w.mountPath("job-e", "disk-1")); !isNotExist(err) {
		t.Errorf("a mount directory was made for the failed attach: %v", err)
	}

	// Block mode has nothing to claim: its disk is published once it is there.
	blk := w.newVolume("early-block", "job-e", "disk-2", 1, blockMode)
	blkID := uuid.NewString()
	w.attaching(blk, blkID)
	w.link(blkID, w.loopDevice(1<<30))
	if got := w.waitMounted(blk, metav1.ConditionTrue, osseav1.ReasonPublished, 20*time.Second); controllerutil.ContainsFinalizer(got, osseav1.MountFinalizer) ||
		got.Labels[osseav1.NodeLabel] != "" {
		t.Errorf("a Block-mode volume was claimed: finalizers %v, labels %v", got.Finalizers, got.Labels)
	}

	w.deleteAndWaitGone(blk, 10*time.Second)
	w.deleteAndWaitGone(failed, 10*time.Second)
	w.deleteAndWaitGone(mv, 20*time.Second)
	if n := len(testkit.MountsAt(t, path)); n != 0 {
		t.Errorf("%d mounts left at %s after delete", n, path)
	}
}

// One volume's life on the node costs the API server what the agent has to say, each once:
// the claim (the label naming its node, with the mount finalizer, in one write, while the
// attach runs), the Mounted report, the release (the finalizer and the label removed in
// one write), and one event, Mounted, which says the disk was formatted. The rest would
// only repeat something: a disk that appears within the grace after the claim is not
// reported waited for, the attach seen done changes nothing, and the unmount on delete is
// said by the finalizer's going (the manager's detach follows it). Reconciles the watches
// bring in between write nothing.
func TestOneLifecycleWritesEachThingOnce(t *testing.T) {
	w := newWorld(t)
	writes := &writeCounter{}
	a := w.startAgent(countWrites(writes))
	volID := uuid.NewString()
	mv := w.newVolume("lifecycle", "job-w", "disk-0", 1)
	key := client.ObjectKeyFromObject(mv)
	step := func(name string, want map[string]int) {
		t.Helper()
		if got := writes.take(); !maps.Equal(got, want) {
			t.Errorf("%s: the agent wrote %v; want %v", name, got, want)
		}
	}

	w.attaching(mv, volID)
	testkit.Eventually(t, 20*time.Second, func() string {
		got := w.get(mv)
		if !controllerutil.ContainsFinalizer(got, osseav1.MountFinalizer) || got.Labels[osseav1.NodeLabel] != w.nodeName {
			return fmt.Sprintf("finalizers %v, labels %v: not claimed yet", got.Finalizers, got.Labels)
		}
		return ""
	})
	step("the claim", map[string]int{"object": 1})
	// The agent looks at each change the manager makes; this makes sure it has.
	managerWrites := func(change func(*osseav1.MigrationVolumeStatus)) {
		t.Helper()
		seen := a.reconciles(key)
		w.updateStatus(mv, change)
		testkit.Eventually(t, 10*time.Second, func() string {
			if n := a.reconciles(key); n <= seen {
				return "the agent has not looked at the manager's write yet"
			}
			return ""
		})
	}

	// The manager sees the attach done before the disk shows up: the agent still waits for
	// it, and has nothing new to say.
	managerWrites(func(st *osseav1.MigrationVolumeStatus) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: osseav1.ConditionAttached, Status: metav1.ConditionTrue,
			Reason: "Attached", Message: "attached, says the test", ObservedGeneration: mv.Generation})
	})
	step("the attach confirmed, the disk not there yet", map[string]int{})

	w.link(volID, w.loopDevice(1<<30))
	w.waitMounted(mv, metav1.ConditionTrue, osseav1.ReasonMounted, 30*time.Second)
	managerWrites(func(st *osseav1.MigrationVolumeStatus) { st.Phase = osseav1.PhaseMounted })
	step("the mount, and a write of the manager's after it", map[string]int{"status": 1})

	w.deleteAndWaitGone(mv, 20*time.Second)
	step("the release", map[string]int{"object": 1})

	note := w.waitEvent(mv, corev1.EventTypeNormal, osseav1.ReasonMounted)
	time.Sleep(time.Second) // events are sent in the background
	var evs eventsv1.EventList
	if err := k8s.List(testCtx, &evs, client.InNamespace(w.ns)); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs.Items {
		if e.Regarding.Name == mv.Name {
			got = append(got, e.Type+" "+e.Reason+": "+e.Note)
		}
	}
	if len(got) != 1 || !strings.HasPrefix(note, "Formatted blank device ") {
		t.Errorf("events of the volume: %q; want one, Normal Mounted, saying the blank disk was formatted", got)
	}
}
