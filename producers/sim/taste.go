package sim

import (
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
)

// The planted taste model (see the package doc, "Taste"). The catalog is
// made of taste communities: titles of one main genre that the same
// viewers watch ("drama-2"), some of them in one language ("drama-ko-1").
// A profile has a few favourite communities; each session it is in the
// mood for one of them (its intent) or for anything popular, and picks
// by appeal within it.

// genreShare is the relative size of each genre's audience, and of its
// share of the catalog (same order as genres).
var genreShare = []float64{14, 14, 9, 10, 5, 6, 7, 5, 5, 8, 5, 4, 4, 4}

const (
	genreAnimation = 8
	genreFamily    = 11
	genreAnime     = 13
)

// langGroup is a language of the catalog's countries of origin, and the
// home countries whose viewers seek its titles out.
type langGroup struct {
	name    string
	origins []string
	homes   []string
	w       float64 // share of the catalog's local communities
}

var langs = []langGroup{
	{"es", []string{"ES", "MX"}, []string{"ES", "MX", "AR"}, 8},
	{"pt", []string{"BR"}, []string{"BR"}, 3},
	{"fr", []string{"FR"}, []string{"FR"}, 5},
	{"de", []string{"DE"}, []string{"DE"}, 4},
	{"it", []string{"IT"}, []string{"IT"}, 2},
	{"nordic", []string{"SE", "NO"}, []string{"SE", "NO"}, 3},
	{"tr", []string{"TR"}, []string{"TR"}, 2},
	{"hi", []string{"IN"}, []string{"IN"}, 8},
	{"ko", []string{"KR"}, []string{"KR"}, 8},
	{"ja", []string{"JP"}, []string{"JP"}, 7},
}

const (
	langKo = 8
	langJa = 9
)

// srcExplore is the intent of a session with nothing particular in mind:
// anything popular. Other intents are community indices.
const srcExplore = -1

// Taste parameters; the package doc quotes what they produce.
const (
	// titlesPerCommunity sets the number of communities: the catalog's
	// titles over it, at least one per genre.
	titlesPerCommunity = 30
	// localCommunity is the chance that a community (other than anime,
	// which is Japanese at animeJapanese) is in one language.
	localCommunity, animeJapanese = 0.25, 0.8
	// appealZipf is the exponent of the Zipf law of appeal within a
	// community.
	appealZipf = 1.0
	// exploreMin and exploreMax bound a profile's share of sessions
	// without a particular intent (uniform between them).
	exploreMin, exploreMax = 0.03, 0.12
	// sameGenre is the chance that a profile's second or third favourite
	// community shares the main genre of one it already has.
	sameGenre = 0.5
	// localLang is the chance that a viewer in a country with its own
	// communities follows one of them; langFan that a viewer elsewhere
	// follows a Korean or Japanese one; langWeight the share of the
	// intents of such a viewer that go to it.
	localLang, langFan, langWeight = 0.5, 0.1, 0.3
	// kidsProfile is the chance that the last profile of an account of
	// two or more is a child's (animation and family communities).
	kidsProfile = 0.35
	// adjacent is the affinity of a title outside the profile's
	// communities that shares the main genre of one of them.
	adjacent = 0.3
	// followSeries is the chance that a completed episode leaves its
	// series in the profile's continue-watching row for the next one.
	followSeries = 0.8
)

// community is a cluster of titles watched by the same viewers.
type community struct {
	name  string
	genre int
	lang  int     // index in langs, -1 international
	share float64 // chance to be a favourite, and share of the catalog
	cent  vec     // latent centroid of its titles
}

// source is one place a profile's intents come from.
type source struct {
	src int     // community index
	w   float64 // share of the profile's intents
}

// buildCommunities draws the communities of a catalog of n titles.
func (w *world) buildCommunities(r *rand.Rand, n int) {
	genreCDF := cumulative(len(genres), func(i int) float64 { return genreShare[i] })
	langCDF := cumulative(len(langs), func(i int) float64 { return langs[i].w })
	nc := max(len(genres), n/titlesPerCommunity)
	perGenre := make([]int, len(genres))
	for k := 0; k < nc; k++ {
		c := community{genre: k, lang: -1}
		if k >= len(genres) {
			c.genre = pickWeighted(r, genreCDF)
		}
		switch {
		case c.genre == genreAnime:
			if r.Float64() < animeJapanese {
				c.lang = langJa
			}
		case r.Float64() < localCommunity:
			c.lang = pickWeighted(r, langCDF)
		}
		perGenre[c.genre]++
		c.share = 0.5 + r.Float64()
		for i := range c.cent {
			c.cent[i] = w.cent[c.genre][i] + float32(0.5*r.NormFloat64())
		}
		c.cent.normalize()
		w.comms = append(w.comms, c)
	}
	seen := make([]int, len(genres))
	for k := range w.comms {
		c := &w.comms[k]
		c.share *= genreShare[c.genre] / float64(perGenre[c.genre])
		seen[c.genre]++
		c.name = genres[c.genre]
		if c.lang >= 0 {
			c.name += "-" + langs[c.lang].name
		}
		c.name += "-" + strconv.Itoa(seen[c.genre])
	}
	w.commCDF = cumulative(len(w.comms), func(i int) float64 { return w.comms[i].share })
}

// buildAppeal sets each title's appeal, a Zipf weight (exponent
// appealZipf) over a random rank within its community, and indexes the
// titles of each community with their cumulative appeal.
func (w *world) buildAppeal(ranks []int) {
	w.srcTitles = make([][]int32, len(w.comms))
	w.srcCDF = make([][]float64, len(w.comms))
	for _, t := range w.titles {
		w.srcTitles[t.comm] = append(w.srcTitles[t.comm], int32(t.idx))
	}
	for c, list := range w.srcTitles {
		slices.SortFunc(list, func(a, b int32) int { return ranks[a] - ranks[b] })
		sum := 0.0
		for k, ti := range list {
			t := w.titles[ti]
			t.appeal /= math.Pow(float64(k+1), appealZipf)
			sum += t.appeal
			w.srcCDF[c] = append(w.srcCDF[c], sum)
		}
	}
}

// buildPopularity sets each title's popularity once the population has
// its tastes: the share of the population's intents that go to its
// community (plus a little general interest, so that every community is
// watched by some) times its share of the community's appeal.
func (w *world) buildPopularity() {
	audience := make([]float64, len(w.comms))
	total := 0.0
	for _, c := range w.comms {
		total += c.share
	}
	for c := range audience {
		audience[c] = 0.02 * w.comms[c].share / total
	}
	for _, p := range w.profiles {
		for _, s := range p.src {
			audience[s.src] += s.w / (1 - p.explore) / float64(len(w.profiles))
		}
	}
	for c, list := range w.srcTitles {
		z := w.srcCDF[c][len(list)-1]
		for _, ti := range list {
			w.titles[ti].pop = audience[c] * w.titles[ti].appeal / z
		}
	}
}

// plantTaste draws a profile's favourite communities and its share of
// exploration. homeCC is the account's country; kids marks a child's
// profile.
func (w *world) plantTaste(r *rand.Rand, pr *profile, homeCC string, kids bool) {
	explore := exploreMin + (exploreMax-exploreMin)*r.Float64()
	var src []source
	has := func(c int) bool { return slices.ContainsFunc(src, func(s source) bool { return s.src == c }) }
	// pick draws a community by share among those that ok accepts; -1
	// when none does.
	pick := func(ok func(c *community) bool) int {
		sum := 0.0
		for k := range w.comms {
			if !has(k) && ok(&w.comms[k]) {
				sum += w.comms[k].share
			}
		}
		u := r.Float64() * sum
		last := -1
		for k := range w.comms {
			if !has(k) && ok(&w.comms[k]) {
				last = k
				if u -= w.comms[k].share; u < 0 {
					return k
				}
			}
		}
		return last
	}
	// Favourites are international communities (anime is, wherever it is
	// made); a language community comes in below, for its viewers.
	intl := func(c *community) bool { return c.lang < 0 || c.genre == genreAnime }
	// One to three favourites, 20/50/30 %; two for a child.
	n := 1
	switch u := r.Float64(); {
	case kids:
		n = 2
	case u >= 0.7:
		n = 3
	case u >= 0.2:
		n = 2
	}
	for len(src) < n {
		c := -1
		switch {
		case kids:
			c = pick(func(c *community) bool { return c.genre == genreAnimation || c.genre == genreFamily })
		case len(src) > 0 && r.Float64() < sameGenre:
			g := w.comms[src[r.IntN(len(src))].src].genre
			c = pick(func(c *community) bool { return c.genre == g && intl(c) })
		}
		if c < 0 {
			c = pick(intl)
		}
		if c < 0 {
			break // fewer communities than favourites
		}
		src = append(src, source{c, (0.7 + 0.6*r.Float64()) / float64(len(src)+1)})
	}
	if !kids {
		lang := -1
		for l, lg := range langs {
			if slices.Contains(lg.homes, homeCC) && r.Float64() < localLang {
				lang = l
			}
		}
		if lang < 0 && r.Float64() < langFan {
			lang = langKo
			if r.IntN(2) == 0 {
				lang = langJa
			}
		}
		if lang >= 0 {
			if c := pick(func(c *community) bool { return c.lang == lang }); c >= 0 {
				sum := 0.0
				for _, s := range src {
					sum += s.w
				}
				src = append(src, source{c, sum * langWeight / (1 - langWeight)})
			}
		}
	}
	sum := 0.0
	for _, s := range src {
		sum += s.w
	}
	wmax := 0.0
	for i := range src {
		src[i].w *= (1 - explore) / sum
		wmax = max(wmax, src[i].w)
	}
	pr.src = src
	pr.explore = explore
	pr.srcMax = wmax
	pr.srcCDF = cumulative(len(src)+1, func(i int) float64 {
		if i == len(src) {
			return explore
		}
		return src[i].w
	})
	// The latent taste vector follows the communities, for the truth
	// file.
	for _, s := range src {
		for k := range pr.taste {
			pr.taste[k] += float32(s.w) * w.comms[s.src].cent[k]
		}
	}
	for k := range pr.taste {
		pr.taste[k] += float32(0.1 * r.NormFloat64())
	}
	pr.taste.normalize()
}

// intent draws the intent of a session: one of the profile's communities,
// or srcExplore.
func (p *profile) intent(r *rand.Rand) int {
	i := pickWeighted(r, p.srcCDF)
	if i == len(p.src) {
		return srcExplore
	}
	return p.src[i].src
}

// sampleFrom draws a title of community c by appeal within it; anything
// by popularity for srcExplore.
func (w *world) sampleFrom(r *rand.Rand, c int) int {
	if c < 0 || len(w.srcTitles[c]) == 0 {
		return w.sampleTitle(r)
	}
	return int(w.srcTitles[c][pickWeighted(r, w.srcCDF[c])])
}

// affinity is how much p likes title ti, 0..1: for a title of one of its
// communities, from 0.6 (its least liked) to 1 (its most liked); adjacent
// for one that shares the main genre of one of them; else 0.
func (g *Generator) affinity(p *profile, ti int) float64 {
	t := g.w.titles[ti]
	best := 0.0
	for _, s := range p.src {
		switch {
		case t.comm == s.src:
			best = max(best, 0.6+0.4*s.w/p.srcMax)
		case g.w.comms[s.src].genre == int(t.gs[0]):
			best = max(best, adjacent)
		}
	}
	return best
}

// tasteWeight is the planted chance, up to a constant, that the profile's
// next pick is title ti if every title were on offer: its appeal within
// its community times the community's share of the profile's intents,
// plus exploration by popularity. An oracle ranks by it.
func (w *world) tasteWeight(p *profile, ti int) float64 {
	t := w.titles[ti]
	v := p.explore * t.pop / w.popCDF[len(w.popCDF)-1]
	for _, s := range p.src {
		if t.comm == s.src {
			cdf := w.srcCDF[s.src]
			v += s.w * t.appeal / cdf[len(cdf)-1]
		}
	}
	return v
}
