package anomaly

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/atlas-stream/atlas/consumers/stream"
	"github.com/atlas-stream/atlas/schemas"
)

// dedupRing is how many recent event ids of an input partition stage one
// remembers to drop duplicate sends (a producer retry re-sends within a
// few records).
const dedupRing = 64

// Forwarder is stage one: it re-keys one input partition (playback or
// browse, keyed by profile) into the views whose detectors want its
// records. It keeps no state beyond the partition's newest event time and
// the ids of its last records. See the package doc.
//
// Every MarkEvery of event time (live, LiveMarkEvery), it also sends a
// mark to each re-key partition whose newest mark from it is more than
// half a round old: a record keyed
// "mark:<partition>#<source>.<offset>.<mark>" (its value is the record at
// hand, which stage two ignores). Marks keep stage two's clock moving
// when a source has few subjects in a partition.
type Forwarder struct {
	cfg       *Config
	m         *metrics
	claim     stream.Claim
	src       source
	out       Rekeyer
	views     [numViews][]Detector // detectors per view, for Wants
	maxT      int64                // newest event time seen; minInt before any
	ring      [dedupRing]ringEntry
	ringN     int
	ringPos   int
	sent      bool
	key       []byte
	sentViews [numViews]int
	markTo    []int64 // per re-key partition: the newest mark sent to it
	lastMarks int64   // newest event time when marks were last sent
	marksAt   time.Time
}

// MarkEvery is how much event time passes between two rounds of marks.
// Live, when event time keeps pace with the wall clock, a round is also
// due after LiveMarkEvery of both event time and wall time: an alert
// waits for every source's mark, and a second between rounds was the
// largest part of its latency. (Rounds every 50 ms of event time alone
// would send marks for nearly every record of a backlog or a replay, whose
// event time runs far ahead of the wall clock: 27× the in-memory
// pipeline's run time.)
const (
	MarkEvery     = 1000 // ms
	LiveMarkEvery = 20   // ms
)

type ringEntry struct {
	offset int64
	id     string
}

const noTime = -1 << 63

func newForwarder(cfg *Config, m *metrics, c stream.Claim, code int, out Rekeyer) (*Forwarder, error) {
	f := &Forwarder{cfg: cfg, m: m, claim: c, src: source(code*cfg.Partitions + c.Partition), out: out, maxT: noTime,
		lastMarks: noTime, markTo: make([]int64, cfg.Partitions)}
	for q := range f.markTo {
		f.markTo[q] = noTime
	}
	if c.Partition < 0 || c.Partition >= cfg.Partitions {
		return nil, fmt.Errorf("cannot re-key %s/%d: the role was configured for %d partitions", c.Topic, c.Partition, cfg.Partitions)
	}
	for _, d := range cfg.Detectors() {
		f.views[d.View()] = append(f.views[d.View()], d)
	}
	if c.Metadata != "" {
		t, err := strconv.ParseInt(c.Metadata, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("cannot restore stage one of %s/%d: metadata %q is not an event time: %w", c.Topic, c.Partition, c.Metadata, err)
		}
		f.maxT = t
	}
	return f, nil
}

// Process drops duplicate sends, then sends the record to every view that
// wants it, under a key that carries the subject, the source and the
// source's mark. A late event (more than the lateness behind the
// partition's newest) is sent too, and stage two judges it at the mark,
// as if it had come at that time; the order stays a function of the
// partition's records. One beyond the horizon is counted and dropped. Records processed before
// the last commit (Replay) were sent then; they only rebuild the
// duplicate ring.
func (f *Forwarder) Process(_ context.Context, r *stream.Record) error {
	env := envelope(r.Value)
	if env == nil {
		return nil
	}
	dup := false
	for i := 0; i < f.ringN; i++ {
		if f.ring[i].id == env.EventID {
			dup = true
			break
		}
	}
	f.ring[f.ringPos] = ringEntry{offset: r.Offset, id: env.EventID}
	f.ringPos = (f.ringPos + 1) % dedupRing
	f.ringN = min(f.ringN+1, dedupRing)
	if dup {
		if !r.Replay {
			f.m.duplicates.Inc()
		}
		return nil
	}
	t := env.EventTime
	lateness := ms(f.cfg.Lateness)
	if f.maxT != noTime && t < f.maxT-lateness {
		if t < f.maxT-ms(f.cfg.Horizon) {
			if !r.Replay {
				f.m.late.WithLabelValues("dropped").Inc()
			}
			return nil
		}
		if !r.Replay {
			f.m.late.WithLabelValues("at_mark").Inc()
		}
	}
	f.maxT = max(f.maxT, t)
	if r.Replay {
		return nil
	}
	mark := f.maxT - lateness
	for v := View(0); v < numViews; v++ {
		if !f.wanted(v, r.Value) {
			continue
		}
		key, ok := v.AppendSubject(f.key[:0], r.Value)
		if !ok {
			f.key = key
			continue
		}
		n := len(key)
		f.key = appendRekeySuffix(key, f.src, f.cfg.Partitions, r.Offset, mark)
		f.out.Send(f.key, r.Value)
		f.markTo[PartitionOf(f.key[:n], f.cfg.Partitions)] = mark
		f.sentViews[v]++
		f.sent = true
	}
	if f.marksDue() {
		// A partition gets a mark when the newest one it has from this
		// source is more than half a round old: one that got a record just
		// after the last round would otherwise wait two rounds, and stage
		// two's clock waits for the stalest source. This rule, with rounds
		// every 20 ms instead of 50, took stage two's hold of a bot alert at
		// lateness 0 and half load from p50 121–144 ms to 49–57 ms, and the
		// event → alert p50 from 171–234 ms to 103–109 ms (e2e latency
		// test, two runs each).
		stale := mark - (f.maxT-f.lastMarks)/2
		if f.lastMarks == noTime {
			stale = mark
		}
		for q, m := range f.markTo {
			if m == noTime || m < stale {
				f.key = appendRekeySuffix(appendMarkSubject(f.key[:0], q), f.src, f.cfg.Partitions, r.Offset, mark)
				f.out.Send(f.key, r.Value)
				f.markTo[q] = mark
				f.sent = true
			}
		}
		f.lastMarks = f.maxT
		f.marksAt = f.cfg.Now()
	}
	return nil
}

// marksDue reports whether a round of marks is due: MarkEvery of event
// time since the last, or LiveMarkEvery of event time and of wall time.
func (f *Forwarder) marksDue() bool {
	switch d := f.maxT - f.lastMarks; {
	case f.lastMarks == noTime || d >= MarkEvery:
		return true
	case d >= LiveMarkEvery:
		return f.cfg.Now().Sub(f.marksAt) >= LiveMarkEvery*time.Millisecond
	}
	return false
}

func (f *Forwarder) wanted(v View, rec schemas.Record) bool {
	for _, d := range f.views[v] {
		if d.Wants(rec) {
			return true
		}
	}
	return false
}

// Checkpoint waits until everything sent is durable. It resumes at the
// oldest record of the duplicate ring, so that a restart rebuilds the ring
// by replaying it, and keeps the newest event time in the metadata.
func (f *Forwarder) Checkpoint(ctx context.Context) (stream.Checkpoint, error) {
	if f.sent {
		if err := f.out.Flush(ctx); err != nil {
			return stream.Checkpoint{}, fmt.Errorf("cannot re-key %s/%d: %w", f.claim.Topic, f.claim.Partition, err)
		}
		f.sent = false
		for v := range f.sentViews {
			if f.sentViews[v] > 0 {
				f.m.forwarded.WithLabelValues(View(v).String()).Add(float64(f.sentViews[v]))
				f.sentViews[v] = 0
			}
		}
	}
	cp := stream.Checkpoint{Offset: -1}
	if f.ringN > 0 {
		oldest := (f.ringPos - f.ringN + dedupRing) % dedupRing
		cp.Offset = f.ring[oldest].offset
	}
	if f.maxT != noTime {
		cp.Metadata = strconv.FormatInt(f.maxT, 10)
	}
	return cp, nil
}

// Close releases the output.
func (f *Forwarder) Close() error { return f.out.Close() }
