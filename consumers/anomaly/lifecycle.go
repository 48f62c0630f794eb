package anomaly

import (
	"cmp"
	"container/heap"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/atlas-stream/atlas/schemas"
)

// Alert kinds, as the simulator's ground truth names the incidents.
const (
	KindAccountSharing     = "account_sharing"
	KindImpossibleTravel   = "impossible_travel"
	KindBot                = "bot"
	KindCredentialStuffing = "credential_stuffing"
	KindQuality            = "quality_degradation"
)

// AlertID is the deterministic id of an incident: the first 16 hex digits
// of SHA-256 over kind, subject and the incident's start (event time, ms).
// Every lifecycle step of the incident (firing, escalated, resolved)
// carries it, and a replay computes it again.
func AlertID(kind, subject string, start int64) string {
	h := sha256.New()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(subject))
	h.Write([]byte{0})
	h.Write([]byte(strconv.FormatInt(start, 10)))
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:8])
}

// lifecycle turns verdicts into alerts: one incident per kind and subject
// at a time, which fires once, escalates when its severity rises and
// resolves after its detector's quiet period without an active verdict.
// While an incident is open, further active verdicts only keep it open:
// that is the suppression that makes an ongoing incident one alert.
type lifecycle struct {
	open   map[incidentKey]*incident
	timers incidentTimers
}

type incidentKey struct{ kind, subject string }

type incident struct {
	kind, subject string
	id            string
	start         int64 // event time of its first event (id anchor)
	firedAt       int64
	lastActive    int64
	quiet         int64
	severity      schemas.Severity
	peakScore     float64
}

func newLifecycle() *lifecycle { return &lifecycle{open: map[incidentKey]*incident{}} }

// observe applies an active verdict of detector d; it returns the alert to
// publish, if any. evidence is called only when an alert is made.
func (l *lifecycle) observe(d Detector, v Verdict, evidence func() map[string]string) *schemas.Alert {
	if !v.Active {
		return nil
	}
	k := incidentKey{d.Kind(), v.Subject}
	inc := l.open[k]
	if inc == nil && v.Continue {
		return nil
	}
	if inc == nil {
		inc = &incident{kind: d.Kind(), subject: v.Subject, start: v.Start, id: AlertID(d.Kind(), v.Subject, v.Start),
			firedAt: v.At, lastActive: v.At, quiet: ms(d.Quiet()), severity: v.Severity, peakScore: v.Score}
		l.open[k] = inc
		heap.Push(&l.timers, incidentTimer{due: inc.lastActive + inc.quiet, key: k})
		return inc.alert(schemas.AlertFiring, v, evidence())
	}
	inc.lastActive = max(inc.lastActive, v.At)
	// An incident fired ahead of the clock (see Ahead) fired at the time
	// that made it certain; the clock's first verdict, earlier, is when
	// a run by the clock fires it. By the clock, verdicts come in order
	// and this changes nothing.
	inc.firedAt = min(inc.firedAt, v.At)
	inc.peakScore = max(inc.peakScore, v.Score)
	if v.Severity > inc.severity {
		inc.severity = v.Severity
		return inc.alert(schemas.AlertEscalated, v, evidence())
	}
	return nil
}

// advance resolves, in order of their resolution time, the incidents
// whose quiet period ended at or before now.
func (l *lifecycle) advance(now int64, emit func(*schemas.Alert)) {
	for l.timers.Len() > 0 && l.timers[0].due <= now {
		t := heap.Pop(&l.timers).(incidentTimer)
		inc := l.open[t.key]
		if inc == nil {
			continue
		}
		if due := inc.lastActive + inc.quiet; due > t.due {
			heap.Push(&l.timers, incidentTimer{due: due, key: t.key})
			continue
		}
		delete(l.open, t.key)
		at := inc.lastActive + inc.quiet
		emit(&schemas.Alert{ID: inc.id, Kind: inc.kind, Status: schemas.AlertResolved, Severity: inc.severity,
			Subject: inc.subject, Score: inc.peakScore, WindowStart: inc.start, WindowEnd: inc.lastActive,
			FirstSeen: inc.start, DetectedAt: at, Evidence: map[string]string{
				"fired_at_ms":    strconv.FormatInt(inc.firedAt, 10),
				"last_active_ms": strconv.FormatInt(inc.lastActive, 10),
				"quiet_ms":       strconv.FormatInt(inc.quiet, 10),
				"duration_ms":    strconv.FormatInt(inc.lastActive-inc.start, 10),
			}})
	}
}

func (inc *incident) alert(st schemas.AlertStatus, v Verdict, ev map[string]string) *schemas.Alert {
	ws := v.WindowStart
	if ws <= 0 || ws > v.At {
		ws = inc.start
	}
	return &schemas.Alert{ID: inc.id, Kind: inc.kind, Status: st, Severity: v.Severity, Subject: inc.subject,
		Score: v.Score, Evidence: ev, WindowStart: max(ws, 1), WindowEnd: max(v.At, ws, 1), FirstSeen: inc.start, DetectedAt: v.At}
}

// encode writes the open incidents for the commit metadata, oldest
// activity last, within budget bytes; it returns how many it had to leave
// out. A left-out incident that is still going on fires again after a
// restart, usually with the same id (not stuffing's, whose start is the
// minute of its first verdict).
func (l *lifecycle) encode(b *strings.Builder, budget int) (dropped int) {
	incs := make([]*incident, 0, len(l.open))
	for _, inc := range l.open {
		incs = append(incs, inc)
	}
	// Most recently active first: those are the ones a restart must not
	// fire again.
	slicesSortIncidents(incs)
	for _, inc := range incs {
		line := inc.kind + " " + url.QueryEscape(inc.subject) + " " + strconv.FormatInt(inc.start, 36) + " " +
			strconv.FormatInt(inc.firedAt, 36) + " " + strconv.FormatInt(inc.lastActive, 36) + " " +
			strconv.FormatInt(inc.quiet, 36) + " " + strconv.Itoa(int(inc.severity)) + " " +
			strconv.FormatFloat(inc.peakScore, 'g', -1, 64) + ";"
		if b.Len()+len(line) > budget {
			dropped++
			continue
		}
		b.WriteString(line)
	}
	return dropped
}

func slicesSortIncidents(incs []*incident) {
	for i := 1; i < len(incs); i++ {
		for j := i; j > 0 && incidentBefore(incs[j], incs[j-1]); j-- {
			incs[j], incs[j-1] = incs[j-1], incs[j]
		}
	}
}

func incidentBefore(a, b *incident) bool {
	return cmp.Or(-cmp.Compare(a.lastActive, b.lastActive), cmp.Compare(a.kind, b.kind), cmp.Compare(a.subject, b.subject)) < 0
}

// decode restores incidents written by encode.
func (l *lifecycle) decode(s string) error {
	for _, line := range strings.Split(s, ";") {
		if line == "" {
			continue
		}
		f := strings.Split(line, " ")
		if len(f) != 8 {
			return fmt.Errorf("cannot restore incident %q: %d fields", line, len(f))
		}
		subject, err := url.QueryUnescape(f[1])
		if err != nil {
			return fmt.Errorf("cannot restore incident %q: %w", line, err)
		}
		var n [4]int64
		for i := range n {
			x, err := strconv.ParseInt(f[2+i], 36, 64)
			if err != nil {
				return fmt.Errorf("cannot restore incident %q: %w", line, err)
			}
			n[i] = x
		}
		sev, err1 := strconv.Atoi(f[6])
		score, err2 := strconv.ParseFloat(f[7], 64)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("cannot restore incident %q: bad severity or score", line)
		}
		k := incidentKey{f[0], subject}
		inc := &incident{kind: f[0], subject: subject, start: n[0], id: AlertID(f[0], subject, n[0]), firedAt: n[1],
			lastActive: n[2], quiet: n[3], severity: schemas.Severity(sev), peakScore: score}
		l.open[k] = inc
		heap.Push(&l.timers, incidentTimer{due: inc.lastActive + inc.quiet, key: k})
	}
	return nil
}

type incidentTimer struct {
	due int64
	key incidentKey
}

// incidentTimers is a min-heap by due time, then kind and subject.
type incidentTimers []incidentTimer

func (q incidentTimers) Len() int { return len(q) }
func (q incidentTimers) Less(i, j int) bool {
	return cmp.Or(cmp.Compare(q[i].due, q[j].due), cmp.Compare(q[i].key.kind, q[j].key.kind),
		cmp.Compare(q[i].key.subject, q[j].key.subject)) < 0
}
func (q incidentTimers) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *incidentTimers) Push(x any)   { *q = append(*q, x.(incidentTimer)) }
func (q *incidentTimers) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}
