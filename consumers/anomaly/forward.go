package anomaly

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"strconv"
	"strings"
	"time"

	"github.com/atlas-stream/atlas/consumers/stream"
	"github.com/atlas-stream/atlas/internal/intern"
	"github.com/atlas-stream/atlas/schemas"
)

// dedupRing is how many recent event ids of an input partition stage one
// remembers to drop duplicate sends (a producer retry re-sends within a
// few records).
const dedupRing = 64

// Forwarder is stage one: it re-keys one input partition (playback or
// browse, keyed by profile) into the views whose detectors want its
// records, and judges the records that the detectors judged on arrival
// ([OnArrival]) want. Beyond those detectors' state, it keeps the
// partition's newest event time and the ids of its last records. See the
// package doc.
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
	subjects  *intern.Recent // of the records judged on arrival: detectors keep them
	sentViews [numViews]int
	markTo    []int64 // per re-key partition: the newest mark sent to it
	lastMarks int64   // newest event time when marks were last sent
	marksAt   time.Time

	// The detectors judged on arrival, and where a restart must resume to
	// rebuild them: per minute of event time in which they judged a
	// record, the first such record.
	court      *court
	buckets    map[int64]bucket
	lastMinute int64
	// After a restart, the replay rebuilds the duplicate ring from the
	// committed offset, and from offset from on (whose partition's newest
	// event time before it was fromMax) judges again, silently, what the
	// court judged before the commit. from is -1 when there is nothing to
	// rebuild.
	from, fromMax int64
}

// bucket is where a replay must begin to judge again, in the same
// state, the records of one minute: the minute's first judged record
// (offset), the oldest record of the duplicate ring before it (ringFrom),
// and the partition's newest event time before it (maxBefore).
type bucket struct {
	offset, ringFrom, maxBefore int64
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
	// hash of id, compared first: ids have one length, so comparing the
	// ids compared their bytes, 64 times per record (6 % of the CPU of
	// BenchmarkAnomaly).
	hash uint64
	id   string
}

var idSeed = maphash.MakeSeed()

const noTime = -1 << 63

func newForwarder(cfg *Config, m *metrics, c stream.Claim, code int, out Rekeyer) (*Forwarder, error) {
	f := &Forwarder{cfg: cfg, m: m, claim: c, src: source(code*cfg.Partitions + c.Partition), out: out, maxT: noTime,
		lastMarks: noTime, markTo: make([]int64, cfg.Partitions), buckets: map[int64]bucket{}, lastMinute: noTime, from: -1,
		subjects: intern.NewRecent(subjectSlots)}
	for q := range f.markTo {
		f.markTo[q] = noTime
	}
	if c.Partition < 0 || c.Partition >= cfg.Partitions {
		return nil, fmt.Errorf("cannot re-key %s/%d: the role was configured for %d partitions", c.Topic, c.Partition, cfg.Partitions)
	}
	var local []Detector
	for _, d := range cfg.Detectors() {
		if judgedOnArrival(d) {
			local = append(local, d)
		} else {
			f.views[d.View()] = append(f.views[d.View()], d)
		}
	}
	if len(local) > 0 {
		o, err := cfg.Outbox(c)
		if err != nil {
			return nil, fmt.Errorf("cannot open the alert output of %s/%d: %w", c.Topic, c.Partition, err)
		}
		f.court = newCourt(m, o, cfg.Locate, local)
	}
	if c.Metadata != "" {
		if err := f.restore(c.Metadata); err != nil {
			return nil, fmt.Errorf("cannot restore stage one of %s/%d: %w", c.Topic, c.Partition, err)
		}
	}
	return f, nil
}

// restore reads the metadata of Checkpoint: "f2 newest from fromMax;
// incidents", numbers in base 36 ("-": none). A bare decimal event time is
// the metadata of a stage one without detectors judged on arrival.
func (f *Forwarder) restore(s string) error {
	if t, err := strconv.ParseInt(s, 10, 64); err == nil {
		f.maxT = t
		return nil
	}
	head, incs, ok := strings.Cut(s, ";")
	fs := strings.Fields(head)
	if !ok || len(fs) != 4 || fs[0] != "f2" {
		return fmt.Errorf("metadata %q is not stage one's", truncKey([]byte(s)))
	}
	var n [3]int64
	for i, x := range fs[1:] {
		if x == "-" {
			n[i] = noTime
			continue
		}
		v, err := strconv.ParseInt(x, 36, 64)
		if err != nil {
			return fmt.Errorf("bad number %q in %q: %w", x, head, err)
		}
		n[i] = v
	}
	f.maxT = n[0]
	if n[1] != noTime && f.claim.Processed > n[1] {
		// The replay starts at the committed offset, at or before from.
		f.from, f.fromMax, f.maxT = n[1], n[2], noTime
	}
	if incs == "" {
		return nil
	}
	if f.court == nil {
		// Written by a version that judged a detector on arrival that
		// this one does not: its incidents cannot go on here.
		f.m.dropped.Add(float64(strings.Count(incs, ";")))
		return nil
	}
	return f.court.life.decode(incs)
}

// Process drops duplicate sends, then sends the record to every view that
// wants it, under a key that carries the subject, the source and the
// source's mark. A late event (more than the lateness behind the
// partition's newest) is sent too, and stage two judges it at the mark,
// as if it had come at that time; the order stays a function of the
// partition's records. One beyond the horizon is counted and dropped. Records processed before
// the last commit (Replay) were sent then; they only rebuild the
// duplicate ring.
func (f *Forwarder) Process(ctx context.Context, r *stream.Record) error {
	env := envelope(r.Value)
	if env == nil {
		return nil
	}
	dup := false
	h := maphash.String(idSeed, env.EventID)
	for i := 0; i < f.ringN; i++ {
		if f.ring[i].hash == h && f.ring[i].id == env.EventID {
			dup = true
			break
		}
	}
	ringFrom := r.Offset
	if f.ringN > 0 {
		ringFrom = f.ring[(f.ringPos-f.ringN+dedupRing)%dedupRing].offset
	}
	f.ring[f.ringPos] = ringEntry{offset: r.Offset, hash: h, id: env.EventID}
	f.ringPos = (f.ringPos + 1) % dedupRing
	f.ringN = min(f.ringN+1, dedupRing)
	if r.Replay && f.from >= 0 {
		if r.Offset < f.from {
			// Before the first record to judge again: the ring only.
			return nil
		}
		if r.Offset == f.from {
			f.maxT = f.fromMax
		}
	}
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
	maxBefore := f.maxT
	f.maxT = max(f.maxT, t)
	if f.court != nil {
		f.judge(r, ringFrom, maxBefore)
	}
	if r.Replay {
		return nil
	}
	mark := f.maxT - lateness
	for v := View(0); v < numViews; v++ {
		if !anyWants(f.views[v], r.Value) {
			continue
		}
		key, ok := v.AppendSubject(f.key[:0], r.Value)
		if !ok {
			f.key = key
			continue
		}
		n := len(key)
		f.key = appendRekeySuffix(key, f.src, f.cfg.Partitions, r.Offset, mark)
		f.out.Send(ctx, f.key, r.Value)
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
				f.out.Send(ctx, f.key, r.Value)
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

// judge hands r to the detectors judged on arrival, at the partition's
// newest event time: in the partition's order, which for one profile is
// the order it sent its events in, so a late event counts as if it had
// come at the newest time (the lateness, which orders the re-keyed events
// of many partitions by event time, does not apply). It notes the minute's
// first judged record, to resume there after a restart.
func (f *Forwarder) judge(r *stream.Record, ringFrom, maxBefore int64) {
	live := !r.Replay
	t := f.maxT
	for v := View(0); v < numViews; v++ {
		if !anyWants(f.court.views[v], r.Value) {
			continue
		}
		key, ok := v.AppendSubject(f.key[:0], r.Value)
		f.key = key
		if !ok {
			continue
		}
		if minute := floorDiv(t, offsetBucketMs); minute != f.lastMinute {
			if _, seen := f.buckets[minute]; !seen {
				f.buckets[minute] = bucket{offset: r.Offset, ringFrom: ringFrom, maxBefore: maxBefore}
			}
			f.lastMinute = minute
		}
		f.court.judge(f.subjects.String(key), v, r.Value, t, live)
	}
	if maxBefore != f.maxT {
		f.court.advance(f.maxT, live)
	}
}

// anyWants reports whether one of ds needs rec.
func anyWants(ds []Detector, rec schemas.Record) bool {
	for _, d := range ds {
		if d.Wants(rec) {
			return true
		}
	}
	return false
}

// Checkpoint waits until everything sent and every alert published is
// durable. It resumes at the oldest record of the duplicate ring, so that
// a restart rebuilds the ring by replaying it, or earlier, at the first
// record of the oldest minute still in the look-back of a detector judged
// on arrival (the ring before it, then the records to judge again). The
// metadata keeps the newest event time and the open incidents.
func (f *Forwarder) Checkpoint(ctx context.Context) (stream.Checkpoint, error) {
	if f.court != nil && f.from >= 0 && f.maxT == noTime {
		// Restarted, and the replay has not reached from yet: nothing new
		// since the commit this claim started from.
		return stream.Checkpoint{Offset: f.claim.Committed, Metadata: f.claim.Metadata}, nil
	}
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
	if f.court == nil {
		if f.maxT != noTime {
			cp.Metadata = strconv.FormatInt(f.maxT, 10)
		}
		return cp, nil
	}
	if err := f.court.flush(ctx); err != nil {
		return stream.Checkpoint{}, fmt.Errorf("cannot publish alerts of %s/%d: %w", f.claim.Topic, f.claim.Partition, err)
	}
	found, from := false, bucket{}
	if f.maxT != noTime {
		keep := floorDiv(f.maxT-f.court.horizon, offsetBucketMs)
		for minute, b := range f.buckets {
			if minute < keep {
				delete(f.buckets, minute)
			} else if !found || b.offset < from.offset {
				found, from = true, b
			}
		}
	}
	if found && (cp.Offset < 0 || from.ringFrom < cp.Offset) {
		cp.Offset = from.ringFrom
	}
	f.court.reportSize()
	var b strings.Builder
	b.WriteString("f2 ")
	b.WriteString(base36(f.maxT))
	b.WriteByte(' ')
	if found {
		b.WriteString(strconv.FormatInt(from.offset, 36))
		b.WriteByte(' ')
		b.WriteString(base36(from.maxBefore))
	} else {
		b.WriteString("- -")
	}
	b.WriteByte(';')
	if n := f.court.life.encode(&b, metaBudget); n > 0 {
		f.m.dropped.Add(float64(n))
	}
	cp.Metadata = b.String()
	return cp, nil
}

func base36(t int64) string {
	if t == noTime {
		return "-"
	}
	return strconv.FormatInt(t, 36)
}

// StateSize returns the subjects and estimated bytes each detector judged
// on arrival holds.
func (f *Forwarder) StateSize() map[string][2]int {
	if f.court == nil {
		return nil
	}
	return f.court.stateSize()
}

// Close releases the outputs.
func (f *Forwarder) Close() error {
	err := f.out.Close()
	if f.court != nil {
		err = errors.Join(err, f.court.close())
	}
	return err
}
