package testkit

import (
	"testing"

	"github.com/moby/sys/mountinfo"
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
