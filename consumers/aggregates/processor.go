package aggregates

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/atlas-stream/atlas/consumers/stream"
	"github.com/atlas-stream/atlas/internal/eventtime"
	"github.com/atlas-stream/atlas/schemas"
)

// Config configures the aggregates processors of one role instance.
type Config struct {
	// Rules are the window, lateness and grace. Defaults: eventtime.Rules{}.
	Rules eventtime.Rules
	// Sink receives each checkpoint's rows. Required.
	Sink Sink
	// FinalOnly writes rows only when their window closes. By default rows
	// of open windows are also written at each checkpoint (provisional,
	// replaced by later versions), so a minute is queryable while open.
	FinalOnly bool
	// Registerer receives the role's metrics; nil exports none.
	Registerer prometheus.Registerer
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.Sink == nil {
		return errors.New("aggregates: Sink is required")
	}
	return c.Rules.Validate()
}

type metrics struct {
	late       prometheus.Counter
	duplicates prometheus.Counter
	skipped    prometheus.Counter
	wmLag      *prometheus.GaugeVec
	open       *prometheus.GaugeVec
}

// NewFactory returns the engine factory of the aggregates role: one
// Processor per claimed partition, its watermark restored from the claim's
// metadata.
func NewFactory(cfg Config) (stream.Factory, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Rules = cfg.Rules.Defaults()
	m := &metrics{
		late: prometheus.NewCounter(prometheus.CounterOpts{Name: "atlas_aggregates_late_events_total",
			Help: "Events that arrived after their window closed (recorded in late_events, not merged)."}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "atlas_aggregates_duplicate_events_total",
			Help: "Events whose id was already counted in their window."}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "atlas_aggregates_replayed_closed_total",
			Help: "Replayed events of windows already written before a restart."}),
		wmLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "atlas_aggregates_watermark_lag_seconds",
			Help: "Wall clock minus the partition's watermark."}, []string{"topic", "partition"}),
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "atlas_aggregates_open_windows",
			Help: "Windows held in memory per partition."}, []string{"topic", "partition"}),
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(m.late, m.duplicates, m.skipped, m.wmLag, m.open)
	}
	return func(_ context.Context, c stream.Claim) (stream.Processor, error) {
		p := &Processor{cfg: cfg, m: m, topic: c.Topic, partition: int32(c.Partition),
			wm: cfg.Rules.NewWatermark(), windows: map[int64]*window{}}
		if c.Metadata != "" {
			max, err := strconv.ParseInt(c.Metadata, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("cannot restore aggregates of %s/%d: metadata %q is not a watermark: %w", c.Topic, c.Partition, c.Metadata, err)
			}
			p.wm.Restore(max)
		}
		return p, nil
	}, nil
}

// Processor aggregates one partition. It is not safe for concurrent use:
// the engine calls it from the partition's goroutine.
type Processor struct {
	cfg       Config
	m         *metrics
	topic     string
	partition int32
	wm        *eventtime.Watermark
	windows   map[int64]*window
	late      []LateEvent
	titles    []TitleRow
	batch     Batch // reused between checkpoints

	// Written, closed windows, their maps emptied, and their aggregates,
	// for new windows to use: each new window and aggregate was an
	// allocation, 1.67 per event in bench/perevent BenchmarkAggregates
	// (1-minute windows, 100k events), which recycled.
	freeWindows []*window
	freePB      []*pbAgg
	freeQ       []*qAgg
	freeF       []*fAgg
}

// maxFree bounds each list of recycled aggregates; beyond it, those of a
// closed window are left to the collector.
const maxFree = 1 << 16

type pbKey struct{ title, country, device string }
type qKey struct{ cdn, isp, country string }
type fKey struct{ row, artwork string }

type pbAgg struct {
	row     PlaybackRow
	viewers map[uint64]struct{}
	dirty   bool
}
type qAgg struct {
	row   QualityRow
	dirty bool
}
type fAgg struct {
	row   FunnelRow
	dirty bool
}

// window is one open (or closed, not yet written) minute of a partition.
type window struct {
	start       int64
	firstOffset int64
	// seen holds a 128-bit hash of each event id, for duplicate sends:
	// 16 bytes an event, and no reference that would keep the decoded
	// record's string memory alive for the life of the window. Two ids
	// collide with probability ~n²/2¹²⁹ (1e-27 for a million per window).
	seen     map[[2]uint64]struct{}
	playback map[pbKey]*pbAgg
	quality  map[qKey]*qAgg
	funnel   map[fKey]*fAgg
}

// Process folds one record into its window; see the package doc for what
// happens to late, replayed and duplicate events.
func (p *Processor) Process(_ context.Context, r *stream.Record) error {
	var env *schemas.Envelope
	switch v := r.Value.(type) {
	case *schemas.Playback:
		env = &v.Envelope
	case *schemas.Browse:
		env = &v.Envelope
	case *schemas.Title:
		p.titles = append(p.titles, titleRow(v, uint64(r.Offset+1)))
		return nil
	default:
		return nil // other schemas are not aggregated
	}
	t := env.EventTime
	if p.wm.IsLate(t) {
		if r.Replay {
			p.m.skipped.Inc() // written, or recorded as late, before the restart
			return nil
		}
		p.m.late.Inc()
		p.late = append(p.late, lateEvent(r, env, p.cfg.Rules.WindowStart(t), p.wm.Value()))
		return nil
	}
	p.wm.Observe(t)
	start := p.cfg.Rules.WindowStart(t)
	w := p.windows[start]
	if w == nil {
		w = p.newWindow(start, r.Offset)
		p.windows[start] = w
	}
	id := hashID(env.EventID)
	if _, dup := w.seen[id]; dup {
		p.m.duplicates.Inc()
		return nil
	}
	w.seen[id] = struct{}{}
	version := uint64(r.Offset + 1)
	switch v := r.Value.(type) {
	case *schemas.Playback:
		p.playback(w, v, version)
	case *schemas.Browse:
		p.browse(w, v, version)
	}
	return nil
}

func (p *Processor) source(version uint64) Source {
	return Source{Topic: p.topic, Partition: p.partition, Version: version}
}

func (p *Processor) playback(w *window, e *schemas.Playback, version uint64) {
	k := pbKey{e.TitleID, e.Country, string(e.DeviceType)}
	a := w.playback[k]
	if a == nil {
		if n := len(p.freePB); n > 0 {
			a, p.freePB = p.freePB[n-1], p.freePB[:n-1]
			*a = pbAgg{viewers: a.viewers} // emptied when recycled
		} else {
			a = &pbAgg{viewers: map[uint64]struct{}{}}
		}
		a.row = PlaybackRow{WindowStart: w.start, TitleID: k.title, Country: k.country, DeviceType: k.device}
		w.playback[k] = a
	}
	a.dirty = true
	a.row.Source = p.source(version)
	a.viewers[hashProfile(e.ProfileID)] = struct{}{}
	a.row.WatchMs += uint64(e.WatchedMs)
	switch e.Kind {
	case schemas.PlayStart:
		a.row.Starts++
	case schemas.PlayComplete:
		a.row.Completes++
	case schemas.PlayStop:
		d := 0
		if e.DurationMs > 0 {
			d = int(10 * e.PositionMs / e.DurationMs)
		}
		a.row.Dropoff[min(max(d, 0), 9)]++
	}

	qk := qKey{e.CDN, e.ISP, e.Country}
	q := w.quality[qk]
	if q == nil {
		if n := len(p.freeQ); n > 0 {
			q, p.freeQ = p.freeQ[n-1], p.freeQ[:n-1]
		} else {
			q = new(qAgg)
		}
		*q = qAgg{row: QualityRow{WindowStart: w.start, CDN: qk.cdn, ISP: qk.isp, Country: qk.country}}
		w.quality[qk] = q
	}
	changed := true
	switch e.Kind {
	case schemas.PlayStart:
		q.row.Sessions++
	case schemas.PlayRebuffer:
		q.row.Rebuffers++
		q.row.RebufferMs += uint64(e.RebufferMs)
	case schemas.PlayError:
		q.row.Errors++
		if e.PositionMs == 0 {
			q.row.StartFailures++
		}
	case schemas.PlayHeartbeat:
		q.row.BitrateSum += uint64(e.BitrateKbps)
		q.row.BitrateSamples++
	default:
		changed = false
	}
	if changed {
		q.dirty = true
		q.row.Source = p.source(version)
	}

	if e.Kind == schemas.PlayStart && e.SourceRow != "" {
		f := p.funnelAgg(w, e.SourceRow, e.SourceArtworkID)
		f.row.Plays++
		f.dirty = true
		f.row.Source = p.source(version)
	}
}

func (p *Processor) browse(w *window, e *schemas.Browse, version uint64) {
	if e.Kind != schemas.BrowseImpression && e.Kind != schemas.BrowseSelect {
		return
	}
	f := p.funnelAgg(w, e.Row, e.ArtworkID)
	if e.Kind == schemas.BrowseImpression {
		f.row.Impressions++
	} else {
		f.row.Selects++
	}
	f.dirty = true
	f.row.Source = p.source(version)
}

func (p *Processor) funnelAgg(w *window, row, artwork string) *fAgg {
	k := fKey{row, artwork}
	f := w.funnel[k]
	if f == nil {
		if n := len(p.freeF); n > 0 {
			f, p.freeF = p.freeF[n-1], p.freeF[:n-1]
		} else {
			f = new(fAgg)
		}
		*f = fAgg{row: FunnelRow{WindowStart: w.start, Row: row, ArtworkID: artwork}}
		w.funnel[k] = f
	}
	return f
}

// newWindow returns an empty window, a recycled one when there is one.
func (p *Processor) newWindow(start, firstOffset int64) *window {
	if n := len(p.freeWindows); n > 0 {
		w := p.freeWindows[n-1]
		p.freeWindows = p.freeWindows[:n-1]
		w.start, w.firstOffset = start, firstOffset
		return w
	}
	return &window{start: start, firstOffset: firstOffset, seen: map[[2]uint64]struct{}{},
		playback: map[pbKey]*pbAgg{}, quality: map[qKey]*qAgg{}, funnel: map[fKey]*fAgg{}}
}

// recycle empties a window whose rows are durable and keeps it and its
// aggregates for new windows. Nothing else refers to them: Checkpoint
// copied the rows into the batch, and made each row's viewer hashes a
// slice of its own.
func (p *Processor) recycle(w *window) {
	for _, a := range w.playback {
		if len(p.freePB) < maxFree {
			clear(a.viewers)
			p.freePB = append(p.freePB, a)
		}
	}
	for _, q := range w.quality {
		if len(p.freeQ) < maxFree {
			p.freeQ = append(p.freeQ, q)
		}
	}
	for _, f := range w.funnel {
		if len(p.freeF) < maxFree {
			p.freeF = append(p.freeF, f)
		}
	}
	if len(p.freeWindows) < 2 {
		clear(w.seen)
		clear(w.playback)
		clear(w.quality)
		clear(w.funnel)
		p.freeWindows = append(p.freeWindows, w)
	}
}

// Checkpoint writes the rows that changed (final rows of closed windows,
// provisional rows of open ones unless FinalOnly), the late events and the
// catalog updates, then forgets closed windows. It returns the first offset
// of the oldest open window as the restart offset and the largest event time
// seen as metadata.
func (p *Processor) Checkpoint(ctx context.Context) (stream.Checkpoint, error) {
	b := &p.batch
	b.Playback, b.Quality, b.Funnel = b.Playback[:0], b.Quality[:0], b.Funnel[:0]
	b.Late, b.Titles = p.late, p.titles
	var closed []int64
	for start, w := range p.windows {
		isClosed := p.wm.Closed(start)
		if isClosed {
			closed = append(closed, start)
		} else if p.cfg.FinalOnly {
			continue
		}
		for _, a := range w.playback {
			if a.dirty {
				a.row.Viewers = uint64(len(a.viewers))
				a.row.ViewerHashes = sortedKeys(a.viewers)
				b.Playback = append(b.Playback, a.row)
			}
		}
		for _, q := range w.quality {
			if q.dirty {
				b.Quality = append(b.Quality, q.row)
			}
		}
		for _, f := range w.funnel {
			if f.dirty {
				b.Funnel = append(b.Funnel, f.row)
			}
		}
	}
	if b.Len() > 0 {
		if err := p.cfg.Sink.Write(ctx, b); err != nil {
			return stream.Checkpoint{}, fmt.Errorf("cannot write aggregates of %s/%d: %w", p.topic, p.partition, err)
		}
	}
	// Durable: forget what was written.
	for _, start := range closed {
		p.recycle(p.windows[start])
		delete(p.windows, start)
	}
	restart := int64(-1)
	for _, w := range p.windows {
		for _, a := range w.playback {
			a.dirty = false
		}
		for _, q := range w.quality {
			q.dirty = false
		}
		for _, f := range w.funnel {
			f.dirty = false
		}
		if restart < 0 || w.firstOffset < restart {
			restart = w.firstOffset
		}
	}
	clear(p.late)
	p.late = p.late[:0]
	clear(p.titles)
	p.titles = p.titles[:0]
	b.Late, b.Titles = nil, nil

	part := strconv.Itoa(int(p.partition))
	p.m.open.WithLabelValues(p.topic, part).Set(float64(len(p.windows)))
	meta := ""
	if max := p.wm.MaxEventTime(); max != eventtime.None {
		meta = strconv.FormatInt(max, 10)
		p.m.wmLag.WithLabelValues(p.topic, part).Set(time.Since(time.UnixMilli(p.wm.Value())).Seconds())
	}
	return stream.Checkpoint{Offset: restart, Metadata: meta}, nil
}

// Close forgets the partition's state.
func (p *Processor) Close() error {
	p.windows = nil
	return nil
}

func sortedKeys(m map[uint64]struct{}) []uint64 {
	out := make([]uint64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// hashProfile is FNV-1a 64 of a profile id: stable across processes and
// releases, so viewer hashes written by different members and days combine.
func hashProfile(id string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	return h
}

// hashID is a 128-bit hash of an event id: FNV-1a 64 and, with another
// offset basis and a final mix, a second 64 bits.
func hashID(id string) [2]uint64 {
	a, b := uint64(14695981039346656037), uint64(0x9e3779b97f4a7c15)
	for i := 0; i < len(id); i++ {
		a ^= uint64(id[i])
		a *= 1099511628211
		b ^= uint64(id[i])
		b *= 0x100000001b3
		b ^= b >> 29
	}
	b ^= uint64(len(id))
	b *= 0xbf58476d1ce4e5b9
	b ^= b >> 31
	return [2]uint64{a, b}
}

func lateEvent(r *stream.Record, env *schemas.Envelope, window, watermark int64) LateEvent {
	le := LateEvent{EventID: env.EventID, Topic: r.Topic, Partition: int32(r.Partition), Offset: r.Offset,
		WindowStart: window, EventTime: env.EventTime, Watermark: watermark, ProfileID: env.ProfileID}
	switch v := r.Value.(type) {
	case *schemas.Playback:
		le.Kind, le.TitleID = string(v.Kind), v.TitleID
	case *schemas.Browse:
		le.Kind, le.TitleID = string(v.Kind), v.TitleID
	}
	return le
}

func titleRow(t *schemas.Title, version uint64) TitleRow {
	return TitleRow{TitleID: t.TitleID, Name: t.Name, Genres: t.Genres, Country: t.Country,
		ReleaseDate: t.ReleaseDate, DurationSec: t.DurationSec, Type: string(t.Type), Version: version}
}
