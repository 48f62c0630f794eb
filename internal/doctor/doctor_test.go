package doctor

import (
	"bytes"
	"context"
	"errors"
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
