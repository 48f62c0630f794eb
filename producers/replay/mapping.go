package replay

import (
	"math"
	"strconv"
	"time"

	"github.com/atlas-stream/atlas/schemas"
)

// This file holds every synthetic choice of a replay: how a rating becomes a
// watch fraction, how long a title is, and who a MovieLens user is (country,
// device, network). All of them are pure functions of their arguments, so
// that the events of one rating never depend on the order of the log or on
// the other rows.

// CompleteFraction is the watch fraction from which a play ends with a
// complete event rather than a stop.
const CompleteFraction = 0.9

// Bounds of the watch fraction, so that every play has some content.
const (
	minFraction = 0.01
	maxFraction = 1.0
)

// betaConcentration is α+β of the watch-fraction distribution: larger is
// narrower around the mean.
const betaConcentration = 12

// MeanFraction returns the mean watch fraction of a rating of stars (0.5 to
// 5): it rises linearly from 0.15 at half a star to 0.95 at five stars.
func MeanFraction(stars float64) float64 {
	return 0.15 + (stars-0.5)*(0.80/4.5)
}

// WatchFraction returns the fraction of its title that the user watched
// before rating it: a draw from Beta(12·m, 12·(1−m)) with m =
// [MeanFraction] of the rating, clamped to [0.01, 1]. The draw comes from a
// generator seeded by (seed, user, item) alone, so a rating always maps to
// the same fraction for a seed, whatever else is in the log and in
// whichever order it is replayed; a different seed gives an independent
// draw.
//
// The mean fraction per rating is MeanFraction's; the share of plays that
// complete (fraction ≥ 0.9) is about 0.84 at 5 stars, 0.42 at 4.5, 0.13 at
// 4, 0.03 at 3.5 and under 0.01 at 3 stars and below (measured over 100,000
// draws per rating; TestWatchFractionMatchesTheDocumentedDistribution
// checks it).
func WatchFraction(seed uint64, in Interaction) float64 {
	r := newRNG(seed, uint64(in.User)<<32|uint64(in.Item))
	m := MeanFraction(in.Stars())
	f := r.beta(betaConcentration*m, betaConcentration*(1-m))
	return min(max(f, minFraction), maxFraction)
}

// TitleDuration returns the running time of a MovieLens title: 80 to 150
// minutes, to the second, a pure function of the item id (not of the seed),
// so that the catalog and the plays agree across replays.
func TitleDuration(item uint32) time.Duration {
	const lo, hi = 80 * 60, 150 * 60 // seconds
	h := mix64(uint64(item) ^ 0x5ee1_0f_d17a7104)
	return time.Duration(lo+int64(h%(hi-lo+1))) * time.Second
}

// Viewer is the synthetic context of a MovieLens user: MovieLens records
// none, but every Atlas event needs a country, a device and a network.
// Each user has one account, one profile and one device.
type Viewer struct {
	Country    string
	DeviceType schemas.DeviceType
	CDN        string
	ISP        string
	// BitrateKbps is the steady bitrate of the device type.
	BitrateKbps int64
}

// weighted is a small table of choices with integer weights that sum to 100.
type weighted[T any] []struct {
	v T
	w uint64
}

func (t weighted[T]) pick(h uint64) T {
	h %= 100
	for _, c := range t {
		if h < c.w {
			return c.v
		}
		h -= c.w
	}
	panic("BUG: weights of a viewer table do not sum to 100")
}

// countries is a plausible subscriber mix of a global service.
var countries = weighted[string]{
	{"US", 30}, {"BR", 8}, {"GB", 8}, {"DE", 8}, {"FR", 6}, {"CA", 6}, {"MX", 6},
	{"IN", 6}, {"JP", 5}, {"ES", 5}, {"IT", 4}, {"AU", 4}, {"KR", 4},
}

var deviceTypes = weighted[schemas.DeviceType]{
	{schemas.DeviceTV, 45}, {schemas.DeviceMobile, 20}, {schemas.DeviceDesktop, 12},
	{schemas.DeviceTablet, 10}, {schemas.DeviceWeb, 8}, {schemas.DeviceConsole, 5},
}

var cdns = weighted[string]{{"cdn-a", 50}, {"cdn-b", 30}, {"cdn-c", 20}}

var bitrates = map[schemas.DeviceType]int64{
	schemas.DeviceTV: 8000, schemas.DeviceConsole: 8000, schemas.DeviceDesktop: 5000,
	schemas.DeviceWeb: 4000, schemas.DeviceTablet: 3000, schemas.DeviceMobile: 2000,
}

// ViewerOf returns the viewer of a MovieLens user: country, device type,
// CDN and one of three ISPs of the country ("us-isp-2"), each from an
// independent hash of the user id. It does not depend on the seed: the seed
// varies behaviour, not identities.
func ViewerOf(user uint32) Viewer {
	u := uint64(user)
	v := Viewer{
		Country:    countries.pick(mix64(u ^ 0xc0_1e)),
		DeviceType: deviceTypes.pick(mix64(u ^ 0xde_71ce)),
		CDN:        cdns.pick(mix64(u ^ 0xcd_17)),
	}
	isp := mix64(u^0x15b)%3 + 1
	v.ISP = lower2(v.Country) + "-isp-" + strconv.FormatUint(isp, 10)
	v.BitrateKbps = bitrates[v.DeviceType]
	return v
}

func lower2(cc string) string {
	return string([]byte{cc[0] | 0x20, cc[1] | 0x20})
}

// Identifiers of the events of a replay. They are deterministic, so that a
// second replay of the same log produces the same ids and consumers
// deduplicate it, and they carry the MovieLens ids so that the (user, item,
// time) triple is recoverable from any event.

// ProfileID returns "ml-u<user>", the Kafka key of the user's events.
func ProfileID(user uint32) string { return "ml-u" + strconv.FormatUint(uint64(user), 10) }

// AccountID returns "ml-a<user>": one account per MovieLens user.
func AccountID(user uint32) string { return "ml-a" + strconv.FormatUint(uint64(user), 10) }

// DeviceID returns "ml-d<user>": one device per MovieLens user.
func DeviceID(user uint32) string { return "ml-d" + strconv.FormatUint(uint64(user), 10) }

// TitleID returns "ml-m<item>".
func TitleID(item uint32) string { return "ml-m" + strconv.FormatUint(uint64(item), 10) }

// SessionID returns "ml-s<user>-<item>-<time>", the session of the play of
// one rating.
func SessionID(in Interaction) string {
	return string(appendTriple(append(make([]byte, 0, 40), "ml-s"...), in))
}

// appendTriple appends "<user>-<item>-<time>".
func appendTriple(b []byte, in Interaction) []byte {
	b = strconv.AppendUint(b, uint64(in.User), 10)
	b = append(b, '-')
	b = strconv.AppendUint(b, uint64(in.Item), 10)
	b = append(b, '-')
	return strconv.AppendUint(b, uint64(in.Time), 10)
}

// mix64 is the splitmix64 finaliser: a fast, well-spread hash of a word.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// rng is a splitmix64 stream. It is written out here rather than taken from
// math/rand/v2 so that the watch fractions, which tests and evaluations
// pin, cannot change with a Go release. They are bit-identical wherever the
// compiler does not fuse multiply-adds (amd64 at the default GOAMD64=v1);
// on arm64 and friends the last bits of a fraction may differ.
type rng struct{ s uint64 }

func newRNG(seed, stream uint64) *rng {
	return &rng{s: mix64(seed^0x243f6a8885a308d3) ^ mix64(stream+0x13198a2e03707344)}
}

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	return mix64(r.s)
}

// float returns a uniform number in the open interval (0, 1).
func (r *rng) float() float64 {
	return (float64(r.next()>>11) + 0.5) / (1 << 53)
}

// normal returns a standard normal draw (Box–Muller, one of the pair).
func (r *rng) normal() float64 {
	return math.Sqrt(-2*math.Log(r.float())) * math.Cos(2*math.Pi*r.float())
}

// gamma returns a Gamma(a, 1) draw, a > 0 (Marsaglia and Tsang 2000; for
// a < 1 the a+1 draw is scaled by U^(1/a)).
func (r *rng) gamma(a float64) float64 {
	if a < 1 {
		return r.gamma(a+1) * math.Pow(r.float(), 1/a)
	}
	d := a - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := r.normal()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := r.float()
		if u < 1-0.0331*x*x*x*x || math.Log(u) < 0.5*x*x+d*(1-v+math.Log(v)) {
			return d * v
		}
	}
}

// beta returns a Beta(a, b) draw.
func (r *rng) beta(a, b float64) float64 {
	x := r.gamma(a)
	y := r.gamma(b)
	return x / (x + y)
}
