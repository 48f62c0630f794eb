// Package nab runs the quality detector's robust baseline over the
// Numenta Anomaly Benchmark (NAB): real, labelled univariate series
// (../shared/data/nab: data/<corpus>/<file>.csv, labels in
// labels/combined_windows.json). It reports, per file and per corpus, the
// share of labelled anomaly windows with a detection in them, false
// positives (detections outside every window) per 10,000 points, and the
// NAB score of the detections under NAB's standard profile, so that the
// published scoreboard (final_results.json) gives context.
//
// The detector is the same robust score the quality detector uses on a
// cell's rebuffer ratio: a value's distance from the median of the
// preceding Window points, in robust standard deviations (MAD × 1.4826,
// with a floor relative to the median). K consecutive points beyond Z
// raise a detection; after one, Suppress points pass before the next (the
// alert lifecycle's quiet period). Thresholds are fixed, not tuned per
// file or profile as the scoreboard's detectors were.
package nab

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/atlas-stream/atlas/consumers/anomaly"
)

// Config tunes the detector. Zero fields take the defaults in brackets.
type Config struct {
	// Window is how many preceding points the baseline holds [288].
	Window int
	// Z is the robust z-score beyond which a point is anomalous [6].
	Z float64
	// Consecutive anomalous points make a detection [2].
	Consecutive int
	// Suppress points after a detection cannot raise another [Window].
	Suppress int
	// MinMADRatio floors the MAD at this fraction of |median| (and at 1e-9),
	// so that a flat history does not make every wiggle infinite [0.01].
	MinMADRatio float64
}

func (c Config) withDefaults() Config {
	if c.Window == 0 {
		c.Window = 288
	}
	if c.Z == 0 {
		c.Z = 6
	}
	if c.Consecutive == 0 {
		c.Consecutive = 2
	}
	if c.Suppress == 0 {
		c.Suppress = c.Window
	}
	if c.MinMADRatio == 0 {
		c.MinMADRatio = 0.01
	}
	return c
}

// Point is one value of a series.
type Point struct {
	Time  time.Time
	Value float64
}

// Window is a labelled anomaly window, both ends included.
type Window struct{ Start, End time.Time }

// File is one series with its windows.
type File struct {
	Name    string // "realKnownCause/nyc_taxi.csv"
	Points  []Point
	Windows []Window
}

// Load reads the files of the given corpora (folder names under data/,
// e.g. "realKnownCause"; none means all) and their windows.
func Load(dir string, corpora []string) ([]File, error) {
	labels, err := os.ReadFile(filepath.Join(dir, "labels", "combined_windows.json"))
	if err != nil {
		return nil, fmt.Errorf("cannot load the NAB labels: %w", err)
	}
	var raw map[string][][2]string
	if err := json.Unmarshal(labels, &raw); err != nil {
		return nil, fmt.Errorf("cannot load the NAB labels: %w", err)
	}
	names := make([]string, 0, len(raw))
	for name := range raw {
		corpus, _, _ := strings.Cut(name, "/")
		if len(corpora) == 0 || slices.Contains(corpora, corpus) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no NAB file in corpora %v", corpora)
	}
	sort.Strings(names)
	var files []File
	for _, name := range names {
		f := File{Name: name}
		for _, w := range raw[name] {
			s, err1 := parseTime(w[0])
			e, err2 := parseTime(w[1])
			if err := errors.Join(err1, err2); err != nil {
				return nil, fmt.Errorf("cannot load the windows of %s: %w", name, err)
			}
			f.Windows = append(f.Windows, Window{s, e})
		}
		if f.Points, err = readSeries(filepath.Join(dir, "data", name)); err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02 15:04:05.000000", "2006-01-02 15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("cannot parse time %q", s)
}

func readSeries(path string) ([]Point, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read NAB series: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	var out []Point
	for line := 0; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", path, err)
		}
		if line == 0 || len(rec) < 2 {
			continue // header
		}
		t, err1 := parseTime(rec[0])
		v, err2 := strconv.ParseFloat(rec[1], 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("cannot read %s line %d: %w", path, line+1, err)
		}
		out = append(out, Point{t, v})
	}
}

// Detect returns the indices of the points that raise a detection.
func Detect(points []Point, cfg Config) []int {
	cfg = cfg.withDefaults()
	b := anomaly.NewBaseline(cfg.Window)
	var out []int
	run, quietUntil := 0, -1
	for i, p := range points {
		if b.Len() >= cfg.Window/2 {
			med, mad := b.Stats()
			floor := math.Max(cfg.MinMADRatio*math.Abs(med), 1e-9)
			if math.Abs(anomaly.RobustZ(p.Value, med, mad, floor)) >= cfg.Z {
				run++
			} else {
				run = 0
			}
			if run >= cfg.Consecutive && i > quietUntil {
				out = append(out, i)
				quietUntil = i + cfg.Suppress
			}
		}
		b.Add(p.Value)
	}
	return out
}
