package chsink

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/atlas-stream/atlas/consumers/aggregates"
)

// fakeConn records the INSERTs a Writer sends, column by column. gate, when
// set, holds every Send until it is closed; fail makes Send return an error.
type fakeConn struct {
	driver.Conn // any other method panics: the Writer must not call it

	mu      sync.Mutex
	inserts []fakeInsert
	gate    chan struct{}
	fail    error
	sending atomic.Int32 // Sends waiting at the gate
}

type fakeInsert struct {
	query   string
	columns [][]any // one slice of values per column
}

func (c *fakeConn) PrepareBatch(ctx context.Context, query string, _ ...driver.PrepareBatchOption) (driver.Batch, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cols := strings.Count(query[strings.Index(query, "("):], ",") + 1
	return &fakeBatch{conn: c, ins: fakeInsert{query: query, columns: make([][]any, cols)}}, nil
}

// rows returns the inserted rows of table, each as its values in column
// order.
func (c *fakeConn) rows(table string) [][]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out [][]any
	for _, ins := range c.inserts {
		if !strings.HasPrefix(ins.query, "INSERT INTO "+table+" (") {
			continue
		}
		for i := range ins.columns[0] {
			var row []any
			for _, col := range ins.columns {
				row = append(row, col[i])
			}
			out = append(out, row)
		}
	}
	return out
}

type fakeBatch struct {
	driver.Batch
	conn *fakeConn
	ins  fakeInsert
	sent bool
}

func (b *fakeBatch) Column(i int) driver.BatchColumn { return fakeColumn{b, i} }
func (b *fakeBatch) IsSent() bool                    { return b.sent }
func (b *fakeBatch) Abort() error                    { b.sent = true; return nil }

func (b *fakeBatch) Send() error {
	b.sent = true
	if b.conn.gate != nil {
		b.conn.sending.Add(1)
		<-b.conn.gate
		b.conn.sending.Add(-1)
	}
	if b.conn.fail != nil {
		return b.conn.fail
	}
	n := len(b.ins.columns[0])
	for _, col := range b.ins.columns {
		if len(col) != n {
			return errors.New("BUG: columns of different lengths in one insert")
		}
	}
	b.conn.mu.Lock()
	b.conn.inserts = append(b.conn.inserts, b.ins)
	b.conn.mu.Unlock()
	return nil
}

type fakeColumn struct {
	b   *fakeBatch
	idx int
}

// Append takes a slice of values, one per row; the values are copied, as
// the driver copies them into its buffers.
func (c fakeColumn) Append(v any) error {
	s := reflect.ValueOf(v)
	for i := range s.Len() {
		c.b.ins.columns[c.idx] = append(c.b.ins.columns[c.idx], clone(s.Index(i).Interface()))
	}
	return nil
}

func (c fakeColumn) AppendRow(v any) error {
	c.b.ins.columns[c.idx] = append(c.b.ins.columns[c.idx], clone(v))
	return nil
}

func clone(v any) any {
	switch v := v.(type) {
	case []uint64:
		return append([]uint64(nil), v...)
	case []string:
		return append([]string(nil), v...)
	}
	return v
}

func row(m int64, title string, partition int32, version uint64, hashes ...uint64) aggregates.PlaybackRow {
	return aggregates.PlaybackRow{
		WindowStart: m * 60_000, TitleID: title, Country: "DE", DeviceType: "tv",
		Source: aggregates.Source{Topic: "atlas.playback.v1", Partition: partition, Version: version},
		Starts: 1, Viewers: uint64(len(hashes)), ViewerHashes: hashes,
		Dropoff: [10]uint64{1, 2, 3},
	}
}

// run starts w.Run and stops it when the test ends.
func run(t *testing.T, w *Writer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func TestConfigValidate(t *testing.T) {
	f := func(cfg Config, wantErr string) {
		t.Helper()
		err := cfg.Validate()
		switch {
		case wantErr == "" && err != nil:
			t.Fatalf("Validate(%+v): unexpected error: %v", cfg, err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Fatalf("Validate(%+v) = %v, want an error containing %q", cfg, err, wantErr)
		}
	}
	f(Config{}, "")
	f(Config{FlushInterval: time.Second, MaxRows: 10, MaxPendingRows: 10}, "")
	f(Config{FlushInterval: -1}, "FlushInterval")
	f(Config{MaxRows: -1}, "MaxRows")
	f(Config{MaxPendingRows: -1}, "MaxPendingRows")
	f(Config{MaxRows: 100, MaxPendingRows: 99}, "less than MaxRows 100")
	f(Config{MaxPendingRows: 1000}, "less than MaxRows 50000")
	f(Config{FlushTimeout: -time.Second}, "FlushTimeout")

	var c Config
	if c.flushInterval() != 200*time.Millisecond || c.maxRows() != 50_000 || c.maxPendingRows() != 200_000 || c.flushTimeout() != time.Minute {
		t.Fatalf("the zero Config does not apply the documented defaults")
	}
}

func TestCheckRefusesWindowsThatDateTimeCannotHold(t *testing.T) {
	f := func(ms int64, wantErr string) {
		t.Helper()
		err := check(&aggregates.Batch{Quality: []aggregates.QualityRow{{WindowStart: ms, CDN: "c"}}})
		switch {
		case wantErr == "" && err != nil:
			t.Fatalf("window %d: unexpected error %v", ms, err)
		case wantErr != "" && (!errors.Is(err, ErrInvalidRow) || !strings.Contains(err.Error(), wantErr)):
			t.Fatalf("window %d: error %v, want ErrInvalidRow containing %q", ms, err, wantErr)
		}
	}
	f(0, "")
	f(1_773_482_400_000, "")
	f((1<<32-1)*1000, "")
	f(-60_000, "outside 1970..2106")
	f((1<<32)*1000, "outside 1970..2106")
	f(1_773_482_400_500, "not a whole second")
}

func TestWriteInsertsEveryTableWithItsColumns(t *testing.T) {
	conn := &fakeConn{}
	w, err := New(conn, Config{})
	if err != nil {
		t.Fatal(err)
	}
	run(t, w)
	b := &aggregates.Batch{
		Playback: []aggregates.PlaybackRow{row(1, "t1", 2, 7, 11, 12)},
		Quality: []aggregates.QualityRow{{WindowStart: 60_000, CDN: "c", ISP: "i", Country: "DE",
			Source: aggregates.Source{Topic: "p", Partition: 1, Version: 3}, Sessions: 4, Rebuffers: 5, RebufferMs: 6,
			StartFailures: 7, Errors: 8, BitrateSum: 9, BitrateSamples: 10}},
		Funnel: []aggregates.FunnelRow{{WindowStart: 120_000, Row: "r", ArtworkID: "a",
			Source: aggregates.Source{Topic: "b", Partition: 0, Version: 2}, Impressions: 3, Selects: 2, Plays: 1}},
		Late: []aggregates.LateEvent{{EventID: "e", Topic: "p", Partition: 4, Offset: 41, WindowStart: 60_000,
			EventTime: 61_234, Watermark: 200_000, ProfileID: "pr", Kind: "start", TitleID: "t"}},
		Titles: []aggregates.TitleRow{{TitleID: "t", Name: "T", Genres: []string{"g1", "g2"}, Country: "US",
			ReleaseDate: "1960-01-31", DurationSec: 60, Type: "film", Version: 5}},
	}
	if err := w.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	for table, want := range map[string][][]any{
		"playback_minute": {{int64(60), "t1", "DE", "tv", "atlas.playback.v1", int32(2), uint64(7),
			uint64(1), uint64(0), uint64(0), uint64(2), []uint64{11, 12}, []uint64{1, 2, 3, 0, 0, 0, 0, 0, 0, 0}}},
		"quality_minute": {{int64(60), "c", "i", "DE", "p", int32(1), uint64(3),
			uint64(4), uint64(5), uint64(6), uint64(7), uint64(8), uint64(9), uint64(10)}},
		"funnel_minute": {{int64(120), "r", "a", "b", int32(0), uint64(2), uint64(3), uint64(2), uint64(1)}},
		"late_events": {{int64(60), "e", "p", int32(4), int64(41), uint64(42), int64(61_234), int64(200_000),
			"pr", "start", "t"}},
		"titles": {{"t", "T", []string{"g1", "g2"}, "US", "1960-01-31", int64(60), "film", uint64(5)}},
	} {
		if diff := cmp.Diff(want, conn.rows(table)); diff != "" {
			t.Errorf("rows inserted into %s (-want +got):\n%s", table, diff)
		}
	}
	if st := w.Stats(); st != (Stats{Flushes: 1, Inserts: 5, Rows: 5, Writes: 1}) {
		t.Errorf("Stats = %+v", st)
	}
}

func TestWriteDoesNotRetainTheBatch(t *testing.T) {
	conn := &fakeConn{gate: make(chan struct{})}
	w, err := New(conn, Config{})
	if err != nil {
		t.Fatal(err)
	}
	run(t, w)
	b := &aggregates.Batch{Playback: []aggregates.PlaybackRow{row(1, "t1", 0, 1, 5, 6)}}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := w.Write(ctx, b); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Write with its insert held back: %v, want DeadlineExceeded", err)
	}
	// The caller reuses its buffers once Write has returned.
	b.Playback[0].ViewerHashes[0] = 99
	b.Playback[0].TitleID = "changed"
	close(conn.gate)
	waitFor(t, func() bool { return len(conn.rows("playback_minute")) == 1 })
	got := conn.rows("playback_minute")[0]
	if got[1] != "t1" || !reflect.DeepEqual(got[11], []uint64{5, 6}) {
		t.Fatalf("inserted %v, want the rows as they were when Write was called", got)
	}
}

func TestAFailedFlushFailsEveryWriteInItWithItsError(t *testing.T) {
	boom := errors.New("boom")
	conn := &fakeConn{fail: boom}
	reg := prometheus.NewRegistry()
	w, err := New(conn, Config{FlushInterval: 50 * time.Millisecond, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	run(t, w)
	errs := writeConcurrently(w, 8)
	for i, err := range errs {
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), "cannot insert") {
			t.Fatalf("write %d: %v, want the flush's error", i, err)
		}
	}
	st := w.Stats()
	if st.FailedFlushes != st.Flushes || st.Flushes == 0 || st.Rows != 0 {
		t.Fatalf("Stats = %+v", st)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := make(map[string]float64)
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "," + l.GetName() + "=" + l.GetValue()
			}
			got[name] = m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	want := map[string]float64{
		"atlas_chsink_flushes_total,result=error": float64(st.FailedFlushes),
		"atlas_chsink_flushes_total,result=ok":    0,
		"atlas_chsink_flush_seconds":              float64(st.Flushes),
		"atlas_chsink_pending_rows":               0,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("exported metrics (-want +got):\n%s", diff)
	}
}

func TestConcurrentWritesShareFlushes(t *testing.T) {
	conn := &fakeConn{}
	w, err := New(conn, Config{FlushInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	run(t, w)
	for i, err := range writeConcurrently(w, 50) {
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	st := w.Stats()
	if st.Flushes > 3 || st.Rows != 50 || st.Writes != 50 {
		t.Fatalf("50 concurrent writes: %+v, want all rows in at most 3 flushes", st)
	}
}

func TestMaxRowsFlushesWithoutWaitingForTheInterval(t *testing.T) {
	conn := &fakeConn{}
	w, err := New(conn, Config{FlushInterval: time.Hour, MaxRows: 2})
	if err != nil {
		t.Fatal(err)
	}
	run(t, w)
	// The first write finds the flusher idle; the second would wait an hour
	// if it were not MaxRows rows.
	one := &aggregates.Batch{Playback: []aggregates.PlaybackRow{row(1, "t1", 0, 1)}}
	two := &aggregates.Batch{Playback: []aggregates.PlaybackRow{row(1, "t1", 0, 1), row(1, "t2", 0, 1)}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, b := range []*aggregates.Batch{one, two} {
		if err := w.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
}

func TestASlowServerBlocksWritersInsteadOfQueueing(t *testing.T) {
	conn := &fakeConn{gate: make(chan struct{})}
	w, err := New(conn, Config{FlushInterval: time.Millisecond, MaxRows: 2, MaxPendingRows: 4})
	if err != nil {
		t.Fatal(err)
	}
	run(t, w)
	three := &aggregates.Batch{Playback: []aggregates.PlaybackRow{row(1, "a", 0, 1), row(1, "b", 0, 1), row(1, "c", 0, 1)}}
	first := make(chan error, 1)
	go func() { first <- w.Write(context.Background(), three) }()
	waitFor(t, func() bool { return conn.sending.Load() == 1 })

	// 3 rows are in the flush held at the server; 3 more would pass 4.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := w.Write(ctx, three); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Write past MaxPendingRows: %v, want it to block until its context ends", err)
	}
	w.mu.Lock()
	queued, pending := w.queued, w.pending.rows
	w.mu.Unlock()
	if queued != 3 || pending != 0 {
		t.Fatalf("after the refused write: queued %d, pending %d; want 3 and 0", queued, pending)
	}
	// One more row fits.
	small := make(chan error, 1)
	go func() {
		small <- w.Write(context.Background(), &aggregates.Batch{Playback: []aggregates.PlaybackRow{row(1, "d", 0, 1)}})
	}()
	// Once the server answers, a blocked writer gets in.
	blocked := make(chan error, 1)
	go func() { blocked <- w.Write(context.Background(), three) }()
	close(conn.gate)
	for _, ch := range []chan error{first, small, blocked} {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	if n := len(conn.rows("playback_minute")); n != 7 {
		t.Fatalf("%d rows inserted, want 7", n)
	}
}

func TestRunFlushesWhatWasAcceptedWhenItsContextEnds(t *testing.T) {
	conn := &fakeConn{}
	w, err := New(conn, Config{FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	b := &aggregates.Batch{Playback: []aggregates.PlaybackRow{row(1, "t1", 0, 1)}}
	if err := w.Write(context.Background(), b); err != nil { // idle flusher: at once
		t.Fatal(err)
	}
	second := make(chan error, 1)
	go func() { second <- w.Write(context.Background(), b) }() // waits for the hour
	waitFor(t, func() bool { return w.Stats().Writes == 2 })
	cancel()
	if err := <-second; err != nil {
		t.Fatalf("the write pending when Run's context ended: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := w.Write(context.Background(), b); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Run returned: %v, want ErrClosed", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close after Run returned: %v", err)
	}
}

func TestRowsDueWhenRunsContextEndsAreFlushedWithAFreshContext(t *testing.T) {
	conn := &fakeConn{gate: make(chan struct{})}
	w, err := New(conn, Config{FlushInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	b := &aggregates.Batch{Playback: []aggregates.PlaybackRow{row(1, "t1", 0, 1)}}
	first, second := make(chan error, 1), make(chan error, 1)
	go func() { first <- w.Write(context.Background(), b) }()
	waitFor(t, func() bool { return conn.sending.Load() == 1 })
	go func() { second <- w.Write(context.Background(), b) }()
	waitFor(t, func() bool { return w.Stats().Writes == 2 })
	// The second write is due by the time the first flush returns, and
	// Run's context has ended by then.
	time.Sleep(5 * time.Millisecond)
	cancel()
	close(conn.gate)
	for i, ch := range []chan error{first, second} {
		if err := <-ch; err != nil {
			t.Fatalf("write %d: %v", i+1, err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestCloseWithoutRunFailsThePendingWrites(t *testing.T) {
	w, err := New(&fakeConn{}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	pending := make(chan error, 1)
	go func() {
		pending <- w.Write(context.Background(), &aggregates.Batch{Playback: []aggregates.PlaybackRow{row(1, "t1", 0, 1)}})
	}()
	waitFor(t, func() bool { return w.Stats().Writes == 1 })
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-pending; !errors.Is(err, ErrClosed) {
		t.Fatalf("pending write: %v, want ErrClosed", err)
	}
	if err := w.Run(context.Background()); err != nil {
		t.Fatalf("Run after Close: %v, want nil at once", err)
	}
}

func TestAnInvalidBatchIsRefusedAloneAndAnEmptyOneAtOnce(t *testing.T) {
	conn := &fakeConn{}
	w, err := New(conn, Config{})
	if err != nil {
		t.Fatal(err)
	}
	// Run is not running: an empty batch must not wait for it.
	if err := w.Write(context.Background(), &aggregates.Batch{}); err != nil {
		t.Fatal(err)
	}
	bad := &aggregates.Batch{Playback: []aggregates.PlaybackRow{row(1, "t1", 0, 1)}}
	bad.Playback[0].WindowStart++
	if err := w.Write(context.Background(), bad); !errors.Is(err, ErrInvalidRow) {
		t.Fatalf("Write of a row at a fractional second: %v, want ErrInvalidRow", err)
	}
	if st := w.Stats(); st.Writes != 0 {
		t.Fatalf("Stats = %+v, want nothing accepted", st)
	}
}

func writeConcurrently(w *Writer, n int) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			errs[i] = w.Write(ctx, &aggregates.Batch{Playback: []aggregates.PlaybackRow{row(1, "t1", int32(i), 1, uint64(i))}})
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
