package replay

import (
	"context"
	"testing"
	"time"

	"github.com/atlas-stream/atlas/schemas"
)

// fakeClock records the pauses a paced sink asks for and advances by them.
type fakeClock struct {
	now    time.Time
	sleeps []time.Duration
}

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) Sleep(_ context.Context, d time.Duration) error {
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return nil
}

type flushCounter struct {
	sent, flushes int
}

func (f *flushCounter) Send(context.Context, schemas.Record) error { f.sent++; return nil }
func (f *flushCounter) Flush(context.Context) error                { f.flushes++; return nil }

func paced(p Pace, next Sink) (*pacedSink, *fakeClock) {
	clk := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	s := Paced(next, p).(*pacedSink)
	s.now, s.sleep = clk.Now, clk.Sleep
	return s, clk
}

func event(ms int64) *schemas.Playback {
	return &schemas.Playback{Envelope: schemas.Envelope{EventTime: ms}}
}

func TestSpeedDividesEventTimeGapsAndMaxGapCapsThem(t *testing.T) {
	next := &flushCounter{}
	s, clk := paced(Pace{Speed: 1000, MaxGap: 5 * time.Second}, next)
	ctx := context.Background()
	// Gaps of 60 s, 0, 0.5 ms (too short to sleep for, caught up later),
	// 1 day (capped at 5 s), 10 s.
	for _, ms := range []int64{0, 60_000, 60_000, 60_000, 60_000 + 86_400_000, 60_000 + 86_400_000 + 10_000} {
		s.Send(ctx, event(ms))
	}
	s.Send(ctx, &schemas.Title{TitleID: "t"}) // not paced
	want := []time.Duration{60 * time.Millisecond, 5 * time.Second, 10 * time.Millisecond}
	if len(clk.sleeps) != len(want) {
		t.Fatalf("sleeps %v, want %v", clk.sleeps, want)
	}
	for i := range want {
		if clk.sleeps[i] != want[i] {
			t.Fatalf("sleeps %v, want %v", clk.sleeps, want)
		}
	}
	if next.sent != 7 || next.flushes != len(want) {
		t.Fatalf("next got %d records and %d flushes, want 7 and one flush per pause", next.sent, next.flushes)
	}
}

func TestRateSpacesEventsEvenlyAndCatchesUpAfterASlowSink(t *testing.T) {
	s, clk := paced(Pace{Rate: 100}, &flushCounter{})
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		s.Send(ctx, event(0))
	}
	clk.now = clk.now.Add(100 * time.Millisecond) // the sink was slow
	for i := 0; i < 10; i++ {
		s.Send(ctx, event(0))
	}
	var total time.Duration
	for _, d := range clk.sleeps {
		total += d
	}
	// The first five events are 10 ms apart: 40 ms of sleep. Then the sink
	// takes 100 ms, and the absolute schedule (event 14 at 140 ms) is met
	// without any further sleep.
	if total != 40*time.Millisecond {
		t.Fatalf("slept %v in %v, want 40ms in total", total, clk.sleeps)
	}
}

func TestPaceValidation(t *testing.T) {
	check := func(ok bool, p Pace) {
		t.Helper()
		if err := p.Validate(); (err == nil) != ok {
			t.Fatalf("%+v: Validate() = %v", p, err)
		}
	}
	check(true, Pace{})
	check(true, Pace{Speed: 3600, MaxGap: time.Second})
	check(true, Pace{Rate: 1000})
	check(false, Pace{Speed: 1, Rate: 1})
	check(false, Pace{Speed: -1})
	check(false, Pace{Rate: -1})
	check(false, Pace{MaxGap: -time.Second})
	if s := Paced(&flushCounter{}, Pace{}); s == nil {
		t.Fatal("a zero pace returned nil")
	} else if _, ok := s.(*pacedSink); ok {
		t.Fatal("a zero pace wrapped the sink")
	}
}

func TestPacedSleepStopsWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s := Paced(&flushCounter{}, Pace{Rate: 0.001})
	s.Send(ctx, event(0))
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	start := time.Now()
	if err := s.Send(ctx, event(0)); err != context.Canceled || time.Since(start) > 5*time.Second {
		t.Fatalf("Send = %v after %s, want context.Canceled soon", err, time.Since(start))
	}
}
