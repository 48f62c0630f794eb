package anomaly

import (
	"strconv"
	"testing"
	"time"

	"github.com/atlas-stream/atlas/schemas"
)

// signIns returns one impression per account, n accounts, gap apart, from
// one network.
func signIns(n int, start, gap int64, account func(i int) string) []schemas.Record {
	var out []schemas.Record
	for i := 0; i < n; i++ {
		a := account(i)
		out = append(out, impression(start+int64(i)*gap, a, "pro-"+a, net(250, 7), 80))
	}
	return out
}

func TestStuffing(t *testing.T) {
	distinct := func(i int) string { return "acc-" + strconv.Itoa(i) }
	for _, c := range []struct {
		name  string
		recs  []schemas.Record
		fires bool
		at    int64
	}{
		{name: "Forty accounts from one network within four minutes are credential stuffing, from the tenth on",
			recs: signIns(40, t0, 6*sec, distinct), fires: true, at: t0 + 9*6*sec},
		{name: "Nine accounts from one network are a busy office, not stuffing",
			recs: signIns(9, t0, 6*sec, distinct)},
		{name: "Ten accounts spread over an hour never share the five-minute window",
			recs: signIns(10, t0, 6*minute, distinct)},
		{name: "One account signing in forty times is one account",
			recs: signIns(40, t0, 6*sec, func(int) string { return "acc-1" })},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := feed(t, NewStuffing(StuffingConfig{}), c.recs)
			if !c.fires {
				if len(got) > 0 {
					t.Fatalf("active at t0%+d: %+v", got[0].At-t0, got[0])
				}
				return
			}
			if len(got) == 0 || got[0].At != c.at || got[0].Start != t0 || got[0].Subject != "net:250.0.7.0/24" {
				t.Fatalf("verdicts %+v, want the first at t0%+d for net:250.0.7.0/24", got[:min(len(got), 1)], c.at-t0)
			}
		})
	}
}

// TestStuffingIsCertainAheadOnlyOfWhatObserveWillSee: Certain may say a
// verdict is active before Observe gets there only when Observe's verdict
// will be active by then too, with the same start.
func TestStuffingIsCertainAheadOnlyOfWhatObserveWillSee(t *testing.T) {
	distinct := func(i int) string { return "acc-" + strconv.Itoa(i) }
	events := func(s *Stuffing, recs []schemas.Record) []Event {
		var out []Event
		for _, r := range recs {
			sub, _ := s.View().Subject(r)
			out = append(out, newEvent(sub, r, testLocate))
		}
		return out
	}
	t.Run("ten accounts, six observed and four ahead, are certain at the tenth", func(t *testing.T) {
		s := NewStuffing(StuffingConfig{})
		es := events(s, signIns(10, t0, 6*sec, distinct))
		for i := range es[:6] {
			if v := s.Observe(&es[i]); v.Active {
				t.Fatalf("active at the %dth account", i+1)
			}
		}
		var certain Verdict
		for i := 6; i < 10; i++ {
			s.Arrive(&es[i])
			v := s.Certain(&es[i])
			if v.Active != (i == 9) {
				t.Fatalf("at the %dth account: certain %v", i+1, v.Active)
			}
			certain = v
		}
		if certain.Severity != schemas.SeverityHigh || certain.Score != 10 || certain.Start != s.Anchor(es[9].Time) {
			t.Fatalf("certain verdict %+v, want high, score 10, start %d", certain, s.Anchor(es[9].Time))
		}
		var first Verdict
		for i := 6; i < 10; i++ {
			if v := s.Observe(&es[i]); v.Active && !first.Active {
				first = v
			}
		}
		if !first.Active || first.At > certain.At || first.Start != certain.Start || first.Severity != certain.Severity || first.Score != certain.Score {
			t.Fatalf("observed %+v, certain %+v: Observe must be active by then, with the same start, severity and score", first, certain)
		}
		if len(s.ahead) != 0 {
			t.Fatalf("%d networks still ahead after every record was observed", len(s.ahead))
		}
	})
	t.Run("the ninth account coming after the tenth makes the tenth's verdict certain", func(t *testing.T) {
		s := NewStuffing(StuffingConfig{})
		es := events(s, signIns(10, t0, 6*sec, distinct))
		for i := range es[:8] {
			s.Observe(&es[i])
		}
		s.Arrive(&es[9])
		if v := s.Certain(&es[9]); v.Active {
			t.Fatal("certain with nine accounts")
		}
		s.Arrive(&es[8])
		v := s.Certain(&es[8])
		if !v.Active || v.At != es[9].Time || v.Start != s.Anchor(es[9].Time) {
			t.Fatalf("certain verdict %+v, want one at the tenth account's time t0%+d", v, es[9].Time-t0)
		}
		var first Verdict
		for _, i := range []int{8, 9} {
			if o := s.Observe(&es[i]); o.Active && !first.Active {
				first = o
			}
		}
		if !first.Active || first.At > v.At || first.Start != v.Start {
			t.Fatalf("observed %+v, certain %+v", first, v)
		}
	})
	t.Run("an account ahead twice counts once", func(t *testing.T) {
		s := NewStuffing(StuffingConfig{})
		es := events(s, signIns(9, t0, 6*sec, distinct))
		again := events(s, signIns(1, t0+60*sec, 0, func(int) string { return "acc-8" }))[0]
		for i := range es[:6] {
			s.Observe(&es[i])
		}
		for _, e := range append(es[6:], again) {
			s.Arrive(&e)
			if v := s.Certain(&e); v.Active {
				t.Fatalf("certain with nine accounts at t0%+d", e.Time-t0)
			}
		}
	})
	t.Run("accounts observed before the window do not count", func(t *testing.T) {
		s := NewStuffing(StuffingConfig{})
		old := events(s, signIns(6, t0, sec, distinct))
		late := events(s, signIns(4, t0+6*minute, sec, func(i int) string { return distinct(6 + i) }))
		for i := range old {
			s.Observe(&old[i])
		}
		for i := range late {
			s.Arrive(&late[i])
			if v := s.Certain(&late[i]); v.Active {
				t.Fatalf("certain at the %dth account of the second group: the first left the window", i+1)
			}
		}
	})
}

// TestStuffingLeavesToTheClockWhatItCannotBeSureOf: a network already at
// the threshold from observed records alone (its incident resolved, or
// left out of a checkpoint) could fire critical by the clock; a cap below
// the threshold never fires. Certain says neither.
func TestStuffingLeavesToTheClockWhatItCannotBeSureOf(t *testing.T) {
	distinct := func(i int) string { return "acc-" + strconv.Itoa(i) }
	s := NewStuffing(StuffingConfig{})
	recs := signIns(11, t0, sec, distinct)
	var es []Event
	for _, r := range recs {
		sub, _ := s.View().Subject(r)
		es = append(es, newEvent(sub, r, testLocate))
	}
	for i := range es[:10] {
		s.Observe(&es[i])
	}
	s.Arrive(&es[10])
	if v := s.Certain(&es[10]); v.Active {
		t.Fatalf("certain %+v with ten accounts observed already: the clock's verdict may be of another severity", v)
	}

	capped := NewStuffing(StuffingConfig{MaxAccountsPerNet: 5})
	for i := range es {
		capped.Arrive(&es[i])
		if v := capped.Certain(&es[i]); v.Active {
			t.Fatalf("certain at the %dth account with a cap of 5 below the threshold of 10", i+1)
		}
	}
}

// TestAnIncidentFiredAheadKeepsTheClocksFiringTime: the resolved alert of
// an incident fired ahead of the clock says it fired when the clock's
// first verdict came, as a run by the clock does.
func TestAnIncidentFiredAheadKeepsTheClocksFiringTime(t *testing.T) {
	d := NewStuffing(StuffingConfig{})
	l := newLifecycle()
	subject := "net:250.0.7.0/24"
	ahead := Verdict{Subject: subject, Active: true, Severity: schemas.SeverityHigh, Score: 10, Start: d.Anchor(t0 + 11*sec), At: t0 + 11*sec}
	if a := l.observe(d, ahead, func() map[string]string { return nil }); a == nil || a.Status != schemas.AlertFiring {
		t.Fatalf("firing ahead: %+v", a)
	}
	byClock := ahead
	byClock.At = t0 + 10*sec
	if a := l.observe(d, byClock, func() map[string]string { return nil }); a != nil {
		t.Fatalf("the clock's verdict published %+v; it only keeps the incident open", a)
	}
	var resolved *schemas.Alert
	l.advance(t0+time.Hour.Milliseconds(), func(a *schemas.Alert) { resolved = a })
	if resolved == nil || resolved.Evidence["fired_at_ms"] != strconv.FormatInt(t0+10*sec, 10) {
		t.Fatalf("resolved %+v, want fired_at_ms the clock's first verdict, t0+10s", resolved)
	}
}
