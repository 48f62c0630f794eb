package main

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/spf13/cobra"

	"github.com/atlas-stream/atlas/producers/sim"
	"github.com/atlas-stream/atlas/schemas"
)

func TestParseMetricsReadsNamesLabelsAndValues(t *testing.T) {
	text := `# HELP atlas_engine_events_total Valid records processed.
# TYPE atlas_engine_events_total counter
atlas_engine_events_total{role="aggregates",topic="demo-1.atlas.playback.v1"} 120
atlas_engine_events_total{role="aggregates",topic="demo-1.atlas.browse.v1"} 80
atlas_engine_events_total{role="anomaly",topic="demo-1.atlas.anomaly.rekey.v1"} 500
atlas_engine_events_total{role="anomaly",topic="demo-1.atlas.playback.v1"} 100
atlas_engine_dead_letters_total{role="anomaly",stage="decode",topic="demo-1.atlas.browse.v1"} 2
atlas_engine_lag_records{partition="0",role="anomaly",topic="demo-1.atlas.anomaly.rekey.v1"} 7
atlas_engine_claims{role="aggregates"} 12
odd_label{v="a \"quoted\" \\ value, with } brace"} 1.5e+03 1700000000000
process_start_time_seconds 1.7e+09
`
	samples, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) != 9 {
		t.Fatalf("parsed %d samples, want 9", len(samples))
	}
	if s := samples[7]; s.name != "odd_label" || s.labels["v"] != `a "quoted" \ value, with } brace` || s.value != 1500 {
		t.Fatalf("escaped label parsed as %+v", s)
	}
	roles, start := engineStats(samples, []string{"demo-1.atlas.playback.v1", "demo-1.atlas.browse.v1"})
	if !start.Equal(time.Unix(1_700_000_000, 0)) {
		t.Fatalf("process start = %v", start)
	}
	if len(roles) != 2 || roles[0].role != "aggregates" || roles[1].role != "anomaly" {
		t.Fatalf("roles = %+v", roles)
	}
	if a := roles[0]; a.events != 200 || a.claims != 12 || a.lag != 0 {
		t.Fatalf("aggregates = %+v", a)
	}
	// The re-key topic is internal: its records are not input events, but
	// its lag counts.
	if a := roles[1]; a.events != 100 || a.deadLetters != 2 || a.lag != 7 {
		t.Fatalf("anomaly = %+v", a)
	}
	for _, tc := range []struct {
		sent int64
		want bool
	}{{200, false}, {102, false}} {
		if got := caughtUp(roles, tc.sent); got != tc.want {
			t.Errorf("caughtUp(sent %d) = %v, want %v", tc.sent, got, tc.want)
		}
	}
	roles[1].lag = 0
	if !caughtUp(roles, 102) || caughtUp(roles, 103) || caughtUp(nil, 0) {
		t.Error("caughtUp: want true once every role processed what was sent without lag, false with no role")
	}
}

func TestParseMetricsRejectsMalformedLines(t *testing.T) {
	for _, line := range []string{"novalue", `x{a="b"`, `x{a=b} 1`, "x notanumber"} {
		if _, err := parseMetrics(strings.NewReader(line + "\n")); err == nil {
			t.Errorf("%q: no error", line)
		}
	}
}

func TestPairAlertsMatchesAsTheEvaluatorDoes(t *testing.T) {
	m := int64(time.Minute / time.Millisecond)
	incidents := []sim.Incident{
		{Kind: "bot", Subject: "account:a1", Start: 10 * m, End: 20 * m},
		{Kind: "impossible_travel", Subject: "account:a2", Start: 5 * m, End: 50 * m, Truncated: true},
		{Kind: "account_sharing", Subject: "account:a3", Start: 30 * m, End: 40 * m},
	}
	firing := func(id, kind, subject string, at int64, sev schemas.Severity) schemas.Alert {
		return schemas.Alert{ID: id, Kind: kind, Subject: subject, Status: schemas.AlertFiring, Severity: sev, DetectedAt: at, FirstSeen: at}
	}
	alerts := []schemas.Alert{
		firing("b1", "bot", "account:a1", 11*m, schemas.SeverityHigh),
		firing("b1", "bot", "account:a1", 11*m, schemas.SeverityHigh), // a copy
		{ID: "b1", Kind: "bot", Subject: "account:a1", Status: schemas.AlertEscalated, Severity: schemas.SeverityCritical, DetectedAt: 12 * m},
		firing("b2", "bot", "account:a1", 15*m, schemas.SeverityHigh),             // a second id for one incident
		firing("s9", "account_sharing", "account:a3", 29*m, schemas.SeverityHigh), // before the start
		firing("x1", "bot", "account:zz", 13*m, schemas.SeverityWarning),
	}
	rows := pairAlerts(incidents, alerts)
	if len(rows) != 5 {
		t.Fatalf("%d rows, want 3 incidents and 2 unmatched alerts: %+v", len(rows), rows)
	}
	// Incidents come in start order.
	if r := rows[0]; r.Incident.Kind != "impossible_travel" || r.Alert != nil {
		t.Errorf("row 0 = %+v, want the missed travel incident", r)
	}
	if r := rows[1]; r.Incident.Kind != "bot" || r.Alert == nil || r.Alert.ID != "b1" || r.MaxSeverity != schemas.SeverityCritical || r.Also != 1 {
		t.Errorf("row 1 = %+v, want bot matched by b1 (escalated to critical) and one more id", r)
	}
	if r := rows[2]; r.Incident.Kind != "account_sharing" || r.Alert != nil {
		t.Errorf("row 2 = %+v, want sharing missed (its alert came before the start)", r)
	}
	if rows[3].Incident != nil || rows[3].Alert.ID != "x1" || rows[4].Incident != nil || rows[4].Alert.ID != "s9" {
		t.Errorf("unmatched rows = %+v, %+v; want x1 then s9 (detection order)", rows[3], rows[4])
	}

	var out bytes.Buffer
	writeAlertTable(&out, rows, func(sim.Incident) (float64, bool) { return 0, false })
	for _, want := range []string{"missed (the run ended during it)", "high→critical", "1m0s (+1 more ids)", "unmatched bot"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestCellTrafficAveragesTheDegradedCellOverTheIncident(t *testing.T) {
	m := int64(time.Minute / time.Millisecond)
	truth := &sim.Truth{Quality: []sim.QualityRow{
		{Window: 0, CDN: "c1", ISP: "i1", Country: "US", Sessions: 100}, // before
		{Window: 1 * m, CDN: "c1", ISP: "i1", Country: "US", Sessions: 3},
		{Window: 1 * m, CDN: "c2", ISP: "i1", Country: "US", Sessions: 50},
		{Window: 2 * m, CDN: "c2", ISP: "i1", Country: "US", Sessions: 50},
	}}
	f := cellTraffic(truth)
	got, ok := f(sim.Incident{Kind: sim.IncidentQuality, Subject: "cdn:c1|isp:i1|cc:US", Start: 1 * m, End: 3 * m})
	if !ok || got != 1.5 {
		t.Errorf("sessions a minute = %v, %v; want 1.5 (3 sessions over 2 minutes)", got, ok)
	}
	if _, ok := f(sim.Incident{Kind: sim.IncidentBot, Subject: "account:a"}); ok {
		t.Error("a bot incident has no cell")
	}
}

func TestQueryFlagsPutThePeriodFirst(t *testing.T) {
	got := queryFlags(map[string]string{"limit": "8", "to": "B", "country": "US", "from": "A"})
	if want := "--from A --to B --country US --limit 8"; got != want {
		t.Errorf("queryFlags = %q, want %q", got, want)
	}
}

func TestProgressBar(t *testing.T) {
	for _, tc := range []struct {
		done, total int64
		want        string
	}{
		{0, 100, "[>                   ]   0%"},
		{47, 100, "[=========>          ]  47%"},
		{100, 100, "[====================] 100%"},
		{150, 100, "[====================] 100%"},
		{5, 0, ""},
	} {
		if got := progressBar(tc.done, tc.total); got != tc.want {
			t.Errorf("progressBar(%d, %d) = %q, want %q", tc.done, tc.total, got, tc.want)
		}
	}
}

// TestEveryCommandHasAnExample keeps `atlas CMD --help` useful: every
// command, groups included, shows at least one example.
func TestEveryCommandHasAnExample(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			return
		}
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%q has no Example", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRoot())
}

func TestDoctorWaitsOutACoordinatorThatIsLoading(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("cannot describe group g: %w", kafka.NotCoordinatorForGroup), true},
		{fmt.Errorf("cannot read the committed positions of group g: %w", kafka.GroupLoadInProgress), true},
		{kafka.GroupCoordinatorNotAvailable, true},
		{fmt.Errorf("cannot describe group g: %w", kafka.GroupAuthorizationFailed), false},
		{errors.New("connection refused"), false},
	} {
		if got := coordinatorNotReady(tc.err); got != tc.want {
			t.Errorf("coordinatorNotReady(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
