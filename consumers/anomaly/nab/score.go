package nab

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
)

// Profile weighs NAB's outcomes.
type Profile struct{ TP, FP, FN float64 }

// Standard is NAB's standard profile.
var Standard = Profile{TP: 1, FP: 0.11, FN: 1}

// probationPercent of each file (at most 750 points) is not scored, as in
// NAB: detectors learn there.
const probationPercent = 0.15

// FileScore is the outcome of one file.
type FileScore struct {
	Name string
	// Points scored (after the probationary period), Windows labelled,
	// Detected windows with a detection in them, FalsePositives detections
	// outside every window.
	Points, Windows, Detected, FalsePositives int
	// Raw is the file's NAB score under the profile; Null and Perfect are
	// those of a detector that never detects and of one that detects at
	// the start of every window.
	Raw, Null, Perfect float64
}

// Score scores the detections (indices into f.Points) as NAB does: the
// first detection in a window earns TP × σ(position), where the position
// runs from −1 at the window's start to 0 at its end and σ(x) = 2/(1+e^(5x))
// − 1; further detections in the window earn nothing; a window without a
// detection costs FN; a detection outside every window costs FP × σ of its
// distance after the previous window in window lengths (a full FP when
// there is no previous window). Detections in the probationary period are
// ignored.
func Score(f File, detections []int, p Profile) FileScore {
	prob := int(math.Min(math.Floor(probationPercent*float64(len(f.Points))), probationPercent*5000))
	s := FileScore{Name: f.Name, Points: len(f.Points) - prob, Windows: len(f.Windows)}
	// Window bounds as point indices.
	type win struct{ start, end int }
	var wins []win
	for _, w := range f.Windows {
		a := sort.Search(len(f.Points), func(i int) bool { return !f.Points[i].Time.Before(w.Start) })
		b := sort.Search(len(f.Points), func(i int) bool { return f.Points[i].Time.After(w.End) }) - 1
		if b >= a {
			wins = append(wins, win{a, b})
		}
	}
	hit := make([]bool, len(wins))
	for _, d := range detections {
		if d < prob {
			continue
		}
		in, prev := -1, -1
		for k, w := range wins {
			if d >= w.start && d <= w.end {
				in = k
			}
			if w.end < d {
				prev = k
			}
		}
		switch {
		case in >= 0:
			if !hit[in] {
				hit[in] = true
				w := wins[in]
				length := float64(w.end - w.start + 1)
				pos := -float64(w.end-d+1) / length
				s.Raw += p.TP * sigmoid(pos)
			}
		case prev >= 0:
			w := wins[prev]
			length := float64(w.end - w.start + 1)
			s.Raw += p.FP * sigmoid(float64(d-w.end)/length)
			s.FalsePositives++
		default:
			s.Raw -= p.FP
			s.FalsePositives++
		}
	}
	for _, h := range hit {
		if h {
			s.Detected++
		} else {
			s.Raw -= p.FN
		}
	}
	s.Null = -p.FN * float64(len(wins))
	s.Perfect = p.TP * sigmoid(-1) * float64(len(wins))
	return s
}

func sigmoid(x float64) float64 { return 2/(1+math.Exp(5*x)) - 1 }

// Totals sums file scores: windows detected, false positives per 10,000
// points, and the normalised NAB score 100 × (raw − null) / (perfect −
// null).
type Totals struct {
	Files, Points, Windows, Detected, FalsePositives int
	Raw, Null, Perfect                               float64
}

// Add accumulates one file.
func (t *Totals) Add(s FileScore) {
	t.Files++
	t.Points += s.Points
	t.Windows += s.Windows
	t.Detected += s.Detected
	t.FalsePositives += s.FalsePositives
	t.Raw += s.Raw
	t.Null += s.Null
	t.Perfect += s.Perfect
}

// DetectedShare is the share of windows detected.
func (t Totals) DetectedShare() float64 {
	if t.Windows == 0 {
		return 0
	}
	return float64(t.Detected) / float64(t.Windows)
}

// FPPer10k is false positives per 10,000 points.
func (t Totals) FPPer10k() float64 {
	if t.Points == 0 {
		return 0
	}
	return float64(t.FalsePositives) * 10_000 / float64(t.Points)
}

// Normalized is the NAB score, 0 for the null detector, 100 for the perfect
// one.
func (t Totals) Normalized() float64 {
	if t.Perfect == t.Null {
		return 0
	}
	return 100 * (t.Raw - t.Null) / (t.Perfect - t.Null)
}

// Published is the scoreboard of final_results.json: per detector, its
// normalised score under each profile.
type Published map[string]map[string]float64

// LoadPublished reads final_results.json.
func LoadPublished(dir string) (Published, error) {
	b, err := os.ReadFile(filepath.Join(dir, "final_results.json"))
	if err != nil {
		return nil, fmt.Errorf("cannot load the NAB scoreboard: %w", err)
	}
	var p Published
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("cannot load the NAB scoreboard: %w", err)
	}
	return p, nil
}
