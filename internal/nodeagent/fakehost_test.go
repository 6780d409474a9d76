package nodeagent

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
	"github.com/migratekit/ossea-operator/internal/testenv"
)

// The reconciler wired to a fake host and controller-runtime's fake client: fast checks,
// without root or an API server, that it acts on its decisions in the right order (the
// size check before any probe, nothing written to a refused device, no second mount, a
// busy unmount holding the finalizer). They stand beside the real-device tests in
// agent_test.go, which prove the same on loop devices, mkfs and mount; never instead.

// fakeHost is a node in memory. It records every operation that changes something, and
// every probe, so a test can say what must not have happened.
type fakeHost struct {
	mu       sync.Mutex
	devices  map[string]*Device     // volume id -> its disk, present
	contents map[string]diskContent // device path -> what it holds
	marks    map[string]types.UID   // volume id -> format started for the object
	mounts   []*mountinfo.Info      // the mount table, in mount order
	busy     map[string]bool        // mount point -> unmount refused, busy
	ops      []string               // "probe /dev/vdb", "format /dev/vdb ext4 redo=false", ...
	failNext map[string]error       // operation name -> error for its next call
	formatTo map[string]diskContent // device path -> what a format leaves, when not the asked type
}

var _ host = (*fakeHost)(nil)

func newFakeHost() *fakeHost {
	return &fakeHost{devices: map[string]*Device{}, contents: map[string]diskContent{}, marks: map[string]types.UID{},
		busy: map[string]bool{}, failNext: map[string]error{}, formatTo: map[string]diskContent{}}
}

// addDisk makes the volume's disk appear holding content.
func (h *fakeHost) addDisk(volumeID, path string, size int64, minor uint32, content diskContent) *Device {
	h.mu.Lock()
	defer h.mu.Unlock()
	dev := &Device{Link: "/dev/disk/by-id/" + LinkNames(volumeID)[0], Path: path, Size: size, Major: 252, Minor: minor}
	h.devices[volumeID], h.contents[path] = dev, content
	return dev
}

func (h *fakeHost) record(op string, args ...any) error {
	h.ops = append(h.ops, strings.TrimSpace(op+" "+fmt.Sprint(args...)))
	if err := h.failNext[op]; err != nil {
		delete(h.failNext, op)
		return err
	}
	return nil
}

// did lists the operations of the given names, in order.
func (h *fakeHost) did(names ...string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, op := range h.ops {
		if slices.Contains(names, strings.Fields(op)[0]) {
			out = append(out, op)
		}
	}
	return out
}

func (h *fakeHost) findDevice(volumeID string) (*Device, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if d := h.devices[volumeID]; d != nil {
		c := *d
		return &c, nil
	}
	return nil, nil
}

func (h *fakeHost) probe(dev *Device, volumeID string, uid types.UID) (diskContent, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.record("probe", dev.Path); err != nil {
		return diskContent{}, err
	}
	c := h.contents[dev.Path]
	c.interrupted = h.marks[volumeID] == uid
	return c, nil
}

func (h *fakeHost) format(_ context.Context, dev *Device, fsType, volumeID string, uid types.UID, redo bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.marks[volumeID] = uid
	if err := h.record("format", dev.Path, " ", fsType, " redo=", redo); err != nil {
		return err
	}
	// What real mkfs does without a force flag: refuse a device that holds something.
	if c := h.contents[dev.Path]; !redo && c.kind != contentBlank {
		return fmt.Errorf("mkfs.%s: %s contains %s", fsType, dev.Path, c)
	}
	h.contents[dev.Path] = diskContent{kind: contentFilesystem, fsType: fsType}
	if c, ok := h.formatTo[dev.Path]; ok {
		h.contents[dev.Path] = c
	}
	return nil
}

func (h *fakeHost) forgetFormat(volumeID string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.marks, volumeID)
	return nil
}

func (h *fakeHost) mount(dev *Device, path, fsType string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.record("mount", dev.Path, " ", path, " ", fsType); err != nil {
		return err
	}
	if c := h.contents[dev.Path]; c.kind != contentFilesystem || c.fsType != fsType {
		return fmt.Errorf("mount: %s holds %s, not %s", dev.Path, c, fsType)
	}
	h.mounts = append(h.mounts, &mountinfo.Info{Major: int(dev.Major), Minor: int(dev.Minor), Mountpoint: path, FSType: fsType,
		Source: dev.Path, Options: strings.Join(mountOptions, ",")})
	return nil
}

func (h *fakeHost) unmount(path string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.record("unmount", path); err != nil {
		return err
	}
	if h.busy[path] {
		return fmt.Errorf("unmounting %s: %w", path, ErrBusy)
	}
	for i := len(h.mounts) - 1; i >= 0; i-- {
		if h.mounts[i].Mountpoint == path {
			h.mounts = slices.Delete(h.mounts, i, i+1)
			return nil
		}
	}
	return nil // not a mount point: done, as umount(2)'s EINVAL
}

func (h *fakeHost) mountsAt(path string) ([]*mountinfo.Info, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*mountinfo.Info
	for _, m := range h.mounts {
		if m.Mountpoint == path {
			out = append(out, m)
		}
	}
	return out, nil
}

func (h *fakeHost) mountsOfDevice(dev *Device) ([]*mountinfo.Info, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*mountinfo.Info
	for _, m := range h.mounts {
		if isDevice(m, dev) {
			out = append(out, m)
		}
	}
	return out, nil
}

// fakeNode is one agent on a fake host with a fake client.
type fakeNode struct {
	t      *testing.T
	r      *Reconciler
	host   *fakeHost
	client client.Client
	events *events.FakeRecorder
}

const fakeVMID = "9c1e4b7d-2a6f-4d3c-8e5b-000000000001"

func newFakeNode(t *testing.T, objs ...client.Object) *fakeNode {
	t.Helper()
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(testenv.NewScheme()).
		WithStatusSubresource(&osseav1.MigrationVolume{}).WithObjects(objs...).Build()
	n := &fakeNode{t: t, host: newFakeHost(), client: c, events: events.NewFakeRecorder(100)}
	n.r = &Reconciler{Client: c, APIReader: c, Recorder: n.events, VMID: fakeVMID, NodeName: "oma-fake",
		ByIDDir: "/dev/disk/by-id", MountRoot: root, host: n.host}
	n.r.defaults()
	return n
}

// fakeVolume is a 1 GiB volume attached (and confirmed attached) to the fake node's VM.
func fakeVolume(name string, opts ...func(*osseav1.MigrationVolume)) *osseav1.MigrationVolume {
	mv := &osseav1.MigrationVolume{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name), Generation: 1},
		Spec:       osseav1.MigrationVolumeSpec{JobID: "job-1", DiskName: name, SizeGiB: 1},
		Status: osseav1.MigrationVolumeStatus{VolumeID: decideVolumeID, AttachedVirtualMachineID: fakeVMID,
			Conditions: []metav1.Condition{{Type: osseav1.ConditionAttached, Status: metav1.ConditionTrue, Reason: "Attached",
				LastTransitionTime: metav1.Now()}}},
	}
	for _, o := range opts {
		o(mv)
	}
	return mv
}

// reconcile runs one reconcile of mv and returns the object as stored after it (nil once
// it is gone).
func (n *fakeNode) reconcile(mv *osseav1.MigrationVolume) (ctrl.Result, *osseav1.MigrationVolume) {
	n.t.Helper()
	key := client.ObjectKeyFromObject(mv)
	res, err := n.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: key})
	if err != nil {
		n.t.Fatalf("reconcile: %v", err)
	}
	got := &osseav1.MigrationVolume{}
	if err := n.client.Get(context.Background(), key, got); err != nil {
		return res, nil
	}
	return res, got
}

func mountedCondition(t *testing.T, mv *osseav1.MigrationVolume, status metav1.ConditionStatus, reason string) {
	t.Helper()
	c := meta.FindStatusCondition(mv.Status.Conditions, osseav1.ConditionMounted)
	if c == nil || c.Status != status || c.Reason != reason {
		t.Fatalf("Mounted = %+v; want %s/%s", c, status, reason)
	}
}

func TestFakeHostBlankDiskFormattedMountedOnce(t *testing.T) {
	mv := fakeVolume("disk-0", func(mv *osseav1.MigrationVolume) {
		mv.Spec.Filesystem = &osseav1.FilesystemSpec{Type: osseav1.FilesystemXFS, FormatPolicy: osseav1.FormatIfBlank}
	})
	n := newFakeNode(t, mv)
	n.host.addDisk(decideVolumeID, "/dev/vdb", gib, 16, diskContent{kind: contentBlank})

	res, got := n.reconcile(mv)
	mountedCondition(t, got, metav1.ConditionTrue, ReasonMounted)
	path := filepath.Join(n.r.MountRoot, "job-1", "disk-0")
	if want := []string{"format /dev/vdb xfs redo=false", "mount /dev/vdb " + path + " xfs"}; !slices.Equal(n.host.did("format", "mount"), want) {
		t.Fatalf("host operations %v; want %v", n.host.did("format", "mount"), want)
	}
	if !controllerutil.ContainsFinalizer(got, osseav1.MountFinalizer) || got.Status.NodeName != "oma-fake" ||
		got.Status.MountPath != path || got.Status.FilesystemType != "xfs" || res.RequeueAfter != n.r.ResyncInterval {
		t.Fatalf("claim and status: finalizers %v, status %+v, requeue %s", got.Finalizers, got.Status, res.RequeueAfter)
	}
	if len(n.host.marks) != 0 {
		t.Errorf("the format mark was not cleared after a verified format: %v", n.host.marks)
	}

	// A resync (or a restart) finds it mounted: nothing is done again, nothing written.
	rv := got.ResourceVersion
	_, again := n.reconcile(got)
	if ops := n.host.did("format", "mount", "unmount"); len(ops) != 2 || again.ResourceVersion != rv {
		t.Fatalf("a resync of a mounted volume acted (%v) or wrote (version %s -> %s)", ops, rv, again.ResourceVersion)
	}
}

// Refusals leave the device alone: no format, no mount; the size check goes first, before
// the device is even probed.
func TestFakeHostRefusals(t *testing.T) {
	for _, c := range []struct {
		name      string
		size      int64
		content   diskContent
		policy    osseav1.FormatPolicy
		elsewhere bool
		reason    string
		probed    bool
	}{
		{"partition table", gib, diskContent{kind: contentPartitioned}, osseav1.FormatIfBlank, false, ReasonDeviceNotBlank, true},
		{"another filesystem", gib, diskContent{kind: contentFilesystem, fsType: "xfs"}, osseav1.FormatIfBlank, false, ReasonFilesystemMismatch, true},
		{"blank under Never", gib, diskContent{kind: contentBlank}, osseav1.FormatNever, false, ReasonDeviceBlank, true},
		{"blank but the wrong size", 2 * gib, diskContent{kind: contentBlank}, osseav1.FormatIfBlank, false, ReasonDeviceSizeMismatch, false},
		{"blank but mounted elsewhere", gib, diskContent{kind: contentBlank}, osseav1.FormatIfBlank, true, ReasonDeviceInUse, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			mv := fakeVolume("disk-0", func(mv *osseav1.MigrationVolume) {
				mv.Spec.Filesystem = &osseav1.FilesystemSpec{Type: osseav1.FilesystemExt4, FormatPolicy: c.policy}
			})
			n := newFakeNode(t, mv)
			dev := n.host.addDisk(decideVolumeID, "/dev/vdb", c.size, 16, c.content)
			if c.elsewhere {
				n.host.mounts = append(n.host.mounts, ours("/srv/other", "ext4")) // ours: 252:16, this disk
			}
			res, got := n.reconcile(mv)
			mountedCondition(t, got, metav1.ConditionFalse, c.reason)
			if ops := n.host.did("format", "mount", "unmount"); len(ops) != 0 {
				t.Fatalf("a refused device was acted on: %v", ops)
			}
			if probed := len(n.host.did("probe")) > 0; probed != c.probed {
				t.Fatalf("probed = %t; want %t", probed, c.probed)
			}
			if res.RequeueAfter != n.r.ResyncInterval || got.Status.DevicePath != dev.Link {
				t.Fatalf("requeue %s, devicePath %q; want the resync and %s", res.RequeueAfter, got.Status.DevicePath, dev.Link)
			}
			if !controllerutil.ContainsFinalizer(got, osseav1.MountFinalizer) {
				t.Fatal("a refused volume was not claimed")
			}
		})
	}
}

// The agent's own cut-short format of this disk is redone, forced; and a format that does
// not leave what was asked is reported, its mark kept for the next attempt.
func TestFakeHostFormatRedoneAndVerified(t *testing.T) {
	mv := fakeVolume("disk-0")
	n := newFakeNode(t, mv)
	n.host.addDisk(decideVolumeID, "/dev/vdb", gib, 16, diskContent{kind: contentFilesystem, fsType: "ext4"})
	n.host.marks[decideVolumeID] = mv.UID
	_, got := n.reconcile(mv)
	mountedCondition(t, got, metav1.ConditionTrue, ReasonMounted)
	if ops := n.host.did("format"); !slices.Equal(ops, []string{"format /dev/vdb ext4 redo=true"}) {
		t.Fatalf("formats %v; want one forced redo", ops)
	}

	mv2 := fakeVolume("disk-1")
	n2 := newFakeNode(t, mv2)
	n2.host.addDisk(decideVolumeID, "/dev/vdc", gib, 32, diskContent{kind: contentBlank})
	n2.host.formatTo["/dev/vdc"] = diskContent{kind: contentBlank} // mkfs exits 0, writes nothing
	// Retried, the mark makes the second attempt a redo of the agent's own format.
	for attempt := range 2 {
		if _, err := n2.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(mv2)}); err == nil {
			t.Fatalf("attempt %d: an unverified format was not an error to retry", attempt)
		}
	}
	got2 := &osseav1.MigrationVolume{}
	if err := n2.client.Get(context.Background(), client.ObjectKeyFromObject(mv2), got2); err != nil {
		t.Fatal(err)
	}
	mountedCondition(t, got2, metav1.ConditionFalse, ReasonFormatFailed)
	if n2.host.marks[decideVolumeID] != mv2.UID {
		t.Errorf("the mark of an unverified format is gone: %v", n2.host.marks)
	}
	if ops := n2.host.did("format", "mount"); !slices.Equal(ops, []string{"format /dev/vdc ext4 redo=false", "format /dev/vdc ext4 redo=true"}) {
		t.Fatalf("host operations %v; want a format, then its forced redo, and no mount", ops)
	}
}

// Delete while a process holds the mount: UnmountBusy with backoff, the finalizer kept (so
// the manager cannot detach); once free, unmounted and let go.
func TestFakeHostBusyUnmountHoldsTheFinalizer(t *testing.T) {
	mv := fakeVolume("disk-0")
	n := newFakeNode(t, mv)
	n.host.addDisk(decideVolumeID, "/dev/vdb", gib, 16, diskContent{kind: contentBlank})
	_, got := n.reconcile(mv)
	mountedCondition(t, got, metav1.ConditionTrue, ReasonMounted)
	path := got.Status.MountPath
	if err := n.client.Delete(context.Background(), got); err != nil {
		t.Fatal(err)
	}

	n.host.busy[path] = true
	var delays []time.Duration
	for range 3 {
		res, held := n.reconcile(got)
		if held == nil || !controllerutil.ContainsFinalizer(held, osseav1.MountFinalizer) {
			t.Fatal("the finalizer went while the filesystem was busy")
		}
		mountedCondition(t, held, metav1.ConditionFalse, ReasonUnmountBusy)
		delays = append(delays, res.RequeueAfter)
	}
	if !slices.Equal(delays, []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second}) {
		t.Fatalf("busy retries after %v; want 250ms, 500ms, 1s", delays)
	}
	if at, _ := n.host.mountsAt(path); len(at) != 1 {
		t.Fatalf("%d mounts at %s while busy; want it left mounted", len(at), path)
	}

	n.host.busy[path] = false
	if _, gone := n.reconcile(got); gone != nil {
		t.Fatalf("still there after the unmount: finalizers %v", gone.Finalizers)
	}
	if at, _ := n.host.mountsAt(path); len(at) != 0 {
		t.Fatalf("still mounted at %s", path)
	}
	if ops := n.host.did("unmount"); len(ops) != 4 {
		t.Fatalf("unmounts %v; want 3 busy and 1 done", ops)
	}
}

// Block mode: found and checked, never probed, formatted or mounted, and not claimed.
func TestFakeHostBlockModeOnlyPublishes(t *testing.T) {
	mv := fakeVolume("disk-0", func(mv *osseav1.MigrationVolume) { mv.Spec.Mode = osseav1.VolumeModeBlock })
	n := newFakeNode(t, mv)
	dev := n.host.addDisk(decideVolumeID, "/dev/vdb", gib, 16, diskContent{kind: contentBlank})
	_, got := n.reconcile(mv)
	mountedCondition(t, got, metav1.ConditionTrue, ReasonPublished)
	if ops := n.host.did("probe", "format", "mount"); len(ops) != 0 || got.Status.DevicePath != dev.Link ||
		controllerutil.ContainsFinalizer(got, osseav1.MountFinalizer) {
		t.Fatalf("Block mode: operations %v, devicePath %q, finalizers %v", ops, got.Status.DevicePath, got.Finalizers)
	}
}
