package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/segmentio/kafka-go"
	"github.com/spf13/cobra"

	"github.com/atlas-stream/atlas/internal/doctor"
	"github.com/atlas-stream/atlas/schemas/warehouse"
	"github.com/atlas-stream/atlas/topology"
)

func newDoctorCmd(g *globals) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check Kafka, ClickHouse and every user Atlas connects as",
		Long: `Check, one line each: the Kafka brokers answer and Atlas's topics exist
as declared; ClickHouse answers for the admin, writer and reader users, the
migrations are applied, the writer cannot run DDL and the reader cannot
write. Exits 3 when a check fails.`,
		Example: `  eval "$(scripts/kafka.sh env)"; eval "$(scripts/clickhouse.sh env)"
  atlas doctor`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			checks, err := doctorChecks(g)
			if err != nil {
				return err
			}
			rs := doctor.Run(cmd.Context(), cmd.OutOrStdout(), timeout, checks)
			if n := doctor.Failed(rs); n > 0 {
				return &problemsError{fmt.Sprintf("%d of %d checks failed", n, len(rs))}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "all %d checks passed\n", len(rs))
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "time limit of each check")
	return cmd
}

func doctorChecks(g *globals) ([]doctor.Check, error) {
	kc, err := g.kafka()
	if err != nil {
		return nil, err
	}
	client, err := kc.Client()
	if err != nil {
		return nil, err
	}
	brokers := strings.Join(kc.BrokerList(), ",")
	kafkaHint := "start the local broker with scripts/kafka.sh start, or set ATLAS_KAFKA_BROKERS (and ATLAS_KAFKA_TLS / ATLAS_KAFKA_SASL_*) to your cluster"
	checks := []doctor.Check{{
		Name: "kafka brokers",
		Hint: kafkaHint,
		Run: func(ctx context.Context) (string, error) {
			md, err := client.Metadata(ctx, &kafka.MetadataRequest{})
			if err != nil {
				return "", fmt.Errorf("cannot reach Kafka at %s: %w", brokers, err)
			}
			return fmt.Sprintf("%s answers: %d broker(s), controller %d", brokers, len(md.Brokers), md.Controller.ID), nil
		},
	}, {
		Name: "kafka topics",
		Hint: "run atlas topology apply (drift is reported there and never changed automatically)",
		Run: func(ctx context.Context) (string, error) {
			t := topology.Default(topology.Options{Prefix: g.topicPrefix})
			r, err := topology.Check(ctx, client, t)
			if err != nil {
				return "", fmt.Errorf("cannot compare topics with the declaration: %w", err)
			}
			var bad []string
			for _, tr := range r.Topics {
				if tr.Status != topology.OK {
					bad = append(bad, tr.String())
				}
			}
			if len(bad) > 0 {
				return "", fmt.Errorf("%d of %d topics are missing or drifted:\n        %s", len(bad), len(r.Topics), strings.Join(bad, "\n        "))
			}
			return fmt.Sprintf("all %d topics exist as declared", len(r.Topics)), nil
		},
	}}

	chHint := "start the local server with scripts/clickhouse.sh start and eval \"$(scripts/clickhouse.sh env)\", or set ATLAS_CLICKHOUSE_ADDR and the user/password variables"
	for _, who := range []string{"admin", "writer", "reader"} {
		cfg, err := g.clickhouse(who)
		if err != nil {
			return nil, err
		}
		db := cfg.Database
		if who == "admin" {
			cfg.Database = "default" // the database may not exist before migrate
		}
		checks = append(checks, doctor.Check{
			Name: "clickhouse " + who + " (" + cfg.User + ")",
			Hint: chHint,
			Run: func(ctx context.Context) (string, error) {
				conn, err := warehouse.Open(ctx, cfg)
				if err != nil {
					return "", err
				}
				defer conn.Close()
				v, err := warehouse.DetectVersion(ctx, conn)
				if err != nil {
					return "", err
				}
				switch who {
				case "admin":
					pending, err := warehouse.Pending(ctx, conn, db)
					if err != nil {
						return "", err
					}
					if len(pending) > 0 {
						return "", fmt.Errorf("ClickHouse %s: %d migration(s) pending in %s: run atlas clickhouse migrate", v, len(pending), db)
					}
					return fmt.Sprintf("ClickHouse %s at %s, database %s migrated", v, cfg.Addr, db), nil
				case "writer":
					if ddl, err := setting(ctx, conn, "allow_ddl"); err != nil {
						return "", err
					} else if ddl != "0" {
						return "", fmt.Errorf("user %s may run DDL (allow_ddl=%s): consumers should not be able to drop tables", cfg.User, ddl)
					}
					return fmt.Sprintf("connects to %s; DDL is refused (allow_ddl=0)", db), nil
				default:
					if ro, err := setting(ctx, conn, "readonly"); err != nil {
						return "", err
					} else if ro == "0" {
						return "", fmt.Errorf("user %s can write (readonly=0): dashboards must use a read-only user", cfg.User)
					}
					return fmt.Sprintf("connects to %s; read-only", db), nil
				}
			},
		})
	}
	return checks, nil
}

// setting reads a setting of the current session; system.settings exists
// on 18.16 and on current releases alike.
func setting(ctx context.Context, conn driver.Conn, name string) (string, error) {
	var v string
	if err := conn.QueryRow(ctx, "SELECT value FROM system.settings WHERE name = ?", name).Scan(&v); err != nil {
		return "", fmt.Errorf("cannot read setting %s: %w", name, err)
	}
	return v, nil
}
