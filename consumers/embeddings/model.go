package embeddings

import (
	"cmp"
	"math"
	"slices"
	"sync"
)

// scale is the fixed-point unit of every weight in the title model: a
// play of weight 1 adds 256. Integers make the model's sums independent of
// the order in which members apply increments (see the package doc).
const scale = 256

// Model is the title side of the learner: how often each title was played
// (overall and per country), and for each title j a row of weighted
// co-occurrences "i was played after (or before) j in one profile's recent
// history". Every member keeps a full copy, merged from the increments of
// all partitions. Its methods are safe for concurrent use.
type Model struct {
	cfg   Config
	decay []float64 // decay[k] = Decay^k

	mu      sync.RWMutex
	ids     []string
	index   map[string]int32
	count   []uint64 // first plays, fixed point
	powA    []float64
	pow1A   []float64
	logPop  []float64 // log(1 + first plays)
	rows    []table
	country map[string][]uint64
	// versions[source][title] is the offset after the last record of the
	// source partition applied to the title's row: an increment below it
	// is already in the row.
	versions map[int32][]int64
	total    uint64
	changes  uint64 // increments applied; the dense refresh compares it
	dense    *dense
}

// NewModel returns an empty title model. cfg must be valid.
func NewModel(cfg Config) *Model {
	cfg = cfg.Defaults()
	m := &Model{cfg: cfg, index: map[string]int32{}, country: map[string][]uint64{}, versions: map[int32][]int64{}}
	m.decay = make([]float64, max(cfg.Window, cfg.Intents)+1)
	for k := range m.decay {
		m.decay[k] = math.Pow(cfg.Decay, float64(k))
	}
	return m
}

// Config returns the model's configuration with defaults applied.
func (m *Model) Config() Config { return m.cfg }

// Title returns the index of a title id, registering it when new. Indices
// are private to this process: never persist them.
func (m *Model) Title(id string) int32 {
	m.mu.RLock()
	t, ok := m.index[id]
	m.mu.RUnlock()
	if ok {
		return t
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.titleLocked(id)
}

func (m *Model) titleLocked(id string) int32 {
	if t, ok := m.index[id]; ok {
		return t
	}
	t := int32(len(m.ids))
	m.ids = append(m.ids, id)
	m.index[id] = t
	m.count = append(m.count, 0)
	m.powA = append(m.powA, 0)
	m.logPop = append(m.logPop, 0)
	m.pow1A = append(m.pow1A, 0)
	m.rows = append(m.rows, table{})
	return t
}

// lookup returns the index of a known title.
func (m *Model) lookup(id string) (int32, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	t, ok := m.index[id]
	return t, ok
}

// ID returns the id of a title index.
func (m *Model) ID(t int32) string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.ids[t]
}

// Stats describes the model.
type Stats struct {
	Titles int    `json:"titles"`
	Plays  uint64 `json:"plays"` // first plays counted, over every partition
	Pairs  int    `json:"pairs"` // non-zero co-occurrence cells
	// Changes counts increments applied; DenseAt is the value of Changes
	// when the dense vectors were last refreshed (equal: they are current).
	Changes uint64 `json:"changes"`
	DenseAt uint64 `json:"dense_at"`
}

// Stats returns counts that describe the model.
func (m *Model) Stats() Stats {
	m.mu.RLock()
	defer m.mu.RUnlock()
	s := Stats{Titles: len(m.ids), Plays: m.total / scale, Changes: m.changes}
	for i := range m.rows {
		s.Pairs += m.rows[i].len()
	}
	if m.dense != nil {
		s.DenseAt = m.dense.changes
	}
	return s
}

// increment is what one first play adds to the model: a count for the
// title (overall and in a country) and, for every title j in the profile's
// context, Fwd to row j at the title and Rev to the title's row at j. It is
// derived from the profile alone, so a replay derives the same one.
type increment struct {
	source  int32
	offset  int64
	title   int32
	country string
	count   uint32
	pairs   []pair
}

type pair struct {
	title    int32
	fwd, rev uint32
}

// derive fills inc with what a first play of t by p adds. p is not
// changed.
func (m *Model) derive(inc *increment, p *Profile, t int32, country string, source int32, offset int64) {
	inc.source, inc.offset, inc.title, inc.country, inc.count = source, offset, t, country, scale
	inc.pairs = inc.pairs[:0]
	for k := 0; k < len(p.ring); k++ {
		e := p.ring[len(p.ring)-1-k]
		w := m.decay[k] * float64(e.w) / 255 * scale
		fwd := uint32(w + 0.5)
		rev := uint32(w*m.cfg.Reverse + 0.5)
		if fwd|rev != 0 {
			inc.pairs = append(inc.pairs, pair{e.title, fwd, rev})
		}
	}
}

// apply adds an increment to the rows it touches whose version is at or
// below its offset, and moves those versions past it. It reports whether
// anything was applied.
func (m *Model) apply(inc *increment) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.applyLocked(inc)
}

func (m *Model) applyLocked(inc *increment) bool {
	vers := m.versions[inc.source]
	if need := len(m.ids); len(vers) < need {
		vers = append(vers, make([]int64, need-len(vers))...)
		m.versions[inc.source] = vers
	}
	applied := false
	next := inc.offset + 1
	t := inc.title
	if vers[t] <= inc.offset {
		vers[t] = next
		applied = true
		m.count[t] += uint64(inc.count)
		m.total += uint64(inc.count)
		m.refreshPow(t)
		if inc.country != "" {
			cc := m.country[inc.country]
			if len(cc) < len(m.ids) {
				cc = append(cc, make([]uint64, len(m.ids)-len(cc))...)
				m.country[inc.country] = cc
			}
			cc[t] += uint64(inc.count)
		}
		for _, pr := range inc.pairs {
			if pr.rev != 0 {
				m.rows[t].add(pr.title, uint64(pr.rev))
			}
		}
	}
	for _, pr := range inc.pairs {
		j := pr.title
		if vers[j] <= inc.offset {
			vers[j] = next
			applied = true
			if pr.fwd != 0 {
				m.rows[j].add(t, uint64(pr.fwd))
			}
		}
	}
	if applied {
		m.changes++
	}
	return applied
}

func (m *Model) refreshPow(t int32) {
	n := float64(m.count[t]) / scale
	m.powA[t] = math.Pow(n, m.cfg.Alpha)
	m.pow1A[t] = math.Pow(n, 1-m.cfg.Alpha)
	m.logPop[t] = math.Log1p(n)
}

// Play learns a play start of title t by p at offset of the source
// partition and returns whether it was p's first play of t. A first play
// adds an increment to the model (returned through inc, when not nil, for
// publishing) and becomes the most recent title of p's context; a title
// played again only moves to the front of the context.
func (m *Model) Play(p *Profile, t int32, country string, source int32, offset int64, inc *increment) bool {
	if country != "" {
		p.PlayCountry = country
	}
	if p.hasSeen(t) {
		p.touch(t, m.cfg.Window)
		return false
	}
	var local increment
	if inc == nil {
		inc = &local
	}
	m.derive(inc, p, t, country, source, offset)
	m.apply(inc)
	p.markSeen(t)
	p.push(t, 255, m.cfg.Window)
	p.Plays++
	return true
}

// Finish sets the weight of a title in p's context from the fraction of
// it that was watched when the play ended.
func (m *Model) Finish(p *Profile, t int32, fraction float64) bool {
	return p.setWeight(t, weightOf(fraction))
}

// Intent records a browse select (or add to list) of t by p: a weaker
// signal that joins p's context for scoring but adds nothing to the model.
func (m *Model) Intent(p *Profile, t int32, country string) {
	if country != "" {
		p.BrowseCountry = country
	}
	p.intent(t, 255, m.cfg.Intents)
}

// Scores writes into dst[t] the score of every title index t < len(dst)
// for p (p may be nil: popularity only). Titles never played score 0.
func (m *Model) Scores(p *Profile, dst []float64) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	m.scoresLocked(p, dst)
}

func (m *Model) scoresLocked(p *Profile, dst []float64) {
	n := min(len(dst), len(m.ids))
	clear(dst)
	dst = dst[:n]
	if p != nil {
		for k := 0; k < len(p.ring); k++ {
			e := p.ring[len(p.ring)-1-k]
			m.addRow(dst, e.title, m.decay[k]*float64(e.w)/255)
		}
		for k := 0; k < len(p.intents); k++ {
			e := p.intents[len(p.intents)-1-k]
			m.addRow(dst, e.title, m.cfg.IntentWeight*m.decay[k]*float64(e.w)/255)
		}
	}
	for i := range dst {
		dst[i] += m.cfg.PopWeight * m.logPop[i]
	}
	if m.cfg.DenseWeight > 0 && m.dense != nil && p != nil {
		v := m.tasteLocked(p, nil)
		if v != nil {
			m.dense.addScores(dst, v, m.cfg.DenseWeight)
		}
	}
}

// addRow adds a × (row j normalised) to dst.
func (m *Model) addRow(dst []float64, j int32, a float64) {
	if int(j) >= len(m.rows) || m.pow1A[j] == 0 || a == 0 {
		return
	}
	a /= m.pow1A[j] * scale
	r := &m.rows[j]
	for s, i := range r.keys {
		if i == emptyKey || int(i) >= len(dst) || m.powA[i] == 0 {
			continue
		}
		dst[i] += a * float64(r.vals[s]) / m.powA[i]
	}
}

// Scored is one recommended title.
type Scored struct {
	Title string  `json:"title"`
	Score float64 `json:"score"`
}

// Recommend returns the k titles with the highest scores for p that p has
// not played, best first; ties go to the smaller title id, so that every
// member answers alike. A nil or empty p gets the most played titles of
// country (all countries when it has no plays), the cold start.
func (m *Model) Recommend(p *Profile, country string, k int, scratch []float64) []Scored {
	m.mu.RLock()
	defer m.mu.RUnlock()
	n := len(m.ids)
	if cap(scratch) < n {
		scratch = make([]float64, n)
	}
	s := scratch[:n]
	if p == nil || (len(p.ring) == 0 && len(p.intents) == 0) {
		m.popularityLocked(country, s)
	} else {
		m.scoresLocked(p, s)
	}
	top := make([]Scored, 0, k+1)
	better := func(a, b Scored) bool { return a.Score > b.Score || (a.Score == b.Score && a.Title < b.Title) }
	for i, v := range s {
		if m.count[i] == 0 || (p != nil && p.hasSeen(int32(i))) {
			continue
		}
		c := Scored{m.ids[i], v}
		if len(top) == k && !better(c, top[k-1]) {
			continue
		}
		pos, _ := slices.BinarySearchFunc(top, c, func(a, b Scored) int {
			if better(a, b) {
				return -1
			}
			return 1
		})
		top = slices.Insert(top, pos, c)
		if len(top) > k {
			top = top[:k]
		}
	}
	return top
}

// popularityLocked scores titles by plays in country, then overall.
func (m *Model) popularityLocked(country string, dst []float64) {
	cc := m.country[country]
	total := float64(m.total) + 1
	for i := range dst {
		v := float64(m.count[i]) / total // below 1: orders titles the country never played
		if i < len(cc) {
			v += float64(cc[i]) / scale
		}
		dst[i] = v
	}
}

// Taste returns p's dense taste vector: the recency-weighted sum of the
// dense vectors of the titles in its context, or nil before the first
// refresh or for an empty context. The slice is new.
func (m *Model) Taste(p *Profile) []float32 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.tasteLocked(p, nil)
}

func (m *Model) tasteLocked(p *Profile, dst []float32) []float32 {
	d := m.dense
	if d == nil || (len(p.ring) == 0 && len(p.intents) == 0) {
		return nil
	}
	dst = append(dst[:0], make([]float32, d.dim)...)
	any := false
	add := func(e entry, a float64) {
		if v := d.vector(e.title); v != nil {
			any = true
			for c := range dst {
				dst[c] += float32(a) * v[c]
			}
		}
	}
	for k := 0; k < len(p.ring); k++ {
		e := p.ring[len(p.ring)-1-k]
		add(e, m.decay[k]*float64(e.w)/255)
	}
	for k := 0; k < len(p.intents); k++ {
		e := p.intents[len(p.intents)-1-k]
		add(e, m.cfg.IntentWeight*m.decay[k]*float64(e.w)/255)
	}
	if !any {
		return nil
	}
	return dst
}

// TitleVector returns the dense vector of a title id, or nil.
func (m *Model) TitleVector(id string) []float32 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	t, ok := m.index[id]
	if !ok || m.dense == nil {
		return nil
	}
	return slices.Clone(m.dense.vector(t))
}

// sortedIDs returns the title indices in title id order, the canonical
// order of everything that must not depend on registration order.
func (m *Model) sortedIDsLocked() []int32 {
	out := make([]int32, len(m.ids))
	for i := range out {
		out[i] = int32(i)
	}
	slices.SortFunc(out, func(a, b int32) int { return cmp.Compare(m.ids[a], m.ids[b]) })
	return out
}

// Digest is a hash of everything the model learned — counts, country
// counts and rows — in canonical order. Members that applied the same
// increments, in any order, have the same digest.
func (m *Model) Digest() uint64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	order := m.sortedIDsLocked()
	h := uint64(14695981039346656037)
	mix := func(v uint64) {
		for i := 0; i < 8; i++ {
			h ^= v & 0xff
			h *= 1099511628211
			v >>= 8
		}
	}
	str := func(s string) {
		mix(uint64(len(s)))
		for i := 0; i < len(s); i++ {
			mix(uint64(s[i]))
		}
	}
	countries := make([]string, 0, len(m.country))
	for cc := range m.country {
		countries = append(countries, cc)
	}
	slices.Sort(countries)
	type cell struct {
		id string
		v  uint64
	}
	var cells []cell
	for _, t := range order {
		if m.count[t] == 0 && m.rows[t].len() == 0 {
			continue
		}
		str(m.ids[t])
		mix(m.count[t])
		for _, cc := range countries {
			if c := m.country[cc]; int(t) < len(c) && c[t] > 0 {
				str(cc)
				mix(c[t])
			}
		}
		cells = cells[:0]
		r := &m.rows[t]
		for s, i := range r.keys {
			if i != emptyKey {
				cells = append(cells, cell{m.ids[i], r.vals[s]})
			}
		}
		slices.SortFunc(cells, func(a, b cell) int { return cmp.Compare(a.id, b.id) })
		mix(uint64(len(cells)))
		for _, c := range cells {
			str(c.id)
			mix(c.v)
		}
	}
	return h
}
