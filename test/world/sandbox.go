package world

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A sandbox is the one scratch directory of a test process, and a promise: whatever the
// process leaves on the host below it (processes it started, mounts, loop devices, files)
// is removed when the process ends, however it ends. A failed assertion, a panic, `go test
// -timeout` or a SIGKILL all end in the same sweep as a passing run.
//
// Two things make that work without every test keeping track:
//   - TMPDIR points into the sandbox, so t.TempDir, os.MkdirTemp and envtest's etcd and
//     kube-apiserver all put their files (and so the loop devices' backing files and the
//     mount points) below it;
//   - SandboxEnv names the sandbox in the environment, which every child inherits, so the
//     sweep finds the processes by it, even those started by code that is not ours.
//
// The guard is this same binary started again with GuardEnv set: the init below turns it
// into a process that reads its stdin and sweeps when asked, or when the stdin closes
// because the test process has died.
const (
	// SandboxEnv holds, in every process started inside a sandbox, the directory it
	// belongs to (the sandbox or a world below it).
	SandboxEnv = "OSSEA_SANDBOX"
	// KeepEnv=1 keeps the scratch files (logs) after the sweep; processes, mounts and
	// loop devices are removed all the same.
	KeepEnv = "OSSEA_KEEP_SCRATCH"
	// GuardEnv makes this binary the guard of the sandbox it names.
	GuardEnv = "OSSEA_SANDBOX_GUARD"
)

func init() {
	if dir := os.Getenv(GuardEnv); dir != "" {
		os.Exit(guard(dir, os.Stdin, os.Stdout))
	}
}

// Sandbox is the running sandbox of this process.
type Sandbox struct {
	Dir string

	mu    sync.Mutex
	guard *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Reader
}

var (
	sandboxMu sync.Mutex
	current   *Sandbox
)

// EnterSandbox makes the process's sandbox (once; later calls return the same one): a new
// directory named prefix* under the system's temp dir, its guard started, TMPDIR and
// SandboxEnv pointed at it.
func EnterSandbox(prefix string) (*Sandbox, error) {
	sandboxMu.Lock()
	defer sandboxMu.Unlock()
	if current != nil {
		return current, nil
	}
	if err := sweepOrphans(os.TempDir(), orphanAge); err != nil {
		fmt.Fprintf(os.Stderr, "sweeping sandboxes left by earlier runs: %v\n", err)
	}
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, sandboxMarker), nil, 0o644); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	// The kernel reports mounts and loop backing files by their real path.
	if dir, err = filepath.EvalSymlinks(dir); err != nil {
		return nil, err
	}
	s := &Sandbox{Dir: dir}
	if err := s.startGuard(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		_ = s.Close()
		return nil, err
	}
	_ = os.Setenv("TMPDIR", tmp)
	_ = os.Setenv(SandboxEnv, dir)
	current = s
	return s, nil
}

func (s *Sandbox) startGuard() error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this binary for the sandbox guard: %w", err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(withoutEnv(os.Environ(), SandboxEnv), GuardEnv+"="+s.Dir)
	cmd.Stderr = os.Stderr
	// Its own process group: a Ctrl-C or a kill of the test's group must not take the
	// guard with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the sandbox guard: %w", err)
	}
	s.guard, s.in, s.out = cmd, in, bufio.NewReader(out)
	return nil
}

// Close sweeps the sandbox now, through its guard, and reports what could not be removed.
// The directory stays when KeepEnv=1.
func (s *Sandbox) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.guard == nil {
		return nil
	}
	defer func() {
		sandboxMu.Lock()
		if current == s {
			current = nil
		}
		sandboxMu.Unlock()
	}()
	cmd := "sweep"
	if Keep() {
		cmd = "sweep keep"
	}
	var errs []error
	if _, err := fmt.Fprintln(s.in, cmd); err != nil {
		errs = append(errs, fmt.Errorf("asking the guard to sweep: %w", err))
	}
	reply, _ := io.ReadAll(s.out)
	_ = s.in.Close()
	if err := s.guard.Wait(); err != nil {
		errs = append(errs, fmt.Errorf("the sandbox guard: %w", err))
	}
	s.guard = nil
	if r := strings.TrimSpace(string(reply)); r != "" {
		errs = append(errs, errors.New(r))
	}
	if Keep() {
		fmt.Fprintf(os.Stderr, "scratch files kept in %s (%s=1)\n", s.Dir, KeepEnv)
	}
	return errors.Join(errs...)
}

const (
	// sandboxMarker marks a directory as a sandbox: only those are ever swept as orphans.
	sandboxMarker = ".ossea-sandbox"
	// keptMarker marks a sandbox whose files were kept (KeepEnv=1) by its own sweep.
	keptMarker = ".kept"
)

// orphanAge is how old a sandbox with no process left must be before another run sweeps
// it: one being made has no guard for a moment.
const orphanAge = time.Minute

// sweepOrphans sweeps the sandboxes in tempDir (directories with sandboxMarker, nothing
// else) that no one is left to sweep: no process
// of theirs is alive, not even the guard. That happens only when everything was killed at
// once (the machine restarted, or all processes were SIGKILLed); their mounts and loop
// devices would otherwise stay until someone removed them by hand. A sandbox its own sweep
// kept (KeepEnv=1) is left alone.
func sweepOrphans(tempDir string, minAge time.Duration) error {
	dirs, err := filepath.Glob(filepath.Join(tempDir, "ossea-*"))
	if err != nil {
		return err
	}
	var errs []error
	for _, d := range dirs {
		dir, err := filepath.EvalSymlinks(d)
		if err != nil {
			continue
		}
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() || time.Since(fi.ModTime()) < minAge {
			continue
		}
		if !exists(filepath.Join(dir, sandboxMarker)) || exists(filepath.Join(dir, keptMarker)) || claimed(dir) {
			continue
		}
		if err := Sweep(dir, false); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", dir, err))
		}
	}
	return errors.Join(errs...)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// claimed reports whether a live process belongs to the sandbox dir: its guard (GuardEnv
// is dir), or any process started in it (SandboxEnv is dir or below).
func claimed(dir string) bool {
	if len(markedProcesses(dir, nil)) > 0 {
		return true
	}
	entries, _ := os.ReadDir("/proc")
	want := []byte(GuardEnv + "=" + dir)
	for _, e := range entries {
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err == nil && slices.ContainsFunc(bytes.Split(env, []byte{0}), func(kv []byte) bool { return bytes.Equal(kv, want) }) {
			return true
		}
	}
	return false
}

// Keep reports whether the scratch files are to be kept (KeepEnv=1).
func Keep() bool { return os.Getenv(KeepEnv) == "1" }

// guard waits for one line on in ("sweep" or "sweep keep") or for in to close (the test
// process died), sweeps dir, writes what failed to out and returns.
func guard(dir string, in io.Reader, out io.Writer) int {
	// Signals meant for the test (Ctrl-C, a timeout's SIGTERM) must not stop the cleanup.
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	parent := os.Getppid()
	line, _ := bufio.NewReader(in).ReadString('\n')
	keep := strings.TrimSpace(line) == "sweep keep" || (line == "" && Keep())
	if keep {
		// What is left is kept on purpose: no later run is to sweep it as an orphan.
		_ = os.WriteFile(filepath.Join(dir, keptMarker), nil, 0o644)
	}
	if err := Sweep(dir, keep, parent); err != nil {
		fmt.Fprintln(out, err)
		if line == "" {
			fmt.Fprintf(os.Stderr, "sandbox guard: %v\n", err)
		}
		return 1
	}
	return 0
}

func withoutEnv(env []string, key string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return out
}
