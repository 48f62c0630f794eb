package replay

import (
	"cmp"
	"slices"
	"time"
)

// Interaction is one row of a rating log: User rated Item at Time.
//
// It is 16 bytes on purpose: a replay sorts the whole log in memory, and
// ml-25m's 25 million rows then take about 400 MB.
type Interaction struct {
	// Time is the rating's Unix time in seconds. MovieLens logs have
	// second resolution; 32 bits reach the year 2106.
	Time uint32
	User uint32
	Item uint32
	// HalfStars is the rating times two: 1 is 0.5 stars, 10 is 5 stars.
	HalfStars uint8
}

// Stars returns the rating in stars, 0.5 to 5.
func (in Interaction) Stars() float64 { return float64(in.HalfStars) / 2 }

// TimeMs returns Time in milliseconds since the Unix epoch, the unit of
// event times.
func (in Interaction) TimeMs() int64 { return int64(in.Time) * 1000 }

// At returns Time as a time.Time.
func (in Interaction) At() time.Time { return time.Unix(int64(in.Time), 0).UTC() }

// Compare orders interactions for a replay: by Time, then User, then Item.
// MovieLens has up to 128 ratings in one second, so the tie-breakers are
// what makes a replay reproducible. The rating does not take part.
func Compare(a, b Interaction) int {
	if c := cmp.Compare(a.Time, b.Time); c != 0 {
		return c
	}
	if c := cmp.Compare(a.User, b.User); c != 0 {
		return c
	}
	return cmp.Compare(a.Item, b.Item)
}

// Order sorts rows in place into replay order ([Compare]) and removes rows
// that repeat an earlier row's (Time, User, Item), keeping the first in input
// order: a repeat would produce the same event ids, which consumers drop as
// duplicates anyway. It returns the shortened slice and how many rows were
// removed.
func Order(rows []Interaction) ([]Interaction, int) {
	if !slices.IsSortedFunc(rows, Compare) {
		slices.SortStableFunc(rows, Compare)
	}
	n := len(rows)
	rows = slices.CompactFunc(rows, func(a, b Interaction) bool { return Compare(a, b) == 0 })
	return rows, n - len(rows)
}
