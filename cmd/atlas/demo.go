package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/spf13/cobra"

	"github.com/atlas-stream/atlas/topology"
)

func init() { subcommands = append(subcommands, newDemoCmd) }

// newDemoCmd groups the steps of `make demo` that are more than a line of
// shell: the report printed after the simulated traffic, and the cleanup
// of a previous demo's topics.
func newDemoCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Steps of make demo: the report after the traffic, the cleanup of old demo topics",
		Long: `The steps of 'make demo' (scripts/demo.sh) that are more than a line of
shell. Each demo run uses its own topic prefix, so that its simulated hour
never arrives "late" behind the previous run's; 'atlas demo clean' removes
the topics of an older run, 'atlas demo report' prints what the run
produced.`,
		Example: `  make demo                       # runs everything below
  atlas demo report --truth truth.json
  ATLAS_TOPIC_PREFIX=demo-1764150000. atlas demo clean`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newDemoReportCmd(g), newDemoCleanCmd(g))
	return cmd
}

func newDemoCleanCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "clean",
		Short: "Delete the topics and consumer groups of one demo run (its --topic-prefix)",
		Long: `Delete every topic of the topology (and the anomaly role's re-key topic)
and every consumer group under --topic-prefix, which must start with "demo":
the topics of a previous 'make demo' run. The rows that run wrote to
ClickHouse stay: they name their source topic, so they never mix with
another run's. Topics that do not exist are not an error; stop the run's
processes first.`,
		Example: `  atlas demo clean --topic-prefix demo-1764150000.`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !strings.HasPrefix(g.topicPrefix, "demo") {
				return &usageError{fmt.Errorf("invalid --topic-prefix %q: demo clean deletes only a demo's topics, whose prefix starts with \"demo\"", g.topicPrefix)}
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
			t := topology.Default(topology.Options{Prefix: g.topicPrefix})
			ctx := cmd.Context()
			var groups []string
			for _, r := range t.Roles {
				if r.Group != "" {
					groups = append(groups, t.GroupID(r.Group))
				}
			}
			// A group whose offsets expire on their own costs nothing, so a
			// group that cannot be deleted is only worth a warning; a broker
			// that just started may not have loaded its coordinators yet.
			if err := deleteGroups(ctx, client, groups); err != nil {
				slog.Warn("consumer groups left in place (they expire by themselves)", "prefix", g.topicPrefix, "err", err)
			}
			names := []string{t.Name(RekeyTopic)}
			for _, s := range t.Topics {
				names = append(names, t.Name(s.Name))
			}
			res, err := client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: names})
			if err != nil {
				return fmt.Errorf("cannot delete the topics of %s: %w", g.topicPrefix, err)
			}
			deleted := 0
			for name, e := range res.Errors {
				switch {
				case e == nil:
					deleted++
				case errors.Is(e, kafka.UnknownTopicOrPartition):
				default:
					return fmt.Errorf("cannot delete topic %s: %w", name, e)
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted %d topics of %s\n", deleted, g.topicPrefix)
			return nil
		},
	}
}

// deleteGroups deletes consumer groups, retrying for a few seconds while
// the coordinator is loading or moving; unknown groups are not an error.
func deleteGroups(ctx context.Context, client *kafka.Client, groups []string) error {
	var err error
	for attempt := 0; attempt < 10 && len(groups) > 0; attempt++ {
		if attempt > 0 {
			sleepCtx(ctx, time.Second)
		}
		var res *kafka.DeleteGroupsResponse
		if res, err = client.DeleteGroups(ctx, &kafka.DeleteGroupsRequest{GroupIDs: groups}); err != nil {
			continue
		}
		var retry []string
		err = nil
		for id, e := range res.Errors {
			switch {
			case e == nil, errors.Is(e, kafka.GroupIdNotFound):
			case errors.Is(e, kafka.NotCoordinatorForGroup), errors.Is(e, kafka.GroupCoordinatorNotAvailable),
				errors.Is(e, kafka.GroupLoadInProgress):
				retry, err = append(retry, id), fmt.Errorf("cannot delete consumer group %s: %w", id, e)
			default:
				return fmt.Errorf("cannot delete consumer group %s: %w", id, e)
			}
		}
		groups = retry
	}
	return err
}
