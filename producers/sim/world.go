package sim

import (
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/atlas-stream/atlas/producers/sim/geo"
	"github.com/atlas-stream/atlas/schemas"
)

// Dim is the length of the latent taste and title vectors.
const Dim = 8

type vec [Dim]float32

func (a *vec) normalize() {
	var s float64
	for _, x := range a {
		s += float64(x) * float64(x)
	}
	if s == 0 {
		a[0] = 1
		return
	}
	n := float32(1 / math.Sqrt(s))
	for i := range a {
		a[i] *= n
	}
}

// Genres of the catalog; each has a latent centroid.
var genres = []string{"drama", "comedy", "thriller", "action", "documentary", "sci-fi", "romance", "horror", "animation", "crime", "fantasy", "family", "reality", "anime"}

// Countries of origin of titles, with weights.
var origins = []struct {
	cc string
	w  float64
}{{"US", 40}, {"GB", 10}, {"KR", 8}, {"IN", 8}, {"JP", 7}, {"FR", 5}, {"ES", 5}, {"DE", 4}, {"BR", 3}, {"MX", 3}, {"IT", 2}, {"TR", 2}, {"SE", 2}, {"NO", 1}}

// Rows of the browse UI, in the order a viewer scrolls them. "search" holds
// search results.
var rows = []string{"continue-watching", "trending", "top-10", "new-releases", "top-picks", "because-you-watched", "award-winning", "search"}

const (
	rowContinue = iota
	rowTrending
	rowTop10
	rowNew
	rowTopPicks
	rowBecause
	rowAward
	rowSearch
)

// CDNs serving the streams.
var cdns = []string{"cdn-a", "cdn-b", "cdn-c"}

var deviceWeights = []struct {
	t   schemas.DeviceType
	w   float64
	app string
}{
	{schemas.DeviceTV, 40, "7.3.1"},
	{schemas.DeviceMobile, 25, "8.12.0"},
	{schemas.DeviceTablet, 8, "8.12.0"},
	{schemas.DeviceDesktop, 8, "5.4.2"},
	{schemas.DeviceWeb, 14, "web-2026.10"},
	{schemas.DeviceConsole, 5, "3.9.0"},
}

// Plans and their concurrent stream limits.
var plans = []struct {
	name    string
	streams int
	w       float64
}{{"basic", 1, 25}, {"standard", 2, 45}, {"premium", 4, 30}}

var nameWords1 = []string{"The Silent", "A Distant", "The Last", "Broken", "Midnight", "The Hidden", "Golden", "Northern", "The Long", "Crimson", "Wild", "The Lost", "Electric", "Quiet", "Iron", "Paper"}
var nameWords2 = []string{"Harbor", "Winter", "Kingdom", "Signal", "Garden", "Frontier", "Letters", "Empire", "River", "Protocol", "Summer", "Machine", "Orchard", "Tide", "Witness", "Circuit"}

type title struct {
	idx       int
	id        string
	name      string
	genres    []string // the first is its main genre
	gs        []uint8  // indices of genres
	comm      int      // taste community (taste.go)
	country   string
	release   string
	releaseMs int64
	durMs     int64
	typ       schemas.TitleType
	vec       vec
	appeal    float64 // Zipf weight within its main genre
	pop       float64 // expected share of the population's picks, up to a constant
	arts      []string
	artFactor []float64
	artBase   int // global index of arts[0]
}

type device struct {
	id     string
	typ    schemas.DeviceType
	dt     int // index in schemas.DeviceTypes
	app    string
	mobile bool
	net    string // ClientNet
	slot   int    // ISP slot of net
}

type account struct {
	idx      int
	id       string
	plan     string
	streams  int
	city     int
	slot     int // fixed-line ISP slot at home
	block    int // home /24 block
	devices  []*device
	profiles []*profile
	active   int   // sessions running
	reserved int64 // no background sessions before this time (incidents)
}

type histEntry struct {
	title int
	pos   int64
}

type profile struct {
	idx     int
	id      string
	acc     *account
	taste   vec
	devices []*device
	part    int
	active  bool
	history []histEntry // in-progress titles, newest last, at most 5
	last    int         // title of the latest playback started, -1 none

	// The planted taste (taste.go).
	src     []source  // favourite genres and language
	srcCDF  []float64 // cumulative weights of src, then of exploring
	srcMax  float64   // weight of the most liked source
	explore float64
}

// world is everything fixed at the start of a run: catalog and population.
type world struct {
	titles    []*title
	popCDF    []float64 // cumulative Zipf weights, by title index
	top10     []int
	recent    []int       // titles released in the year before the epoch
	cent      []vec       // genre centroids
	comms     []community // taste communities (taste.go)
	commCDF   []float64   // their cumulative shares
	srcTitles [][]int32   // titles of each community
	srcCDF    [][]float64 // their cumulative appeal within it
	arts      []string
	accounts  []*account
	profiles  []*profile
	countries []string // distinct countries of geo.Cities, in order
	cityCC    []int    // country index of each city
	isps      []string // country index*4 + slot
	cityCDF   []float64
	cdnW      [][3]float64 // by ISP index
	netKey    uint64
}

func (w *world) countryIdx(cc string) int { return slices.Index(w.countries, cc) }

func pickWeighted(r *rand.Rand, cdf []float64) int {
	u := r.Float64() * cdf[len(cdf)-1]
	i, _ := slices.BinarySearch(cdf, u)
	if i >= len(cdf) {
		i = len(cdf) - 1
	}
	return i
}

func cumulative(n int, w func(i int) float64) []float64 {
	c := make([]float64, n)
	s := 0.0
	for i := range c {
		s += w(i)
		c[i] = s
	}
	return c
}

// clientNet renders a ClientNet as the ingest gateway does: the /24 prefix
// and 12 hex digits of a keyed hash of the full address.
func clientNet(key uint64, prefix string, host int) string {
	h := mix64(key ^ fnv64(prefix) ^ uint64(host)*0x9e3779b97f4a7c15)
	const hexd = "0123456789abcdef"
	b := make([]byte, 0, len(prefix)+16)
	b = append(b, prefix...)
	b = append(b, "/24#"...)
	for i := 0; i < 12; i++ {
		b = append(b, hexd[(h>>(60-4*i))&15])
	}
	return string(b)
}

func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// mix64 is splitmix64's finaliser.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// partitionOf is the partition of a key: kafka-go's Murmur2Balancer over
// partitions 0..n-1, exactly what the Writer does.
func partitionOf(key string, parts []int) int {
	return (&kafka.Murmur2Balancer{}).Balance(kafka.Message{Key: []byte(key)}, parts...)
}

func buildWorld(cfg Config, r *rand.Rand) *world {
	w := &world{netKey: r.Uint64()}
	cities := geo.Cities()
	for _, c := range cities {
		if !slices.Contains(w.countries, c.Country) {
			w.countries = append(w.countries, c.Country)
		}
	}
	for _, c := range cities {
		w.cityCC = append(w.cityCC, w.countryIdx(c.Country))
	}
	for _, cc := range w.countries {
		for slot := 0; slot < 4; slot++ {
			w.isps = append(w.isps, geo.ISP(cc, slot))
			var cw [3]float64
			for k := range cw {
				cw[k] = 0.3 + r.Float64()*r.Float64()*3
			}
			w.cdnW = append(w.cdnW, cw)
		}
	}
	w.cityCDF = cumulative(len(cities), func(i int) float64 { return cities[i].Weight })

	// Genre centroids.
	cent := make([]vec, len(genres))
	for g := range cent {
		for i := range cent[g] {
			cent[g][i] = float32(r.NormFloat64())
		}
		cent[g].normalize()
	}
	w.cent = cent
	w.buildCommunities(r, cfg.Titles)
	originCDF := cumulative(len(origins), func(i int) float64 { return origins[i].w })
	epochMs := cfg.Epoch.UnixMilli()

	// Catalog.
	ranks := r.Perm(cfg.Titles)
	for i := 0; i < cfg.Titles; i++ {
		t := &title{idx: i, id: "tt-" + pad(i+1, 5)}
		t.name = nameWords1[r.IntN(len(nameWords1))] + " " + nameWords2[r.IntN(len(nameWords2))]
		if r.IntN(3) == 0 {
			t.name += " " + strconv.Itoa(2+r.IntN(3))
		}
		// A community, as common in the catalog as among favourites: its
		// main genre, up to two others, its language if it has one.
		t.comm = pickWeighted(r, w.commCDF)
		cm := &w.comms[t.comm]
		ng := 1 + r.IntN(3)
		gi := []int{cm.genre}
		for len(gi) < ng {
			if g := r.IntN(len(genres)); !slices.Contains(gi, g) {
				gi = append(gi, g)
			}
		}
		t.vec = cm.cent
		for k, g := range gi {
			t.genres = append(t.genres, genres[g])
			t.gs = append(t.gs, uint8(g))
			if k > 0 {
				for i := range t.vec {
					t.vec[i] += 0.3 * cent[g][i]
				}
			}
		}
		for i := range t.vec {
			t.vec[i] += float32(0.3 * r.NormFloat64())
		}
		t.vec.normalize()
		if cm.lang >= 0 {
			o := langs[cm.lang].origins
			t.country = o[r.IntN(len(o))]
		} else {
			t.country = origins[pickWeighted(r, originCDF)].cc
		}
		// Release: mostly recent; a tail back to the 1970s.
		ageDays := int64(r.ExpFloat64() * 5 * 365)
		if ageDays > 56*365 {
			ageDays = 56 * 365
		}
		if r.IntN(25) == 0 {
			ageDays = int64(r.IntN(60))
		}
		t.releaseMs = epochMs - (ageDays+1)*int64(24*time.Hour/time.Millisecond)
		t.release = time.UnixMilli(t.releaseMs).UTC().Format(time.DateOnly)
		if r.Float64() < 0.35 {
			t.typ = schemas.TitleSeries
			t.durMs = int64(22+r.IntN(39)) * 60_000
		} else {
			t.typ = schemas.TitleFilm
			t.durMs = int64(80+r.IntN(91))*60_000 + int64(r.IntN(60))*1000
		}
		t.appeal = 1
		if ageDays < 60 {
			t.appeal = 4 // new releases get a push
		}
		na := 1 + r.IntN(3)
		t.artBase = len(w.arts)
		for k := 0; k < na; k++ {
			a := "art-" + pad(i+1, 5) + "-" + string(rune('a'+k))
			t.arts = append(t.arts, a)
			t.artFactor = append(t.artFactor, 0.6+0.8*r.Float64())
			w.arts = append(w.arts, a)
		}
		w.titles = append(w.titles, t)
		if ageDays < 365 {
			w.recent = append(w.recent, i)
		}
	}
	w.buildAppeal(ranks)

	// Population.
	parts := make([]int, cfg.Partitions)
	for i := range parts {
		parts[i] = i
	}
	devCDF := cumulative(len(deviceWeights), func(i int) float64 { return deviceWeights[i].w })
	planCDF := cumulative(len(plans), func(i int) float64 { return plans[i].w })
	profCDF := cumulative(5, func(i int) float64 { return []float64{35, 30, 20, 10, 5}[i] })
	for len(w.profiles) < cfg.Profiles {
		a := &account{idx: len(w.accounts), id: "acc-" + strconv.Itoa(len(w.accounts)+1)}
		p := plans[pickWeighted(r, planCDF)]
		a.plan, a.streams = p.name, p.streams
		a.city = pickWeighted(r, w.cityCDF)
		a.slot = r.IntN(2)
		a.block = r.IntN(1 << 14)
		home := geo.Prefix(a.city, a.slot, a.block)
		homeNet := clientNet(w.netKey, home, 2+r.IntN(250))
		nd := 1 + r.IntN(4)
		for k := 0; k < nd; k++ {
			dw := deviceWeights[pickWeighted(r, devCDF)]
			d := &device{id: "dev-" + strconv.Itoa(a.idx+1) + "-" + strconv.Itoa(k+1), typ: dw.t, app: dw.app,
				dt: slices.Index(schemas.DeviceTypes, dw.t), net: homeNet, slot: a.slot}
			if dw.t == schemas.DeviceMobile && r.IntN(2) == 0 {
				d.mobile = true
				d.slot = geo.SlotMobile
				d.net = clientNet(w.netKey, geo.Prefix(a.city, geo.SlotMobile, r.IntN(1<<14)), 1+r.IntN(254))
			}
			a.devices = append(a.devices, d)
		}
		np := 1 + pickWeighted(r, profCDF)
		for k := 0; k < np && len(w.profiles) < cfg.Profiles; k++ {
			pr := &profile{idx: len(w.profiles), id: "pro-" + strconv.Itoa(a.idx+1) + "-" + strconv.Itoa(k+1), acc: a, last: -1}
			kids := np >= 2 && k == np-1 && r.Float64() < kidsProfile
			w.plantTaste(r, pr, w.countries[w.cityCC[a.city]], kids)
			// A profile mostly uses one or two of the account's devices.
			pr.devices = append(pr.devices, a.devices[r.IntN(len(a.devices))])
			if len(a.devices) > 1 && r.IntN(2) == 0 {
				pr.devices = append(pr.devices, a.devices[r.IntN(len(a.devices))])
			}
			pr.part = partitionOf(pr.id, parts)
			a.profiles = append(a.profiles, pr)
			w.profiles = append(w.profiles, pr)
		}
		w.accounts = append(w.accounts, a)
	}
	// Popularity follows the planted tastes.
	w.buildPopularity()
	w.popCDF = cumulative(len(w.titles), func(i int) float64 { return w.titles[i].pop })
	byPop := make([]int, len(w.titles))
	for i := range byPop {
		byPop[i] = i
	}
	slices.SortStableFunc(byPop, func(a, b int) int {
		switch pa, pb := w.titles[a].pop, w.titles[b].pop; {
		case pa > pb:
			return -1
		case pa < pb:
			return 1
		}
		return 0
	})
	w.top10 = byPop[:10]
	if len(w.recent) < 10 {
		w.recent = append(w.recent, byPop[10:20]...)
	}
	return w
}

// pad renders n with at least width digits.
func pad(n, width int) string {
	s := strconv.Itoa(n)
	for len(s) < width {
		s = "0" + s
	}
	return s
}

// catalogRecords returns the catalog as records, in title order.
func (w *world) catalogRecords() []*schemas.Title {
	out := make([]*schemas.Title, len(w.titles))
	for i, t := range w.titles {
		out[i] = &schemas.Title{TitleID: t.id, Name: t.name, Genres: t.genres, Country: t.country,
			ReleaseDate: t.release, DurationSec: t.durMs / 1000, Type: t.typ}
	}
	return out
}

// sampleTitle draws a title by Zipf popularity.
func (w *world) sampleTitle(r *rand.Rand) int { return pickWeighted(r, w.popCDF) }
