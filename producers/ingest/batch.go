package ingest

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"

	"github.com/atlas-stream/atlas/schemas"
)

// Keys of the batch envelope; see the package documentation.
const (
	keyEvents = "events"
	keySchema = "s"
	keyEvent  = "e"
)

// item is one entry of a batch before its event is decoded.
type item struct {
	schema string
	// raw is the event: a msgpack map or a JSON object. For msgpack it
	// aliases the request body.
	raw []byte
	// bad is set when the entry itself is unusable (no schema, not a map);
	// the event is then rejected with this field and reason.
	bad    bool
	field  string
	reason string
}

// requestError refuses a whole request with an HTTP status and a reason.
type requestError struct {
	status int
	reason string
}

func (e *requestError) Error() string { return e.reason }

func malformed(format string, args ...any) error {
	return &requestError{status: http.StatusBadRequest, reason: fmt.Sprintf(format, args...)}
}

func tooManyEvents(n, max int) error {
	return &requestError{status: http.StatusRequestEntityTooLarge, reason: fmt.Sprintf("the batch has %d events, over the limit of %d; split it", n, max)}
}

// splitMsgpack walks the msgpack batch envelope of b and appends one item per
// entry to items. Every declared length is checked against the bytes that
// remain before anything is used, and nesting is capped, so hostile input
// costs no more memory than its own size (see STYLE.md on allocation
// bombs). Event bytes are not decoded here, only delimited.
//
// A plain batch (see [scanMsgpack]) is split by a fast scan; anything else
// is split again from the start by [splitMsgpackCarefully], which says
// what is wrong and where.
func splitMsgpack(b []byte, maxEvents int, items []item) ([]item, error) {
	n := len(items)
	if out, ok := scanMsgpack(b, maxEvents, items); ok {
		return out, nil
	}
	return splitMsgpackCarefully(b, maxEvents, items[:n])
}

// splitMsgpackCarefully is splitMsgpack on schemas.Wire, for every input:
// bad entries become bad items, malformed batches requestErrors with the
// byte at fault.
func splitMsgpackCarefully(b []byte, maxEvents int, items []item) ([]item, error) {
	r := schemas.NewWire(b)
	if len(b) == 0 {
		return items, malformed("cannot decode msgpack batch: the body is empty")
	}
	n, err := r.MapLen()
	if err != nil {
		return items, malformed("cannot decode msgpack batch: %v; want a map with the key %q", err, keyEvents)
	}
	found := false
	for i := 0; i < n; i++ {
		key, err := r.Str()
		if err != nil {
			return items, malformed("cannot decode msgpack batch: key of entry %d: %v", i, err)
		}
		if string(key) != keyEvents {
			if err := r.Skip(); err != nil {
				return items, malformed("cannot decode msgpack batch: value of %q: %v", truncate(string(key)), err)
			}
			continue
		}
		if found {
			return items, malformed("cannot decode msgpack batch: the key %q appears twice", keyEvents)
		}
		found = true
		if items, err = splitMsgpackEvents(r, maxEvents, items); err != nil {
			return items, err
		}
	}
	if r.Remaining() > 0 {
		return items, malformed("cannot decode msgpack batch: %d trailing bytes after the batch at byte %d", r.Remaining(), r.Offset())
	}
	if !found {
		return items, malformed("cannot decode msgpack batch: the key %q is missing", keyEvents)
	}
	return items, nil
}

func splitMsgpackEvents(r *wire, maxEvents int, items []item) ([]item, error) {
	n, err := r.ArrayLen()
	if err != nil {
		return items, malformed("cannot decode msgpack batch: %q: %v", keyEvents, err)
	}
	if n > maxEvents {
		return items, tooManyEvents(n, maxEvents)
	}
	items = slices.Grow(items, n)
	for i := 0; i < n; i++ {
		it := item{}
		start := r.Offset()
		c, err := r.Peek()
		if err != nil {
			return items, malformed("cannot decode msgpack batch: event %d: %v", i, err)
		}
		if !isMap(c) {
			if err := r.Skip(); err != nil {
				return items, malformed("cannot decode msgpack batch: event %d: %v", i, err)
			}
			items = append(items, item{bad: true, reason: fmt.Sprintf("entry is a msgpack %s at byte %d, not a map with keys %q and %q", describe(c), start, keySchema, keyEvent)})
			continue
		}
		m, err := r.MapLen()
		if err != nil {
			return items, malformed("cannot decode msgpack batch: event %d: %v", i, err)
		}
		var sawSchema, sawEvent bool
		for j := 0; j < m; j++ {
			kc, err := r.Peek()
			if err != nil {
				return items, malformed("cannot decode msgpack batch: event %d: %v", i, err)
			}
			if !isStr(kc) {
				if err := r.Skip(); err != nil {
					return items, malformed("cannot decode msgpack batch: event %d: %v", i, err)
				}
				if err := r.Skip(); err != nil {
					return items, malformed("cannot decode msgpack batch: event %d: %v", i, err)
				}
				it.bad, it.reason = true, fmt.Sprintf("entry has a %s key; keys are strings", describe(kc))
				continue
			}
			key, err := r.Str()
			if err != nil {
				return items, malformed("cannot decode msgpack batch: event %d: %v", i, err)
			}
			switch string(key) {
			case keySchema:
				vc, err := r.Peek()
				if err != nil {
					return items, malformed("cannot decode msgpack batch: event %d: %v", i, err)
				}
				if !isStr(vc) {
					if err := r.Skip(); err != nil {
						return items, malformed("cannot decode msgpack batch: event %d: %v", i, err)
					}
					it.bad, it.field, it.reason = true, keySchema, fmt.Sprintf("the schema is a msgpack %s, not a string", describe(vc))
					continue
				}
				s, err := r.Str()
				if err != nil {
					return items, malformed("cannot decode msgpack batch: event %d: %v", i, err)
				}
				it.schema = schemaName(s)
				sawSchema = true
			case keyEvent:
				from := r.Offset()
				if err := r.Skip(); err != nil {
					return items, malformed("cannot decode msgpack batch: event %d: %v", i, err)
				}
				it.raw = r.Bytes()[from:r.Offset():r.Offset()]
				sawEvent = true
			default:
				if err := r.Skip(); err != nil {
					return items, malformed("cannot decode msgpack batch: event %d: %v", i, err)
				}
			}
		}
		it = checkItem(it, sawSchema, sawEvent)
		items = append(items, it)
	}
	return items, nil
}

// scanMsgpack splits a plain batch: a map whose keys are strings, with
// one "events" array of at most maxEvents maps whose keys are strings and
// whose "s" values are strings, and no trailing bytes. It returns false as
// soon as b is anything else (nil where a map, array or string is
// expected, a bad entry, a value that is malformed, nests deeper than
// [maxScanDepth] or is an integer over int64), and splitMsgpack then
// starts over carefully. What it accepts, the careful walk accepts too,
// with the same items; FuzzScanMsgpackAgreesWithTheCarefulWalk holds the
// two together.
//
// It exists because the careful walk costs as much as decoding the events
// (schemas.Wire names the type of every value it steps over): at 64
// clients the scan took splitting from 9 % of the process's CPU to 2.4 %;
// with the answer's byte table (response.go), gateway CPU per event went
// 3.92 -> 3.64 us (bench, medians of 3).
func scanMsgpack(b []byte, maxEvents int, items []item) ([]item, bool) {
	s := scanner{b: b}
	n, ok := s.containerLen(true)
	if !ok {
		return items, false
	}
	found := false
	for range n {
		key, ok := s.str()
		if !ok {
			return items, false
		}
		if string(key) != keyEvents {
			if !s.skip() {
				return items, false
			}
			continue
		}
		if found {
			return items, false
		}
		found = true
		if items, ok = s.events(maxEvents, items); !ok {
			return items, false
		}
	}
	return items, found && s.off == len(b)
}

// events scans the "events" array.
func (s *scanner) events(maxEvents int, items []item) ([]item, bool) {
	n, ok := s.containerLen(false)
	if !ok || n > maxEvents {
		return items, false
	}
	items = slices.Grow(items, n)
	for range n {
		m, ok := s.containerLen(true)
		if !ok {
			return items, false
		}
		var it item
		var sawSchema, sawEvent bool
		for range m {
			key, ok := s.str()
			if !ok {
				return items, false
			}
			switch string(key) {
			case keySchema:
				v, ok := s.str()
				if !ok {
					return items, false
				}
				it.schema = schemaName(v)
				sawSchema = true
			case keyEvent:
				from := s.off
				if !s.skip() {
					return items, false
				}
				it.raw = s.b[from:s.off:s.off]
				sawEvent = true
			default:
				if !s.skip() {
					return items, false
				}
			}
		}
		items = append(items, checkItem(it, sawSchema, sawEvent))
	}
	return items, true
}

// maxScanDepth is how deep scanMsgpack follows a value; deeper ones go to
// the careful walk, whose cap (16 levels, in schemas) is higher, so that
// the scan never accepts what the walk refuses.
const maxScanDepth = 8

// scanner reads the values scanMsgpack accepts; every method returns false
// for anything else, with the offset then meaningless.
type scanner struct {
	b   []byte
	off int
}

// lenAt reads the k-byte big-endian length after the code at s.off.
func (s *scanner) lenAt(k int) (int, bool) {
	if len(s.b)-s.off <= k {
		return 0, false
	}
	p := s.b[s.off+1 : s.off+1+k]
	switch k {
	case 1:
		return int(p[0]), true
	case 2:
		return int(binary.BigEndian.Uint16(p)), true
	default:
		return int(binary.BigEndian.Uint32(p)), true
	}
}

// varLen reads the header of the str8/16/32 or bin8/16/32 at s.off: its
// size in bytes and the length of the payload after it.
func (s *scanner) varLen(c byte) (header, n int, ok bool) {
	switch c {
	case 0xd9, 0xc4:
		n, ok = s.lenAt(1)
		return 2, n, ok
	case 0xda, 0xc5:
		n, ok = s.lenAt(2)
		return 3, n, ok
	case 0xdb, 0xc6:
		n, ok = s.lenAt(4)
		return 5, n, ok
	}
	return 0, 0, false
}

// containerLen reads a map or array header (not nil) and returns its
// count, which is checked against the bytes that remain.
func (s *scanner) containerLen(isMap bool) (int, bool) {
	if s.off >= len(s.b) {
		return 0, false
	}
	c := s.b[s.off]
	var n, size int
	var ok bool
	switch {
	case isMap && c >= 0x80 && c <= 0x8f, !isMap && c >= 0x90 && c <= 0x9f:
		n, size, ok = int(c&0x0f), 1, true
	case isMap && c == 0xde, !isMap && c == 0xdc:
		n, ok = s.lenAt(2)
		size = 3
	case isMap && c == 0xdf, !isMap && c == 0xdd:
		n, ok = s.lenAt(4)
		size = 5
	}
	if !ok {
		return 0, false
	}
	s.off += size
	values := n
	if isMap {
		values *= 2
	}
	return n, values <= len(s.b)-s.off
}

// str reads a string (not nil); the bytes alias the input.
func (s *scanner) str() ([]byte, bool) {
	if s.off >= len(s.b) {
		return nil, false
	}
	c := s.b[s.off]
	var n, size int
	ok := true
	switch {
	case c >= 0xa0 && c <= 0xbf:
		n, size = int(c&0x1f), 1
	case c == 0xd9, c == 0xda, c == 0xdb:
		size, n, ok = s.varLen(c)
	default:
		return nil, false
	}
	if !ok || n > len(s.b)-s.off-size {
		return nil, false
	}
	from := s.off + size
	s.off = from + n
	return s.b[from:s.off], true
}

// skip steps over one value of any type, without recursion: left holds
// the values still to step over at each open level.
func (s *scanner) skip() bool {
	var left [maxScanDepth]int
	d := 0
	left[0] = 1
	for {
		for left[d] == 0 {
			if d == 0 {
				return true
			}
			d--
		}
		left[d]--
		if s.off >= len(s.b) {
			return false
		}
		c := s.b[s.off]
		var children, size, n int // n: a declared length of payload bytes
		ok := true
		switch {
		case c <= 0x7f, c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3:
			size = 1
		case c <= 0x8f:
			children, size = 2*int(c&0x0f), 1
		case c <= 0x9f:
			children, size = int(c&0x0f), 1
		case c <= 0xbf:
			size = 1 + int(c&0x1f)
		case c == 0xcc, c == 0xd0:
			size = 2
		case c == 0xcd, c == 0xd1:
			size = 3
		case c == 0xce, c == 0xd2, c == 0xca:
			size = 5
		case c == 0xd3, c == 0xcb:
			size = 9
		case c == 0xcf: // uint64, every timestamp; over int64 is an error
			if len(s.b)-s.off < 9 || s.b[s.off+1]&0x80 != 0 {
				return false
			}
			size = 9
		case c >= 0xd4 && c <= 0xd8: // fixext: type byte and 1-16 bytes
			size = 2 + 1<<(c-0xd4)
		case c == 0xd9, c == 0xda, c == 0xdb, c >= 0xc4 && c <= 0xc6: // str8-32, bin8-32
			size, n, ok = s.varLen(c)
			size += n
		case c == 0xc7: // ext8: length, type byte, payload
			n, ok = s.lenAt(1)
			size = 3 + n
		case c == 0xc8:
			n, ok = s.lenAt(2)
			size = 4 + n
		case c == 0xc9:
			n, ok = s.lenAt(4)
			size = 6 + n
		case c == 0xdc:
			children, ok = s.lenAt(2)
			size = 3
		case c == 0xdd:
			children, ok = s.lenAt(4)
			size = 5
		case c == 0xde:
			children, ok = s.lenAt(2)
			children, size = 2*children, 3
		case c == 0xdf:
			children, ok = s.lenAt(4)
			children, size = 2*children, 5
		default: // 0xc1, never used
			return false
		}
		if !ok || size > len(s.b)-s.off {
			return false
		}
		s.off += size
		if children > 0 {
			if children > len(s.b)-s.off || d+1 == maxScanDepth {
				return false
			}
			d++
			left[d] = children
		}
	}
}

// schemaName returns the schema as a string, without allocating for the
// schemas this build knows.
func schemaName(b []byte) string {
	for _, s := range knownSchemas {
		if string(b) == string(s) {
			return string(s)
		}
	}
	return string(b)
}

var knownSchemas = schemas.Schemas()

// checkItem marks an entry without a schema or an event.
func checkItem(it item, sawSchema, sawEvent bool) item {
	switch {
	case it.bad:
	case !sawSchema:
		it.bad, it.field, it.reason = true, keySchema, fmt.Sprintf("the entry has no schema (key %q)", keySchema)
	case !sawEvent:
		it.bad, it.field, it.reason = true, keyEvent, fmt.Sprintf("the entry has no event (key %q)", keyEvent)
	}
	return it
}

// jsonItem is one entry of a JSON batch.
type jsonItem struct {
	S *string         `json:"s"`
	E json.RawMessage `json:"e"`
}

// splitJSON is splitMsgpack for a JSON body. encoding/json reads no
// declared lengths, so it cannot be made to allocate more than a small
// multiple of the (already bounded) body; entries are decoded one at a
// time so that the event count is checked before the 501st is read.
func splitJSON(b []byte, maxEvents int, items []item) ([]item, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	fail := func(err error) ([]item, error) {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return items, malformed("cannot decode JSON batch: %v at byte %d", err, dec.InputOffset())
	}
	if err := expectDelim(dec, '{'); err != nil {
		return fail(err)
	}
	found := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fail(err)
		}
		key, _ := tok.(string)
		if key != keyEvents {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return fail(err)
			}
			continue
		}
		if found {
			return items, malformed("cannot decode JSON batch: the key %q appears twice", keyEvents)
		}
		found = true
		if err := expectDelim(dec, '['); err != nil {
			return fail(err)
		}
		for n := 0; dec.More(); n++ {
			if n == maxEvents {
				return items, tooManyEvents(n+1, maxEvents)
			}
			var ji jsonItem
			err := dec.Decode(&ji)
			var te *json.UnmarshalTypeError
			switch {
			case errors.As(err, &te):
				items = append(items, item{bad: true, field: jsonField(te.Field), reason: fmt.Sprintf("entry is not an object {%q: schema, %q: event}: %v", keySchema, keyEvent, err)})
				continue
			case err != nil:
				return fail(err)
			}
			it := item{raw: ji.E}
			if ji.S != nil {
				it.schema = *ji.S
			}
			if string(ji.E) == "null" {
				it.raw = nil
			}
			items = append(items, checkItem(it, ji.S != nil, it.raw != nil))
		}
		if err := expectDelim(dec, ']'); err != nil {
			return fail(err)
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return fail(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return items, malformed("cannot decode JSON batch: trailing data after the batch at byte %d", dec.InputOffset())
	}
	if !found {
		return items, malformed("cannot decode JSON batch: the key %q is missing", keyEvents)
	}
	return items, nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("expected %q, found %v", want, describeToken(tok))
	}
	return nil
}

func describeToken(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		return fmt.Sprintf("%q", v)
	case string:
		return fmt.Sprintf("the string %q", truncate(v))
	case nil:
		return "null"
	default:
		return fmt.Sprintf("%T %v", v, v)
	}
}

// jsonField maps encoding/json's field path to the wire key.
func jsonField(path string) string {
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '.' {
			return path[i+1:]
		}
	}
	return path
}

func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}

// wire walks the batch envelope without trusting it: schemas.Wire checks
// every declared length against the bytes that remain and caps nesting.
type wire = schemas.Wire

func isMap(c byte) bool      { return c >= 0x80 && c <= 0x8f || c == 0xde || c == 0xdf }
func isStr(c byte) bool      { return c >= 0xa0 && c <= 0xbf || c >= 0xd9 && c <= 0xdb }
func describe(c byte) string { return schemas.Describe(c) }

// EncodeBatch appends the msgpack batch of recs to dst:
// {"events": [{"s": schema, "e": event}, …]}, each event encoded with
// [schemas.Append]. It is what devices, the simulator and the tests send.
func EncodeBatch(dst []byte, recs []schemas.Record) ([]byte, error) {
	dst = appendMapHeader(dst, 1)
	dst = appendStr(dst, keyEvents)
	dst = appendArrayHeader(dst, len(recs))
	var err error
	for i, rec := range recs {
		dst = appendMapHeader(dst, 2)
		dst = appendStr(dst, keySchema)
		dst = appendStr(dst, string(rec.Schema()))
		dst = appendStr(dst, keyEvent)
		if dst, err = schemas.Append(dst, rec); err != nil {
			return dst, fmt.Errorf("cannot encode event %d of the batch: %w", i, err)
		}
	}
	return dst, nil
}

// EncodeBatchJSON returns the JSON batch of recs, the same shape as
// EncodeBatch with the JSON names of the schemas types.
func EncodeBatchJSON(recs []schemas.Record) ([]byte, error) {
	type entry struct {
		S string         `json:"s"`
		E schemas.Record `json:"e"`
	}
	out := struct {
		Events []entry `json:"events"`
	}{Events: make([]entry, len(recs))}
	for i, rec := range recs {
		out.Events[i] = entry{S: string(rec.Schema()), E: rec}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("cannot encode the JSON batch: %w", err)
	}
	return b, nil
}

func appendMapHeader(dst []byte, n int) []byte {
	switch {
	case n < 16:
		return append(dst, 0x80|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, 0xde), uint16(n))
	default:
		return binary.BigEndian.AppendUint32(append(dst, 0xdf), uint32(n))
	}
}

func appendArrayHeader(dst []byte, n int) []byte {
	switch {
	case n < 16:
		return append(dst, 0x90|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, 0xdc), uint16(n))
	default:
		return binary.BigEndian.AppendUint32(append(dst, 0xdd), uint32(n))
	}
}

func appendStr(dst []byte, s string) []byte {
	switch n := len(s); {
	case n < 32:
		dst = append(dst, 0xa0|byte(n))
	case n <= math.MaxUint8:
		dst = append(dst, 0xd9, byte(n))
	case n <= math.MaxUint16:
		dst = binary.BigEndian.AppendUint16(append(dst, 0xda), uint16(n))
	default:
		dst = binary.BigEndian.AppendUint32(append(dst, 0xdb), uint32(n))
	}
	return append(dst, s...)
}
