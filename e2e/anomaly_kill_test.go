//go:build integration

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/segmentio/kafka-go"

	"github.com/atlas-stream/atlas/consumers/anomaly"
	"github.com/atlas-stream/atlas/consumers/anomaly/evaluate"
	"github.com/atlas-stream/atlas/producers/sim"
	"github.com/atlas-stream/atlas/schemas"
	"github.com/atlas-stream/atlas/schemas/warehouse"
	"github.com/atlas-stream/atlas/topology"
)

// rekeyTopic is the anomaly role's internal topic (cmd/atlas/run_anomaly.go),
// which topology does not declare: the role creates it.
const rekeyTopic = "atlas.anomaly.rekey.v1"

// alertStep is one lifecycle step of an incident, what a consumer keeps
// after deduplicating by id, settled (see anomaly.Settled).
type alertStep struct {
	ID       string
	Status   schemas.AlertStatus
	Severity schemas.Severity
	Kind     string
	Subject  string
	First    int64
	Detected int64
}

func stepsOf(alerts []schemas.Alert) []alertStep {
	var out []alertStep
	for _, a := range anomaly.Dedup(alerts) {
		a = anomaly.Settled(a)
		out = append(out, alertStep{a.ID, a.Status, a.Severity, a.Kind, a.Subject, a.FirstSeen, a.DetectedAt})
	}
	slices.SortFunc(out, func(a, b alertStep) int {
		return strings.Compare(fmt.Sprint(a.ID, a.Status, a.Severity), fmt.Sprint(b.ID, b.Status, b.Severity))
	})
	return out
}

// tailAlerts reads the whole alert topic through `atlas alerts tail`.
func (s *stack) tailAlerts() []schemas.Alert {
	s.t.Helper()
	cmd := exec.Command(atlasBin, "alerts", "tail", "--from", "beginning", "--follow=false", "--json", "--all")
	cmd.Env = s.env
	out, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("atlas alerts tail: %v\n%s", err, out)
	}
	var alerts []schemas.Alert
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var a schemas.Alert
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			s.t.Fatalf("atlas alerts tail printed %q: %v", sc.Text(), err)
		}
		alerts = append(alerts, a)
	}
	return alerts
}

// clickhouseAlerts reads the alerts table as a dashboard would: FINAL.
func (s *stack) clickhouseAlerts() []alertStep {
	s.t.Helper()
	conn, err := warehouse.Open(context.Background(), warehouse.Config{Addr: os.Getenv("ATLAS_CLICKHOUSE_ADDR"), Database: s.database,
		User: os.Getenv("ATLAS_CLICKHOUSE_READER_USER"), Password: os.Getenv("ATLAS_CLICKHOUSE_READER_PASSWORD")})
	if err != nil {
		s.t.Fatal(err)
	}
	defer conn.Close()
	var out []alertStep
	query(s.t, conn, `SELECT id, status, severity, kind, subject, toUInt64(first_seen), toUInt64(detected_at) FROM alerts FINAL`, func(r driver.Rows) {
		var a alertStep
		var st string
		var sev uint8
		var first, det uint64
		must(s.t, r.Scan(&a.ID, &st, &sev, &a.Kind, &a.Subject, &first, &det))
		a.Status, a.Severity, a.First, a.Detected = schemas.AlertStatus(st), schemas.Severity(sev), int64(first), int64(det)
		a.Detected = anomaly.Settled(schemas.Alert{Kind: a.Kind, Status: a.Status, DetectedAt: a.Detected}).DetectedAt
		out = append(out, a)
	})
	slices.SortFunc(out, func(a, b alertStep) int {
		return strings.Compare(fmt.Sprint(a.ID, a.Status, a.Severity), fmt.Sprint(b.ID, b.Status, b.Severity))
	})
	return out
}

func (s *stack) deleteRekeyTopic() {
	if s.t.Failed() {
		return
	}
	client, err := s.kafka.Client()
	if err == nil {
		client.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: []string{s.prefix + rekeyTopic}})
	}
}

func TestAnomalyAlertsStayExactWhileTheRoleIsKilledRepeatedly(t *testing.T) {
	s := newStack(t, 6)
	t.Cleanup(s.deleteRekeyTopic)
	// Registered after newStack, so it runs before the stack's cleanup,
	// which needs the broker.
	kafkaService.restoreOnCleanup(t)
	const seed, events = 77, 500_000
	// 10k events/s: the simulation runs for about 50 s while the role is
	// killed, four times with SIGKILL at a random moment and twice by a
	// failpoint between its checkpoint (alerts published) and its commit.
	simulate := s.start("simulate", "simulate", "--seed", fmt.Sprint(seed), "--events", fmt.Sprint(events), "--rate", "10000")

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	args := []string{"run", "anomaly", "--flush-interval", "300ms", "--session-timeout", "6s"}
	kills := 0
	for round := 0; round < 6; round++ {
		ops := freeAddr(t)
		var c *proc
		if round == 2 || round == 4 {
			s.env = append(s.env, fmt.Sprintf("ATLAS_FAILPOINT=before-commit:%d", 20+rng.IntN(40)))
			c = s.start("anomaly", append(args, "--ops-addr", ops)...)
			s.env = s.env[:len(s.env)-1]
			if err := c.wait(3 * time.Minute); err == nil || !strings.Contains(err.Error(), "killed") {
				t.Fatalf("the failpoint did not kill the role: %v\n%s", err, lastLines(c.output(), 20))
			}
		} else {
			c = s.start("anomaly", append(args, "--ops-addr", ops)...)
			s.waitMetric(c, ops, "atlas_engine_events_total", 1, 90*time.Second)
			time.Sleep(time.Duration(rng.IntN(3000)) * time.Millisecond)
			c.signal(syscall.SIGKILL)
			if err := c.wait(10 * time.Second); err == nil || !strings.Contains(err.Error(), "killed") {
				t.Fatalf("the role did not die of SIGKILL: %v\n%s", err, lastLines(c.output(), 20))
			}
		}
		kills++
		t.Logf("kill %d (%s)", kills, map[bool]string{true: "failpoint before-commit", false: "SIGKILL"}[round == 2 || round == 4])
	}
	if err := simulate.wait(3 * time.Minute); err != nil {
		t.Fatalf("simulate: %v\n%s", err, simulate.output())
	}

	// The last process catches up on what the kills left; while it
	// writes the re-key topic, the broker is killed and restarted: a write
	// that fails is retried in place, and nothing behind it goes first.
	finalOps := freeAddr(t)
	final := s.start("anomaly", append(args, "--ops-addr", finalOps)...)
	s.waitMetric(final, finalOps, "atlas_engine_events_total", 1, 90*time.Second)
	time.Sleep(time.Duration(rng.IntN(1000)) * time.Millisecond)
	restart := kafkaService.outage(t, 5*time.Second)
	t.Logf("broker killed while the last process caught up, down 5 s, restarted in %s", restart.Round(100*time.Millisecond))
	if err := final.wait(0); err == nil || err.Error() != "still running after 0s" {
		t.Fatalf("the role exited during the broker outage (%v):\n%s", err, lastLines(final.output(), 30))
	}
	start := time.Now()
	s.waitDrained(5*time.Minute, s.topo.GroupID(topology.AnomalyGroup),
		s.topo.Name(topology.Playback), s.topo.Name(topology.Browse), s.prefix+rekeyTopic)
	t.Logf("the last process caught up in %s", time.Since(start).Round(time.Second))
	final.signal(syscall.SIGTERM)
	if err := final.wait(30 * time.Second); err != nil {
		t.Fatalf("the role did not stop cleanly on SIGTERM: %v\n%s", err, lastLines(final.output(), 20))
	}

	// What the role must have published: the same events through the
	// in-memory role, without Kafka and without crashes.
	scfg := sim.DefaultConfig()
	scfg.Seed, scfg.Events = seed, events
	truth, offline, err := evaluate.Simulate(context.Background(), scfg, evaluate.OfflineConfig(6))
	if err != nil {
		t.Fatal(err)
	}
	want := stepsOf(offline)

	published := s.tailAlerts()
	got := stepsOf(published)
	if diff := diffSteps(want, got); diff != "" {
		t.Fatalf("alert topic after %d kills differs from the run without them:\n%s", kills, diff)
	}
	inCH := s.clickhouseAlerts()
	// ClickHouse keeps seconds.
	wantCH := slices.Clone(want)
	for i := range wantCH {
		wantCH[i].First, wantCH[i].Detected = wantCH[i].First/1000, wantCH[i].Detected/1000
	}
	if diff := diffSteps(wantCH, inCH); diff != "" {
		t.Fatalf("ClickHouse alerts (FINAL) differ from the run without kills:\n%s", diff)
	}

	// One firing id per planted incident, none for anything else.
	r := evaluate.Score(truth.Incidents, published)
	for _, k := range r.Kinds {
		t.Logf("%-20s planted %d detected %d raised %d duplicates %d delay max %v", k.Kind, k.Planted, k.Detected, k.Raised, k.Duplicated, k.Delay(1))
		if k.Planted != k.Detected || k.Raised != k.Planted || k.Duplicated != 0 {
			t.Errorf("%s: %d planted, %d detected, %d raised, %d with more than one id; want one alert id per incident",
				k.Kind, k.Planted, k.Detected, k.Raised, k.Duplicated)
		}
	}
	t.Logf("%d kills: %d alert records on the topic, %d distinct lifecycle steps, equal to the run without kills and to ClickHouse",
		kills, len(published), len(got))
}

// diffSteps lists what one side has and the other lacks.
func diffSteps(want, got []alertStep) string {
	key := func(a alertStep) string { return fmt.Sprintf("%+v", a) }
	w, g := map[string]bool{}, map[string]bool{}
	for _, a := range want {
		w[key(a)] = true
	}
	for _, a := range got {
		g[key(a)] = true
	}
	var lines []string
	for k := range w {
		if !g[k] {
			lines = append(lines, "  missing: "+k)
		}
	}
	for k := range g {
		if !w[k] {
			lines = append(lines, "  extra:   "+k)
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}
