// Package plugin is the kubectl plugin kubectl-ossea: `import` turns a legacy OMA
// configuration into a Secret and an OsseaConfig on stdout; `jobs` and `orphans` print
// tables of MigrationJobs and of the orphaned volumes the OsseaConfigs report.
// cmd/kubectl-ossea only calls Run.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"

	"github.com/migratekit/ossea-operator/internal/legacyconfig"
)

// IO is what a run reads and writes besides its arguments: the process's in a real run,
// buffers and a made-up environment in tests.
type IO struct {
	Stdout io.Writer
	Stderr io.Writer
	// Environ is the environment, as os.Environ returns it; import --from-env reads it and
	// the kubeconfig loading reads KUBECONFIG through the real environment.
	Environ []string
	// ReadFile reads the file of import --from-file.
	ReadFile func(path string) ([]byte, error)
}

const usage = `kubectl ossea: the ossea-operator's kubectl plugin.

  kubectl ossea import (--from-env | --from-file FILE) [--name NAME] [--namespace NS]
      Print a Secret and an OsseaConfig made from a legacy OMA configuration (the
      OSSEA_* environment variables, a YAML file, or the JSON body of the OMA API),
      for kubectl apply -f -.
  kubectl ossea jobs [-n NS | -A]
      A table of MigrationJobs: VM, config, disks ready/total, phase, cut-over target.
  kubectl ossea orphans [-n NS | -A]
      A table of the orphaned volumes the OsseaConfigs report in status.orphans.

jobs and orphans take the usual --kubeconfig, --context, -n/--namespace flags.
Run kubectl ossea COMMAND -h for a command's flags.
`

// Run runs one command line (without the program name) and returns the exit code: 0, 1
// for a failure, 2 for a usage error.
func Run(ctx context.Context, args []string, io IO) int {
	if len(args) == 0 {
		fmt.Fprint(io.Stderr, usage)
		return 2
	}
	args = commandFirst(args)
	var err error
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(io.Stdout, usage)
		return 0
	case "import":
		err = runImport(args[1:], io)
	case "jobs":
		err = runJobs(ctx, args[1:], io)
	case "orphans":
		err = runOrphans(ctx, args[1:], io)
	default:
		err = usageError{fmt.Errorf("unknown command %q; see kubectl ossea -h", clip(args[0]))}
	}
	return report(io.Stderr, err)
}

// commands are the plugin's commands.
var commands = map[string]bool{"import": true, "jobs": true, "orphans": true, "help": true}

// commandFirst moves the command to the front, so that flags given before it, as kubectl's
// own are (`kubectl ossea -n team-a jobs`), are parsed by the command like those after it.
func commandFirst(args []string) []string {
	for i, a := range args {
		if commands[a] {
			return append([]string{a}, append(append([]string{}, args[:i]...), args[i+1:]...)...)
		}
	}
	return args
}

// usageError is a mistake in the command line (exit code 2).
type usageError struct{ error }

// helpShown is returned after -h printed a command's help (exit code 0).
var helpShown = errors.New("help shown")

func report(stderr io.Writer, err error) int {
	var ue usageError
	var ie *legacyconfig.Error
	switch {
	case err == nil, errors.Is(err, helpShown):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "error: %v\n", ue.error)
		return 2
	case errors.As(err, &ie):
		fmt.Fprintf(stderr, "error: %s\n", ie.Line)
		return 1
	}
	fmt.Fprintf(stderr, "error: %v\n", err)
	return 1
}

// newFlags is a flag set that reports errors to the caller only: pflag would print the
// usage, and the one line the caller prints is enough.
func newFlags(name string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	return fs
}

// parseFlags parses args, turning -h into helpShown (after printing the flags to stdout)
// and any other error into a usageError. A positional argument is refused: no command
// takes one.
func parseFlags(fs *pflag.FlagSet, args []string, summary string, stdout io.Writer) error {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, pflag.ErrHelp):
		fmt.Fprintf(stdout, "%s\n\nFlags:\n%s", summary, fs.FlagUsages())
		return helpShown
	case err != nil:
		return usageError{fmt.Errorf("%s: %w; see kubectl ossea %s -h", fs.Name(), flagError(err), fs.Name())}
	case fs.NArg() > 0:
		return usageError{fmt.Errorf("%s takes no arguments; see kubectl ossea %s -h", fs.Name(), fs.Name())}
	}
	return nil
}

// flagError keeps pflag's message but not a bad value it may quote (`invalid argument
// "..." for "--flag"`): a key pasted into the wrong flag must not be printed.
func flagError(err error) error {
	msg := err.Error()
	if i := strings.Index(msg, "invalid argument"); i >= 0 {
		if j := strings.Index(msg, " for "); j > i {
			return errors.New("invalid argument" + msg[j:])
		}
	}
	return err
}

// clip keeps a word from the command line short and printable for a message.
func clip(s string) string {
	if len(s) > 30 || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "(unreadable)"
	}
	return s
}
