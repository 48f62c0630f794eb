package sim

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/atlas-stream/atlas/producers/sim/recfile"
	"github.com/atlas-stream/atlas/schemas"
)

// Discard is a Sink that drops every record (benchmarks, dry runs).
type Discard struct{}

// Send drops rec.
func (Discard) Send(context.Context, schemas.Record) error { return nil }

// Flush does nothing.
func (Discard) Flush(context.Context) error { return nil }

// Memory is a Sink that keeps every record in order (tests).
type Memory struct{ Records []schemas.Record }

// Send appends rec.
func (m *Memory) Send(_ context.Context, rec schemas.Record) error {
	m.Records = append(m.Records, rec)
	return nil
}

// Flush does nothing.
func (m *Memory) Flush(context.Context) error { return nil }

// FileSink writes records to a record file (see package recfile).
type FileSink struct{ W *recfile.Writer }

// Send encodes and appends rec.
func (f FileSink) Send(_ context.Context, rec schemas.Record) error { return f.W.Write(rec) }

// Flush flushes the writer's buffer.
func (f FileSink) Flush(context.Context) error { return f.W.Flush() }

// Tee sends every record to each sink in turn.
type Tee []Sink

// Send sends rec to every sink, stopping at the first error.
func (t Tee) Send(ctx context.Context, rec schemas.Record) error {
	for _, s := range t {
		if err := s.Send(ctx, rec); err != nil {
			return err
		}
	}
	return nil
}

// Flush flushes every sink and joins their errors.
func (t Tee) Flush(ctx context.Context) error {
	var errs []error
	for _, s := range t {
		errs = append(errs, s.Flush(ctx))
	}
	return errors.Join(errs...)
}

// Counter counts the events (not the catalog) that pass to its Sink; Sent
// is safe to read from another goroutine (a progress display).
type Counter struct {
	Sink Sink
	n    atomic.Int64
}

// Send counts and forwards rec.
func (c *Counter) Send(ctx context.Context, rec schemas.Record) error {
	if err := c.Sink.Send(ctx, rec); err != nil {
		return err
	}
	if rec.Schema() != schemas.SchemaCatalog {
		c.n.Add(1)
	}
	return nil
}

// Flush forwards.
func (c *Counter) Flush(ctx context.Context) error { return c.Sink.Flush(ctx) }

// Sent returns the number of events sent so far.
func (c *Counter) Sent() int64 { return c.n.Load() }

// Paced forwards events to Sink at most Rate per second of wall time (the
// catalog is not paced). It sleeps in steps of at least a millisecond, so
// that high rates do not cost a timer per event. Pacing changes when records
// are sent, never which.
type Paced struct {
	Sink  Sink
	Rate  float64
	start time.Time
	n     int64
}

// Send waits until rec is due, then forwards it. It returns ctx's error if
// ctx ends while waiting.
func (p *Paced) Send(ctx context.Context, rec schemas.Record) error {
	if p.Rate > 0 && rec.Schema() != schemas.SchemaCatalog {
		if p.start.IsZero() {
			p.start = time.Now()
		}
		due := p.start.Add(time.Duration(float64(p.n) / p.Rate * float64(time.Second)))
		if d := time.Until(due); d >= time.Millisecond {
			// Let the sink push out what it batched while we wait.
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("cannot send at the requested rate: %w", ctx.Err())
			case <-t.C:
			}
		}
		p.n++
	}
	return p.Sink.Send(ctx, rec)
}

// Flush forwards.
func (p *Paced) Flush(ctx context.Context) error { return p.Sink.Flush(ctx) }

// WallClock stamps every playback and browse event with the wall clock as
// it is sent (event and receive time), then forwards it: simulated traffic
// whose event time moves with the wall clock, for measuring latency from
// an event to what the roles make of it.
type WallClock struct{ Sink Sink }

// Send stamps rec and forwards it.
func (w WallClock) Send(ctx context.Context, rec schemas.Record) error {
	now := time.Now().UnixMilli()
	switch v := rec.(type) {
	case *schemas.Playback:
		v.EventTime, v.ReceiveTime = now, now
	case *schemas.Browse:
		v.EventTime, v.ReceiveTime = now, now
	}
	return w.Sink.Send(ctx, rec)
}

// Flush forwards.
func (w WallClock) Flush(ctx context.Context) error { return w.Sink.Flush(ctx) }
