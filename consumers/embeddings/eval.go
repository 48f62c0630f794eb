package embeddings

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// This file is the offline, prequential evaluation behind `atlas eval
// recs`: the same learner as the consumer, fed from a file, judged on each
// first play before it learns from it.

// EvalKind says what an EvalEvent is.
type EvalKind uint8

// Evaluation event kinds.
const (
	// EvalPlay is a play start (a MovieLens rating is one).
	EvalPlay EvalKind = iota + 1
	// EvalFinish is the end of a play, with the fraction watched.
	EvalFinish
	// EvalIntent is a browse select or add-to-list.
	EvalIntent
)

// EvalEvent is one input of an evaluation, in stream order.
type EvalEvent struct {
	Kind     EvalKind
	Profile  string
	Title    string
	Country  string
	Fraction float64 // EvalFinish only
}

// Models that an evaluation can compare.
const (
	// EvalPopularity ranks by first plays so far.
	EvalPopularity = "popularity"
	// EvalItemKNN is incremental item-kNN: cosine over co-occurrence with
	// the profile's KNNWindow most recent titles, ties by popularity.
	EvalItemKNN = "item-knn"
	// EvalAtlas is the learner the consumer runs.
	EvalAtlas = "atlas"
	// EvalAtlasDense ranks by the dense vectors alone (taste · title).
	EvalAtlasDense = "atlas-dense"
)

// EvalConfig sets an evaluation. Zero fields take the documented defaults.
type EvalConfig struct {
	Learner Config
	// K is the cut-off of recall and NDCG. Default 10.
	K int
	// Models to compare, in the order to print. Default popularity,
	// item-knn, atlas.
	Models []string
	// KNNWindow is the item-kNN baseline's window. Default 50.
	KNNWindow int
	// RefreshEvery refreshes the dense vectors after this many first plays
	// (the consumer refreshes on a timer). Default 5,000.
	RefreshEvery int
}

func (c EvalConfig) defaults() EvalConfig {
	if c.K == 0 {
		c.K = 10
	}
	if len(c.Models) == 0 {
		c.Models = []string{EvalPopularity, EvalItemKNN, EvalAtlas}
	}
	if c.KNNWindow == 0 {
		c.KNNWindow = 50
	}
	if c.RefreshEvery == 0 {
		c.RefreshEvery = 5000
	}
	return c
}

// EvalResult is one model's numbers.
type EvalResult struct {
	Model string
	// Evaluated counts first plays; Hits those whose title was in the
	// model's top K before it learned from them.
	Evaluated, Hits int
	Recall, NDCG    float64
	// Coverage is the fraction of the titles seen in the stream that were
	// in at least one top-K list.
	Coverage float64
	// Learn is the time the model spent learning, Rank the time it spent
	// scoring every title and ranking for the judged plays.
	Learn, Rank time.Duration
	// EventsPerSec is events of the stream per second of Learn: the
	// learner's throughput. RankMs is the mean time of one ranking.
	EventsPerSec, RankMs float64
}

// Evaluator runs the prequential protocol. It is not safe for concurrent
// use.
//
// The protocol (issue 10's, so that numbers compare): events are taken in
// stream order; a play whose (profile, title) pair was seen before is
// skipped entirely; for any other play, every model ranks the titles that
// appeared in plays so far and that the profile has not played, the play
// is a hit if its title is in the top K (a title never played before is a
// miss for every model), NDCG adds 1/log2(rank+2) for a hit at 0-based
// rank; then every model learns from it. Ties rank the title that appeared
// first higher. Finish and intent events feed the atlas learner only.
type Evaluator struct {
	cfg     EvalConfig
	model   *Model // the title registry of every model; the atlas learner's
	users   map[string]*evalUser
	appear  []bool // by title index: appeared in a play
	nAppear int
	events  int64
	plays   int
	models  []*evalModel
	scratch []float64

	refreshes   int
	refreshTime time.Duration
}

type evalUser struct {
	p      Profile // the atlas learner's state
	recent []int32 // first plays, most recent last (baselines)
}

type evalModel struct {
	name        string
	res         EvalResult
	covered     []bool
	scores      func(u *evalUser, dst []float64)
	learn       func(u *evalUser, t int32)
	learnTime   time.Duration
	rankTime    time.Duration
	rankedPlays int
}

// NewEvaluator returns an evaluator of the configured models.
func NewEvaluator(cfg EvalConfig) (*Evaluator, error) {
	cfg = cfg.defaults()
	if err := cfg.Learner.Validate(); err != nil {
		return nil, err
	}
	if cfg.K < 1 || cfg.KNNWindow < 1 || cfg.RefreshEvery < 1 {
		return nil, errors.New("embeddings: K, KNNWindow and RefreshEvery must be positive")
	}
	e := &Evaluator{cfg: cfg, model: NewModel(cfg.Learner), users: map[string]*evalUser{}}
	for _, name := range cfg.Models {
		m := &evalModel{name: name, res: EvalResult{Model: name}}
		switch name {
		case EvalPopularity:
			var n []float64
			m.scores = func(_ *evalUser, dst []float64) { copy(dst, n) }
			m.learn = func(_ *evalUser, t int32) {
				for len(n) <= int(t) {
					n = append(n, 0)
				}
				n[t]++
			}
		case EvalItemKNN:
			e.addKNN(m)
		case EvalAtlas:
			m.scores = func(u *evalUser, dst []float64) { e.model.Scores(&u.p, dst) }
			m.learn = func(*evalUser, int32) {} // the shared learner is fed in Observe
		case EvalAtlasDense:
			m.scores = func(u *evalUser, dst []float64) { e.model.denseScores(&u.p, dst) }
			m.learn = func(*evalUser, int32) {}
		default:
			return nil, fmt.Errorf("embeddings: unknown model %q: want %s, %s, %s or %s", name,
				EvalPopularity, EvalItemKNN, EvalAtlas, EvalAtlasDense)
		}
		e.models = append(e.models, m)
	}
	return e, nil
}

// addKNN wires the item-kNN baseline: symmetric co-occurrence counts of a
// new title with the profile's window most recent titles, scored as
// Σ_j c(i,j)/√(n_i n_j) over that window, plus 1e-6·n_i for ties.
func (e *Evaluator) addKNN(m *evalModel) {
	w := e.cfg.KNNWindow
	var rows []table
	var n []float64
	grow := func(t int32) {
		for len(rows) <= int(t) {
			rows = append(rows, table{})
			n = append(n, 0)
		}
	}
	m.scores = func(u *evalUser, dst []float64) {
		clear(dst)
		r := u.recent[max(0, len(u.recent)-w):]
		for _, j := range r {
			if int(j) >= len(rows) || n[j] == 0 {
				continue
			}
			row := &rows[j]
			sj := math.Sqrt(n[j])
			for s, i := range row.keys {
				if i != emptyKey && int(i) < len(dst) {
					dst[i] += float64(row.vals[s]) / (sj * math.Sqrt(n[i]))
				}
			}
		}
		for i := 0; i < min(len(dst), len(n)); i++ {
			dst[i] += 1e-6 * n[i]
		}
	}
	m.learn = func(u *evalUser, t int32) {
		grow(t)
		for _, j := range u.recent[max(0, len(u.recent)-w):] {
			rows[j].add(t, 1)
			rows[t].add(j, 1)
		}
		n[t]++
	}
}

// Observe feeds one event.
func (e *Evaluator) Observe(ev EvalEvent) {
	e.events++
	u := e.users[ev.Profile]
	if u == nil {
		u = &evalUser{p: Profile{ID: ev.Profile}}
		e.users[ev.Profile] = u
	}
	t := e.model.Title(ev.Title)
	switch ev.Kind {
	case EvalFinish:
		start := time.Now()
		e.model.Finish(&u.p, t, ev.Fraction)
		e.charge(EvalAtlas, start)
		return
	case EvalIntent:
		start := time.Now()
		e.model.Intent(&u.p, t, ev.Country)
		e.charge(EvalAtlas, start)
		return
	case EvalPlay:
	default:
		return
	}
	if u.p.hasSeen(t) {
		return // a pair seen before is skipped entirely, by every model
	}
	for int(t) >= len(e.appear) {
		e.appear = append(e.appear, false)
	}
	known := e.appear[t]
	if cap(e.scratch) < len(e.appear) {
		e.scratch = make([]float64, len(e.appear), 2*len(e.appear))
	}
	s := e.scratch[:len(e.appear)]
	for _, m := range e.models {
		start := time.Now()
		m.res.Evaluated++
		if e.nAppear > 0 {
			clear(s)
			m.scores(u, s)
			rank := e.rank(u, s, t, m, known)
			if known && rank < e.cfg.K {
				m.res.Hits++
				m.res.NDCG += 1 / math.Log2(float64(rank)+2)
			}
			m.rankedPlays++
		}
		mid := time.Now()
		m.rankTime += mid.Sub(start)
		m.learn(u, t)
		m.learnTime += time.Since(mid)
	}
	start := time.Now()
	e.model.Play(&u.p, t, ev.Country, 0, e.events, nil)
	e.charge(EvalAtlas, start)
	e.charge(EvalAtlasDense, start)
	u.recent = append(u.recent, t)
	if len(u.recent) > 2*e.cfg.KNNWindow {
		u.recent = append(u.recent[:0], u.recent[len(u.recent)-e.cfg.KNNWindow:]...)
	}
	if !e.appear[t] {
		e.appear[t] = true
		e.nAppear++
	}
	e.plays++
	if e.plays%e.cfg.RefreshEvery == 0 && e.wants(EvalAtlas, EvalAtlasDense) {
		// Not charged to the learner: the consumer refreshes in the
		// background, off the path of every record.
		start := time.Now()
		e.model.Refresh()
		e.refreshes++
		e.refreshTime += time.Since(start)
	}
}

func (e *Evaluator) wants(names ...string) bool {
	for _, m := range e.models {
		for _, n := range names {
			if m.name == n {
				return true
			}
		}
	}
	return false
}

func (e *Evaluator) charge(name string, start time.Time) {
	d := time.Since(start)
	for _, m := range e.models {
		if m.name == name {
			m.learnTime += d
		}
	}
}

// rank returns the 0-based rank of target among the candidates (appeared,
// not played by u) and marks the top K as covered. When target is not a
// candidate it returns K.
func (e *Evaluator) rank(u *evalUser, s []float64, target int32, m *evalModel, known bool) int {
	k := e.cfg.K
	// top K by (score desc, index asc), for coverage
	var top [64]int32
	n := 0
	better := func(a, b int32) bool { return s[a] > s[b] || (s[a] == s[b] && a < b) }
	rank := 0
	for c := range s {
		ci := int32(c)
		if !e.appear[c] || u.p.hasSeen(ci) {
			continue
		}
		if known && ci != target && better(ci, target) {
			rank++
		}
		if k <= len(top) {
			if n < k {
				top[n] = ci
				n++
			} else if better(ci, top[n-1]) {
				top[n-1] = ci
			} else {
				continue
			}
			for x := n - 1; x > 0 && better(top[x], top[x-1]); x-- {
				top[x], top[x-1] = top[x-1], top[x]
			}
		}
	}
	for len(m.covered) < len(s) {
		m.covered = append(m.covered, false)
	}
	for _, c := range top[:n] {
		m.covered[c] = true
	}
	if !known {
		return k
	}
	return rank
}

// Results returns each model's numbers so far, in the configured order.
func (e *Evaluator) Results() []EvalResult {
	out := make([]EvalResult, 0, len(e.models))
	for _, m := range e.models {
		r := m.res
		if r.Evaluated > 0 {
			r.Recall = float64(r.Hits) / float64(r.Evaluated)
			r.NDCG /= float64(r.Evaluated)
		}
		cov := 0
		for _, c := range m.covered {
			if c {
				cov++
			}
		}
		if e.nAppear > 0 {
			r.Coverage = float64(cov) / float64(e.nAppear)
		}
		r.Learn, r.Rank = m.learnTime, m.rankTime
		if m.learnTime > 0 {
			r.EventsPerSec = float64(e.events) / m.learnTime.Seconds()
		}
		if m.rankedPlays > 0 {
			r.RankMs = m.rankTime.Seconds() * 1000 / float64(m.rankedPlays)
		}
		out = append(out, r)
	}
	return out
}

// Refreshes returns how many dense refreshes ran and their total time.
func (e *Evaluator) Refreshes() (int, time.Duration) { return e.refreshes, e.refreshTime }

// Events returns how many events were observed, and how many profiles and
// titles they named.
func (e *Evaluator) Events() (events int64, profiles, titles int) {
	return e.events, len(e.users), e.nAppear
}

// denseScores scores by the dense vectors alone, ties by popularity.
func (m *Model) denseScores(p *Profile, dst []float64) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	clear(dst)
	n := min(len(dst), len(m.ids))
	for i := 0; i < n; i++ {
		dst[i] = m.cfg.PopWeight * m.logPop[i]
	}
	if m.dense == nil {
		return
	}
	if v := m.tasteLocked(p, nil); v != nil {
		m.dense.addScores(dst[:n], v, 1)
	}
}
