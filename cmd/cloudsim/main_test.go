package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/cloudstack-go/v2/cloudstack"

	"github.com/migratekit/ossea-operator/internal/cloudsim"
	"github.com/migratekit/ossea-operator/internal/guestdisk"
	"github.com/migratekit/ossea-operator/test/world"
)

// TestMain lets a test start this binary as the real command (a child process
// that receives real signals).
func TestMain(m *testing.M) {
	if os.Getenv("CLOUDSIM_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	world.Main(m, world.Needs{Root: true, Tools: []string{"losetup"}}, nil)
}

var apiLine = regexp.MustCompile(`cloudsim: CloudStack API at (http://\S+/client/api)`)

// watchOutput returns the API URL once printed, and everything printed so far
// when done is closed.
func watchOutput(t *testing.T, r io.Reader) (url string, output func() string) {
	t.Helper()
	found := make(chan string, 1)
	all := make(chan string, 1)
	go func() {
		var b strings.Builder
		s := bufio.NewScanner(r)
		for s.Scan() {
			b.WriteString(s.Text() + "\n")
			if m := apiLine.FindStringSubmatch(s.Text()); m != nil {
				found <- m[1]
			}
		}
		all <- b.String()
	}()
	select {
	case url = <-found:
	case <-time.After(30 * time.Second):
		t.Fatal("cloudsim did not print its address")
	}
	return url, func() string { return <-all }
}

func TestRunPrintsDefaultWorldAndServes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--job-latency", "0"}, pw, io.Discard)
		pw.Close()
	}()
	api, output := watchOutput(t, pr)

	cs := cloudstack.NewAsyncClient(api, cloudsim.DefaultAPIKey, cloudsim.DefaultSecretKey, false)
	p := cs.VirtualMachine.NewListVirtualMachinesParams()
	p.SetId(cloudsim.DefaultOMAVMID)
	vms, err := cs.VirtualMachine.ListVirtualMachines(p)
	if err != nil || vms.Count != 1 || vms.VirtualMachines[0].State != "Running" {
		t.Fatalf("listVirtualMachines: %+v, %v", vms, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	out := output()
	for _, want := range []string{"default world", "apiKey: " + cloudsim.DefaultAPIKey, "id: " + cloudsim.DefaultOMAVMID} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// --api-throttle-max reaches the simulator: a user account's calls past it are refused.
func TestRunThrottles(t *testing.T) {
	w := cloudsim.DefaultWorld()
	w.Accounts[0].Admin = false // CloudStack never throttles a root admin
	y, err := w.YAML()
	if err != nil {
		t.Fatal(err)
	}
	worldFile := filepath.Join(t.TempDir(), "world.yaml")
	if err := os.WriteFile(worldFile, y, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--world", worldFile,
			"--api-throttle-max", "2", "--api-throttle-interval", "1h"}, pw, io.Discard)
		pw.Close()
	}()
	api, output := watchOutput(t, pr)

	cs := cloudstack.NewClient(api, cloudsim.DefaultAPIKey, cloudsim.DefaultSecretKey, false)
	var errs []error
	for range 3 {
		_, err := cs.Zone.ListZones(cs.Zone.NewListZonesParams())
		errs = append(errs, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("calls within the limit failed: %v", errs)
	}
	if errs[2] == nil || !strings.HasPrefix(errs[2].Error(), "CloudStack API error 429 (CSExceptionErrorCode: 9999): The given user has reached his/her account api limit") {
		t.Fatalf("the call past the limit: %v", errs[2])
	}
	if out := output(); !strings.Contains(out, "API throttling: 2 calls per account per 1h0m0s") {
		t.Errorf("output does not say throttling is on:\n%s", out)
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{{"--error-rate", "2"}, {"--world", "/nonexistent.yaml"}, {"stray"},
		{"--api-throttle-max", "-1"}, {"--api-throttle-max", "5", "--api-throttle-interval", "-1s"}} {
		if err := run(context.Background(), append(args, "--listen", "127.0.0.1:0"), io.Discard, io.Discard); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

// The real process, a real signal: it exits cleanly and leaves no loop device.
func TestSignalRemovesLoopDevices(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (loop devices)")
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) { signalRemovesLoopDevices(t, sig) })
	}
}

func signalRemovesLoopDevices(t *testing.T, sig syscall.Signal) {
	dir := t.TempDir()
	world := cloudsim.DefaultWorld()
	world.VirtualMachines[0].Local = &cloudsim.LocalDisks{ByIDDir: filepath.Join(dir, "by-id"), BackingDir: filepath.Join(dir, "disks")}
	y, err := world.YAML()
	if err != nil {
		t.Fatal(err)
	}
	worldFile := filepath.Join(dir, "world.yaml")
	if err := os.WriteFile(worldFile, y, 0o600); err != nil {
		t.Fatal(err)
	}
	stateFile := filepath.Join(dir, "state.json")

	cmd := exec.Command(os.Args[0], "--listen", "127.0.0.1:0", "--world", worldFile, "--state", stateFile, "--job-latency", "0")
	cmd.Env = append(os.Environ(), "CLOUDSIM_TEST_MAIN=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	api, _ := watchOutput(t, stdout)

	cs := cloudstack.NewAsyncClient(api, cloudsim.DefaultAPIKey, cloudsim.DefaultSecretKey, false)
	cp := cs.Volume.NewCreateVolumeParams()
	cp.SetZoneid(cloudsim.DefaultZoneID)
	cp.SetDiskofferingid(cloudsim.DefaultDiskOfferingID)
	cp.SetSize(1)
	v, err := cs.Volume.CreateVolume(cp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Volume.AttachVolume(cs.Volume.NewAttachVolumeParams(v.Id, cloudsim.DefaultOMAVMID)); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "by-id", "virtio-"+guestdisk.Serial(v.Id))
	backing := filepath.Join(dir, "disks", v.Id+".img")
	if device, err := filepath.EvalSymlinks(link); err != nil || !strings.HasPrefix(device, "/dev/loop") {
		t.Fatalf("by-id link: %q %v", device, err)
	}

	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("cloudsim exit after %v: %v", sig, err)
	}
	out, err := exec.Command("losetup", "--associated", backing).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) != 0 {
		t.Fatalf("loop devices after %v: %q %v", sig, out, err)
	}
	if _, err := os.Lstat(link); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("by-id link after %v: %v", sig, err)
	}
	if st, err := os.Stat(stateFile); err != nil || st.Size() == 0 {
		t.Fatalf("state file: %v", err)
	}
}
