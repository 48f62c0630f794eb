package replay

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/atlas-stream/atlas/schemas"
)

// Pace says how fast a replay sends. The zero value sends as fast as the
// sink takes events.
type Pace struct {
	// Speed, when above 0, keeps the event-time gaps between events divided
	// by Speed: 3600 replays an hour of the log per second. A log of
	// 1996–2018 cannot be replayed in real time (Speed 1), so this is for
	// pacing, not for faking live traffic.
	Speed float64
	// Rate, when above 0, sends this many events per second, ignoring the
	// gaps. Speed and Rate exclude each other.
	Rate float64
	// MaxGap, with Speed, caps one pause, so that a quiet month of the log
	// does not stall the replay. Default 0: no cap.
	MaxGap time.Duration
}

// Validate reports a pace that cannot work.
func (p Pace) Validate() error {
	switch {
	case p.Speed < 0 || math.IsNaN(p.Speed) || math.IsInf(p.Speed, 0):
		return fmt.Errorf("invalid speed %v: want a factor above 0, or 0 for as fast as possible", p.Speed)
	case p.Rate < 0 || math.IsNaN(p.Rate) || math.IsInf(p.Rate, 0):
		return fmt.Errorf("invalid rate %v: want events per second above 0, or 0 for as fast as possible", p.Rate)
	case p.Speed > 0 && p.Rate > 0:
		return errors.New("speed and rate exclude each other: set one")
	case p.MaxGap < 0:
		return fmt.Errorf("invalid maximum gap %s: must not be negative", p.MaxGap)
	}
	return nil
}

// minSleep is the shortest pause worth a timer; shorter lags are caught up
// by the following events.
const minSleep = time.Millisecond

// Paced returns a sink that delays playback and browse events according to
// p before handing them to next; other records (titles) pass at once. The
// schedule is absolute from the first event, so pauses do not drift, and
// a sink slower than the pace is never waited for twice. Before a pause the
// returned sink flushes next if next is a [Flusher], so that buffered
// events are not held back by the pause.
//
// The returned sink always implements [Flusher] (a no-op when next does
// not). It is not safe for concurrent use. With a zero p, Paced returns
// next itself.
func Paced(next Sink, p Pace) Sink {
	if p.Speed == 0 && p.Rate == 0 {
		return next
	}
	return &pacedSink{next: next, p: p, now: time.Now, sleep: sleepCtx}
}

type pacedSink struct {
	next  Sink
	p     Pace
	now   func() time.Time
	sleep func(context.Context, time.Duration) error

	started bool
	wall0   time.Time
	prev    int64         // event time of the previous paced event
	virt    time.Duration // where the schedule is, relative to wall0
	n       int           // paced events so far
}

func eventTime(rec schemas.Record) (int64, bool) {
	switch r := rec.(type) {
	case *schemas.Playback:
		return r.EventTime, true
	case *schemas.Browse:
		return r.EventTime, true
	}
	return 0, false
}

func (s *pacedSink) Send(ctx context.Context, rec schemas.Record) error {
	t, ok := eventTime(rec)
	if !ok {
		return s.next.Send(ctx, rec)
	}
	if !s.started {
		s.started, s.wall0, s.prev = true, s.now(), t
	} else {
		if s.p.Speed > 0 {
			if gap := time.Duration(float64(t-s.prev) * float64(time.Millisecond) / s.p.Speed); gap > 0 {
				if s.p.MaxGap > 0 && gap > s.p.MaxGap {
					gap = s.p.MaxGap
				}
				s.virt += gap
			}
			s.prev = t
		} else {
			s.virt = time.Duration(float64(s.n) / s.p.Rate * float64(time.Second))
		}
		if d := s.wall0.Add(s.virt).Sub(s.now()); d >= minSleep {
			if err := s.Flush(ctx); err != nil {
				return err
			}
			if err := s.sleep(ctx, d); err != nil {
				return err
			}
		}
	}
	s.n++
	return s.next.Send(ctx, rec)
}

// Flush flushes next if it buffers.
func (s *pacedSink) Flush(ctx context.Context) error {
	if f, ok := s.next.(Flusher); ok {
		return f.Flush(ctx)
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
