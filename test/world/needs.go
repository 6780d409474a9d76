package world

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Needs is what a test package needs of the host before anything long starts.
type Needs struct {
	// Root: loop devices, mkfs and mount.
	Root bool
	// Tools are commands that must be on PATH (see DiskTools).
	Tools []string
}

// DiskTools are the commands the simulator's hypervisor and the node agent run.
var DiskTools = []string{"losetup", "mount", "umount", "findmnt", "blkid", "blockdev", "mkfs.ext4", "mkfs.xfs"}

// Check reports the first unmet need as one line a person can act on: which command is
// missing and which Debian package holds it (from hack/deps.txt, which
// hack/install-deps.sh installs from).
func (n Needs) Check(root string) error {
	if n.Root && os.Geteuid() != 0 {
		return fmt.Errorf("these tests make loop devices, format and mount them: run them as root")
	}
	var missing []string
	for _, tool := range n.Tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	pkgs, err := debianPackages(root)
	if err != nil {
		return fmt.Errorf("%s missing, and %w", strings.Join(missing, ", "), err)
	}
	var named []string
	for _, tool := range missing {
		pkg := pkgs[tool]
		if pkg == "" {
			pkg = "not listed in hack/deps.txt"
		}
		named = append(named, fmt.Sprintf("%s (Debian package %s)", tool, pkg))
	}
	return fmt.Errorf("missing on this machine: %s; run `make deps` (hack/install-deps.sh) as root", strings.Join(named, ", "))
}

// debianPackages reads hack/deps.txt: command -> Debian package.
func debianPackages(root string) (map[string]string, error) {
	f, err := os.Open(filepath.Join(root, "hack", "deps.txt"))
	if err != nil {
		return nil, fmt.Errorf("reading the package list: %w", err)
	}
	defer f.Close()
	pkgs := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && !strings.HasPrefix(f[0], "#") {
			pkgs[f[0]] = f[1]
		}
	}
	return pkgs, sc.Err()
}
