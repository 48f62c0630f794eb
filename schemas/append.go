package schemas

import (
	"encoding/binary"
	"math"
)

// Hand-written encoders for the two event types on the hot path (every
// event the gateway accepts, the simulator and the replay send). They write
// exactly the bytes vmihailenco/msgpack writes for these structs with
// compact ints and omitempty — the golden vectors and a differential test
// pin that — without reflection: the library's omitempty path calls
// reflect.Value.Interface per field (18 allocations, ~1.6 µs per playback
// event on the development machine; see BenchmarkEncodePlayback).

// mapWriter appends a msgpack map whose length is known only at the end:
// it reserves a map16 header and shrinks it to a fixmap when it can.
type mapWriter struct {
	dst   []byte
	start int
	n     int
}

func beginMap(dst []byte) mapWriter {
	return mapWriter{dst: append(dst, 0xde, 0, 0), start: len(dst)}
}

func (m *mapWriter) end() []byte {
	if m.n < 16 {
		m.dst[m.start] = 0x80 | byte(m.n)
		copy(m.dst[m.start+1:], m.dst[m.start+3:])
		return m.dst[:len(m.dst)-2]
	}
	binary.BigEndian.PutUint16(m.dst[m.start+1:], uint16(m.n))
	return m.dst
}

func (m *mapWriter) str(key, v string) {
	m.n++
	m.dst = appendString(appendString(m.dst, key), v)
}

func (m *mapWriter) strOmit(key, v string) {
	if v != "" {
		m.str(key, v)
	}
}

func (m *mapWriter) int(key string, v int64) {
	m.n++
	m.dst = appendInt(appendString(m.dst, key), v)
}

func (m *mapWriter) intOmit(key string, v int64) {
	if v != 0 {
		m.int(key, v)
	}
}

func (m *mapWriter) floatOmit(key string, v float64) {
	if v != 0 {
		m.n++
		m.dst = append(appendString(m.dst, key), 0xcb)
		m.dst = binary.BigEndian.AppendUint64(m.dst, math.Float64bits(v))
	}
}

func appendString(dst []byte, s string) []byte {
	switch l := len(s); {
	case l < 32:
		dst = append(dst, 0xa0|byte(l))
	case l < 256:
		dst = append(dst, 0xd9, byte(l))
	case l <= math.MaxUint16:
		dst = binary.BigEndian.AppendUint16(append(dst, 0xda), uint16(l))
	default:
		dst = binary.BigEndian.AppendUint32(append(dst, 0xdb), uint32(l))
	}
	return append(dst, s...)
}

func appendInt(dst []byte, n int64) []byte {
	if n >= 0 {
		switch u := uint64(n); {
		case u <= math.MaxInt8:
			return append(dst, byte(u))
		case u <= math.MaxUint8:
			return append(dst, 0xcc, byte(u))
		case u <= math.MaxUint16:
			return binary.BigEndian.AppendUint16(append(dst, 0xcd), uint16(u))
		case u <= math.MaxUint32:
			return binary.BigEndian.AppendUint32(append(dst, 0xce), uint32(u))
		default:
			return binary.BigEndian.AppendUint64(append(dst, 0xcf), u)
		}
	}
	switch {
	case n >= -32:
		return append(dst, byte(n))
	case n >= math.MinInt8:
		return append(dst, 0xd0, byte(n))
	case n >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(dst, 0xd1), uint16(n))
	case n >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(dst, 0xd2), uint32(n))
	default:
		return binary.BigEndian.AppendUint64(append(dst, 0xd3), uint64(n))
	}
}

// envelope writes the envelope's fields in declaration order.
func (m *mapWriter) envelope(e *Envelope) {
	m.str("id", e.EventID)
	m.int("t", e.EventTime)
	m.intOmit("rt", e.ReceiveTime)
	m.str("acc", e.AccountID)
	m.str("pro", e.ProfileID)
	m.str("dev", e.DeviceID)
	m.str("ses", e.SessionID)
	m.strOmit("net", e.ClientNet)
	m.str("cc", e.Country)
	m.str("dt", string(e.DeviceType))
	m.strOmit("av", e.AppVersion)
}

// appendPlayback appends e as [Append] would.
func appendPlayback(dst []byte, e *Playback) []byte {
	m := beginMap(dst)
	m.envelope(&e.Envelope)
	m.str("k", string(e.Kind))
	m.str("ti", e.TitleID)
	m.intOmit("pos", e.PositionMs)
	m.intOmit("dur", e.DurationMs)
	m.intOmit("br", e.BitrateKbps)
	m.intOmit("buf", e.BufferMs)
	m.intOmit("rb", e.RebufferMs)
	m.intOmit("from", e.SeekFromMs)
	m.intOmit("wm", e.WatchedMs)
	m.strOmit("row", e.SourceRow)
	m.strOmit("art", e.SourceArtworkID)
	m.strOmit("err", e.ErrorCode)
	m.strOmit("cdn", e.CDN)
	m.strOmit("isp", e.ISP)
	return m.end()
}

// appendBrowse appends e as [Append] would.
func appendBrowse(dst []byte, e *Browse) []byte {
	m := beginMap(dst)
	m.envelope(&e.Envelope)
	m.str("k", string(e.Kind))
	m.strOmit("ti", e.TitleID)
	m.strOmit("row", e.Row)
	m.intOmit("rk", e.Rank)
	m.strOmit("art", e.ArtworkID)
	m.strOmit("q", e.Query)
	m.floatOmit("r", e.Rating)
	m.intOmit("dw", e.DwellMs)
	return m.end()
}
