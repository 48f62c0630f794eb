// Package intern keeps the strings decoded recently, so that decoding a
// value seen a moment ago returns the same string instead of allocating
// another.
package intern

import "hash/maphash"

// Recent is a direct-mapped cache of strings: each string has one slot,
// chosen by a hash of its bytes, and a new string takes the slot from
// whatever held it. A lookup costs a hash and one comparison, and the
// cache never grows. The zero value is not usable; see [NewRecent]. It is
// not safe for concurrent use.
type Recent struct {
	slots []string
	mask  uint64
}

// NewRecent returns a cache of at least n slots (rounded up to a power
// of two).
func NewRecent(n int) *Recent {
	size := 1
	for size < n {
		size <<= 1
	}
	return &Recent{slots: make([]string, size), mask: uint64(size - 1)}
}

var seed = maphash.MakeSeed()

// String returns b as a string: the cached one if b was the last string
// to take its slot, else a new one, which then takes the slot.
func (c *Recent) String(b []byte) string {
	slot := &c.slots[maphash.Bytes(seed, b)&c.mask]
	if *slot == string(b) { // compares without converting
		return *slot
	}
	s := string(b)
	*slot = s
	return s
}

// Lookup returns the cached string equal to b, if b was the last string
// to take its slot.
func (c *Recent) Lookup(b []byte) (string, bool) {
	s := c.slots[maphash.Bytes(seed, b)&c.mask]
	return s, s == string(b)
}

// Keep puts s in its slot.
func (c *Recent) Keep(s string) {
	c.slots[maphash.String(seed, s)&c.mask] = s
}
