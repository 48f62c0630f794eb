package sim

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/atlas-stream/atlas/producers/sim/recfile"
)

// BenchmarkGenerate1M generates 1,000,000 events with the default
// configuration into a sink that drops them: the generator and the
// ground-truth bookkeeping alone. Run with -benchtime=1x for one run.
func BenchmarkGenerate1M(b *testing.B) { benchGenerate(b, func() Sink { return Discard{} }) }

// BenchmarkGenerateEncode1M adds msgpack encoding into a record stream, the
// cost every real sink pays.
func BenchmarkGenerateEncode1M(b *testing.B) {
	benchGenerate(b, func() Sink { return FileSink{W: recfile.NewWriter(io.Discard)} })
}

func benchGenerate(b *testing.B, sink func() Sink) {
	const events = 1_000_000
	b.ReportAllocs()
	var elapsed time.Duration
	for i := 0; i < b.N; i++ {
		cfg := DefaultConfig()
		cfg.Seed = uint64(i)
		cfg.Events = events
		start := time.Now()
		g, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := g.Run(context.Background(), sink()); err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(start)
	}
	b.ReportMetric(float64(events*b.N)/elapsed.Seconds(), "events/s")
}
