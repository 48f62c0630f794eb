package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/atlas-stream/atlas/schemas/warehouse"
)

// execute runs atlas with args and returns its output; the exit code comes
// from run, which maps errors the same way main does.
func execute(t *testing.T, args ...string) string {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	_ = root.Execute()
	return out.String()
}

func TestQueryExitCodes(t *testing.T) {
	// Nothing listens on port 1: a command that got as far as connecting
	// fails with 1, so a 2 proves the check came first.
	t.Setenv("ATLAS_CLICKHOUSE_ADDR", "127.0.0.1:1")
	check := func(want int, args ...string) {
		t.Helper()
		if got := run(context.Background(), args); got != want {
			t.Fatalf("atlas %v exited %d, want %d", args, got, want)
		}
	}
	check(exitOK, "query", "--list")
	check(exitOK, "query", "trending", "--help")
	check(exitUsage, "query")
	check(exitUsage, "query", "no-such-query")
	check(exitUsage, "query", "trending", "extra-arg")
	check(exitUsage, "query", "trending", "--from", "yesterday")
	check(exitUsage, "query", "trending", "--from", "-1h", "--to", "-2h")
	check(exitUsage, "query", "trending", "--limit", "0")
	check(exitUsage, "query", "trending", "--country", "Germany")
	check(exitUsage, "query", "trending", "--format", "xml")
	check(exitUsage, "query", "funnel", "--country", "DE")
	check(exitUsage, "query", "overlap", "--a", "t1")
	check(exitUsage, "query", "quality", "--bucket", "30s")
	check(exitFailure, "query", "trending")
	check(exitFailure, "query", "quality", "--by-country", "--bucket", "1h")
}

func TestQueryListNamesEveryQueryAndHelpExplainsItsColumns(t *testing.T) {
	list := execute(t, "query", "--list")
	for _, q := range warehouse.Queries() {
		if !strings.Contains(list, q.Name+"  ") || !strings.Contains(list, q.Short) {
			t.Errorf("atlas query --list does not show %s: %s\n%s", q.Name, q.Short, list)
		}
		help := execute(t, "query", q.Name, "--help")
		for _, c := range q.Columns {
			if !strings.Contains(help, "  "+c.Name+"  ") {
				t.Errorf("atlas query %s --help does not explain column %s:\n%s", q.Name, c.Name, help)
			}
		}
		for _, p := range q.Params {
			if !strings.Contains(help, "--"+p.Name) {
				t.Errorf("atlas query %s --help does not show --%s", q.Name, p.Name)
			}
		}
	}
}

func TestQueryFlagsComeFromTheEnvironmentToo(t *testing.T) {
	t.Setenv("ATLAS_CLICKHOUSE_ADDR", "127.0.0.1:1")
	t.Setenv("ATLAS_QUERY_LIMIT", "0")
	if got := run(context.Background(), []string{"query", "trending"}); got != exitUsage {
		t.Fatalf("ATLAS_QUERY_LIMIT=0: exit %d, want %d", got, exitUsage)
	}
}
