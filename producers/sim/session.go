package sim

import (
	"math"
	"slices"

	"github.com/atlas-stream/atlas/schemas"
)

// item is one generated event waiting in its session for its event time.
type item struct {
	t   int64
	pb  *schemas.Playback
	bw  *schemas.Browse
	row int8  // funnel row of impressions, selects and starts from a row; -1 none
	art int32 // funnel artwork (global index); -1 none
	ti  int32 // title index; -1 none
}

// Session kinds.
const (
	kindNormal   = iota
	kindForced   // planted playback: fixed watch time, no pauses, seeks or abandonment
	kindBot      // planted bot: regular impressions, no dwell
	kindStuffing // planted credential stuffing attempt
)

// Session phases.
const (
	phaseBrowse = iota
	phasePlay
	phaseDone
)

const (
	heartbeatMs  = 30_000
	maxAutoplays = 3
	// A viewer who stops a title within sampleMs of starting it goes back
	// to the rows with probability resample, up to maxPicks times a
	// session.
	sampleMs = 10 * 60_000
	resample = 0.6
	maxPicks = 3
)

type session struct {
	id   string
	seq  uint64
	kind uint8
	prof *profile
	dev  *device
	city int
	cc   int // country index
	net  string
	isp  int // global ISP index
	cdn  int
	inc  *incident // planted incident this session belongs to, or nil
	// intent is the taste community the viewer is in the mood for
	// (taste.go), or srcExplore.
	intent int

	pending []item
	head    int

	phase uint8
	// playback state
	ti         int
	pos        int64
	stopAt     int64
	played     int64 // content played since the previous event of the session
	level      int   // index in bitrateLadder
	chunkT     int64 // start of the next heartbeat interval
	stallPM    float64
	stallLen   float64
	switchPM   float64
	retries    int
	autoplays  int
	picks      int   // titles picked from the rows after the first
	startPos   int64 // position the current playback started at
	stalledOut bool  // stalls made the viewer decide to leave
	forceMs    int64
	startT     int64 // first event time sent on
	lastT      int64 // last event time sent on
	// bot / stuffing state
	botEnd  int64
	botStep int
}

func (s *session) next() *item { return &s.pending[s.head] }

// env returns the envelope of an event of s at time t; the event id and the
// receive time are stamped when it is sent.
func (s *session) env(t int64) schemas.Envelope {
	return schemas.Envelope{
		EventTime: t, AccountID: s.prof.acc.id, ProfileID: s.prof.id, DeviceID: s.dev.id, SessionID: s.id,
		ClientNet: s.net, Country: "", DeviceType: s.dev.typ, AppVersion: s.dev.app,
	}
}

func (g *Generator) addBrowse(s *session, t int64, kind schemas.BrowseKind, ti int, row int, rank int, art int, dwell int64) *schemas.Browse {
	e := &schemas.Browse{Envelope: s.env(t), Kind: kind, DwellMs: dwell, Rank: int64(rank)}
	e.Country = g.w.countries[s.cc]
	it := item{t: t, bw: e, row: -1, art: -1, ti: -1}
	if ti >= 0 {
		e.TitleID = g.w.titles[ti].id
		it.ti = int32(ti)
	}
	if row >= 0 {
		e.Row = rows[row]
		it.row = int8(row)
	}
	if art >= 0 {
		e.ArtworkID = g.w.arts[art]
		it.art = int32(art)
	}
	s.pending = append(s.pending, it)
	return e
}

func (g *Generator) addPlay(s *session, t int64, kind schemas.PlaybackKind) *schemas.Playback {
	tt := g.w.titles[s.ti]
	e := &schemas.Playback{Envelope: s.env(t), Kind: kind, TitleID: tt.id, PositionMs: s.pos, DurationMs: tt.durMs,
		BitrateKbps: bitrateLadder[s.level], WatchedMs: s.played, CDN: cdns[s.cdn], ISP: g.w.isps[s.isp]}
	e.Country = g.w.countries[s.cc]
	s.played = 0
	s.pending = append(s.pending, item{t: t, pb: e, row: -1, art: -1, ti: int32(s.ti)})
	return e
}

// artFor is the artwork a profile is shown for a title: a stable A/B split.
func (g *Generator) artFor(p *profile, ti int) int {
	t := g.w.titles[ti]
	return t.artBase + int(mix64(uint64(p.idx)<<21^uint64(ti)^g.artKey)%uint64(len(t.arts)))
}

// rowTitles fills dst with the titles of a row as the session's profile
// sees it.
func (g *Generator) rowTitles(dst []int, s *session, row, k int) []int {
	r := g.rT
	w := g.w
	p := s.prof
	add := func(ti int) {
		if !slices.Contains(dst, ti) {
			dst = append(dst, ti)
		}
	}
	switch row {
	case rowContinue:
		for i := len(p.history) - 1; i >= 0 && len(dst) < k; i-- {
			add(p.history[i].title)
		}
	case rowTop10:
		for _, ti := range w.top10[:min(k, 10)] {
			add(ti)
		}
	case rowNew:
		for a := 0; a < 3*k && len(dst) < k; a++ {
			add(w.recent[r.IntN(len(w.recent))])
		}
	case rowAward:
		for a := 0; a < 3*k && len(dst) < k; a++ {
			add(r.IntN(len(w.titles)))
		}
	case rowTopPicks, rowBecause, rowSearch:
		// The service's picks know the profile's taste, most of the time;
		// "because you watched" comes from the latest title's community;
		// search results from the one the viewer is looking for.
		var cand [40]int
		var aff [40]float64
		n := min(len(cand), 3*k)
		for i := 0; i < n; i++ {
			switch {
			case row == rowSearch:
				cand[i] = w.sampleFrom(r, s.intent)
			case row == rowBecause && p.last >= 0:
				cand[i] = w.sampleFrom(r, w.titles[p.last].comm)
			case r.Float64() < 0.75:
				cand[i] = w.sampleFrom(r, p.intent(r))
			default:
				cand[i] = w.sampleTitle(r)
			}
			aff[i] = g.affinity(p, cand[i])
		}
		if row == rowTopPicks {
			// Insertion sort by affinity, stable: n ≤ 40.
			for i := 1; i < n; i++ {
				for j := i; j > 0 && aff[j] > aff[j-1]; j-- {
					aff[j], aff[j-1] = aff[j-1], aff[j]
					cand[j], cand[j-1] = cand[j-1], cand[j]
				}
			}
		}
		for _, ti := range cand[:n] {
			if len(dst) >= k {
				break
			}
			if row != rowBecause || ti != p.last {
				add(ti)
			}
		}
	default: // trending
		for a := 0; a < 3*k && len(dst) < k; a++ {
			add(w.sampleTitle(r))
		}
	}
	return dst
}

// selectProb is the chance that a viewer selects an impression: it grows
// with how well the title fits the viewer's intent and the artwork's
// appeal, and falls with the rank.
func selectProb(fit float64, rank int, artFactor float64, search bool) float64 {
	p := selectBase * artFactor * fit / (1 + 0.25*float64(rank))
	if search {
		p *= 4
	}
	return math.Min(p, 0.7)
}

// selectBase is the chance to select the first impression of a row when
// it fits the viewer's intent perfectly and its artwork is average.
const selectBase = 0.15

// fit is how well title ti suits session s, 0..1, for selectProb: a title
// of the intended community fits best, one the profile likes otherwise
// less, one outside its taste least; with no particular intent, anything
// shown will do, favourites better.
func (g *Generator) fit(s *session, ti int, row int, aff float64) float64 {
	var f float64
	if s.intent == srcExplore {
		f = 0.25 + 0.35*aff
	} else {
		f = 0.04 + 0.3*aff
		if g.w.titles[ti].comm == s.intent {
			f += 0.66
		}
	}
	if row == rowContinue {
		f = max(f, 0.6) // they started it, and mean to go on
	}
	return min(f, 1)
}

// browse generates the browse part of a normal session starting at t and,
// when the viewer picks something, the start of its playback.
func (g *Generator) browse(s *session, t int64) {
	r := g.rT
	p := s.prof
	s.intent = p.intent(r)
	if len(p.history) > 0 && r.Float64() < 0.15 {
		// Straight back into something half watched (deep link, resume).
		h := p.history[len(p.history)-1]
		g.startPlayback(s, t, h.title, h.pos, -1, -1)
		return
	}
	g.browseRows(s, t)
}

// browseRows is the browsing of a session from t on: a search or a scan of
// the rows, and the start of a playback if the viewer picks something.
func (g *Generator) browseRows(s *session, t int64) {
	r := g.rT
	p := s.prof
	var buf [16]int
	if r.Float64() < 0.1 {
		// Search: a query, then a row of results.
		q := g.w.titles[g.rowTitles(buf[:0], s, rowSearch, 1)[0]]
		query := q.name
		if r.IntN(2) == 0 {
			query = q.genres[0]
		}
		e := g.addBrowse(s, t, schemas.BrowseSearch, -1, -1, 0, -1, 0)
		e.Query = query
		t += 1500 + r.Int64N(4000)
		if g.scanRow(s, &t, rowSearch, 4+r.IntN(5), buf[:0]) {
			return
		}
	} else {
		visited := 0
		for row := 0; row < rowSearch && visited < 4; row++ {
			if row == rowContinue && len(p.history) == 0 || r.Float64() < 0.35 {
				continue
			}
			visited++
			if g.scanRow(s, &t, row, 6+r.IntN(5), buf[:0]) {
				return
			}
			t += 800 + r.Int64N(2500)
		}
	}
	s.phase = phaseDone // browsed, watched nothing
}

// scanRow shows one row's impressions; it returns true when the viewer
// selected a title (and the playback has started).
func (g *Generator) scanRow(s *session, t *int64, row, k int, buf []int) bool {
	r := g.rT
	p := s.prof
	titles := g.rowTitles(buf, s, row, k)
	for rank, ti := range titles {
		art := g.artFor(p, ti)
		aff := g.affinity(p, ti)
		dwell := 300 + r.Int64N(2200)
		g.addBrowse(s, *t, schemas.BrowseImpression, ti, row, rank, art, dwell)
		*t += 150 + r.Int64N(500)
		if r.Float64() < 0.04+0.15*math.Max(aff, 0) {
			hd := 800 + r.Int64N(3000)
			g.addBrowse(s, *t, schemas.BrowseHover, ti, row, rank, art, hd)
			*t += hd
			switch x := r.Float64(); {
			case x < 0.25:
				td := 5000 + r.Int64N(35000)
				g.addBrowse(s, *t, schemas.BrowseTrailer, ti, row, rank, art, td)
				*t += td
			case x < 0.3:
				g.addBrowse(s, *t, schemas.BrowseAddToList, ti, row, rank, art, 0)
				*t += 400 + r.Int64N(800)
			}
		}
		if r.Float64() < selectProb(g.fit(s, ti, row, aff), rank, g.w.titles[ti].artFactor[art-g.w.titles[ti].artBase], row == rowSearch) {
			g.addBrowse(s, *t, schemas.BrowseSelect, ti, row, rank, art, 0)
			*t += 500 + r.Int64N(2000)
			pos := int64(0)
			for _, h := range p.history {
				if h.title == ti {
					pos = h.pos
				}
			}
			g.startPlayback(s, *t, ti, pos, row, art)
			return true
		}
	}
	return false
}

// startPlayback emits the start of a playback (or a start failure) at t.
func (g *Generator) startPlayback(s *session, t int64, ti int, pos int64, row, art int) {
	r := g.rT
	s.ti = ti
	s.phase = phasePlay
	if s.kind == kindNormal {
		s.prof.last = ti
	}
	tt := g.w.titles[ti]
	if pos >= tt.durMs-60_000 {
		pos = 0
	}
	s.pos = pos
	s.startPos = pos
	s.stalledOut = false
	degraded := g.degraded(s, t)
	if s.stallPM == 0 && s.switchPM == 0 {
		nc := netBroadband
		if s.dev.mobile || s.dev.typ == schemas.DeviceMobile || s.dev.typ == schemas.DeviceTablet {
			nc = netMobile
		}
		s.stallPM = quantile(&qoeStallsPerMin, r.Float64()) * nc.stallRate
		s.stallLen = nc.stallLen
		s.switchPM = quantile(&qoeSwitchPerMin, r.Float64()) * nc.switchRate
		switch s.dev.typ {
		case schemas.DeviceTV, schemas.DeviceConsole:
			s.level = 6 + r.IntN(4)
		case schemas.DeviceDesktop, schemas.DeviceWeb:
			s.level = 5 + r.IntN(4)
		default:
			s.level = 3 + r.IntN(4)
		}
	}
	if degraded && s.level > 3 {
		s.level = 2 + r.IntN(2)
	}
	pFail := baseStartFailure
	if degraded {
		pFail = degradeStartFailure
	}
	if s.kind == kindNormal && r.Float64() < pFail {
		saved := s.pos
		s.pos = 0
		e := g.addPlay(s, t, schemas.PlayError)
		e.ErrorCode = startErrors[r.IntN(len(startErrors))]
		s.pos = saved
		if s.retries < 2 && r.Float64() < 0.6 {
			s.retries++
			g.startPlayback(s, t+2000+r.Int64N(6000), ti, pos, row, art)
			return
		}
		s.phase = phaseDone
		return
	}
	e := g.addPlay(s, t, schemas.PlayStart)
	e.BufferMs = 0
	if row >= 0 {
		e.SourceRow = rows[row]
		e.SourceArtworkID = g.w.arts[art]
		last := &s.pending[len(s.pending)-1]
		last.row, last.art = int8(row), int32(art)
	}
	// How far the viewer means to watch: taste decides; quality may cut
	// it short later (see chunk).
	switch {
	case s.kind == kindForced:
		s.stopAt = min(tt.durMs, s.pos+s.forceMs)
	case r.Float64() < 0.92/(1+math.Exp(-6*(g.affinity(s.prof, ti)-0.3))):
		s.stopAt = tt.durMs
	default:
		u := r.Float64()
		s.stopAt = s.pos + 30_000 + int64(u*u*float64(tt.durMs-s.pos))
		if s.stopAt >= tt.durMs {
			s.stopAt = tt.durMs - 1000
		}
	}
	startup := 400 + r.Int64N(2000)
	if degraded {
		startup *= 4
	}
	s.chunkT = t + startup
}

var startErrors = []string{"START_TIMEOUT", "MANIFEST_UNAVAILABLE", "DRM_LICENSE_FAILED", "CDN_CONNECT_FAILED"}

// chunk generates one heartbeat interval of playback: what happens in it
// (stalls, bitrate switches, a pause, a seek, an error) and the heartbeat at
// its end, or the stop or completion inside it.
func (g *Generator) chunk(s *session) {
	r := g.rT
	t := s.chunkT
	degraded := g.degraded(s, t)
	type ev struct {
		off  int64
		kind uint8
	}
	const (
		evStall = iota
		evSwitch
		evPause
		evSeek
		evError
	)
	var evs [24]ev
	n := 0
	poisson := func(perMin float64, kind uint8) {
		if perMin <= 0 {
			return
		}
		rate := perMin / 60_000
		for off := r.ExpFloat64() / rate; off < heartbeatMs && n < len(evs)-3; off += r.ExpFloat64() / rate {
			evs[n] = ev{int64(off), kind}
			n++
		}
	}
	stallPM := s.stallPM
	stallLen := s.stallLen
	if degraded {
		stallPM = stallPM*degradeStallRate + degradeStallFloor
		stallLen *= degradeStallLen
	}
	poisson(stallPM, evStall)
	poisson(s.switchPM, evSwitch)
	if s.kind == kindNormal {
		if r.Float64() < 0.012 {
			evs[n] = ev{r.Int64N(heartbeatMs), evPause}
			n++
		}
		if r.Float64() < 0.006 {
			evs[n] = ev{r.Int64N(heartbeatMs), evSeek}
			n++
		}
		pErr := baseMidplayError
		if degraded {
			pErr *= 20
		}
		if r.Float64() < pErr {
			evs[n] = ev{r.Int64N(heartbeatMs), evError}
			n++
		}
	}
	list := evs[:n]
	slices.SortStableFunc(list, func(a, b ev) int { return int(a.off - b.off) })

	cursor := t
	shift := int64(0)
	tt := g.w.titles[s.ti]
	// advance plays until time target; it reports false when the stop
	// position came first (and has emitted the end).
	advance := func(target int64) bool {
		dt := target - cursor
		if s.pos+dt >= s.stopAt {
			d := s.stopAt - s.pos
			s.played += d
			s.pos = s.stopAt
			g.finish(s, cursor+d)
			return false
		}
		s.pos += dt
		s.played += dt
		cursor = target
		return true
	}
	for _, e := range list {
		if !advance(t + e.off + shift) {
			return
		}
		switch e.kind {
		case evStall:
			rb := int64(quantile(&qoeStallSec, r.Float64()) * 1000 * stallLen)
			rb = max(250, min(rb, maxStallMs))
			p := g.addPlay(s, cursor, schemas.PlayRebuffer)
			p.RebufferMs = rb
			p.BufferMs = 0
			cursor += rb
			shift += rb
			if degraded && s.level > 0 && r.IntN(2) == 0 {
				s.level--
			}
			// Stalls drive viewers away.
			if s.kind == kindNormal && r.Float64() < 0.03+0.25*float64(rb)/30_000 {
				s.stopAt = min(s.stopAt, s.pos+1000+r.Int64N(8000), tt.durMs-1)
				s.stalledOut = true
			}
		case evSwitch:
			up := r.IntN(2) == 0
			if degraded {
				up = r.IntN(4) == 0
			}
			if up && s.level < len(bitrateLadder)-1 {
				s.level++
			} else if !up && s.level > 0 {
				s.level--
			} else {
				continue
			}
			g.addPlay(s, cursor, schemas.PlayBitrate)
		case evPause:
			g.addPlay(s, cursor, schemas.PlayPause)
			gap := 5000 + r.Int64N(240_000)
			cursor += gap
			shift += gap
			g.addPlay(s, cursor, schemas.PlayResume)
		case evSeek:
			from := s.pos
			to := from + r.Int64N(600_000) - 240_000
			to = max(0, min(to, s.stopAt-2000, tt.durMs-2000))
			s.pos = to
			p := g.addPlay(s, cursor, schemas.PlaySeek)
			p.SeekFromMs = from
		case evError:
			p := g.addPlay(s, cursor, schemas.PlayError)
			p.ErrorCode = "PLAYBACK_FAILED"
			g.remember(s.prof, s.ti, s.pos)
			s.phase = phaseDone
			return
		}
	}
	if !advance(t + heartbeatMs + shift) {
		return
	}
	p := g.addPlay(s, cursor, schemas.PlayHeartbeat)
	if degraded {
		p.BufferMs = r.Int64N(4000)
	} else {
		p.BufferMs = 8000 + r.Int64N(22000)
	}
	s.chunkT = cursor
}

// finish ends a playback at t: a complete at the end of the title, a stop
// (abandonment) before it.
func (g *Generator) finish(s *session, t int64) {
	r := g.rT
	tt := g.w.titles[s.ti]
	if s.pos >= tt.durMs {
		s.pos = tt.durMs
		g.addPlay(s, t, schemas.PlayComplete)
		g.forget(s.prof, s.ti)
		if s.kind == kindNormal && tt.typ == schemas.TitleSeries && r.Float64() < followSeries {
			// The next episode waits in continue-watching (unless
			// autoplay starts it right away).
			g.remember(s.prof, s.ti, 0)
		}
		if s.kind == kindNormal && r.Float64() < 0.15 {
			aff := g.affinity(s.prof, s.ti)
			stars := math.Round((2.2+2.6*aff+0.8*r.NormFloat64())*2) / 2
			e := g.addBrowse(s, t+3000+r.Int64N(5000), schemas.BrowseRating, s.ti, -1, 0, -1, 0)
			e.Rating = math.Max(0.5, math.Min(5, stars))
			s.phase = phaseDone // the rating screen ends the session
			return
		}
		if s.kind == kindNormal && tt.typ == schemas.TitleSeries && s.autoplays < maxAutoplays && r.Float64() < 0.5 {
			// Autoplay of the next episode: a start without a source row.
			s.autoplays++
			s.retries = 0
			g.startPlayback(s, t+5000+r.Int64N(10000), s.ti, 0, -1, -1)
			return
		}
		s.phase = phaseDone
		return
	}
	g.addPlay(s, t, schemas.PlayStop)
	g.remember(s.prof, s.ti, s.pos)
	s.phase = phaseDone
	if s.kind == kindNormal && !s.stalledOut && s.picks < maxPicks && s.pos-s.startPos < sampleMs && r.Float64() < resample {
		// Not what they wanted: back to the rows for something else.
		s.picks++
		s.retries = 0
		if r.Float64() < 0.3 {
			s.intent = s.prof.intent(r)
		}
		g.browseRows(s, t+2000+r.Int64N(8000))
	}
}

func (g *Generator) remember(p *profile, ti int, pos int64) {
	g.forget(p, ti)
	if len(p.history) >= 5 {
		p.history = append(p.history[:0], p.history[1:]...)
	}
	p.history = append(p.history, histEntry{ti, pos})
}

func (g *Generator) forget(p *profile, ti int) {
	p.history = slices.DeleteFunc(p.history, func(h histEntry) bool { return h.title == ti })
}

// refill generates the next events of s after its pending ones were sent;
// it reports false when the session is over.
func (g *Generator) refill(s *session) bool {
	s.pending = s.pending[:0]
	s.head = 0
	for len(s.pending) == 0 {
		switch {
		case s.phase == phaseDone:
			return false
		case s.kind == kindBot:
			g.botChunk(s)
		case s.phase == phasePlay:
			g.chunk(s)
		default:
			return false
		}
	}
	return true
}
