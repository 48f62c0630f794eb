package embeddings

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// Wire formats of the two topics the role writes. Both are hand-written
// binary: compact (a profile is a few hundred bytes) and decoded with every
// length checked against the bytes that remain, because the topics are
// input like any other.

// ErrCorrupt is wrapped by every error about bytes that do not decode.
var ErrCorrupt = errors.New("corrupt embeddings record")

const (
	profileFormat   = 1
	recIncrement    = 1
	recOwner        = 2
	maxIDBytes      = 255
	maxWireElements = 1 << 20
)

// KV is one record of a topic: a key and a value (nil value: tombstone).
type KV struct {
	Key, Value []byte
}

// Model topic keys: "inc/<source>/<offset>" for the increment of one first
// play, "owner/<partition>" for the member that serves a partition.
func incrementKey(source int32, offset int64) []byte {
	b := append([]byte("inc/"), strconv.Itoa(int(source))...)
	b = append(b, '/')
	return strconv.AppendInt(b, offset, 10)
}

func ownerKey(partition int) []byte {
	return strconv.AppendInt([]byte("owner/"), int64(partition), 10)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendIncrement encodes an increment with title ids (indices are private
// to a process). The caller holds the model's read lock.
func (m *Model) appendIncrementLocked(b []byte, inc *increment) []byte {
	b = append(b, recIncrement)
	b = binary.AppendUvarint(b, uint64(inc.source))
	b = binary.AppendUvarint(b, uint64(inc.offset))
	b = appendString(b, m.ids[inc.title])
	b = appendString(b, inc.country)
	b = binary.AppendUvarint(b, uint64(inc.count))
	b = binary.AppendUvarint(b, uint64(len(inc.pairs)))
	for _, p := range inc.pairs {
		b = appendString(b, m.ids[p.title])
		b = binary.AppendUvarint(b, uint64(p.fwd))
		b = binary.AppendUvarint(b, uint64(p.rev))
	}
	return b
}

// wire reads untrusted bytes.
type wire struct {
	b   []byte
	off int
	err error
}

func (w *wire) fail(format string, args ...any) {
	if w.err == nil {
		w.err = fmt.Errorf("%w: %s at byte %d", ErrCorrupt, fmt.Sprintf(format, args...), w.off)
	}
}

func (w *wire) byte() byte {
	if w.err != nil || w.off >= len(w.b) {
		w.fail("truncated")
		return 0
	}
	w.off++
	return w.b[w.off-1]
}

func (w *wire) uvarint(max uint64) uint64 {
	if w.err != nil {
		return 0
	}
	v, n := binary.Uvarint(w.b[w.off:])
	if n <= 0 {
		w.fail("bad varint")
		return 0
	}
	w.off += n
	if v > max {
		w.fail("value %d over the limit %d", v, max)
		return 0
	}
	return v
}

func (w *wire) bytes(max int) []byte {
	n := int(w.uvarint(uint64(max)))
	if w.err != nil {
		return nil
	}
	if n > len(w.b)-w.off {
		w.fail("string of %d bytes with %d left", n, len(w.b)-w.off)
		return nil
	}
	w.off += n
	return w.b[w.off-n : w.off]
}

// count reads an element count, bounded by the bytes left (every element
// takes at least min bytes), so a lying count cannot make us allocate.
func (w *wire) count(min int) int {
	n := int(w.uvarint(maxWireElements))
	if w.err == nil && n*min > len(w.b)-w.off {
		w.fail("%d elements cannot fit in %d bytes", n, len(w.b)-w.off)
		return 0
	}
	return n
}

func (w *wire) end() error {
	if w.err == nil && w.off != len(w.b) {
		w.fail("%d trailing bytes", len(w.b)-w.off)
	}
	return w.err
}

// decodeIncrement decodes a model increment, registering its titles.
func (m *Model) decodeIncrement(b []byte, inc *increment) error {
	w := &wire{b: b}
	if t := w.byte(); t != recIncrement && w.err == nil {
		w.fail("record type %d is not an increment", t)
	}
	inc.source = int32(w.uvarint(math.MaxInt32))
	inc.offset = int64(w.uvarint(math.MaxInt64))
	title := w.bytes(maxIDBytes)
	inc.country = string(w.bytes(maxIDBytes))
	inc.count = uint32(w.uvarint(math.MaxUint32))
	n := w.count(3)
	if w.err != nil {
		return w.err
	}
	inc.title = m.Title(string(title))
	inc.pairs = inc.pairs[:0]
	for i := 0; i < n && w.err == nil; i++ {
		id := w.bytes(maxIDBytes)
		fwd := uint32(w.uvarint(math.MaxUint32))
		rev := uint32(w.uvarint(math.MaxUint32))
		if w.err == nil {
			inc.pairs = append(inc.pairs, pair{m.Title(string(id)), fwd, rev})
		}
	}
	return w.end()
}

// Owner is a model-topic record saying which member serves a partition.
type Owner struct {
	Partition int
	Addr      string // the member's API address, host:port
	Since     int64  // unix ms when it claimed the partition
}

func appendOwner(b []byte, o Owner) []byte {
	b = append(b, recOwner)
	b = binary.AppendUvarint(b, uint64(o.Partition))
	b = appendString(b, o.Addr)
	return binary.AppendUvarint(b, uint64(o.Since))
}

func decodeOwner(b []byte) (Owner, error) {
	w := &wire{b: b}
	if t := w.byte(); t != recOwner && w.err == nil {
		w.fail("record type %d is not an owner", t)
	}
	o := Owner{Partition: int(w.uvarint(math.MaxInt32)), Addr: string(w.bytes(maxIDBytes))}
	o.Since = int64(w.uvarint(math.MaxInt64))
	return o, w.end()
}

// Profile changelog value, format 1:
//
//	u8       format (1)
//	uvarint  PlayNext, BrowseNext
//	string   PlayCountry, BrowseCountry      (uvarint length, bytes)
//	uvarint  Plays
//	uvarint  n, then n title ids sorted, front-coded:
//	         uvarint bytes shared with the previous id, string the rest
//	uvarint  n, then n context entries, oldest first:
//	         uvarint position in the sorted ids, u8 weight
//	uvarint  n, then n intents, oldest first: string id, u8 weight
//	u8       dim, then (dim > 0) float32 scale and dim int8: the taste
//	         vector at the time of the write, q·scale/127 (for readers of
//	         the topic; a restore recomputes it)
//
// Everything but the taste vector is a function of the profile's own
// events, so two runs over the same input write the same bytes there.

// AppendProfile appends the changelog value of p.
func (m *Model) AppendProfile(b []byte, p *Profile) []byte {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.appendProfileLocked(b, p, true)
}

func (m *Model) appendProfileLocked(b []byte, p *Profile, withTaste bool) []byte {
	b = append(b, profileFormat)
	b = binary.AppendUvarint(b, uint64(p.PlayNext))
	b = binary.AppendUvarint(b, uint64(p.BrowseNext))
	b = appendString(b, p.PlayCountry)
	b = appendString(b, p.BrowseCountry)
	b = binary.AppendUvarint(b, uint64(p.Plays))
	sorted := slices.Clone(p.seen)
	slices.SortFunc(sorted, func(x, y int32) int {
		switch a, c := m.ids[x], m.ids[y]; {
		case a < c:
			return -1
		case a > c:
			return 1
		}
		return 0
	})
	b = binary.AppendUvarint(b, uint64(len(sorted)))
	prev := ""
	for _, t := range sorted {
		id := m.ids[t]
		shared := 0
		for shared < len(id) && shared < len(prev) && id[shared] == prev[shared] {
			shared++
		}
		b = binary.AppendUvarint(b, uint64(shared))
		b = appendString(b, id[shared:])
		prev = id
	}
	b = binary.AppendUvarint(b, uint64(len(p.ring)))
	for _, e := range p.ring {
		pos, _ := slices.BinarySearchFunc(sorted, m.ids[e.title], func(t int32, id string) int {
			switch a := m.ids[t]; {
			case a < id:
				return -1
			case a > id:
				return 1
			}
			return 0
		})
		b = binary.AppendUvarint(b, uint64(pos))
		b = append(b, e.w)
	}
	b = binary.AppendUvarint(b, uint64(len(p.intents)))
	for _, e := range p.intents {
		b = appendString(b, m.ids[e.title])
		b = append(b, e.w)
	}
	var v []float32
	if withTaste {
		v = m.tasteLocked(p, nil)
	}
	if v == nil {
		return append(b, 0)
	}
	b = append(b, byte(len(v)))
	mx := float32(0)
	for _, x := range v {
		mx = max(mx, float32(math.Abs(float64(x))))
	}
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(mx))
	for _, x := range v {
		q := int8(0)
		if mx > 0 {
			q = int8(math.Round(float64(x / mx * 127)))
		}
		b = append(b, byte(q))
	}
	return b
}

// DecodeProfile decodes a changelog value into p (whose ID the caller
// sets), registering unknown titles in the model.
func (m *Model) DecodeProfile(b []byte, p *Profile) error {
	_, err := decodeProfile(b, p, m.titleBytes, false)
	return err
}

// decodeNext reads the offsets at the start of a changelog value.
func decodeNext(b []byte) (play, browse int64, err error) {
	w := &wire{b: b}
	if f := w.byte(); f != profileFormat && w.err == nil {
		w.fail("profile format %d is not %d", f, profileFormat)
	}
	play = int64(w.uvarint(math.MaxInt64))
	browse = int64(w.uvarint(math.MaxInt64))
	return play, browse, w.err
}

// DecodeTaste returns the taste vector stored in a changelog value (nil
// when it has none), for readers of the topic.
func DecodeTaste(b []byte) ([]float32, error) {
	var p Profile
	return decodeProfile(b, &p, func([]byte) int32 { return 0 }, true)
}

func decodeProfile(b []byte, p *Profile, title func([]byte) int32, wantTaste bool) ([]float32, error) {
	w := &wire{b: b}
	if f := w.byte(); f != profileFormat && w.err == nil {
		w.fail("profile format %d is not %d", f, profileFormat)
	}
	p.PlayNext = int64(w.uvarint(math.MaxInt64))
	p.BrowseNext = int64(w.uvarint(math.MaxInt64))
	p.PlayCountry = string(w.bytes(maxIDBytes))
	p.BrowseCountry = string(w.bytes(maxIDBytes))
	p.Plays = uint32(w.uvarint(math.MaxUint32))
	n := w.count(2)
	if w.err != nil {
		return nil, w.err
	}
	sorted := make([]int32, 0, n)
	var idBuf [maxIDBytes * 2]byte
	prev := idBuf[:0]
	for i := 0; i < n && w.err == nil; i++ {
		shared := int(w.uvarint(uint64(len(prev))))
		rest := w.bytes(maxIDBytes)
		if w.err != nil {
			break
		}
		id := append(idBuf[maxIDBytes:maxIDBytes], prev[:shared]...)
		id = append(id, rest...)
		if len(id) > maxIDBytes {
			w.fail("title id of %d bytes", len(id))
			break
		}
		prev = append(idBuf[:0], id...)
		sorted = append(sorted, title(prev))
	}
	nr := w.count(2)
	p.ring = p.ring[:0]
	for i := 0; i < nr && w.err == nil; i++ {
		pos := int(w.uvarint(uint64(max(len(sorted)-1, 0))))
		wt := w.byte()
		if w.err == nil && len(sorted) > 0 {
			p.ring = append(p.ring, entry{sorted[pos], wt})
		}
	}
	ni := w.count(2)
	p.intents = p.intents[:0]
	for i := 0; i < ni && w.err == nil; i++ {
		id := w.bytes(maxIDBytes)
		wt := w.byte()
		if w.err == nil {
			p.intents = append(p.intents, entry{title(id), wt})
		}
	}
	var taste []float32
	if dim := int(w.byte()); dim > 0 && w.err == nil {
		if len(w.b)-w.off != 4+dim {
			w.fail("taste vector of %d dimensions in %d bytes", dim, len(w.b)-w.off)
		} else if wantTaste {
			scale := math.Float32frombits(binary.LittleEndian.Uint32(w.b[w.off:]))
			taste = make([]float32, dim)
			for c := range taste {
				taste[c] = float32(int8(w.b[w.off+4+c])) * scale / 127
			}
		}
		w.off = len(w.b)
	}
	if err := w.end(); err != nil {
		return nil, err
	}
	slices.Sort(sorted)
	p.seen = slices.Compact(sorted)
	return taste, nil
}

// titleBytes is Title without allocating for a known id.
func (m *Model) titleBytes(id []byte) int32 {
	m.mu.RLock()
	t, ok := m.index[string(id)]
	m.mu.RUnlock()
	if ok {
		return t
	}
	return m.Title(string(id))
}

// AppendState appends the part of p's changelog value that depends only
// on p's own events (no taste vector): two runs over the same input give
// the same bytes, whatever the model. Tests and the API compare it.
func (m *Model) AppendState(b []byte, p *Profile) []byte {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.appendProfileLocked(b, p, false)
}

// Context returns p's context, most recent first: title ids and weights
// (1 a full play, less an abandoned one).
func (m *Model) Context(p *Profile) []Scored {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]Scored, 0, len(p.ring))
	for k := len(p.ring) - 1; k >= 0; k-- {
		out = append(out, Scored{Title: m.ids[p.ring[k].title], Score: float64(p.ring[k].w) / 255})
	}
	return out
}
