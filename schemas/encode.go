package schemas

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// encoderState pairs a pooled msgpack encoder with its output buffer.
type encoderState struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
}

var encoderPool = sync.Pool{New: func() any {
	s := &encoderState{}
	s.enc = msgpack.NewEncoder(&s.buf)
	return s
}}

// Append encodes rec and appends it to dst, returning the extended slice.
// The encoding is deterministic: fields in declaration order, integers in
// their smallest form, map keys sorted. It is safe for concurrent use.
//
// Append does not validate: producers call [Validate] first.
func Append(dst []byte, rec Record) ([]byte, error) {
	switch r := rec.(type) {
	case *Playback:
		if r != nil {
			return appendPlayback(dst, r), nil
		}
	case *Browse:
		if r != nil {
			return appendBrowse(dst, r), nil
		}
	}
	return appendReflect(dst, rec)
}

// appendReflect encodes with the msgpack library (pooled encoders): the
// reference the hand-written encoders are tested against, and the encoder
// of the rarer records (titles, alerts).
func appendReflect(dst []byte, rec Record) ([]byte, error) {
	s := encoderPool.Get().(*encoderState)
	defer encoderPool.Put(s)
	s.buf.Reset()
	s.enc.Reset(&s.buf)
	s.enc.UseCompactInts(true)
	s.enc.SetSortMapKeys(true)
	if err := s.enc.Encode(rec); err != nil {
		return dst, fmt.Errorf("cannot encode %s record: %w", rec.Schema(), err)
	}
	if s.buf.Len() > 64<<10 {
		// Do not keep a huge buffer in the pool because of one large record.
		defer func() { s.buf = bytes.Buffer{} }()
	}
	return append(dst, s.buf.Bytes()...), nil
}

// Marshal encodes rec into a new slice; see [Append].
func Marshal(rec Record) ([]byte, error) { return Append(nil, rec) }
