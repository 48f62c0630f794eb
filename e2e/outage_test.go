//go:build integration

package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/atlas-stream/atlas/producers/sim"
	"github.com/atlas-stream/atlas/topology"
)

// rssLimit is what each consumer process may use at its peak (VmHWM).
const rssLimit = 512 << 20

// TestAggregatesBackOffWhileClickHouseIsDownAndStayExact kills the
// ClickHouse server three times for 20 s while two aggregates members
// consume the traffic. The members must back off (their flushes fail, and
// they retry with growing waits instead of spinning), keep their memory
// bounded while the input piles up, and, once the server is back, write
// totals equal to the ground truth.
func TestAggregatesBackOffWhileClickHouseIsDownAndStayExact(t *testing.T) {
	s := newStack(t, 6)
	clickhouseService.restoreOnCleanup(t)
	truthPath := filepath.Join(s.dir, "truth.json")
	const events = 80_000
	// 1,000 events/s: the traffic lasts about as long as the three outages.
	simulate := s.start("simulate", "simulate", "--seed", "1618", "--events", fmt.Sprint(events), "--rate", "1000",
		"--truth", truthPath, "--out-of-order-rate", "0.05", "--late-rate", "0.01", "--duplicate-rate", "0.01")

	type member struct {
		p   *proc
		ops string
	}
	var members []member
	for i := 0; i < 2; i++ {
		ops := freeAddr(t)
		p := s.start(fmt.Sprintf("aggregates%d", i), "run", "aggregates", "--ops-addr", ops, "--flush-interval", "300ms", "--session-timeout", "6s")
		members = append(members, member{p, ops})
	}
	for _, m := range members {
		s.waitMetric(m.p, m.ops, "atlas_engine_events_total", 1, time.Minute)
	}
	failed := func() (sum float64) {
		for _, m := range members {
			sum += metricWith(m.ops, "atlas_chsink_flushes_total", `result="error"`)
		}
		return sum
	}
	var down time.Duration
	for i := 1; i <= 3; i++ {
		time.Sleep(5 * time.Second)
		before, events := failed(), metric(members[0].ops, "atlas_engine_events_total")+metric(members[1].ops, "atlas_engine_events_total")
		start := time.Now()
		restart := clickhouseService.outage(t, 20*time.Second)
		down += time.Since(start)
		after := metric(members[0].ops, "atlas_engine_events_total") + metric(members[1].ops, "atlas_engine_events_total")
		t.Logf("outage %d: ClickHouse down for %s (restart took %s); %.0f failed flushes, %.0f records processed meanwhile",
			i, time.Since(start).Round(100*time.Millisecond), restart.Round(100*time.Millisecond), failed()-before, after-events)
		if failed() == before {
			t.Fatalf("no flush failed during outage %d: the members did not notice that ClickHouse was down", i)
		}
	}
	totalFailed := failed()
	// Each partition's checkpoint retries with a wait doubling from 100 ms
	// to 5 s (consumers/engine), so each of the 13 input partitions (6
	// playback, 6 browse, the catalog) fails at most about 10 times in a
	// 21 s outage: about 6 failed flushes per second of outage if no two
	// partitions ever shared a flush. A loop without backoff fails
	// thousands of times per second against a closed port.
	if perSecond := totalFailed / down.Seconds(); perSecond > 10 {
		t.Fatalf("%.0f failed flushes in %s of outages (%.1f/s): the members do not back off", totalFailed, down.Round(time.Second), perSecond)
	}
	backoffLogs := 0
	for _, m := range members {
		backoffLogs += strings.Count(m.p.output(), "cannot checkpoint processor; retrying")
	}

	if err := simulate.wait(3 * time.Minute); err != nil {
		t.Fatalf("simulate: %v\n%s", err, simulate.output())
	}
	s.waitDrained(3*time.Minute, s.topo.GroupID(topology.AggregatesGroup),
		s.topo.Name(topology.Playback), s.topo.Name(topology.Browse), s.topo.Name(topology.Catalog))
	var peaks []string
	for i, m := range members {
		rss, err := peakRSS(m.p.cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		peaks = append(peaks, fmt.Sprintf("%.0f MB", float64(rss)/(1<<20)))
		if rss > rssLimit {
			t.Fatalf("member %d peaked at %d MB of resident memory (limit %d MB)", i, rss>>20, rssLimit>>20)
		}
		m.p.signal(syscall.SIGTERM)
		if err := m.p.wait(30 * time.Second); err != nil {
			t.Fatalf("member %d did not stop cleanly: %v\n%s", i, err, lastLines(m.p.output(), 20))
		}
	}
	truth, err := sim.LoadTruth(truthPath)
	if err != nil {
		t.Fatal(err)
	}
	n := s.compareWithTruth(truth)
	t.Logf("ClickHouse down 3 × 20 s (%s in all): %.0f failed flushes (%.1f/s), %d backoff log lines; peak RSS per member %s (limit 512 MB); all %d aggregate rows and late events of %d events equal the ground truth",
		down.Round(time.Second), totalFailed, totalFailed/down.Seconds(), backoffLogs, strings.Join(peaks, ", "), n, events)
}
