package anomaly

import (
	"context"
	"strconv"

	"github.com/atlas-stream/atlas/schemas"
)

// OnArrival is implemented by detectors whose verdicts on a subject
// depend only on the events of one profile at a time. The input topics are
// keyed by profile, so one input partition holds every event such a
// detector needs, in its order: stage one judges them as they arrive,
// without the re-key topic and without stage two's wait for the slowest
// input partition (see the package doc). [Bot] is one.
type OnArrival interface {
	OnArrival() bool
}

func judgedOnArrival(d Detector) bool {
	a, ok := d.(OnArrival)
	return ok && a.OnArrival()
}

// Ahead is implemented by stage-two detectors that can tell, from the
// records buffered ahead of stage two's clock, that an incident has
// certainly begun, and whose incidents start at an Anchor coarse enough to
// be known by then ([Stuffing]). Stage two fires such an incident as soon
// as it is certain instead of when its clock gets there: that wait, for
// the slowest of the input partitions, is most of a stuffing alert's
// latency (see the package doc).
type Ahead interface {
	// Arrive notes a record buffered ahead of the clock, which Observe
	// gets later, in its turn. Its Place is not set.
	Arrive(e *Event)
	// Certain, called after Arrive(e), returns an active verdict if the
	// subject's verdict at its At (e's time, or a later one of a record
	// that arrived before e) will be active, whatever else is still to
	// come; its severity and score are those of an incident's first
	// active verdict.
	Certain(e *Event) Verdict
	// AheadEvidence is Evidence for the verdict Certain returned at at.
	AheadEvidence(subject string, at int64) map[string]string
	// Anchor is the start of an incident whose first active verdict is
	// at t; a step function of t.
	Anchor(t int64) int64
}

type aheadDetector interface {
	Detector
	Ahead
}

// court runs a set of detectors and the lifecycle of their incidents:
// judging a record hands it to the detectors of its view, letting time pass
// runs their timers and resolves quiet incidents, and active verdicts
// become alerts in out. Stage two has one per re-key partition, stage one
// one per input partition for the detectors judged on arrival.
type court struct {
	m     *metrics
	out   Outbox
	all   []Detector
	views [numViews][]Detector
	ahead [numViews][]aheadDetector
	// report holds, per detector of all, the callback that turns its
	// timed verdicts into alerts; made once, because a closure made per
	// call escapes through the Detector interface: 20 allocations per
	// event (of 43), 8% of the role's CPU in bench/perevent.
	report  []func(Verdict)
	horizon int64 // the longest look-back, plus a minute
	life    *lifecycle
	locate  Locator
	ev      Event // the event being judged (see judge)

	published    bool
	sizeSubjects map[string]int
	sizeBytes    map[string]int
}

func newCourt(m *metrics, out Outbox, locate Locator, ds []Detector) *court {
	c := &court{m: m, out: out, all: ds, life: newLifecycle(), locate: locate,
		sizeSubjects: map[string]int{}, sizeBytes: map[string]int{}}
	for _, d := range ds {
		c.report = append(c.report, func(v Verdict) { c.verdict(d, v) })
		c.views[d.View()] = append(c.views[d.View()], d)
		if a, ok := d.(aheadDetector); ok {
			c.ahead[d.View()] = append(c.ahead[d.View()], a)
		}
		c.horizon = max(c.horizon, ms(d.LookBack()))
	}
	c.horizon += 60_000
	return c
}

// advance lets event time pass up to now: detector timers and incident
// resolutions due by then. live is false while rebuilding: state only, no
// alerts.
func (c *court) advance(now int64, live bool) {
	if !live {
		for _, d := range c.all {
			d.Advance(now, ignoreVerdict)
		}
		return
	}
	for i, d := range c.all {
		d.Advance(now, c.report[i])
	}
	c.life.advance(now, c.publish)
}

func ignoreVerdict(Verdict) {}

// judge hands rec, at event time t, to the detectors of view.
func (c *court) judge(subject string, view View, rec schemas.Record, t int64, live bool) {
	c.advance(t, live)
	// One Event per court, reused: a local one escapes through the
	// Detector interface (an allocation per judged record, about two per
	// event). Detectors must not retain it.
	c.ev = newEvent(subject, rec, c.locate)
	c.ev.Time = t // the mark, for a late event
	for _, d := range c.views[view] {
		v := d.Observe(&c.ev)
		if live {
			c.verdict(d, v)
		}
	}
}

// arrive hands rec, buffered at event time t while the clock is at clock,
// to the Ahead detectors of view, and fires the incidents that became
// certain. The incident's first active verdict will come at a time
// between the clock and the certain verdict's: when the two have the
// same anchor, so does that first verdict, and the id is
// the one the clock would have found. Firing now opens the incident, so
// when the clock gets there the verdict only keeps it open. While an
// incident of the subject is open (and could resolve before t) it waits
// for the clock, as does the rare incident whose verdict may lie across an
// anchor boundary.
func (c *court) arrive(subject string, view View, rec schemas.Record, t, clock int64) {
	ds := c.ahead[view]
	if len(ds) == 0 {
		return
	}
	// Without Place: placing the client network was half the cost of
	// noting a record (bench/perevent), and no Ahead detector needs it.
	c.ev = newEvent(subject, rec, nil)
	c.ev.Time = t
	for _, d := range ds {
		d.Arrive(&c.ev)
		// Whatever Certain finds is at t or later: nothing to fire while
		// the clock is in an earlier minute (a backlog, mostly).
		if clock == noTime || d.Anchor(clock) != d.Anchor(t) || c.life.open[incidentKey{d.Kind(), subject}] != nil {
			continue
		}
		v := d.Certain(&c.ev)
		if !v.Active || d.Anchor(clock) != d.Anchor(v.At) {
			continue
		}
		evidence := func() map[string]string {
			ev := d.AheadEvidence(v.Subject, v.At)
			ev["ahead_of_clock_ms"] = strconv.FormatInt(v.At-clock, 10)
			return ev
		}
		if a := c.life.observe(d, v, evidence); a != nil {
			c.m.ahead.WithLabelValues(d.Kind()).Inc()
			c.publish(a)
		}
	}
}

func (c *court) verdict(d Detector, v Verdict) {
	if !v.Active {
		return
	}
	// The start is an id anchor: never older than the look-back, so that
	// a restart, which sees only the look-back, computes the same one.
	v.Start = max(v.Start, v.At-ms(d.LookBack()))
	if inc := c.life.open[incidentKey{d.Kind(), v.Subject}]; inc != nil && inc.lastActive+inc.quiet <= v.At {
		c.life.advance(inc.lastActive+inc.quiet, c.publish)
	}
	if a := c.life.observe(d, v, func() map[string]string { return d.Evidence(v.Subject) }); a != nil {
		c.publish(a)
	}
}

func (c *court) publish(a *schemas.Alert) {
	c.out.Publish(a)
	c.published = true
	c.m.alerts.WithLabelValues(a.Kind, string(a.Status)).Inc()
}

// flush waits until the alerts published since the last flush are
// durable.
func (c *court) flush(ctx context.Context) error {
	if !c.published {
		return nil
	}
	if err := c.out.Flush(ctx); err != nil {
		return err
	}
	c.published = false
	return nil
}

// reportSize updates the state gauges by this court's change since the
// last report.
func (c *court) reportSize() {
	subjects, bytes := map[string]int{}, map[string]int{}
	for _, d := range c.all {
		n, b := d.Size()
		subjects[d.Kind()] += n
		bytes[d.Kind()] += b
	}
	for k, n := range subjects {
		c.m.subjects.WithLabelValues(k).Add(float64(n - c.sizeSubjects[k]))
		c.m.stateBytes.WithLabelValues(k).Add(float64(bytes[k] - c.sizeBytes[k]))
	}
	c.sizeSubjects, c.sizeBytes = subjects, bytes
}

// stateSize returns the subjects and estimated bytes each detector holds.
func (c *court) stateSize() map[string][2]int {
	out := map[string][2]int{}
	for _, d := range c.all {
		n, b := d.Size()
		out[d.Kind()] = [2]int{n, b}
	}
	return out
}

// close reports the state as gone and releases the outbox.
func (c *court) close() error {
	for k, n := range c.sizeSubjects {
		c.m.subjects.WithLabelValues(k).Sub(float64(n))
		c.m.stateBytes.WithLabelValues(k).Sub(float64(c.sizeBytes[k]))
	}
	c.sizeSubjects, c.sizeBytes = nil, nil
	return c.out.Close()
}
