package anomaly

import (
	"testing"

	"github.com/atlas-stream/atlas/schemas"
)

func TestTravel(t *testing.T) {
	hold := 10 * minute
	for _, c := range []struct {
		name  string
		recs  []schemas.Record
		fires bool
		at    int64 // event time of the verdict
		start int64 // incident start it reports
	}{
		{
			name:  "Berlin, then Tokyo twenty minutes later, is impossible travel, reported after the hold with the Berlin stay as its start",
			recs:  merge(session("a", "d1", "s1", net(10, 1), t0, 10*minute), session("a", "d2", "s2", net(30, 1), t0+30*minute, 15*minute)),
			fires: true, at: t0 + 30*minute + hold, start: t0,
		},
		{
			name: "A family streaming at home in Berlin while one profile jumps from Berlin to Tokyo: impossible travel for that profile",
			recs: merge(profileSession("a", "pro-1", "d1", "s1", net(10, 1), t0, 10*minute), profileSession("a", "pro-2", "d3", "s3", net(10, 1), t0, 90*minute),
				profileSession("a", "pro-1", "d2", "s2", net(30, 1), t0+30*minute, 15*minute)),
			fires: true, at: t0 + 30*minute + hold, start: t0,
		},
		{
			name: "Two profiles of one account, one in Berlin and one in Tokyo, each staying put, are two people: no jump",
			recs: merge(profileSession("a", "pro-1", "d1", "s1", net(10, 1), t0, 10*minute), profileSession("a", "pro-2", "d2", "s2", net(30, 1), t0+30*minute, 15*minute)),
		},
		{
			name: "Berlin, then Paris 55 minutes later, is a short flight (under 1000 km/h)",
			recs: merge(session("a", "d1", "s1", net(10, 1), t0, 10*minute), session("a", "d2", "s2", net(12, 1), t0+65*minute, 10*minute)),
		},
		{
			name: "Berlin, then Hamburg at once, is within what geo-IP can tell apart (under 500 km)",
			recs: merge(session("a", "d1", "s1", net(10, 1), t0, 10*minute), session("a", "d2", "s2", net(11, 1), t0+11*minute, 10*minute)),
		},
		{
			name:  "One profile streaming in Berlin and, at the same time, in Tokyo cannot be one person travelling: reported",
			recs:  merge(session("a", "d1", "s1", net(10, 1), t0, 40*minute), session("a", "d2", "s2", net(30, 1), t0+10*minute, 20*minute)),
			fires: true, at: t0 + 20*minute, start: t0,
		},
		{
			name: "A jump to Tokyo dropped because, within the hold, Sydney streams while Tokyo does",
			recs: merge(session("a", "d1", "s1", net(10, 1), t0, 10*minute), session("a", "d2", "s2", net(30, 1), t0+20*minute, 20*minute),
				session("a", "d3", "s3", net(40, 1), t0+25*minute, 10*minute)),
		},
		{
			name: "After the account was used from three places within the hour, a jump from one of them is not one person's",
			recs: merge(profileSession("a", "pro-1", "d1", "s1", net(10, 1), t0, 10*minute), profileSession("a", "pro-2", "d2", "s2", net(20, 1), t0+2*minute, 10*minute),
				profileSession("a", "pro-3", "d3", "s3", net(12, 1), t0+4*minute, 10*minute),
				profileSession("a", "pro-1", "d4", "s4", net(30, 1), t0+55*minute, 10*minute)),
		},
		{
			name: "A sign-in from a data centre places a server, not the person: no jump",
			recs: merge(session("a", "d1", "s1", net(20, 1), t0, 10*minute), session("a", "d2", "s2", net(250, 1), t0+12*minute, 5*minute)),
		},
		{
			name: "A jump after more than the look-back without activity is not compared",
			recs: merge(session("a", "d1", "s1", net(10, 1), t0, 10*minute), session("a", "d2", "s2", net(30, 1), t0+80*minute, 10*minute)),
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := feedUntil(t, NewTravel(TravelConfig{}), c.recs, t0+24*60*minute)
			if !c.fires {
				if len(got) > 0 {
					t.Fatalf("active at t0%+d: %+v", got[0].At-t0, got[0])
				}
				return
			}
			if len(got) == 0 {
				t.Fatal("never active")
			}
			for _, v := range got {
				if v.Start != got[0].Start {
					t.Fatalf("verdicts of one incident with different starts: %+v", got)
				}
			}
			if got[0].At != c.at || got[0].Start != c.start || got[0].Subject != "account:a" {
				t.Fatalf("verdict %+v (at t0%+d, start t0%+d), want account:a at t0%+d, start t0%+d",
					got[0], got[0].At-t0, got[0].Start-t0, c.at-t0, c.start-t0)
			}
		})
	}
}

func TestTravelEvidenceGivesBothPlacesTheDistanceAndTheSpeed(t *testing.T) {
	d := NewTravel(TravelConfig{})
	recs := merge(session("a", "d1", "s1", net(10, 1), t0, 10*minute), session("a", "d2", "s2", net(30, 1), t0+30*minute, 15*minute))
	if got := feedUntil(t, d, recs, t0+41*minute); len(got) != 1 {
		t.Fatalf("%d verdicts", len(got))
	}
	ev := d.Evidence("account:a")
	if ev["from"] != "Berlin,DE" || ev["to"] != "Tokyo,JP" || ev["km"] != "8917" || ev["gap_ms"] != "1200000" || ev["kmh"] != "26751" {
		t.Fatalf("evidence %v", ev)
	}
}

func TestTravelAJumpWhoseOriginLeavesTheLookBackDuringTheHoldIsStillDroppedByAThirdPlace(t *testing.T) {
	// London at t0, Tokyo 58 minutes later, Sydney 7 minutes after that:
	// London is out of the hour by then, but the jump from it still counts.
	recs := merge(session("a", "d1", "s1", net(10, 1), t0, 2*minute), session("a", "d2", "s2", net(30, 1), t0+60*minute, 20*minute),
		profileSession("a", "pro-2", "d3", "s3", net(40, 1), t0+67*minute, 10*minute))
	if got := feedUntil(t, NewTravel(TravelConfig{}), recs, t0+24*60*minute); len(got) > 0 {
		t.Fatalf("reported %+v", got[0])
	}
}
