package nodeagent

import (
	"context"
	"fmt"
	"strings"
	"time"

	mount "k8s.io/mount-utils"
	utilexec "k8s.io/utils/exec"
)

// partitionedFormat is what mount-utils' GetDiskFormat returns for a device that carries a
// partition table (blkid reports PTTYPE).
const partitionedFormat = "unknown data, probably partitions"

// contentKind is what a device holds, as far as the agent cares.
type contentKind int

const (
	contentBlank       contentKind = iota // no filesystem signature and no partition table
	contentFilesystem                     // a filesystem (or other signature blkid knows)
	contentPartitioned                    // a partition table
)

type diskContent struct {
	kind contentKind
	// fsType is blkid's TYPE for contentFilesystem ("ext4", "xfs", "LVM2_member", ...).
	fsType string
}

func (c diskContent) String() string {
	switch c.kind {
	case contentBlank:
		return "nothing (blank)"
	case contentPartitioned:
		return "a partition table"
	}
	return "a " + c.fsType + " filesystem"
}

// formatter detects and creates filesystems.
type formatter struct {
	sfm  *mount.SafeFormatAndMount
	exec utilexec.Interface
	// timeout bounds one mkfs run.
	timeout time.Duration
}

func newFormatter(m mount.Interface, timeout time.Duration) *formatter {
	ex := utilexec.New()
	return &formatter{sfm: mount.NewSafeFormatAndMount(m, ex), exec: ex, timeout: timeout}
}

// detect asks blkid, in low-level probing mode (no cache), what the device holds. Any error
// is returned as such and must stop the caller: "could not tell" is never "blank".
func (f *formatter) detect(device string) (diskContent, error) {
	format, err := f.sfm.GetDiskFormat(device)
	if err != nil {
		return diskContent{}, fmt.Errorf("probing %s with blkid: %w", device, err)
	}
	switch format {
	case "":
		return diskContent{kind: contentBlank}, nil
	case partitionedFormat:
		return diskContent{kind: contentPartitioned}, nil
	}
	return diskContent{kind: contentFilesystem, fsType: format}, nil
}

// format creates a filesystem of the given type on a device the caller found blank. It
// passes no force flag (-F / -f): should the device have changed since it was probed, mkfs
// itself refuses a device that holds a filesystem or is in use, a second line of defence.
// The one exception is redo: the device holds what an interrupted format of the agent's
// own left (see formatMarks), which mkfs would otherwise refuse to overwrite.
func (f *formatter) format(ctx context.Context, device, fsType string, redo bool) error {
	var args []string
	switch fsType {
	case "ext4":
		// No blocks reserved for root (the disk holds migration data, not a system), and no
		// discard pass: a fresh CloudStack volume holds nothing, and discarding a large
		// thin-provisioned disk can take minutes.
		args = []string{"-q", "-m", "0", "-E", "nodiscard"}
		if redo {
			args = append(args, "-F")
		}
	case "xfs":
		args = []string{"-q", "-K"}
		if redo {
			args = append(args, "-f")
		}
	default:
		return fmt.Errorf("cannot create a filesystem of type %q", fsType)
	}
	args = append(args, device)
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	// Stdin stays empty: should mkfs ever want to ask a question, it reads EOF and gives up.
	out, err := f.exec.CommandContext(ctx, "mkfs."+fsType, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mkfs.%s %s: %w: %s", fsType, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
