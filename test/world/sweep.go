package world

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Sweep removes everything a test left on the host below dir, in the only order that
// works: the processes that belong to it (SandboxEnv at dir or below) are killed, except
// this one and those in spare; then every mount below dir comes off, deepest first; then
// every loop device whose backing file is below dir is detached; then dir itself is removed,
// unless keep. Nothing outside dir is touched, and dir is not removed while anything is
// still mounted below it.
func Sweep(dir string, keep bool, spare ...int) error {
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	} else if os.IsNotExist(err) {
		return nil
	}
	var errs []error
	if err := killMarked(dir, append(spare, os.Getpid())); err != nil {
		errs = append(errs, err)
	}
	mounted, err := unmountAllUnder(dir)
	if err != nil {
		errs = append(errs, err)
	}
	if err := detachLoopsUnder(dir); err != nil {
		errs = append(errs, err)
	}
	if !keep && !mounted {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// killMarked SIGKILLs the processes whose SandboxEnv is dir or below it, again and again
// until none is left (a dying parent may still start a child), for at most 10 seconds.
func killMarked(dir string, spare []int) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := markedProcesses(dir, spare)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes of %s still running after SIGKILL: %v", dir, pids)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// markedProcesses lists the processes that carry SandboxEnv=dir or a directory below it.
// A zombie has an empty environment, so a killed child that its parent has not reaped
// yet is not listed again.
func markedProcesses(dir string, spare []int) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || slices.Contains(spare, pid) {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			v, ok := bytes.CutPrefix(kv, []byte(SandboxEnv+"="))
			if ok && within(string(v), dir) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// unmountAllUnder unmounts every mount below dir, deepest first, retrying a busy one for a
// few seconds and then detaching it lazily: the processes that used it are gone by now,
// and a mount left behind would break the next run. mounted reports whether any is left.
func unmountAllUnder(dir string) (mounted bool, err error) {
	mounts, err := MountsUnder(dir)
	if err != nil {
		return true, err
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].Target) > len(mounts[j].Target) })
	var errs []error
	for _, m := range mounts {
		var uerr error
		for attempt := 0; attempt < 30; attempt++ {
			if uerr = syscall.Unmount(m.Target, 0); uerr == nil || uerr != syscall.EBUSY {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if uerr == syscall.EBUSY {
			uerr = syscall.Unmount(m.Target, syscall.MNT_DETACH)
		}
		if uerr != nil && uerr != syscall.EINVAL { // EINVAL: no longer a mount point
			errs = append(errs, fmt.Errorf("unmounting %s: %w", m.Target, uerr))
		}
	}
	left, err := MountsUnder(dir)
	if err != nil {
		errs = append(errs, err)
	}
	return len(left) > 0 || err != nil, errors.Join(errs...)
}

// UnmountUnder unmounts everything mounted below dir (not dir itself), deepest first, as
// the sweep does: a test's cleanup calls it for its own mount root, so that a failed test
// leaves nothing mounted for the next one.
func UnmountUnder(dir string) error {
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	_, err := unmountAllUnder(dir)
	return err
}

// detachLoopsUnder detaches the loop devices whose backing file is below dir.
func detachLoopsUnder(dir string) error {
	loops, err := LoopDevicesUnder(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, l := range loops {
		if out, err := exec.Command("losetup", "--detach", l.Device).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("losetup --detach %s: %v: %s", l.Device, err, strings.TrimSpace(string(out))))
		}
	}
	return errors.Join(errs...)
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, strings.TrimSuffix(dir, "/")+"/")
}
