package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/atlas-stream/atlas/internal/kafkaconn"
	"github.com/atlas-stream/atlas/schemas/warehouse"
)

// globals are the flags every subcommand shares: logging and how to reach
// Kafka and ClickHouse.
type globals struct {
	logLevel    string
	logFormat   string
	topicPrefix string

	kafkaBrokers  string
	kafkaTLS      bool
	kafkaCAFile   string
	kafkaSASLMech string
	kafkaSASLUser string
	kafkaSASLPass string
	kafkaSASLFile string

	chAddr       string
	chDatabase   string
	chUser       string
	chPassword   string
	chAdminUser  string
	chAdminPass  string
	chReaderUser string
	chReaderPass string
}

func (g *globals) register(root *cobra.Command) {
	f := root.PersistentFlags()
	f.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&g.topicPrefix, "topic-prefix", "", "prefix of every topic and group name, to run several Atlas instances on one cluster")

	f.StringVar(&g.kafkaBrokers, "kafka-brokers", kafkaconn.DefaultBrokers, "Kafka bootstrap brokers, comma-separated host:port")
	f.BoolVar(&g.kafkaTLS, "kafka-tls", false, "connect to Kafka over TLS")
	f.StringVar(&g.kafkaCAFile, "kafka-ca-file", "", "PEM file of the CA that signs the brokers' certificates (with --kafka-tls)")
	f.StringVar(&g.kafkaSASLMech, "kafka-sasl-mechanism", "", "Kafka SASL mechanism: SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN")
	f.StringVar(&g.kafkaSASLUser, "kafka-sasl-user", "", "Kafka SASL user")
	f.StringVar(&g.kafkaSASLPass, "kafka-sasl-password", "", "Kafka SASL password (prefer the environment variable or --kafka-sasl-password-file)")
	f.StringVar(&g.kafkaSASLFile, "kafka-sasl-password-file", "", "file holding the Kafka SASL password, instead of --kafka-sasl-password")

	f.StringVar(&g.chAddr, "clickhouse-addr", warehouse.DefaultAddr, "ClickHouse native-protocol address host:port")
	f.StringVar(&g.chDatabase, "clickhouse-database", warehouse.DefaultDatabase, "ClickHouse database of Atlas")
	f.StringVar(&g.chUser, "clickhouse-user", "atlas_writer", "ClickHouse user of the consumers (writes rows, no DDL)")
	f.StringVar(&g.chPassword, "clickhouse-password", "", "password of --clickhouse-user (prefer the environment variable)")
	f.StringVar(&g.chAdminUser, "clickhouse-admin-user", "atlas_admin", "ClickHouse user that runs migrations")
	f.StringVar(&g.chAdminPass, "clickhouse-admin-password", "", "password of --clickhouse-admin-user")
	f.StringVar(&g.chReaderUser, "clickhouse-reader-user", "atlas_reader", "read-only ClickHouse user of dashboards and queries")
	f.StringVar(&g.chReaderPass, "clickhouse-reader-password", "", "password of --clickhouse-reader-user")
}

// envName maps a flag to its environment variable. Flags every command
// shares (the root's) are ATLAS_<FLAG>: --kafka-brokers is
// ATLAS_KAFKA_BROKERS. A command's own flags carry the name of the
// top-level command, so that two commands' --listen or --partitions never
// share a variable: `atlas ingest --listen` is ATLAS_INGEST_LISTEN, `atlas
// topology apply --partitions` is ATLAS_TOPOLOGY_PARTITIONS.
func envName(scope, flag string) string {
	name := strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
	if scope == "" {
		return "ATLAS_" + name
	}
	return "ATLAS_" + strings.ToUpper(strings.ReplaceAll(scope, "-", "_")) + "_" + name
}

// bindEnv sets every flag that was not given on the command line from its
// environment variable (see envName), if set.
func bindEnv(cmd *cobra.Command) error {
	global := cmd.Root().PersistentFlags()
	scope := ""
	for c := cmd; c.HasParent(); c = c.Parent() {
		scope = c.Name()
	}
	var err error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		name := envName(scope, f.Name)
		if global.Lookup(f.Name) == f {
			name = envName("", f.Name)
		}
		if v, ok := os.LookupEnv(name); ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("invalid %s=%q: %w", name, v, e)
			}
		}
	})
	return err
}

func (g *globals) setupLogging(w io.Writer) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return &usageError{fmt.Errorf("invalid --log-level %q: want debug, info, warn or error", g.logLevel)}
	}
	opts := &slog.HandlerOptions{Level: level}
	switch g.logFormat {
	case "text":
		slog.SetDefault(slog.New(slog.NewTextHandler(w, opts)))
	case "json":
		slog.SetDefault(slog.New(slog.NewJSONHandler(w, opts)))
	default:
		return &usageError{fmt.Errorf("invalid --log-format %q: want text or json", g.logFormat)}
	}
	return nil
}

func (g *globals) kafka() (kafkaconn.Config, error) {
	c := kafkaconn.Config{
		Brokers: kafkaconn.ParseBrokers(g.kafkaBrokers), TLS: g.kafkaTLS, CAFile: g.kafkaCAFile,
		SASLMechanism: g.kafkaSASLMech, SASLUser: g.kafkaSASLUser, SASLPassword: g.kafkaSASLPass,
		SASLPasswordFile: g.kafkaSASLFile,
	}
	if err := c.Validate(); err != nil {
		return c, &usageError{err}
	}
	return c, nil
}

// clickhouse returns the connection settings of one of the three users:
// "admin", "writer" or "reader".
func (g *globals) clickhouse(who string) (warehouse.Config, error) {
	c := warehouse.Config{Addr: g.chAddr, Database: g.chDatabase, DialTimeout: 5 * time.Second}
	switch who {
	case "admin":
		c.User, c.Password = g.chAdminUser, g.chAdminPass
	case "writer":
		c.User, c.Password = g.chUser, g.chPassword
	case "reader":
		c.User, c.Password = g.chReaderUser, g.chReaderPass
	default:
		panic("BUG: unknown ClickHouse user role " + who)
	}
	if err := c.Validate(); err != nil {
		return c, &usageError{err}
	}
	return c, nil
}
