package schemas

import (
	"encoding/binary"
	"fmt"
	"math"
)

// maxDepth caps nesting in values that are skipped or walked. No Atlas
// field nests deeper than 2; anything deeper than this is hostile.
const maxDepth = 16

// reader walks msgpack bytes without trusting them: every declared length is
// checked against the bytes that remain before anything is sliced or
// allocated, so the memory a decode uses is bounded by the input size.
//
// Errors are wireErrors carrying the byte offset; the record decoders add
// the schema and field.
type reader struct {
	b   []byte
	off int
}

type wireError struct {
	off    int
	reason string
}

// Error returns the reason only; DecodeError adds the offset.
func (e *wireError) Error() string { return e.reason }

func (r *reader) errorf(off int, format string, args ...any) error {
	return &wireError{off: off, reason: fmt.Sprintf(format, args...)}
}

func (r *reader) remaining() int { return len(r.b) - r.off }

// need checks that n more bytes exist after the current offset.
func (r *reader) need(start, n int, what string) error {
	if n < 0 || n > r.remaining() {
		if start == r.off {
			return r.errorf(start, "truncated %s: need %d bytes, %d remain", what, n, r.remaining())
		}
		return r.errorf(start, "%s declares %d bytes but only %d remain", what, n, r.remaining())
	}
	return nil
}

func (r *reader) peek() (byte, error) {
	if r.off >= len(r.b) {
		return 0, r.errorf(r.off, "truncated record: expected a value, found the end of the input")
	}
	return r.b[r.off], nil
}

// uintN reads an n-byte big-endian length or number that follows a code.
func (r *reader) uintN(start, n int, what string) (uint64, error) {
	if err := r.need(start, n, what); err != nil {
		return 0, err
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	switch n {
	case 1:
		return uint64(p[0]), nil
	case 2:
		return uint64(binary.BigEndian.Uint16(p)), nil
	case 4:
		return uint64(binary.BigEndian.Uint32(p)), nil
	default:
		return binary.BigEndian.Uint64(p), nil
	}
}

// advance steps over n payload bytes of a value that started at start.
func (r *reader) advance(start int, n uint64, what string) error {
	if n > uint64(r.remaining()) {
		return r.errorf(start, "%s declares %d bytes but only %d remain", what, n, r.remaining())
	}
	r.off += int(n)
	return nil
}

// describe names the msgpack family of a code for error messages.
func describe(c byte) string {
	switch {
	case c <= 0x7f || c >= 0xe0 || (c >= 0xcc && c <= 0xd3):
		return "integer"
	case c >= 0x80 && c <= 0x8f, c == 0xde, c == 0xdf:
		return "map"
	case c >= 0x90 && c <= 0x9f, c == 0xdc, c == 0xdd:
		return "array"
	case c >= 0xa0 && c <= 0xbf, c >= 0xd9 && c <= 0xdb:
		return "string"
	case c == 0xc0:
		return "nil"
	case c == 0xc2, c == 0xc3:
		return "boolean"
	case c >= 0xc4 && c <= 0xc6:
		return "binary"
	case c == 0xca, c == 0xcb:
		return "float"
	case c >= 0xc7 && c <= 0xc9, c >= 0xd4 && c <= 0xd8:
		return "extension"
	default:
		return fmt.Sprintf("reserved code 0x%02x", c)
	}
}

// containerLen reads a map or array header and checks the declared count
// against the bytes that remain: every element needs at least one byte, a
// map entry two.
func (r *reader) containerLen(wantMap bool) (int, error) {
	start := r.off
	c, err := r.peek()
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case wantMap && c >= 0x80 && c <= 0x8f:
		r.off++
		n = uint64(c & 0x0f)
	case !wantMap && c >= 0x90 && c <= 0x9f:
		r.off++
		n = uint64(c & 0x0f)
	case wantMap && (c == 0xde || c == 0xdf), !wantMap && (c == 0xdc || c == 0xdd):
		r.off++
		size := 2
		if c == 0xdf || c == 0xdd {
			size = 4
		}
		// A constant, not describe(c)+" header": every record with more
		// than 15 fields has a map16 header, and the concatenation was one
		// of decode's three allocations per record.
		what := "map header"
		if c == 0xdc || c == 0xdd {
			what = "array header"
		}
		if n, err = r.uintN(start, size, what); err != nil {
			return 0, err
		}
	case c == 0xc0:
		r.off++
		return 0, nil
	default:
		want := "array"
		if wantMap {
			want = "map"
		}
		return 0, r.errorf(start, "expected %s, got %s", want, describe(c))
	}
	per := uint64(1)
	if wantMap {
		per = 2
	}
	if n*per > uint64(r.remaining()) {
		return 0, r.errorf(start, "%s declares %d entries but only %d bytes remain", describe(c), n, r.remaining())
	}
	return int(n), nil
}

// str returns the bytes of a string value without copying; nil reads as
// empty. The slice aliases the input: callers copy what they keep.
func (r *reader) str() ([]byte, error) {
	start := r.off
	c, err := r.peek()
	if err != nil {
		return nil, err
	}
	var n uint64
	switch {
	case c >= 0xa0 && c <= 0xbf:
		r.off++
		n = uint64(c & 0x1f)
	case c == 0xd9 || c == 0xda || c == 0xdb:
		r.off++
		if n, err = r.uintN(start, 1<<(c-0xd9), "string header"); err != nil {
			return nil, err
		}
	case c == 0xc0:
		r.off++
		return nil, nil
	default:
		return nil, r.errorf(start, "expected string, got %s", describe(c))
	}
	if n > uint64(r.remaining()) {
		return nil, r.errorf(start, "string declares %d bytes but only %d remain", n, r.remaining())
	}
	s := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return s, nil
}

// int reads any msgpack integer that fits an int64; nil reads as 0.
func (r *reader) int() (int64, error) {
	start := r.off
	c, err := r.peek()
	if err != nil {
		return 0, err
	}
	switch {
	case c <= 0x7f:
		r.off++
		return int64(c), nil
	case c >= 0xe0:
		r.off++
		return int64(int8(c)), nil
	case c == 0xc0:
		r.off++
		return 0, nil
	case c >= 0xcc && c <= 0xcf:
		r.off++
		v, err := r.uintN(start, 1<<(c-0xcc), "integer")
		if err != nil {
			return 0, err
		}
		if v > math.MaxInt64 {
			return 0, r.errorf(start, "integer %d overflows int64", v)
		}
		return int64(v), nil
	case c >= 0xd0 && c <= 0xd3:
		r.off++
		size := 1 << (c - 0xd0)
		v, err := r.uintN(start, size, "integer")
		if err != nil {
			return 0, err
		}
		switch size {
		case 1:
			return int64(int8(v)), nil
		case 2:
			return int64(int16(v)), nil
		case 4:
			return int64(int32(v)), nil
		default:
			return int64(v), nil
		}
	default:
		return 0, r.errorf(start, "expected integer, got %s", describe(c))
	}
}

// float reads a float32, float64 or integer as float64; nil reads as 0.
// NaN and infinities are returned as they are: validation rejects them.
func (r *reader) float() (float64, error) {
	start := r.off
	c, err := r.peek()
	if err != nil {
		return 0, err
	}
	switch c {
	case 0xca:
		r.off++
		v, err := r.uintN(start, 4, "float32")
		return float64(math.Float32frombits(uint32(v))), err
	case 0xcb:
		r.off++
		v, err := r.uintN(start, 8, "float64")
		return math.Float64frombits(v), err
	}
	if describe(c) == "integer" || c == 0xc0 {
		v, err := r.int()
		return float64(v), err
	}
	return 0, r.errorf(start, "expected number, got %s", describe(c))
}

// skip steps over one value of any type, checking lengths and depth.
func (r *reader) skip(depth int) error {
	if depth > maxDepth {
		return r.errorf(r.off, "nesting deeper than %d levels", maxDepth)
	}
	start := r.off
	c, err := r.peek()
	if err != nil {
		return err
	}
	switch describe(c) {
	case "integer", "nil":
		_, err = r.int()
		return err
	case "boolean":
		r.off++
		return nil
	case "float":
		_, err = r.float()
		return err
	case "string":
		_, err = r.str()
		return err
	case "map", "array":
		isMap := describe(c) == "map"
		n, err := r.containerLen(isMap)
		if err != nil {
			return err
		}
		if isMap {
			n *= 2
		}
		for i := 0; i < n; i++ {
			if err := r.skip(depth + 1); err != nil {
				return err
			}
		}
		return nil
	case "binary":
		r.off++
		n, err := r.uintN(start, 1<<(c-0xc4), "binary header")
		if err != nil {
			return err
		}
		return r.advance(start, n, "binary")
	case "extension":
		r.off++
		var n uint64
		if c >= 0xd4 {
			n = 1 << (c - 0xd4)
		} else if n, err = r.uintN(start, 1<<(c-0xc7), "extension header"); err != nil {
			return err
		}
		n++ // the type byte
		return r.advance(start, n, "extension")
	default:
		return r.errorf(start, "invalid msgpack code 0x%02x", c)
	}
}
