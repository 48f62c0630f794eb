package main

import "github.com/spf13/cobra"

func init() { subcommands = append(subcommands, newEvalCmd) }

// evalSubcommands are the `atlas eval …` commands; each registers itself
// from its own file (eval_recs.go, …) in an init function.
var evalSubcommands []func(*globals) *cobra.Command

func newEvalCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "eval",
		Short: "Measure a role's quality offline, on a recorded stream",
		Long: `Run a role's processor offline over a file (simulator output or a public
data set) and print how well it does next to simple baselines. Nothing
connects to Kafka or ClickHouse.`,
		Example: `  atlas eval anomaly --seeds 1-3 --nab ''
  atlas eval recs --help`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	for _, sub := range evalSubcommands {
		cmd.AddCommand(sub(g))
	}
	return cmd
}
