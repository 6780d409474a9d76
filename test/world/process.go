package world

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process is one binary running in the background, its output appended to a log file that
// survives restarts.
type Process struct {
	Name string
	Bin  string
	Args []string
	Log  string
	Env  []string // added to the harness's environment

	w    *World
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs bin with args as a tracked process; Close stops it if nobody else did.
func (w *World) Start(name, bin string, args ...string) (*Process, error) {
	return w.StartWithEnv(name, nil, bin, args...)
}

// StartWithEnv is Start with env (KEY=value) added to the process's environment.
func (w *World) StartWithEnv(name string, env []string, bin string, args ...string) (*Process, error) {
	p := &Process{Name: name, Bin: bin, Args: args, Env: env, Log: filepath.Join(w.Logs, name+".log"), w: w}
	if err := p.start(); err != nil {
		return nil, err
	}
	w.mu.Lock()
	w.procs = append(w.procs, p)
	w.mu.Unlock()
	return p, nil
}

func (p *Process) start() error {
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.Bin, p.Args...)
	cmd.Stdout, cmd.Stderr = f, f
	// Marked as this world's, so that its sweep finds the process and its children.
	cmd.Env = append(append(os.Environ(), p.Env...), SandboxEnv+"="+p.w.Dir)
	// Its own process group, so a Ctrl-C meant for the harness reaches the children only
	// through the harness, which stops them in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("starting %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(done)
	}()
	p.cmd, p.done = cmd, done
	return nil
}

// PID is the process id of the current incarnation.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Running reports whether the current incarnation has not exited.
func (p *Process) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Stop asks the process to end (SIGTERM) and waits; after 15 seconds it is killed.
func (p *Process) Stop() {
	if !p.Running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Kill ends the process and every child it started (mkfs, mount) at once with SIGKILL, as
// a crash of its container would.
func (p *Process) Kill() {
	if !p.Running() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Restart starts the process again with the same arguments and log, after it has ended.
func (p *Process) Restart() error {
	if p.Running() {
		return fmt.Errorf("%s is still running", p.Name)
	}
	return p.start()
}

// LogText is everything the process wrote so far, all incarnations.
func (p *Process) LogText() string {
	b, _ := os.ReadFile(p.Log)
	return string(b)
}

// Usage is what the kernel says a process has used.
type Usage struct {
	// PeakRSSBytes is VmHWM, the resident set's high-water mark.
	PeakRSSBytes int64 `json:"peakRSSBytes"`
	// RSSBytes is VmRSS, the resident set now.
	RSSBytes int64 `json:"rssBytes"`
	// CPUSeconds is user plus system time.
	CPUSeconds float64 `json:"cpuSeconds"`
}

// Usage reads /proc/<pid>/status and /proc/<pid>/stat of the current incarnation.
func (p *Process) Usage() (Usage, error) {
	return ProcUsage(p.PID())
}

// clockTicks is USER_HZ, which is 100 on every Linux the project runs on.
const clockTicks = 100

// ProcUsage reads a process's memory and CPU use from /proc.
func ProcUsage(pid int) (Usage, error) {
	var u Usage
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(val)
		if len(f) < 1 {
			continue
		}
		kb, _ := strconv.ParseInt(f[0], 10, 64)
		switch key {
		case "VmHWM":
			u.PeakRSSBytes = kb << 10
		case "VmRSS":
			u.RSSBytes = kb << 10
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	// The command name may hold spaces and parentheses; the fields start after the last ')'.
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return u, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64) // field 14 of the full line
	stime, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	u.CPUSeconds = float64(utime+stime) / clockTicks
	return u, nil
}

// TreeUsage sums the usage of a process and all its descendants (the API server's etcd and
// kube-apiserver are children of localapi). Peak RSS is the largest single one.
func TreeUsage(pid int) (Usage, error) {
	children := map[int][]int{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return Usage{}, err
	}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		s := string(stat)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 {
			if ppid, err := strconv.Atoi(f[1]); err == nil {
				children[ppid] = append(children[ppid], p)
			}
		}
	}
	var total Usage
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		queue = append(queue, children[p]...)
		u, err := ProcUsage(p)
		if err != nil {
			continue
		}
		total.CPUSeconds += u.CPUSeconds
		total.RSSBytes += u.RSSBytes
		total.PeakRSSBytes = max(total.PeakRSSBytes, u.PeakRSSBytes)
	}
	return total, nil
}

// LogTails is the last n lines of every log in the world, for a failure report when the
// scratch directory is not kept.
func (w *World) LogTails(n int) string {
	entries, _ := os.ReadDir(w.Logs)
	var b strings.Builder
	for _, e := range entries {
		text, err := os.ReadFile(filepath.Join(w.Logs, e.Name()))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(text), "\n"), "\n")
		fmt.Fprintf(&b, "--- %s (last %d of %d lines)\n", e.Name(), min(n, len(lines)), len(lines))
		b.WriteString(strings.Join(lines[max(0, len(lines)-n):], "\n") + "\n")
	}
	return b.String()
}
