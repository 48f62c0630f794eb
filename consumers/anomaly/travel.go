package anomaly

import (
	"cmp"
	"container/heap"
	"slices"
	"strconv"
	"time"

	"github.com/atlas-stream/atlas/schemas"
)

// TravelConfig tunes the impossible-travel detector. Zero fields take the
// defaults in brackets.
type TravelConfig struct {
	// LookBack is how long the last place of an account is remembered
	// [1h]: a jump after a longer gap is not compared. A restart replays
	// the re-key topic over the longest look-back of all detectors, so
	// this one sets the replay (see the package doc).
	LookBack time.Duration
	// MaxKmh is the fastest credible travel [1000 km/h, an airliner].
	MaxKmh float64
	// MinKm ignores jumps shorter than this [500 km]: geo-IP is coarse.
	MinKm float64
	// Hold is how long a jump waits before it is reported [10m]. A jump is
	// dropped when, before Hold has passed, the account shows a third place
	// in the look-back: that is account sharing (the sharing detector's
	// incident), not one person travelling.
	Hold time.Duration
	// MaxStays caps the cities remembered per account [16].
	MaxStays int
	// Quiet resolves an incident after this long without a new jump [2h],
	// so that the way back home (a jump within LookBack + Hold of the last
	// activity at the destination) is part of the same incident.
	Quiet time.Duration
	// MaxAccounts caps the accounts held [1,000,000].
	MaxAccounts int
}

func (c TravelConfig) withDefaults() TravelConfig {
	def(&c.LookBack, time.Hour)
	defFloat(&c.MaxKmh, 1000)
	defFloat(&c.MinKm, 500)
	def(&c.Hold, 10*time.Minute)
	defInt(&c.MaxStays, 16)
	def(&c.Quiet, 2*time.Hour)
	defInt(&c.MaxAccounts, 1_000_000)
	return c
}

// Travel detects impossible travel in the account view: consecutive
// activity of one profile (a person) from places farther apart than MaxKmh
// allows in the time between them — while the account is not used from
// three places or more, which is account sharing. Other profiles of the
// account streaming at home while one is abroad do not change the verdict.
// A stay that was part of a three-place period is never the end of a
// jump. Activity from hosting networks (data centres, VPNs) places a
// server, not a person, and is ignored: automated sign-ins from a data
// centre are credential stuffing's to report.
type Travel struct {
	cfg     TravelConfig
	accs    *keyed[travelAcc]
	pending travelQueue
}

type travelAcc struct {
	profiles []trProfile
	cand     *jump // waiting for Hold to pass
	reported *jump // the last jump reported, for the evidence
}

type trProfile struct {
	id    uint64
	stays []stay // one per city seen within the look-back
}

type stay struct {
	place       Place
	first, last int64
	shared      bool // seen while the account was in use from three places or more
}

type jump struct {
	profile  uint64
	from, to Place
	start    int64 // first event of the stay at from
	left     int64 // last event at from
	arrived  int64 // first event at to
	due      int64
	km, kmh  float64
}

// NewTravel returns an impossible-travel detector.
func NewTravel(cfg TravelConfig) *Travel {
	cfg = cfg.withDefaults()
	return &Travel{cfg: cfg, accs: newKeyed[travelAcc](cfg.MaxAccounts)}
}

// Kind returns "impossible_travel".
func (*Travel) Kind() string { return KindImpossibleTravel }

// View returns ViewAccount.
func (*Travel) View() View { return ViewAccount }

// Wants every event with a client network: browsing places a person too.
func (*Travel) Wants(rec schemas.Record) bool {
	env := envelope(rec)
	return env != nil && env.ClientNet != ""
}

// LookBack returns the configured look-back plus Hold: a jump is judged
// Hold after it happened, on the events of the look-back before it.
func (t *Travel) LookBack() time.Duration { return t.cfg.LookBack + t.cfg.Hold }

// Quiet returns the configured quiet period.
func (t *Travel) Quiet() time.Duration { return t.cfg.Quiet }

// maxProfiles caps the profiles tracked per account (Atlas's accounts
// have at most five).
const maxProfiles = 8

// Observe folds an event into its profile's places. A jump is never
// reported here: it waits for Hold (see Advance).
func (t *Travel) Observe(e *Event) Verdict {
	v := Verdict{Subject: e.Subject, At: e.Time}
	if !e.Place.Known() || e.Place.Hosting {
		return v
	}
	a := t.accs.touch(e.Subject, e.Time, func() travelAcc { return travelAcc{} })
	from := e.Time - ms(t.cfg.LookBack)
	for k := range a.profiles {
		pr := &a.profiles[k]
		pr.stays = slices.DeleteFunc(pr.stays, func(s stay) bool { return s.last < from })
	}
	a.profiles = slices.DeleteFunc(a.profiles, func(p trProfile) bool { return len(p.stays) == 0 })
	pid := fnv64s(e.Env.ProfileID)
	pi := slices.IndexFunc(a.profiles, func(p trProfile) bool { return p.id == pid })
	if pi < 0 {
		if len(a.profiles) >= maxProfiles {
			a.profiles = slices.Delete(a.profiles, 0, 1)
		}
		a.profiles = append(a.profiles, trProfile{id: pid})
		pi = len(a.profiles) - 1
	}
	pr := &a.profiles[pi]

	cur, prev := -1, -1
	for k := range pr.stays {
		if pr.stays[k].place.City == e.Place.City {
			cur = k
		} else if prev < 0 || pr.stays[k].last > pr.stays[prev].last {
			prev = k
		}
	}
	moving := prev >= 0 && (cur < 0 || pr.stays[prev].last > pr.stays[cur].last)
	if moving && a.cand == nil && !pr.stays[prev].shared && (cur < 0 || !pr.stays[cur].shared) && t.places(a, e.Place.City) < 3 {
		p := pr.stays[prev]
		km := DistanceKm(p.place, e.Place)
		gapH := float64(max(e.Time-p.last, 60_000)) / 3_600_000
		if km >= t.cfg.MinKm && km/gapH > t.cfg.MaxKmh {
			a.cand = &jump{profile: pid, from: p.place, to: e.Place, start: p.first, left: p.last, arrived: e.Time,
				due: e.Time + ms(t.cfg.Hold), km: km, kmh: km / gapH}
			heap.Push(&t.pending, travelDue{due: a.cand.due, subject: e.Subject})
		}
	}
	if cur < 0 {
		if len(pr.stays) >= t.cfg.MaxStays {
			old := 0
			for k := range pr.stays {
				if pr.stays[k].last < pr.stays[old].last {
					old = k
				}
			}
			pr.stays = slices.Delete(pr.stays, old, old+1)
		}
		pr.stays = append(pr.stays, stay{place: e.Place, first: e.Time})
		cur = len(pr.stays) - 1
	}
	pr.stays[cur].last = e.Time
	if a.cand != nil && t.places(a, a.cand.from.City) >= 3 {
		// A third place while the jump waits (its origin counts even if it
		// has just left the look-back): sharing, not travel.
		a.cand = nil
	}
	if t.places(a, "") >= 3 {
		// Three places at once in the look-back: several people use the
		// account. Nothing seen now is one person's journey.
		a.cand = nil
		for k := range a.profiles {
			for i := range a.profiles[k].stays {
				a.profiles[k].stays[i].shared = true
			}
		}
	}
	return v
}

// places counts the distinct cities of the account within the look-back,
// with extra (if not empty) counted too.
func (t *Travel) places(a *travelAcc, extra string) int {
	var buf [8]string // most accounts show one or two cities: no allocation
	cities := buf[:0]
	if extra != "" {
		cities = append(cities, extra)
	}
	for _, p := range a.profiles {
		for _, s := range p.stays {
			if !slices.Contains(cities, s.place.City) {
				cities = append(cities, s.place.City)
			}
		}
	}
	return len(cities)
}

// Advance reports the jumps whose Hold has passed without a sign of
// sharing, and forgets accounts without activity in the look-back.
func (t *Travel) Advance(now int64, report func(Verdict)) {
	for t.pending.Len() > 0 && t.pending[0].due <= now {
		d := heap.Pop(&t.pending).(travelDue)
		a := t.accs.get(d.subject)
		if a == nil || a.cand == nil || a.cand.due != d.due {
			continue // dropped, or superseded
		}
		j := a.cand
		a.cand = nil
		a.reported = j
		sev := schemas.SeverityHigh
		if j.kmh >= 5*t.cfg.MaxKmh {
			sev = schemas.SeverityCritical
		}
		report(Verdict{Subject: d.subject, Active: true, Severity: sev, Score: j.kmh, Start: j.start,
			WindowStart: j.start, At: j.due})
	}
	t.accs.expire(now-ms(t.cfg.LookBack), nil)
}

// Evidence describes the last reported jump.
func (t *Travel) Evidence(subject string) map[string]string {
	a := t.accs.get(subject)
	if a == nil || a.reported == nil {
		return nil
	}
	j := a.reported
	return map[string]string{
		"from":       j.from.City + "," + j.from.Country,
		"to":         j.to.City + "," + j.to.Country,
		"km":         strconv.Itoa(int(j.km)),
		"gap_ms":     strconv.FormatInt(j.arrived-j.left, 10),
		"kmh":        strconv.Itoa(int(j.kmh)),
		"left_ms":    strconv.FormatInt(j.left, 10),
		"arrived_ms": strconv.FormatInt(j.arrived, 10),
	}
}

// Size reports accounts held and an estimate of their bytes.
func (t *Travel) Size() (int, int) {
	n := 0
	t.accs.each(func(_ string, a *travelAcc) {
		n += keyedOverhead + 64 + cap(a.profiles)*40
		for _, p := range a.profiles {
			n += cap(p.stays) * 72
		}
		if a.cand != nil {
			n += 160
		}
		if a.reported != nil {
			n += 160
		}
	})
	return t.accs.len(), n + t.pending.Len()*32
}

type travelDue struct {
	due     int64
	subject string
}

// travelQueue is a min-heap of pending jumps by due time, then subject.
type travelQueue []travelDue

func (q travelQueue) Len() int { return len(q) }
func (q travelQueue) Less(i, j int) bool {
	return cmp.Or(cmp.Compare(q[i].due, q[j].due), cmp.Compare(q[i].subject, q[j].subject)) < 0
}
func (q travelQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *travelQueue) Push(x any)   { *q = append(*q, x.(travelDue)) }
func (q *travelQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}
