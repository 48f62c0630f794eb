package replay

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/atlas-stream/atlas/schemas"
)

// Config says how interactions become events. The zero value is the
// documented default replay: seed 0, a heartbeat every 30 minutes of
// content, a rating event after every play, original event times.
type Config struct {
	// Seed selects the watch fractions ([WatchFraction]); every other
	// choice is a function of the MovieLens ids. Default 0.
	Seed uint64
	// Heartbeat is the content time between two heartbeats of a play.
	// Default 30 minutes. At most 1 hour, because an event's WatchedMs may
	// not exceed an hour; longer plays are split by heartbeats.
	Heartbeat time.Duration
	// OmitRatings leaves out the browse rating event that follows each
	// play. Default false: the rating is sent.
	OmitRatings bool
	// Offset is added to every event time; [Generator.Plan] gives the
	// offset that moves the last event to now. Default 0: the original
	// times.
	Offset time.Duration
	// AppVersion is stamped on every event, so that replayed events can be
	// told apart. Default "movielens-replay".
	AppVersion string
}

// Config defaults.
const (
	DefaultHeartbeat  = 30 * time.Minute
	DefaultAppVersion = "movielens-replay"
	maxHeartbeat      = time.Hour
)

func (c Config) withDefaults() Config {
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.AppVersion == "" {
		c.AppVersion = DefaultAppVersion
	}
	return c
}

// Validate reports a configuration that cannot produce valid events.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Heartbeat < time.Second || c.Heartbeat > maxHeartbeat:
		return fmt.Errorf("invalid heartbeat interval %s: want 1s to %s", c.Heartbeat, maxHeartbeat)
	case c.Offset%time.Millisecond != 0:
		return fmt.Errorf("invalid time offset %s: want whole milliseconds", c.Offset)
	case len(c.AppVersion) > schemas.DefaultLimits().MaxStringBytes:
		return fmt.Errorf("invalid app version: %d bytes, over the limit of %d", len(c.AppVersion), schemas.DefaultLimits().MaxStringBytes)
	}
	return nil
}

// Sink receives the records of a replay in order. Send may block (that is
// how a slow sink slows the replay down) and returns an error to stop it.
// rec is only valid during the call: Send must encode or copy it, not keep
// it, because the generator reuses it.
type Sink interface {
	Send(ctx context.Context, rec schemas.Record) error
}

// SinkFunc adapts a function to [Sink].
type SinkFunc func(ctx context.Context, rec schemas.Record) error

// Send calls f.
func (f SinkFunc) Send(ctx context.Context, rec schemas.Record) error { return f(ctx, rec) }

// Flusher is implemented by sinks that buffer: Flush returns once every
// record sent before it is written. [Paced] flushes before it sleeps.
type Flusher interface {
	Flush(ctx context.Context) error
}

// ErrUnordered is returned by [Generator.Run] when its rows are not in
// strictly increasing replay order ([Order] puts them there).
var ErrUnordered = errors.New("interactions are not in replay order")

// Play is the viewing that a replay derives from one rating.
type Play struct {
	Interaction
	// Fraction is the share of the title watched ([WatchFraction]).
	Fraction float64
	// DurationMs is the title's running time ([TitleDuration]).
	DurationMs int64
	// WatchedMs is round(Fraction × DurationMs): content time played from
	// position 0 without seeking, so it is also the final position.
	WatchedMs int64
}

// Complete reports whether the play ends with a complete event (Fraction ≥
// [CompleteFraction]) rather than a stop.
func (p Play) Complete() bool { return p.Fraction >= CompleteFraction }

// Summary counts what a replay sends (or would send).
type Summary struct {
	// Plays counts start events: one per interaction.
	Plays      int
	Heartbeats int
	Completes  int
	Stops      int
	// Ratings counts browse rating events.
	Ratings int
	// Events counts every playback and browse event.
	Events int
	// FirstEventMs and LastEventMs bound the event times sent, Offset
	// applied; both are 0 when nothing was sent.
	FirstEventMs, LastEventMs int64
}

func (s *Summary) observe(t int64) {
	if s.Events == 0 || t < s.FirstEventMs {
		s.FirstEventMs = t
	}
	if s.Events == 0 || t > s.LastEventMs {
		s.LastEventMs = t
	}
	s.Events++
}

// Generator turns interactions in replay order into playback and browse
// events. It is pure: the events depend only on its Config and the rows,
// never on the clock. A Generator is safe for concurrent use; each Run
// keeps its own state.
//
// # The events of one rating
//
// Rating (user u, item i, time t, r stars) becomes one play, session
// "ml-s<u>-<i>-<t>", of duration d = [TitleDuration](i) and watched time
// w = [WatchFraction] × d:
//
//	start     at t          position 0, duration d             id ml-<u>-<i>-<t>-s
//	heartbeat at t + k·H    position k·H, WatchedMs H           id …-h<k>, for every k·H < w
//	complete  at t + w      position w, WatchedMs since last    id …-e  (fraction ≥ 0.9)
//	  or stop at t + w      position w, WatchedMs since last    id …-e  (fraction < 0.9)
//	rating    at t + w      browse event with r stars           id …-r  (unless OmitRatings)
//
// where H is the heartbeat interval; the WatchedMs of a play's events add
// up to w (one event may carry at most an hour, hence the heartbeats).
// ProfileID "ml-u<u>", TitleID "ml-m<i>" and the start's EventTime (t·1000,
// plus Offset if one is set) give back the rating's triple.
//
// ReceiveTime equals EventTime: replay plays the part of the ingest gateway,
// and validation checks an event's clock skew against its ReceiveTime, so
// replayed events from 1996 are valid. A consumer that compared event times
// with its own clock needs the log rebased to now (Config.Offset from
// [Generator.Plan]; `atlas replay --shift-to-now`).
//
// # Order
//
// Run sends every event in event-time order, ties broken by the replay
// order of the ratings ([Compare]: time, user, item) and then by the event's
// place in its play. Starts therefore come in exactly the order of the rows,
// and each partition of a topic sees its events in event-time order, which
// keeps watermarks of consumers honest. A play's later events are
// interleaved with the starts of later ratings.
type Generator struct {
	cfg Config
	lim schemas.Limits
}

// NewGenerator returns a generator, or the error of [Config.Validate].
func NewGenerator(cfg Config) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Generator{cfg: cfg.withDefaults(), lim: schemas.DefaultLimits()}, nil
}

// Config returns the generator's configuration, defaults applied.
func (g *Generator) Config() Config { return g.cfg }

// Play returns the play of one interaction.
func (g *Generator) Play(in Interaction) Play {
	f := WatchFraction(g.cfg.Seed, in)
	d := TitleDuration(in.Item).Milliseconds()
	w := int64(f*float64(d) + 0.5)
	return Play{Interaction: in, Fraction: f, DurationMs: d, WatchedMs: min(max(w, 1), d)}
}

// heartbeats returns how many heartbeats a play of w ms has.
func (g *Generator) heartbeats(w int64) int {
	h := g.cfg.Heartbeat.Milliseconds()
	return int((w - 1) / h)
}

// Plan returns what [Generator.Run] would send for rows, without building
// any event. Use LastEventMs to compute the offset that rebases the log to
// now: Config.Offset = now − LastEventMs (with a zero Offset).
func (g *Generator) Plan(rows []Interaction) Summary {
	var s Summary
	off := g.cfg.Offset.Milliseconds()
	for _, in := range rows {
		p := g.Play(in)
		t := in.TimeMs() + off
		s.observe(t)
		s.Plays++
		n := g.heartbeats(p.WatchedMs)
		s.Heartbeats += n
		s.Events += n
		s.observe(t + p.WatchedMs)
		if p.Complete() {
			s.Completes++
		} else {
			s.Stops++
		}
		if !g.cfg.OmitRatings {
			s.observe(t + p.WatchedMs)
			s.Ratings++
		}
	}
	return s
}

// Step numbers of the events of a play: 0 is the start, 1..n the
// heartbeats, then the terminal event, then the rating.
type cursor struct {
	t    int64 // event time of the next event, offset applied
	row  int   // index of the play's row: the tie-breaker
	step int
	play Play
	ids  *playIDs
}

// playIDs are the strings shared by every event of one play.
type playIDs struct {
	account, profile, device, session, title string
	prefix                                   []byte // "ml-<u>-<i>-<t>-"
	viewer                                   Viewer
}

// Run sends the events of rows to sink in the order documented on
// [Generator]. rows must be in strictly increasing replay order ([Order]);
// otherwise Run sends nothing and returns an error wrapping [ErrUnordered].
//
// Run blocks until every event is sent, the sink fails or ctx is done; it
// returns what it sent so far and the first error. Every event is checked
// with [schemas.Validate] before it is sent; an invalid one (which only an
// extreme Offset can cause) stops the run with an error naming the rating.
func (g *Generator) Run(ctx context.Context, rows []Interaction, sink Sink) (Summary, error) {
	var s Summary
	for i := 1; i < len(rows); i++ {
		if Compare(rows[i-1], rows[i]) >= 0 {
			return s, fmt.Errorf("%w: row %d %+v does not come after row %d %+v", ErrUnordered, i, rows[i], i-1, rows[i-1])
		}
	}
	r := runner{g: g, sink: sink, sum: &s}
	off := g.cfg.Offset.Milliseconds()
	for i, in := range rows {
		if i&255 == 0 {
			if err := ctx.Err(); err != nil {
				return s, err
			}
		}
		t := in.TimeMs() + off
		for len(r.open) > 0 && r.open[0].t <= t {
			if err := r.emitNext(ctx); err != nil {
				return s, err
			}
		}
		p := g.Play(in)
		c := cursor{t: t, row: i, play: p, ids: g.ids(in)}
		if err := r.emit(ctx, &c); err != nil {
			return s, err
		}
		r.push(c)
	}
	for len(r.open) > 0 {
		if err := r.emitNext(ctx); err != nil {
			return s, err
		}
	}
	return s, nil
}

func (g *Generator) ids(in Interaction) *playIDs {
	var b [48]byte
	triple := appendTriple(b[:0], in)
	ids := &playIDs{
		account: AccountID(in.User),
		profile: ProfileID(in.User),
		device:  DeviceID(in.User),
		title:   TitleID(in.Item),
		viewer:  ViewerOf(in.User),
	}
	ids.session = "ml-s" + string(triple)
	ids.prefix = append(append(append(make([]byte, 0, len(triple)+12), "ml-"...), triple...), '-')
	return ids
}

// runner is the state of one Run: the open plays, as a min-heap of cursors
// ordered by (t, row), and the scratch records handed to the sink.
type runner struct {
	g    *Generator
	sink Sink
	sum  *Summary
	open []cursor
	pb   schemas.Playback
	br   schemas.Browse
	id   []byte
}

func less(a, b *cursor) bool {
	if a.t != b.t {
		return a.t < b.t
	}
	return a.row < b.row
}

func (r *runner) push(c cursor) {
	r.open = append(r.open, c)
	i := len(r.open) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !less(&r.open[i], &r.open[p]) {
			break
		}
		r.open[i], r.open[p] = r.open[p], r.open[i]
		i = p
	}
}

// emitNext sends the event of the earliest open play and advances it,
// removing it from the heap when it is done.
func (r *runner) emitNext(ctx context.Context) error {
	c := &r.open[0]
	if err := r.emit(ctx, c); err != nil {
		return err
	}
	if c.step < 0 { // finished
		last := len(r.open) - 1
		r.open[0] = r.open[last]
		r.open[last] = cursor{}
		r.open = r.open[:last]
	}
	// Sift down from the root: its time grew or it was replaced.
	n := len(r.open)
	i := 0
	for {
		l, m := 2*i+1, i
		if l < n && less(&r.open[l], &r.open[m]) {
			m = l
		}
		if l+1 < n && less(&r.open[l+1], &r.open[m]) {
			m = l + 1
		}
		if m == i {
			return nil
		}
		r.open[i], r.open[m] = r.open[m], r.open[i]
		i = m
	}
}

// emit sends the event at c.step and moves c to the next one (step −1 when
// the play is done).
func (r *runner) emit(ctx context.Context, c *cursor) error {
	g := r.g
	p := &c.play
	hb := g.cfg.Heartbeat.Milliseconds()
	n := g.heartbeats(p.WatchedMs)
	base := p.TimeMs() + g.cfg.Offset.Milliseconds()
	var rec schemas.Record
	var next int64 // time of the following step
	r.id = append(r.id[:0], c.ids.prefix...)
	switch {
	case c.step == 0:
		r.id = append(r.id, 's')
		r.playback(c, schemas.PlayStart, 0, 0)
		r.sum.Plays++
		rec = &r.pb
		next = base + hb
		if n == 0 {
			next = base + p.WatchedMs
		}
	case c.step <= n:
		pos := int64(c.step) * hb
		r.id = strconv.AppendInt(append(r.id, 'h'), int64(c.step), 10)
		r.playback(c, schemas.PlayHeartbeat, pos, hb)
		r.sum.Heartbeats++
		rec = &r.pb
		next = base + pos + hb
		if c.step == n {
			next = base + p.WatchedMs
		}
	case c.step == n+1:
		kind := schemas.PlayStop
		if p.Complete() {
			kind = schemas.PlayComplete
			r.sum.Completes++
		} else {
			r.sum.Stops++
		}
		r.id = append(r.id, 'e')
		r.playback(c, kind, p.WatchedMs, p.WatchedMs-int64(n)*hb)
		rec = &r.pb
		next = c.t
	case c.step == n+2 && !g.cfg.OmitRatings:
		r.id = append(r.id, 'r')
		r.browse(c)
		r.sum.Ratings++
		rec = &r.br
	default:
		panic(fmt.Sprintf("BUG: play %+v has no step %d", p.Interaction, c.step))
	}
	if err := schemas.Validate(rec, g.lim, time.Time{}); err != nil {
		return fmt.Errorf("cannot replay the rating of item %d by user %d at %d: its event %s is invalid: %w",
			p.Item, p.User, p.Time, r.id, err)
	}
	if err := r.sink.Send(ctx, rec); err != nil {
		return fmt.Errorf("cannot send event %s: %w", r.id, err)
	}
	r.sum.observe(c.t)
	c.step++
	last := n + 1
	if !g.cfg.OmitRatings {
		last++
	}
	if c.step > last {
		c.step = -1
	} else {
		c.t = next
	}
	return nil
}

// envelope returns the envelope of the event whose id is in r.id.
func (r *runner) envelope(c *cursor) schemas.Envelope {
	return schemas.Envelope{
		EventID:     string(r.id),
		EventTime:   c.t,
		ReceiveTime: c.t,
		AccountID:   c.ids.account,
		ProfileID:   c.ids.profile,
		DeviceID:    c.ids.device,
		SessionID:   c.ids.session,
		Country:     c.ids.viewer.Country,
		DeviceType:  c.ids.viewer.DeviceType,
		AppVersion:  r.g.cfg.AppVersion,
	}
}

func (r *runner) playback(c *cursor, kind schemas.PlaybackKind, pos, watched int64) {
	v := &c.ids.viewer
	r.pb = schemas.Playback{
		Envelope:    r.envelope(c),
		Kind:        kind,
		TitleID:     c.ids.title,
		PositionMs:  pos,
		DurationMs:  c.play.DurationMs,
		BitrateKbps: v.BitrateKbps,
		WatchedMs:   watched,
		CDN:         v.CDN,
		ISP:         v.ISP,
	}
}

func (r *runner) browse(c *cursor) {
	r.br = schemas.Browse{
		Envelope: r.envelope(c),
		Kind:     schemas.BrowseRating,
		TitleID:  c.ids.title,
		Rating:   c.play.Stars(),
	}
}

// SendCatalog sends the title of every movie ([TitleOf]) to sink, in the
// order given, after checking it with [schemas.Validate]. It returns how
// many were sent and the first error.
func SendCatalog(ctx context.Context, movies []Movie, sink Sink) (int, error) {
	lim := schemas.DefaultLimits()
	for i, m := range movies {
		t := TitleOf(m)
		if err := schemas.Validate(t, lim, time.Time{}); err != nil {
			return i, fmt.Errorf("cannot send movie %d (%q): %w", m.ID, m.Name, err)
		}
		if err := sink.Send(ctx, t); err != nil {
			return i, fmt.Errorf("cannot send title %s: %w", t.TitleID, err)
		}
	}
	return len(movies), nil
}
