package nodeagent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/types"

	"github.com/migratekit/ossea-operator/internal/guestdisk"
)

// formatMarks remember, on the node, each format the agent has started and not yet seen
// finish. An agent killed during mkfs (killing its container kills mkfs too) leaves a
// partial filesystem, which it would otherwise never touch again: the device is not blank,
// and it does not mount. With the mark, the next agent knows the device holds nothing but
// its own unfinished work, since it mounts only after mkfs succeeded, and formats it again.
//
// The marks live in the mount root, which is on the host and outlives the agent's
// container. Their names start with a dot, so they can never be a job's directory, and
// carry the disk serial; each holds the UID of the object it was made for, so that a
// leftover mark never applies to another object's use of the same disk.
type formatMarks struct{ root string }

const formatMarkPrefix = ".formatting-"

func (m formatMarks) path(volumeID string) (string, error) {
	if m.root == "" {
		return "", errors.New("no mount root for format marks")
	}
	s := guestdisk.Serial(volumeID)
	if s == "" {
		return "", fmt.Errorf("volume id %q is not a CloudStack UUID", volumeID)
	}
	return filepath.Join(m.root, formatMarkPrefix+s), nil
}

// set records a format about to start, durably.
func (m formatMarks) set(volumeID string, uid types.UID) error {
	p, err := m.path(volumeID)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("recording the format of %s: %w", volumeID, err)
	}
	_, err = f.WriteString(string(uid) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(m.root)
	}
	if err != nil {
		return fmt.Errorf("recording the format of %s: %w", volumeID, err)
	}
	return nil
}

// interrupted reports whether a format of this object's disk was started and not finished.
func (m formatMarks) interrupted(volumeID string, uid types.UID) (bool, error) {
	p, err := m.path(volumeID)
	if err != nil {
		return false, nil
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading the format mark of %s: %w", volumeID, err)
	}
	return strings.TrimSpace(string(b)) == string(uid), nil
}

// clear forgets the format of a disk: it finished, or the volume was released.
func (m formatMarks) clear(volumeID string) error {
	p, err := m.path(volumeID)
	if err != nil {
		return nil
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing the format mark of %s: %w", volumeID, err)
	}
	return syncDir(m.root)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
