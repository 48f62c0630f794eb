package schemas

import "fmt"

// Wire walks msgpack bytes without trusting them, for packages that must
// delimit untrusted msgpack before decoding it (the ingest gateway's batch
// envelope). It is the reader this package's decoders use: every declared
// length is checked against the bytes that remain before anything is
// sliced, and Skip caps nesting at 16 levels, so hostile input costs no more
// memory than its own size.
//
// Errors say what is wrong and end with "at byte N". Returned slices alias
// the input. A Wire is not safe for concurrent use.
type Wire struct{ r reader }

// NewWire returns a Wire positioned at the start of b.
func NewWire(b []byte) *Wire { return &Wire{r: reader{b: b}} }

// Bytes returns the input; Offset the position of the next value.
func (w *Wire) Bytes() []byte { return w.r.b }

// Offset returns the position of the next value.
func (w *Wire) Offset() int { return w.r.off }

// Remaining returns the bytes left after the current position.
func (w *Wire) Remaining() int { return w.r.remaining() }

// Peek returns the type code of the next value without consuming it.
func (w *Wire) Peek() (byte, error) {
	c, err := w.r.peek()
	return c, withOffset(err)
}

// MapLen reads a map header (nil reads as an empty map).
func (w *Wire) MapLen() (int, error) {
	n, err := w.r.containerLen(true)
	return n, withOffset(err)
}

// ArrayLen reads an array header (nil reads as an empty array).
func (w *Wire) ArrayLen() (int, error) {
	n, err := w.r.containerLen(false)
	return n, withOffset(err)
}

// Str reads a string (nil reads as empty); the bytes alias the input.
func (w *Wire) Str() ([]byte, error) {
	s, err := w.r.str()
	return s, withOffset(err)
}

// Skip steps over one value of any type.
func (w *Wire) Skip() error { return withOffset(w.r.skip(1)) }

// Describe names the msgpack family of a type code ("map", "string",
// "integer", …) for error messages.
func Describe(code byte) string { return describe(code) }

func withOffset(err error) error {
	if we, ok := err.(*wireError); ok {
		return fmt.Errorf("%s at byte %d", we.reason, we.off)
	}
	return err
}
