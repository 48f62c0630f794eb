//go:build integration

package chsink_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/atlas-stream/atlas/consumers/aggregates"
	"github.com/atlas-stream/atlas/consumers/aggregates/chsink"
)

// benchRows is n playback rows over 60 minutes, 50 titles, 6 partitions,
// each with 4 viewer hashes and a drop-off histogram: roughly what one
// flush of a busy aggregates member holds.
func benchRows(n int) []aggregates.PlaybackRow {
	rows := make([]aggregates.PlaybackRow, n)
	for i := range rows {
		r := &rows[i]
		r.WindowStart = t0.Add(time.Duration(i%60) * time.Minute).UnixMilli()
		r.TitleID = fmt.Sprintf("title-%03d", i%50)
		r.Country = []string{"DE", "FR", "US", "BR"}[i%4]
		r.DeviceType = []string{"tv", "mobile", "web"}[i%3]
		r.Source = aggregates.Source{Topic: playbackTopic, Partition: int32(i % 6), Version: uint64(i + 1)}
		r.Starts, r.Completes, r.WatchMs = uint64(i%7), uint64(i%3), uint64(i%1000)*1000
		r.ViewerHashes = []uint64{uint64(i) * 4, uint64(i)*4 + 1, uint64(i)*4 + 2, uint64(i)*4 + 3}
		r.Viewers = 4
		r.Dropoff = [10]uint64{uint64(i % 2), 0, 1, 0, 0, 2, 0, 0, 0, 1}
	}
	return rows
}

const benchBatch = 100_000

// BenchmarkWriter writes batches of 100,000 playback rows through a Writer
// (copy into columns, one INSERT per flush) and reports rows/s.
func BenchmarkWriter(b *testing.B) {
	f := newFixture(b)
	w := f.startWriter(b, chsink.Config{MaxRows: benchBatch, MaxPendingRows: benchBatch})
	batch := &aggregates.Batch{Playback: benchRows(benchBatch)}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if err := w.Write(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*benchBatch)/time.Since(start).Seconds(), "rows/s")
}

// BenchmarkPlainBatch inserts the same rows with clickhouse-go's
// PrepareBatch, one Append per row, one Send: the baseline for
// BenchmarkWriter.
func BenchmarkPlainBatch(b *testing.B) {
	f := newFixture(b)
	rows := benchRows(benchBatch)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		batch, err := f.writer.PrepareBatch(ctx, "INSERT INTO playback_minute (window_start, title_id, country, device_type, "+
			"src_topic, src_partition, version, starts, completes, watch_ms, viewers, viewer_hashes, dropoff)")
		if err != nil {
			b.Fatal(err)
		}
		for i := range rows {
			r := &rows[i]
			err := batch.Append(time.UnixMilli(r.WindowStart), r.TitleID, r.Country, r.DeviceType, r.Topic, r.Partition,
				r.Version, r.Starts, r.Completes, r.WatchMs, r.Viewers, r.ViewerHashes, r.Dropoff[:])
			if err != nil {
				b.Fatal(err)
			}
		}
		if err := batch.Send(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*benchBatch)/time.Since(start).Seconds(), "rows/s")
}
