package nab

import (
	"math"
	"testing"
	"time"
)

func series(n int) []Point {
	t := time.Date(2014, 1, 1, 0, 0, 0, 0, time.UTC)
	out := make([]Point, n)
	for i := range out {
		out[i] = Point{Time: t.Add(time.Duration(i) * 5 * time.Minute), Value: 10 + float64(i%7)}
	}
	return out
}

func TestScore(t *testing.T) {
	f := File{Name: "x/y.csv", Points: series(2000)}
	f.Windows = []Window{{f.Points[1000].Time, f.Points[1099].Time}, {f.Points[1500].Time, f.Points[1599].Time}}
	for _, c := range []struct {
		name       string
		detections []int
		detected   int
		fps        int
		norm       float64
	}{
		{name: "A detector that never detects scores 0", norm: 0},
		{name: "A detector that detects at the start of every window scores 100", detections: []int{1000, 1500}, detected: 2, norm: 100},
		{name: "A detection at the end of a window earns almost nothing but counts as detected (the other window is missed)", detections: []int{1099}, detected: 1, norm: 25.8},
		{name: "Detections in the probationary period are ignored", detections: []int{10, 100}, norm: 0},
		{name: "A detection far after a window costs the full false-positive weight", detections: []int{1000, 1500, 1900}, detected: 2, fps: 1, norm: 97.2},
	} {
		t.Run(c.name, func(t *testing.T) {
			var tot Totals
			s := Score(f, c.detections, Standard)
			tot.Add(s)
			if s.Detected != c.detected || s.FalsePositives != c.fps || math.Abs(tot.Normalized()-c.norm) > 0.5 {
				t.Fatalf("detected %d, false positives %d, score %.2f; want %d, %d, %.1f", s.Detected, s.FalsePositives, tot.Normalized(), c.detected, c.fps, c.norm)
			}
		})
	}
}

func TestDetectFindsTheStartAndTheEndOfALevelShiftOnceEachAndNotTheNoise(t *testing.T) {
	p := series(3000)
	for i := 2000; i < 2300; i++ {
		p[i].Value += 100
	}
	got := Detect(p, Config{})
	if len(got) != 2 || got[0] != 2001 || got[1] != 2301 {
		t.Fatalf("detections %v, want 2001 (two points into the shift) and 2301 (two points after it)", got)
	}
}
