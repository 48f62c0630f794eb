package aggregates

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/atlas-stream/atlas/consumers/enginetest"
	"github.com/atlas-stream/atlas/internal/eventtime"
	"github.com/atlas-stream/atlas/schemas"
)

// memSink keeps rows like the ClickHouse tables do: the highest version per
// (window, dimensions, source) wins; late events collapse by id.
type memSink struct {
	playback map[string]PlaybackRow
	quality  map[string]QualityRow
	funnel   map[string]FunnelRow
	late     map[string]LateEvent
	fail     bool
}

func newMemSink() *memSink {
	return &memSink{playback: map[string]PlaybackRow{}, quality: map[string]QualityRow{},
		funnel: map[string]FunnelRow{}, late: map[string]LateEvent{}}
}

func (s *memSink) Write(_ context.Context, b *Batch) error {
	if s.fail {
		return fmt.Errorf("sink is down")
	}
	for _, r := range b.Playback {
		k := fmt.Sprint(r.WindowStart, r.TitleID, r.Country, r.DeviceType, r.Topic, r.Partition)
		if old, ok := s.playback[k]; !ok || r.Version >= old.Version {
			r.ViewerHashes = append([]uint64(nil), r.ViewerHashes...)
			s.playback[k] = r
		}
	}
	for _, r := range b.Quality {
		k := fmt.Sprint(r.WindowStart, r.CDN, r.ISP, r.Country, r.Topic, r.Partition)
		if old, ok := s.quality[k]; !ok || r.Version >= old.Version {
			s.quality[k] = r
		}
	}
	for _, r := range b.Funnel {
		k := fmt.Sprint(r.WindowStart, r.Row, r.ArtworkID, r.Topic, r.Partition)
		if old, ok := s.funnel[k]; !ok || r.Version >= old.Version {
			s.funnel[k] = r
		}
	}
	for _, l := range b.Late {
		s.late[l.Topic+"/"+l.EventID] = l
	}
	return nil
}

// totals are what the views return: sums over sources, versions dropped.
type totals struct {
	Playback map[string][13]uint64 // starts, completes, watch, viewers, dropoff×9... (see below)
	Quality  map[string][7]uint64
	Funnel   map[string][3]uint64
	Late     map[string]bool
}

func (s *memSink) totals() totals {
	t := totals{Playback: map[string][13]uint64{}, Quality: map[string][7]uint64{}, Funnel: map[string][3]uint64{}, Late: map[string]bool{}}
	for _, r := range s.playback {
		k := fmt.Sprint(r.WindowStart, "|", r.TitleID, "|", r.Country, "|", r.DeviceType)
		v := t.Playback[k]
		v[0] += r.Starts
		v[1] += r.Completes
		v[2] += r.WatchMs
		v[3] += r.Viewers
		for i := 0; i < 9; i++ {
			v[4+i] += r.Dropoff[i]
		}
		v[12] += r.Dropoff[9]
		t.Playback[k] = v
	}
	for _, r := range s.quality {
		k := fmt.Sprint(r.WindowStart, "|", r.CDN, "|", r.ISP, "|", r.Country)
		v := t.Quality[k]
		for i, x := range []uint64{r.Sessions, r.Rebuffers, r.RebufferMs, r.StartFailures, r.Errors, r.BitrateSum, r.BitrateSamples} {
			v[i] += x
		}
		t.Quality[k] = v
	}
	for _, r := range s.funnel {
		k := fmt.Sprint(r.WindowStart, "|", r.Row, "|", r.ArtworkID)
		v := t.Funnel[k]
		v[0] += r.Impressions
		v[1] += r.Selects
		v[2] += r.Plays
		t.Funnel[k] = v
	}
	for k := range s.late {
		t.Late[k] = true
	}
	return t
}

// traffic makes a partition log with out-of-order, late and duplicate
// events over several minutes.
func traffic(seed uint64, n int) []schemas.Record {
	rng := rand.New(rand.NewPCG(seed, 1))
	const t0 = int64(1_764_000_000_000)
	var log []schemas.Record
	now := t0
	for i := 0; i < n; i++ {
		now += int64(rng.IntN(400))
		t := now
		switch r := rng.Float64(); {
		case r < 0.05:
			t -= int64(rng.IntN(12_000)) // out of order, usually within grace
		case r < 0.07:
			t -= 120_000 + int64(rng.IntN(60_000)) // late
		}
		env := schemas.Envelope{EventID: fmt.Sprintf("e%d", i), EventTime: t, ReceiveTime: now,
			AccountID: "a", ProfileID: fmt.Sprintf("p%d", rng.IntN(20)), DeviceID: "d", SessionID: "s",
			Country: []string{"DE", "BR"}[rng.IntN(2)], DeviceType: schemas.DeviceTV}
		var rec schemas.Record
		if rng.IntN(4) == 0 {
			kinds := []schemas.BrowseKind{schemas.BrowseImpression, schemas.BrowseSelect, schemas.BrowseHover}
			rec = &schemas.Browse{Envelope: env, Kind: kinds[rng.IntN(3)], TitleID: "t1", Row: []string{"trending", "new"}[rng.IntN(2)], ArtworkID: "a1"}
		} else {
			kinds := schemas.PlaybackKinds
			k := kinds[rng.IntN(len(kinds))]
			pb := &schemas.Playback{Envelope: env, Kind: k, TitleID: fmt.Sprintf("t%d", rng.IntN(3)), PositionMs: int64(rng.IntN(5_400_000)),
				DurationMs: 5_400_000, BitrateKbps: int64(rng.IntN(5000)), WatchedMs: int64(rng.IntN(30_000)), CDN: "c1", ISP: "i1"}
			if k == schemas.PlayRebuffer {
				pb.RebufferMs = 1 + int64(rng.IntN(3000))
			}
			if k == schemas.PlayStart && rng.IntN(2) == 0 {
				pb.SourceRow, pb.SourceArtworkID = "trending", "a1"
			}
			rec = pb
		}
		log = append(log, rec)
		if rng.IntN(100) == 0 { // duplicate send right after
			log = append(log, rec)
		}
	}
	return log
}

func factory(t *testing.T, sink Sink) func() *enginetest.Harness {
	f, err := NewFactory(Config{Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	return func() *enginetest.Harness { return enginetest.New(f) }
}

func runAll(t *testing.T, h *enginetest.Harness, topic string, log []schemas.Record) {
	if err := h.Feed(topic, 0, log...); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Checkpoint(topic, 0); err != nil {
		t.Fatal(err)
	}
}

func TestCrashesAtAnyPointGiveTheSameTotalsAsARunWithout(t *testing.T) {
	log := traffic(7, 3000)
	clean := newMemSink()
	runAll(t, factory(t, clean)(), "pb", log)
	want := clean.totals()
	if len(want.Late) == 0 || len(want.Playback) == 0 || len(want.Funnel) == 0 {
		t.Fatalf("traffic too thin to test: %d late, %d playback keys", len(want.Late), len(want.Playback))
	}

	for seed := uint64(0); seed < 30; seed++ {
		rng := rand.New(rand.NewPCG(seed, 2))
		sink := newMemSink()
		h := factory(t, sink)()
		if err := h.Append("pb", 0, log...); err != nil {
			t.Fatal(err)
		}
		crashes := 0
		for h.Pending("pb", 0) > 0 {
			if err := h.Process("pb", 0, 1+rng.IntN(300)); err != nil {
				t.Fatal(err)
			}
			switch rng.IntN(3) {
			case 0:
				if _, err := h.Checkpoint("pb", 0); err != nil {
					t.Fatal(err)
				}
			case 1:
				if err := h.Crash("pb", 0); err != nil {
					t.Fatal(err)
				}
				crashes++
			}
		}
		if _, err := h.Checkpoint("pb", 0); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, sink.totals()); diff != "" {
			t.Fatalf("seed %d, %d crashes: totals differ from the run without crashes (-want +got):\n%s", seed, crashes, diff)
		}
	}
}

func TestTotalsMatchAStraightforwardRecomputation(t *testing.T) {
	log := traffic(11, 2000)
	sink := newMemSink()
	runAll(t, factory(t, sink)(), "pb", log)
	got := sink.totals()

	rules := eventtime.Rules{}.Defaults()
	wm := rules.NewWatermark()
	seen := map[string]bool{}
	starts := map[string]uint64{}
	late := map[string]bool{}
	impressions := map[string]uint64{}
	for _, rec := range log {
		var env *schemas.Envelope
		switch v := rec.(type) {
		case *schemas.Playback:
			env = &v.Envelope
		case *schemas.Browse:
			env = &v.Envelope
		}
		if wm.IsLate(env.EventTime) {
			late["pb/"+env.EventID] = true
			continue
		}
		wm.Observe(env.EventTime)
		w := rules.WindowStart(env.EventTime)
		id := fmt.Sprint(w, env.EventID)
		if seen[id] {
			continue
		}
		seen[id] = true
		switch v := rec.(type) {
		case *schemas.Playback:
			if v.Kind == schemas.PlayStart {
				starts[fmt.Sprint(w, "|", v.TitleID, "|", v.Country, "|", v.DeviceType)]++
			}
		case *schemas.Browse:
			if v.Kind == schemas.BrowseImpression {
				impressions[fmt.Sprint(w, "|", v.Row, "|", v.ArtworkID)]++
			}
		}
	}
	for k, n := range starts {
		if got.Playback[k][0] != n {
			t.Fatalf("%s: %d starts, want %d", k, got.Playback[k][0], n)
		}
	}
	for k, n := range impressions {
		if got.Funnel[k][0] != n {
			t.Fatalf("%s: %d impressions, want %d", k, got.Funnel[k][0], n)
		}
	}
	if diff := cmp.Diff(late, got.Late); diff != "" {
		t.Fatalf("late events differ (-want +got):\n%s", diff)
	}
}

func TestAFailingSinkKeepsRowsForTheNextCheckpoint(t *testing.T) {
	log := traffic(3, 500)
	clean := newMemSink()
	runAll(t, factory(t, clean)(), "pb", log)

	sink := newMemSink()
	h := factory(t, sink)()
	if err := h.Feed("pb", 0, log...); err != nil {
		t.Fatal(err)
	}
	sink.fail = true
	if _, err := h.Checkpoint("pb", 0); err == nil {
		t.Fatal("checkpoint succeeded with the sink down")
	}
	sink.fail = false
	if _, err := h.Checkpoint("pb", 0); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(clean.totals(), sink.totals()); diff != "" {
		t.Fatalf("totals after a failed checkpoint differ (-want +got):\n%s", diff)
	}
}

func TestTheProcessorDependsOnNeitherKafkaNorClickHouse(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, forbidden := range []string{"github.com/segmentio/kafka-go", "github.com/ClickHouse/clickhouse-go"} {
		if strings.Contains(string(out), forbidden) {
			t.Fatalf("consumers/aggregates depends on %s; processors must stay pure", forbidden)
		}
	}
}
