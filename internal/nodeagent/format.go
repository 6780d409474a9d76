package nodeagent

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/types"
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
	// interrupted: a format of this disk that the agent started for this object never
	// finished (its format mark is there), so what the device holds is the agent's own
	// unfinished work, never anyone's data.
	interrupted bool
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

// probe asks blkid, in low-level probing mode (no cache), what the device holds, and the
// format marks whether that is an unfinished format of the agent's own. Any error is
// returned as such and must stop the caller: "could not tell" is never "blank".
func (h *linuxHost) probe(dev *Device, volumeID string, uid types.UID) (diskContent, error) {
	format, err := h.sfm.GetDiskFormat(dev.Path)
	if err != nil {
		return diskContent{}, fmt.Errorf("probing %s with blkid: %w", dev.Path, err)
	}
	content := contentOfFormat(format)
	if content.interrupted, err = h.marks.interrupted(volumeID, uid); err != nil {
		return diskContent{}, fmt.Errorf("probing %s: %w", dev.Path, err)
	}
	return content, nil
}

// contentOfFormat reads mount-utils' answer ("" for nothing, the blkid TYPE, or
// partitionedFormat).
func contentOfFormat(format string) diskContent {
	switch format {
	case "":
		return diskContent{kind: contentBlank}
	case partitionedFormat:
		return diskContent{kind: contentPartitioned}
	}
	return diskContent{kind: contentFilesystem, fsType: format}
}

// format marks the format as started (see formatMarks), then creates a filesystem of the
// given type on a device the caller found blank. It passes no force flag (-F / -f): should
// the device have changed since it was probed, mkfs itself refuses a device that holds a
// filesystem or is in use, a second line of defence. The one exception is redo: the device
// holds what an interrupted format of the agent's own left, which mkfs would otherwise
// refuse to overwrite.
func (h *linuxHost) format(ctx context.Context, dev *Device, fsType, volumeID string, uid types.UID, redo bool) error {
	args, err := mkfsArgs(fsType, redo)
	if err != nil {
		return err
	}
	if err := h.marks.set(volumeID, uid); err != nil {
		return err
	}
	args = append(args, dev.Path)
	ctx, cancel := context.WithTimeout(ctx, h.formatTimeout)
	defer cancel()
	// Stdin stays empty: should mkfs ever want to ask a question, it reads EOF and gives up.
	out, err := h.exec.CommandContext(ctx, "mkfs."+fsType, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mkfs.%s %s: %w: %s", fsType, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// forgetFormat removes the format mark of the volume's disk.
func (h *linuxHost) forgetFormat(volumeID string) error { return h.marks.clear(volumeID) }

// mkfsArgs are mkfs's options for fsType, without the device.
func mkfsArgs(fsType string, redo bool) ([]string, error) {
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
		return nil, fmt.Errorf("cannot create a filesystem of type %q", fsType)
	}
	return args, nil
}
