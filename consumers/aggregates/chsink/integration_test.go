//go:build integration

// These tests write through a Writer into a real ClickHouse (the one of
// scripts/clickhouse.sh, or any reachable through the ATLAS_CLICKHOUSE_*
// variables) and read the views of migration 0003 as the read-only user:
//
//	scripts/clickhouse.sh start
//	eval "$(scripts/clickhouse.sh env)"
//	go test -tags integration -count=1 -v ./consumers/aggregates/chsink/
//
// They fail, never skip, when the server is not there. Each test migrates a
// database of its own and drops it at the end.

package chsink_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/go-cmp/cmp"

	"github.com/atlas-stream/atlas/consumers/aggregates"
	"github.com/atlas-stream/atlas/consumers/aggregates/chsink"
)

const (
	playbackTopic = "atlas.playback.v1"
	browseTopic   = "atlas.browse.v1"
)

var t0 = time.Date(2026, 3, 14, 10, 0, 0, 0, time.UTC)

// minute returns the window start of the i-th minute after t0, in ms.
func minute(i int) int64 { return t0.Add(time.Duration(i) * time.Minute).UnixMilli() }

func src(topic string, partition int32, version uint64) aggregates.Source {
	return aggregates.Source{Topic: topic, Partition: partition, Version: version}
}

func playback(m int, title string, s aggregates.Source, starts, completes, watchMs uint64, hashes []uint64, dropoff ...uint64) aggregates.PlaybackRow {
	r := aggregates.PlaybackRow{
		WindowStart: minute(m), TitleID: title, Country: "DE", DeviceType: "tv", Source: s,
		Starts: starts, Completes: completes, WatchMs: watchMs,
		Viewers: uint64(len(hashes)), ViewerHashes: hashes,
	}
	copy(r.Dropoff[:], dropoff)
	return r
}

// sample is one checkpoint's worth of rows of every kind.
func sample() *aggregates.Batch {
	return &aggregates.Batch{
		Playback: []aggregates.PlaybackRow{
			playback(0, "t1", src(playbackTopic, 0, 100), 5, 2, 60_000, []uint64{1, 2, 3}, 1, 0, 2),
			playback(0, "t1", src(playbackTopic, 1, 40), 4, 1, 30_000, []uint64{4, 5}, 0, 1),
			playback(1, "t1", src(playbackTopic, 0, 120), 2, 0, 10_000, []uint64{1, 6}, 1),
			playback(65, "t1", src(playbackTopic, 1, 90), 1, 1, 5_000, []uint64{1, 7}),
			playback(0, "t2", src(playbackTopic, 0, 100), 3, 3, 90_000, []uint64{2, 8, 9}),
		},
		Quality: []aggregates.QualityRow{
			{WindowStart: minute(0), CDN: "edge1", ISP: "acme", Country: "DE", Source: src(playbackTopic, 0, 100),
				Sessions: 10, Rebuffers: 3, RebufferMs: 4_500, StartFailures: 1, Errors: 2, BitrateSum: 30_000, BitrateSamples: 10},
			{WindowStart: minute(0), CDN: "edge1", ISP: "acme", Country: "DE", Source: src(playbackTopic, 1, 40),
				Sessions: 5, Rebuffers: 1, RebufferMs: 500, StartFailures: 0, Errors: 0, BitrateSum: 20_000, BitrateSamples: 5},
		},
		Funnel: []aggregates.FunnelRow{
			{WindowStart: minute(0), Row: "trending", ArtworkID: "a1", Source: src(browseTopic, 3, 70), Impressions: 100, Selects: 10},
			{WindowStart: minute(0), Row: "trending", ArtworkID: "a1", Source: src(playbackTopic, 0, 100), Plays: 4},
		},
		Late: []aggregates.LateEvent{
			{EventID: "e1", Topic: playbackTopic, Partition: 0, Offset: 99, WindowStart: minute(-10),
				EventTime: minute(-10) + 1_500, Watermark: minute(0), ProfileID: "p1", Kind: "start", TitleID: "t1"},
		},
		Titles: []aggregates.TitleRow{
			{TitleID: "t1", Name: "One", Genres: []string{"drama", "crime"}, Country: "US", ReleaseDate: "1954-06-01",
				DurationSec: 5400, Type: "film", Version: 1},
		},
	}
}

// rowsOf runs query and renders each row as its values separated by " | ":
// times as "2006-01-02 15:04", arrays and numbers as fmt prints them.
func rowsOf(tb testing.TB, conn driver.Conn, query string, args ...any) []string {
	tb.Helper()
	rows, err := conn.Query(testContext(tb), query, args...)
	if err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var dest []any
		for _, ct := range rows.ColumnTypes() {
			dest = append(dest, reflect.New(ct.ScanType()).Interface())
		}
		if err := rows.Scan(dest...); err != nil {
			tb.Fatalf("%s: %v", query, err)
		}
		var vals []string
		for _, d := range dest {
			v := reflect.ValueOf(d).Elem().Interface()
			if t, ok := v.(time.Time); ok {
				v = t.UTC().Format("2006-01-02 15:04")
			}
			vals = append(vals, fmt.Sprint(v))
		}
		out = append(out, strings.Join(vals, " | "))
	}
	if err := rows.Err(); err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
	return out
}

// views reads every view, sorted, so that two states can be compared.
func views(tb testing.TB, conn driver.Conn) map[string][]string {
	tb.Helper()
	out := make(map[string][]string)
	for _, v := range []string{"playback_by_minute", "playback_by_hour", "playback_by_day"} {
		out[v] = rowsOf(tb, conn, "SELECT window_start, title_id, country, device_type, starts, completes, watch_ms, viewers, dropoff FROM "+v+
			" ORDER BY window_start, title_id, country, device_type")
	}
	for _, v := range []string{"quality_by_minute", "quality_by_hour", "quality_by_day"} {
		out[v] = rowsOf(tb, conn, "SELECT * FROM "+v+" ORDER BY window_start, cdn, isp, country")
	}
	for _, v := range []string{"funnel_by_minute", "funnel_by_hour", "funnel_by_day"} {
		out[v] = rowsOf(tb, conn, "SELECT * FROM "+v+" ORDER BY window_start, row, artwork_id")
	}
	out["late_events_by_minute"] = rowsOf(tb, conn, "SELECT * FROM late_events_by_minute ORDER BY window_start, src_topic, kind")
	out["titles_latest"] = rowsOf(tb, conn, "SELECT * FROM titles_latest ORDER BY title_id")
	return out
}

func write(tb testing.TB, w *chsink.Writer, b *aggregates.Batch) {
	tb.Helper()
	if err := w.Write(testContext(tb), b); err != nil {
		tb.Fatalf("Write: %v", err)
	}
}

func TestTheViewsShowTheSampleSummedOverSources(t *testing.T) {
	f := newFixture(t)
	w := f.startWriter(t, chsink.Config{})
	write(t, w, sample())

	got := views(t, f.reader)
	want := map[string][]string{
		// minute 0 of t1: partitions 0 and 1 add up (5+4 starts, 3+2 viewers).
		"playback_by_minute": {
			"2026-03-14 10:00 | t1 | DE | tv | 9 | 3 | 90000 | 5 | [1 1 2 0 0 0 0 0 0 0]",
			"2026-03-14 10:00 | t2 | DE | tv | 3 | 3 | 90000 | 3 | [0 0 0 0 0 0 0 0 0 0]",
			"2026-03-14 10:01 | t1 | DE | tv | 2 | 0 | 10000 | 2 | [1 0 0 0 0 0 0 0 0 0]",
			"2026-03-14 11:05 | t1 | DE | tv | 1 | 1 | 5000 | 2 | [0 0 0 0 0 0 0 0 0 0]",
		},
		// Profile 1 watched t1 in minutes 0 and 1: the hour counts it once
		// ({1..6} = 6 viewers, not 5+2).
		"playback_by_hour": {
			"2026-03-14 10:00 | t1 | DE | tv | 11 | 3 | 100000 | 6 | [2 1 2 0 0 0 0 0 0 0]",
			"2026-03-14 10:00 | t2 | DE | tv | 3 | 3 | 90000 | 3 | [0 0 0 0 0 0 0 0 0 0]",
			"2026-03-14 11:00 | t1 | DE | tv | 1 | 1 | 5000 | 2 | [0 0 0 0 0 0 0 0 0 0]",
		},
		// And the day counts profile 1 once across both hours: {1..7}.
		"playback_by_day": {
			"2026-03-14 00:00 | t1 | DE | tv | 12 | 4 | 105000 | 7 | [2 1 2 0 0 0 0 0 0 0]",
			"2026-03-14 00:00 | t2 | DE | tv | 3 | 3 | 90000 | 3 | [0 0 0 0 0 0 0 0 0 0]",
		},
		// 15 sessions, 4 rebuffers, 1 start failure, 2 errors, 50000/15 kbps.
		"quality_by_minute": {"2026-03-14 10:00 | edge1 | acme | DE | 15 | 4 | 5000 | 1 | 2 | 50000 | 15 | 0.26666666666666666 | 0.06666666666666667 | 0.13333333333333333 | 3333.3333333333335"},
		"quality_by_hour":   {"2026-03-14 10:00 | edge1 | acme | DE | 15 | 4 | 5000 | 1 | 2 | 50000 | 15 | 0.26666666666666666 | 0.06666666666666667 | 0.13333333333333333 | 3333.3333333333335"},
		"quality_by_day":    {"2026-03-14 00:00 | edge1 | acme | DE | 15 | 4 | 5000 | 1 | 2 | 50000 | 15 | 0.26666666666666666 | 0.06666666666666667 | 0.13333333333333333 | 3333.3333333333335"},
		// Impressions and selects from the browse topic, plays from playback.
		"funnel_by_minute":      {"2026-03-14 10:00 | trending | a1 | 100 | 10 | 4 | 0.1 | 0.4 | 0.04"},
		"funnel_by_hour":        {"2026-03-14 10:00 | trending | a1 | 100 | 10 | 4 | 0.1 | 0.4 | 0.04"},
		"funnel_by_day":         {"2026-03-14 00:00 | trending | a1 | 100 | 10 | 4 | 0.1 | 0.4 | 0.04"},
		"late_events_by_minute": {"2026-03-14 09:50 | atlas.playback.v1 | start | 1 | 598500"},
		"titles_latest":         {"t1 | One | [drama crime] | US | 1954-06-01 | 5400 | film | 1"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("views after one write (-want +got):\n%s", diff)
	}
}

func TestWritingTheSameBatchTwiceLeavesEveryViewUnchanged(t *testing.T) {
	f := newFixture(t)
	w := f.startWriter(t, chsink.Config{})
	write(t, w, sample())
	before := views(t, f.reader)
	// A replay after a crash: the same rows, in a separate insert.
	write(t, w, sample())
	if diff := cmp.Diff(before, views(t, f.reader)); diff != "" {
		t.Fatalf("views changed when the same batch was written again (-once +twice):\n%s", diff)
	}
	var raw uint64
	if err := f.admin.QueryRow(testContext(t), "SELECT count() FROM "+f.db+".playback_minute").Scan(&raw); err != nil {
		t.Fatal(err)
	}
	t.Logf("playback_minute holds %d raw rows for %d distinct keys; the views count each key once", raw, len(sample().Playback))
}

func TestAProvisionalRowWrittenAfterTheCompleteOneDoesNotChangeTheTotals(t *testing.T) {
	f := newFixture(t)
	w := f.startWriter(t, chsink.Config{})
	write(t, w, sample())
	before := views(t, f.reader)

	// A zombie, or a replay that rebuilt the window from a suffix, writes
	// a lower version of keys that already hold a complete row.
	stale := sample()
	for i := range stale.Playback {
		r := &stale.Playback[i]
		r.Version--
		r.Starts, r.Completes, r.WatchMs, r.ViewerHashes = 1, 0, 1, []uint64{99}
	}
	for i := range stale.Quality {
		stale.Quality[i].Version--
		stale.Quality[i].Sessions = 1
	}
	for i := range stale.Funnel {
		stale.Funnel[i].Version--
		stale.Funnel[i].Impressions, stale.Funnel[i].Plays = 1, 1
	}
	stale.Titles[0].Version = 0
	stale.Titles[0].Name = "old name"
	write(t, w, stale)
	if diff := cmp.Diff(before, views(t, f.reader)); diff != "" {
		t.Fatalf("views changed when lower versions were written after complete rows (-before +after):\n%s", diff)
	}

	// A higher version does replace its key.
	newer := &aggregates.Batch{Playback: []aggregates.PlaybackRow{
		playback(1, "t1", src(playbackTopic, 0, 121), 3, 0, 11_000, []uint64{1, 6}, 1),
	}}
	write(t, w, newer)
	got := rowsOf(t, f.reader, "SELECT starts, watch_ms FROM playback_by_minute WHERE window_start = ? AND title_id = 't1'",
		time.UnixMilli(minute(1)).UTC())
	if diff := cmp.Diff([]string{"3 | 11000"}, got); diff != "" {
		t.Fatalf("after a higher version of minute 1 (-want +got):\n%s", diff)
	}
}

func TestHourlyAndDailyRollUpsEqualTheSumOfTheirMinutes(t *testing.T) {
	f := newFixture(t)
	w := f.startWriter(t, chsink.Config{})
	// Two days, every 13th minute, over three partitions. Partition p holds
	// the profiles v ≡ p (mod 3); profile v watches in the k-th of those
	// minutes when v ≡ k (mod 7), and in all of them when v ≡ 0 (mod 5), so
	// viewers recur across minutes and hours.
	var b aggregates.Batch
	for m := 0; m < 2*24*60; m += 13 {
		k := m / 13
		for p := int32(0); p < 3; p++ {
			var hashes []uint64
			for v := uint64(p); v < 40; v += 3 {
				if int(v)%7 == k%7 || v%5 == 0 {
					hashes = append(hashes, v)
				}
			}
			b.Playback = append(b.Playback, playback(m, "t1", src(playbackTopic, p, uint64(m+1)),
				uint64(m%5+1), uint64(m%2), uint64(1000*(m%11)), hashes, uint64(m%3), uint64(p)))
			b.Quality = append(b.Quality, aggregates.QualityRow{WindowStart: minute(m), CDN: "edge1", ISP: "acme", Country: "DE",
				Source: src(playbackTopic, p, uint64(m+1)), Sessions: uint64(m%9 + 1), Rebuffers: uint64(m % 4), BitrateSum: 1000, BitrateSamples: 1})
			b.Funnel = append(b.Funnel, aggregates.FunnelRow{WindowStart: minute(m), Row: "r", ArtworkID: "a",
				Source: src(browseTopic, p, uint64(m+1)), Impressions: uint64(m%13 + 1), Selects: uint64(m % 3)})
		}
	}
	write(t, w, &b)
	write(t, w, &b) // and once more, as a replay

	for _, unit := range []string{"hour", "day"} {
		start := map[string]string{"hour": "toStartOfHour(window_start)", "day": "toStartOfDay(window_start)"}[unit]
		// Sums over the minute view, and distinct viewers over the raw
		// hashes of the period, computed independently of the roll-up.
		want := rowsOf(t, f.reader, `
			SELECT s, starts, completes, watch_ms, viewers, dropoff FROM (
				SELECT `+start+` AS s, sum(starts) AS starts, sum(completes) AS completes, sum(watch_ms) AS watch_ms,
				       sumForEach(dropoff) AS dropoff
				FROM playback_by_minute GROUP BY s
			) ALL INNER JOIN (
				SELECT s, length(groupUniqArray(h)) AS viewers FROM (
					SELECT `+start+` AS s, arrayJoin(viewer_hashes) AS h FROM playback_by_minute
				) GROUP BY s
			) USING s ORDER BY s`)
		got := rowsOf(t, f.reader, "SELECT window_start, starts, completes, watch_ms, viewers, dropoff FROM playback_by_"+unit+" ORDER BY window_start")
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("playback_by_%s differs from its minutes (-minutes +roll-up):\n%s", unit, diff)
		}
		if len(got) == 0 {
			t.Fatalf("playback_by_%s is empty", unit)
		}
		t.Logf("playback_by_%s: %d rows, first %s", unit, len(got), got[0])

		for _, v := range []struct{ view, cols string }{
			{"quality", "sum(sessions), sum(rebuffers), sum(bitrate_sum), sum(bitrate_samples)"},
			{"funnel", "sum(impressions), sum(selects), sum(plays)"},
		} {
			want := rowsOf(t, f.reader, "SELECT "+start+" AS s, "+v.cols+" FROM "+v.view+"_by_minute GROUP BY s ORDER BY s")
			got := rowsOf(t, f.reader, "SELECT window_start, "+v.cols+" FROM "+v.view+"_by_"+unit+" GROUP BY window_start ORDER BY window_start")
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("%s_by_%s differs from its minutes (-minutes +roll-up):\n%s", v.view, unit, diff)
			}
		}
	}

	// By hand: two days from 10:00 touch three dates, and in each of them
	// k takes every value mod 7, so every profile below 40 watched.
	days := rowsOf(t, f.reader, "SELECT window_start, viewers FROM playback_by_day ORDER BY window_start")
	if diff := cmp.Diff([]string{"2026-03-14 00:00 | 40", "2026-03-15 00:00 | 40", "2026-03-16 00:00 | 40"}, days); diff != "" {
		t.Fatalf("distinct viewers per day (-want +got):\n%s", diff)
	}
}

func TestALateEventWrittenTwiceIsOneRow(t *testing.T) {
	f := newFixture(t)
	w := f.startWriter(t, chsink.Config{})
	late := sample().Late[0]
	write(t, w, &aggregates.Batch{Late: []aggregates.LateEvent{late}})
	// A replay writes it again; a duplicate send arrives at a later offset.
	write(t, w, &aggregates.Batch{Late: []aggregates.LateEvent{late}})
	dup := late
	dup.Offset = 150
	write(t, w, &aggregates.Batch{Late: []aggregates.LateEvent{dup}})

	got := rowsOf(t, f.reader, "SELECT event_id, src_offset, version FROM late_events FINAL")
	if diff := cmp.Diff([]string{"e1 | 150 | 151"}, got); diff != "" {
		t.Fatalf("late_events FINAL (-want +got):\n%s", diff)
	}
	got = rowsOf(t, f.reader, "SELECT late_events FROM late_events_by_minute")
	if diff := cmp.Diff([]string{"1"}, got); diff != "" {
		t.Fatalf("late_events_by_minute (-want +got):\n%s", diff)
	}
}

func TestConcurrentWritesAreGroupedIntoFewInserts(t *testing.T) {
	f := newFixture(t)
	w := f.startWriter(t, chsink.Config{FlushInterval: 300 * time.Millisecond})
	const writers = 24
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	start := make(chan struct{})
	for p := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			b := &aggregates.Batch{Playback: []aggregates.PlaybackRow{
				playback(0, "t1", src(playbackTopic, int32(p), 10), 1, 0, 1000, []uint64{uint64(p)}),
			}}
			errs <- w.Write(context.Background(), b)
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	st := w.Stats()
	t.Logf("%d concurrent writes: %+v", writers, st)
	// The first write may find the flusher idle and go alone; the others
	// wait for the next flush, FlushInterval later.
	if st.Writes != writers || st.Flushes > 3 || st.Inserts != st.Flushes || st.Rows != writers {
		t.Fatalf("%d concurrent writes of one row each gave %+v, want at most 3 flushes of one insert each", writers, st)
	}
	got := rowsOf(t, f.reader, "SELECT starts, viewers FROM playback_by_minute")
	if diff := cmp.Diff([]string{fmt.Sprintf("%d | %d", writers, writers)}, got); diff != "" {
		t.Fatalf("playback_by_minute (-want +got):\n%s", diff)
	}
}

func TestEveryWriteOfAFailedFlushGetsTheError(t *testing.T) {
	f := newFixture(t)
	// The read-only user cannot insert: every flush fails.
	w, err := chsink.New(f.reader, chsink.Config{FlushInterval: 100 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = w.Write(context.Background(), sample())
		}()
	}
	wg.Wait()
	for i, err := range errs {
		var ex *clickhouse.Exception
		if !errors.As(err, &ex) || ex.Code != 164 {
			t.Fatalf("write %d: error = %v, want the server's READONLY exception (164)", i, err)
		}
	}
	t.Logf("each write got: %v", errs[0])
	st := w.Stats()
	if st.FailedFlushes == 0 || st.FailedFlushes != st.Flushes || st.Rows != 0 {
		t.Fatalf("stats after refused inserts: %+v", st)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after failed flushes: %v (nothing was pending at the end)", err)
	}
}

func TestCloseFlushesWhatWasAcceptedAndRefusesMore(t *testing.T) {
	f := newFixture(t)
	w, err := chsink.New(f.writer, chsink.Config{FlushInterval: time.Hour, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	// The first write goes out at once (the flusher was idle); the second
	// waits for a FlushInterval of an hour, until Close flushes it.
	write(t, w, sample())
	second := make(chan error, 1)
	go func() {
		second <- w.Write(context.Background(), &aggregates.Batch{Playback: []aggregates.PlaybackRow{
			playback(2, "t3", src(playbackTopic, 0, 1), 7, 0, 0, nil),
		}})
	}()
	for w.Stats().Writes < 2 {
		time.Sleep(5 * time.Millisecond)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-second; err != nil {
		t.Fatalf("the write pending at Close: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := w.Write(context.Background(), sample()); !errors.Is(err, chsink.ErrClosed) {
		t.Fatalf("Write after Close: %v, want ErrClosed", err)
	}
	got := rowsOf(t, f.reader, "SELECT starts FROM playback_by_minute WHERE title_id = 't3'")
	if diff := cmp.Diff([]string{"7"}, got); diff != "" {
		t.Fatalf("the row written before Close (-want +got):\n%s", diff)
	}
}
