package sim

import (
	"slices"
	"strconv"

	"github.com/atlas-stream/atlas/producers/sim/geo"
	"github.com/atlas-stream/atlas/schemas"
)

// Incident kinds, as recorded in the ground truth.
const (
	IncidentQuality            = "quality_degradation"
	IncidentAccountSharing     = "account_sharing"
	IncidentImpossibleTravel   = "impossible_travel"
	IncidentBot                = "bot"
	IncidentCredentialStuffing = "credential_stuffing"
)

// Incident is one planted anomaly. Start and End are event times in ms,
// End exclusive: for a quality incident the range in which the degradation
// is switched on; for the others, from the first to just after the last
// planted event.
type Incident struct {
	Kind    string `json:"kind"`
	Subject string `json:"subject"`
	Start   int64  `json:"start"`
	End     int64  `json:"end"`
	// Truncated is set when the run stopped before the incident was over.
	Truncated bool     `json:"truncated,omitempty"`
	Accounts  []string `json:"accounts,omitempty"`
	Profiles  []string `json:"profiles,omitempty"`
	Devices   []string `json:"devices,omitempty"`
	Networks  []string `json:"networks,omitempty"`
	// Evidence holds what a detector should be able to see, by name.
	Evidence map[string]string `json:"evidence,omitempty"`
}

// incident is an Incident while it is being planted.
type incident struct {
	Incident
	eventBased   bool
	first, last  int64
	events       int
	live         int // planted sessions not over yet
	cdn, isp, cc int
	travel       [2]*session
}

func (inc *incident) seen(t int64) {
	if inc.events == 0 || t < inc.first {
		inc.first = t
	}
	if t > inc.last {
		inc.last = t
	}
	inc.events++
}

type plannedIncident struct {
	at   float64 // progress of the run (0..1) at which it is planted
	kind string
}

// incidentPlan is when each incident is planted, as a fraction of the run
// (events sent, or simulated time with a Span only).
var incidentPlan = []plannedIncident{
	{0.05, IncidentQuality},
	{0.12, IncidentAccountSharing},
	{0.20, IncidentImpossibleTravel},
	{0.28, IncidentBot},
	{0.36, IncidentCredentialStuffing},
	{0.48, IncidentQuality},
	{0.55, IncidentAccountSharing},
	{0.62, IncidentImpossibleTravel},
	{0.70, IncidentBot},
	{0.78, IncidentCredentialStuffing},
}

const minuteMs = 60_000

// Durations of the planted incidents.
const (
	qualityMs   = 15 * minuteMs
	sharingMs   = 45 * minuteMs
	botMs       = 10 * minuteMs
	stuffingMs  = 4 * minuteMs
	stuffingN   = 40
	sharingDevs = 6
)

func (g *Generator) checkPlan() {
	for g.nextPlan < len(g.plan) && g.progress() >= g.plan[g.nextPlan].at {
		kind := g.plan[g.nextPlan].kind
		nth := 0
		for _, p := range g.plan[:g.nextPlan] {
			if p.kind == kind {
				nth++
			}
		}
		g.nextPlan++
		// Start on a window boundary a little ahead, so that sessions already
		// running are not cut.
		start := g.rules.WindowStart(g.now) + 2*g.rules.Window.Milliseconds()
		var inc *incident
		switch kind {
		case IncidentQuality:
			inc = g.plantQuality(start, nth)
		case IncidentAccountSharing:
			inc = g.plantSharing(start)
		case IncidentImpossibleTravel:
			inc = g.plantTravel(start)
		case IncidentBot:
			inc = g.plantBot(start)
		case IncidentCredentialStuffing:
			inc = g.plantStuffing(start)
		}
		if inc != nil {
			g.incidents = append(g.incidents, inc)
		}
	}
}

// plantQuality degrades the nth busiest CDN × ISP × country.
func (g *Generator) plantQuality(start int64, nth int) *incident {
	type triple struct {
		cdn, isp, cc int
		w            float64
	}
	weight := make(map[[2]int]float64)
	for _, p := range g.w.profiles {
		for _, d := range p.devices {
			cc := g.w.cityCC[p.acc.city]
			weight[[2]int{cc, cc*4 + d.slot}] += 1
		}
	}
	var ts []triple
	for k, w := range weight {
		cw := g.w.cdnW[k[1]]
		sum := cw[0] + cw[1] + cw[2]
		for c := range cdns {
			ts = append(ts, triple{c, k[1], k[0], w * cw[c] / sum})
		}
	}
	slices.SortFunc(ts, func(a, b triple) int {
		switch {
		case a.w > b.w:
			return -1
		case a.w < b.w:
			return 1
		}
		return (a.isp*8 + a.cdn) - (b.isp*8 + b.cdn)
	})
	if nth >= len(ts) {
		return nil
	}
	t := ts[nth]
	inc := &incident{Incident: Incident{Kind: IncidentQuality, Start: start, End: start + qualityMs,
		Subject: "cdn:" + cdns[t.cdn] + "|isp:" + g.w.isps[t.isp] + "|cc:" + g.w.countries[t.cc]},
		cdn: t.cdn, isp: t.isp, cc: t.cc}
	g.degrades = append(g.degrades, inc)
	return inc
}

// pickAccount draws a population account that no incident uses yet.
// It returns nil when it finds none (a tiny population).
func (g *Generator) pickAccount(used map[*account]bool) *account {
	for range 1000 {
		a := g.w.accounts[g.rI.IntN(len(g.w.accounts))]
		if a.reserved == 0 && !used[a] {
			return a
		}
	}
	return nil
}

// forcedPlay plants a playback session of fixed length.
func (g *Generator) forcedPlay(inc *incident, p *profile, d *device, city int, net string, slot int, t int64, watchMs int64) *session {
	s := g.newSession(p, d, kindForced)
	s.inc = inc
	s.city = city
	s.cc = g.w.cityCC[city]
	s.net = net
	s.isp = s.cc*4 + slot
	s.cdn = g.pickCDN(s.isp)
	s.forceMs = watchMs
	ti := g.w.sampleTitle(g.rI)
	g.startPlayback(s, t, ti, 0, -1, -1)
	inc.live++
	g.schedule(s)
	return s
}

func (g *Generator) newDevice(a *account, n int, typ schemas.DeviceType, net string, slot int) *device {
	for _, dw := range deviceWeights {
		if dw.t == typ {
			return &device{id: "dev-" + strconv.Itoa(a.idx+1) + "-" + strconv.Itoa(n), typ: typ,
				dt: slices.Index(schemas.DeviceTypes, typ), app: dw.app, net: net, slot: slot,
				mobile: typ == schemas.DeviceMobile}
		}
	}
	panic("BUG: unknown device type " + string(typ))
}

// plantSharing uses one account from six new devices in four cities abroad
// within 45 minutes.
func (g *Generator) plantSharing(start int64) *incident {
	r := g.rI
	a := g.pickAccount(nil)
	if a == nil {
		return nil
	}
	a.reserved = start + sharingMs + 30*minuteMs
	home := geo.Cities()[a.city].Country
	var cities []int
	countries := map[string]bool{}
	for _, c := range r.Perm(len(geo.Cities())) {
		cc := geo.Cities()[c].Country
		if cc == home || countries[cc] {
			continue
		}
		countries[cc] = true
		cities = append(cities, c)
		if len(cities) == 4 {
			break
		}
	}
	inc := &incident{Incident: Incident{Kind: IncidentAccountSharing, Subject: "account:" + a.id, Accounts: []string{a.id}}, eventBased: true}
	types := []schemas.DeviceType{schemas.DeviceTV, schemas.DeviceMobile, schemas.DeviceWeb, schemas.DeviceTablet, schemas.DeviceDesktop, schemas.DeviceMobile}
	var ccs []string
	for k := 0; k < sharingDevs; k++ {
		city := cities[k%len(cities)]
		slot := r.IntN(3)
		net := clientNet(g.w.netKey, geo.Prefix(city, slot, r.IntN(1<<14)), 2+r.IntN(250))
		d := g.newDevice(a, 10+len(a.devices)+k, types[k], net, slot)
		p := a.profiles[k%len(a.profiles)]
		t := start + int64(k)*7*minuteMs + r.Int64N(minuteMs)
		g.forcedPlay(inc, p, d, city, net, slot, t, int64(12+r.IntN(9))*minuteMs)
		inc.Devices = append(inc.Devices, d.id)
		inc.Networks = append(inc.Networks, net)
		if !slices.Contains(inc.Profiles, p.id) {
			inc.Profiles = append(inc.Profiles, p.id)
		}
		if cc := geo.Cities()[city].Country; !slices.Contains(ccs, cc) {
			ccs = append(ccs, cc)
		}
	}
	slices.Sort(inc.Profiles)
	inc.Evidence = map[string]string{
		"devices":   strconv.Itoa(sharingDevs),
		"countries": joinSorted(ccs),
		"home":      home,
		"plan":      a.plan,
	}
	return inc
}

func joinSorted(s []string) string {
	s = slices.Clone(s)
	slices.Sort(s)
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ","
		}
		out += x
	}
	return out
}

// plantTravel plays one profile at home, then, 25 to 35 minutes later,
// from a city at least 5,000 km away.
func (g *Generator) plantTravel(start int64) *incident {
	r := g.rI
	a := g.pickAccount(nil)
	if a == nil {
		return nil
	}
	a.reserved = start + 90*minuteMs
	p := a.profiles[0]
	from := geo.Cities()[a.city]
	to := -1
	for _, c := range r.Perm(len(geo.Cities())) {
		if geo.DistanceKm(from, geo.Cities()[c]) >= 5000 {
			to = c
			break
		}
	}
	if to < 0 {
		return nil
	}
	inc := &incident{Incident: Incident{Kind: IncidentImpossibleTravel, Subject: "account:" + a.id,
		Accounts: []string{a.id}, Profiles: []string{p.id}}, eventBased: true}
	d1 := p.devices[0]
	s1 := g.forcedPlay(inc, p, d1, a.city, d1.net, d1.slot, start, int64(8+r.IntN(5))*minuteMs)
	net := clientNet(g.w.netKey, geo.Prefix(to, geo.SlotMobile, r.IntN(1<<14)), 2+r.IntN(250))
	d2 := g.newDevice(a, 30+len(a.devices), schemas.DeviceMobile, net, geo.SlotMobile)
	s2 := g.forcedPlay(inc, p, d2, to, net, geo.SlotMobile, start+25*minuteMs+r.Int64N(10*minuteMs), int64(8+r.IntN(5))*minuteMs)
	inc.travel = [2]*session{s1, s2}
	inc.Devices = []string{d1.id, d2.id}
	inc.Networks = []string{d1.net, net}
	tc := geo.Cities()[to]
	inc.Evidence = map[string]string{
		"from": from.Name + "," + from.Country,
		"to":   tc.Name + "," + tc.Country,
		"km":   strconv.Itoa(int(geo.DistanceKm(from, tc))),
	}
	return inc
}

// extraAccount creates an account outside the population (bots).
func (g *Generator) extraAccount(city int) (*account, *profile) {
	idx := len(g.w.accounts)
	a := &account{idx: idx, id: "acc-" + strconv.Itoa(idx+1), plan: "basic", streams: 1, city: city, reserved: -1}
	p := &profile{idx: len(g.w.profiles) + g.extraProfiles, id: "pro-" + strconv.Itoa(idx+1) + "-1", acc: a}
	g.extraProfiles++
	p.part = partitionOf(p.id, g.acc.parts)
	a.profiles = []*profile{p}
	g.w.accounts = append(g.w.accounts, a)
	return a, p
}

// plantBot browses from a hosting network at 5 impressions per second with
// near-constant spacing and no dwell, for 10 minutes.
func (g *Generator) plantBot(start int64) *incident {
	r := g.rI
	city := r.IntN(len(geo.Cities()))
	a, p := g.extraAccount(city)
	net := clientNet(g.w.netKey, geo.Prefix(city, geo.SlotHosting, r.IntN(1<<14)), 2+r.IntN(250))
	d := g.newDevice(a, 1, schemas.DeviceWeb, net, geo.SlotHosting)
	a.devices = []*device{d}
	p.devices = a.devices
	inc := &incident{Incident: Incident{Kind: IncidentBot, Subject: "account:" + a.id, Accounts: []string{a.id},
		Profiles: []string{p.id}, Devices: []string{d.id}, Networks: []string{net}}, eventBased: true}
	s := g.newSession(p, d, kindBot)
	s.inc = inc
	s.city, s.cc, s.net = city, g.w.cityCC[city], net
	s.isp = s.cc*4 + geo.SlotHosting
	s.chunkT = start
	s.botEnd = start + botMs
	s.phase = phasePlay
	s.botStep = r.IntN(len(g.w.titles))
	inc.live++
	g.schedule(s)
	inc.Evidence = map[string]string{"rate_per_s": "5", "interval_ms": "200±3", "dwell_ms": "0"}
	return inc
}

// botChunk generates the next 50 impressions of a bot.
func (g *Generator) botChunk(s *session) {
	r := g.rI
	for i := 0; i < 50; i++ {
		if s.chunkT >= s.botEnd {
			s.phase = phaseDone
			return
		}
		ti := s.botStep % len(g.w.titles)
		row := rowTrending + (s.botStep/10)%(rowSearch-rowTrending)
		g.addBrowse(s, s.chunkT, schemas.BrowseImpression, ti, row, s.botStep%10, g.w.titles[ti].artBase, 0)
		s.botStep++
		s.chunkT += 197 + r.Int64N(7)
	}
}

// plantStuffing logs 40 accounts in from one hosting /24 within 4 minutes.
func (g *Generator) plantStuffing(start int64) *incident {
	r := g.rI
	city := r.IntN(len(geo.Cities()))
	prefix := geo.Prefix(city, geo.SlotHosting, r.IntN(1<<14))
	inc := &incident{Incident: Incident{Kind: IncidentCredentialStuffing, Subject: "net:" + prefix + "/24"}, eventBased: true}
	used := map[*account]bool{}
	for k := 0; k < stuffingN; k++ {
		a := g.pickAccount(used)
		if a == nil {
			break
		}
		used[a] = true
		p := a.profiles[0]
		net := clientNet(g.w.netKey, prefix, 10+r.IntN(20))
		d := g.newDevice(a, 50+len(a.devices)+g.nextPlan, schemas.DeviceWeb, net, geo.SlotHosting)
		s := g.newSession(p, d, kindStuffing)
		s.inc = inc
		s.city, s.cc, s.net = city, g.w.cityCC[city], net
		s.isp = s.cc*4 + geo.SlotHosting
		t := start + int64(k)*stuffingMs/stuffingN + r.Int64N(2000)
		n := 1 + r.IntN(3)
		for i := 0; i < n; i++ {
			ti := g.w.top10[i]
			g.addBrowse(s, t, schemas.BrowseImpression, ti, rowTop10, i, g.artFor(p, ti), 50+r.Int64N(100))
			t += 150 + r.Int64N(300)
		}
		s.phase = phaseDone
		inc.live++
		g.schedule(s)
		inc.Accounts = append(inc.Accounts, a.id)
		inc.Profiles = append(inc.Profiles, p.id)
		inc.Devices = append(inc.Devices, d.id)
	}
	slices.Sort(inc.Accounts)
	slices.Sort(inc.Profiles)
	slices.Sort(inc.Devices)
	inc.Networks = []string{prefix + "/24"}
	inc.Evidence = map[string]string{"accounts": strconv.Itoa(stuffingN), "within_ms": strconv.Itoa(stuffingMs)}
	return inc
}
