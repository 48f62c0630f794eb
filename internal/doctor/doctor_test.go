package doctor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestRunReportsEveryCheckAndHintsOnlyOnFailure(t *testing.T) {
	var out bytes.Buffer
	rs := Run(context.Background(), &out, time.Second, []Check{
		{Name: "kafka", Hint: "start it", Run: func(context.Context) (string, error) { return "", errors.New("connection refused") }},
		{Name: "clickhouse", Hint: "never shown", Run: func(context.Context) (string, error) { return "18.16.1", nil }},
		{Name: "slow", Run: func(ctx context.Context) (string, error) { <-ctx.Done(); return "", ctx.Err() }},
	})
	if Failed(rs) != 2 {
		t.Fatalf("failed = %d, want 2", Failed(rs))
	}
	got := out.String()
	for _, want := range []string{"FAIL  kafka", "connection refused", "→ start it", "ok    clickhouse", "18.16.1", "FAIL  slow", "deadline exceeded"} {
		if !strings.Contains(got, want) {
			t.Fatalf("report lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "never shown") {
		t.Fatalf("a hint was shown for a passing check:\n%s", got)
	}
}

func TestAWarningIsReportedButNotCountedAsAFailure(t *testing.T) {
	var out bytes.Buffer
	rs := Run(context.Background(), &out, time.Second, []Check{
		{Name: "group", Hint: "start it", Run: func(context.Context) (string, error) { return "", Warning("group %s has never run", "g1") }},
		{Name: "broken", Run: func(context.Context) (string, error) { return "", errors.New("refused") }},
	})
	if Failed(rs) != 1 || Warned(rs) != 1 {
		t.Fatalf("failed %d warned %d, want 1 and 1", Failed(rs), Warned(rs))
	}
	got := out.String()
	for _, want := range []string{"warn  group", "group g1 has never run", "→ start it", "FAIL  broken"} {
		if !strings.Contains(got, want) {
			t.Fatalf("report lacks %q:\n%s", want, got)
		}
	}
	if IsWarning(errors.New("x")) || !IsWarning(fmt.Errorf("wrapped: %w", Warning("y"))) {
		t.Fatal("IsWarning must see a wrapped warning and only a warning")
	}
}

func TestJudgeRights(t *testing.T) {
	check := func(job Job, readonly, ddl string, ok bool, want string) {
		t.Helper()
		detail, err := JudgeRights(job, Rights{Readonly: readonly, AllowDDL: ddl})
		got := detail
		if err != nil {
			got = err.Error()
		}
		if (err == nil) != ok || !strings.Contains(got, want) {
			t.Errorf("%s readonly=%s allow_ddl=%s: %q, %v; want ok=%v and %q", job, readonly, ddl, detail, err, ok, want)
		}
	}
	check(Admin, "0", "1", true, "runs DDL")
	check(Admin, "0", "0", false, "migrations need it")
	check(Admin, "2", "1", false, "may not run DDL")
	check(Writer, "0", "0", true, "DDL refused")
	check(Writer, "0", "1", false, "drop tables")
	check(Writer, "2", "0", false, "may not write")
	check(Reader, "2", "0", true, "read-only (readonly=2)")
	check(Reader, "1", "1", true, "read-only (readonly=1)")
	check(Reader, "0", "0", false, "can write")
	check("other", "0", "0", false, "BUG")
}

func TestJudgeGroup(t *testing.T) {
	for _, tc := range []struct {
		g    Group
		warn bool
		want string
	}{
		{Group{Role: "aggregates", ID: "atlas-aggregates"}, true, "group atlas-aggregates has never run"},
		{Group{Role: "anomaly", ID: "a", Exists: true, State: "Empty", Partitions: 18, Committed: 18}, true, "no member running (Empty; 18 of 18 partitions committed)"},
		{Group{Role: "anomaly", ID: "a", Exists: true, State: "Dead"}, true, "is Dead"},
		{Group{Role: "embeddings", ID: "e", Exists: true, State: "Stable", Members: 1, Partitions: 12, Committed: 12}, false, "e: 1 member, Stable, 12 of 12 partitions committed"},
		{Group{Role: "embeddings", ID: "e", Exists: true, State: "PreparingRebalance", Members: 2, Partitions: 12}, false, "2 members, PreparingRebalance, 0 of 12 partitions committed (rebalancing"},
	} {
		detail, err := JudgeGroup(tc.g)
		got := detail
		if err != nil {
			got = err.Error()
		}
		if IsWarning(err) != tc.warn || (err != nil && !IsWarning(err)) || !strings.Contains(got, tc.want) {
			t.Errorf("%+v: %q, %v; want warning=%v and %q", tc.g, detail, err, tc.warn, tc.want)
		}
	}
}
