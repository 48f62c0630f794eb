package anomaly

import (
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/atlas-stream/atlas/schemas"
)

// BotConfig tunes the bot detector. Zero fields take the defaults in
// brackets.
type BotConfig struct {
	// Impressions is how many consecutive impressions of a profile are
	// judged together [50].
	Impressions int
	// MinRate: impressions per second at or above which browsing is too
	// fast for a person scanning a row [2].
	MinRate float64
	// MaxCV: inter-arrival times this regular (coefficient of variation:
	// standard deviation / mean) are a machine's [0.2; people scanning a
	// row: about 0.4 and more across rows].
	MaxCV float64
	// MaxDwellMs: mean time in view at or below which nothing was looked at
	// [100 ms].
	MaxDwellMs float64
	// RunGap: a pause this long starts a new run of impressions [5s].
	RunGap time.Duration
	// Quiet resolves an incident after this long without bot-like
	// browsing [5m].
	Quiet time.Duration
	// MaxProfiles caps the profiles tracked per account [4], MaxAccounts the
	// accounts [1,000,000].
	MaxProfiles int
	MaxAccounts int
}

func (c BotConfig) withDefaults() BotConfig {
	defInt(&c.Impressions, 50)
	defFloat(&c.MinRate, 2)
	defFloat(&c.MaxCV, 0.2)
	defFloat(&c.MaxDwellMs, 100)
	def(&c.RunGap, 5*time.Second)
	def(&c.Quiet, 5*time.Minute)
	defInt(&c.MaxProfiles, 4)
	defInt(&c.MaxAccounts, 1_000_000)
	return c
}

// Bot detects bot-like browsing in the account view: a profile's
// impressions arriving faster than a person scans, at machine-regular
// intervals, without dwell. All three must hold.
type Bot struct {
	cfg  BotConfig
	accs *keyed[botAcc]
}

type botAcc struct {
	profiles []botProfile
}

type botProfile struct {
	id       uint64
	profile  string
	times    []int64 // ring of the last Impressions event times, grown as needed
	dwell    []int64
	n, pos   int
	runStart int64
	runCount int64
	last     int64
}

type botStats struct {
	rate, meanGap, sdGap, cv, dwell float64
	oldest                          int64
}

// NewBot returns a bot detector.
func NewBot(cfg BotConfig) *Bot {
	cfg = cfg.withDefaults()
	return &Bot{cfg: cfg, accs: newKeyed[botAcc](cfg.MaxAccounts)}
}

// Kind returns "bot".
func (*Bot) Kind() string { return KindBot }

// View returns ViewAccount.
func (*Bot) View() View { return ViewAccount }

// Wants impressions.
func (*Bot) Wants(rec schemas.Record) bool {
	b, ok := rec.(*schemas.Browse)
	return ok && b.Kind == schemas.BrowseImpression
}

// OnArrival reports true: each verdict is about one profile's
// impressions, all in one input partition, so stage one judges them as
// they arrive (see [OnArrival]). The subject stays the account; an
// account with bot-like profiles in several input partitions at once has
// an incident per partition.
func (*Bot) OnArrival() bool { return true }

// LookBack is the span of a full ring at the slowest rate judged, plus a
// run gap: older impressions never matter.
func (b *Bot) LookBack() time.Duration {
	return time.Duration(float64(b.cfg.Impressions)/b.cfg.MinRate*float64(time.Second)) + b.cfg.RunGap
}

// Quiet returns the configured quiet period.
func (b *Bot) Quiet() time.Duration { return b.cfg.Quiet }

// Observe folds an impression into its profile's ring and judges it.
func (b *Bot) Observe(e *Event) Verdict {
	v := Verdict{Subject: e.Subject, At: e.Time}
	if e.Browse == nil || e.Browse.Kind != schemas.BrowseImpression {
		return v
	}
	a := b.accs.touch(e.Subject, e.Time, func() botAcc { return botAcc{} })
	from := e.Time - ms(b.LookBack())
	a.profiles = slices.DeleteFunc(a.profiles, func(p botProfile) bool { return p.last < from })
	pid := fnv64s(e.Env.ProfileID)
	i := slices.IndexFunc(a.profiles, func(p botProfile) bool { return p.id == pid })
	if i < 0 {
		if len(a.profiles) >= b.cfg.MaxProfiles {
			a.profiles = slices.Delete(a.profiles, 0, 1)
		}
		a.profiles = append(a.profiles, botProfile{id: pid, profile: e.Env.ProfileID})
		i = len(a.profiles) - 1
	}
	p := &a.profiles[i]
	if p.n == 0 || e.Time-p.last > ms(b.cfg.RunGap) {
		p.n, p.pos, p.runStart, p.runCount = 0, 0, e.Time, 0
		p.times, p.dwell = p.times[:0], p.dwell[:0]
	}
	if len(p.times) < b.cfg.Impressions {
		// Most profiles never fill the ring: grow it only as far as needed.
		p.times, p.dwell = append(p.times, e.Time), append(p.dwell, e.Browse.DwellMs)
		p.pos = len(p.times) % b.cfg.Impressions
	} else {
		p.times[p.pos], p.dwell[p.pos] = e.Time, e.Browse.DwellMs
		p.pos = (p.pos + 1) % len(p.times)
	}
	p.n = min(p.n+1, b.cfg.Impressions)
	p.runCount++
	p.last = e.Time
	if p.n < b.cfg.Impressions {
		return v
	}
	st := b.stats(p)
	if st.rate >= b.cfg.MinRate && st.cv <= b.cfg.MaxCV && st.dwell <= b.cfg.MaxDwellMs {
		v.Active = true
		v.Severity = schemas.SeverityHigh
		if st.rate >= 2*b.cfg.MinRate {
			v.Severity = schemas.SeverityCritical
		}
		v.Score = st.rate
		v.Start, v.WindowStart = st.oldest, st.oldest
	}
	return v
}

// stats summarises a full ring: times are in event-time order from pos.
func (b *Bot) stats(p *botProfile) botStats {
	k := len(p.times)
	oldest := p.times[p.pos]
	newest := p.times[(p.pos+k-1)%k]
	var sum, sumSq, dwell float64
	prev := oldest
	for j := 1; j < k; j++ {
		t := p.times[(p.pos+j)%k]
		g := float64(t - prev)
		sum += g
		sumSq += g * g
		prev = t
	}
	for _, d := range p.dwell {
		dwell += float64(d)
	}
	st := botStats{oldest: oldest, dwell: dwell / float64(k)}
	st.meanGap = sum / float64(k-1)
	st.sdGap = math.Sqrt(math.Max(0, sumSq/float64(k-1)-st.meanGap*st.meanGap))
	if span := newest - oldest; span > 0 {
		st.rate = float64(k-1) * 1000 / float64(span)
		st.cv = st.sdGap / st.meanGap
	} else {
		st.rate, st.cv = math.Inf(1), 0
	}
	return st
}

// Advance forgets accounts without impressions in the look-back.
func (b *Bot) Advance(now int64, _ func(Verdict)) {
	b.accs.expire(now-ms(b.LookBack()), nil)
}

// Evidence gives the rate, regularity and dwell of the account's fastest
// profile.
func (b *Bot) Evidence(subject string) map[string]string {
	a := b.accs.get(subject)
	if a == nil {
		return nil
	}
	var best *botProfile
	var bs botStats
	for i := range a.profiles {
		p := &a.profiles[i]
		if p.n < b.cfg.Impressions {
			continue
		}
		if st := b.stats(p); best == nil || st.rate > bs.rate {
			best, bs = p, st
		}
	}
	if best == nil {
		return nil
	}
	rate := bs.rate
	if math.IsInf(rate, 1) {
		rate = 1e9
	}
	return map[string]string{
		"profile":     best.profile,
		"rate_per_s":  strconv.FormatFloat(rate, 'f', 2, 64),
		"interval_ms": strconv.FormatFloat(bs.meanGap, 'f', 1, 64) + "±" + strconv.FormatFloat(bs.sdGap, 'f', 1, 64),
		"cv":          strconv.FormatFloat(bs.cv, 'f', 3, 64),
		"dwell_ms":    strconv.FormatFloat(bs.dwell, 'f', 0, 64),
		"impressions": strconv.FormatInt(best.runCount, 10),
	}
}

// Size reports accounts held and an estimate of their bytes.
func (b *Bot) Size() (int, int) {
	n := 0
	b.accs.each(func(_ string, a *botAcc) {
		n += keyedOverhead + 24
		for _, p := range a.profiles {
			n += 96 + 8*(cap(p.times)+cap(p.dwell)) + len(p.profile)
		}
	})
	return b.accs.len(), n
}
