package perevent

import (
	"context"
	"log/slog"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/atlas-stream/atlas/consumers/aggregates"
	"github.com/atlas-stream/atlas/consumers/anomaly"
	"github.com/atlas-stream/atlas/consumers/anomaly/evaluate"
	"github.com/atlas-stream/atlas/consumers/embeddings"
	"github.com/atlas-stream/atlas/consumers/stream"
	"github.com/atlas-stream/atlas/producers/player"
	"github.com/atlas-stream/atlas/producers/sim"
	"github.com/atlas-stream/atlas/schemas"
)

// events is the number of playback and browse events one benchmark
// iteration runs through: a simulator run (seed 1, default rates of
// out-of-order, late and duplicate delivery), without its catalog.
const events = 100_000

// partitions is the topology's default partition count: records go to
// the partition of their key, as the producers put them.
const partitions = 6

// checkpointEvery is how many events pass between two checkpoints of every
// processor: about what the engine sees per partition between its 1 s
// checkpoints when a role drains a backlog on this machine.
const checkpointEvery = 10_000

// raw is one encoded record as it sits on a topic.
type raw struct {
	schema    string
	topic     string
	partition int
	value     []byte
	received  time.Time
}

var traffic = sync.OnceValues(func() ([]raw, error) {
	cfg := sim.DefaultConfig()
	cfg.Seed, cfg.Events = 1, events
	g, err := sim.New(cfg)
	if err != nil {
		return nil, err
	}
	var mem sim.Memory
	if _, err := g.Run(context.Background(), &mem); err != nil {
		return nil, err
	}
	out := make([]raw, 0, len(mem.Records))
	for _, rec := range mem.Records {
		var env schemas.Envelope
		var topic string
		switch e := rec.(type) {
		case *schemas.Playback:
			env, topic = e.Envelope, "playback"
		case *schemas.Browse:
			env, topic = e.Envelope, "browse"
		default:
			continue // the catalog is a table, not traffic
		}
		v, err := schemas.Marshal(rec)
		if err != nil {
			return nil, err
		}
		out = append(out, raw{schema: string(rec.Schema()), topic: topic, partition: player.Partition(rec.Key(), partitions),
			value: v, received: time.UnixMilli(env.ReceiveTime)})
	}
	return out, nil
})

func load(b *testing.B) []raw {
	b.Helper()
	t, err := traffic()
	if err != nil {
		b.Fatal(err)
	}
	return t
}

// claim names a topic-partition.
type claim struct {
	topic     string
	partition int
}

// decodeAll decodes every record into a new value, as the engine hands
// each processor values of its own.
func decodeAll(b *testing.B, in []raw) []stream.Record {
	b.Helper()
	d := schemas.NewDecoder(schemas.Limits{})
	offsets := map[claim]int64{}
	out := make([]stream.Record, len(in))
	for i, r := range in {
		rec, err := d.Decode(r.schema, r.value)
		if err != nil {
			b.Fatal(err)
		}
		k := claim{r.topic, r.partition}
		out[i] = stream.Record{Topic: r.topic, Partition: r.partition, Offset: offsets[k], Key: []byte(rec.Key()), Value: rec}
		offsets[k]++
	}
	return out
}

// perEvent runs pass b.N times, each over fresh inputs from setup (made
// with the timer stopped), and reports CPU time, allocations and bytes
// per event. Run with -cpu 1: the garbage collector's work then lands on
// the measured core instead of the idle one.
func perEvent[T any](b *testing.B, setup func() T, pass func(T)) {
	var mallocs, bytes uint64
	var ms runtime.MemStats
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		in := setup()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		m0, b0 := ms.Mallocs, ms.TotalAlloc
		b.StartTimer()
		pass(in)
		b.StopTimer()
		runtime.ReadMemStats(&ms)
		mallocs += ms.Mallocs - m0
		bytes += ms.TotalAlloc - b0
		b.StartTimer()
	}
	n := float64(b.N) * float64(len(load(b)))
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/event")
	b.ReportMetric(float64(mallocs)/n, "allocs/event")
	b.ReportMetric(float64(bytes)/n, "B/event")
}

// BenchmarkDecode is the engine's step before any processor: decode the
// record of its header's schema into a new value and validate it against
// the default limits at its receive time.
func BenchmarkDecode(b *testing.B) {
	in := load(b)
	d := schemas.NewDecoder(schemas.Limits{})
	lim := schemas.DefaultLimits()
	perEvent(b, func() []raw { return in }, func(in []raw) {
		for i := range in {
			rec, err := d.Decode(in[i].schema, in[i].value)
			if err != nil {
				b.Fatal(err)
			}
			if err := schemas.Validate(rec, lim, in[i].received); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// processors feeds records to one processor per claimed topic-partition,
// made by factory, and checkpoints them all every checkpointEvery events
// and at the end.
func processors(b *testing.B, factory stream.Factory, recs []stream.Record) {
	ctx := context.Background()
	procs := map[claim]stream.Processor{}
	checkpoint := func() {
		for _, p := range procs {
			if _, err := p.Checkpoint(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	for i := range recs {
		r := &recs[i]
		k := claim{r.Topic, r.Partition}
		p := procs[k]
		if p == nil {
			var err error
			if p, err = factory(ctx, stream.Claim{Topic: r.Topic, Partition: r.Partition, Committed: -1, Processed: -1}); err != nil {
				b.Fatal(err)
			}
			procs[k] = p
		}
		if err := p.Process(ctx, r); err != nil {
			b.Fatal(err)
		}
		if i%checkpointEvery == checkpointEvery-1 {
			checkpoint()
		}
	}
	checkpoint()
	for _, p := range procs {
		p.Close()
	}
}

type discard struct{}

func (discard) Write(context.Context, *aggregates.Batch) error { return nil }

// BenchmarkAggregates is the aggregates role's processor: one-minute
// windows per partition, rows of changed windows handed to a sink that
// discards them at each checkpoint.
func BenchmarkAggregates(b *testing.B) {
	in := load(b)
	perEvent(b, func() []stream.Record { return decodeAll(b, in) }, func(recs []stream.Record) {
		f, err := aggregates.NewFactory(aggregates.Config{Sink: discard{}})
		if err != nil {
			b.Fatal(err)
		}
		processors(b, f, recs)
	})
}

// BenchmarkEmbeddings is the embeddings role's processor (dimension 32,
// the default): profiles and title model learned from plays and selects,
// the changed profiles encoded into an in-memory changelog at each
// checkpoint. The dense refresh, which the role runs every 10 s in the
// background, is not included.
func BenchmarkEmbeddings(b *testing.B) {
	in := load(b)
	perEvent(b, func() []stream.Record { return decodeAll(b, in) }, func(recs []stream.Record) {
		store := embeddings.NewMemStore()
		node, err := embeddings.NewNode(embeddings.NodeConfig{Store: store, PlaybackTopic: "playback", BrowseTopic: "browse",
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		store.Follow(node)
		processors(b, node.Factory, recs)
	})
}

// BenchmarkAnomaly is the anomaly role's two stages in memory: stage one
// re-keys every event by account, network and quality cell, stage two runs
// the detectors. The role also encodes each re-keyed record for its
// re-key topic and decodes it again in stage two; those two steps are not
// included here (they cost about one Decode row each).
func BenchmarkAnomaly(b *testing.B) {
	in := load(b)
	type input struct {
		p    *anomaly.Pipeline
		recs []stream.Record
	}
	perEvent(b, func() input {
		p, err := anomaly.NewPipeline(evaluate.OfflineConfig(partitions))
		if err != nil {
			b.Fatal(err)
		}
		return input{p, decodeAll(b, in)}
	}, func(in input) {
		for i := range in.recs {
			if err := in.p.Add(in.recs[i].Partition, in.recs[i].Value); err != nil {
				b.Fatal(err)
			}
			if i%checkpointEvery == checkpointEvery-1 {
				if err := in.p.Drain(); err != nil {
					b.Fatal(err)
				}
				in.p.Compact(false)
			}
		}
		if err := in.p.Drain(); err != nil {
			b.Fatal(err)
		}
	})
}
