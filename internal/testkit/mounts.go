package testkit

import (
	"path/filepath"
	"testing"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// MountsAt lists the mount table's entries for path; stacked mounts are one entry each, so
// a test can tell a volume mounted once from one mounted twice.
func MountsAt(t testing.TB, path string) []*mountinfo.Info {
	t.Helper()
	ms, err := mountinfo.GetMounts(func(i *mountinfo.Info) (skip, stop bool) { return i.Mountpoint != path, false })
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// UnmountUnder unmounts everything mounted below root, deepest first, for a test's cleanup:
// only a failed test leaves anything there, and the next test must not find it. A mount
// that is busy (a failed test may have left a file open) is detached lazily; this is test
// cleanup, not the agent, which never does that.
func UnmountUnder(t testing.TB, root string) {
	if r, err := filepath.EvalSymlinks(root); err == nil {
		root = r
	}
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(root))
	if err != nil {
		t.Errorf("reading the mount table: %v", err)
		return
	}
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].Mountpoint == root {
			continue
		}
		if err := unix.Unmount(ms[i].Mountpoint, 0); err != nil {
			_ = unix.Unmount(ms[i].Mountpoint, unix.MNT_DETACH)
		}
	}
}
