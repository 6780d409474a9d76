package plugin

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/migratekit/ossea-operator/internal/legacyconfig"
)

const importSummary = `Usage: kubectl ossea import (--from-env | --from-file FILE) [--name NAME] [--namespace NS]

Prints a Secret (<name>-credentials) and an OsseaConfig made from a legacy OMA
configuration, for kubectl apply -f -. Problems and notes go to stderr, one line each,
and never show a key. The name is --name, else the legacy "name", else "ossea"; a name
that is not a DNS label is made into one, with a note.`

// runImport prints the objects only once everything checked out, so a failure leaves
// stdout empty and `| kubectl apply -f -` applies nothing.
func runImport(args []string, io IO) error {
	flags := newFlags("import")
	fromEnv := flags.Bool("from-env", false, "read the OSSEA_* environment variables")
	fromFile := flags.String("from-file", "", "read a legacy YAML file or a JSON body of the OMA API")
	name := flags.String("name", "", "name of the OsseaConfig (default: the legacy name, else \"ossea\")")
	namespace := flags.StringP("namespace", "n", "", "set metadata.namespace (default: none, so kubectl apply -n decides)")
	if err := parseFlags(flags, args, importSummary, io.Stdout); err != nil {
		return err
	}
	fileGiven := flags.Changed("from-file")
	if *fromEnv == fileGiven {
		return usageError{errors.New("import: give exactly one of --from-env and --from-file")}
	}
	p, err := parseLegacy(*fromEnv, *fromFile, io)
	if err != nil {
		return err
	}
	out, err := legacyconfig.Build(p, legacyconfig.Options{Name: *name, Namespace: *namespace})
	if err != nil {
		return err
	}
	for _, n := range out.Notes {
		fmt.Fprintln(io.Stderr, n)
	}
	_, err = io.Stdout.Write(out.YAML)
	return err
}

func parseLegacy(fromEnv bool, path string, io IO) (*legacyconfig.Parsed, error) {
	if fromEnv {
		return legacyconfig.FromEnv(io.Environ)
	}
	if strings.TrimSpace(path) == "" {
		return nil, usageError{errors.New("import: --from-file needs a file name")}
	}
	data, err := io.ReadFile(path)
	if err != nil {
		return nil, &legacyconfig.Error{Line: fmt.Sprintf("cannot read %s: %s", path, readProblem(err))}
	}
	return legacyconfig.FromFile(path, data)
}

// readProblem says why a file could not be read without repeating the path twice.
func readProblem(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
