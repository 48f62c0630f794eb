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

// TestAggregatesStayExactThroughARebalanceStormWithAStoppedZombie switches
// the aggregates group between one and three members every 5 s while the
// traffic arrives — members leave by SIGTERM and by SIGKILL — and stops one
// member with SIGSTOP for longer than its session timeout in the middle of
// it. When that zombie is continued, its commit for the partitions it lost
// must be refused, and the totals must equal the ground truth.
func TestAggregatesStayExactThroughARebalanceStormWithAStoppedZombie(t *testing.T) {
	s := newStack(t, 6)
	truthPath := filepath.Join(s.dir, "truth.json")
	const events = 120_000
	// 3,000 events/s: the traffic lasts the ~40 s of the storm.
	simulate := s.start("simulate", "simulate", "--seed", "2718", "--events", fmt.Sprint(events), "--rate", "3000",
		"--truth", truthPath, "--out-of-order-rate", "0.05", "--late-rate", "0.01", "--duplicate-rate", "0.01")

	type member struct {
		name string
		p    *proc
		ops  string
	}
	fenced := map[string]float64{}
	join := func(name, flush string) *member {
		ops := freeAddr(t)
		p := s.start(name, "run", "aggregates", "--ops-addr", ops, "--flush-interval", flush, "--session-timeout", "6s")
		return &member{name, p, ops}
	}
	// leave reads the member's refused commits, then stops it.
	leave := func(m *member, sig syscall.Signal) {
		fenced[m.name] = max(fenced[m.name], metricWith(m.ops, "atlas_engine_commits_total", `result="fenced"`))
		m.p.signal(sig)
		err := m.p.wait(30 * time.Second)
		switch {
		case sig == syscall.SIGKILL && (err == nil || !strings.Contains(err.Error(), "killed")):
			t.Fatalf("member %s did not die of SIGKILL: %v", m.name, err)
		case sig == syscall.SIGTERM && err != nil:
			t.Fatalf("member %s did not leave cleanly on SIGTERM: %v\n%s", m.name, err, lastLines(m.p.output(), 20))
		}
	}
	step := 0
	logStep := func(what string, members int) {
		step++
		t.Logf("step %d (%s): %s; %d member(s) active", step, time.Now().Format("15:04:05"), what, members)
	}

	a := join("a", "300ms") // the member that stays throughout
	s.waitMetric(a.p, a.ops, "atlas_engine_events_total", 1, time.Minute)
	// The zombie-to-be checkpoints rarely, so that it holds uncommitted
	// work when it is stopped and tries to commit it when it wakes.
	z := join("z", "4s")
	b := join("b1", "300ms")
	s.waitMetric(z.p, z.ops, "atlas_engine_events_total", 1, time.Minute)
	logStep("b1 and z joined", 3)
	time.Sleep(5 * time.Second)

	leave(b, syscall.SIGTERM)
	z.p.signal(syscall.SIGSTOP)
	stopped := time.Now()
	logStep("b1 left by SIGTERM; z stopped by SIGSTOP", 1)
	time.Sleep(5 * time.Second)

	b, c := join("b2", "300ms"), join("c2", "300ms")
	logStep("b2 and c2 joined", 3)
	time.Sleep(5 * time.Second)

	leave(b, syscall.SIGKILL)
	leave(c, syscall.SIGTERM)
	logStep("b2 killed by SIGKILL, c2 left by SIGTERM", 1)
	// The zombie stays stopped well past its 6 s session timeout, so the
	// group has moved its partitions on more than once.
	time.Sleep(time.Until(stopped.Add(15 * time.Second)))

	z.p.signal(syscall.SIGCONT)
	b = join("b3", "300ms")
	logStep(fmt.Sprintf("z continued after %s stopped; b3 joined", time.Since(stopped).Round(time.Second)), 3)
	deadline := time.Now().Add(30 * time.Second)
	for metricWith(z.ops, "atlas_engine_commits_total", `result="fenced"`) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the continued zombie had no commit refused within 30 s; its log:\n%s", lastLines(z.p.output(), 40))
		}
		time.Sleep(200 * time.Millisecond)
	}
	zombieFenced := metricWith(z.ops, "atlas_engine_commits_total", `result="fenced"`)
	t.Logf("zombie z: %.0f commit(s) refused for a stale generation", zombieFenced)
	time.Sleep(5 * time.Second)

	leave(b, syscall.SIGTERM)
	leave(z, syscall.SIGTERM)
	logStep("b3 and z left by SIGTERM", 1)
	time.Sleep(5 * time.Second)

	b, c = join("b4", "300ms"), join("c4", "300ms")
	logStep("b4 and c4 joined", 3)
	time.Sleep(5 * time.Second)

	leave(c, syscall.SIGKILL)
	leave(b, syscall.SIGTERM)
	logStep("c4 killed by SIGKILL, b4 left by SIGTERM", 1)

	if err := simulate.wait(3 * time.Minute); err != nil {
		t.Fatalf("simulate: %v\n%s", err, simulate.output())
	}
	t.Logf("simulator: %s", strings.TrimSpace(lastLines(simulate.output(), 3)))
	s.waitDrained(3*time.Minute, s.topo.GroupID(topology.AggregatesGroup),
		s.topo.Name(topology.Playback), s.topo.Name(topology.Browse), s.topo.Name(topology.Catalog))
	leave(a, syscall.SIGTERM)

	truth, err := sim.LoadTruth(truthPath)
	if err != nil {
		t.Fatal(err)
	}
	n := s.compareWithTruth(truth)
	total := 0.0
	for _, f := range fenced {
		total += f
	}
	t.Logf("rebalance storm: %d membership steps between 1 and 3 members, 2 SIGKILLs, a zombie stopped for 15 s: %.0f commit(s) refused for a stale generation (%v); all %d aggregate rows and late events of %d events (%d late, %d duplicates) equal the ground truth",
		step, total, fenced, n, events, truth.Totals.Late, truth.Totals.Duplicates)
}
