package anomaly

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/atlas-stream/atlas/consumers/stream"
	"github.com/atlas-stream/atlas/internal/intern"
	"github.com/atlas-stream/atlas/schemas"
)

// metaBudget bounds the processor's part of the commit metadata; the
// engine wraps it in a little JSON and the broker refuses more than 4 KiB.
const metaBudget = 3500

// offsetBucketMs is the event-time granularity at which stage two tracks
// the first re-key offset holding each minute's records.
const offsetBucketMs = 60_000

// Judge is stage two: it runs the detectors over one partition of the
// re-key topic, in event-time order, and publishes their incidents as
// alerts. See the package doc for how it orders records from different
// input partitions and how a restart rebuilds its state exactly.
type Judge struct {
	cfg    *Config
	m      *metrics
	claim  stream.Claim
	part   string
	*court // the detectors not judged on arrival

	marks   []int64     // per input partition: every later record has t ≥ mark
	heard   []time.Time // per input partition: when a record of it last came (wall clock)
	maxMark int64
	clock   int64 // records before it have been judged; noTime before any

	buf   pendingHeap
	inBuf map[pendingKey]struct{}
	first map[int64]int64 // minute of event time → first re-key offset with a record in it

	// After a restart, the records below Claim.Processed are replayed: the
	// ones that were judged before the commit rebuild the detectors'
	// state (rebuild), in event-time order, without alerts.
	replaying   bool
	rebuild     []pending
	rebuildSeen map[pendingKey]struct{}

	idleGauge, bufferedGauge, lagGauge prometheus.Gauge

	subjects *intern.Recent // of the re-keyed records' keys
}

// subjectSlots is the size of the caches of recent subjects of a Judge
// and a Forwarder. Subjects recur close together: in BenchmarkAnomaly 256
// slots kept nearly as many as 1024 (4.77 against 4.72 allocations per
// event, stage two's cache alone).
const subjectSlots = 1024

type pending struct {
	t       int64
	id      string
	subject string
	view    View
	src     source
	srcOff  int64
	rec     schemas.Record
}

type pendingKey struct {
	src  source
	off  int64
	view View
}

func newJudge(cfg *Config, m *metrics, c stream.Claim, out Outbox) (*Judge, error) {
	var ds []Detector
	for _, d := range cfg.Detectors() {
		if !judgedOnArrival(d) {
			ds = append(ds, d)
		}
	}
	j := &Judge{cfg: cfg, m: m, claim: c, part: strconv.Itoa(c.Partition), court: newCourt(m, out, cfg.Locate, ds),
		marks: make([]int64, numSrcTopic*cfg.Partitions), heard: make([]time.Time, numSrcTopic*cfg.Partitions),
		maxMark: noTime, clock: noTime,
		inBuf: map[pendingKey]struct{}{}, first: map[int64]int64{}, subjects: intern.NewRecent(subjectSlots)}
	if cfg.ByClock {
		j.court.ahead = [numViews][]aheadDetector{}
	}
	j.idleGauge, j.bufferedGauge = m.idle.WithLabelValues(j.part), m.buffered.WithLabelValues(j.part)
	j.lagGauge = m.lag.WithLabelValues(j.part)
	now := cfg.Now()
	for i := range j.marks {
		j.marks[i] = noTime
		j.heard[i] = now
	}
	if c.Metadata != "" {
		if err := j.restore(c.Metadata); err != nil {
			return nil, fmt.Errorf("cannot restore stage two of %s/%d: %w", c.Topic, c.Partition, err)
		}
	}
	if c.Metadata != "" && c.Processed > c.Committed && c.Committed >= 0 {
		j.replaying = true
		j.rebuildSeen = map[pendingKey]struct{}{}
	}
	return j, nil
}

// Process buffers a re-keyed record until every input partition has
// passed its event time, then judges everything that became ready.
func (j *Judge) Process(_ context.Context, r *stream.Record) error {
	err := j.process(r)
	if j.replaying && r.Replay && r.Offset+1 >= j.claim.Processed {
		// The last record processed before the restart: rebuild now, while
		// the engine still counts the partition as catching up, rather than
		// when the first new record comes. With a look-back of records to
		// re-judge, that took seconds and held back the first live alerts
		// (make bench (f), lateness 0 after a restart: p99 10.8 s).
		j.finishRebuild()
	}
	return err
}

func (j *Judge) process(r *stream.Record) error {
	k, err := parseRekeyKey(r.Key, j.cfg.Partitions, j.subjects)
	if err != nil {
		return fmt.Errorf("cannot judge %s/%d@%d: key %q: %w", r.Topic, r.Partition, r.Offset, truncKey(r.Key), err)
	}
	if strings.HasPrefix(k.subject, markPrefix) {
		if !r.Replay || !j.replaying {
			if j.replaying {
				j.finishRebuild()
			}
			j.hear(k)
			j.release()
		}
		return nil
	}
	view, ok := viewOf(k.subject)
	env := envelope(r.Value)
	if !ok || env == nil {
		return fmt.Errorf("cannot judge %s/%d@%d: subject %q of a %s record is in no view", r.Topic, r.Partition, r.Offset, k.subject, r.Value.Schema())
	}
	// A late event is judged at its source's mark (see Forwarder.Process).
	p := pending{t: max(env.EventTime, k.mark), id: env.EventID, subject: k.subject, view: view, src: k.src, srcOff: k.offset, rec: r.Value}
	pk := pendingKey{k.src, k.offset, view}
	minute := floorDiv(p.t, offsetBucketMs)
	if o, ok := j.first[minute]; !ok || r.Offset < o {
		j.first[minute] = r.Offset
	}

	if r.Replay && j.replaying {
		// The marks and the clock are those of the commit already.
		if j.clock != noTime && p.t < j.clock {
			if _, dup := j.rebuildSeen[pk]; !dup {
				j.rebuildSeen[pk] = struct{}{}
				j.rebuild = append(j.rebuild, p)
			}
			return nil
		}
		j.push(p, pk)
		return nil
	}
	if j.replaying {
		j.finishRebuild()
	}

	j.hear(k)
	if j.clock != noTime && p.t < j.clock {
		// A copy sent again by a restarted stage one (its original was
		// judged), or a record of an input partition that was not waited for.
		j.m.staleJudge.Inc()
		return nil
	}
	if !j.push(p, pk) {
		j.m.staleJudge.Inc()
		return nil
	}
	// Before release: the Ahead detectors must note p before they observe it.
	j.court.arrive(p.subject, p.view, p.rec, p.t, j.clock)
	j.release()
	return nil
}

// hear notes a source's mark.
func (j *Judge) hear(k rekeyKey) {
	if m := j.marks[k.src]; k.mark > m {
		j.marks[k.src] = k.mark
	}
	j.heard[k.src] = j.cfg.Now()
	j.maxMark = max(j.maxMark, k.mark)
}

// push buffers p unless the same record is buffered already.
func (j *Judge) push(p pending, pk pendingKey) bool {
	if _, dup := j.inBuf[pk]; dup {
		return false
	}
	j.inBuf[pk] = struct{}{}
	j.buf.push(p)
	return true
}

// aligned returns the time below which no record can come any more: the
// smallest mark of the input partitions that are not idle (nothing heard
// from them for IdleAfter of wall time while others were heard).
func (j *Judge) aligned() int64 {
	if j.maxMark == noTime {
		return noTime
	}
	now := j.cfg.Now()
	w := int64(math.MaxInt64)
	idleN := 0
	for s, m := range j.marks {
		if now.Sub(j.heard[s]) > j.cfg.IdleAfter {
			idleN++
			continue
		}
		if m == noTime {
			return noTime
		}
		w = min(w, m)
	}
	j.idleGauge.Set(float64(idleN))
	if w == math.MaxInt64 {
		return noTime
	}
	return w
}

// release judges, in event-time order, every buffered record below the
// aligned clock, then lets time pass up to it.
func (j *Judge) release() {
	if w := j.aligned(); w != noTime && (j.clock == noTime || w > j.clock) {
		j.clock = w
	}
	for j.buf.Len() > j.cfg.MaxBuffered {
		// Waiting any longer would exhaust memory: judge the oldest now.
		p := j.buf.pop()
		delete(j.inBuf, pendingKey{p.src, p.srcOff, p.view})
		j.m.forced.Inc()
		if j.clock == noTime || p.t >= j.clock {
			j.clock = p.t
		}
		j.judge(p, true)
	}
	if j.clock == noTime {
		return
	}
	for j.buf.Len() > 0 && j.buf.minT() < j.clock {
		p := j.buf.pop()
		delete(j.inBuf, pendingKey{p.src, p.srcOff, p.view})
		j.judge(p, true)
	}
	j.advance(j.clock-1, true)
	j.bufferedGauge.Set(float64(j.buf.Len()))
	if j.maxMark != noTime {
		j.lagGauge.Set(float64(j.maxMark-j.clock) / 1000)
	}
}

// judge hands one record to the detectors of its view. live is false while
// rebuilding: state only, no alerts.
func (j *Judge) judge(p pending, live bool) {
	j.court.judge(p.subject, p.view, p.rec, p.t, live)
}

// finishRebuild replays, in event-time order, the records that were
// judged before the commit, to rebuild the detectors' state.
func (j *Judge) finishRebuild() {
	slices.SortFunc(j.rebuild, func(a, b pending) int { return comparePending(&a, &b) })
	for _, p := range j.rebuild {
		j.judge(p, false)
	}
	if j.clock != noTime {
		j.advance(j.clock-1, false)
	}
	j.replaying, j.rebuild, j.rebuildSeen = false, nil, nil
}

// Checkpoint waits for the published alerts, then resumes at the first
// record of the oldest minute still in some detector's look-back (or
// still buffered), with the clock, the marks and the open incidents in
// the metadata.
func (j *Judge) Checkpoint(ctx context.Context) (stream.Checkpoint, error) {
	if j.replaying {
		// Nothing new was judged since the commit this claim started from.
		return stream.Checkpoint{Offset: j.claim.Committed, Metadata: j.claim.Metadata}, nil
	}
	if err := j.flush(ctx); err != nil {
		return stream.Checkpoint{}, fmt.Errorf("cannot publish alerts of %s/%d: %w", j.claim.Topic, j.claim.Partition, err)
	}
	from := int64(math.MinInt64)
	if j.clock != noTime {
		from = floorDiv(j.clock-j.horizon, offsetBucketMs)
	}
	restart := int64(-1)
	for minute, o := range j.first {
		if minute < from {
			delete(j.first, minute)
			continue
		}
		if restart < 0 || o < restart {
			restart = o
		}
	}
	j.reportSize()
	return stream.Checkpoint{Offset: restart, Metadata: j.encode()}, nil
}

// encode writes "a2 clock marks;incidents", marks as source:mark pairs of
// the sources seen, numbers in base 36.
func (j *Judge) encode() string {
	var b strings.Builder
	b.WriteString("a2 ")
	b.WriteString(strconv.FormatInt(j.clock, 36))
	b.WriteByte(' ')
	sep := false
	for s, m := range j.marks {
		if m == noTime {
			continue
		}
		if sep {
			b.WriteByte(',')
		}
		sep = true
		b.WriteString(strconv.Itoa(s))
		b.WriteByte(':')
		b.WriteString(strconv.FormatInt(m, 36))
	}
	if !sep {
		b.WriteByte('-')
	}
	b.WriteByte(';')
	if n := j.life.encode(&b, metaBudget); n > 0 {
		j.m.dropped.Add(float64(n))
	}
	return b.String()
}

func (j *Judge) restore(s string) error {
	head, incs, ok := strings.Cut(s, ";")
	f := strings.Fields(head)
	if !ok || len(f) != 3 || f[0] != "a2" {
		return fmt.Errorf("metadata %q is not stage two's", truncKey([]byte(s)))
	}
	var err error
	if j.clock, err = strconv.ParseInt(f[1], 36, 64); err != nil {
		return fmt.Errorf("bad clock in %q: %w", head, err)
	}
	if f[2] != "-" {
		for _, pair := range strings.Split(f[2], ",") {
			a, b, ok := strings.Cut(pair, ":")
			src, err1 := strconv.Atoi(a)
			m, err2 := strconv.ParseInt(b, 36, 64)
			if !ok || err1 != nil || err2 != nil || src < 0 || src >= len(j.marks) {
				return fmt.Errorf("bad mark %q (the role has %d input partitions)", pair, len(j.marks))
			}
			j.marks[src] = m
			j.maxMark = max(j.maxMark, m)
		}
	}
	return j.life.decode(incs)
}

// StateSize returns the subjects and estimated bytes each detector holds.
func (j *Judge) StateSize() map[string][2]int { return j.stateSize() }

// Close reports the state as gone and releases the outbox.
func (j *Judge) Close() error {
	j.m.buffered.DeleteLabelValues(j.part)
	return j.court.close()
}

// comparePending orders by event time, then id, then subject. The string
// comparisons run only on ties: cmp.Or would evaluate all three for every
// comparison of the buffer's heap (10% of the role's CPU in
// bench/perevent).
func comparePending(a, b *pending) int {
	if c := cmp.Compare(a.t, b.t); c != 0 {
		return c
	}
	if c := strings.Compare(a.id, b.id); c != 0 {
		return c
	}
	return strings.Compare(a.subject, b.subject)
}

// pendingHeap holds the buffered records, smallest first by
// comparePending. The heap itself orders 16-byte entries (event time and
// slot) that hold no pointers; the records stay where they were put, in
// slots reused through a free list. Sifting the 72-byte records with
// their pointers, as it did, cost a write barrier per swap while the
// collector ran. Where the buffer is deep (atlas run all draining a
// backlog of 1.5M events), popping fell from 6.6% to 2.0% of the
// process's CPU samples and stage two as a whole from 28% to 22%; in
// BenchmarkAnomaly, whose buffer stays shallow, it is within noise.
//
// It is the algorithm of container/heap, typed, because heap.Push and
// heap.Pop box every record into an interface (two allocations per
// re-keyed record, 3.6 per event in bench/perevent BenchmarkAnomaly).
type pendingHeap struct {
	entries []heapEntry
	slots   []pending
	free    []int32
}

type heapEntry struct {
	t    int64
	slot int32
}

func (h *pendingHeap) Len() int { return len(h.entries) }

// minT is the event time of the smallest record; the heap must not be
// empty.
func (h *pendingHeap) minT() int64 { return h.entries[0].t }

func (h *pendingHeap) less(i, j int) bool {
	a, b := h.entries[i], h.entries[j]
	if a.t != b.t {
		return a.t < b.t
	}
	return comparePending(&h.slots[a.slot], &h.slots[b.slot]) < 0
}

func (h *pendingHeap) push(p pending) {
	var slot int32
	if n := len(h.free); n > 0 {
		slot = h.free[n-1]
		h.free = h.free[:n-1]
		h.slots[slot] = p
	} else {
		slot = int32(len(h.slots))
		h.slots = append(h.slots, p)
	}
	h.entries = append(h.entries, heapEntry{t: p.t, slot: slot})
	h.up(len(h.entries) - 1)
}

// pop removes and returns the smallest record; the heap must not be empty.
func (h *pendingHeap) pop() pending {
	n := len(h.entries) - 1
	h.entries[0], h.entries[n] = h.entries[n], h.entries[0]
	slot := h.entries[n].slot
	h.entries = h.entries[:n]
	h.down(0)
	p := h.slots[slot]
	h.slots[slot] = pending{} // let the record go
	h.free = append(h.free, slot)
	return p
}

func (h *pendingHeap) up(j int) {
	for {
		i := (j - 1) / 2 // parent
		if i == j || !h.less(j, i) {
			break
		}
		h.entries[i], h.entries[j] = h.entries[j], h.entries[i]
		j = i
	}
}

func (h *pendingHeap) down(i int) {
	n := len(h.entries)
	for {
		j1 := 2*i + 1
		if j1 >= n || j1 < 0 { // j1 < 0 after int overflow
			break
		}
		j := j1 // left child
		if j2 := j1 + 1; j2 < n && h.less(j2, j1) {
			j = j2 // right child
		}
		if !h.less(j, i) {
			break
		}
		h.entries[i], h.entries[j] = h.entries[j], h.entries[i]
		i = j
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func truncKey(b []byte) string {
	if len(b) > 80 {
		return url.PathEscape(string(b[:80])) + "…"
	}
	return url.PathEscape(string(b))
}
