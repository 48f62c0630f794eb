package ingest

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiterSet holds one token bucket per key (a session, a client network).
// Memory is bounded: buckets that have refilled completely are
// indistinguishable from new ones and are dropped on a sweep; when the set
// is still at its cap, arbitrary buckets are dropped, which at worst lets
// those clients burst once more.
type limiterSet[K comparable] struct {
	limit rate.Limit
	burst int
	max   int

	mu        sync.Mutex
	buckets   map[K]*rate.Limiter
	lastSweep time.Time
}

// sweepEvery is how often full buckets are dropped.
const sweepEvery = time.Minute

func newLimiterSet[K comparable](limit rate.Limit, burst, max int) *limiterSet[K] {
	return &limiterSet[K]{limit: limit, burst: burst, max: max, buckets: make(map[K]*rate.Limiter)}
}

// allow takes a token for k at now. When there is none it returns false
// and how long until there is one.
func (s *limiterSet[K]) allow(k K, now time.Time) (bool, time.Duration) {
	if s.limit == rate.Inf {
		return true, 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	lim := s.buckets[k]
	if lim == nil {
		if len(s.buckets) >= s.max || now.Sub(s.lastSweep) > sweepEvery {
			s.sweep(now)
		}
		lim = rate.NewLimiter(s.limit, s.burst)
		s.buckets[k] = lim
	}
	r := lim.ReserveN(now, 1)
	if !r.OK() {
		// Only when burst is 0: no request can ever pass.
		return false, time.Duration(math.MaxInt64)
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// sweep drops full buckets, then, if the set is still near its cap,
// arbitrary ones down to seven eighths of it, so that the cost of a sweep
// is spread over many new keys. s.mu is held.
func (s *limiterSet[K]) sweep(now time.Time) {
	s.lastSweep = now
	for k, lim := range s.buckets {
		if lim.TokensAt(now) >= float64(s.burst) {
			delete(s.buckets, k)
		}
	}
	if len(s.buckets) < s.max {
		return
	}
	for k := range s.buckets {
		if len(s.buckets) <= s.max-s.max/8-1 {
			break
		}
		delete(s.buckets, k)
	}
}

// size returns the number of buckets held.
func (s *limiterSet[K]) size() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.buckets)
}
