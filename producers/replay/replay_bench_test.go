package replay

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/atlas-stream/atlas/producers/sim/recfile"
	"github.com/atlas-stream/atlas/schemas"
)

// BenchmarkGenerator measures the generator alone: events built, validated
// and handed to a sink that drops them.
func BenchmarkGenerator(b *testing.B) {
	rows := randomRows(20_000, 1)
	g, _ := NewGenerator(Config{})
	ctx := context.Background()
	discard := SinkFunc(func(context.Context, schemas.Record) error { return nil })
	b.ReportAllocs()
	events := 0
	for b.Loop() {
		sum, err := g.Run(ctx, rows, discard)
		if err != nil {
			b.Fatal(err)
		}
		events += sum.Events
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(events), "ns/event")
}

// BenchmarkGeneratorToRecordFile adds msgpack encoding and the record file
// framing: the cost of `atlas replay --out`.
func BenchmarkGeneratorToRecordFile(b *testing.B) {
	rows := randomRows(20_000, 1)
	g, _ := NewGenerator(Config{})
	ctx := context.Background()
	b.ReportAllocs()
	events, size := 0, 0
	for b.Loop() {
		var buf bytes.Buffer
		w := recfile.NewWriter(&buf)
		sum, err := g.Run(ctx, rows, SinkFunc(func(_ context.Context, rec schemas.Record) error { return w.Write(rec) }))
		if err != nil {
			b.Fatal(err)
		}
		w.Flush()
		events += sum.Events
		size += buf.Len()
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(size)/float64(max(events, 1)), "bytes/event")
}

// BenchmarkReadRatings measures parsing and ordering ratings.csv rows.
func BenchmarkReadRatings(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(ratingsHeader + "\n")
	for _, in := range randomRows(100_000, 2) {
		fmt.Fprintf(&sb, "%d,%d,%.1f,%d\n", in.User, in.Item, in.Stars(), in.Time)
	}
	text := sb.String()
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ReadRatings(strings.NewReader(text), "bench", ReadOptions{SizeHint: int64(len(text))}); err != nil {
			b.Fatal(err)
		}
	}
}
