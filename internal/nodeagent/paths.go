package nodeagent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// maxSegmentLen is the longest directory name most Linux filesystems accept.
const maxSegmentLen = 255

// PathError says why a jobID or diskName cannot be a directory under the mount root. It is
// not retried: the object has to change (or, since both fields are immutable, be recreated).
type PathError struct {
	Field, Value, Problem string
}

func (e *PathError) Error() string {
	return fmt.Sprintf("%s %q %s", e.Field, e.Value, e.Problem)
}

// MountPath returns <root>/<jobID>/<diskName>. The schema only lets DNS labels through, but
// an object can bypass it (an older CRD, a write straight to etcd, a schema bug), and the
// agent runs privileged on the host: so each segment is checked to be one plain directory
// name, and the joined path is checked to be strictly beneath root.
func MountPath(root, jobID, diskName string) (string, error) {
	if !filepath.IsAbs(root) {
		return "", fmt.Errorf("mount root %q is not an absolute path", root)
	}
	root = filepath.Clean(root)
	for _, seg := range [...]struct{ field, value string }{{"jobID", jobID}, {"diskName", diskName}} {
		if problem := checkSegment(seg.value); problem != "" {
			return "", &PathError{Field: seg.field, Value: seg.value, Problem: problem}
		}
	}
	p := filepath.Join(root, jobID, diskName)
	// Redundant after checkSegment, and meant to be: if the checks above ever loosen, this
	// still keeps the path inside the root.
	if filepath.Clean(p) != p || !strings.HasPrefix(p, root+string(filepath.Separator)) || p == root {
		return "", &PathError{Field: "jobID/diskName", Value: jobID + "/" + diskName, Problem: "leaves the mount root " + root}
	}
	return p, nil
}

// checkSegment returns what is wrong with s as a single directory name, or "".
func checkSegment(s string) string {
	switch {
	case s == "":
		return "is empty"
	case s == "." || s == "..":
		return "is a relative path element"
	case len(s) > maxSegmentLen:
		return fmt.Sprintf("is longer than %d bytes", maxSegmentLen)
	case strings.ContainsRune(s, '/'):
		return "contains a slash"
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return "contains a control character"
		}
	}
	return ""
}

// ensureMountDir creates <root>/<jobID>/<diskName> one level at a time and checks every
// level with Lstat, so a symbolic link planted below the root (say job -> /etc) is refused
// instead of followed: mount(8) would otherwise happily mount over whatever it points at.
// root itself is trusted; the agent resolves it once at start.
func ensureMountDir(root, jobID, diskName string) (string, error) {
	p, err := MountPath(root, jobID, diskName)
	if err != nil {
		return "", err
	}
	dir := filepath.Clean(root)
	for _, seg := range []string{jobID, diskName} {
		dir = filepath.Join(dir, seg)
		// Mkdir does not follow a symlink in the last element; an existing one gives EEXIST
		// and is caught by the Lstat below.
		if err := os.Mkdir(dir, 0o750); err != nil && !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("creating mount directory %s: %w", dir, err)
		}
		if err := checkRealDir(dir); err != nil {
			return "", err
		}
	}
	// The same question asked differently: the kernel's view of the path must be the path.
	resolved, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", fmt.Errorf("resolving mount directory %s: %w", p, err)
	}
	if resolved != p {
		return "", &PathError{Field: "mount directory", Value: p, Problem: "resolves to " + resolved + ", outside the expected place"}
	}
	return p, nil
}

// checkRealDir fails unless p is a directory and not a symbolic link.
func checkRealDir(p string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return fmt.Errorf("inspecting mount directory %s: %w", p, err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		target, _ := os.Readlink(p)
		return &PathError{Field: "mount directory", Value: p, Problem: "is a symbolic link (to " + target + "); refusing to follow it"}
	}
	if !fi.IsDir() {
		return &PathError{Field: "mount directory", Value: p, Problem: "exists and is not a directory"}
	}
	return nil
}

// removeMountDir removes the mount directory and then the job directory, each only if it is
// empty: a directory that holds files is data someone wrote while nothing was mounted, and
// the agent never deletes data. It reports whether the mount directory is gone.
func removeMountDir(root, jobID, diskName string) (bool, error) {
	p, err := MountPath(root, jobID, diskName)
	if err != nil {
		return true, nil // such a path was never created
	}
	if err := removeIfEmpty(p); err != nil {
		if isNotEmpty(err) {
			return false, nil
		}
		return false, fmt.Errorf("removing mount directory %s: %w", p, err)
	}
	// Other disks of the same job may still live in the job directory.
	if err := removeIfEmpty(filepath.Dir(p)); err != nil && !isNotEmpty(err) {
		return true, fmt.Errorf("removing job directory %s: %w", filepath.Dir(p), err)
	}
	return true, nil
}

// removeIfEmpty removes an empty directory (never a symlink's target, never contents).
func removeIfEmpty(p string) error {
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return &PathError{Field: "directory", Value: p, Problem: "is not a directory; left alone"}
	}
	// rmdir(2) removes only empty directories, which is exactly the guarantee wanted.
	if err := syscall.Rmdir(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return &os.PathError{Op: "rmdir", Path: p, Err: err}
	}
	return nil
}

func isNotEmpty(err error) bool {
	return errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST)
}
