package anomaly

import (
	"math"
	"slices"
)

// madScale turns a median absolute deviation into a standard deviation
// for normally distributed data.
const madScale = 1.4826

// Baseline is a robust summary of the recent history of one series: the
// median and the median absolute deviation (MAD) of its last N values. A
// few outliers (an incident in progress) move neither, which is why the
// quality detector and the NAB evaluation score values against it. The
// zero value is unusable; see [NewBaseline]. Not safe for concurrent use.
type Baseline struct {
	vals    []float64 // ring
	n, pos  int
	scratch []float64
}

// NewBaseline returns a Baseline over the last n values.
func NewBaseline(n int) *Baseline {
	return &Baseline{vals: make([]float64, n)}
}

// Add appends x, dropping the oldest value once N are held.
func (b *Baseline) Add(x float64) {
	b.vals[b.pos] = x
	b.pos = (b.pos + 1) % len(b.vals)
	if b.n < len(b.vals) {
		b.n++
	}
}

// Len is the number of values held.
func (b *Baseline) Len() int { return b.n }

// Reset forgets every value.
func (b *Baseline) Reset() { b.n, b.pos = 0, 0 }

// Stats returns the median and the MAD of the values held (0, 0 when
// empty).
func (b *Baseline) Stats() (median, mad float64) {
	if b.n == 0 {
		return 0, 0
	}
	s := append(b.scratch[:0], b.vals[:b.n]...)
	if b.n == len(b.vals) {
		s = append(s[:0], b.vals...)
	}
	median = medianOf(s)
	for i, v := range s {
		s[i] = math.Abs(v - median)
	}
	mad = medianOf(s)
	b.scratch = s
	return median, mad
}

// medianOf sorts s in place and returns its median.
func medianOf(s []float64) float64 {
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// RobustZ is (x − median) / (1.4826 · max(mad, floor)): how many robust
// standard deviations x is from the median. floor keeps a flat history
// (MAD 0) from making every change infinitely significant.
func RobustZ(x, median, mad, floor float64) float64 {
	return (x - median) / (madScale * math.Max(mad, floor))
}
