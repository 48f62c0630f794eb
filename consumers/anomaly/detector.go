package anomaly

import (
	"time"

	"github.com/atlas-stream/atlas/schemas"
)

// Detector is one kind of anomaly, found in one view. It is plain Go:
// events in (in event-time order per view, ties by event id), verdicts
// out, and state that depends only on the events of the last LookBack of
// event time. That last property is what a restart relies on: replaying
// the events of the look-back rebuilds the state exactly (see the package
// doc). A Detector is used by one goroutine.
type Detector interface {
	// Kind names the alerts ("account_sharing").
	Kind() string
	// View is the re-keying whose events the detector gets.
	View() View
	// Wants reports whether the detector needs rec at all. Stage one only
	// forwards records that a detector of the view wants.
	Wants(rec schemas.Record) bool
	// LookBack bounds how far back in event time the state reaches.
	LookBack() time.Duration
	// Quiet is how long a subject must stay without an active verdict
	// before its incident is resolved.
	Quiet() time.Duration
	// Observe folds e into its subject's state and returns the subject's
	// verdict after it. e is never older than an event observed before.
	Observe(e *Event) Verdict
	// Advance tells the detector that no event older than now will come,
	// so that it can forget what fell out of the look-back and report
	// verdicts that were waiting for time to pass (through report, in a
	// deterministic order, each with At ≤ now).
	Advance(now int64, report func(Verdict))
	// Evidence returns the numbers behind the subject's latest verdict, for
	// the alert. It is called right after the verdict was returned.
	Evidence(subject string) map[string]string
	// Size reports the subjects held and an estimate of their bytes.
	Size() (subjects, bytes int)
}

// Verdict is a detector's judgement of one subject at one event time.
type Verdict struct {
	Subject string
	// Active says the subject is anomalous now. Inactive verdicts only
	// matter in that they are not active: an incident resolves Quiet after
	// its last active verdict.
	Active   bool
	Severity schemas.Severity
	// Score is the detector's measure (a ratio, a count, a speed); higher
	// is more anomalous.
	Score float64
	// Start is the event time of the first event of the incident as the
	// detector sees it (an [Ahead] detector: the Anchor of the verdict's
	// time); with the kind and subject it makes the alert id, so it must
	// depend only on the events, never on when they arrived.
	Start int64
	// WindowStart is the start of the event-time window the verdict
	// looked at; At is the event time it was made at (its end).
	WindowStart int64
	At          int64
	// Continue marks an active verdict on weaker evidence: it keeps an
	// open incident open but never opens one.
	Continue bool
}

// keyed is a map of per-subject state with a cap on the number of
// subjects: past the cap, the least recently touched subject is evicted.
// Detectors touch subjects in event-time order, so the least recently
// touched is also the one seen longest ago, and expiry (expire) walks from
// that end. Deterministic for a given sequence of touches.
type keyed[T any] struct {
	max     int
	m       map[string]*keyedEntry[T]
	head    *keyedEntry[T] // most recently touched
	tail    *keyedEntry[T] // least recently touched
	evicted int64
}

type keyedEntry[T any] struct {
	key        string
	last       int64 // event time of the last touch
	val        T
	prev, next *keyedEntry[T]
}

func newKeyed[T any](max int) *keyed[T] {
	return &keyed[T]{max: max, m: make(map[string]*keyedEntry[T])}
}

// touch returns the state of key, creating it with init when missing, and
// marks it touched at t.
func (k *keyed[T]) touch(key string, t int64, init func() T) *T {
	e := k.m[key]
	if e == nil {
		if len(k.m) >= k.max && k.tail != nil {
			k.remove(k.tail)
			k.evicted++
		}
		e = &keyedEntry[T]{key: key, val: init()}
		k.m[key] = e
	} else {
		k.unlink(e)
	}
	e.last = max(e.last, t)
	k.pushFront(e)
	return &e.val
}

// get returns the state of key without touching it.
func (k *keyed[T]) get(key string) *T {
	if e := k.m[key]; e != nil {
		return &e.val
	}
	return nil
}

// expire forgets the subjects last touched before t, calling gone (if
// not nil) with each one first.
func (k *keyed[T]) expire(t int64, gone func(key string, v *T)) {
	for k.tail != nil && k.tail.last < t {
		e := k.tail
		if gone != nil {
			gone(e.key, &e.val)
		}
		k.remove(e)
	}
}

func (k *keyed[T]) len() int { return len(k.m) }

// each calls f for every subject, most recently touched first.
func (k *keyed[T]) each(f func(key string, v *T)) {
	for e := k.head; e != nil; e = e.next {
		f(e.key, &e.val)
	}
}

func (k *keyed[T]) remove(e *keyedEntry[T]) {
	k.unlink(e)
	delete(k.m, e.key)
}

func (k *keyed[T]) unlink(e *keyedEntry[T]) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		k.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		k.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (k *keyed[T]) pushFront(e *keyedEntry[T]) {
	e.next = k.head
	if k.head != nil {
		k.head.prev = e
	}
	k.head = e
	if k.tail == nil {
		k.tail = e
	}
}

// keyedOverhead estimates the bytes of one subject's map slot and list
// entry beyond its state.
const keyedOverhead = 96

func ms(d time.Duration) int64 { return d.Milliseconds() }
