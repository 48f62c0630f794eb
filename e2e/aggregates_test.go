//go:build integration

package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/atlas-stream/atlas/producers/sim"
	"github.com/atlas-stream/atlas/schemas/warehouse"
	"github.com/atlas-stream/atlas/topology"
)

// compareWithTruth reads every per-window total through the views, as the
// dashboards do, and the late events, and compares them with the truth,
// failing the test on any difference. It returns the number of rows
// compared.
func (s *stack) compareWithTruth(truth *sim.Truth) int {
	s.t.Helper()
	n, diffs := s.diffWithTruth(truth)
	if len(diffs) > 0 {
		s.t.Fatalf("%d differences from the ground truth (%d rows and late events compared); first ones:\n%s", len(diffs), n, strings.Join(diffs[:min(len(diffs), 15)], "\n"))
	}
	return n
}

// diffWithTruth is the oracle: every difference between what the views
// and late_events hold and the ground truth, as readable lines.
func (s *stack) diffWithTruth(truth *sim.Truth) (int, []string) {
	s.t.Helper()
	ctx := context.Background()
	conn, err := warehouse.Open(ctx, warehouse.Config{Addr: os.Getenv("ATLAS_CLICKHOUSE_ADDR"), Database: s.database,
		User: os.Getenv("ATLAS_CLICKHOUSE_READER_USER"), Password: os.Getenv("ATLAS_CLICKHOUSE_READER_PASSWORD")})
	if err != nil {
		s.t.Fatal(err)
	}
	defer conn.Close()

	want := map[string]string{}
	for _, r := range truth.Playback {
		add(want, "playback", fmt.Sprint(r.Window, r.TitleID, r.Country, r.DeviceType), r.Starts, r.Completes, r.WatchMs, r.Viewers, r.Dropoff)
	}
	for _, r := range truth.Quality {
		add(want, "quality", fmt.Sprint(r.Window, r.CDN, r.ISP, r.Country), r.Sessions, r.Rebuffers, r.RebufferMs, r.StartFailures, r.Errors, r.BitrateSum, r.BitrateSamples)
	}
	for _, r := range truth.Funnel {
		add(want, "funnel", fmt.Sprint(r.Window, r.Row, r.ArtworkID), r.Impressions, r.Selects, r.Plays)
	}
	got := map[string]string{}
	query(s.t, conn, `SELECT toUInt64(window_start) * 1000, title_id, country, device_type, starts, completes, watch_ms, toUInt64(viewers), dropoff FROM playback_by_minute`,
		func(r driver.Rows) {
			var w, st, co, wm, v uint64
			var title, cc, dt string
			var drop []uint64
			must(s.t, r.Scan(&w, &title, &cc, &dt, &st, &co, &wm, &v, &drop))
			var d [10]int64
			for i := range drop {
				d[i] = int64(drop[i])
			}
			add(got, "playback", fmt.Sprint(int64(w), title, cc, dt), int64(st), int64(co), int64(wm), int64(v), d)
		})
	query(s.t, conn, `SELECT toUInt64(window_start) * 1000, cdn, isp, country, sessions, rebuffers, rebuffer_ms, start_failures, errors, bitrate_sum, bitrate_samples FROM quality_by_minute`,
		func(r driver.Rows) {
			var w, a, b, c, d, e, f, g uint64
			var cdn, isp, cc string
			must(s.t, r.Scan(&w, &cdn, &isp, &cc, &a, &b, &c, &d, &e, &f, &g))
			add(got, "quality", fmt.Sprint(int64(w), cdn, isp, cc), int64(a), int64(b), int64(c), int64(d), int64(e), int64(f), int64(g))
		})
	query(s.t, conn, `SELECT toUInt64(window_start) * 1000, row, artwork_id, impressions, selects, plays FROM funnel_by_minute`,
		func(r driver.Rows) {
			var w, a, b, c uint64
			var row, art string
			must(s.t, r.Scan(&w, &row, &art, &a, &b, &c))
			add(got, "funnel", fmt.Sprint(int64(w), row, art), int64(a), int64(b), int64(c))
		})

	var diffs []string
	for k, v := range want {
		if got[k] != v {
			diffs = append(diffs, fmt.Sprintf("%s: ClickHouse %q, truth %q", k, got[k], v))
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: ClickHouse %q, not in the truth", k, v))
		}
	}
	late := map[string]bool{}
	query(s.t, conn, `SELECT event_id FROM late_events FINAL`, func(r driver.Rows) {
		var id string
		must(s.t, r.Scan(&id))
		late[id] = true
	})
	wantLate := map[string]bool{}
	for _, l := range truth.Late {
		wantLate[l.EventID] = true
	}
	for id := range wantLate {
		if !late[id] {
			diffs = append(diffs, fmt.Sprintf("late event %s of the truth is not in late_events", id))
		}
	}
	for id := range late {
		if !wantLate[id] {
			diffs = append(diffs, fmt.Sprintf("late_events holds %s, which the truth says was on time", id))
		}
	}
	sort.Strings(diffs)
	return len(want) + len(wantLate), diffs
}

// add records a row as a string of its values, skipping rows whose values
// are all zero (a key that only saw uncounted event kinds).
func add(m map[string]string, table, key string, vals ...any) {
	s := fmt.Sprint(vals...)
	zero := true
	for _, v := range vals {
		switch x := v.(type) {
		case int64:
			zero = zero && x == 0
		case [10]int64:
			zero = zero && x == [10]int64{}
		}
	}
	if !zero {
		m[table+" "+key] = s
	}
}

func query(t *testing.T, conn driver.Conn, q string, row func(driver.Rows)) {
	t.Helper()
	rows, err := conn.Query(context.Background(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	for rows.Next() {
		row(rows)
	}
	must(t, rows.Err())
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestAggregatesStayExactWhileTheConsumerIsKilledRepeatedly(t *testing.T) {
	s := newStack(t, 6)
	truthPath := filepath.Join(s.dir, "truth.json")
	const events = 200_000
	// 20k events/s: the simulation runs ~10 s while the consumer is killed.
	simulate := s.start("simulate", "simulate", "--seed", "4242", "--events", fmt.Sprint(events), "--rate", "20000",
		"--truth", truthPath, "--out-of-order-rate", "0.05", "--late-rate", "0.01", "--duplicate-rate", "0.01")

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	args := []string{"run", "aggregates", "--flush-interval", "300ms", "--session-timeout", "6s"}
	// Issue 9 asks for at least five kills per 100k events.
	const wantKills = 6 * events / 100_000
	kills := 0
	for kills < wantKills {
		ops := freeAddr(t)
		c := s.start("aggregates", append(args, "--ops-addr", ops)...)
		// Kill at a random moment after the consumer started processing,
		// so that each kill lands between checkpoints of real work.
		s.waitMetric(c, ops, "atlas_engine_events_total", 1, 60*time.Second)
		time.Sleep(time.Duration(rng.IntN(2000)) * time.Millisecond)
		before := metric(ops, "atlas_engine_events_total")
		commits := metric(ops, "atlas_engine_commits_total")
		c.signal(syscall.SIGKILL)
		if err := c.wait(10 * time.Second); err == nil || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("consumer did not die of SIGKILL: %v\n%s", err, c.output())
		}
		kills++
		t.Logf("kill %d: SIGKILL after %.0f records and %.0f commits of this process", kills, before, commits)
	}
	if err := simulate.wait(2 * time.Minute); err != nil {
		t.Fatalf("simulate: %v\n%s", err, simulate.output())
	}
	t.Logf("simulator: %s", strings.TrimSpace(lastLines(simulate.output(), 3)))

	finalOps := freeAddr(t)
	final := s.start("aggregates", append(args, "--ops-addr", finalOps)...)
	// Ready means it handles signals and owns its partitions; everything
	// may already have been processed by the killed ones.
	s.waitReady(final, finalOps, time.Minute)
	s.waitDrained(3*time.Minute, s.topo.GroupID(topology.AggregatesGroup),
		s.topo.Name(topology.Playback), s.topo.Name(topology.Browse), s.topo.Name(topology.Catalog))
	final.signal(syscall.SIGTERM)
	if err := final.wait(30 * time.Second); err != nil {
		t.Fatalf("the consumer did not stop cleanly on SIGTERM: %v\n%s", err, lastLines(final.output(), 20))
	}

	truth, err := sim.LoadTruth(truthPath)
	if err != nil {
		t.Fatal(err)
	}
	n := s.compareWithTruth(truth)
	t.Logf("%d SIGKILLs during %d events (%d late, %d duplicates): all %d aggregate rows and late events equal the ground truth",
		kills, events, truth.Totals.Late, truth.Totals.Duplicates, n)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
