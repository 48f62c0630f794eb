// Package slab hands out byte slices cut from large blocks: many small,
// short-lived copies cost one allocation per block instead of one each.
package slab

import "unsafe"

// BlockSize is the size of a block, unless one value needs more.
const BlockSize = 64 << 10

// Slab cuts byte slices from its current block and starts a new block
// when the current one is full. A slice it returned is never written to
// again by the Slab, so it stays valid, and immutable, for as long as the
// caller keeps it; a block is freed when nothing refers to it any more.
// It is not safe for concurrent use; the zero value is ready to use.
type Slab struct {
	block []byte
}

// Copy returns a copy of b, cut from the current block.
func (s *Slab) Copy(b []byte) []byte {
	s.room(len(b))
	start := len(s.block)
	s.block = append(s.block, b...)
	return s.block[start:len(s.block):len(s.block)]
}

// Tail returns the free end of the current block as an empty slice,
// for the caller to append a value to and hand to [Slab.Keep]. hint is
// the size the value usually takes: when the block has less room than
// that, a new block is started first.
func (s *Slab) Tail(hint int) []byte {
	s.room(max(hint, 1))
	return s.block[len(s.block):]
}

// Keep returns b, a slice that the last [Slab.Tail] returned with a value
// appended, capped at its length. The block then counts those bytes as
// used. If appending outgrew the block, b has an array of its own and is
// returned as it is.
func (s *Slab) Keep(b []byte) []byte {
	tail := s.block[len(s.block):]
	if cap(b) == cap(tail) && unsafe.SliceData(b) == unsafe.SliceData(tail) {
		s.block = s.block[:len(s.block)+len(b)]
	}
	return b[:len(b):len(b)]
}

// room makes sure the current block has n bytes free.
func (s *Slab) room(n int) {
	if cap(s.block)-len(s.block) < n {
		s.block = make([]byte, 0, max(BlockSize, n))
	}
}
