package schemas

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
	"unicode/utf8"
)

// Limits are the hard limits of validation and decoding. The zero value of a
// field means its default.
type Limits struct {
	// MaxEventBytes bounds one encoded record. Default 8 KiB.
	MaxEventBytes int
	// MaxStringBytes bounds identifiers and other short strings. Default 128.
	MaxStringBytes int
	// MaxTextBytes bounds free text: title names, search queries, evidence
	// values. Default 1 KiB.
	MaxTextBytes int
	// MaxListLen bounds genres per title and evidence entries per alert.
	// Default 32.
	MaxListLen int
	// MaxFutureSkew is how far an event time may be ahead of its receive
	// time (device clocks drift). Default 5 minutes.
	MaxFutureSkew time.Duration
	// MaxPastSkew is how far an event time may be behind its receive time
	// (offline playback uploads later). Default 7 days.
	MaxPastSkew time.Duration
}

// DefaultLimits returns the limits Atlas uses unless configured otherwise.
func DefaultLimits() Limits { return Limits{}.withDefaults() }

// Same reports whether l and o enforce the same limits, zero fields
// taking their defaults.
func (l Limits) Same(o Limits) bool { return l.withDefaults() == o.withDefaults() }

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.MaxEventBytes, 8<<10)
	def(&l.MaxStringBytes, 128)
	def(&l.MaxTextBytes, 1<<10)
	def(&l.MaxListLen, 32)
	if l.MaxFutureSkew == 0 {
		l.MaxFutureSkew = 5 * time.Minute
	}
	if l.MaxPastSkew == 0 {
		l.MaxPastSkew = 7 * 24 * time.Hour
	}
	return l
}

// Validate reports a limit that cannot work.
func (l Limits) Validate() error {
	l = l.withDefaults()
	switch {
	case l.MaxEventBytes < 256:
		return fmt.Errorf("invalid limits: MaxEventBytes %d is below 256", l.MaxEventBytes)
	case l.MaxStringBytes < 8 || l.MaxStringBytes > l.MaxEventBytes:
		return fmt.Errorf("invalid limits: MaxStringBytes %d must be between 8 and MaxEventBytes", l.MaxStringBytes)
	case l.MaxTextBytes < l.MaxStringBytes:
		return fmt.Errorf("invalid limits: MaxTextBytes %d is below MaxStringBytes", l.MaxTextBytes)
	case l.MaxListLen < 1:
		return fmt.Errorf("invalid limits: MaxListLen %d is below 1", l.MaxListLen)
	case l.MaxFutureSkew < 0 || l.MaxPastSkew < 0:
		return errors.New("invalid limits: skews must not be negative")
	}
	return nil
}

// ErrInvalid is wrapped by every *ValidationError, for callers that only
// need to know that a record was rejected.
var ErrInvalid = errors.New("invalid record")

// ValidationError says which field of a decoded record broke which rule.
// Field is the wire key ("pro", "t"); Reason is readable by the producer of
// the event and becomes the dead-letter header.
type ValidationError struct {
	Field  string
	Reason string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("invalid field %q: %s", e.Field, e.Reason)
}

// Unwrap lets errors.Is(err, ErrInvalid) match.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Record is a value with a schema: *Playback, *Browse, *Title or *Alert.
type Record interface {
	Schema() Schema
	// Key is the Kafka key of the record: profile, title or subject id.
	Key() string
}

// Schema returns [SchemaPlayback].
func (*Playback) Schema() Schema { return SchemaPlayback }

// Schema returns [SchemaBrowse].
func (*Browse) Schema() Schema { return SchemaBrowse }

// Schema returns [SchemaCatalog].
func (*Title) Schema() Schema { return SchemaCatalog }

// Schema returns [SchemaAlert].
func (*Alert) Schema() Schema { return SchemaAlert }

// Key returns the profile id.
func (e *Playback) Key() string { return e.ProfileID }

// Key returns the profile id.
func (e *Browse) Key() string { return e.ProfileID }

// Key returns the title id.
func (t *Title) Key() string { return t.TitleID }

// Key returns the subject.
func (a *Alert) Key() string { return a.Subject }

// Validate checks a decoded record against lim. now stands in for the
// receive time of events that have none stamped yet (a producer validating
// before it sends). The first broken rule is returned as a *ValidationError.
func Validate(rec Record, lim Limits, now time.Time) error {
	lim = lim.withDefaults()
	c := checker{lim: lim}
	switch r := rec.(type) {
	case *Playback:
		c.envelope(&r.Envelope, now)
		c.playback(r)
	case *Browse:
		c.envelope(&r.Envelope, now)
		c.browse(r)
	case *Title:
		c.title(r)
	case *Alert:
		c.alert(r)
	default:
		return fmt.Errorf("cannot validate %T: not an Atlas record", rec)
	}
	return c.err
}

// checker keeps the first error so that rule lists read top to bottom.
type checker struct {
	lim Limits
	err error
}

func (c *checker) fail(field, format string, args ...any) {
	if c.err == nil {
		c.err = invalid(field, format, args...)
	}
}

// str checks UTF-8 and length; required strings must not be empty.
func (c *checker) str(field, v string, max int, required bool) {
	switch {
	case c.err != nil:
	case v == "" && required:
		c.fail(field, "must not be empty")
	case len(v) > max:
		c.fail(field, "is %d bytes, over the limit of %d", len(v), max)
	case !utf8.ValidString(v):
		c.fail(field, "is not valid UTF-8")
	}
}

func (c *checker) id(field, v string, required bool) { c.str(field, v, c.lim.MaxStringBytes, required) }

func (c *checker) nonNegative(field string, v int64, max int64) {
	if c.err == nil && (v < 0 || v > max) {
		c.fail(field, "%d is outside 0..%d", v, max)
	}
}

func (c *checker) finite(field string, v float64) {
	if c.err == nil && (math.IsNaN(v) || math.IsInf(v, 0)) {
		c.fail(field, "%v is not a finite number", v)
	}
}

func (c *checker) country(field, v string, required bool) {
	if c.err != nil || (v == "" && !required) {
		return
	}
	if len(v) != 2 || v[0] < 'A' || v[0] > 'Z' || v[1] < 'A' || v[1] > 'Z' {
		c.fail(field, "%q is not an ISO 3166-1 alpha-2 country code (two upper-case letters)", truncateForError(v))
	}
}

func oneOf[T ~string](c *checker, field string, v T, valid []T) {
	if c.err == nil && !slices.Contains(valid, v) {
		c.fail(field, "%q is not one of %v", truncateForError(string(v)), valid)
	}
}

const (
	day  = 24 * time.Hour
	hour = int64(time.Hour / time.Millisecond)
)

func (c *checker) envelope(e *Envelope, now time.Time) {
	c.id("id", e.EventID, true)
	c.id("acc", e.AccountID, true)
	c.id("pro", e.ProfileID, true)
	c.id("dev", e.DeviceID, true)
	c.id("ses", e.SessionID, true)
	c.id("net", e.ClientNet, false)
	c.id("av", e.AppVersion, false)
	c.country("cc", e.Country, true)
	oneOf(c, "dt", e.DeviceType, DeviceTypes)
	if c.err != nil {
		return
	}
	if e.EventTime <= 0 {
		c.fail("t", "event time %d is not a positive Unix time in milliseconds", e.EventTime)
		return
	}
	if e.ReceiveTime < 0 {
		c.fail("rt", "receive time %d is negative", e.ReceiveTime)
		return
	}
	ref := now.UnixMilli()
	if e.ReceiveTime > 0 {
		ref = e.ReceiveTime
	}
	if ahead := time.Duration(e.EventTime-ref) * time.Millisecond; ahead > c.lim.MaxFutureSkew {
		c.fail("t", "event time %s is %s ahead of the receive time, over the allowed skew of %s",
			time.UnixMilli(e.EventTime).UTC().Format(time.RFC3339), ahead.Round(time.Second), c.lim.MaxFutureSkew)
	} else if behind := -ahead; behind > c.lim.MaxPastSkew {
		c.fail("t", "event time %s is %s behind the receive time, over the allowed skew of %s",
			time.UnixMilli(e.EventTime).UTC().Format(time.RFC3339), behind.Round(time.Second), c.lim.MaxPastSkew)
	}
}

func (c *checker) playback(e *Playback) {
	oneOf(c, "k", e.Kind, PlaybackKinds)
	c.id("ti", e.TitleID, true)
	c.nonNegative("pos", e.PositionMs, 48*hour)
	c.nonNegative("dur", e.DurationMs, 48*hour)
	c.nonNegative("br", e.BitrateKbps, 1_000_000)
	c.nonNegative("buf", e.BufferMs, hour)
	c.nonNegative("rb", e.RebufferMs, hour)
	c.nonNegative("from", e.SeekFromMs, 48*hour)
	c.nonNegative("wm", e.WatchedMs, hour)
	c.id("row", e.SourceRow, false)
	c.id("art", e.SourceArtworkID, false)
	c.id("err", e.ErrorCode, e.Kind == PlayError)
	c.id("cdn", e.CDN, false)
	c.id("isp", e.ISP, false)
	if c.err == nil && e.Kind == PlayRebuffer && e.RebufferMs == 0 {
		c.fail("rb", "a rebuffer event needs its stall duration")
	}
}

func (c *checker) browse(e *Browse) {
	oneOf(c, "k", e.Kind, BrowseKinds)
	c.id("ti", e.TitleID, e.Kind != BrowseSearch)
	c.id("row", e.Row, false)
	c.nonNegative("rk", e.Rank, 10_000)
	c.id("art", e.ArtworkID, false)
	c.str("q", e.Query, c.lim.MaxTextBytes, e.Kind == BrowseSearch)
	c.finite("r", e.Rating)
	if c.err == nil && e.Kind == BrowseRating && (e.Rating < 0.5 || e.Rating > 5) {
		c.fail("r", "rating %v is outside 0.5..5", e.Rating)
	}
	c.nonNegative("dw", e.DwellMs, hour)
}

func (c *checker) title(t *Title) {
	c.id("ti", t.TitleID, true)
	c.str("n", t.Name, c.lim.MaxTextBytes, true)
	if c.err == nil && len(t.Genres) > c.lim.MaxListLen {
		c.fail("g", "%d genres, over the limit of %d", len(t.Genres), c.lim.MaxListLen)
	}
	for _, g := range t.Genres {
		c.id("g", g, true)
	}
	c.country("cc", t.Country, false)
	if c.err == nil && t.ReleaseDate != "" {
		if _, err := time.Parse(time.DateOnly, t.ReleaseDate); err != nil {
			c.fail("rd", "%q is not a YYYY-MM-DD date", truncateForError(t.ReleaseDate))
		}
	}
	c.nonNegative("dur", t.DurationSec, 1_000_000)
	oneOf(c, "ty", t.Type, []TitleType{TitleFilm, TitleSeries})
}

func (c *checker) alert(a *Alert) {
	c.id("id", a.ID, true)
	c.id("k", a.Kind, true)
	oneOf(c, "st", a.Status, []AlertStatus{AlertFiring, AlertEscalated, AlertResolved})
	if c.err == nil && (a.Severity < SeverityInfo || a.Severity > SeverityCritical) {
		c.fail("sev", "severity %d is outside %d..%d", a.Severity, SeverityInfo, SeverityCritical)
	}
	c.str("sub", a.Subject, c.lim.MaxTextBytes, true)
	c.finite("sc", a.Score)
	if c.err == nil && len(a.Evidence) > c.lim.MaxListLen {
		c.fail("ev", "%d evidence entries, over the limit of %d", len(a.Evidence), c.lim.MaxListLen)
	}
	for k, v := range a.Evidence {
		c.id("ev", k, true)
		c.str("ev", v, c.lim.MaxTextBytes, false)
	}
	if c.err == nil && (a.WindowStart <= 0 || a.WindowEnd < a.WindowStart) {
		c.fail("we", "window %d..%d is empty or reversed", a.WindowStart, a.WindowEnd)
	}
}
