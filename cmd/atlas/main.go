// Command atlas is the single binary of Atlas: one subcommand per role and
// per operator task. It parses flags and ATLAS_* environment variables,
// builds the configuration structs of the packages it wires, and nothing
// else; behaviour lives in those packages.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes, documented in the README.
const (
	exitOK       = 0
	exitFailure  = 1 // the command failed: see its message
	exitUsage    = 2 // bad flags, arguments or configuration
	exitProblems = 3 // the command ran and found problems (drift, failed checks)
)

// problemsError marks a run that completed but found something a human must
// look at; main maps it to exitProblems.
type problemsError struct{ msg string }

func (e *problemsError) Error() string { return e.msg }

// usageError marks bad flags or configuration; main maps it to exitUsage.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:]))
}

func run(ctx context.Context, args []string) int {
	root := newRoot()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(os.Stderr, "atlas: %v\n", err)
	var pe *problemsError
	var ue *usageError
	switch {
	case errors.As(err, &pe):
		return exitProblems
	case errors.As(err, &ue), isCobraUsageError(err):
		return exitUsage
	default:
		return exitFailure
	}
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "atlas",
		Short: "Atlas: the real-time data spine of a video streaming service",
		Long: `Atlas turns playback and browse events into taste vectors, fraud and
quality alerts, and windowed aggregates in ClickHouse, within seconds.

Every flag can also be set with an ATLAS_* environment variable. The flags
below, shared by every command, map directly: --kafka-brokers is
ATLAS_KAFKA_BROKERS. A command's own flags carry the command's name:
atlas ingest --listen is ATLAS_INGEST_LISTEN, atlas run --ops-addr is
ATLAS_RUN_OPS_ADDR. A flag on the command line wins.`,
		Example: `  # check that Kafka, ClickHouse and their users are reachable
  atlas doctor

  # create the topics and tables Atlas needs
  atlas topology apply && atlas clickhouse migrate`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindEnv(cmd); err != nil {
				return &usageError{err}
			}
			return g.setupLogging(cmd.ErrOrStderr())
		},
	}
	g.register(root)
	root.AddCommand(
		newVersionCmd(),
		newTopologyCmd(g),
		newClickHouseCmd(g),
		newDoctorCmd(g),
	)
	for _, sub := range subcommands {
		root.AddCommand(sub(g))
	}
	return root
}

// subcommands are registered by the files of roles and tools
// (`func init() { subcommands = append(subcommands, newIngestCmd) }`), so
// that adding one does not touch this file.
var subcommands []func(*globals) *cobra.Command

// isCobraUsageError recognises cobra's own argument and flag errors, which
// it returns as plain errors.
func isCobraUsageError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "accepts ", "requires at least", "invalid argument", "flag needs an argument", "required flag"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}
