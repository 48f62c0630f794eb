//go:build integration

package e2e

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/atlas-stream/atlas/producers/sim"
	"github.com/atlas-stream/atlas/topology"
)

// TestEveryCrashWindowOfACheckpointKeepsTotalsExact kills the consumer from
// inside each step of a checkpoint — before the sink flush, between the
// flush and the dead letters, between the dead letters and the commit, and
// right after the commit — five times each, and compares with the truth.
func TestEveryCrashWindowOfACheckpointKeepsTotalsExact(t *testing.T) {
	s := newStack(t, 6)
	truthPath := filepath.Join(s.dir, "truth.json")
	// Each restart waits for the group to evict the killed member (the
	// broker's minimum session timeout is 6 s), so 20 crashes take about
	// two minutes: the simulation is paced to outlast them.
	simulate := s.start("simulate", "simulate", "--seed", "31337", "--events", "200000", "--rate", "1400", "--truth", truthPath)

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	steps := []string{"before-checkpoint", "before-dlq", "before-commit", "after-commit"}
	crashes := map[string]int{}
	for round := 0; round < 5; round++ {
		for _, step := range steps {
			// The Nth time any partition reaches the step (12 partitions
			// checkpoint every 300 ms), so the crash lands mid-stream.
			n := 2 + rng.IntN(12)
			c := s.startEnv("aggregates", []string{"ATLAS_FAILPOINT=" + fmt.Sprintf("%s:%d", step, n)},
				"run", "aggregates", "--ops-addr", "", "--flush-interval", "300ms", "--session-timeout", "6s")
			err := c.wait(90 * time.Second)
			if err == nil || !strings.Contains(err.Error(), "killed") {
				t.Fatalf("failpoint %s:%d did not kill the consumer: %v\n%s", step, n, err, lastLines(c.output(), 20))
			}
			if !strings.Contains(c.output(), "failpoint reached") {
				t.Fatalf("the consumer died without reaching failpoint %s:\n%s", step, lastLines(c.output(), 20))
			}
			crashes[step]++
		}
	}
	t.Logf("crashes per checkpoint step: %v", crashes)
	if err := simulate.wait(3 * time.Minute); err != nil {
		t.Fatalf("simulate: %v\n%s", err, simulate.output())
	}
	ops := freeAddr(t)
	final := s.start("aggregates", "run", "aggregates", "--ops-addr", ops, "--flush-interval", "300ms")
	s.waitReady(final, ops, time.Minute)
	s.waitDrained(3*time.Minute, s.topo.GroupID(topology.AggregatesGroup),
		s.topo.Name(topology.Playback), s.topo.Name(topology.Browse), s.topo.Name(topology.Catalog))
	final.signal(syscall.SIGTERM)
	if err := final.wait(30 * time.Second); err != nil {
		t.Fatalf("final consumer: %v", err)
	}
	truth, err := sim.LoadTruth(truthPath)
	if err != nil {
		t.Fatal(err)
	}
	n := s.compareWithTruth(truth)
	t.Logf("%d crashes inside checkpoints (%v): all %d aggregate rows and late events equal the ground truth", 5*len(steps), crashes, n)
}
