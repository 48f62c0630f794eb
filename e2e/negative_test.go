//go:build integration

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/atlas-stream/atlas/producers/sim"
	"github.com/atlas-stream/atlas/schemas/warehouse"
	"github.com/atlas-stream/atlas/topology"
)

// Negative controls: each breaks one thing the exactly-once design depends
// on and asserts that the oracle (diffWithTruth) reports it. An oracle that
// passed these would prove nothing.

// drainAndDiff runs one clean consumer until everything is processed and
// returns the oracle's differences.
func (s *stack) drainAndDiff(truthPath string) (int, []string) {
	s.t.Helper()
	ops := freeAddr(s.t)
	final := s.start("aggregates", "run", "aggregates", "--ops-addr", ops, "--flush-interval", "300ms")
	s.waitReady(final, ops, time.Minute)
	s.waitDrained(3*time.Minute, s.topo.GroupID(topology.AggregatesGroup),
		s.topo.Name(topology.Playback), s.topo.Name(topology.Browse), s.topo.Name(topology.Catalog))
	final.signal(syscall.SIGTERM)
	if err := final.wait(30 * time.Second); err != nil {
		s.t.Fatalf("final consumer: %v", err)
	}
	truth, err := sim.LoadTruth(truthPath)
	if err != nil {
		s.t.Fatal(err)
	}
	return s.diffWithTruth(truth)
}

func TestTheOracleCatchesCommittingBeforeTheSinkFlush(t *testing.T) {
	s := newStack(t, 6)
	truthPath := filepath.Join(s.dir, "truth.json")
	simulate := s.start("simulate", "simulate", "--seed", "5", "--events", "60000", "--rate", "1500", "--truth", truthPath)
	// Commit first, then die before the flush: what was committed but never
	// written is lost for good.
	for i := 0; i < 3; i++ {
		c := s.startEnv("aggregates", []string{"ATLAS_UNSAFE_COMMIT_FIRST=1", fmt.Sprintf("ATLAS_FAILPOINT=before-checkpoint:%d", 3+4*i)},
			"run", "aggregates", "--ops-addr", "", "--flush-interval", "300ms")
		if err := c.wait(90 * time.Second); err == nil || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("the unsafe consumer was not killed at its failpoint: %v\n%s", err, lastLines(c.output(), 20))
		}
	}
	if err := simulate.wait(2 * time.Minute); err != nil {
		t.Fatalf("simulate: %v", err)
	}
	n, diffs := s.drainAndDiff(truthPath)
	if len(diffs) == 0 {
		t.Fatalf("committing before the flush, with 3 crashes in between, left all %d rows equal to the truth: the oracle cannot see lost data", n)
	}
	t.Logf("negative control caught: committing before the flush lost data; %d of %d rows and late events differ, e.g. %s", len(diffs), n, diffs[0])
}

func TestTheOracleCatchesSinkTablesWithoutReplacingSemantics(t *testing.T) {
	s := newStack(t, 6)
	// Rebuild playback_minute so that rows of different versions never
	// replace each other: the version joins the sorting key.
	ctx := context.Background()
	admin, err := warehouse.Open(ctx, warehouse.Config{Addr: os.Getenv("ATLAS_CLICKHOUSE_ADDR"), Database: s.database,
		User: os.Getenv("ATLAS_CLICKHOUSE_ADMIN_USER"), Password: os.Getenv("ATLAS_CLICKHOUSE_ADMIN_PASSWORD")})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var ddl string
	if err := admin.QueryRow(ctx, "SHOW CREATE TABLE "+s.database+".playback_minute").Scan(&ddl); err != nil {
		t.Fatal(err)
	}
	const key = "src_topic, src_partition)"
	if !strings.Contains(ddl, key) {
		t.Fatalf("unexpected DDL, cannot find the sorting key to change:\n%s", ddl)
	}
	broken := strings.Replace(ddl, key, "src_topic, src_partition, version)", 1)
	must(t, admin.Exec(ctx, "DROP TABLE "+s.database+".playback_minute"))
	must(t, admin.Exec(ctx, broken))

	// The consumer runs while the traffic arrives, so every minute is
	// written several times while open (provisional rows, rising versions)
	// before its final row: exactly what a replacing table collapses.
	truthPath := filepath.Join(s.dir, "truth.json")
	ops := freeAddr(t)
	live := s.start("aggregates", "run", "aggregates", "--ops-addr", ops, "--flush-interval", "300ms")
	s.waitReady(live, ops, time.Minute)
	simulate := s.start("simulate", "simulate", "--seed", "6", "--events", "60000", "--rate", "3000", "--truth", truthPath)
	if err := simulate.wait(2 * time.Minute); err != nil {
		t.Fatalf("simulate: %v", err)
	}
	live.signal(syscall.SIGTERM)
	if err := live.wait(30 * time.Second); err != nil {
		t.Fatalf("consumer: %v", err)
	}
	n, diffs := s.drainAndDiff(truthPath)
	if len(diffs) == 0 {
		t.Fatalf("with playback_minute keeping every version, all %d rows still equal the truth: the oracle cannot see double counting", n)
	}
	t.Logf("negative control caught: a sink that does not replace rows double counts; %d of %d rows and late events differ, e.g. %s", len(diffs), n, diffs[0])
}
