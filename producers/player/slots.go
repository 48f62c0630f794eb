package player

import (
	"container/list"
	"context"
	"sync"
)

// slots is the Producer's bounded buffer: a weighted semaphore over the
// records that are queued or in flight. Waiters are served in arrival order,
// so a large SendSync is not starved by a stream of single Sends, and a
// caller waiting for n slots never holds some of them while it waits (two
// callers each holding half of what they need would wait forever).
type slots struct {
	mu      sync.Mutex
	size    int
	used    int
	closed  bool
	waiters list.List // of *slotWaiter
	// onChange is told every change of used, for the queued gauge.
	onChange func(delta int)
}

type slotWaiter struct {
	n     int
	ready chan error // receives nil when granted, ErrClosed when closed
}

func newSlots(size int, onChange func(delta int)) *slots {
	return &slots{size: size, onChange: onChange}
}

// tryAcquire takes n slots if they are free now and nobody waits before.
func (s *slots) tryAcquire(n int) (ok bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, ErrClosed
	}
	if s.used+n <= s.size && s.waiters.Len() == 0 {
		s.used += n
		s.onChange(n)
		return true, nil
	}
	return false, nil
}

// acquire takes n slots, waiting in line until they are free, the context
// ends (its error is returned) or the slots are closed (ErrClosed). n must
// not exceed the size.
func (s *slots) acquire(ctx context.Context, n int) error {
	if ok, err := s.tryAcquire(n); ok || err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	// Checked again under the same lock as the enqueue, so that a release
	// between tryAcquire and here is not missed.
	if s.used+n <= s.size && s.waiters.Len() == 0 {
		s.used += n
		s.onChange(n)
		s.mu.Unlock()
		return nil
	}
	w := &slotWaiter{n: n, ready: make(chan error, 1)}
	elem := s.waiters.PushBack(w)
	s.mu.Unlock()

	select {
	case err := <-w.ready:
		return err
	case <-ctx.Done():
		s.mu.Lock()
		select {
		case err := <-w.ready:
			// Granted (or closed) while the context ended: keep the
			// outcome consistent by giving granted slots back.
			s.mu.Unlock()
			if err == nil {
				s.release(n)
			}
		default:
			s.waiters.Remove(elem)
			// Leaving the head of the line may let the next ones in.
			s.grant()
			s.mu.Unlock()
		}
		return ctx.Err()
	}
}

// release returns n slots and wakes waiters that now fit.
func (s *slots) release(n int) {
	s.mu.Lock()
	s.used -= n
	if s.used < 0 {
		s.mu.Unlock()
		panic("BUG: player: more buffer slots released than acquired")
	}
	s.onChange(-n)
	s.grant()
	s.mu.Unlock()
}

// grant hands slots to waiters in order while the head of the line fits.
// s.mu is held.
func (s *slots) grant() {
	for {
		front := s.waiters.Front()
		if front == nil {
			return
		}
		w := front.Value.(*slotWaiter)
		if s.used+w.n > s.size {
			return
		}
		s.used += w.n
		s.onChange(w.n)
		s.waiters.Remove(front)
		w.ready <- nil
	}
}

// close fails every waiter and every later acquire with ErrClosed; release
// keeps working for records already in flight.
func (s *slots) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for e := s.waiters.Front(); e != nil; e = s.waiters.Front() {
		s.waiters.Remove(e)
		e.Value.(*slotWaiter).ready <- ErrClosed
	}
}

// inUse returns the number of slots taken.
func (s *slots) inUse() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used
}
