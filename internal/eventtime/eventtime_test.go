package eventtime

import (
	"math"
	"testing"
	"time"
)

func TestWindowStart(t *testing.T) {
	r := Rules{}
	check := func(ts, want int64) {
		t.Helper()
		if got := r.WindowStart(ts); got != want {
			t.Fatalf("WindowStart(%d) = %d, want %d", ts, got, want)
		}
	}
	check(0, 0)
	check(59_999, 0)
	check(60_000, 60_000)
	check(1732600000123, 1732599960000)
	check(-1, -60_000)
}

func TestAnEventIsLateOnlyAfterTheWatermarkPassesItsWindowEndPlusGrace(t *testing.T) {
	r := Rules{Window: time.Minute, Lateness: 5 * time.Second, Grace: 10 * time.Second}
	w := r.NewWatermark()
	if w.Value() != math.MinInt64 || w.IsLate(0) {
		t.Fatal("a fresh watermark must accept everything")
	}
	// Window [0, 60s) closes when the watermark reaches 70 s, that is when
	// an event at 75 s has been seen.
	w.Observe(74_999)
	if w.IsLate(59_999) || w.Closed(0) {
		t.Fatal("window [0,60s) closed before the watermark reached 70s")
	}
	w.Observe(75_000)
	if !w.IsLate(59_999) || !w.Closed(0) {
		t.Fatal("window [0,60s) still open with the watermark at 70s")
	}
	if w.IsLate(60_000) {
		t.Fatal("an event of the next window is late")
	}
	w.Observe(10) // an old event does not move the watermark back
	if w.MaxEventTime() != 75_000 {
		t.Fatalf("max = %d", w.MaxEventTime())
	}
	w2 := r.NewWatermark()
	w2.Restore(75_000)
	if !w2.IsLate(59_999) {
		t.Fatal("a restored watermark forgot its position")
	}
}

func TestRulesValidate(t *testing.T) {
	if err := (Rules{}).Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (Rules{Window: 7 * time.Minute}).Validate(); err == nil {
		t.Fatal("a 7-minute window does not divide an hour but validated")
	}
	if err := (Rules{Grace: -time.Second}).Validate(); err == nil {
		t.Fatal("a negative grace validated")
	}
}
