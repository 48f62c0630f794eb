package chsink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/atlas-stream/atlas/consumers/aggregates"
)

// Defaults applied by [Config] to fields left at their zero value.
const (
	DefaultFlushInterval = 200 * time.Millisecond
	DefaultMaxRows       = 50_000
	DefaultFlushTimeout  = time.Minute
)

var (
	// ErrClosed is returned by Write once the Writer is closing: after
	// Close was called or Run's context ended. Rows accepted before that
	// are still flushed.
	ErrClosed = errors.New("chsink: writer is closed")

	// ErrInvalidRow is returned (wrapped) by Write, before anything is
	// queued, for a row ClickHouse cannot store as it is: a window start
	// that is negative, not a whole second, or past 2106 (DateTime is
	// 32-bit seconds). It is a bug of the producer of the row; writing the
	// same batch again fails again.
	ErrInvalidRow = errors.New("invalid row")
)

// Config tunes a [Writer]. The zero value is valid.
type Config struct {
	// FlushInterval is the least time between the starts of two flushes
	// while fewer than MaxRows rows are pending: the longest a Write waits
	// for company before its rows are inserted.
	//
	// Default: 200ms.
	FlushInterval time.Duration

	// MaxRows starts a flush without waiting for FlushInterval once this
	// many rows are pending.
	//
	// Default: 50,000.
	MaxRows int

	// MaxPendingRows bounds the rows accepted but not yet inserted
	// (pending plus the flush in progress). A Write that would pass it
	// blocks until a flush ends, unless nothing is pending: a batch larger
	// than MaxPendingRows is accepted alone.
	//
	// Default: 4 × MaxRows.
	MaxPendingRows int

	// FlushTimeout bounds one flush, all of its INSERTs together.
	//
	// Default: 1m.
	FlushTimeout time.Duration

	// Registerer receives the Writer's metrics (atlas_chsink_*).
	//
	// Default: no metrics are exported.
	Registerer prometheus.Registerer

	// Logger receives one line per failed flush.
	//
	// Default: slog.Default().
	Logger *slog.Logger
}

func (c *Config) flushInterval() time.Duration {
	if c.FlushInterval == 0 {
		return DefaultFlushInterval
	}
	return c.FlushInterval
}

func (c *Config) maxRows() int {
	if c.MaxRows == 0 {
		return DefaultMaxRows
	}
	return c.MaxRows
}

func (c *Config) maxPendingRows() int {
	if c.MaxPendingRows == 0 {
		return 4 * c.maxRows()
	}
	return c.MaxPendingRows
}

func (c *Config) flushTimeout() time.Duration {
	if c.FlushTimeout == 0 {
		return DefaultFlushTimeout
	}
	return c.FlushTimeout
}

func (c *Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.Default()
	}
	return c.Logger
}

// Validate reports the first field that cannot work, after defaults are
// applied.
func (c *Config) Validate() error {
	switch {
	case c.FlushInterval < 0:
		return fmt.Errorf("cannot use FlushInterval %s: it must not be negative", c.FlushInterval)
	case c.MaxRows < 0:
		return fmt.Errorf("cannot use MaxRows %d: it must not be negative", c.MaxRows)
	case c.MaxPendingRows < 0:
		return fmt.Errorf("cannot use MaxPendingRows %d: it must not be negative", c.MaxPendingRows)
	case c.maxPendingRows() < c.maxRows():
		return fmt.Errorf("cannot use MaxPendingRows %d: it is less than MaxRows %d", c.maxPendingRows(), c.maxRows())
	case c.FlushTimeout < 0:
		return fmt.Errorf("cannot use FlushTimeout %s: it must not be negative", c.FlushTimeout)
	}
	return nil
}

// Stats counts what a Writer did since New. Fields only grow.
type Stats struct {
	// Flushes counts flushes that ended, FailedFlushes those of them that
	// returned an error to their writers.
	Flushes, FailedFlushes uint64
	// Inserts counts INSERT statements sent (at most one per table per
	// flush); Rows the rows they stored.
	Inserts, Rows uint64
	// Writes counts Write calls whose rows were accepted.
	Writes uint64
}

// Writer is the aggregates role's ClickHouse sink ([aggregates.Sink]).
// Write may be called from any number of goroutines; Run must run for
// writes to complete. See the package documentation for how writes are
// grouped.
type Writer struct {
	conn    driver.Conn
	cfg     Config
	log     *slog.Logger
	metrics *metrics

	mu      sync.Mutex
	pending *block        // accepted, not yet taken by a flush
	spare   *block        // the previous flush's buffers, for reuse
	queued  int           // rows of pending and of the flush in progress
	freed   chan struct{} // closed (and replaced) whenever queued shrinks
	closed  bool          // no more writes are accepted
	running bool          // Run was called
	runErr  error         // what Run returned

	wake      chan struct{} // a Write added rows (capacity 1)
	stop      chan struct{} // closed by Close
	stopped   chan struct{} // closed when Run returns
	closeOnce sync.Once

	flushes, failedFlushes, inserts, rows, writes atomic.Uint64
}

var _ aggregates.Sink = (*Writer)(nil)

// New returns a Writer that inserts through conn, whose current database
// must be Atlas's migrated database (migration 0002 or later); the
// writer user (INSERT, no DDL) is enough. conn stays the caller's to close,
// after the Writer has stopped. Nothing is sent until Run.
func New(conn driver.Conn, cfg Config) (*Writer, error) {
	if conn == nil {
		return nil, errors.New("cannot create the ClickHouse sink: conn is nil")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cannot create the ClickHouse sink: %w", err)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("cannot create the ClickHouse sink: %w", err)
	}
	return &Writer{
		conn:    conn,
		cfg:     cfg,
		log:     cfg.logger(),
		metrics: m,
		pending: &block{},
		spare:   &block{},
		freed:   make(chan struct{}),
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
	}, nil
}

// Write makes b durable: it copies b's rows into the pending insert and
// blocks until the flush that holds them has inserted them (nil) or failed
// (that flush's error, the same for every Write in it). It does not retain
// b after it returns.
//
// It returns early with ctx.Err() when ctx ends, and with ErrClosed once the
// Writer is closing. Rows already accepted when ctx ends may still be
// inserted afterwards; that is harmless, since writing a row again changes
// nothing (see the package documentation). A batch with an invalid row is
// refused whole, with an error wrapping ErrInvalidRow. An empty batch
// returns nil at once.
//
// Write blocks before accepting the rows while MaxPendingRows rows are
// already waiting. It is safe for concurrent use.
func (w *Writer) Write(ctx context.Context, b *aggregates.Batch) error {
	n := b.Len()
	if n == 0 {
		return nil
	}
	if err := check(b); err != nil {
		return err
	}
	done := make(chan error, 1)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			return ErrClosed
		}
		if w.queued == 0 || w.queued+n <= w.cfg.maxPendingRows() {
			w.queued += n
			w.pending.add(b)
			w.pending.waiters = append(w.pending.waiters, done)
			w.metrics.pending.Set(float64(w.queued))
			w.mu.Unlock()
			break
		}
		freed := w.freed
		w.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return ctx.Err()
		case <-w.stop:
			return ErrClosed
		}
	}
	w.writes.Add(1)
	select {
	case w.wake <- struct{}{}:
	default:
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run flushes pending rows until ctx ends or Close is called, then stops
// accepting writes, flushes what was accepted (with a fresh FlushTimeout,
// even when ctx has ended) and returns. It returns nil, or the error of
// that last flush, which its writers received too. Flushes run in Run's
// goroutine, one at a time; Run starts no other goroutine. Call it once.
func (w *Writer) Run(ctx context.Context) error {
	w.mu.Lock()
	if w.running {
		w.mu.Unlock()
		return errors.New("chsink: Run called twice")
	}
	w.running = true
	closed := w.closed
	w.mu.Unlock()
	defer close(w.stopped)
	if closed {
		// Close came first and has already failed the pending writes.
		return nil
	}

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var last time.Time // start of the previous flush
	for {
		// Stopping wins over a due flush: the final flush must not run
		// with an ended context.
		select {
		case <-ctx.Done():
			return w.shutdown(context.WithoutCancel(ctx))
		case <-w.stop:
			return w.shutdown(ctx)
		default:
		}
		w.mu.Lock()
		pending := w.pending.rows
		w.mu.Unlock()
		var due <-chan time.Time
		if pending > 0 {
			next := last.Add(w.cfg.flushInterval())
			if now := time.Now(); pending >= w.cfg.maxRows() || !now.Before(next) {
				last = now
				w.flush(ctx)
				continue
			}
			timer.Reset(time.Until(next))
			due = timer.C
		}
		select {
		case <-w.wake:
		case <-due:
		case <-ctx.Done():
			return w.shutdown(context.WithoutCancel(ctx))
		case <-w.stop:
			return w.shutdown(ctx)
		}
		timer.Stop()
	}
}

// shutdown refuses further writes and flushes what was accepted.
func (w *Writer) shutdown(ctx context.Context) error {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	var err error
	for {
		w.mu.Lock()
		pending := w.pending.rows
		w.mu.Unlock()
		if pending == 0 {
			break
		}
		err = w.flush(ctx)
	}
	w.mu.Lock()
	w.runErr = err
	w.mu.Unlock()
	return err
}

// Close stops the Writer: Write returns ErrClosed from now on, and, when
// Run is running, Close waits until it has flushed the rows accepted before
// and returned, and returns what Run returned. When Run was never called,
// the writes waiting for it fail with ErrClosed. Close is idempotent and
// does not close the connection.
func (w *Writer) Close() error {
	w.closeOnce.Do(func() { close(w.stop) })
	w.mu.Lock()
	running := w.running
	if !running {
		w.closed = true
		blk := w.pending
		w.pending = &block{}
		w.queued -= blk.rows
		for _, ch := range blk.waiters {
			ch <- ErrClosed
		}
	}
	w.mu.Unlock()
	if !running {
		return nil
	}
	<-w.stopped
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.runErr
}

// Stats returns the Writer's counters. It is safe for concurrent use.
func (w *Writer) Stats() Stats {
	return Stats{
		Flushes:       w.flushes.Load(),
		FailedFlushes: w.failedFlushes.Load(),
		Inserts:       w.inserts.Load(),
		Rows:          w.rows.Load(),
		Writes:        w.writes.Load(),
	}
}

// flush inserts everything pending and tells each of its writers the
// outcome.
func (w *Writer) flush(ctx context.Context) error {
	w.mu.Lock()
	blk := w.pending
	w.pending, w.spare = w.spare, nil
	w.mu.Unlock()

	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, w.cfg.flushTimeout())
	err := w.insert(ctx, blk)
	cancel()
	elapsed := time.Since(start)
	w.metrics.flushSeconds.Observe(elapsed.Seconds())
	w.flushes.Add(1)
	if err != nil {
		w.failedFlushes.Add(1)
		w.metrics.flushes.WithLabelValues("error").Inc()
		w.log.Warn("cannot flush to ClickHouse; the writers get the error and retry",
			"rows", blk.rows, "writes", len(blk.waiters), "elapsed", elapsed, "err", err)
	} else {
		w.metrics.flushes.WithLabelValues("ok").Inc()
	}
	for _, ch := range blk.waiters {
		ch <- err
	}

	rows := blk.rows
	blk.reset()
	w.mu.Lock()
	w.spare = blk
	w.queued -= rows
	w.metrics.pending.Set(float64(w.queued))
	close(w.freed)
	w.freed = make(chan struct{})
	w.mu.Unlock()
	return err
}

// insert sends one INSERT per table that has rows. A failure stops it:
// the tables inserted before stay inserted, which is harmless since the
// writers retry the whole batch and a row written twice counts once.
func (w *Writer) insert(ctx context.Context, blk *block) error {
	for _, t := range blk.tables() {
		n := t.len()
		if n == 0 {
			continue
		}
		if err := w.insertTable(ctx, t); err != nil {
			return fmt.Errorf("cannot insert %d rows into %s: %w", n, t.name(), err)
		}
		w.inserts.Add(1)
		w.rows.Add(uint64(n))
		w.metrics.inserts.WithLabelValues(t.name()).Inc()
		w.metrics.rows.WithLabelValues(t.name()).Add(float64(n))
	}
	return nil
}

func (w *Writer) insertTable(ctx context.Context, t table) error {
	batch, err := w.conn.PrepareBatch(ctx, t.insert())
	if err != nil {
		return err
	}
	defer func() {
		if !batch.IsSent() {
			_ = batch.Abort()
		}
	}()
	if err := t.appendTo(batch); err != nil {
		return err
	}
	return batch.Send()
}

// maxDateTime is the last second a ClickHouse DateTime holds (UInt32).
const maxDateTime = 1<<32 - 1

// check refuses a batch with a row that ClickHouse would store wrongly, so
// that one caller's bad batch fails alone instead of failing a flush shared
// with other callers.
func check(b *aggregates.Batch) error {
	for i := range b.Playback {
		if err := checkWindow(b.Playback[i].WindowStart); err != nil {
			return fmt.Errorf("cannot write playback row %d (title %q): %w", i, b.Playback[i].TitleID, err)
		}
	}
	for i := range b.Quality {
		if err := checkWindow(b.Quality[i].WindowStart); err != nil {
			return fmt.Errorf("cannot write quality row %d (CDN %q): %w", i, b.Quality[i].CDN, err)
		}
	}
	for i := range b.Funnel {
		if err := checkWindow(b.Funnel[i].WindowStart); err != nil {
			return fmt.Errorf("cannot write funnel row %d (row %q): %w", i, b.Funnel[i].Row, err)
		}
	}
	for i := range b.Late {
		if err := checkWindow(b.Late[i].WindowStart); err != nil {
			return fmt.Errorf("cannot write late event %d (id %q): %w", i, b.Late[i].EventID, err)
		}
	}
	return nil
}

func checkWindow(ms int64) error {
	switch {
	case ms < 0 || ms/1000 > maxDateTime:
		return fmt.Errorf("%w: window start %d ms is outside 1970..2106, the range of DateTime", ErrInvalidRow, ms)
	case ms%1000 != 0:
		return fmt.Errorf("%w: window start %d ms is not a whole second; DateTime would merge it with another window", ErrInvalidRow, ms)
	}
	return nil
}
