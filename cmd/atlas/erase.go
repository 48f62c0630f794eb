package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/atlas-stream/atlas/internal/erasure"
	"github.com/atlas-stream/atlas/schemas/warehouse"
	"github.com/atlas-stream/atlas/topology"
)

func init() { subcommands = append(subcommands, newEraseProfileCmd) }

func newEraseProfileCmd(g *globals) *cobra.Command {
	var (
		account  string
		api      string
		deadline time.Duration
	)
	cmd := &cobra.Command{
		Use:   "erase-profile PROFILE_ID",
		Short: "Erase a profile: its ClickHouse rows, its embeddings state and recommendations",
		Long: `Erase what Atlas keeps about one profile, for a deletion request:

  - the embeddings role's member that owns the profile drops it from memory
    and writes a tombstone to the state changelog (asked through the API at
    --embeddings-api; the tombstone is also written directly), so its
    recommendations become the cold-start ones;
  - in ClickHouse, as the admin user, waiting for each mutation: the
    profile's late_events rows are deleted, its id is redacted from the
    evidence of alerts, its hash is removed from the distinct viewers of
    playback_minute; with --account, the alerts about that account are
    deleted too.

What it does NOT erase: the input topics keep the raw events until their
retention (7 days) expires, the dead-letter topic for 14 days, the alert
topic for 30; a replay from the earliest offset within that time rebuilds
the profile and its rows (erase again afterwards). Events of the profile
that the roles have not processed yet will do the same. Old changelog
records stay on the broker's disk until the log cleaner compacts them.

Exit 3 when the erasure is incomplete (no embeddings member confirmed):
fix the cause and run it again; it is idempotent.`,
		Example: `  # the embeddings role runs, its API on the default address
  atlas erase-profile pro-42-1

  # erase the whole account's alerts too; the embeddings role does not run
  atlas erase-profile pro-42-1 --account acc-42 --embeddings-api ""`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kc, err := g.kafka()
			if err != nil {
				return err
			}
			chc, err := g.clickhouse("admin")
			if err != nil {
				return err
			}
			conn, err := warehouse.Open(cmd.Context(), chc)
			if err != nil {
				return err
			}
			defer conn.Close()
			t := topology.Default(topology.Options{Prefix: g.topicPrefix})
			rep, err := erasure.Erase(cmd.Context(), erasure.Config{
				ClickHouse: conn, Database: chc.Database, Kafka: kc,
				PlaybackTopic: t.Name(topology.Playback), StateTopic: t.Name(topology.EmbeddingsState),
				EmbeddingsAPI: api, MutationTimeout: deadline,
			}, args[0], account)
			out := cmd.OutOrStdout()
			if rep != nil {
				fmt.Fprintf(out, "profile %s, partition %d\n", rep.Profile, rep.Partition)
				if rep.Embeddings != "" {
					fmt.Fprintf(out, "  embeddings role: %s\n", rep.Embeddings)
				}
				if rep.Tombstone != "" {
					fmt.Fprintf(out, "  state changelog: tombstone written to %s\n", rep.Tombstone)
				}
				for _, s := range rep.Steps {
					fmt.Fprintf(out, "  clickhouse %s: %d rows: %s\n", s.Table, s.Rows, s.What)
				}
			}
			if errors.Is(err, erasure.ErrIncomplete) {
				return &problemsError{err.Error()}
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(out, "erased; the input topics keep the raw events until their retention expires")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&account, "account", "", "also delete the alerts whose subject is this account")
	f.StringVar(&api, "embeddings-api", "127.0.0.1:9470", `host:port of a member of the embeddings role's API; "" when the role does not run`)
	f.DurationVar(&deadline, "timeout", 5*time.Minute, "how long to wait for each ClickHouse mutation")
	return cmd
}
