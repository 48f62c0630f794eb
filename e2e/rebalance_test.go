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

// metricWith sums the samples of a metric family whose labels contain sub.
func metricWith(addr, name, sub string) float64 {
	return metricFiltered(addr, name, func(line string) bool { return strings.Contains(line, sub) })
}

func TestAggregatesStayExactThroughRebalancesAndAZombieWhoseCommitIsRefused(t *testing.T) {
	s := newStack(t, 6)
	truthPath := filepath.Join(s.dir, "truth.json")
	simulate := s.start("simulate", "simulate", "--seed", "77", "--events", "200000", "--rate", "10000", "--truth", truthPath)

	member := func(name string, flush string) (*proc, string) {
		ops := freeAddr(t)
		p := s.start(name, "run", "aggregates", "--ops-addr", ops, "--flush-interval", flush, "--session-timeout", "6s")
		return p, ops
	}
	a, aOps := member("a", "300ms")
	b, bOps := member("b", "300ms")
	// The zombie-to-be checkpoints rarely, so that it holds uncommitted
	// work when it is stopped and tries to commit it when it wakes up.
	c, cOps := member("c", "4s")
	for _, m := range []struct {
		p   *proc
		ops string
	}{{a, aOps}, {b, bOps}, {c, cOps}} {
		s.waitMetric(m.p, m.ops, "atlas_engine_events_total", 1, 60*time.Second)
	}
	t.Logf("three members processing: a=%.0f b=%.0f c=%.0f records", metric(aOps, "atlas_engine_events_total"),
		metric(bOps, "atlas_engine_events_total"), metric(cOps, "atlas_engine_events_total"))

	// One member leaves mid-run, another joins.
	b.signal(syscall.SIGTERM)
	if err := b.wait(30 * time.Second); err != nil {
		t.Fatalf("member b did not leave cleanly: %v\n%s", err, lastLines(b.output(), 20))
	}
	d, dOps := member("d", "300ms")
	s.waitMetric(d, dOps, "atlas_engine_events_total", 1, 60*time.Second)
	t.Logf("b left after %s; d joined", "SIGTERM")

	// c stops past its session timeout: the group moves its partitions to
	// a and d. When it wakes, its commits carry a dead generation. It must
	// hold work of the new generation when it stops: stopped right after
	// the rebalance, before its first fetch came back, it once woke with
	// nothing to commit and was never refused (a fresh-clone run).
	s.waitMetric(c, cOps, "atlas_engine_events_total", metric(cOps, "atlas_engine_events_total")+1, 60*time.Second)
	c.signal(syscall.SIGSTOP)
	time.Sleep(15 * time.Second)
	c.signal(syscall.SIGCONT)
	deadline := time.Now().Add(30 * time.Second)
	for metricWith(cOps, "atlas_engine_commits_total", `result="fenced"`) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the woken zombie had no commit refused within 30 s; its log:\n%s", lastLines(c.output(), 40))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("zombie c: %.0f commit(s) refused for a stale generation", metricWith(cOps, "atlas_engine_commits_total", `result="fenced"`))

	if err := simulate.wait(3 * time.Minute); err != nil {
		t.Fatalf("simulate: %v\n%s", err, simulate.output())
	}
	s.waitDrained(3*time.Minute, s.topo.GroupID(topology.AggregatesGroup),
		s.topo.Name(topology.Playback), s.topo.Name(topology.Browse), s.topo.Name(topology.Catalog))
	for _, p := range []*proc{a, c, d} {
		p.signal(syscall.SIGTERM)
		if err := p.wait(30 * time.Second); err != nil {
			t.Fatalf("member did not stop cleanly: %v\n%s", err, lastLines(p.output(), 20))
		}
	}
	truth, err := sim.LoadTruth(truthPath)
	if err != nil {
		t.Fatal(err)
	}
	n := s.compareWithTruth(truth)
	t.Logf("%s: all %d aggregate rows and late events equal the ground truth", fmt.Sprint("3 members, 1 left, 1 joined, 1 zombie"), n)
}
