package embeddings

import (
	"slices"
)

// Profile is the state of one viewer profile: what it watched, in order,
// and how far into its partition's logs it has been applied. It depends
// only on that profile's own events (never on the shared title model), so
// a replay rebuilds it bit for bit; see the package doc.
//
// A Profile belongs to the partition that owns its key; it is not safe for
// concurrent use.
type Profile struct {
	ID string
	// PlayNext and BrowseNext are the offsets after the last playback and
	// browse record applied to this profile (0 before any). A replayed
	// record below them is skipped: nothing is applied twice.
	PlayNext, BrowseNext int64
	// PlayCountry is the country of the latest play start, BrowseCountry of
	// the latest browse intent; [Profile.Country] prefers the first. They
	// are kept apart so that the profile stays a function of each log
	// alone, whatever the interleaving of the two topics.
	PlayCountry, BrowseCountry string
	// Plays counts first plays (a title watched again is not counted).
	Plays uint32

	ring    []entry // the most recent plays, oldest first, at most Config.Window
	seen    []int32 // every title played, sorted by title index
	intents []entry // the most recent browse selects, oldest first
	raw     []byte  // the changelog value not decoded yet (Node.get)
}

// entry is one title in a profile's context with its weight: 255 is a
// full play, less an abandoned one (see weightOf).
type entry struct {
	title int32
	w     uint8
}

// Country returns the profile's country for cold-start popularity.
func (p *Profile) Country() string {
	if p.PlayCountry != "" {
		return p.PlayCountry
	}
	return p.BrowseCountry
}

// Watched reports how many distinct titles the profile played.
func (p *Profile) Watched() int { return len(p.seen) }

func (p *Profile) hasSeen(t int32) bool {
	_, ok := slices.BinarySearch(p.seen, t)
	return ok
}

func (p *Profile) markSeen(t int32) {
	i, ok := slices.BinarySearch(p.seen, t)
	if !ok {
		p.seen = slices.Insert(p.seen, i, t)
	}
}

// push appends t as the most recent play, dropping the oldest beyond
// window.
func (p *Profile) push(t int32, w uint8, window int) {
	p.ring = pushEntry(p.ring, entry{t, w}, window)
}

// touch moves t to the most recent position (a title played again).
func (p *Profile) touch(t int32, window int) {
	w := uint8(255)
	if i := indexEntry(p.ring, t); i >= 0 {
		w = p.ring[i].w
		p.ring = slices.Delete(p.ring, i, i+1)
	}
	p.push(t, w, window)
}

// setWeight sets the weight of t if it is still in the context.
func (p *Profile) setWeight(t int32, w uint8) bool {
	if i := indexEntry(p.ring, t); i >= 0 {
		p.ring[i].w = w
		return true
	}
	return false
}

// intent records a browse select of t.
func (p *Profile) intent(t int32, w uint8, max int) {
	if max == 0 {
		return
	}
	if i := indexEntry(p.intents, t); i >= 0 {
		p.intents = slices.Delete(p.intents, i, i+1)
	}
	p.intents = pushEntry(p.intents, entry{t, w}, max)
}

func pushEntry(s []entry, e entry, max int) []entry {
	if len(s) >= max {
		copy(s, s[len(s)-max+1:])
		s = s[:max-1]
	}
	return append(s, e)
}

func indexEntry(s []entry, t int32) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i].title == t {
			return i
		}
	}
	return -1
}

// weightOf maps a watch fraction to a context weight: a title abandoned
// at once weighs 0.2 of a play, one watched to 80 % or more weighs 1.
func weightOf(fraction float64) uint8 {
	f := min(max(fraction/0.8, 0), 1)
	return uint8(51 + f*204 + 0.5)
}
