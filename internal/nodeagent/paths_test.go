package nodeagent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Values the API schema rejects, given straight to the agent as if an object had bypassed
// it: no result may leave the mount root.
func TestMountPathConfinement(t *testing.T) {
	const root = "/mnt/migration"
	hostile := []struct{ job, disk string }{
		{"..", "disk"},
		{"job", ".."},
		{"..", ".."},
		{".", "disk"},
		{"job", "."},
		{"", "disk"},
		{"job", ""},
		{"a/../../etc", "disk"},
		{"job", "a/../../etc"},
		{"/abs", "disk"},
		{"job", "/etc/passwd"},
		{"/", "/"},
		{"job/..", "disk"},
		{"job", "disk/../../../root"},
		{"job\x00", "disk"},
		{"job", "di\x00sk"},
		{"job\n", "disk"},
		{"job", "\x7f"},
		{strings.Repeat("a", 256), "disk"},
		{"job", "a/b"},
	}
	for _, h := range hostile {
		p, err := MountPath(root, h.job, h.disk)
		if err == nil {
			t.Errorf("MountPath(%q, %q) = %q, want an error", h.job, h.disk, p)
			continue
		}
		var pe *PathError
		if !errors.As(err, &pe) {
			t.Errorf("MountPath(%q, %q): error %v is not a *PathError", h.job, h.disk, err)
		}
	}

	good := []struct{ job, disk, want string }{
		{"job-1", "disk-0", "/mnt/migration/job-1/disk-0"},
		{"a", "b", "/mnt/migration/a/b"},
		// Not DNS labels, but single plain names: harmless as paths.
		{"...", "disk", "/mnt/migration/.../disk"},
		{"Job With Spaces", "d", "/mnt/migration/Job With Spaces/d"},
	}
	for _, g := range good {
		p, err := MountPath(root+"/", g.job, g.disk)
		if err != nil || p != g.want {
			t.Errorf("MountPath(%q, %q) = %q, %v; want %q", g.job, g.disk, p, err, g.want)
		}
	}

	if _, err := MountPath("relative/root", "j", "d"); err == nil {
		t.Error("a relative mount root was accepted")
	}
}

// A symlink planted inside the mount root, at the job or the disk level, pointing outside:
// the agent must refuse, and must not create anything outside the root.
func TestEnsureMountDirRefusesSymlinks(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{root, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	// job level: root/evil-job -> outside
	if err := os.Symlink(outside, filepath.Join(root, "evil-job")); err != nil {
		t.Fatal(err)
	}
	if p, err := ensureMountDir(root, "evil-job", "disk"); err == nil {
		t.Errorf("ensureMountDir through a symlinked job directory = %q, want an error", p)
	}

	// disk level: root/job/evil-disk -> outside
	if err := os.MkdirAll(filepath.Join(root, "job"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "job", "evil-disk")); err != nil {
		t.Fatal(err)
	}
	if p, err := ensureMountDir(root, "job", "evil-disk"); err == nil {
		t.Errorf("ensureMountDir onto a symlink = %q, want an error", p)
	}

	// a relative symlink climbing out
	if err := os.Symlink("../../outside", filepath.Join(root, "job", "climb")); err != nil {
		t.Fatal(err)
	}
	if p, err := ensureMountDir(root, "job", "climb"); err == nil {
		t.Errorf("ensureMountDir onto a climbing symlink = %q, want an error", p)
	}

	// a regular file where the directory should be
	if err := os.WriteFile(filepath.Join(root, "job", "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if p, err := ensureMountDir(root, "job", "file"); err == nil {
		t.Errorf("ensureMountDir onto a file = %q, want an error", p)
	}

	// hostile names never create anything
	for _, h := range [][2]string{{"..", "x"}, {"a/../../outside", "x"}, {"/abs", "x"}, {"j", "\x00"}} {
		if _, err := ensureMountDir(root, h[0], h[1]); err == nil {
			t.Errorf("ensureMountDir(%q, %q) succeeded", h[0], h[1])
		}
	}

	entries, err := os.ReadDir(outside)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("something was created outside the mount root: %v", entries)
	}

	// and the ordinary case works, with the directories really there
	p, err := ensureMountDir(root, "job-1", "disk-0")
	if err != nil || p != filepath.Join(root, "job-1", "disk-0") {
		t.Fatalf("ensureMountDir(job-1, disk-0) = %q, %v", p, err)
	}
	if fi, err := os.Lstat(p); err != nil || !fi.IsDir() {
		t.Fatalf("mount directory not created: %v", err)
	}
	// again: idempotent
	if _, err := ensureMountDir(root, "job-1", "disk-0"); err != nil {
		t.Fatalf("second ensureMountDir: %v", err)
	}
}

// Removing the directories after unmount never removes data: a non-empty mount directory
// stays, and so does a job directory another disk still uses.
func TestRemoveMountDirKeepsData(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"job/disk-0", "job/disk-1"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "job/disk-1/data"), []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}

	removed, err := removeMountDir(root, "job", "disk-0")
	if err != nil || !removed {
		t.Fatalf("removeMountDir(disk-0) = %v, %v; want true, nil", removed, err)
	}
	if _, err := os.Stat(filepath.Join(root, "job")); err != nil {
		t.Fatalf("the job directory was removed while disk-1 is in it: %v", err)
	}
	removed, err = removeMountDir(root, "job", "disk-1")
	if err != nil || removed {
		t.Fatalf("removeMountDir(disk-1 with a file) = %v, %v; want false, nil", removed, err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "job/disk-1/data")); err != nil || string(b) != "keep" {
		t.Fatalf("data lost: %q, %v", b, err)
	}
	if err := os.Remove(filepath.Join(root, "job/disk-1/data")); err != nil {
		t.Fatal(err)
	}
	if removed, err := removeMountDir(root, "job", "disk-1"); err != nil || !removed {
		t.Fatalf("removeMountDir(empty disk-1) = %v, %v", removed, err)
	}
	if _, err := os.Stat(filepath.Join(root, "job")); !isNotExist(err) {
		t.Fatalf("the empty job directory is still there: %v", err)
	}
	// a symlink where the mount directory was is not followed or removed
	outside := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "job2"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "job2", "disk")); err != nil {
		t.Fatal(err)
	}
	if _, err := removeMountDir(root, "job2", "disk"); err == nil {
		t.Error("removeMountDir accepted a symlink")
	}
	if _, err := os.Stat(outside); err != nil {
		t.Errorf("the symlink's target was touched: %v", err)
	}
}
