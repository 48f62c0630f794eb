package main

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/atlas-stream/atlas/schemas/warehouse"
	"github.com/atlas-stream/atlas/topology"
)

// minRetention is the least --older-than that drop-partitions accepts: a
// day the input topics still hold would be written again, in part, by a
// replay.
const minRetention = topology.EventRetention + 24*time.Hour

func newClickHouseDropPartitionsCmd(g *globals) *cobra.Command {
	var (
		olderThan string
		dryRun    bool
	)
	cmd := &cobra.Command{
		Use:   "drop-partitions --older-than DAYS",
		Short: "Drop the days older than a retention from the tables that grow with traffic",
		Long: `Drop, as the admin user, every daily partition older than --older-than
of the tables that grow with traffic (` + strings.Join(warehouse.DayPartitionedTables, ", ") + `).
They are partitioned by day and ClickHouse 18.16 has no TTL: this command
is the drop policy, to run daily (cron, a Kubernetes CronJob). Days are
UTC; a partition goes when its whole day is older than the retention.

--older-than must exceed the input topics' retention by a day (8d): a
replay from Kafka of a dropped day would write part of it again.`,
		Example: `  # what would go with a 90-day retention
  atlas clickhouse drop-partitions --older-than 90d --dry-run

  atlas clickhouse drop-partitions --older-than 90d`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			keep, err := parseDays(olderThan)
			if err != nil {
				return &usageError{err}
			}
			if keep < minRetention {
				return &usageError{fmt.Errorf("invalid --older-than %s: keep at least %dd, a day more than the input topics' retention, or a replay would write part of a dropped day again", olderThan, minRetention/(24*time.Hour))}
			}
			cfg, err := g.clickhouse("admin")
			if err != nil {
				return err
			}
			conn, err := warehouse.Open(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer conn.Close()
			before := time.Now().UTC().Add(-keep)
			parts, err := warehouse.PartitionsBefore(cmd.Context(), conn, cfg.Database, before)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			verb := "dropped"
			if dryRun {
				verb = "would drop"
			}
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "TABLE\tDAY\tROWS")
			var rows uint64
			for _, p := range parts {
				fmt.Fprintf(w, "%s\t%s\t%d\n", p.Table, p.Day, p.Rows)
				rows += p.Rows
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if !dryRun {
				if err := warehouse.DropPartitions(cmd.Context(), conn, cfg.Database, parts); err != nil {
					return err
				}
			}
			fmt.Fprintf(out, "%s %d partitions (%d rows) of days before %s\n", verb, len(parts), rows, before.Format(time.DateOnly))
			return nil
		},
	}
	cmd.Flags().StringVar(&olderThan, "older-than", "", "retention: days older than this go (90d, or a Go duration such as 2160h)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "list the partitions that would go, drop nothing")
	cmd.MarkFlagRequired("older-than")
	return cmd
}

// parseDays reads "90d" or a Go duration.
func parseDays(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		d, err := strconv.Atoi(n)
		if err != nil || d < 0 {
			return 0, fmt.Errorf("invalid --older-than %q: want days such as 90d", s)
		}
		return time.Duration(d) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("invalid --older-than %q: want days such as 90d, or a duration such as 2160h", s)
	}
	return d, nil
}
