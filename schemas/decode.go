package schemas

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"github.com/atlas-stream/atlas/internal/intern"
)

// DecodeError says why bytes could not be decoded as a record of a schema.
// Field is the wire key being read when decoding failed ("" for the record
// itself); Offset is the byte where the problem starts.
type DecodeError struct {
	Schema Schema
	Field  string
	Offset int
	Reason string
}

func (e *DecodeError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("cannot decode %s record: %s at byte %d", e.Schema, e.Reason, e.Offset)
	}
	return fmt.Sprintf("cannot decode %s record: field %q: %s at byte %d", e.Schema, e.Field, e.Reason, e.Offset)
}

// maxInterned bounds the per-decoder table of repeated short strings.
const maxInterned = 4096

// Decoder decodes records from untrusted bytes. It is not safe for
// concurrent use: give each partition worker its own, or use the package
// functions, which take one from a pool.
//
// A Decoder keeps a bounded table of the low-cardinality strings it has seen
// (countries, CDNs, ISPs, app versions, genres) so that decoding them does not
// allocate each time.
type Decoder struct {
	limits  Limits
	symbols map[string]string
	// recent is a direct-mapped cache in front of symbols: a hit costs a
	// hash and one string comparison instead of a map lookup. Live, with
	// a decoder per claimed partition, the maps were cold: symbol lookups
	// took 6.4 % of `atlas run all`'s CPU (about 13k events/s delivered),
	// more than half of its decoding (5.3 % with the cache).
	recent *intern.Recent
	r      reader // reused: passing a fresh one to the field callbacks would allocate it
	// arena holds the bytes of the current record's non-interned strings:
	// one allocation per record instead of one per string. It is sized to
	// the record, so it never grows while strings point into it.
	arena []byte
}

// NewDecoder returns a Decoder that enforces limits.MaxEventBytes. Zero
// fields of limits take their defaults.
func NewDecoder(limits Limits) *Decoder {
	return &Decoder{limits: limits.withDefaults(), symbols: make(map[string]string), recent: intern.NewRecent(256)}
}

var decoderPool = sync.Pool{New: func() any { return NewDecoder(Limits{}) }}

// DecodePlayback decodes b into e with default limits. e is overwritten
// completely; b is not retained.
func DecodePlayback(b []byte, e *Playback) error {
	d := decoderPool.Get().(*Decoder)
	defer decoderPool.Put(d)
	return d.Playback(b, e)
}

// DecodeBrowse decodes b into e with default limits; see [DecodePlayback].
func DecodeBrowse(b []byte, e *Browse) error {
	d := decoderPool.Get().(*Decoder)
	defer decoderPool.Put(d)
	return d.Browse(b, e)
}

// DecodeTitle decodes b into t with default limits; see [DecodePlayback].
func DecodeTitle(b []byte, t *Title) error {
	d := decoderPool.Get().(*Decoder)
	defer decoderPool.Put(d)
	return d.Title(b, t)
}

// DecodeAlert decodes b into a with default limits; see [DecodePlayback].
func DecodeAlert(b []byte, a *Alert) error {
	d := decoderPool.Get().(*Decoder)
	defer decoderPool.Put(d)
	return d.Alert(b, a)
}

// Decode decodes a record of the named schema into a new value: *Playback,
// *Browse, *Title or *Alert. An unknown schema gives an error wrapping
// [ErrUnknownSchema].
func (d *Decoder) Decode(schema string, b []byte) (Record, error) {
	s, err := ParseSchema(schema)
	if err != nil {
		return nil, err
	}
	switch s {
	case SchemaPlayback:
		e := new(Playback)
		return e, d.Playback(b, e)
	case SchemaBrowse:
		e := new(Browse)
		return e, d.Browse(b, e)
	case SchemaCatalog:
		t := new(Title)
		return t, d.Title(b, t)
	case SchemaAlert:
		a := new(Alert)
		return a, d.Alert(b, a)
	}
	panic("BUG: ParseSchema accepted " + string(s) + " but Decode has no case for it")
}

// record walks the top-level map of b, calling field for each key and
// skipping the values of keys it does not know (field returns false).
func (d *Decoder) record(schema Schema, b []byte, field func(key []byte, r *reader) (bool, error)) error {
	if len(b) > d.limits.MaxEventBytes {
		return &DecodeError{Schema: schema, Reason: fmt.Sprintf("record is %d bytes, over the limit of %d", len(b), d.limits.MaxEventBytes)}
	}
	d.r = reader{b: b}
	r := &d.r
	d.arena = make([]byte, 0, len(b))
	var key []byte
	wrap := func(err error) error {
		de := &DecodeError{Schema: schema, Field: string(key), Reason: err.Error()}
		var we *wireError
		if errors.As(err, &we) {
			de.Offset = we.off
		}
		return de
	}
	if len(b) == 0 {
		return wrap(r.errorf(0, "empty record"))
	}
	n, err := r.containerLen(true)
	if err != nil {
		return wrap(err)
	}
	for i := 0; i < n; i++ {
		key = nil
		k, err := r.str()
		if err != nil {
			return wrap(fmt.Errorf("map key: %w", err))
		}
		key = k
		known, err := field(k, r)
		if err != nil {
			return wrap(err)
		}
		if !known {
			if err := r.skip(1); err != nil {
				return wrap(err)
			}
		}
	}
	key = nil
	if r.remaining() > 0 {
		return wrap(r.errorf(r.off, "%d trailing bytes after the record", r.remaining()))
	}
	return nil
}

// text copies a string value into the record's arena. Bytes are kept as
// they are; validation checks UTF-8 and length.
func (d *Decoder) text(r *reader, dst *string) error {
	b, err := r.str()
	if err != nil {
		return err
	}
	if len(b) == 0 {
		*dst = ""
		return nil
	}
	if len(d.arena)+len(b) > cap(d.arena) {
		panic("BUG: decoder arena smaller than the record's strings")
	}
	start := len(d.arena)
	d.arena = append(d.arena, b...)
	// The arena is never written again at these positions (it is replaced,
	// not reset, for the next record), so the string is immutable.
	*dst = unsafe.String(&d.arena[start], len(b))
	return nil
}

// symbol is text for low-cardinality values: repeated values share one
// string instead of allocating a new one per record.
func (d *Decoder) symbol(r *reader, dst *string) error {
	b, err := r.str()
	if err != nil {
		return err
	}
	if s, ok := d.recent.Lookup(b); ok {
		*dst = s
		return nil
	}
	s, ok := d.symbols[string(b)]
	if !ok {
		s = string(b)
		if len(d.symbols) < maxInterned && len(s) <= 64 {
			d.symbols[s] = s
		}
	}
	d.recent.Keep(s)
	*dst = s
	return nil
}

func (d *Decoder) integer(r *reader, dst *int64) error {
	v, err := r.int()
	*dst = v
	return err
}

// envelope reads the key if it belongs to the envelope.
func (d *Decoder) envelope(key []byte, r *reader, e *Envelope) (bool, error) {
	switch string(key) {
	case "id":
		return true, d.text(r, &e.EventID)
	case "t":
		return true, d.integer(r, &e.EventTime)
	case "rt":
		return true, d.integer(r, &e.ReceiveTime)
	case "acc":
		return true, d.text(r, &e.AccountID)
	case "pro":
		return true, d.text(r, &e.ProfileID)
	case "dev":
		return true, d.text(r, &e.DeviceID)
	case "ses":
		return true, d.text(r, &e.SessionID)
	case "net":
		return true, d.text(r, &e.ClientNet)
	case "cc":
		return true, d.symbol(r, &e.Country)
	case "dt":
		var s string
		err := d.symbol(r, &s)
		e.DeviceType = DeviceType(s)
		return true, err
	case "av":
		return true, d.symbol(r, &e.AppVersion)
	}
	return false, nil
}

// Playback decodes b into e. e is overwritten completely; b is not
// retained. Errors are *DecodeError and name the field.
func (d *Decoder) Playback(b []byte, e *Playback) error {
	*e = Playback{}
	return d.record(SchemaPlayback, b, func(key []byte, r *reader) (bool, error) {
		switch string(key) {
		case "k":
			var s string
			err := d.symbol(r, &s)
			e.Kind = PlaybackKind(s)
			return true, err
		case "ti":
			return true, d.text(r, &e.TitleID)
		case "pos":
			return true, d.integer(r, &e.PositionMs)
		case "dur":
			return true, d.integer(r, &e.DurationMs)
		case "br":
			return true, d.integer(r, &e.BitrateKbps)
		case "buf":
			return true, d.integer(r, &e.BufferMs)
		case "rb":
			return true, d.integer(r, &e.RebufferMs)
		case "from":
			return true, d.integer(r, &e.SeekFromMs)
		case "wm":
			return true, d.integer(r, &e.WatchedMs)
		case "row":
			return true, d.symbol(r, &e.SourceRow)
		case "art":
			return true, d.symbol(r, &e.SourceArtworkID)
		case "err":
			return true, d.symbol(r, &e.ErrorCode)
		case "cdn":
			return true, d.symbol(r, &e.CDN)
		case "isp":
			return true, d.symbol(r, &e.ISP)
		}
		return d.envelope(key, r, &e.Envelope)
	})
}

// Browse decodes b into e; see [Decoder.Playback].
func (d *Decoder) Browse(b []byte, e *Browse) error {
	*e = Browse{}
	return d.record(SchemaBrowse, b, func(key []byte, r *reader) (bool, error) {
		switch string(key) {
		case "k":
			var s string
			err := d.symbol(r, &s)
			e.Kind = BrowseKind(s)
			return true, err
		case "ti":
			return true, d.text(r, &e.TitleID)
		case "row":
			return true, d.symbol(r, &e.Row)
		case "rk":
			return true, d.integer(r, &e.Rank)
		case "art":
			return true, d.symbol(r, &e.ArtworkID)
		case "q":
			return true, d.text(r, &e.Query)
		case "r":
			v, err := r.float()
			e.Rating = v
			return true, err
		case "dw":
			return true, d.integer(r, &e.DwellMs)
		}
		return d.envelope(key, r, &e.Envelope)
	})
}

// Title decodes b into t; see [Decoder.Playback].
func (d *Decoder) Title(b []byte, t *Title) error {
	*t = Title{}
	return d.record(SchemaCatalog, b, func(key []byte, r *reader) (bool, error) {
		switch string(key) {
		case "ti":
			return true, d.text(r, &t.TitleID)
		case "n":
			return true, d.text(r, &t.Name)
		case "g":
			n, err := r.containerLen(false)
			if err != nil {
				return true, err
			}
			if n > d.limits.MaxListLen {
				return true, r.errorf(r.off, "%d genres, over the limit of %d", n, d.limits.MaxListLen)
			}
			if n == 0 {
				return true, nil // nil, so that the record re-encodes as it was
			}
			t.Genres = make([]string, n)
			for i := range t.Genres {
				if err := d.symbol(r, &t.Genres[i]); err != nil {
					return true, fmt.Errorf("element %d: %w", i, err)
				}
			}
			return true, nil
		case "cc":
			return true, d.symbol(r, &t.Country)
		case "rd":
			return true, d.text(r, &t.ReleaseDate)
		case "dur":
			return true, d.integer(r, &t.DurationSec)
		case "ty":
			var s string
			err := d.symbol(r, &s)
			t.Type = TitleType(s)
			return true, err
		}
		return false, nil
	})
}

// Alert decodes b into a; see [Decoder.Playback].
func (d *Decoder) Alert(b []byte, a *Alert) error {
	*a = Alert{}
	return d.record(SchemaAlert, b, func(key []byte, r *reader) (bool, error) {
		switch string(key) {
		case "id":
			return true, d.text(r, &a.ID)
		case "k":
			return true, d.symbol(r, &a.Kind)
		case "st":
			var s string
			err := d.symbol(r, &s)
			a.Status = AlertStatus(s)
			return true, err
		case "sev":
			v, err := r.int()
			if err == nil && (v < 0 || v > 255) {
				return true, r.errorf(r.off, "severity %d is out of range 0..255", v)
			}
			a.Severity = Severity(v)
			return true, err
		case "sub":
			return true, d.text(r, &a.Subject)
		case "sc":
			v, err := r.float()
			a.Score = v
			return true, err
		case "ev":
			n, err := r.containerLen(true)
			if err != nil {
				return true, err
			}
			if n > d.limits.MaxListLen {
				return true, r.errorf(r.off, "%d evidence entries, over the limit of %d", n, d.limits.MaxListLen)
			}
			if n > 0 {
				a.Evidence = make(map[string]string, n)
			}
			for i := 0; i < n; i++ {
				var k, v string
				if err := d.text(r, &k); err != nil {
					return true, fmt.Errorf("evidence key %d: %w", i, err)
				}
				if err := d.text(r, &v); err != nil {
					return true, fmt.Errorf("evidence %q: %w", truncateForError(k), err)
				}
				a.Evidence[k] = v
			}
			return true, nil
		case "ws":
			return true, d.integer(r, &a.WindowStart)
		case "we":
			return true, d.integer(r, &a.WindowEnd)
		case "fs":
			return true, d.integer(r, &a.FirstSeen)
		case "da":
			return true, d.integer(r, &a.DetectedAt)
		}
		return false, nil
	})
}
