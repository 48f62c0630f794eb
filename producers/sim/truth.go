package sim

import (
	"bufio"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/atlas-stream/atlas/internal/eventtime"
	"github.com/atlas-stream/atlas/schemas"
	"github.com/atlas-stream/atlas/topology"
)

// TruthVersion is the version of the ground-truth file format.
const TruthVersion = 1

// Truth is the ground truth of one run: what was sent, and the aggregates,
// late events and incidents that a correct Atlas must find in it. See the
// package doc for the exact definitions.
type Truth struct {
	Version    int              `json:"version"`
	Params     Params           `json:"params"`
	Totals     Totals           `json:"totals"`
	Partitions []PartitionTotal `json:"partitions"`
	// Playback, Quality and Funnel are the expected aggregates, sorted by
	// window and then by their dimensions (byte order of the strings).
	Playback []PlaybackRow `json:"playback"`
	Quality  []QualityRow  `json:"quality"`
	Funnel   []FunnelRow   `json:"funnel"`
	// Late lists every late event in send order.
	Late []LateEvent `json:"late"`
	// Duplicates lists the event id of every duplicate send, in send order.
	Duplicates []string   `json:"duplicates"`
	Incidents  []Incident `json:"incidents"`
	// Profiles and Titles hold the latent vectors the traffic was drawn
	// from, in id order of the population and catalog.
	Profiles []ProfileTaste `json:"profiles"`
	Titles   []TitleVector  `json:"titles"`
}

// Params are the inputs of the run.
type Params struct {
	Seed           uint64  `json:"seed"`
	Epoch          string  `json:"epoch"`
	EpochMs        int64   `json:"epoch_ms"`
	Events         int64   `json:"events"`
	SpanMs         int64   `json:"span_ms"`
	Profiles       int     `json:"profiles"`
	Accounts       int     `json:"accounts"`
	Titles         int     `json:"titles"`
	Partitions     int     `json:"partitions"`
	OutOfOrderRate float64 `json:"out_of_order_rate"`
	LateRate       float64 `json:"late_rate"`
	DuplicateRate  float64 `json:"duplicate_rate"`
	Incidents      bool    `json:"incidents"`
	WindowMs       int64   `json:"window_ms"`
	LatenessMs     int64   `json:"lateness_ms"`
	GraceMs        int64   `json:"grace_ms"`
}

// Rules returns the event-time rules of the run.
func (p Params) Rules() eventtime.Rules {
	return eventtime.Rules{Window: time.Duration(p.WindowMs) * time.Millisecond,
		Lateness: time.Duration(p.LatenessMs) * time.Millisecond, Grace: time.Duration(p.GraceMs) * time.Millisecond}
}

// Totals count what was sent to the event topics.
type Totals struct {
	// Sent counts every send, duplicates included; Unique the distinct
	// event ids; Duplicates = Sent − Unique.
	Sent       int64 `json:"sent"`
	Unique     int64 `json:"unique"`
	Duplicates int64 `json:"duplicates"`
	// Late counts unique events that were late by the watermark rule.
	Late int64 `json:"late"`
	// OutOfOrder counts unique events whose event time was below the
	// largest event time already sent to their partition (late ones too).
	OutOfOrder int64 `json:"out_of_order"`
	// DelayedOutOfOrder and DelayedLate count the heartbeats the
	// simulator held back meaning them to be out of order (but on time)
	// and late; Late and OutOfOrder say what they turned out to be.
	DelayedOutOfOrder int64 `json:"delayed_out_of_order"`
	DelayedLate       int64 `json:"delayed_late"`
	// LateDuplicateCopies counts duplicate copies that were late by the
	// rule; the design keeps it 0 (see the package doc).
	LateDuplicateCopies int64 `json:"late_duplicate_copies"`
	Playback            int64 `json:"playback"` // unique playback events
	Browse              int64 `json:"browse"`   // unique browse events
	Catalog             int64 `json:"catalog"`  // catalog records
	Sessions            int64 `json:"sessions,omitzero"`
	FirstEventMs        int64 `json:"first_event_ms"`
	LastEventMs         int64 `json:"last_event_ms"`
}

// PartitionTotal is what one partition of an event topic received.
type PartitionTotal struct {
	Topic     string `json:"topic"` // logical name, e.g. atlas.playback.v1
	Partition int    `json:"partition"`
	Sent      int64  `json:"sent"`
	Late      int64  `json:"late"`
	// MaxEventMs is the largest event time sent to the partition; the
	// final watermark is MaxEventMs − lateness.
	MaxEventMs int64 `json:"max_event_ms"`
}

// PlaybackRow is the expected playback aggregate of one window × title ×
// country × device type.
type PlaybackRow struct {
	Window     int64              `json:"w"`
	TitleID    string             `json:"title"`
	Country    string             `json:"cc"`
	DeviceType schemas.DeviceType `json:"dt"`
	Starts     int64              `json:"starts,omitzero"`
	Completes  int64              `json:"completes,omitzero"`
	WatchMs    int64              `json:"watch_ms,omitzero"`
	Viewers    int64              `json:"viewers,omitzero"`
	Dropoff    [10]int64          `json:"dropoff,omitzero"`
}

// QualityRow is the expected quality aggregate of one window × CDN × ISP ×
// country.
type QualityRow struct {
	Window         int64  `json:"w"`
	CDN            string `json:"cdn"`
	ISP            string `json:"isp"`
	Country        string `json:"cc"`
	Sessions       int64  `json:"sessions,omitzero"`
	Rebuffers      int64  `json:"rebuffers,omitzero"`
	RebufferMs     int64  `json:"rebuffer_ms,omitzero"`
	StartFailures  int64  `json:"start_failures,omitzero"`
	Errors         int64  `json:"errors,omitzero"`
	BitrateSum     int64  `json:"bitrate_sum,omitzero"`
	BitrateSamples int64  `json:"bitrate_samples,omitzero"`
}

// FunnelRow is the expected browse funnel of one window × row × artwork.
type FunnelRow struct {
	Window      int64  `json:"w"`
	Row         string `json:"row"`
	ArtworkID   string `json:"art"`
	Impressions int64  `json:"impressions,omitzero"`
	Selects     int64  `json:"selects,omitzero"`
	Plays       int64  `json:"plays,omitzero"`
}

// LateEvent is one event that was late by the rule.
type LateEvent struct {
	EventID   string `json:"id"`
	Window    int64  `json:"w"`
	Topic     string `json:"topic"`
	Partition int    `json:"p"`
}

// ProfileTaste is a profile's planted taste: where its intents come from
// (see the package doc, "Taste") and a latent vector that follows its
// genres.
type ProfileTaste struct {
	ProfileID string    `json:"id"`
	AccountID string    `json:"acc"`
	Taste     []float32 `json:"taste"`
	// Favourites are the profile's taste communities, each with the share
	// of its sessions it is the intent of.
	Favourites []TasteSource `json:"favourites"`
	// Explore is the share of sessions without a particular intent.
	Explore float64 `json:"explore"`
}

// TasteSource is a favourite community of a profile, named by its main
// genre, its language if it has one, and a number ("drama-ko-1"), and the
// share of the profile's sessions it is the intent of.
type TasteSource struct {
	Community string  `json:"community"`
	Share     float64 `json:"share"`
}

// TitleVector is a title's latent vector, its taste community and its
// popularity (the share of picks it can expect; see the package doc,
// "Taste").
type TitleVector struct {
	TitleID    string    `json:"id"`
	Vector     []float32 `json:"vec"`
	Community  string    `json:"community"`
	Popularity float64   `json:"pop"`
}

// --- accumulation --------------------------------------------------------

type pbAgg struct {
	starts, completes, watch, viewers int64
	dropoff                           [10]int64
}

type qAgg struct {
	sessions, rebuffers, rebufferMs, startFailures, errors, bitrateSum, bitrateSamples int64
}

type fnAgg struct{ impressions, selects, plays int64 }

type viewerKey struct {
	k uint64
	p int32
}

// accumulator computes the truth as events are sent, with integer keys for
// speed; finish turns it into sorted rows with names.
type accumulator struct {
	g       *Generator
	sink    Sink
	ctx     context.Context
	err     error
	catalog []*schemas.Title
	parts   []int
	wm      [2][]*eventtime.Watermark
	pt      [2][]PartitionTotal
	wMs     int64
	w0      int64
	pb      map[uint64]*pbAgg
	viewers map[viewerKey]struct{}
	q       map[uint64]*qAgg
	fn      map[uint64]*fnAgg
	late    []LateEvent
	dupIDs  []string
	totals  Totals
}

var topicNames = [2]string{string(topology.Playback), string(topology.Browse)}

func newAccumulator(g *Generator) *accumulator {
	a := &accumulator{g: g, catalog: g.w.catalogRecords(), wMs: g.rules.Window.Milliseconds(),
		pb: map[uint64]*pbAgg{}, viewers: map[viewerKey]struct{}{}, q: map[uint64]*qAgg{}, fn: map[uint64]*fnAgg{}}
	a.w0 = g.rules.WindowStart(g.epochMs)
	for i := 0; i < g.cfg.Partitions; i++ {
		a.parts = append(a.parts, i)
		for k := range a.wm {
			a.wm[k] = append(a.wm[k], g.rules.NewWatermark())
			a.pt[k] = append(a.pt[k], PartitionTotal{Topic: topicNames[k], Partition: i, MaxEventMs: eventtime.None})
		}
	}
	a.totals.FirstEventMs = eventtime.None
	a.totals.LastEventMs = eventtime.None
	return a
}

func (a *accumulator) add(ev *outEv, dup bool) {
	topic := 0
	var rec schemas.Record
	var t int64
	var id string
	if ev.it.pb != nil {
		rec, t, id = ev.it.pb, ev.it.pb.EventTime, ev.it.pb.EventID
	} else {
		topic = 1
		rec, t, id = ev.it.bw, ev.it.bw.EventTime, ev.it.bw.EventID
	}
	part := ev.s.prof.part
	w := a.wm[topic][part]
	late := w.IsLate(t)
	ooo := t < w.MaxEventTime()
	w.Observe(t)
	if err := a.sink.Send(a.ctx, rec); err != nil {
		a.err = fmt.Errorf("cannot send event %s: %w", id, err)
		return
	}
	pt := &a.pt[topic][part]
	pt.Sent++
	pt.MaxEventMs = w.MaxEventTime()
	a.totals.Sent++
	if dup {
		a.totals.Duplicates++
		a.dupIDs = append(a.dupIDs, id)
		if late {
			a.totals.LateDuplicateCopies++
		}
		return
	}
	a.totals.Unique++
	if topic == 0 {
		a.totals.Playback++
	} else {
		a.totals.Browse++
	}
	if a.totals.FirstEventMs == eventtime.None || t < a.totals.FirstEventMs {
		a.totals.FirstEventMs = t
	}
	a.totals.LastEventMs = max(a.totals.LastEventMs, t)
	switch ev.delayed {
	case delayOOO:
		a.totals.DelayedOutOfOrder++
	case delayLate:
		a.totals.DelayedLate++
	}
	if ooo {
		a.totals.OutOfOrder++
	}
	win := a.g.rules.WindowStart(t)
	if late {
		a.totals.Late++
		pt.Late++
		a.late = append(a.late, LateEvent{EventID: id, Window: win, Topic: topicNames[topic], Partition: part})
		return
	}
	wi := uint64((win - a.w0) / a.wMs)
	s := ev.s
	if topic == 1 {
		e := ev.it.bw
		if ev.it.row < 0 || e.Row == "" {
			return
		}
		switch e.Kind {
		case schemas.BrowseImpression:
			a.funnel(wi, ev.it.row, ev.it.art).impressions++
		case schemas.BrowseSelect:
			a.funnel(wi, ev.it.row, ev.it.art).selects++
		}
		return
	}
	e := ev.it.pb
	pk := wi<<29 | uint64(ev.it.ti)<<9 | uint64(s.cc)<<3 | uint64(s.dev.dt)
	pa := a.pb[pk]
	if pa == nil {
		pa = &pbAgg{}
		a.pb[pk] = pa
	}
	pa.watch += e.WatchedMs
	vk := viewerKey{pk, int32(s.prof.idx)}
	if _, ok := a.viewers[vk]; !ok {
		a.viewers[vk] = struct{}{}
		pa.viewers++
	}
	switch e.Kind {
	case schemas.PlayStart:
		pa.starts++
		a.quality(wi, s).sessions++
		if ev.it.row >= 0 && e.SourceRow != "" {
			a.funnel(wi, ev.it.row, ev.it.art).plays++
		}
	case schemas.PlayComplete:
		pa.completes++
	case schemas.PlayStop:
		pa.dropoff[decile(e.PositionMs, e.DurationMs)]++
	case schemas.PlayRebuffer:
		q := a.quality(wi, s)
		q.rebuffers++
		q.rebufferMs += e.RebufferMs
	case schemas.PlayError:
		q := a.quality(wi, s)
		q.errors++
		if e.PositionMs == 0 {
			q.startFailures++
		}
	case schemas.PlayHeartbeat:
		q := a.quality(wi, s)
		q.bitrateSum += e.BitrateKbps
		q.bitrateSamples++
	}
}

// decile is the drop-off bucket of a stop: floor(10·pos/dur), clamped to
// 0..9 (0 when the duration is unknown).
func decile(pos, dur int64) int {
	if dur <= 0 {
		return 0
	}
	return int(max(0, min(9, 10*pos/dur)))
}

func (a *accumulator) quality(wi uint64, s *session) *qAgg {
	k := wi<<16 | uint64(s.cdn)<<14 | uint64(s.isp)<<6 | uint64(s.cc)
	q := a.q[k]
	if q == nil {
		q = &qAgg{}
		a.q[k] = q
	}
	return q
}

func (a *accumulator) funnel(wi uint64, row int8, art int32) *fnAgg {
	k := wi<<28 | uint64(row)<<24 | uint64(art)
	f := a.fn[k]
	if f == nil {
		f = &fnAgg{}
		a.fn[k] = f
	}
	return f
}

func (a *accumulator) finish() *Truth {
	g := a.g
	w := g.w
	cfg := g.cfg
	t := &Truth{Version: TruthVersion}
	t.Params = Params{
		Seed: cfg.Seed, Epoch: cfg.Epoch.UTC().Format(time.RFC3339Nano), EpochMs: g.epochMs, Events: cfg.Events,
		SpanMs: cfg.Span.Milliseconds(), Profiles: len(w.profiles), Accounts: len(w.accounts) - g.extraAccounts(),
		Titles: len(w.titles), Partitions: cfg.Partitions, OutOfOrderRate: cfg.OutOfOrderRate, LateRate: cfg.LateRate,
		DuplicateRate: cfg.DuplicateRate, Incidents: !cfg.NoIncidents, WindowMs: g.rules.Window.Milliseconds(),
		LatenessMs: g.rules.Lateness.Milliseconds(), GraceMs: g.rules.Grace.Milliseconds(),
	}
	t.Totals = a.totals
	t.Totals.Catalog = int64(len(a.catalog))
	t.Totals.Sessions = int64(g.sessSeq)
	for k := range a.pt {
		t.Partitions = append(t.Partitions, a.pt[k]...)
	}
	win := func(wi uint64) int64 { return a.w0 + int64(wi)*a.wMs }

	t.Playback = make([]PlaybackRow, 0, len(a.pb))
	for k, v := range a.pb {
		t.Playback = append(t.Playback, PlaybackRow{Window: win(k >> 29), TitleID: w.titles[(k>>9)&(1<<20-1)].id,
			Country: w.countries[(k>>3)&63], DeviceType: schemas.DeviceTypes[k&7], Starts: v.starts, Completes: v.completes,
			WatchMs: v.watch, Viewers: v.viewers, Dropoff: v.dropoff})
	}
	slices.SortFunc(t.Playback, func(x, y PlaybackRow) int {
		return cmp.Or(cmp.Compare(x.Window, y.Window), strings.Compare(x.TitleID, y.TitleID),
			strings.Compare(x.Country, y.Country), strings.Compare(string(x.DeviceType), string(y.DeviceType)))
	})
	t.Quality = make([]QualityRow, 0, len(a.q))
	for k, v := range a.q {
		t.Quality = append(t.Quality, QualityRow{Window: win(k >> 16), CDN: cdns[(k>>14)&3], ISP: w.isps[(k>>6)&255],
			Country: w.countries[k&63], Sessions: v.sessions, Rebuffers: v.rebuffers, RebufferMs: v.rebufferMs,
			StartFailures: v.startFailures, Errors: v.errors, BitrateSum: v.bitrateSum, BitrateSamples: v.bitrateSamples})
	}
	slices.SortFunc(t.Quality, func(x, y QualityRow) int {
		return cmp.Or(cmp.Compare(x.Window, y.Window), strings.Compare(x.CDN, y.CDN),
			strings.Compare(x.ISP, y.ISP), strings.Compare(x.Country, y.Country))
	})
	t.Funnel = make([]FunnelRow, 0, len(a.fn))
	for k, v := range a.fn {
		t.Funnel = append(t.Funnel, FunnelRow{Window: win(k >> 28), Row: rows[(k>>24)&15], ArtworkID: w.arts[k&(1<<24-1)],
			Impressions: v.impressions, Selects: v.selects, Plays: v.plays})
	}
	slices.SortFunc(t.Funnel, func(x, y FunnelRow) int {
		return cmp.Or(cmp.Compare(x.Window, y.Window), strings.Compare(x.Row, y.Row), strings.Compare(x.ArtworkID, y.ArtworkID))
	})
	t.Late = a.late
	if t.Late == nil {
		t.Late = []LateEvent{}
	}
	t.Duplicates = a.dupIDs
	if t.Duplicates == nil {
		t.Duplicates = []string{}
	}
	t.Incidents = g.finishIncidents(t)
	for _, p := range w.profiles {
		pt := ProfileTaste{ProfileID: p.id, AccountID: p.acc.id, Taste: slices.Clone(p.taste[:]), Explore: p.explore}
		for _, s := range p.src {
			pt.Favourites = append(pt.Favourites, TasteSource{Community: w.comms[s.src].name, Share: s.w})
		}
		t.Profiles = append(t.Profiles, pt)
	}
	for _, ti := range w.titles {
		t.Titles = append(t.Titles, TitleVector{TitleID: ti.id, Vector: slices.Clone(ti.vec[:]), Community: w.comms[ti.comm].name, Popularity: ti.pop})
	}
	return t
}

func (g *Generator) extraAccounts() int { return g.extraProfiles }

// finishIncidents turns the planted incidents into their truth: time
// ranges from the events actually generated, and the measured effect of
// quality incidents.
func (g *Generator) finishIncidents(t *Truth) []Incident {
	out := []Incident{}
	for _, inc := range g.incidents {
		in := inc.Incident
		if inc.eventBased {
			if inc.events == 0 {
				continue
			}
			in.Start, in.End = inc.first, inc.last+1
			in.Truncated = inc.live > 0
		} else {
			if g.now < in.Start {
				continue // planted, but the run ended before it began
			}
			in.Truncated = g.now < in.End
		}
		in.Evidence = maps2(in.Evidence)
		switch in.Kind {
		case IncidentImpossibleTravel:
			s1, s2 := inc.travel[0], inc.travel[1]
			if s1.lastT > 0 && s2.startT > s1.lastT {
				km, _ := strconv.Atoi(in.Evidence["km"])
				h := float64(s2.startT-s1.lastT) / 3_600_000
				in.Evidence["gap_ms"] = strconv.FormatInt(s2.startT-s1.lastT, 10)
				in.Evidence["kmh"] = strconv.Itoa(int(float64(km) / h))
			}
		case IncidentQuality:
			var in1, out1 qAgg
			for _, r := range t.Quality {
				if "cdn:"+r.CDN+"|isp:"+r.ISP+"|cc:"+r.Country != in.Subject {
					continue
				}
				x := &out1
				if r.Window >= in.Start && r.Window < in.End {
					x = &in1
				}
				x.sessions += r.Sessions
				x.rebuffers += r.Rebuffers
				x.startFailures += r.StartFailures
				x.bitrateSamples += r.BitrateSamples
			}
			ratio := func(a, b int64) string {
				if b == 0 {
					return "0"
				}
				return strconv.FormatFloat(float64(a)/float64(b), 'f', 4, 64)
			}
			in.Evidence["rebuffers_per_heartbeat"] = ratio(in1.rebuffers, in1.bitrateSamples)
			in.Evidence["baseline_rebuffers_per_heartbeat"] = ratio(out1.rebuffers, out1.bitrateSamples)
			in.Evidence["start_failure_rate"] = ratio(in1.startFailures, in1.sessions+in1.startFailures)
			in.Evidence["baseline_start_failure_rate"] = ratio(out1.startFailures, out1.sessions+out1.startFailures)
		}
		out = append(out, in)
	}
	slices.SortStableFunc(out, func(a, b Incident) int {
		return cmp.Or(cmp.Compare(a.Start, b.Start), strings.Compare(a.Subject, b.Subject))
	})
	return out
}

func maps2(m map[string]string) map[string]string {
	out := make(map[string]string, len(m)+4)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// --- files ---------------------------------------------------------------

// Encode writes t as JSON. The output is deterministic: same truth, same
// bytes.
func (t *Truth) Encode(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	enc := json.NewEncoder(bw)
	if err := enc.Encode(t); err != nil {
		return fmt.Errorf("cannot encode the ground truth: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("cannot write the ground truth: %w", err)
	}
	return nil
}

// WriteFile writes t to path as JSON, gzip-compressed when path ends in
// ".gz". It writes a temporary file and renames it, so that a reader never
// sees half a truth.
func (t *Truth) WriteFile(path string) (err error) {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("cannot write the ground truth: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	var w io.Writer = f
	var zw *gzip.Writer
	if strings.HasSuffix(path, ".gz") {
		zw = gzip.NewWriter(f)
		w = zw
	}
	if err := t.Encode(w); err != nil {
		return err
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			return fmt.Errorf("cannot compress the ground truth: %w", err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("cannot write the ground truth: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("cannot write the ground truth: %w", err)
	}
	return nil
}

// DecodeTruth reads a truth written by Encode.
func DecodeTruth(r io.Reader) (*Truth, error) {
	var t Truth
	dec := json.NewDecoder(bufio.NewReaderSize(r, 1<<16))
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("cannot decode the ground truth: %w", err)
	}
	if t.Version != TruthVersion {
		return nil, fmt.Errorf("cannot use ground truth version %d: this build reads version %d", t.Version, TruthVersion)
	}
	return &t, nil
}

// LoadTruth reads a truth file written by WriteFile (gzip when the name
// ends in ".gz").
func LoadTruth(path string) (*Truth, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot load the ground truth: %w", err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("cannot load the ground truth %s: %w", path, err)
		}
		defer zr.Close()
		r = zr
	}
	t, err := DecodeTruth(r)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return t, nil
}
