package world

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/migratekit/ossea-operator/internal/testenv"
)

// Main is the TestMain of every test package that runs an API server or touches the host.
// It checks needs (a missing tool fails here, in seconds), enters the sandbox, runs setup,
// the tests and teardown, then sweeps the sandbox. It does not return. A panic or a
// timeout skips teardown, but not the sweep: the guard does it once this process is gone.
//
// setup may be nil; the teardown it returns may be nil, and learns whether a test failed.
func Main(m *testing.M, needs Needs, setup func() (teardown func(failed bool), err error)) {
	os.Exit(run(m, needs, setup))
}

func run(m *testing.M, needs Needs, setup func() (func(bool), error)) int {
	name := strings.TrimSuffix(filepath.Base(os.Args[0]), ".test")
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 1
	}
	root, err := FindRoot()
	if err != nil {
		return fail(err)
	}
	if err := needs.Check(root); err != nil {
		return fail(err)
	}
	sb, err := EnterSandbox("ossea-" + name + "-")
	if err != nil {
		return fail(err)
	}
	code := func() (code int) {
		if setup == nil {
			return m.Run()
		}
		teardown, err := setup()
		if teardown != nil {
			defer func() { teardown(code != 0) }()
		}
		if err != nil {
			return fail(err)
		}
		return m.Run()
	}()
	if err := sb.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "%s: cleaning up the sandbox: %v\n", name, err)
		code = 1
	}
	return code
}

// LazyAPIServer is one kube-apiserver and etcd shared by a package's tests, started the
// first time a test asks for it (inside the sandbox, so the guard sweeps it should the run
// die): the package's tests that need none, decisions as tables, run without one. Give
// Stop to Main as the teardown.
type LazyAPIServer struct {
	once sync.Once
	env  *testenv.Env
	err  error
}

// Get returns the API server, starting it on the first call; it fails the test if it
// cannot start.
func (l *LazyAPIServer) Get(t testing.TB) *testenv.Env {
	t.Helper()
	l.once.Do(func() {
		root, err := FindRoot()
		if err != nil {
			l.err = fmt.Errorf("finding the repository root: %w", err)
			return
		}
		l.env, l.err = testenv.Start(root)
	})
	if l.err != nil {
		t.Fatalf("this test needs a kube-apiserver: %v", l.err)
	}
	return l.env
}

// Stop stops the API server if a test started it.
func (l *LazyAPIServer) Stop(bool) {
	if l.env != nil {
		_ = l.env.Stop()
	}
}

// MainWithAPIServer is Main for a package whose tests share one kube-apiserver and etcd
// (internal/testenv): they start inside the sandbox, use gets them before the tests run,
// and they stop after.
func MainWithAPIServer(m *testing.M, needs Needs, use func(*testenv.Env)) {
	Main(m, needs, func() (func(bool), error) {
		root, err := FindRoot()
		if err != nil {
			return nil, err
		}
		env, err := testenv.Start(root)
		if err != nil {
			return nil, err
		}
		use(env)
		return func(bool) { _ = env.Stop() }, nil
	})
}
