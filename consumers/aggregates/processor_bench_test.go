package aggregates

import (
	"context"
	"testing"

	"github.com/atlas-stream/atlas/consumers/stream"
)

type discardSink struct{}

func (discardSink) Write(context.Context, *Batch) error { return nil }

// BenchmarkProcess measures the aggregates processor alone (no decode), per
// event, with a checkpoint every 10,000 events as the engine would do. The
// traffic is generated for b.N events, so no event repeats.
func BenchmarkProcess(b *testing.B) {
	log := traffic(1, b.N)
	f, err := NewFactory(Config{Sink: discardSink{}})
	if err != nil {
		b.Fatal(err)
	}
	p, _ := f(context.Background(), stream.Claim{Topic: "pb", Committed: -1, Processed: -1})
	r := stream.Record{Topic: "pb"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.Offset, r.Value = int64(i), log[i]
		if err := p.Process(context.Background(), &r); err != nil {
			b.Fatal(err)
		}
		if i%10_000 == 9_999 {
			if _, err := p.Checkpoint(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
	}
}
