// Package eventtime holds Atlas's event-time rules in one place: tumbling
// windows, the per-partition watermark, and when an event is late. The
// aggregates role applies them to a partition's log; the simulator applies
// the same rules to what it sends, so that its ground truth says exactly
// which events the aggregates must count and which are late.
//
// All times are milliseconds since the Unix epoch (event time).
package eventtime

import (
	"fmt"
	"math"
	"time"
)

// Rules say how events map to windows and when a window closes.
type Rules struct {
	// Window is the tumbling window length. Default 1 minute.
	Window time.Duration
	// Lateness is the out-of-orderness the watermark allows: the
	// watermark is the largest event time seen minus Lateness. Default 5 s.
	Lateness time.Duration
	// Grace keeps a window open after the watermark passes its end.
	// Default 10 s.
	Grace time.Duration
}

// Defaults fills zero fields.
func (r Rules) Defaults() Rules {
	if r.Window == 0 {
		r.Window = time.Minute
	}
	if r.Lateness == 0 {
		r.Lateness = 5 * time.Second
	}
	if r.Grace == 0 {
		r.Grace = 10 * time.Second
	}
	return r
}

// Validate reports rules that cannot work.
func (r Rules) Validate() error {
	r = r.Defaults()
	switch {
	case r.Window < time.Second || r.Window%time.Second != 0:
		return fmt.Errorf("invalid window %s: want whole seconds, at least 1s", r.Window)
	case time.Hour%r.Window != 0:
		return fmt.Errorf("invalid window %s: it must divide an hour, so that hourly roll-ups align", r.Window)
	case r.Lateness < 0 || r.Grace < 0:
		return fmt.Errorf("invalid lateness %s or grace %s: must not be negative", r.Lateness, r.Grace)
	}
	return nil
}

func (r Rules) windowMs() int64 { return r.Defaults().Window.Milliseconds() }

// WindowStart returns the start of the window holding event time t.
func (r Rules) WindowStart(t int64) int64 {
	w := r.windowMs()
	return t - ((t%w)+w)%w
}

// ClosesAt returns the watermark at which the window starting at start
// closes: its end plus grace.
func (r Rules) ClosesAt(start int64) int64 {
	d := r.Defaults()
	return start + d.Window.Milliseconds() + d.Grace.Milliseconds()
}

// None is the watermark and maximum event time before any event.
const None = math.MinInt64

// Watermark tracks one partition's watermark. The zero value has seen
// nothing; use [Rules.NewWatermark] to bind the rules.
type Watermark struct {
	rules Rules
	max   int64 // largest event time observed; math.MinInt64 before any
}

// NewWatermark returns a watermark that has seen nothing.
func (r Rules) NewWatermark() *Watermark {
	return &Watermark{rules: r.Defaults(), max: math.MinInt64}
}

// Value is the watermark: the largest event time observed minus the
// lateness, or math.MinInt64 before any event.
func (w *Watermark) Value() int64 {
	if w.max == math.MinInt64 {
		return math.MinInt64
	}
	return w.max - w.rules.Lateness.Milliseconds()
}

// MaxEventTime is the largest event time observed (math.MinInt64 before any).
func (w *Watermark) MaxEventTime() int64 { return w.max }

// IsLate reports whether an event at time t arrives after its window
// closed. Call it before Observe.
func (w *Watermark) IsLate(t int64) bool {
	return w.Value() >= w.rules.ClosesAt(w.rules.WindowStart(t))
}

// Observe advances the watermark with an accepted event's time. Callers
// pass only validated times: an event time beyond the skew bound is rejected
// before it can push the watermark into the future.
func (w *Watermark) Observe(t int64) {
	if t > w.max {
		w.max = t
	}
}

// Restore sets the largest observed event time, e.g. from a commit's
// metadata after a restart.
func (w *Watermark) Restore(maxEventTime int64) { w.max = maxEventTime }

// Closed reports whether the window starting at start is closed.
func (w *Watermark) Closed(start int64) bool { return w.Value() >= w.rules.ClosesAt(start) }
