package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/atlas-stream/atlas/topology"
)

func newTopologyCmd(g *globals) *cobra.Command {
	var opts topology.Options
	build := func() (topology.Topology, error) {
		opts.Prefix = g.topicPrefix
		if err := opts.Validate(); err != nil {
			return topology.Topology{}, &usageError{err}
		}
		t := topology.Default(opts)
		if err := t.Validate(); err != nil {
			return t, &usageError{err}
		}
		return t, nil
	}
	cmd := &cobra.Command{
		Use:   "topology",
		Short: "Show Atlas's topics, groups and roles, or create them on a cluster",
		Example: `  atlas topology show
  atlas topology apply --replication-factor 3   # exit 3: existing topics drifted`,
	}
	f := cmd.PersistentFlags()
	f.IntVar(&opts.Partitions, "partitions", topology.DefaultPartitions, "partitions of the keyed event topics (and their changelogs)")
	f.IntVar(&opts.ReplicationFactor, "replication-factor", topology.DefaultReplicationFactor, "replication factor of every topic (3 in production)")

	apply := &cobra.Command{
		Use:   "apply",
		Short: "Create missing topics; report drift of existing ones without changing them",
		Long: `Create every declared topic that the cluster lacks, with its partitions,
replication factor, cleanup policy and retention. Existing topics are
compared with the declaration and never altered: a difference (say, more
partitions than declared) is reported as drift for a person to resolve,
because changing partitions moves keys and changing cleanup deletes data.
Applying twice changes nothing. Exits 3 when drift is found.`,
		Example: `  atlas topology apply
  atlas topology apply --replication-factor 3 --kafka-brokers kafka-1:9092,kafka-2:9092`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := build()
			if err != nil {
				return err
			}
			kc, err := g.kafka()
			if err != nil {
				return err
			}
			client, err := kc.Client()
			if err != nil {
				return err
			}
			client.Timeout = 30 * time.Second
			report, err := topology.Apply(cmd.Context(), client, t)
			if err == nil || len(report.Topics) > 0 {
				// On an error, only what was done before it: a report of
				// "cluster : 0 topics" above the error only confused.
				fmt.Fprint(cmd.OutOrStdout(), report.String())
			}
			if err != nil {
				return err
			}
			if d := report.Drift(); len(d) > 0 {
				return &problemsError{fmt.Sprintf("%d setting(s) drifted from the declaration; nothing was changed", len(d))}
			}
			return nil
		},
	}

	var format string
	show := &cobra.Command{
		Use:   "show",
		Short: "Print the topology as tables or as a Mermaid diagram",
		Example: `  atlas topology show
  atlas topology show --format mermaid > docs/topology.mmd`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := build()
			if err != nil {
				return err
			}
			switch format {
			case "table":
				return topology.WriteTable(cmd.OutOrStdout(), t)
			case "mermaid":
				return topology.WriteMermaid(cmd.OutOrStdout(), t)
			default:
				return &usageError{fmt.Errorf("invalid --format %q: want table or mermaid", format)}
			}
		},
	}
	show.Flags().StringVar(&format, "format", "table", "output: table or mermaid")
	cmd.AddCommand(apply, show)
	return cmd
}
