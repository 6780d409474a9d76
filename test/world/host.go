package world

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Mount is one line of /proc/self/mountinfo.
type Mount struct {
	Target string
	Source string
	FSType string
}

// MountsUnder lists the mounts whose target is below dir.
func MountsUnder(dir string) ([]Mount, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	prefix := strings.TrimSuffix(dir, "/") + "/"
	var out []Mount
	for _, line := range strings.Split(string(b), "\n") {
		// id parent major:minor root target options [optional...] - fstype source superopts
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 2 {
			continue
		}
		target := unescapeMountinfo(f[4])
		if strings.HasPrefix(target, prefix) {
			out = append(out, Mount{Target: target, FSType: g[0], Source: unescapeMountinfo(g[1])})
		}
	}
	return out, nil
}

// unescapeMountinfo undoes the kernel's octal escapes of space, tab, newline and backslash.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(byte(c))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// LoopDevice is a loop device and its backing file.
type LoopDevice struct {
	Device  string
	Backing string
}

// LoopDevicesUnder lists the loop devices whose backing file is below dir.
func LoopDevicesUnder(dir string) ([]LoopDevice, error) {
	out, err := exec.Command("losetup", "--list", "--noheadings", "--raw", "--output", "NAME,BACK-FILE").Output()
	if err != nil {
		return nil, fmt.Errorf("losetup --list: %w", err)
	}
	prefix := strings.TrimSuffix(dir, "/") + "/"
	var loops []LoopDevice
	for _, line := range strings.Split(string(out), "\n") {
		name, back, ok := strings.Cut(strings.TrimSpace(line), " ")
		// --raw escapes spaces in the file name as \x20.
		back = strings.ReplaceAll(back, `\x20`, " ")
		// A backing file removed while attached is listed with this suffix.
		back = strings.TrimSuffix(back, " (deleted)")
		if ok && strings.HasPrefix(back, prefix) {
			loops = append(loops, LoopDevice{Device: name, Backing: back})
		}
	}
	return loops, nil
}
