// Command kubectl-ossea is the ossea-operator's kubectl plugin: on PATH, kubectl runs it as
// `kubectl ossea`. See internal/plugin.
package main

import (
	"context"
	"os"
	"os/signal"

	"github.com/migratekit/ossea-operator/internal/plugin"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := plugin.Run(ctx, os.Args[1:], plugin.IO{
		Stdout:   os.Stdout,
		Stderr:   os.Stderr,
		Environ:  os.Environ(),
		ReadFile: os.ReadFile,
	})
	stop()
	os.Exit(code)
}
