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
	// dropped when its origin was used at the same time as another place,
	// or when, before Hold has passed, the account is used from two places
	// at once or shows a third place: that is account sharing (the sharing
	// detector's incident), not one person travelling.
	Hold time.Duration
	// LiveGap: a session whose last event is older than this is over [5m].
	LiveGap time.Duration
	// MaxStays caps the places remembered per account [16].
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
	def(&c.LiveGap, 5*time.Minute)
	defInt(&c.MaxStays, 16)
	def(&c.Quiet, 2*time.Hour)
	defInt(&c.MaxAccounts, 1_000_000)
	return c
}

// Travel detects impossible travel in the account view: consecutive
// activity of an account from places farther apart than MaxKmh allows in
// the time between them, while nothing suggests that several people use
// the account. Activity from hosting networks (data centres, VPNs) places
// a server, not a person, and is ignored: automated sign-ins from a data
// centre are credential stuffing's to report.
type Travel struct {
	cfg     TravelConfig
	accs    *keyed[travelAcc]
	pending travelQueue
}

type travelAcc struct {
	stays    []stay // consecutive activity at one place, oldest first
	sessions []trSession
	cand     *jump // waiting for Hold to pass
	reported *jump // the last jump reported, for the evidence
}

type stay struct {
	place       Place
	first, last int64
	shared      bool // another place was in use at the same time
}

type trSession struct {
	id    uint64
	city  string
	last  int64
	ended bool
}

type jump struct {
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

// Wants every event with a client network: browsing places an account too.
func (*Travel) Wants(rec schemas.Record) bool {
	env := envelope(rec)
	return env != nil && env.ClientNet != ""
}

// LookBack returns the configured look-back plus Hold: a jump is judged
// Hold after it happened, on the events of the look-back before it.
func (t *Travel) LookBack() time.Duration { return t.cfg.LookBack + t.cfg.Hold }

// Quiet returns the configured quiet period.
func (t *Travel) Quiet() time.Duration { return t.cfg.Quiet }

// Observe folds an event into its account's places. A jump is never
// reported here: it waits for Hold (see Advance).
func (t *Travel) Observe(e *Event) Verdict {
	v := Verdict{Subject: e.Subject, At: e.Time}
	if !e.Place.Known() || e.Place.Hosting {
		return v
	}
	a := t.accs.touch(e.Subject, e.Time, func() travelAcc { return travelAcc{} })
	from := e.Time - ms(t.cfg.LookBack)
	a.stays = slices.DeleteFunc(a.stays, func(s stay) bool { return s.last < from })
	a.sessions = slices.DeleteFunc(a.sessions, func(s trSession) bool { return s.last < from })

	// Sessions, to tell travel (one place at a time) from sharing.
	sid := fnv64s(e.Env.SessionID)
	i := slices.IndexFunc(a.sessions, func(s trSession) bool { return s.id == sid })
	if i < 0 {
		if len(a.sessions) >= t.cfg.MaxStays {
			a.sessions = slices.Delete(a.sessions, 0, 1)
		}
		a.sessions = append(a.sessions, trSession{id: sid, city: e.Place.City})
		i = len(a.sessions) - 1
	}
	a.sessions[i].last = e.Time
	if e.Play != nil {
		switch e.Play.Kind {
		case schemas.PlayStop, schemas.PlayComplete, schemas.PlayError:
			a.sessions[i].ended = true
		}
	}
	liveFrom := e.Time - ms(t.cfg.LiveGap)
	concurrent := false
	for _, s := range a.sessions {
		if s.city != e.Place.City && !s.ended && s.last >= liveFrom {
			concurrent = true
			// The other place's latest stay was shared too.
			for k := len(a.stays) - 1; k >= 0; k-- {
				if a.stays[k].place.City == s.city {
					a.stays[k].shared = true
					break
				}
			}
		}
	}
	if concurrent {
		a.cand = nil // shared after the jump
	}

	n := len(a.stays)
	if n > 0 && a.stays[n-1].place.City == e.Place.City {
		a.stays[n-1].last = e.Time
		a.stays[n-1].shared = a.stays[n-1].shared || concurrent
		return v
	}
	if n > 0 && !concurrent && a.cand == nil && !a.stays[n-1].shared {
		prev := a.stays[n-1]
		km := DistanceKm(prev.place, e.Place)
		gapH := float64(max(e.Time-prev.last, 60_000)) / 3_600_000
		if km >= t.cfg.MinKm && km/gapH > t.cfg.MaxKmh {
			a.cand = &jump{from: prev.place, to: e.Place, start: prev.first, left: prev.last, arrived: e.Time,
				due: e.Time + ms(t.cfg.Hold), km: km, kmh: km / gapH}
			heap.Push(&t.pending, travelDue{due: a.cand.due, subject: e.Subject})
		}
	}
	if n >= t.cfg.MaxStays {
		a.stays = slices.Delete(a.stays, 0, 1)
	}
	a.stays = append(a.stays, stay{place: e.Place, first: e.Time, last: e.Time, shared: concurrent})
	if a.cand != nil && t.places(a) >= 3 {
		a.cand = nil // a third place: sharing, not travel
	}
	return v
}

func (t *Travel) places(a *travelAcc) int {
	var cities []string
	for _, s := range a.stays {
		if !slices.Contains(cities, s.place.City) {
			cities = append(cities, s.place.City)
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
		n += keyedOverhead + 80 + cap(a.stays)*64 + cap(a.sessions)*48
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
