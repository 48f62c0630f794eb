package anomaly

import (
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/atlas-stream/atlas/schemas"
)

// QualityConfig tunes the quality-incident detector. Zero fields take the
// defaults in brackets.
type QualityConfig struct {
	// Bucket is the granularity of the counters [15s]; it must divide a
	// minute.
	Bucket time.Duration
	// Window is the sliding window judged at every event [2m].
	Window time.Duration
	// Baseline is the history, before the window, that the cell's normal
	// rebuffer ratio is learned from: the median and MAD of the ratios of
	// its Block-long blocks [1h of 5m blocks]. An incident shorter than
	// half of it does not move the median. (Per-minute ratios would be
	// mostly zero in a cell with a rebuffer a minute.)
	Baseline, Block time.Duration
	// MinBlocks: with fewer blocks of history holding at least
	// MinBlockHeartbeats heartbeats (a new cell, the first minutes of a
	// run), the prior is used instead [4, 20].
	MinBlocks, MinBlockHeartbeats int
	// PriorMedian and PriorMAD stand in for the history until there is
	// enough [0.02, 0.005 rebuffers per heartbeat].
	PriorMedian, PriorMAD float64
	// MADFloor keeps a flat history from making every change significant
	// [0.005].
	MADFloor float64
	// Minimum volume in the window: heartbeats (30 s of playback each),
	// rebuffers, and distinct sessions that rebuffered [60, 8, 5]. A cell
	// with less traffic is not judged on rebuffers: a few bad connections
	// would decide (stalls come in bursts, so a quiet cell's counts vary far
	// more than a Poisson count).
	MinHeartbeats, MinRebuffers, MinSessions int
	// The window's rebuffers per heartbeat must reach all of RatioFloor,
	// Factor × the baseline median, and the median + K robust standard
	// deviations [0.06, 4, 3; the count's significance is MaxP's to judge].
	RatioFloor, Factor, K float64
	// MaxP: the window's rebuffer count must also be this unlikely for a
	// Poisson count at the baseline rate (at least RateFloor) [1e-7; a cell
	// is judged at every event, a few hundred thousand times a day].
	// MinSessions keeps one bad connection, whose stalls come in bursts,
	// from counting as many.
	MaxP, RateFloor float64
	// Start failures: at least MinAttempts starts and start failures in the
	// window, at least MinFailures of them failures, at a rate of at least
	// FailFloor [10, 5, 0.3].
	MinAttempts, MinFailures int
	FailFloor                float64
	// Quiet resolves an incident after this long with a normal window [3m].
	Quiet time.Duration
	// RelaxFor: for this long after the window last met the thresholds, it
	// stays anomalous on weaker evidence — a ratio of at least half the
	// threshold, or too few heartbeats to tell — so that an incident whose
	// viewers leave (stalls drive them away) does not resolve and fire
	// again [10m].
	RelaxFor time.Duration
	// MaxCells caps the cells held [50,000].
	MaxCells int
}

func (c QualityConfig) withDefaults() QualityConfig {
	def(&c.Bucket, 15*time.Second)
	def(&c.Window, 2*time.Minute)
	def(&c.Baseline, time.Hour)
	def(&c.Block, 5*time.Minute)
	defInt(&c.MinBlocks, 4)
	defInt(&c.MinBlockHeartbeats, 20)
	defFloat(&c.PriorMedian, 0.02)
	defFloat(&c.PriorMAD, 0.005)
	defFloat(&c.MADFloor, 0.005)
	defInt(&c.MinHeartbeats, 60)
	defInt(&c.MinRebuffers, 8)
	defInt(&c.MinSessions, 5)
	defFloat(&c.RatioFloor, 0.06)
	defFloat(&c.Factor, 4)
	defFloat(&c.K, 3)
	defFloat(&c.MaxP, 1e-7)
	defFloat(&c.RateFloor, 0.01)
	defInt(&c.MinAttempts, 10)
	defInt(&c.MinFailures, 5)
	defFloat(&c.FailFloor, 0.3)
	def(&c.Quiet, 3*time.Minute)
	def(&c.RelaxFor, 10*time.Minute)
	defInt(&c.MaxCells, 50_000)
	return c
}

// Quality detects streaming-quality incidents per CDN × ISP × country
// cell: a rebuffer ratio (rebuffers per heartbeat) far above the cell's
// own robust baseline, or a burst of start failures, with a minimum
// volume so that quiet cells stay quiet.
type Quality struct {
	cfg      QualityConfig
	bucketMs int64
	nBuckets int
	cells    *keyed[qCell]
	base     *Baseline // scratch
	minutes  map[int64][2]uint32
}

type qCell struct {
	ring []qBucket
	cur  int64 // start of the newest bucket seen
	// baseline of the newest bucket, computed when it began
	med, mad float64
	baseN    int
	last     qJudgement
	// the last event time the window met the thresholds, and the start
	// of that incident
	strictAt, strictStart int64
}

type qBucket struct {
	start                       int64
	hb, rb, starts, fails, errs uint32
	sess                        []uint64 // sessions that rebuffered, at most 16
}

type qJudgement struct {
	hb, rb, starts, fails, errs, sessions, active int
	ratio, thr, z, failRate, p, ps                float64
	windowStart                                   int64
}

// NewQuality returns a quality-incident detector.
func NewQuality(cfg QualityConfig) *Quality {
	cfg = cfg.withDefaults()
	bm := ms(cfg.Bucket)
	n := int((ms(cfg.Baseline)+ms(cfg.Window))/bm) + 1
	return &Quality{cfg: cfg, bucketMs: bm, nBuckets: n, cells: newKeyed[qCell](cfg.MaxCells),
		base: NewBaseline(int(ms(cfg.Baseline)/ms(cfg.Block)) + 1), minutes: map[int64][2]uint32{}}
}

// Kind returns "quality_degradation".
func (*Quality) Kind() string { return KindQuality }

// View returns ViewCell.
func (*Quality) View() View { return ViewCell }

// Wants starts, heartbeats, rebuffers and errors.
func (*Quality) Wants(rec schemas.Record) bool {
	p, ok := rec.(*schemas.Playback)
	if !ok {
		return false
	}
	switch p.Kind {
	case schemas.PlayStart, schemas.PlayHeartbeat, schemas.PlayRebuffer, schemas.PlayError:
		return true
	}
	return false
}

// LookBack is the baseline plus the window (which covers RelaxFor).
func (q *Quality) LookBack() time.Duration {
	return max(q.cfg.Baseline+q.cfg.Window+q.cfg.Bucket, q.cfg.RelaxFor+q.cfg.Window)
}

// Quiet returns the configured quiet period.
func (q *Quality) Quiet() time.Duration { return q.cfg.Quiet }

// Observe counts a playback event in its cell and judges the cell's
// window.
func (q *Quality) Observe(e *Event) Verdict {
	v := Verdict{Subject: e.Subject, At: e.Time}
	if e.Play == nil || !q.Wants(e.Play) {
		return v
	}
	c := q.cells.touch(e.Subject, e.Time, func() qCell { return qCell{ring: make([]qBucket, q.nBuckets)} })
	bs := e.Time - ((e.Time%q.bucketMs)+q.bucketMs)%q.bucketMs
	b := q.slot(c, bs)
	switch e.Play.Kind {
	case schemas.PlayStart:
		b.starts++
	case schemas.PlayHeartbeat:
		b.hb++
	case schemas.PlayRebuffer:
		b.rb++
		if sid := fnv64s(e.Env.SessionID); len(b.sess) < 64 && !slices.Contains(b.sess, sid) {
			b.sess = append(b.sess, sid)
		}
	case schemas.PlayError:
		b.errs++
		if e.Play.PositionMs == 0 {
			b.fails++
		}
	}
	if bs > c.cur {
		c.cur = bs
		q.learn(c)
	}
	j := q.judge(c)
	c.last = j
	rebuffering := j.hb >= q.cfg.MinHeartbeats && j.rb >= q.cfg.MinRebuffers && j.sessions >= q.cfg.MinSessions &&
		j.ratio >= j.thr && j.p < q.cfg.MaxP
	failing := j.starts+j.fails >= q.cfg.MinAttempts && j.fails >= q.cfg.MinFailures && j.failRate >= q.cfg.FailFloor
	if !rebuffering && !failing {
		if c.strictAt == 0 || e.Time-c.strictAt > ms(q.cfg.RelaxFor) {
			return v
		}
		if j.hb < q.cfg.MinHeartbeats || j.ratio >= j.thr/2 || j.failRate >= q.cfg.FailFloor/2 {
			v.Active, v.Continue, v.Severity, v.Score = true, true, schemas.SeverityWarning, j.ratio
			v.Start, v.WindowStart = c.strictStart, j.windowStart
		} else {
			c.strictAt = 0 // enough traffic, and normal: over
		}
		return v
	}
	v.Active = true
	v.Severity = schemas.SeverityWarning
	switch {
	case rebuffering && j.ratio >= 0.25, failing && j.failRate >= 0.5:
		v.Severity = schemas.SeverityCritical
	case rebuffering && j.ratio >= 0.12, failing:
		v.Severity = schemas.SeverityHigh
	}
	v.Score = j.ratio
	if !rebuffering {
		v.Score = j.failRate
	}
	v.WindowStart = j.windowStart
	v.Start = j.windowStart
	// The incident starts at the first bucket of the window that is bad by
	// itself.
	for s := j.windowStart; s <= c.cur; s += q.bucketMs {
		x := q.peek(c, s)
		if x == nil {
			continue
		}
		if (rebuffering && x.rb > 0 && float64(x.rb) >= j.thr*float64(max(x.hb, 1))) || (failing && x.fails > 0) {
			v.Start = s
			break
		}
	}
	if c.strictAt == 0 || e.Time-c.strictAt > ms(q.cfg.RelaxFor) {
		c.strictStart = v.Start
	}
	c.strictAt = e.Time
	return v
}

// slot returns the ring bucket starting at bs, reset when it held an
// older bucket.
func (q *Quality) slot(c *qCell, bs int64) *qBucket {
	i := int((bs / q.bucketMs) % int64(q.nBuckets))
	b := &c.ring[i]
	if b.start != bs {
		*b = qBucket{start: bs, sess: b.sess[:0]}
	}
	return b
}

// peek returns the ring bucket starting at bs, or nil.
func (q *Quality) peek(c *qCell, bs int64) *qBucket {
	b := &c.ring[int((bs/q.bucketMs)%int64(q.nBuckets))]
	if b.start != bs {
		return nil
	}
	return b
}

// windowStart is the start of the window ending with the newest bucket.
func (q *Quality) windowStart(c *qCell) int64 { return c.cur + q.bucketMs - ms(q.cfg.Window) }

// learn recomputes the cell's baseline from the blocks before the
// window (blocks counted back from the window's start).
func (q *Quality) learn(c *qCell) {
	ws := q.windowStart(c)
	from := ws - ms(q.cfg.Baseline)
	block := ms(q.cfg.Block)
	clear(q.minutes)
	for i := range c.ring {
		b := &c.ring[i]
		if b.start < from || b.start >= ws || b.hb+b.rb == 0 {
			continue
		}
		k := floorDiv(ws-1-b.start, block)
		x := q.minutes[k]
		x[0] += b.hb
		x[1] += b.rb
		q.minutes[k] = x
	}
	q.base.Reset()
	for _, x := range q.minutes {
		if int(x[0]) >= q.cfg.MinBlockHeartbeats {
			q.base.Add(float64(x[1]) / float64(x[0]))
		}
	}
	c.baseN = q.base.Len()
	if c.baseN < q.cfg.MinBlocks {
		c.med, c.mad = q.cfg.PriorMedian, q.cfg.PriorMAD
		return
	}
	c.med, c.mad = q.base.Stats()
}

// BinomialTail is P(X ≥ k) for X binomial with n trials of chance p.
func BinomialTail(k, n int, p float64) float64 {
	switch {
	case k <= 0:
		return 1
	case k > n || p <= 0:
		return 0
	case p >= 1:
		return 1
	}
	lgN, _ := math.Lgamma(float64(n) + 1)
	sum := 0.0
	for i := k; i <= n; i++ {
		lgI, _ := math.Lgamma(float64(i) + 1)
		lgR, _ := math.Lgamma(float64(n-i) + 1)
		t := math.Exp(lgN - lgI - lgR + float64(i)*math.Log(p) + float64(n-i)*math.Log1p(-p))
		sum += t
		if float64(i) > float64(n)*p && t < sum*1e-12 {
			break
		}
	}
	return math.Min(1, sum)
}

// PoissonTail is P(X ≥ k) for X Poisson with mean lambda.
func PoissonTail(k int, lambda float64) float64 {
	if k <= 0 {
		return 1
	}
	if lambda <= 0 {
		return 0
	}
	// Sum the terms from k upwards in log space; they fall fast once past
	// the mean.
	lg, _ := math.Lgamma(float64(k) + 1)
	logTerm := -lambda + float64(k)*math.Log(lambda) - lg
	sum := 0.0
	for i := k; i < k+10_000; i++ {
		t := math.Exp(logTerm)
		sum += t
		if float64(i) > lambda && t < sum*1e-12 {
			break
		}
		logTerm += math.Log(lambda) - math.Log(float64(i+1))
	}
	return math.Min(1, sum)
}

func (q *Quality) judge(c *qCell) qJudgement {
	j := qJudgement{windowStart: q.windowStart(c)}
	var sess []uint64
	for s := j.windowStart; s <= c.cur; s += q.bucketMs {
		b := q.peek(c, s)
		if b == nil {
			continue
		}
		j.hb += int(b.hb)
		j.rb += int(b.rb)
		j.starts += int(b.starts)
		j.fails += int(b.fails)
		j.errs += int(b.errs)
		for _, x := range b.sess {
			if !slices.Contains(sess, x) {
				sess = append(sess, x)
			}
		}
	}
	j.sessions = len(sess)
	if j.hb > 0 {
		j.ratio = float64(j.rb) / float64(j.hb)
	}
	if a := j.starts + j.fails; a > 0 {
		j.failRate = float64(j.fails) / float64(a)
	}
	j.thr = math.Max(q.cfg.RatioFloor, math.Max(q.cfg.Factor*c.med, c.med+q.cfg.K*madScale*math.Max(c.mad, q.cfg.MADFloor)))
	j.z = RobustZ(j.ratio, c.med, c.mad, q.cfg.MADFloor)
	// How likely the window's rebuffer count is at the baseline rate, and
	// how likely that many of its sessions rebuffered.
	rate := math.Max(c.med, q.cfg.RateFloor)
	j.p = PoissonTail(j.rb, float64(j.hb)*rate)
	perSession := float64(ms(q.cfg.Window)) / 30_000 // heartbeats of a session in the window
	j.active = max(j.sessions, int(math.Ceil(float64(j.hb)/perSession)))
	j.ps = BinomialTail(j.sessions, j.active, -math.Expm1(-rate*perSession))
	return j
}

// Advance forgets cells without events in the look-back.
func (q *Quality) Advance(now int64, _ func(Verdict)) {
	q.cells.expire(now-ms(q.LookBack()), nil)
}

// Evidence gives the window's counts and ratios beside the baseline.
func (q *Quality) Evidence(subject string) map[string]string {
	c := q.cells.get(subject)
	if c == nil {
		return nil
	}
	j := c.last
	f := func(x float64) string { return strconv.FormatFloat(x, 'f', 4, 64) }
	return map[string]string{
		"rebuffers":               strconv.Itoa(j.rb),
		"heartbeats":              strconv.Itoa(j.hb),
		"rebuffers_per_heartbeat": f(j.ratio),
		"baseline_median":         f(c.med),
		"baseline_mad":            f(c.mad),
		"baseline_blocks":         strconv.Itoa(c.baseN),
		"p_value":                 strconv.FormatFloat(j.p, 'g', 3, 64),
		"sessions":                strconv.Itoa(j.active),
		"sessions_p_value":        strconv.FormatFloat(j.ps, 'g', 3, 64),
		"threshold":               f(j.thr),
		"z":                       strconv.FormatFloat(j.z, 'f', 1, 64),
		"sessions_rebuffering":    strconv.Itoa(j.sessions),
		"starts":                  strconv.Itoa(j.starts),
		"start_failures":          strconv.Itoa(j.fails),
		"start_failure_rate":      f(j.failRate),
		"errors":                  strconv.Itoa(j.errs),
		"window_ms":               strconv.FormatInt(ms(q.cfg.Window), 10),
	}
}

// Size reports cells held and an estimate of their bytes.
func (q *Quality) Size() (int, int) {
	n := 0
	q.cells.each(func(k string, c *qCell) {
		n += keyedOverhead + len(k) + 96 + len(c.ring)*56
		for _, b := range c.ring {
			n += 8 * cap(b.sess)
		}
	})
	return q.cells.len(), n
}
