package anomaly

import (
	"testing"

	"github.com/atlas-stream/atlas/schemas"
)

func TestSharing(t *testing.T) {
	for _, c := range []struct {
		name  string
		recs  []schemas.Record
		fires bool
		at    int64 // event time of the first active verdict, when it fires
	}{
		{
			name: "Three streams live at once from Berlin, New York and Tokyo are sharing, from the moment the third starts",
			recs: merge(session("a", "d1", "s1", net(10, 1), t0, 40*minute), session("a", "d2", "s2", net(20, 1), t0+10*minute, 20*minute),
				session("a", "d3", "s3", net(30, 1), t0+12*minute, 20*minute)),
			fires: true, at: t0 + 12*minute,
		},
		{
			name: "Two streams at once, Berlin and New York, are what a family at home and one member abroad look like: not sharing",
			recs: merge(session("a", "d1", "s1", net(10, 1), t0, 40*minute), session("a", "d2", "s2", net(20, 1), t0+10*minute, 20*minute)),
		},
		{
			name: "A household streaming on four devices in one city is not sharing",
			recs: merge(session("a", "d1", "s1", net(10, 1), t0, 40*minute), session("a", "d2", "s2", net(10, 1), t0+minute, 40*minute),
				session("a", "d3", "s3", net(10, 2), t0+2*minute, 40*minute), session("a", "d4", "s4", net(10, 3), t0+3*minute, 40*minute)),
		},
		{
			name: "Five streams at once, even from one city, exceed every plan",
			recs: merge(session("a", "d1", "s1", net(10, 1), t0, 40*minute), session("a", "d2", "s2", net(10, 1), t0+minute, 40*minute),
				session("a", "d3", "s3", net(10, 1), t0+2*minute, 40*minute), session("a", "d4", "s4", net(10, 1), t0+3*minute, 40*minute),
				session("a", "d5", "s5", net(10, 1), t0+4*minute, 40*minute)),
			fires: true, at: t0 + 4*minute,
		},
		{
			name: "A traveller who watches in Berlin and, later, in New York is not sharing: two countries is one person's trip",
			recs: merge(session("a", "d1", "s1", net(10, 1), t0, 20*minute), session("a", "d2", "s2", net(20, 1), t0+30*minute, 20*minute)),
		},
		{
			name: "Playback from three countries within the hour is sharing, even one stream at a time",
			recs: merge(session("a", "d1", "s1", net(10, 1), t0, 10*minute), session("a", "d2", "s2", net(20, 1), t0+15*minute, 10*minute),
				session("a", "d3", "s3", net(30, 1), t0+30*minute, 10*minute)),
			fires: true, at: t0 + 30*minute,
		},
		{
			name: "Three countries spread over three hours are forgotten one by one: not sharing",
			recs: merge(session("a", "d1", "s1", net(10, 1), t0, 10*minute), session("a", "d2", "s2", net(20, 1), t0+80*minute, 10*minute),
				session("a", "d3", "s3", net(30, 1), t0+160*minute, 10*minute)),
		},
		{
			name: "A stream that stopped does not count as live when another place starts",
			recs: merge(session("a", "d1", "s1", net(10, 1), t0, 10*minute), session("a", "d2", "s2", net(20, 1), t0+11*minute, 10*minute)),
		},
		{
			name: "Two accounts in two cities are two accounts, not one shared",
			recs: merge(session("a", "d1", "s1", net(10, 1), t0, 40*minute), session("b", "d2", "s2", net(20, 1), t0+10*minute, 20*minute)),
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := feed(t, NewSharing(SharingConfig{}), c.recs)
			if !c.fires {
				if len(got) > 0 {
					t.Fatalf("active at %d: %+v", got[0].At-t0, got[0])
				}
				return
			}
			if len(got) == 0 {
				t.Fatal("never active")
			}
			if got[0].At != c.at || got[0].Subject != "account:a" {
				t.Fatalf("first active verdict %+v at t0%+d, want account:a at t0%+d", got[0], got[0].At-t0, c.at-t0)
			}
		})
	}
}

func TestSharingEvidenceNamesTheCountriesAndTheLiveStreams(t *testing.T) {
	d := NewSharing(SharingConfig{})
	recs := merge(session("a", "d1", "s1", net(10, 1), t0, 40*minute), session("a", "d2", "s2", net(20, 1), t0+10*minute, 20*minute),
		session("a", "d3", "s3", net(30, 1), t0+12*minute, 20*minute))
	if got := feed(t, d, recs[:36]); len(got) == 0 {
		t.Fatal("never active")
	}
	ev := d.Evidence("account:a")
	if ev["countries"] != "DE,JP,US" || ev["concurrent_places"] != "3" || ev["devices"] != "3" || ev["concurrent_streams"] != "3" {
		t.Fatalf("evidence %v", ev)
	}
}
