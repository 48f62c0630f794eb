package ingest

import (
	"container/heap"
	"crypto/sha256"
	"sync"
)

// nonceStore remembers the (session, nonce) pairs of accepted requests for
// as long as their timestamps are inside the window, so that a replayed
// request is refused. A request with timestamp ts is only accepted while
// now ≤ ts + window, so its pair is kept until ts + window and no longer.
//
// Memory is bounded: pairs are stored as 16-byte digests, and when the
// store holds capacity unexpired pairs, new requests are refused (the
// caller answers 503) rather than forgetting pairs that still need to be
// remembered, which would let replays through.
type nonceStore struct {
	mu       sync.Mutex
	capacity int
	seen     map[nonceKey]struct{}
	expiry   expiryHeap
}

type nonceKey [16]byte

type nonceEntry struct {
	key     nonceKey
	expires int64 // Unix seconds
}

// expiryHeap is a min-heap of entries by expiry.
type expiryHeap []nonceEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires < h[j].expires }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(nonceEntry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

func newNonceStore(capacity int) *nonceStore {
	return &nonceStore{capacity: capacity, seen: make(map[nonceKey]struct{})}
}

// nonceResult is the outcome of [nonceStore.use].
type nonceResult int

const (
	nonceFresh nonceResult = iota
	nonceReplayed
	nonceStoreFull
)

// use records the pair until expires (Unix seconds) and reports whether it
// was fresh, already used, or could not be recorded because the store is
// full. now is Unix seconds.
func (s *nonceStore) use(session, nonce string, expires, now int64) nonceResult {
	h := sha256.New()
	h.Write([]byte(session))
	h.Write([]byte{0})
	h.Write([]byte(nonce))
	var sum [sha256.Size]byte
	var key nonceKey
	copy(key[:], h.Sum(sum[:0]))

	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.expiry) > 0 && s.expiry[0].expires < now {
		delete(s.seen, heap.Pop(&s.expiry).(nonceEntry).key)
	}
	if _, ok := s.seen[key]; ok {
		return nonceReplayed
	}
	if len(s.seen) >= s.capacity {
		return nonceStoreFull
	}
	s.seen[key] = struct{}{}
	heap.Push(&s.expiry, nonceEntry{key: key, expires: expires})
	return nonceFresh
}

// size returns the number of remembered pairs.
func (s *nonceStore) size() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}
