package nodeagent

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	osseav1 "github.com/migratekit/ossea-operator/api/v1alpha1"
)

// The agent's decisions, table by table. These tests touch no host and no API server: they
// run without root (go test -run 'Decide|Fake' ./internal/nodeagent). Every case names the
// one outcome it wants, so a changed rule fails the case that shows it.

const (
	decideVMID     = "6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"
	decideVolumeID = "0b3f5c2e-9a41-4d6e-8f00-123456789abc"
	decidePath     = "/mnt/migration/job-1/disk-0"
)

// decideDev is the volume's disk as the host describes it: 10 GiB, device 252:16.
// gib is a GiB in bytes.
const gib = int64(1) << 30

var decideDev = &Device{Link: "/dev/disk/by-id/virtio-0b3f5c2e9a414d6e8f00", Path: "/dev/vdb", Size: 10 * gib, Major: 252, Minor: 16}

// mountOf is a mount table entry of device major:minor at path.
func mountOf(major, minor int, path, fsType, options string) *mountinfo.Info {
	return &mountinfo.Info{Major: major, Minor: minor, Mountpoint: path, FSType: fsType, Options: options,
		Source: fmt.Sprintf("/dev/block/%d:%d", major, minor)}
}

// ours is decideDev mounted at path as fsType, read-write as the agent mounts it.
func ours(path, fsType string) *mountinfo.Info {
	return mountOf(252, 16, path, fsType, "rw,nosuid,nodev,relatime")
}

func assertDecision(t *testing.T, got decision, wantStep step, wantReason string, mentions ...string) {
	t.Helper()
	if got.step != wantStep || got.reason != wantReason {
		t.Fatalf("decision = %s/%q (%s); want %s/%q", got.step, got.reason, got.message, wantStep, wantReason)
	}
	if wantStep == stepRefuse && got.message == "" {
		t.Fatalf("a refusal without a message: a person cannot act on %q alone", got.reason)
	}
	for _, m := range mentions {
		if !strings.Contains(got.message, m) {
			t.Errorf("message %q does not mention %q", got.message, m)
		}
	}
}

// What a device holds × formatPolicy × spec.filesystem.type (and whether the agent's own
// format of it was cut short): the one place that decides whether a disk is formatted.
func TestDecideContent(t *testing.T) {
	const ifBlank, never = osseav1.FormatIfBlank, osseav1.FormatNever
	blank := diskContent{kind: contentBlank}
	fs := func(t string) diskContent { return diskContent{kind: contentFilesystem, fsType: t} }
	parted := diskContent{kind: contentPartitioned}
	cut := func(c diskContent) diskContent { c.interrupted = true; return c }

	for _, c := range []struct {
		content diskContent
		fsType  string
		policy  osseav1.FormatPolicy
		want    step
		reason  string
	}{
		// Blank: formatted only when the policy allows it.
		{blank, "ext4", ifBlank, stepFormat, ""},
		{blank, "xfs", ifBlank, stepFormat, ""},
		{blank, "ext4", never, stepRefuse, osseav1.ReasonDeviceBlank},
		{blank, "xfs", never, stepRefuse, osseav1.ReasonDeviceBlank},
		// The wanted filesystem: mounted as it is, whatever the policy.
		{fs("ext4"), "ext4", ifBlank, stepMount, ""},
		{fs("ext4"), "ext4", never, stepMount, ""},
		{fs("xfs"), "xfs", ifBlank, stepMount, ""},
		{fs("xfs"), "xfs", never, stepMount, ""},
		// Another filesystem (or signature): never reformatted.
		{fs("xfs"), "ext4", ifBlank, stepRefuse, osseav1.ReasonFilesystemMismatch},
		{fs("xfs"), "ext4", never, stepRefuse, osseav1.ReasonFilesystemMismatch},
		{fs("ext4"), "xfs", ifBlank, stepRefuse, osseav1.ReasonFilesystemMismatch},
		{fs("ext4"), "xfs", never, stepRefuse, osseav1.ReasonFilesystemMismatch},
		{fs("LVM2_member"), "ext4", ifBlank, stepRefuse, osseav1.ReasonFilesystemMismatch},
		{fs("LVM2_member"), "xfs", never, stepRefuse, osseav1.ReasonFilesystemMismatch},
		{fs("ntfs"), "xfs", ifBlank, stepRefuse, osseav1.ReasonFilesystemMismatch},
		{fs("crypto_LUKS"), "ext4", ifBlank, stepRefuse, osseav1.ReasonFilesystemMismatch},
		// A partition table: never formatted.
		{parted, "ext4", ifBlank, stepRefuse, osseav1.ReasonDeviceNotBlank},
		{parted, "xfs", ifBlank, stepRefuse, osseav1.ReasonDeviceNotBlank},
		{parted, "ext4", never, stepRefuse, osseav1.ReasonDeviceNotBlank},
		{parted, "xfs", never, stepRefuse, osseav1.ReasonDeviceNotBlank},
		// The agent's own format of this disk for this object was cut short: formatted
		// again (forced) when IfBlank, since what is there is its own unfinished work...
		{cut(blank), "ext4", ifBlank, stepRedoFormat, ""},
		{cut(blank), "xfs", ifBlank, stepRedoFormat, ""},
		{cut(fs("ext4")), "ext4", ifBlank, stepRedoFormat, ""},
		{cut(fs("xfs")), "xfs", ifBlank, stepRedoFormat, ""},
		// ...never under Never...
		{cut(blank), "ext4", never, stepRefuse, osseav1.ReasonDeviceBlank},
		{cut(blank), "xfs", never, stepRefuse, osseav1.ReasonDeviceBlank},
		{cut(fs("ext4")), "ext4", never, stepMount, ""},
		{cut(fs("xfs")), "xfs", never, stepMount, ""},
		// ...and never over anything its own mkfs of fsType cannot have left.
		{cut(fs("xfs")), "ext4", ifBlank, stepRefuse, osseav1.ReasonFilesystemMismatch},
		{cut(fs("ext4")), "xfs", ifBlank, stepRefuse, osseav1.ReasonFilesystemMismatch},
		{cut(fs("LVM2_member")), "ext4", ifBlank, stepRefuse, osseav1.ReasonFilesystemMismatch},
		{cut(fs("xfs")), "ext4", never, stepRefuse, osseav1.ReasonFilesystemMismatch},
		{cut(parted), "ext4", ifBlank, stepRefuse, osseav1.ReasonDeviceNotBlank},
		{cut(parted), "xfs", ifBlank, stepRefuse, osseav1.ReasonDeviceNotBlank},
		{cut(parted), "ext4", never, stepRefuse, osseav1.ReasonDeviceNotBlank},
	} {
		name := fmt.Sprintf("%s/interrupted=%t/want %s/%s", c.content, c.content.interrupted, c.fsType, c.policy)
		t.Run(name, func(t *testing.T) {
			got := decideContent(decideDev, c.content, c.fsType, c.policy)
			var mentions []string
			if c.want == stepRefuse {
				// A person must be able to find the device from the message.
				mentions = []string{decideDev.Link, decideDev.Path}
				if c.reason == osseav1.ReasonFilesystemMismatch {
					mentions = append(mentions, c.content.fsType, c.fsType)
				}
			}
			assertDecision(t, got, c.want, c.reason, mentions...)
		})
	}
}

// The size check comes before anything looks at the device, in both modes: a disk of
// another size is not the volume's.
func TestDecideSize(t *testing.T) {
	for _, c := range []struct {
		name    string
		size    int64
		sizeGiB int32
		ok      bool
	}{
		{"exact", 10 * gib, 10, true},
		{"one byte short", 10*gib - 1, 10, false},
		{"one byte over", 10*gib + 1, 10, false},
		{"another volume's disk", 20 * gib, 10, false},
		{"empty device", 0, 1, false},
		{"largest volume, exact", 65536 * gib, 65536, true},
		{"largest volume, a GiB short", 65535 * gib, 65536, false},
		{"sizes in GiB, not GB", 10_000_000_000, 10, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dev := *decideDev
			dev.Size = c.size
			got := decideSize(&dev, c.sizeGiB)
			if c.ok {
				assertDecision(t, got, stepGoOn, "")
				return
			}
			assertDecision(t, got, stepRefuse, osseav1.ReasonDeviceSizeMismatch, dev.Link, fmt.Sprint(c.size), fmt.Sprintf("%d GiB", c.sizeGiB))
		})
	}
}

// The mount table before the device is probed: the volume's path already mounted (by this
// disk, as wanted or not; by another disk), or the disk mounted somewhere else.
func TestDecideMounts(t *testing.T) {
	other := mountOf(8, 0, decidePath, "ext4", "rw,relatime")
	for _, c := range []struct {
		name      string
		fsType    string
		atPath    []*mountinfo.Info
		elsewhere []*mountinfo.Info
		want      step
		reason    string
		mentions  []string
	}{
		{name: "nothing mounted anywhere", fsType: "ext4", want: stepGoOn},
		{name: "this disk at the path as wanted (restart, resync)", fsType: "ext4",
			atPath: []*mountinfo.Info{ours(decidePath, "ext4")}, want: stepReportMounted},
		{name: "this disk at the path, xfs as wanted", fsType: "xfs",
			atPath: []*mountinfo.Info{ours(decidePath, "xfs")}, want: stepReportMounted},
		{name: "this disk at the path and, by device number, in the list of its mounts", fsType: "ext4",
			atPath: []*mountinfo.Info{ours(decidePath, "ext4")}, elsewhere: []*mountinfo.Info{ours(decidePath, "ext4")}, want: stepReportMounted},
		{name: "this disk at the path as another type", fsType: "ext4",
			atPath: []*mountinfo.Info{ours(decidePath, "xfs")}, want: stepRefuse, reason: osseav1.ReasonFilesystemMismatch, mentions: []string{"xfs", "ext4"}},
		{name: "this disk at the path read-only (after errors)", fsType: "ext4",
			atPath: []*mountinfo.Info{mountOf(252, 16, decidePath, "ext4", "ro,nosuid,nodev")}, want: stepRefuse, reason: osseav1.ReasonMountFailed, mentions: []string{"read-only", "fsck"}},
		{name: "errors=remount-ro is not read-only", fsType: "ext4",
			atPath: []*mountinfo.Info{mountOf(252, 16, decidePath, "ext4", "rw,relatime,errors=remount-ro")}, want: stepReportMounted},
		{name: "another disk at the path", fsType: "ext4",
			atPath: []*mountinfo.Info{other}, want: stepRefuse, reason: osseav1.ReasonMountFailed, mentions: []string{other.Source, "not this volume's disk", decideDev.Path}},
		{name: "another disk at the path, read-only", fsType: "ext4",
			atPath: []*mountinfo.Info{mountOf(8, 0, decidePath, "ext4", "ro")}, want: stepRefuse, reason: osseav1.ReasonMountFailed, mentions: []string{"not this volume's disk"}},
		{name: "same minor, another major", fsType: "ext4",
			atPath: []*mountinfo.Info{mountOf(253, 16, decidePath, "ext4", "rw")}, want: stepRefuse, reason: osseav1.ReasonMountFailed, mentions: []string{"not this volume's disk"}},
		{name: "another disk stacked on top of this one", fsType: "ext4",
			atPath: []*mountinfo.Info{ours(decidePath, "ext4"), other}, want: stepRefuse, reason: osseav1.ReasonMountFailed, mentions: []string{"not this volume's disk"}},
		{name: "this disk stacked on top of another", fsType: "ext4",
			atPath: []*mountinfo.Info{other, ours(decidePath, "ext4")}, want: stepReportMounted},
		{name: "this disk mounted elsewhere", fsType: "ext4",
			elsewhere: []*mountinfo.Info{ours("/srv/data", "ext4")}, want: stepRefuse, reason: osseav1.ReasonDeviceInUse, mentions: []string{"/srv/data", decidePath}},
		{name: "this disk mounted in two other places", fsType: "xfs",
			elsewhere: []*mountinfo.Info{ours("/srv/a", "xfs"), ours("/srv/b", "xfs")}, want: stepRefuse, reason: osseav1.ReasonDeviceInUse, mentions: []string{"/srv/a, /srv/b"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			assertDecision(t, decideMounts(decideDev, decidePath, c.fsType, c.atPath, c.elsewhere), c.want, c.reason, c.mentions...)
		})
	}
}

// Teardown: unmount while something is mounted, wait out a busy filesystem, stop when
// nothing is left, and give up on mounts that do not end; never anything lazy.
func TestDecideRelease(t *testing.T) {
	busy := fmt.Errorf("unmounting %s: %w", decidePath, ErrBusy)
	for _, c := range []struct {
		name     string
		mounts   int
		unmounts int
		last     error
		want     releaseAction
	}{
		{"nothing mounted", 0, 0, nil, releaseDone},
		{"mounted", 1, 0, nil, releaseUnmount},
		{"unmounted, nothing left", 0, 1, nil, releaseDone},
		{"unmounted, one more stacked", 1, 1, nil, releaseUnmount},
		{"two stacked, none unmounted yet", 2, 0, nil, releaseUnmount},
		{"the last unmount allowed", 1, maxStackedMounts - 1, nil, releaseUnmount},
		{"mounts that do not end", 1, maxStackedMounts, nil, releaseFailed},
		{"all unmounted at the limit", 0, maxStackedMounts, nil, releaseDone},
		{"busy", 1, 0, busy, releaseBusy},
		{"busy under a stacked mount already unmounted", 1, 1, busy, releaseBusy},
		{"busy, whatever the table says", 0, 1, busy, releaseBusy},
		{"the unmount failed otherwise", 1, 0, fmt.Errorf("unmounting %s: %w", decidePath, unix.EPERM), releaseFailed},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := nextRelease(c.mounts, c.unmounts, c.last); got != c.want {
				t.Fatalf("nextRelease(%d mounts, %d unmounts, %v) = %s; want %s", c.mounts, c.unmounts, c.last, got, c.want)
			}
		})
	}
}

// umount(2)'s answers: "busy" is the one the agent waits out, "not mounted" is done.
func TestDecideUnmountResult(t *testing.T) {
	for _, c := range []struct {
		name     string
		errno    error
		wantNil  bool
		wantBusy bool
	}{
		{"unmounted", nil, true, false},
		{"not a mount point", unix.EINVAL, true, false},
		{"gone", unix.ENOENT, true, false},
		{"busy", unix.EBUSY, false, true},
		{"not permitted", unix.EPERM, false, false},
		{"I/O error", unix.EIO, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := unmountResult(decidePath, c.errno)
			if c.wantNil {
				if err != nil {
					t.Fatalf("unmountResult(%v) = %v; want done", c.errno, err)
				}
				return
			}
			if err == nil || errors.Is(err, ErrBusy) != c.wantBusy || !strings.Contains(err.Error(), decidePath) {
				t.Fatalf("unmountResult(%v) = %v; want an error naming %s, busy=%t", c.errno, err, decidePath, c.wantBusy)
			}
			if nextRelease(1, 0, err) != map[bool]releaseAction{true: releaseBusy, false: releaseFailed}[c.wantBusy] {
				t.Fatalf("teardown after %v: %s", c.errno, nextRelease(1, 0, err))
			}
		})
	}
}

func TestDecideUnmountBackoff(t *testing.T) {
	for _, c := range []struct {
		attempts int
		limit    time.Duration
		want     time.Duration
	}{
		{0, 30 * time.Second, 250 * time.Millisecond},
		{1, 30 * time.Second, 500 * time.Millisecond},
		{2, 30 * time.Second, time.Second},
		{6, 30 * time.Second, 16 * time.Second},
		{7, 30 * time.Second, 30 * time.Second},
		{1000, 30 * time.Second, 30 * time.Second},
		{2, 500 * time.Millisecond, 500 * time.Millisecond},
	} {
		t.Run(fmt.Sprintf("%d attempts, limit %s", c.attempts, c.limit), func(t *testing.T) {
			if got := unmountBackoff(c.attempts, c.limit); got != c.want {
				t.Fatalf("unmountBackoff = %s; want %s", got, c.want)
			}
		})
	}
	if r := busyReport(decidePath); r.reason != osseav1.ReasonUnmountBusy || r.status != metav1.ConditionFalse ||
		!strings.Contains(r.message, "fuser -vm "+decidePath) {
		t.Errorf("busy report %+v: want UnmountBusy naming fuser -vm %s", r, decidePath)
	}
}

// decideVolume is a volume placed by options on top of a plain Filesystem-mode one.
func decideVolume(opts ...func(*osseav1.MigrationVolume)) *osseav1.MigrationVolume {
	mv := &osseav1.MigrationVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "mv", Namespace: "ns", CreationTimestamp: metav1.NewTime(time.Unix(1_700_000_000, 0))},
		Spec:       osseav1.MigrationVolumeSpec{JobID: "job-1", DiskName: "disk-0", SizeGiB: 10},
	}
	for _, o := range opts {
		o(mv)
	}
	return mv
}

func attachedTo(vmID string) func(*osseav1.MigrationVolume) {
	return func(mv *osseav1.MigrationVolume) {
		mv.Status.VolumeID = decideVolumeID
		mv.Status.AttachedVirtualMachineID = vmID
	}
}

// heldBy is a volume held as this agent holds it: the mount finalizer and the claim label
// naming nodeName, and the node reported in status.nodeName.
func heldBy(nodeName string) func(*osseav1.MigrationVolume) {
	return func(mv *osseav1.MigrationVolume) {
		mv.Finalizers = append(mv.Finalizers, osseav1.MountFinalizer)
		mv.Labels = map[string]string{osseav1.NodeLabel: nodeName}
		mv.Status.NodeName = nodeName
	}
}

// heldByOlderAgent is a volume held as an agent older than the claim label held it: the
// mount finalizer and status.nodeName (empty for one older still).
func heldByOlderAgent(nodeName string) func(*osseav1.MigrationVolume) {
	return func(mv *osseav1.MigrationVolume) {
		mv.Finalizers = append(mv.Finalizers, osseav1.MountFinalizer)
		mv.Status.NodeName = nodeName
	}
}

// reportedBy sets status.nodeName alone, as the Mounted report leaves it after a release.
func reportedBy(nodeName string) func(*osseav1.MigrationVolume) {
	return func(mv *osseav1.MigrationVolume) { mv.Status.NodeName = nodeName }
}

func deleted(mv *osseav1.MigrationVolume) {
	now := metav1.NewTime(time.Unix(1_700_000_100, 0))
	mv.DeletionTimestamp = &now
}

func inBlockMode(mv *osseav1.MigrationVolume) { mv.Spec.Mode = osseav1.VolumeModeBlock }

func releasedForHandoff(mv *osseav1.MigrationVolume) {
	meta.SetStatusCondition(&mv.Status.Conditions, metav1.Condition{Type: osseav1.ConditionMounted, Status: metav1.ConditionFalse, Reason: osseav1.ReasonReleasedForHandoff})
}

func publishedOn(nodeName string) func(*osseav1.MigrationVolume) {
	return func(mv *osseav1.MigrationVolume) {
		mv.Status.NodeName, mv.Status.DevicePath = nodeName, "/dev/disk/by-id/virtio-x"
	}
}

// handoff sets spec.handoff and, unless reason is empty, the manager's HandedOff condition.
func handoff(reason string) func(*osseav1.MigrationVolume) {
	return func(mv *osseav1.MigrationVolume) {
		mv.Spec.Handoff = &osseav1.VolumeHandoff{VirtualMachineID: "22222222-2222-4333-8444-555555555555"}
		if reason == "" {
			return
		}
		st := metav1.ConditionFalse
		if reason == osseav1.ReasonHandedOff {
			st = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&mv.Status.Conditions, metav1.Condition{Type: osseav1.ConditionHandedOff, Status: st, Reason: reason})
	}
}

func withMounted(status metav1.ConditionStatus, reason string) func(*osseav1.MigrationVolume) {
	return func(mv *osseav1.MigrationVolume) {
		meta.SetStatusCondition(&mv.Status.Conditions, metav1.Condition{Type: osseav1.ConditionMounted, Status: status, Reason: reason})
	}
}

func withAttached(status metav1.ConditionStatus, since time.Time) func(*osseav1.MigrationVolume) {
	return func(mv *osseav1.MigrationVolume) {
		mv.Status.Conditions = append(mv.Status.Conditions, metav1.Condition{Type: osseav1.ConditionAttached, Status: status,
			Reason: "Attached", LastTransitionTime: metav1.NewTime(since)})
	}
}

// Which path a reconcile takes: only the agent holding a volume ever releases it.
func TestDecideRoute(t *testing.T) {
	const node, otherVM = "oma-1", "11111111-2222-4333-8444-555555555555"
	for _, c := range []struct {
		name string
		mv   *osseav1.MigrationVolume
		want route
	}{
		{"attached here, Filesystem mode", decideVolume(attachedTo(decideVMID)), routeFilesystem},
		{"attached here, claimed", decideVolume(attachedTo(decideVMID), heldBy(node)), routeFilesystem},
		{"attached here, Block mode", decideVolume(attachedTo(decideVMID), inBlockMode), routeBlock},
		{"not created yet (no volume id)", decideVolume(func(mv *osseav1.MigrationVolume) { mv.Status.AttachedVirtualMachineID = decideVMID }), routeNothing},
		{"attached to another VM, never ours", decideVolume(attachedTo(otherVM)), routeNothing},
		{"attached to another VM, still held here", decideVolume(attachedTo(otherVM), heldBy(node)), routeDetached},
		{"detached, still held here", decideVolume(attachedTo(""), heldBy(node)), routeDetached},
		{"detached, held by another node", decideVolume(attachedTo(""), heldBy("oma-2")), routeNothing},
		{"deleted, held here", decideVolume(attachedTo(decideVMID), heldBy(node), deleted), routeRelease},
		{"deleted, held by an older agent of this VM (no node name)", decideVolume(attachedTo(decideVMID), heldByOlderAgent(""), deleted), routeRelease},
		{"deleted, no node name, attached elsewhere", decideVolume(attachedTo(otherVM), heldByOlderAgent(""), deleted), routeNothing},
		{"deleted, held here by an older agent (status.nodeName)", decideVolume(attachedTo(decideVMID), heldByOlderAgent(node), deleted), routeRelease},
		{"deleted, held by an older agent of another node", decideVolume(attachedTo(decideVMID), heldByOlderAgent("oma-2"), deleted), routeNothing},
		{"detached, held here by an older agent", decideVolume(attachedTo(""), heldByOlderAgent(node)), routeDetached},
		{"deleted, labelled for another node though reported here", decideVolume(attachedTo(decideVMID), heldBy("oma-2"), reportedBy(node), deleted), routeNothing},
		{"deleted, let go already (the report keeps the node)", decideVolume(attachedTo(decideVMID), reportedBy(node), deleted), routeNothing},
		{"hand-off released, held here by an older agent", decideVolume(attachedTo(decideVMID), heldByOlderAgent(node), handoff(osseav1.ReasonReleasing)), routeHandoff},
		{"deleted, held by another node", decideVolume(attachedTo(decideVMID), heldBy("oma-2"), deleted), routeNothing},
		{"deleted, never claimed (Block mode)", decideVolume(attachedTo(decideVMID), inBlockMode, deleted), routeNothing},
		{"deleted after detaching, held here", decideVolume(attachedTo(""), heldBy(node), deleted), routeRelease},
		{"hand-off set, checks not passed yet: still mounted", decideVolume(attachedTo(decideVMID), heldBy(node), handoff("")), routeFilesystem},
		{"hand-off stalled on a check: still mounted", decideVolume(attachedTo(decideVMID), heldBy(node), handoff(osseav1.ReasonTargetVMNotStopped)), routeFilesystem},
		{"hand-off released, held here", decideVolume(attachedTo(decideVMID), heldBy(node), handoff(osseav1.ReasonReleasing)), routeHandoff},
		{"hand-off released, published here (Block)", decideVolume(attachedTo(decideVMID), inBlockMode, publishedOn(node), handoff(osseav1.ReasonReleasing)), routeHandoff},
		{"hand-off released, let go already: never claimed again", decideVolume(attachedTo(decideVMID), handoff(osseav1.ReasonDetaching)), routeNothing},
		{"handed off: never claimed again", decideVolume(attachedTo(otherVM), handoff(osseav1.ReasonHandedOff)), routeNothing},
		{"hand-off released, held by another node", decideVolume(attachedTo(decideVMID), heldBy("oma-2"), handoff(osseav1.ReasonReleasing)), routeNothing},
		{"hand-off step failed after the agent let go: still let go", decideVolume(attachedTo(decideVMID), handoff(osseav1.ReasonCloudStackError), releasedForHandoff), routeNothing},
		{"hand-off step failed before the agent let go: still mounted", decideVolume(attachedTo(decideVMID), heldBy(node), handoff(osseav1.ReasonCloudStackError)), routeFilesystem},
		{"deleted during the hand-off, held here", decideVolume(attachedTo(decideVMID), heldBy(node), handoff(osseav1.ReasonReleasing), deleted), routeRelease},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := routeOf(c.mv, decideVMID, node); got != c.want {
				t.Fatalf("routeOf = %d; want %d", got, c.want)
			}
		})
	}
}

// While the disk has not appeared: wait during the attach, wait up to the timeout after
// it, then say it is missing; and how soon to look again.
func TestDecideMissingDevice(t *testing.T) {
	now := time.Unix(1_700_001_000, 0)
	w := deviceWait{byIDDir: "/dev/disk/by-id", vmID: decideVMID, now: now, deviceTimeout: 2 * time.Minute, resync: time.Minute}
	links := []string{"/dev/disk/by-id/virtio-0b3f5c2e9a414d6e8f00", "/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_0b3f5c2e9a414d6e8f00"}
	for _, c := range []struct {
		name     string
		mv       *osseav1.MigrationVolume
		reason   string
		requeue  time.Duration
		mentions []string
	}{
		{"volume id not a UUID", decideVolume(func(mv *osseav1.MigrationVolume) { mv.Status.VolumeID = "../../etc" }),
			osseav1.ReasonDeviceNotFound, 0, []string{"not a CloudStack volume UUID"}},
		{"attach running, no Attached condition yet", decideVolume(attachedTo(decideVMID)),
			osseav1.ReasonWaitingForDevice, time.Minute, append([]string{decideVolumeID, "missing if it has not appeared 2m0s after the attach finished"}, links...)},
		{"attach running, Attached False", decideVolume(attachedTo(decideVMID), withAttached(metav1.ConditionFalse, now.Add(-time.Hour))),
			osseav1.ReasonWaitingForDevice, time.Minute, []string{"waiting for the disk"}},
		{"attached 10s ago", decideVolume(attachedTo(decideVMID), withAttached(metav1.ConditionTrue, now.Add(-10*time.Second))),
			osseav1.ReasonWaitingForDevice, 110*time.Second + 100*time.Millisecond, []string{"waiting for the disk"}},
		{"attached just now", decideVolume(attachedTo(decideVMID), withAttached(metav1.ConditionTrue, now)),
			osseav1.ReasonWaitingForDevice, 2*time.Minute + 100*time.Millisecond, nil},
		{"attached exactly the timeout ago", decideVolume(attachedTo(decideVMID), withAttached(metav1.ConditionTrue, now.Add(-2*time.Minute))),
			osseav1.ReasonDeviceNotFound, time.Minute, append([]string{decideVMID, decideVolumeID}, links...)},
		{"attached long ago", decideVolume(attachedTo(decideVMID), withAttached(metav1.ConditionTrue, now.Add(-time.Hour))),
			osseav1.ReasonDeviceNotFound, time.Minute, []string{"within 2m0s"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rep, res := missingDevice(c.mv, w)
			if rep.reason != c.reason || rep.status != metav1.ConditionFalse || res != (ctrl.Result{RequeueAfter: c.requeue}) {
				t.Fatalf("missingDevice = %s/%s, requeue %s (%s); want False/%s, requeue %s", rep.status, rep.reason, res.RequeueAfter, rep.message, c.reason, c.requeue)
			}
			for _, m := range c.mentions {
				if !strings.Contains(rep.message, m) {
					t.Errorf("message %q does not mention %q", rep.message, m)
				}
			}
		})
	}
}

// On delete, the release corrects only a Mounted condition that would keep the volume
// Stalled, or send a person after a busy mount, through the teardown.
func TestDecideReportsDeleteRelease(t *testing.T) {
	cond := func(status metav1.ConditionStatus, reason string) *metav1.Condition {
		return &metav1.Condition{Type: osseav1.ConditionMounted, Status: status, Reason: reason}
	}
	for _, c := range []struct {
		name string
		prev *metav1.Condition
		want bool
	}{
		{"mounted", cond(metav1.ConditionTrue, osseav1.ReasonMounted), false},
		{"claimed, nothing said yet", nil, false},
		{"waiting for the disk", cond(metav1.ConditionFalse, osseav1.ReasonWaitingForDevice), false},
		{"a mount that failed, retried", cond(metav1.ConditionFalse, osseav1.ReasonMountFailed), false},
		{"said already (a restart after the report)", cond(metav1.ConditionFalse, osseav1.ReasonUnmounted), false},
		{"busy until now", cond(metav1.ConditionFalse, osseav1.ReasonUnmountBusy), true},
		{"the disk never found", cond(metav1.ConditionFalse, osseav1.ReasonDeviceNotFound), true},
		{"a refused disk", cond(metav1.ConditionFalse, osseav1.ReasonDeviceNotBlank), true},
		{"a filesystem mismatch", cond(metav1.ConditionFalse, osseav1.ReasonFilesystemMismatch), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := reportsDeleteRelease(c.prev); got != c.want {
				t.Errorf("reportsDeleteRelease = %t; want %t", got, c.want)
			}
		})
	}
}

// A disk that has not appeared is not worth a status write in the first seconds after the
// claim (it usually appears within one); after the grace it is reported, and a failure
// (DeviceNotFound) never waits.
func TestDecideQuietAboutMissingDevice(t *testing.T) {
	claimed := time.Unix(1_700_001_000, 0)
	waiting := &report{status: metav1.ConditionFalse, reason: osseav1.ReasonWaitingForDevice}
	notFound := &report{status: metav1.ConditionFalse, reason: osseav1.ReasonDeviceNotFound}
	for _, c := range []struct {
		name      string
		rep       *report
		claimedAt time.Time
		now       time.Time
		want      time.Duration
	}{
		{"just claimed", waiting, claimed, claimed, 5 * time.Second},
		{"a second after the claim", waiting, claimed, claimed.Add(time.Second), 4 * time.Second},
		{"at the end of the grace", waiting, claimed, claimed.Add(5 * time.Second), 0},
		{"long after the claim", waiting, claimed, claimed.Add(time.Hour), 0},
		{"claim time unknown", waiting, time.Time{}, claimed, 0},
		{"the agent's clock behind the API server's: never longer than the grace", waiting, claimed, claimed.Add(-time.Minute), 5 * time.Second},
		{"the disk reported missing: at once", notFound, claimed, claimed, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := quietAboutMissingDevice(c.rep, c.claimedAt, c.now); got != c.want {
				t.Errorf("quietAboutMissingDevice = %s; want %s", got, c.want)
			}
		})
	}
}

// The claim's time is the API server's stamp on the agent's apply of its metadata, not
// on its status, nor on anyone else's write.
func TestDecideClaimedAt(t *testing.T) {
	at := func(sec int64) *metav1.Time { t := metav1.NewTime(time.Unix(sec, 0)); return &t }
	apply, update := metav1.ManagedFieldsOperationApply, metav1.ManagedFieldsOperationUpdate
	mv := decideVolume(func(mv *osseav1.MigrationVolume) {
		mv.ManagedFields = []metav1.ManagedFieldsEntry{
			{Manager: osseav1.ManagerFieldOwner, Operation: apply, Time: at(1)},
			{Manager: osseav1.AgentFieldOwner, Operation: apply, Subresource: "status", Time: at(2)},
			{Manager: osseav1.AgentFieldOwner, Operation: update, Time: at(3)},
			{Manager: osseav1.AgentFieldOwner, Operation: apply, Time: at(4)},
		}
	})
	if got := claimedAt(mv); !got.Equal(time.Unix(4, 0)) {
		t.Errorf("claimedAt = %s; want the agent's metadata apply at %s", got, time.Unix(4, 0))
	}
	if got := claimedAt(decideVolume()); !got.IsZero() {
		t.Errorf("claimedAt of a volume the agent never applied to = %s; want zero", got)
	}
}

// The manager's confirmation of the attach changes nothing the agent says while it waits
// for the disk: the report is the same while the attach runs and after it finished (until
// the timeout), so neither the agent nor the manager (which copies it into Ready) writes.
func TestDecideMissingDeviceSameReportAcrossTheAttach(t *testing.T) {
	now := time.Unix(1_700_001_000, 0)
	w := deviceWait{byIDDir: "/dev/disk/by-id", vmID: decideVMID, now: now, deviceTimeout: 2 * time.Minute, resync: time.Minute}
	running, _ := missingDevice(decideVolume(attachedTo(decideVMID), withAttached(metav1.ConditionFalse, now.Add(-time.Second))), w)
	for _, ago := range []time.Duration{0, time.Second, 119 * time.Second} {
		done, _ := missingDevice(decideVolume(attachedTo(decideVMID), withAttached(metav1.ConditionTrue, now.Add(-ago))), w)
		if *done != *running {
			t.Errorf("attach finished %s ago: %+v; while it ran: %+v", ago, done, running)
		}
	}
}

// The link gone while mounted: keep the mount only when the status says it is mounted.
func TestDecideKeepMountWithoutLink(t *testing.T) {
	for _, c := range []struct {
		name   string
		mv     *osseav1.MigrationVolume
		mounts int
		want   bool
	}{
		{"mounted, link flapping", decideVolume(withMounted(metav1.ConditionTrue, osseav1.ReasonMounted)), 1, true},
		{"reported mounted, nothing mounted", decideVolume(withMounted(metav1.ConditionTrue, osseav1.ReasonMounted)), 0, false},
		{"something mounted, never reported", decideVolume(), 1, false},
		{"something mounted, reported waiting", decideVolume(withMounted(metav1.ConditionFalse, osseav1.ReasonWaitingForDevice)), 1, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := keepMountWithoutLink(c.mv, c.mounts); got != c.want {
				t.Fatalf("keepMountWithoutLink = %t; want %t", got, c.want)
			}
		})
	}
}

// What a volume let go after leaving this VM says happened to it.
func TestDecideDetachedReport(t *testing.T) {
	mounted := &metav1.Condition{Type: osseav1.ConditionMounted, Status: metav1.ConditionTrue, Reason: osseav1.ReasonMounted}
	waiting := &metav1.Condition{Type: osseav1.ConditionMounted, Status: metav1.ConditionFalse, Reason: osseav1.ReasonWaitingForDevice}
	for _, c := range []struct {
		name      string
		unmounted bool
		prev      *metav1.Condition
		want      string
	}{
		{"its disk left while mounted", true, mounted, osseav1.ReasonDeviceDetached},
		{"unmounted, whatever the status said", true, waiting, osseav1.ReasonDeviceDetached},
		{"reported mounted, the mount already gone", false, mounted, osseav1.ReasonDeviceDetached},
		{"claimed while attaching, the attach failed", false, waiting, osseav1.ReasonNotAttached},
		{"claimed, never reported", false, nil, osseav1.ReasonNotAttached},
	} {
		t.Run(c.name, func(t *testing.T) {
			rep := detachedReport(decideVolume(attachedTo("")), decideVMID, c.unmounted, c.prev)
			if rep.reason != c.want || rep.status != metav1.ConditionFalse || rep.mountPath == nil || *rep.mountPath != "" {
				t.Fatalf("detachedReport = %+v; want False/%s clearing mountPath", rep, c.want)
			}
		})
	}
}

// Warning events on transitions into trouble only, not on every resync.
func TestDecideWarnings(t *testing.T) {
	cond := func(status metav1.ConditionStatus, reason string) *metav1.Condition {
		return &metav1.Condition{Type: osseav1.ConditionMounted, Status: status, Reason: reason}
	}
	rep := func(status metav1.ConditionStatus, reason string) *report {
		return &report{status: status, reason: reason}
	}
	for _, c := range []struct {
		name string
		prev *metav1.Condition
		rep  *report
		want bool
	}{
		{"first report is a refusal", nil, rep(metav1.ConditionFalse, osseav1.ReasonDeviceNotBlank), true},
		{"the same refusal again", cond(metav1.ConditionFalse, osseav1.ReasonDeviceNotBlank), rep(metav1.ConditionFalse, osseav1.ReasonDeviceNotBlank), false},
		{"waiting turns into not found", cond(metav1.ConditionFalse, osseav1.ReasonWaitingForDevice), rep(metav1.ConditionFalse, osseav1.ReasonDeviceNotFound), true},
		{"mounted, then busy on delete", cond(metav1.ConditionTrue, osseav1.ReasonMounted), rep(metav1.ConditionFalse, osseav1.ReasonUnmountBusy), true},
		{"waiting is no warning", nil, rep(metav1.ConditionFalse, osseav1.ReasonWaitingForDevice), false},
		{"mounted is no warning", cond(metav1.ConditionFalse, osseav1.ReasonWaitingForDevice), rep(metav1.ConditionTrue, osseav1.ReasonMounted), false},
		{"released for the hand-off is no warning", cond(metav1.ConditionTrue, osseav1.ReasonMounted), rep(metav1.ConditionFalse, osseav1.ReasonReleasedForHandoff), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := warnsOnReport(c.prev, c.rep); got != c.want {
				t.Fatalf("warnsOnReport = %t; want %t", got, c.want)
			}
		})
	}
}

// Block mode: a resync of the same device publishes nothing new.
func TestDecideBlockPublishedBefore(t *testing.T) {
	published := &metav1.Condition{Status: metav1.ConditionTrue, Reason: osseav1.ReasonPublished}
	for _, c := range []struct {
		name       string
		prev       *metav1.Condition
		devicePath string
		want       bool
	}{
		{"first time", nil, "", false},
		{"this device, published", published, decideDev.Link, true},
		{"published under another link", published, "/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_0b3f5c2e9a414d6e8f00", false},
		{"refused before (size)", &metav1.Condition{Status: metav1.ConditionFalse, Reason: osseav1.ReasonDeviceSizeMismatch}, decideDev.Link, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			mv := decideVolume(inBlockMode, func(mv *osseav1.MigrationVolume) { mv.Status.DevicePath = c.devicePath })
			if got := blockPublishedBefore(c.prev, mv, decideDev); got != c.want {
				t.Fatalf("blockPublishedBefore = %t; want %t", got, c.want)
			}
		})
	}
}

func TestDecideFilesystemDefaults(t *testing.T) {
	for _, c := range []struct {
		name       string
		spec       *osseav1.FilesystemSpec
		wantType   string
		wantPolicy osseav1.FormatPolicy
	}{
		{"no filesystem block", nil, "ext4", osseav1.FormatIfBlank},
		{"type only", &osseav1.FilesystemSpec{Type: osseav1.FilesystemXFS}, "xfs", osseav1.FormatIfBlank},
		{"policy only", &osseav1.FilesystemSpec{FormatPolicy: osseav1.FormatNever}, "ext4", osseav1.FormatNever},
		{"both", &osseav1.FilesystemSpec{Type: osseav1.FilesystemXFS, FormatPolicy: osseav1.FormatNever}, "xfs", osseav1.FormatNever},
	} {
		t.Run(c.name, func(t *testing.T) {
			mv := decideVolume(func(mv *osseav1.MigrationVolume) { mv.Spec.Filesystem = c.spec })
			if fsType, policy := filesystemOf(mv); fsType != c.wantType || policy != c.wantPolicy {
				t.Fatalf("filesystemOf = %s, %s; want %s, %s", fsType, policy, c.wantType, c.wantPolicy)
			}
		})
	}
}

// After mkfs and after mount, the host is asked again: exit codes are not proof.
func TestDecideChecksAfterActing(t *testing.T) {
	for _, c := range []struct {
		name    string
		content diskContent
		ok      bool
	}{
		{"ext4 made", diskContent{kind: contentFilesystem, fsType: "ext4"}, true},
		{"ext4 made, its mark not yet cleared", diskContent{kind: contentFilesystem, fsType: "ext4", interrupted: true}, true},
		{"still blank", diskContent{kind: contentBlank}, false},
		{"another type", diskContent{kind: contentFilesystem, fsType: "xfs"}, false},
		{"a partition table", diskContent{kind: contentPartitioned}, false},
	} {
		t.Run("formatted/"+c.name, func(t *testing.T) {
			if err := checkFormatted(decideDev, "ext4", c.content); (err == nil) != c.ok {
				t.Fatalf("checkFormatted = %v; want ok=%t", err, c.ok)
			}
		})
	}
	for _, c := range []struct {
		name string
		at   []*mountinfo.Info
		ok   bool
	}{
		{"mounted", []*mountinfo.Info{ours(decidePath, "ext4")}, true},
		{"nothing there", nil, false},
		{"another disk on top", []*mountinfo.Info{ours(decidePath, "ext4"), mountOf(8, 0, decidePath, "ext4", "rw")}, false},
	} {
		t.Run("mounted/"+c.name, func(t *testing.T) {
			if err := checkMounted(decideDev, decidePath, c.at); (err == nil) != c.ok {
				t.Fatalf("checkMounted = %v; want ok=%t", err, c.ok)
			}
		})
	}
}

// blkid's answers as mount-utils passes them on, and the mkfs options: no force flag
// unless the agent's own cut-short format is being redone.
func TestDecideProbeAndMkfsOptions(t *testing.T) {
	for format, want := range map[string]diskContent{
		"":                  {kind: contentBlank},
		partitionedFormat:   {kind: contentPartitioned},
		"ext4":              {kind: contentFilesystem, fsType: "ext4"},
		"LVM2_member":       {kind: contentFilesystem, fsType: "LVM2_member"},
		"unknown data, raw": {kind: contentFilesystem, fsType: "unknown data, raw"},
	} {
		t.Run(fmt.Sprintf("blkid %q", format), func(t *testing.T) {
			if got := contentOfFormat(format); got != want {
				t.Fatalf("contentOfFormat(%q) = %+v; want %+v", format, got, want)
			}
		})
	}
	for _, c := range []struct {
		fsType string
		redo   bool
		force  string // the force flag wanted, "" for none
	}{
		{"ext4", false, ""},
		{"ext4", true, "-F"},
		{"xfs", false, ""},
		{"xfs", true, "-f"},
	} {
		t.Run(fmt.Sprintf("mkfs.%s redo=%t", c.fsType, c.redo), func(t *testing.T) {
			args, err := mkfsArgs(c.fsType, c.redo)
			if err != nil {
				t.Fatal(err)
			}
			hasF, hasf := slices.Contains(args, "-F"), slices.Contains(args, "-f")
			if (c.force == "-F") != hasF || (c.force == "-f") != hasf {
				t.Fatalf("mkfs.%s %v: want force flag %q", c.fsType, args, c.force)
			}
		})
	}
	t.Run("mkfs of an unknown type", func(t *testing.T) {
		if args, err := mkfsArgs("btrfs", false); err == nil {
			t.Fatalf("mkfsArgs(btrfs) = %v; want an error", args)
		}
	})
}

// A mount's one event says where the disk is mounted and whether it was formatted first:
// an outcome no condition keeps.
func TestDecideMountedNote(t *testing.T) {
	for _, c := range []struct {
		name     string
		step     step
		prefix   string
		mentions []string
	}{
		{"blank, formatted", stepFormat, "Formatted blank device ", []string{"as xfs and mounted it at " + decidePath}},
		{"the agent's cut-short format, redone", stepRedoFormat, "Formatted ", []string{"as xfs again", "cut short", "mounted it at " + decidePath}},
		{"held the filesystem already", stepMount, "Mounted ", []string{"at " + decidePath + " as it was", "already held an xfs filesystem", "nothing was formatted"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			note := mountedNote(decideDev, "xfs", decidePath, c.step)
			if !strings.HasPrefix(note, c.prefix) {
				t.Errorf("note %q does not start with %q", note, c.prefix)
			}
			for _, m := range append([]string{decideDev.Link, decideDev.Path}, c.mentions...) {
				if !strings.Contains(note, m) {
					t.Errorf("note %q does not mention %q", note, m)
				}
			}
		})
	}
}
