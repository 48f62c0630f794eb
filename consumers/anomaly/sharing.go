package anomaly

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/atlas-stream/atlas/schemas"
)

// SharingConfig tunes the account-sharing detector. Zero fields take the
// defaults in brackets.
type SharingConfig struct {
	// LookBack is the sliding window of distinct devices, networks and
	// countries [1h].
	LookBack time.Duration
	// LiveGap: a playback session whose last event is older than this is
	// no longer streaming [5m; heartbeats come every 30 s, pauses last up
	// to a few minutes].
	LiveGap time.Duration
	// MinConcurrentPlaces: streams live at the same time from this many
	// different cities are sharing [3]. Two is what a family at home and
	// one member abroad produce (the impossible-travel detector's case).
	MinConcurrentPlaces int
	// MinCountries: playback from this many countries within LookBack is
	// sharing [3]. (Two countries is what one traveller produces.)
	MinCountries int
	// MaxStreams: more concurrent streams than this exceed every plan
	// [4, the premium plan's limit]. The events carry no plan, so the
	// detector cannot compare with the account's own limit.
	MaxStreams int
	// MaxSessions caps the sessions remembered per account [32].
	MaxSessions int
	// Quiet resolves an incident after this long without the pattern [1h,
	// the look-back: until then, the places that made the incident are
	// still in the window, and the account's next stream at home would
	// raise it again].
	Quiet time.Duration
	// MaxAccounts caps the accounts held [1,000,000].
	MaxAccounts int
}

func (c SharingConfig) withDefaults() SharingConfig {
	def(&c.LookBack, time.Hour)
	def(&c.LiveGap, 5*time.Minute)
	defInt(&c.MinConcurrentPlaces, 3)
	defInt(&c.MinCountries, 3)
	defInt(&c.MaxStreams, 4)
	defInt(&c.MaxSessions, 32)
	def(&c.Quiet, time.Hour)
	defInt(&c.MaxAccounts, 1_000_000)
	return c
}

// Sharing detects account sharing in the account view: streams live at
// the same time from three cities or more, playback from three countries
// or more within the look-back, or more concurrent streams than any plan
// allows. Browse events are not streams and are ignored.
type Sharing struct {
	cfg  SharingConfig
	accs *keyed[sharingAcc]
}

type sharingAcc struct {
	sessions []shSession // by first event time
}

type shSession struct {
	id     uint64 // hash of the session id
	device uint64 // hash of the device id
	net    uint64 // hash of the network prefix
	place  Place
	first  int64
	last   int64
	ended  bool
}

// NewSharing returns an account-sharing detector.
func NewSharing(cfg SharingConfig) *Sharing {
	cfg = cfg.withDefaults()
	return &Sharing{cfg: cfg, accs: newKeyed[sharingAcc](cfg.MaxAccounts)}
}

// Kind returns "account_sharing".
func (*Sharing) Kind() string { return KindAccountSharing }

// View returns ViewAccount.
func (*Sharing) View() View { return ViewAccount }

// Wants playback events.
func (*Sharing) Wants(rec schemas.Record) bool {
	_, ok := rec.(*schemas.Playback)
	return ok
}

// LookBack returns the configured window.
func (s *Sharing) LookBack() time.Duration { return s.cfg.LookBack }

// Quiet returns the configured quiet period.
func (s *Sharing) Quiet() time.Duration { return s.cfg.Quiet }

// Observe folds a playback event into its account's sessions and judges
// the account.
func (s *Sharing) Observe(e *Event) Verdict {
	v := Verdict{Subject: e.Subject, At: e.Time}
	if e.Play == nil {
		return v
	}
	a := s.accs.touch(e.Subject, e.Time, func() sharingAcc { return sharingAcc{} })
	s.prune(a, e.Time)
	sid := fnv64s(e.Env.SessionID)
	i := slices.IndexFunc(a.sessions, func(x shSession) bool { return x.id == sid })
	if i < 0 {
		if len(a.sessions) >= s.cfg.MaxSessions {
			// Forget the session seen longest ago.
			old := 0
			for k := range a.sessions {
				if a.sessions[k].last < a.sessions[old].last {
					old = k
				}
			}
			a.sessions = slices.Delete(a.sessions, old, old+1)
		}
		a.sessions = append(a.sessions, shSession{id: sid, device: fnv64s(e.Env.DeviceID),
			net: fnv64s(NetworkPrefix(e.Env.ClientNet)), place: e.Place, first: e.Time})
		i = len(a.sessions) - 1
	}
	ss := &a.sessions[i]
	ss.last = e.Time
	switch e.Play.Kind {
	case schemas.PlayStop, schemas.PlayComplete, schemas.PlayError:
		ss.ended = true
	case schemas.PlayStart, schemas.PlayResume, schemas.PlayHeartbeat:
		ss.ended = false
	}
	st := s.stats(a, e.Time, false)
	if st.concurrentPlaces >= s.cfg.MinConcurrentPlaces || st.countries >= s.cfg.MinCountries || st.live > s.cfg.MaxStreams {
		v.Active = true
		v.Severity = schemas.SeverityHigh
		if st.concurrentPlaces > s.cfg.MinConcurrentPlaces || st.countries > s.cfg.MinCountries || st.devices >= 6 {
			v.Severity = schemas.SeverityCritical
		}
		v.Score = float64(st.countries)
		v.Start, v.WindowStart = st.first, st.first
	}
	return v
}

func (s *Sharing) prune(a *sharingAcc, now int64) {
	from := now - ms(s.cfg.LookBack)
	a.sessions = slices.DeleteFunc(a.sessions, func(x shSession) bool { return x.last < from })
}

type sharingStats struct {
	devices, countries, places, nets int
	live, concurrentPlaces           int
	first                            int64
	countryList, cityList            []string
}

// stats counts what the account did in its sessions; lists also returns
// its countries and cities (for the evidence). Without lists nothing
// escapes: the counting slices stay on the stack (two allocations per
// playback event in bench/perevent when the lists were always returned).
func (s *Sharing) stats(a *sharingAcc, now int64, lists bool) sharingStats {
	st := sharingStats{first: now}
	var devs, nets []uint64
	var livePlaces, countries, cities []string
	liveFrom := now - ms(s.cfg.LiveGap)
	for _, x := range a.sessions {
		st.first = min(st.first, x.first)
		if !slices.Contains(devs, x.device) {
			devs = append(devs, x.device)
		}
		if !slices.Contains(nets, x.net) {
			nets = append(nets, x.net)
		}
		if x.place.Known() {
			if !slices.Contains(countries, x.place.Country) {
				countries = append(countries, x.place.Country)
			}
			if !slices.Contains(cities, x.place.City) {
				cities = append(cities, x.place.City)
			}
		}
		if !x.ended && x.last >= liveFrom {
			st.live++
			if x.place.Known() && !slices.Contains(livePlaces, x.place.City) {
				livePlaces = append(livePlaces, x.place.City)
			}
		}
	}
	st.devices, st.nets, st.countries, st.places = len(devs), len(nets), len(countries), len(cities)
	if lists {
		st.countryList, st.cityList = slices.Clone(countries), slices.Clone(cities)
	}
	st.concurrentPlaces = len(livePlaces)
	return st
}

// Advance forgets accounts without playback in the look-back.
func (s *Sharing) Advance(now int64, _ func(Verdict)) {
	s.accs.expire(now-ms(s.cfg.LookBack), nil)
}

// Evidence lists the devices, networks, countries, cities and live
// streams of the account in the look-back.
func (s *Sharing) Evidence(subject string) map[string]string {
	a := s.accs.get(subject)
	if a == nil || len(a.sessions) == 0 {
		return nil
	}
	now := int64(0)
	for _, x := range a.sessions {
		now = max(now, x.last)
	}
	st := s.stats(a, now, true)
	slices.Sort(st.countryList)
	slices.Sort(st.cityList)
	return map[string]string{
		"devices":            strconv.Itoa(st.devices),
		"networks":           strconv.Itoa(st.nets),
		"countries":          strings.Join(st.countryList, ","),
		"cities":             strings.Join(st.cityList, ","),
		"concurrent_places":  strconv.Itoa(st.concurrentPlaces),
		"concurrent_streams": strconv.Itoa(st.live),
		"window_ms":          strconv.FormatInt(ms(s.cfg.LookBack), 10),
		"plan":               "unknown: events carry no plan; limit of the largest plan " + strconv.Itoa(s.cfg.MaxStreams),
	}
}

// Size reports accounts held and an estimate of their bytes.
func (s *Sharing) Size() (int, int) {
	n := 0
	s.accs.each(func(_ string, a *sharingAcc) { n += keyedOverhead + 24 + cap(a.sessions)*96 })
	return s.accs.len(), n
}

func def(d *time.Duration, v time.Duration) {
	if *d == 0 {
		*d = v
	}
}

func defInt(d *int, v int) {
	if *d == 0 {
		*d = v
	}
}

func defFloat(d *float64, v float64) {
	if *d == 0 {
		*d = v
	}
}
