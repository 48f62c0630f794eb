package anomaly_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/segmentio/kafka-go"

	"github.com/atlas-stream/atlas/consumers/anomaly"
	"github.com/atlas-stream/atlas/consumers/anomaly/evaluate"
	"github.com/atlas-stream/atlas/producers/sim"
	"github.com/atlas-stream/atlas/schemas"
)

// simulated returns the events of a short simulation with every kind of
// incident planted, in send order.
func simulated(t *testing.T, seed uint64, events int64) ([]schemas.Record, *sim.Truth) {
	t.Helper()
	cfg := sim.DefaultConfig()
	cfg.Seed, cfg.Events = seed, events
	g, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var mem sim.Memory
	truth, err := g.Run(context.Background(), &mem)
	if err != nil {
		t.Fatal(err)
	}
	var out []schemas.Record
	for _, r := range mem.Records {
		if r.Schema() != schemas.SchemaCatalog {
			out = append(out, r)
		}
	}
	return out, truth
}

func newPipeline(t *testing.T) *anomaly.Pipeline {
	t.Helper()
	p, err := anomaly.NewPipeline(evaluate.OfflineConfig(6))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// alertSet is what a consumer that deduplicates by id, status and
// severity keeps, settled (see anomaly.Settled) and sorted so that two
// runs compare.
func alertSet(alerts []schemas.Alert) []schemas.Alert {
	out := anomaly.Dedup(alerts)
	for i := range out {
		out[i] = anomaly.Settled(out[i])
	}
	slices.SortFunc(out, func(a, b schemas.Alert) int {
		return strings.Compare(fmt.Sprint(a.ID, a.Status, a.Severity), fmt.Sprint(b.ID, b.Status, b.Severity))
	})
	return out
}

func TestCrashesAndCheckpointsAtRandomGiveExactlyTheAlertsOfARunWithout(t *testing.T) {
	recs, _ := simulated(t, 3, 150_000)

	clean := newPipeline(t)
	for i, r := range recs {
		must(t, clean.Add(anomaly.Murmur2Partition([]byte(r.Key()), 6), r))
		if i%5000 == 0 {
			must(t, clean.Drain())
		}
	}
	must(t, clean.Drain())
	want := alertSet(clean.Alerts())
	kinds := map[string]bool{}
	for _, a := range want {
		kinds[a.Kind] = true
	}
	if len(kinds) < 5 {
		t.Fatalf("the clean run raised alerts of %d kinds (%v), want all 5: the traffic is too thin to test", len(kinds), kinds)
	}

	for seed := uint64(0); seed < 6; seed++ {
		rng := rand.New(rand.NewPCG(seed, 9))
		p := newPipeline(t)
		for _, r := range recs {
			must(t, p.Add(anomaly.Murmur2Partition([]byte(r.Key()), 6), r))
		}
		topics := p.Topics()
		crashes, checkpoints := 0, 0
		for {
			pending := 0
			for _, tp := range topics {
				for i := 0; i < 6; i++ {
					pending += p.Pending(tp, i)
				}
			}
			if pending == 0 {
				break
			}
			// Every partition moves a random step, in random order, so
			// that the re-key logs interleave differently every time.
			for _, k := range rng.Perm(18) {
				tp, part := topics[k/6], k%6
				if _, err := p.Step(tp, part, 1+rng.IntN(6000)); err != nil {
					t.Fatal(err)
				}
				switch x := rng.IntN(40); {
				case x < 12:
					must(t, p.Checkpoint(tp, part))
					checkpoints++
				case x < 13:
					must(t, p.Crash(tp, part))
					crashes++
				}
			}
		}
		got := alertSet(p.Alerts())
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("seed %d: %d crashes and %d checkpoints: alerts differ from the run without crashes (-want +got):\n%s",
				seed, crashes, checkpoints, diff)
		}
		t.Logf("seed %d: %d crashes, %d checkpoints, %d alert steps published (%d distinct), equal to the run without crashes",
			seed, crashes, checkpoints, len(p.Alerts()), len(got))
	}
}

// TestStuffingFiresAheadOfTheClockWithTheIdsOfTheClock feeds the role
// the way live traffic does, each partition a few records behind the
// newest, so that stage two's clock trails its newest records by about a
// second: credential stuffing then fires ahead of the clock. The alerts,
// settled, must be those of a run that fired everything by the clock,
// with checkpoints and crashes at random.
func TestStuffingFiresAheadOfTheClockWithTheIdsOfTheClock(t *testing.T) {
	for seed := uint64(3); seed < 6; seed++ {
		liveRunFiresStuffingAhead(t, seed)
	}
}

func liveRunFiresStuffingAhead(t *testing.T, seed uint64) {
	recs, _ := simulated(t, seed, 150_000)
	// The reference fires by the clock only.
	cfg := evaluate.OfflineConfig(6)
	cfg.ByClock = true
	clean, err := anomaly.NewPipeline(cfg)
	must(t, err)
	for _, r := range recs {
		must(t, clean.Add(anomaly.Murmur2Partition([]byte(r.Key()), 6), r))
	}
	must(t, clean.Drain())
	want := alertSet(clean.Alerts())
	for _, a := range clean.Alerts() {
		if a.Evidence["ahead_of_clock_ms"] != "" {
			t.Fatalf("the run by the clock fired %s ahead of it", a.ID)
		}
	}

	{
		rng := rand.New(rand.NewPCG(seed, 11))
		p := newPipeline(t)
		topics := p.Topics()
		crashes := 0
		for _, r := range recs {
			must(t, p.Add(anomaly.Murmur2Partition([]byte(r.Key()), 6), r))
			// One partition of the 18 takes what it has, now and then.
			k := rng.IntN(18)
			tp, part := topics[k/6], k%6
			if _, err := p.Step(tp, part, -1); err != nil {
				t.Fatal(err)
			}
			switch x := rng.IntN(2000); {
			case x < 10:
				must(t, p.Checkpoint(tp, part))
			case x < 11:
				must(t, p.Crash(tp, part))
				crashes++
			}
		}
		must(t, p.Drain())
		ahead, stuffing := 0, 0
		for _, a := range p.Alerts() {
			if a.Kind == anomaly.KindCredentialStuffing && a.Status == schemas.AlertFiring {
				stuffing++
				if a.Evidence["ahead_of_clock_ms"] != "" {
					ahead++
				}
			}
		}
		if ahead == 0 {
			t.Fatalf("seed %d: none of %d stuffing firings came ahead of the clock: the test does not test it", seed, stuffing)
		}
		got := alertSet(p.Alerts())
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("seed %d: %d of %d stuffing firings ahead of the clock, %d crashes: alerts differ from the run by the clock (-want +got):\n%s",
				seed, ahead, stuffing, crashes, diff)
		}
		t.Logf("seed %d: %d of %d stuffing firings ahead of the clock, %d crashes; settled alerts equal to the run by the clock",
			seed, ahead, stuffing, crashes)
	}
}

func TestMurmur2PartitionIsKafkaGosMurmur2Balancer(t *testing.T) {
	parts := []int{0, 1, 2, 3, 4, 5}
	for _, k := range []string{"", "a", "ab", "abc", "abcd", "pro-1-1", "pro-20000-5", "acc-9145", "ünïcødé"} {
		want := (&kafka.Murmur2Balancer{}).Balance(kafka.Message{Key: []byte(k)}, parts...)
		if got := anomaly.Murmur2Partition([]byte(k), 6); got != want {
			t.Fatalf("key %q: partition %d, kafka-go %d", k, got, want)
		}
	}
}

func TestTheProcessorDependsOnNeitherKafkaNorClickHouse(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, forbidden := range []string{"github.com/segmentio/kafka-go", "github.com/ClickHouse/clickhouse-go"} {
		if strings.Contains(string(out), forbidden) {
			t.Fatalf("consumers/anomaly depends on %s; processors must stay pure", forbidden)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var errEOF = io.EOF
