package sim

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/atlas-stream/atlas/internal/eventtime"
	"github.com/atlas-stream/atlas/producers/sim/geo"
	"github.com/atlas-stream/atlas/schemas"
)

// Sink receives the simulator's records in send order: first the catalog,
// then the events. Send may keep rec (to batch it): the simulator never
// modifies a record after sending it, and sends the very same record again
// for a duplicate. Send and Flush are called from one goroutine.
type Sink interface {
	// Send delivers one record; an error stops the run.
	Send(ctx context.Context, rec schemas.Record) error
	// Flush makes every record sent so far durable (written to Kafka, to
	// the file); it is called once, at the end of a run.
	Flush(ctx context.Context) error
}

// Generator is one deterministic simulation. It is not safe for
// concurrent use, and runs once.
type Generator struct {
	cfg     Config
	rules   eventtime.Rules
	w       *world
	rT      *rand.Rand // traffic: sessions and behaviour
	rD      *rand.Rand // delivery: delays and duplicates
	rI      *rand.Rand // incidents
	artKey  uint64
	idTag   string
	epochMs int64
	spanEnd int64 // 0: none

	sessions minHeap[*session]
	delayed  minHeap[outEv]
	dups     []pendingDup
	dupSlack int64

	now         int64
	nextArrival int64
	arrivalMean float64 // mean ms between candidate arrivals
	dMax        float64
	sessSeq     uint64
	evSeq       uint64
	sent        int64
	owedOOO     int
	owedLate    int
	owedDup     int
	idBuf       []byte

	extraProfiles int // bot profiles, outside the population

	plan      []plannedIncident
	nextPlan  int
	incidents []*incident
	degrades  []*incident

	acc *accumulator
	ran bool
}

// outEv is an event on its way to the sink.
type outEv struct {
	sendAt  int64
	seq     uint64
	it      item
	s       *session
	delayed uint8 // delayNone, delayOOO, delayLate
}

const (
	delayNone = iota
	delayOOO
	delayLate
)

type pendingDup struct {
	ev       outEv
	after    int   // sends still to go before the copy is sent
	deadline int64 // the copy is sent before any send later than this
}

// Sessions per profile and day, browse-only sessions included.
const sessionsPerDay = 2.0

// diurnal is the relative session start rate by local hour.
var diurnal = [24]float64{0.35, 0.2, 0.12, 0.08, 0.06, 0.07, 0.12, 0.2, 0.28, 0.32, 0.35, 0.4, 0.48, 0.5, 0.5, 0.52, 0.58, 0.7, 0.85, 1.0, 1.0, 0.95, 0.8, 0.55}

func diurnalAt(localMs int64) float64 {
	const hourMs = 3_600_000
	h := ((localMs % (24 * hourMs)) + 24*hourMs) % (24 * hourMs)
	i := int(h / hourMs)
	f := float64(h%hourMs) / hourMs
	return diurnal[i]*(1-f) + diurnal[(i+1)%24]*f
}

// New builds the catalog and the population of a simulation. It returns an
// error when cfg does not validate.
func New(cfg Config) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cannot start the simulation: %w", err)
	}
	cfg = cfg.withDefaults()
	g := &Generator{cfg: cfg, rules: cfg.Rules, epochMs: cfg.Epoch.UnixMilli()}
	seed := cfg.Seed
	g.rT = rand.New(rand.NewPCG(seed, 0x7472616666696301))
	g.rD = rand.New(rand.NewPCG(seed, 0x64656c6976657202))
	g.rI = rand.New(rand.NewPCG(seed, 0x696e636964656e03))
	g.w = buildWorld(cfg, rand.New(rand.NewPCG(seed, 0x776f726c64000004)))
	g.artKey = mix64(seed ^ 0xa5a5a5a5)
	g.idTag = strconv.FormatUint(mix64(seed)>>32, 16)
	if cfg.Span > 0 {
		g.spanEnd = g.epochMs + cfg.Span.Milliseconds()
	}
	g.sessions.less = func(a, b **session) bool {
		ta, tb := (*a).next().t, (*b).next().t
		return ta < tb || ta == tb && (*a).seq < (*b).seq
	}
	g.delayed.less = func(a, b *outEv) bool {
		return a.sendAt < b.sendAt || a.sendAt == b.sendAt && a.seq < b.seq
	}
	g.dupSlack = min(1000, (cfg.Rules.Lateness.Milliseconds()+cfg.Rules.Grace.Milliseconds())/2)
	for _, d := range diurnal {
		g.dMax = math.Max(g.dMax, d)
	}
	mean := 0.0
	for _, d := range diurnal {
		mean += d / 24
	}
	// Candidate arrivals at the peak rate, thinned by the local hour.
	perMs := float64(len(g.w.profiles)) * sessionsPerDay / 86_400_000 * g.dMax / mean
	g.arrivalMean = 1 / perMs
	g.now = g.epochMs
	g.nextArrival = g.epochMs + int64(g.rT.ExpFloat64()*g.arrivalMean)
	g.acc = newAccumulator(g)
	if !cfg.NoIncidents {
		g.plan = incidentPlan
	}
	return g, nil
}

// Catalog returns the catalog records that Run publishes first. The caller
// must not modify them.
func (g *Generator) Catalog() []*schemas.Title { return g.acc.catalog }

// Run sends the catalog and then the events to sink, in send order, until
// Config.Events records were sent or simulated time reached Epoch+Span,
// then flushes the sink and returns the ground truth of what was sent. It
// stops early with ctx's error when ctx ends, or with the sink's error.
// A Generator runs once.
func (g *Generator) Run(ctx context.Context, sink Sink) (*Truth, error) {
	if g.ran {
		return nil, fmt.Errorf("cannot run the simulation: a Generator runs once")
	}
	g.ran = true
	for _, t := range g.acc.catalog {
		if err := sink.Send(ctx, t); err != nil {
			return nil, fmt.Errorf("cannot send catalog title %s: %w", t.TitleID, err)
		}
	}
	g.acc.sink = sink
	g.acc.ctx = ctx
	for iter := 0; ; iter++ {
		if iter&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("simulation stopped after %d events: %w", g.sent, err)
			}
		}
		if g.acc.err != nil {
			return nil, g.acc.err
		}
		if g.full() {
			break
		}
		g.checkPlan()
		tA := g.nextArrival
		tS, tD := int64(math.MaxInt64), int64(math.MaxInt64)
		if g.sessions.len() > 0 {
			tS = (*g.sessions.top()).next().t
		}
		if g.delayed.len() > 0 {
			tD = g.delayed.top().sendAt
		}
		t := min(tA, tS, tD)
		if g.spanEnd > 0 && t >= g.spanEnd {
			break
		}
		g.now = t
		switch {
		case tD == t:
			g.emit(g.delayed.pop())
		case tS == t:
			g.step()
		default:
			g.arrive()
		}
	}
	if g.acc.err != nil {
		return nil, g.acc.err
	}
	if err := sink.Flush(ctx); err != nil {
		return nil, fmt.Errorf("cannot flush the simulated events: %w", err)
	}
	return g.acc.finish(), nil
}

// full reports whether Config.Events records have been sent.
func (g *Generator) full() bool { return g.cfg.Events > 0 && g.sent >= g.cfg.Events }

// progress is how far the run is, 0..1, for the incident plan.
func (g *Generator) progress() float64 {
	if g.cfg.Events > 0 {
		return float64(g.sent) / float64(g.cfg.Events)
	}
	return float64(g.now-g.epochMs) / float64(g.spanEnd-g.epochMs)
}

// step sends (or delays) the next event of the earliest session.
func (g *Generator) step() {
	s := *g.sessions.top()
	it := *s.next()
	s.head++
	if s.head == len(s.pending) {
		if g.refill(s) {
			if s.next().t < it.t {
				panic("BUG: session " + s.id + " generated an event before its previous one")
			}
			g.sessions.fixTop()
		} else {
			g.sessions.pop()
			g.endSession(s)
		}
	} else {
		g.sessions.fixTop()
	}
	if s.startT == 0 {
		s.startT = it.t
	}
	s.lastT = it.t
	if s.inc != nil {
		s.inc.seen(it.t)
	}
	// Stamp the event id in generation order.
	g.evSeq++
	g.idBuf = append(g.idBuf[:0], "ev-"...)
	g.idBuf = append(g.idBuf, g.idTag...)
	g.idBuf = append(g.idBuf, '-')
	g.idBuf = strconv.AppendUint(g.idBuf, g.evSeq, 36)
	id := string(g.idBuf)
	if it.pb != nil {
		it.pb.EventID = id
	} else {
		it.bw.EventID = id
	}
	ev := outEv{sendAt: it.t, seq: g.evSeq, it: it, s: s}

	// Delivery: owe a delay with the configured probability, pay it on the
	// next heartbeat, so that the rates hold over all events.
	r := g.rD
	if r.Float64() < g.cfg.OutOfOrderRate {
		g.owedOOO++
	}
	if r.Float64() < g.cfg.LateRate {
		g.owedLate++
	}
	if it.pb != nil && it.pb.Kind == schemas.PlayHeartbeat {
		lg := g.rules.Lateness.Milliseconds() + g.rules.Grace.Milliseconds()
		switch {
		case g.owedLate > 0:
			g.owedLate--
			ev.delayed = delayLate
			ev.sendAt += g.rules.Window.Milliseconds() + lg + 1000 + r.Int64N(120_000)
		case g.owedOOO > 0 && lg > 0:
			g.owedOOO--
			ev.delayed = delayOOO
			ev.sendAt += 1 + r.Int64N(lg)
		}
	}
	if ev.delayed != delayNone {
		g.delayed.push(ev)
		return
	}
	g.emit(ev)
}

// emit sends one event at g.now, with the duplicates that are due.
func (g *Generator) emit(ev outEv) {
	// Copies whose deadline passes before this send go first.
	for i := 0; i < len(g.dups); {
		if g.dups[i].deadline < ev.sendAt {
			d := g.dups[i]
			g.dups = append(g.dups[:i], g.dups[i+1:]...)
			if !g.full() {
				g.send(d.ev, true)
			}
			continue
		}
		i++
	}
	if g.full() {
		return
	}
	g.send(ev, false)
	for i := 0; i < len(g.dups); {
		g.dups[i].after--
		if g.dups[i].after <= 0 {
			d := g.dups[i]
			g.dups = append(g.dups[:i], g.dups[i+1:]...)
			if !g.full() {
				g.send(d.ev, true)
			}
			continue
		}
		i++
	}
	// Only events sent without an injected delay are duplicated: their copy,
	// at most dupSlack later, cannot be late (see the package doc).
	if g.rD.Float64() < g.cfg.DuplicateRate {
		g.owedDup++
	}
	if ev.delayed == delayNone && g.owedDup > 0 {
		g.owedDup--
		g.dups = append(g.dups, pendingDup{ev: ev, after: 1 + g.rD.IntN(4), deadline: ev.sendAt + g.dupSlack})
	}
}

func (g *Generator) send(ev outEv, dup bool) {
	if !dup {
		if ev.it.pb != nil {
			ev.it.pb.ReceiveTime = ev.sendAt
		} else {
			ev.it.bw.ReceiveTime = ev.sendAt
		}
	}
	g.sent++
	g.acc.add(&ev, dup)
}

// arrive handles one candidate session arrival.
func (g *Generator) arrive() {
	r := g.rT
	t := g.nextArrival
	g.nextArrival = t + 1 + int64(r.ExpFloat64()*g.arrivalMean)
	p := g.w.profiles[r.IntN(len(g.w.profiles))]
	city := geo.Cities()[p.acc.city]
	if r.Float64()*g.dMax >= diurnalAt(t+int64(city.UTCOffsetMin)*60_000) {
		return
	}
	a := p.acc
	if p.active || a.active >= a.streams || t < a.reserved {
		return
	}
	s := g.newSession(p, p.devices[r.IntN(len(p.devices))], kindNormal)
	s.city = a.city
	s.cc = g.w.cityCC[a.city]
	s.net = s.dev.net
	s.isp = s.cc*4 + s.dev.slot
	s.cdn = g.pickCDN(s.isp)
	p.active = true
	a.active++
	g.browse(s, t)
	g.schedule(s)
}

func (g *Generator) pickCDN(isp int) int {
	w := g.w.cdnW[isp]
	u := g.rT.Float64() * (w[0] + w[1] + w[2])
	switch {
	case u < w[0]:
		return 0
	case u < w[0]+w[1]:
		return 1
	}
	return 2
}

func (g *Generator) newSession(p *profile, d *device, kind uint8) *session {
	g.sessSeq++
	return &session{
		id:   "ses-" + g.idTag + "-" + strconv.FormatUint(g.sessSeq, 36),
		seq:  g.sessSeq,
		kind: kind,
		prof: p,
		dev:  d,
		ti:   -1,
	}
}

// schedule puts a session with generated events on the heap, or ends it.
func (g *Generator) schedule(s *session) {
	if len(s.pending) == 0 && !g.refill(s) {
		g.endSession(s)
		return
	}
	g.sessions.push(s)
}

func (g *Generator) endSession(s *session) {
	if s.kind == kindNormal {
		s.prof.active = false
		s.prof.acc.active--
	}
	if s.inc != nil {
		s.inc.live--
	}
}

// degraded reports whether a session's CDN × ISP × country is inside a
// planted quality incident at t.
func (g *Generator) degraded(s *session, t int64) bool {
	for _, inc := range g.degrades {
		if t >= inc.Start && t < inc.End && s.cdn == inc.cdn && s.isp == inc.isp && s.cc == inc.cc {
			return true
		}
	}
	return false
}
