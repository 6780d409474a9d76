package world

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childEnv makes the test binary play a test process that leaves a mount on a loop device
// and a running process in its sandbox, then ends the way the variable says.
const childEnv = "WORLD_TEST_CHILD"

func TestMain(m *testing.M) {
	if how := os.Getenv(childEnv); how != "" {
		child(how)
		return
	}
	Main(m, Needs{Root: true, Tools: []string{"losetup", "mkfs.ext4", "mount"}}, nil)
}

func child(how string) {
	must := func(err error, what string) {
		if err != nil {
			fmt.Fprintf(os.Stderr, "child: %s: %v\n", what, err)
			os.Exit(2)
		}
	}
	sb, err := EnterSandbox("ossea-child-")
	must(err, "entering the sandbox")
	img, mnt := filepath.Join(sb.Dir, "tmp", "disk.img"), filepath.Join(sb.Dir, "tmp", "mnt", "migration", "job", "disk")
	must(os.WriteFile(img, nil, 0o644), "creating the image")
	must(os.Truncate(img, 64<<20), "sizing the image")
	out, err := exec.Command("losetup", "--find", "--show", img).Output()
	must(err, "losetup")
	loop := strings.TrimSpace(string(out))
	must(exec.Command("mkfs.ext4", "-q", loop).Run(), "mkfs.ext4")
	must(os.MkdirAll(mnt, 0o755), "mkdir")
	must(exec.Command("mount", loop, mnt).Run(), "mount")
	// A process that holds the mount busy, as a node agent's mkfs or a user's shell would.
	sleeper := exec.Command("sleep", "600")
	sleeper.Dir = mnt
	must(sleeper.Start(), "starting sleep")
	fmt.Printf("%s %d\n", sb.Dir, sleeper.Process.Pid)
	switch how {
	case "close":
		must(sb.Close(), "closing the sandbox")
		os.Exit(0)
	case "panic":
		panic("a test panicked on purpose")
	case "sigkill":
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	case "orphan":
		// Everything dies at once, the guard too, as in a machine's restart.
		_ = syscall.Kill(sleeper.Process.Pid, syscall.SIGKILL)
		_, _ = sleeper.Process.Wait()
		_ = sb.guard.Process.Kill()
		_, _ = sb.guard.Process.Wait()
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
	os.Exit(3)
}

// A test process that leaves a busy mount on a loop device and a running child behind is
// swept the same way however it ends: closed, panicked, exited, or killed with SIGKILL.
func TestSandboxSweptHoweverTheProcessEnds(t *testing.T) {
	for _, how := range []string{"close", "panic", "exit", "sigkill"} {
		t.Run(how, func(t *testing.T) {
			dir, sleeper, err := runChild(t, how)
			if how == "close" && err != nil {
				t.Fatalf("the child failed: %v", err)
			}
			if how != "close" && err == nil {
				t.Fatalf("the child should have ended badly (%s)", how)
			}
			// The guard sweeps once it sees the child gone; the directory goes last.
			if err := WaitUntil(30*time.Second, func() bool { _, err := os.Stat(dir); return os.IsNotExist(err) }); err != nil {
				t.Errorf("%s still there: %v", dir, err)
			}
			if ms, _ := MountsUnder(dir); len(ms) > 0 {
				t.Errorf("mounts left: %v", ms)
			}
			if loops, _ := LoopDevicesUnder(dir); len(loops) > 0 {
				t.Errorf("loop devices left: %v", loops)
			}
			if pids := markedProcesses(dir, nil); len(pids) > 0 {
				t.Errorf("processes left: %v", pids)
			}
			if alive(sleeper) {
				t.Errorf("the child's child %d is still running", sleeper)
			}
		})
	}
}

// A sandbox whose processes all died at once, its guard with them (a machine restarted,
// everything killed), is swept by the next test process that starts: its mount and loop
// device too. A sandbox with a live process, one just made, one kept on purpose (KeepEnv),
// and a directory that only looks like one are left alone.
func TestOrphanedSandboxSweptByTheNextRun(t *testing.T) {
	tmp := os.TempDir() // inside this test's own sandbox, as the child's sandbox is
	orphan, _, err := runChild(t, "orphan")
	if err == nil {
		t.Fatal("the child should have been killed")
	}
	if ms, _ := MountsUnder(orphan); len(ms) == 0 || claimed(orphan) {
		t.Fatalf("the orphan should have left a mount (%d) and no live process (claimed: %v)", len(ms), claimed(orphan))
	}

	others := map[string]string{}
	for _, name := range []string{"claimed", "kept", "fresh", "foreign"} {
		others[name] = filepath.Join(tmp, "ossea-"+name)
		if err := os.Mkdir(others[name], 0o755); err != nil {
			t.Fatal(err)
		}
		if name == "foreign" {
			continue // not a sandbox: someone else's directory that happens to match
		}
		if err := os.WriteFile(filepath.Join(others[name], sandboxMarker), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	busy := exec.Command("sleep", "60")
	busy.Env = append(os.Environ(), SandboxEnv+"="+filepath.Join(others["claimed"], "world"))
	if err := busy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = busy.Process.Kill(); _ = busy.Wait() })
	if err := os.WriteFile(filepath.Join(others["kept"], keptMarker), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-10 * orphanAge)
	for _, dir := range []string{orphan, others["claimed"], others["kept"], others["foreign"]} {
		if err := os.Chtimes(dir, past, past); err != nil {
			t.Fatal(err)
		}
	}

	if err := sweepOrphans(tmp, orphanAge); err != nil {
		t.Fatalf("sweeping: %v", err)
	}
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Errorf("the orphaned sandbox %s is still there (%v)", orphan, err)
	}
	if ms, _ := MountsUnder(orphan); len(ms) > 0 {
		t.Errorf("mounts left: %v", ms)
	}
	if loops, _ := LoopDevicesUnder(orphan); len(loops) > 0 {
		t.Errorf("loop devices left: %v", loops)
	}
	for name, dir := range others {
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("the %s sandbox was swept: %v", name, err)
		}
	}
}

// runChild runs the test binary as a child that ends the way how says (see child), and
// returns its sandbox, the pid of the process it left running, and how it exited.
func runChild(t *testing.T, how string) (dir string, sleeper int, exit error) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+how)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	_, scanErr := fmt.Sscanf(line, "%s %d", &dir, &sleeper)
	exit = cmd.Wait()
	if scanErr != nil {
		t.Fatalf("the child did not report its sandbox (%q): %v, exit: %v", line, scanErr, exit)
	}
	return dir, sleeper, exit
}

// alive reports whether pid runs and is not a zombie.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z"
}

func TestNeedsNameTheMissingCommandAndItsPackage(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "hack"), 0o755); err != nil {
		t.Fatal(err)
	}
	list := "# comment\nossea-no-such-tool   ossea-tools\nsh  dash\n"
	if err := os.WriteFile(filepath.Join(root, "hack", "deps.txt"), []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tools []string
		want  string // "" when met
	}{
		{[]string{"sh"}, ""},
		{[]string{"sh", "ossea-no-such-tool"}, "ossea-no-such-tool (Debian package ossea-tools)"},
		{[]string{"ossea-unlisted-tool"}, "ossea-unlisted-tool (Debian package not listed in hack/deps.txt)"},
	} {
		err := Needs{Tools: c.tools}.Check(root)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%v: %v, want met", c.tools, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "make deps")):
			t.Errorf("%v: %v, want a line naming %q and `make deps`", c.tools, err, c.want)
		}
	}
}

func TestWithin(t *testing.T) {
	for _, c := range []struct {
		path, dir string
		want      bool
	}{
		{"/tmp/a", "/tmp/a", true},
		{"/tmp/a/b", "/tmp/a", true},
		{"/tmp/a/b", "/tmp/a/", true},
		{"/tmp/ab", "/tmp/a", false},
		{"/x/tmp/a/b", "/tmp/a", false},
	} {
		if got := within(c.path, c.dir); got != c.want {
			t.Errorf("within(%q, %q) = %v, want %v", c.path, c.dir, got, c.want)
		}
	}
}
