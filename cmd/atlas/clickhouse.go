package main

import (
	"fmt"
	"log/slog"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/atlas-stream/atlas/schemas/warehouse"
)

func newClickHouseCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "clickhouse",
		Short: "Manage Atlas's ClickHouse database (migrations, retention)",
		Example: `  atlas clickhouse migrate     # as the admin user; twice is a no-op
  atlas clickhouse status      # exits 3 while a migration is pending`,
	}
	cmd.AddCommand(
		&cobra.Command{
			Use:   "migrate",
			Short: "Apply pending ClickHouse migrations as the admin user",
			Long: `Apply the numbered SQL migrations embedded in this binary that the
database has not recorded yet, in order, and record each. Running it twice
is a no-op. A migration file that changed after it was applied is refused.`,
			Example: `  ATLAS_CLICKHOUSE_ADMIN_PASSWORD=… atlas clickhouse migrate`,
			Args:    cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				cfg, err := g.clickhouse("admin")
				if err != nil {
					return err
				}
				db := cfg.Database
				// The target database may not exist yet: connect to
				// "default" and let Migrate create and qualify it.
				cfg.Database = "default"
				conn, err := warehouse.Open(cmd.Context(), cfg)
				if err != nil {
					return err
				}
				defer conn.Close()
				applied, err := warehouse.Migrate(cmd.Context(), conn, db, func(format string, args ...any) {
					slog.Info(fmt.Sprintf(format, args...))
				})
				if err != nil {
					return err
				}
				if len(applied) == 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "database %s is up to date: no migration pending\n", db)
					return nil
				}
				for _, m := range applied {
					fmt.Fprintf(cmd.OutOrStdout(), "applied %s\n", m.File())
				}
				fmt.Fprintf(cmd.OutOrStdout(), "database %s: %d migration(s) applied\n", db, len(applied))
				return nil
			},
		},
		&cobra.Command{
			Use:   "status",
			Short: "List migrations and whether each is applied",
			Example: `  atlas clickhouse status
  atlas clickhouse status || atlas clickhouse migrate   # exit 3: pending`,
			Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				cfg, err := g.clickhouse("admin")
				if err != nil {
					return err
				}
				db := cfg.Database
				cfg.Database = "default"
				conn, err := warehouse.Open(cmd.Context(), cfg)
				if err != nil {
					return err
				}
				defer conn.Close()
				st, err := warehouse.Status(cmd.Context(), conn, db)
				if err != nil {
					return err
				}
				w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "MIGRATION\tSTATE\tAPPLIED AT (UTC)")
				pending := 0
				for _, s := range st {
					state, at := "pending", "-"
					if s.Applied {
						state, at = "applied", s.AppliedAt.Format("2006-01-02 15:04:05")
					} else {
						pending++
					}
					fmt.Fprintf(w, "%s\t%s\t%s\n", s.File(), state, at)
				}
				if err := w.Flush(); err != nil {
					return err
				}
				if pending > 0 {
					return &problemsError{fmt.Sprintf("%d migration(s) pending: run atlas clickhouse migrate", pending)}
				}
				return nil
			},
		},
		newClickHouseDropPartitionsCmd(g),
	)
	return cmd
}
