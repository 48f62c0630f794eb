package main

import (
	"context"
	"errors"
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
		Long: `Check, one line each, every service and user Atlas needs:

  kafka brokers      the brokers answer (with the TLS/SASL settings given)
  kafka topics       every topic of the topology exists as declared
  kafka group ROLE   each consuming role's group: members, state, partitions
                     with a committed position (a group that never ran, or
                     has no member running, is a warning, not a failure)
  clickhouse admin   logs in; may write and run DDL (migrations)
  clickhouse schema  no migration is pending
  clickhouse writer  logs in and reads the tables; may write, may not run DDL
  clickhouse reader  logs in and reads the tables; may not write

Exits 0 when every check passed (warnings included), 3 when one failed, 2
on bad flags or configuration.`,
		Example: `  eval "$(scripts/kafka.sh env)"; eval "$(scripts/clickhouse.sh env)"
  atlas doctor

  # another instance on the same cluster, with a longer time limit
  ATLAS_TOPIC_PREFIX=staging. atlas doctor --timeout 30s`,
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
			if n := doctor.Warned(rs); n > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "%d checks passed, %d with a warning\n", len(rs), n)
				return nil
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

	for _, r := range topology.Default(topology.Options{Prefix: g.topicPrefix}).Roles {
		if r.Group == "" {
			continue
		}
		checks = append(checks, doctor.Check{
			Name: "kafka group " + string(r.Name),
			Hint: "atlas run " + string(r.Name) + " (or atlas run all) joins it",
			Run: func(ctx context.Context) (string, error) {
				t := topology.Default(topology.Options{Prefix: g.topicPrefix})
				for {
					grp, err := describeGroup(ctx, client, t, r)
					switch {
					case err == nil:
						return doctor.JudgeGroup(grp)
					case !coordinatorNotReady(err):
						return "", err
					}
					// A broker that just started loads its group
					// coordinators within seconds: ask again until the
					// check's time is nearly up.
					if dl, ok := ctx.Deadline(); ok && time.Until(dl) < time.Second {
						return "", doctor.Warning("the coordinator of group %s is not ready yet (%v); a broker that just started loads it within seconds", t.GroupID(r.Group), err)
					}
					select {
					case <-ctx.Done():
						return "", doctor.Warning("the coordinator of group %s is not ready yet (%v)", t.GroupID(r.Group), err)
					case <-time.After(300 * time.Millisecond):
					}
				}
			},
		})
	}

	chHint := "start the local server with scripts/clickhouse.sh start and eval \"$(scripts/clickhouse.sh env)\", or set ATLAS_CLICKHOUSE_ADDR and the user/password variables"
	for _, job := range []doctor.Job{doctor.Admin, doctor.Writer, doctor.Reader} {
		cfg, err := g.clickhouse(string(job))
		if err != nil {
			return nil, err
		}
		db := cfg.Database
		if job == doctor.Admin {
			cfg.Database = "default" // the database may not exist before migrate
		}
		checks = append(checks, doctor.Check{
			Name: "clickhouse " + string(job) + " (" + cfg.User + ")",
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
				var r doctor.Rights
				if r.Readonly, err = setting(ctx, conn, "readonly"); err != nil {
					return "", err
				}
				if r.AllowDDL, err = setting(ctx, conn, "allow_ddl"); err != nil {
					return "", err
				}
				rights, err := doctor.JudgeRights(job, r)
				if err != nil {
					return "", fmt.Errorf("user %s %w", cfg.User, err)
				}
				if job == doctor.Admin {
					return fmt.Sprintf("logs in to ClickHouse %s at %s; %s", v, cfg.Addr, rights), nil
				}
				// The consumers and dashboards need the tables of the database.
				var n uint64
				if err := conn.QueryRow(ctx, "SELECT count() FROM "+db+".alerts WHERE 0").Scan(&n); err != nil {
					return "", fmt.Errorf("user %s cannot read %s.alerts: %w (is the database migrated?)", cfg.User, db, err)
				}
				return fmt.Sprintf("logs in, reads %s; %s", db, rights), nil
			},
		})
		if job == doctor.Admin {
			checks = append(checks, doctor.Check{
				Name: "clickhouse schema (" + db + ")",
				Hint: "run atlas clickhouse migrate (as the admin user; applying twice is a no-op)",
				Run: func(ctx context.Context) (string, error) {
					conn, err := warehouse.Open(ctx, cfg)
					if err != nil {
						return "", err
					}
					defer conn.Close()
					pending, err := warehouse.Pending(ctx, conn, db)
					if err != nil {
						return "", err
					}
					if len(pending) > 0 {
						return "", fmt.Errorf("%d migration(s) pending in %s", len(pending), db)
					}
					return fmt.Sprintf("database %s migrated", db), nil
				},
			})
		}
	}
	return checks, nil
}

// coordinatorNotReady reports the errors of a group coordinator that is
// loading or moving, which go away by themselves.
func coordinatorNotReady(err error) bool {
	return errors.Is(err, kafka.NotCoordinatorForGroup) || errors.Is(err, kafka.GroupCoordinatorNotAvailable) ||
		errors.Is(err, kafka.GroupLoadInProgress)
}

// describeGroup asks the group coordinator about a role's group and how
// many of its input partitions have a committed position.
func describeGroup(ctx context.Context, client *kafka.Client, t topology.Topology, r topology.RoleSpec) (doctor.Group, error) {
	grp := doctor.Group{Role: string(r.Name), ID: t.GroupID(r.Group)}
	var names []string
	for _, topic := range r.Reads {
		names = append(names, t.Name(topic))
	}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
	if err != nil {
		return grp, fmt.Errorf("cannot read the metadata of %s: %w", strings.Join(names, ", "), err)
	}
	req := &kafka.OffsetFetchRequest{GroupID: grp.ID, Topics: map[string][]int{}}
	for _, tm := range md.Topics {
		if tm.Error != nil {
			return grp, fmt.Errorf("cannot use topic %s: %w (atlas topology apply creates it)", tm.Name, tm.Error)
		}
		for _, p := range tm.Partitions {
			req.Topics[tm.Name] = append(req.Topics[tm.Name], p.ID)
			grp.Partitions++
		}
	}
	dg, err := client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{grp.ID}})
	if err != nil {
		return grp, fmt.Errorf("cannot describe group %s: %w", grp.ID, err)
	}
	for _, d := range dg.Groups {
		if d.Error != nil {
			return grp, fmt.Errorf("cannot describe group %s: %w", grp.ID, d.Error)
		}
		grp.State, grp.Members = d.GroupState, len(d.Members)
	}
	of, err := client.OffsetFetch(ctx, req)
	if err != nil {
		return grp, fmt.Errorf("cannot read the committed positions of group %s: %w", grp.ID, err)
	}
	if of.Error != nil {
		return grp, fmt.Errorf("cannot read the committed positions of group %s: %w", grp.ID, of.Error)
	}
	for _, ps := range of.Topics {
		for _, p := range ps {
			if p.Error == nil && p.CommittedOffset >= 0 {
				grp.Committed++
			}
		}
	}
	// The coordinator calls a group it does not know "Dead".
	grp.Exists = (grp.State != "Dead" && grp.State != "") || grp.Committed > 0
	return grp, nil
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
