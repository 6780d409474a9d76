package nodeagent

import (
	"context"
	"time"

	"github.com/moby/sys/mountinfo"
	"k8s.io/apimachinery/pkg/types"
	mount "k8s.io/mount-utils"
	utilexec "k8s.io/utils/exec"
)

// host is everything the agent does to the node it runs on, and nothing else: the
// reconciler asks the host what is there, decides with the pure functions of decide.go,
// and asks the host to act. Keeping the two apart is what lets the decisions be tested
// without root, loop devices or an API server, while linuxHost, the one real host, is
// tested on real devices. The mount directories (paths.go) are not here: they are plain
// directories below the mount root, which any test can make in a temporary directory.
type host interface {
	// findDevice returns the block device behind one of the volume's by-id links, or nil
	// and no error while no link exists (or it dangles: the disk left).
	findDevice(volumeID string) (*Device, error)
	// probe says what dev holds, and whether that is the remains of a format the agent
	// started on the volume's disk for the object uid and never saw finish (see
	// formatMarks). Any error must stop the caller: "could not tell" is never "blank".
	probe(dev *Device, volumeID string, uid types.UID) (diskContent, error)
	// format records, durably, that a format of the volume's disk for the object uid
	// starts, then creates a filesystem of fsType on dev. redo overwrites the remains of
	// the agent's own interrupted format; otherwise mkfs refuses a device that is not
	// blank. The record stays until forgetFormat: a format that fails or is cut short is
	// recognised by the next probe.
	format(ctx context.Context, dev *Device, fsType, volumeID string, uid types.UID, redo bool) error
	// forgetFormat drops the record of a format of the volume's disk: it was seen
	// complete, or the volume was released.
	forgetFormat(volumeID string) error
	// mount mounts dev at path read-write as fsType (always explicit, never guessed).
	mount(dev *Device, path, fsType string) error
	// unmount unmounts path once, never lazily and never forced: a busy filesystem gives
	// ErrBusy; a path with nothing mounted counts as done.
	unmount(path string) error
	// mountsAt lists the mount table's entries at exactly path, the topmost last (more
	// than one when mounts are stacked).
	mountsAt(path string) ([]*mountinfo.Info, error)
	// mountsOfDevice lists the mount table's entries of dev, by device number, whatever
	// name it was mounted by.
	mountsOfDevice(dev *Device) ([]*mountinfo.Info, error)
}

// linuxHost is the node as the kernel shows it: by-id links in byIDDir, blkid and mkfs run
// through mount-utils, mount(2) and umount(2), /proc/self/mountinfo, and the format marks
// kept in the mount root (which outlives the agent's container, as the marks must).
type linuxHost struct {
	byIDDir string
	marks   formatMarks
	mounter mount.Interface
	sfm     *mount.SafeFormatAndMount
	exec    utilexec.Interface
	// formatTimeout bounds one mkfs run.
	formatTimeout time.Duration
}

var _ host = (*linuxHost)(nil)

// newLinuxHost returns the real host. mountRoot must be resolved already: the format marks
// live there, and the mount table shows resolved paths.
func newLinuxHost(byIDDir, mountRoot string, formatTimeout time.Duration) *linuxHost {
	// Never through systemd-run: in a container that would start a scope on the host and
	// escape the pod's lifecycle.
	m := mount.NewWithoutSystemd("")
	ex := utilexec.New()
	return &linuxHost{
		byIDDir:       byIDDir,
		marks:         formatMarks{root: mountRoot},
		mounter:       m,
		sfm:           mount.NewSafeFormatAndMount(m, ex),
		exec:          ex,
		formatTimeout: formatTimeout,
	}
}

func (h *linuxHost) findDevice(volumeID string) (*Device, error) {
	return findDevice(h.byIDDir, volumeID)
}

func (h *linuxHost) mountsAt(path string) ([]*mountinfo.Info, error) { return mountsAt(path) }

func (h *linuxHost) mountsOfDevice(dev *Device) ([]*mountinfo.Info, error) {
	return mountsOfDevice(dev)
}
