package main

import (
	"context"
	"testing"
)

func TestExitCodes(t *testing.T) {
	check := func(want int, args ...string) {
		t.Helper()
		if got := run(context.Background(), args); got != want {
			t.Fatalf("atlas %v exited %d, want %d", args, got, want)
		}
	}
	check(exitOK, "version")
	check(exitOK, "topology", "show")
	check(exitOK, "topology", "show", "--format", "mermaid")
	check(exitUsage, "no-such-command")
	check(exitUsage, "version", "--no-such-flag")
	check(exitUsage, "topology", "show", "--format", "svg")
	check(exitUsage, "topology", "show", "--partitions", "-1")
	check(exitUsage, "doctor", "--kafka-brokers", "localhost")
	check(exitUsage, "doctor", "--log-level", "loud")
}

func TestEnvironmentVariablesSetFlagsAndTheCommandLineWins(t *testing.T) {
	t.Setenv("ATLAS_KAFKA_BROKERS", "kafka-1:9092,kafka-2:9092")
	t.Setenv("ATLAS_CLICKHOUSE_USER", "from-env")
	root := newRoot()
	root.SetArgs([]string{"version", "--clickhouse-user", "from-flag"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	f := root.PersistentFlags()
	if got := f.Lookup("kafka-brokers").Value.String(); got != "kafka-1:9092,kafka-2:9092" {
		t.Fatalf("kafka-brokers = %q, want the environment's value", got)
	}
	if got := f.Lookup("clickhouse-user").Value.String(); got != "from-flag" {
		t.Fatalf("clickhouse-user = %q, want the flag's value", got)
	}
	// A command's own flags are scoped by the command's name.
	t.Setenv("ATLAS_TOPOLOGY_FORMAT", "svg")
	if code := run(context.Background(), []string{"topology", "show"}); code != exitUsage {
		t.Fatalf("ATLAS_TOPOLOGY_FORMAT=svg gave exit %d, want %d (usage)", code, exitUsage)
	}
	t.Setenv("ATLAS_TOPOLOGY_FORMAT", "mermaid")
	t.Setenv("ATLAS_FORMAT", "svg") // not a variable of any flag
	if code := run(context.Background(), []string{"topology", "show"}); code != exitOK {
		t.Fatalf("ATLAS_TOPOLOGY_FORMAT=mermaid gave exit %d", code)
	}
	t.Setenv("ATLAS_KAFKA_TLS", "maybe")
	if code := run(context.Background(), []string{"version"}); code != exitUsage {
		t.Fatalf("an invalid ATLAS_KAFKA_TLS gave exit %d, want %d", code, exitUsage)
	}
}
