package anomaly

import (
	"strings"
	"testing"
	"time"

	"github.com/atlas-stream/atlas/schemas"
)

// fixed is a detector stub for lifecycle tests.
type fixed struct{ quiet time.Duration }

func (fixed) Kind() string                      { return "test_kind" }
func (fixed) View() View                        { return ViewAccount }
func (fixed) Wants(schemas.Record) bool         { return true }
func (fixed) LookBack() time.Duration           { return time.Hour }
func (f fixed) Quiet() time.Duration            { return f.quiet }
func (fixed) Observe(*Event) Verdict            { return Verdict{} }
func (fixed) Advance(int64, func(Verdict))      {}
func (fixed) Evidence(string) map[string]string { return map[string]string{"n": "1"} }
func (fixed) Size() (int, int)                  { return 0, 0 }

func active(at, start int64, sev schemas.Severity) Verdict {
	return Verdict{Subject: "account:a", Active: true, Severity: sev, Score: float64(sev), Start: start, WindowStart: start, At: at}
}

func TestLifecycle(t *testing.T) {
	d := fixed{quiet: 10 * time.Minute}
	type step struct {
		v       Verdict // applied when Active; otherwise time passes to v.At
		want    schemas.AlertStatus
		wantSev schemas.Severity
	}
	for _, c := range []struct {
		name  string
		steps []step
		ids   int // distinct ids over all alerts
	}{
		{name: "An incident fires once while its detector keeps saying so",
			steps: []step{{v: active(t0, t0, 3), want: schemas.AlertFiring, wantSev: 3}, {v: active(t0+minute, t0, 3)},
				{v: active(t0+2*minute, t0+minute, 3)}, {v: active(t0+9*minute, t0+5*minute, 3)}}, ids: 1},
		{name: "A higher severity escalates the same incident, a lower one does not",
			steps: []step{{v: active(t0, t0, 2), want: schemas.AlertFiring, wantSev: 2}, {v: active(t0+minute, t0, 4), want: schemas.AlertEscalated, wantSev: 4},
				{v: active(t0+2*minute, t0, 3)}}, ids: 1},
		{name: "It resolves when the quiet period passes without an active verdict",
			steps: []step{{v: active(t0, t0, 3), want: schemas.AlertFiring, wantSev: 3}, {v: Verdict{At: t0 + 9*minute}},
				{v: Verdict{At: t0 + 10*minute}, want: schemas.AlertResolved, wantSev: 3}}, ids: 1},
		{name: "After it resolved, the same subject opens a new incident with a new id",
			steps: []step{{v: active(t0, t0, 3), want: schemas.AlertFiring, wantSev: 3}, {v: Verdict{At: t0 + 30*minute}, want: schemas.AlertResolved, wantSev: 3},
				{v: active(t0+40*minute, t0+35*minute, 3), want: schemas.AlertFiring, wantSev: 3}}, ids: 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := newLifecycle()
			ids := map[string]bool{}
			for i, s := range c.steps {
				var got []*schemas.Alert
				if s.v.Active {
					l.advance(s.v.At, func(a *schemas.Alert) { got = append(got, a) })
					if a := l.observe(d, s.v, func() map[string]string { return d.Evidence("") }); a != nil {
						got = append(got, a)
					}
				} else {
					l.advance(s.v.At, func(a *schemas.Alert) { got = append(got, a) })
				}
				if s.want == "" {
					if len(got) > 0 {
						t.Fatalf("step %d: unexpected alert %+v", i, got[0])
					}
					continue
				}
				if len(got) != 1 || got[0].Status != s.want || got[0].Severity != s.wantSev {
					t.Fatalf("step %d: alerts %+v, want one %s of severity %d", i, got, s.want, s.wantSev)
				}
				if err := schemas.Validate(got[0], schemas.Limits{}, time.Now()); err != nil {
					t.Fatalf("step %d: alert does not validate: %v", i, err)
				}
				ids[got[0].ID] = true
			}
			if len(ids) != c.ids {
				t.Fatalf("%d distinct ids, want %d", len(ids), c.ids)
			}
		})
	}
}

func TestAResolvedAlertCarriesTheEndOfTheQuietPeriodAsItsTime(t *testing.T) {
	d := fixed{quiet: 10 * time.Minute}
	l := newLifecycle()
	fired := l.observe(d, active(t0+2*minute, t0, 3), func() map[string]string { return nil })
	l.observe(d, active(t0+5*minute, t0, 3), func() map[string]string { return nil })
	var got *schemas.Alert
	l.advance(t0+60*minute, func(a *schemas.Alert) { got = a })
	if got == nil || got.ID != fired.ID || got.DetectedAt != t0+15*minute || got.FirstSeen != t0 || got.WindowEnd != t0+5*minute {
		t.Fatalf("resolved %+v, want id %s detected at t0+15m", got, fired.ID)
	}
}

func TestOpenIncidentsSurviveTheCommitMetadata(t *testing.T) {
	d := fixed{quiet: 10 * time.Minute}
	l := newLifecycle()
	l.observe(d, active(t0, t0-minute, 3), func() map[string]string { return nil })
	cell := Verdict{Subject: "cdn:cdn-a|isp:de telco;x|cc:DE", Active: true, Severity: 4, Score: 0.31, Start: t0, At: t0 + minute}
	l.observe(d, cell, func() map[string]string { return nil })
	var b strings.Builder
	if n := l.encode(&b, metaBudget); n != 0 {
		t.Fatalf("%d incidents left out", n)
	}
	r := newLifecycle()
	if err := r.decode(b.String()); err != nil {
		t.Fatal(err)
	}
	if len(r.open) != 2 {
		t.Fatalf("%d incidents restored from %q", len(r.open), b.String())
	}
	for k, inc := range l.open {
		got := r.open[k]
		if got == nil || *got != *inc {
			t.Fatalf("restored %+v, want %+v", got, inc)
		}
	}
	// A restored incident is not fired again, and resolves on time.
	if a := r.observe(d, active(t0+2*minute, t0+2*minute, 3), func() map[string]string { return nil }); a != nil {
		t.Fatalf("restored incident fired again: %+v", a)
	}
	var resolved []*schemas.Alert
	r.advance(t0+time.Hour.Milliseconds(), func(a *schemas.Alert) { resolved = append(resolved, a) })
	if len(resolved) != 2 {
		t.Fatalf("%d resolved after the restore, want 2", len(resolved))
	}
}

func TestTooManyOpenIncidentsForTheMetadataLeaveOutTheLeastRecent(t *testing.T) {
	d := fixed{quiet: 10 * time.Minute}
	l := newLifecycle()
	for i := int64(0); i < 100; i++ {
		v := active(t0+i*sec, t0, 3)
		v.Subject = "account:acc-" + strings.Repeat("x", 20) + string(rune('a'+i%26)) + string(rune('a'+i/26))
		l.observe(d, v, func() map[string]string { return nil })
	}
	var b strings.Builder
	n := l.encode(&b, metaBudget)
	if n == 0 || b.Len() > metaBudget {
		t.Fatalf("%d left out, %d bytes", n, b.Len())
	}
	r := newLifecycle()
	if err := r.decode(b.String()); err != nil {
		t.Fatal(err)
	}
	for _, inc := range r.open {
		if inc.lastActive < t0+int64(n)*sec {
			t.Fatalf("kept an incident last active at t0%+d while dropping %d more recent ones", inc.lastActive-t0, n)
		}
	}
}

func TestAlertIDDependsOnKindSubjectAndStartOnly(t *testing.T) {
	a := AlertID("bot", "account:a", t0)
	if a != AlertID("bot", "account:a", t0) || len(a) != 16 {
		t.Fatalf("id %q is not stable or not 16 hex digits", a)
	}
	for _, other := range []string{AlertID("bot", "account:b", t0), AlertID("bot", "account:a", t0+1), AlertID("bots", "account:a", t0)} {
		if other == a {
			t.Fatal("different incidents share an id")
		}
	}
}
