package anomaly

import (
	"strconv"
	"strings"
	"testing"

	"github.com/atlas-stream/atlas/schemas"
)

// t0 is an arbitrary event time: Monday 2026-11-02 00:00 UTC.
const t0 = int64(1_793_577_600_000)

const (
	sec    = int64(1000)
	minute = 60 * sec
)

// testPlaces is a small map for the tests: /24 prefixes by their first
// octet.
var testPlaces = map[string]Place{
	"10":  {City: "Berlin", Country: "DE", Lat: 52.52, Lon: 13.40},
	"11":  {City: "Hamburg", Country: "DE", Lat: 53.55, Lon: 9.99},
	"12":  {City: "Paris", Country: "FR", Lat: 48.86, Lon: 2.35},
	"20":  {City: "New York", Country: "US", Lat: 40.71, Lon: -74.01},
	"30":  {City: "Tokyo", Country: "JP", Lat: 35.68, Lon: 139.69},
	"40":  {City: "Sydney", Country: "AU", Lat: -33.87, Lon: 151.21},
	"250": {City: "Frankfurt", Country: "DE", Lat: 50.11, Lon: 8.68, Hosting: true},
}

func testLocate(clientNet string) (Place, bool) {
	octet, _, _ := strings.Cut(clientNet, ".")
	p, ok := testPlaces[octet]
	return p, ok
}

// net returns a ClientNet in the city numbered by octet.
func net(octet, block int) string {
	return strconv.Itoa(octet) + ".0." + strconv.Itoa(block) + ".0/24#abcdef012345"
}

var evSeq int

func env(t int64, acc, profile, device, session, clientNet string) schemas.Envelope {
	evSeq++
	return schemas.Envelope{EventID: "e" + strconv.Itoa(evSeq), EventTime: t, ReceiveTime: t, AccountID: acc,
		ProfileID: profile, DeviceID: device, SessionID: session, ClientNet: clientNet, Country: "DE", DeviceType: schemas.DeviceTV}
}

func play(t int64, acc, device, session, clientNet string, kind schemas.PlaybackKind) *schemas.Playback {
	return &schemas.Playback{Envelope: env(t, acc, "pro-"+acc, device, session, clientNet), Kind: kind, TitleID: "tt-1",
		CDN: "cdn-a", ISP: "de-telco"}
}

func impression(t int64, acc, profile, clientNet string, dwell int64) *schemas.Browse {
	return &schemas.Browse{Envelope: env(t, acc, profile, "dev-"+profile, "ses-"+profile, clientNet),
		Kind: schemas.BrowseImpression, TitleID: "tt-1", Row: "trending", DwellMs: dwell}
}

// session plays a stream of the account's profile "pro-<acc>" from start
// for length, a heartbeat every 30 s, and stops it.
func session(acc, device, session, clientNet string, start, length int64) []schemas.Record {
	return profileSession(acc, "pro-"+acc, device, session, clientNet, start, length)
}

// profileSession is session for a given profile of the account.
func profileSession(acc, profile, device, session, clientNet string, start, length int64) []schemas.Record {
	p := func(t int64, kind schemas.PlaybackKind) schemas.Record {
		e := play(t, acc, device, session, clientNet, kind)
		e.ProfileID = profile
		return e
	}
	out := []schemas.Record{p(start, schemas.PlayStart)}
	for t := start + 30*sec; t < start+length; t += 30 * sec {
		out = append(out, p(t, schemas.PlayHeartbeat))
	}
	return append(out, p(start+length, schemas.PlayStop))
}

// merge orders records by event time (stable), as stage two hands them on.
func merge(parts ...[]schemas.Record) []schemas.Record {
	var out []schemas.Record
	for _, p := range parts {
		out = append(out, p...)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && envelope(out[j]).EventTime < envelope(out[j-1]).EventTime; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// feed hands records to a detector the way a Judge does (time passes to
// each event, then the event) and returns its active verdicts, those
// Advance reported included.
func feed(t *testing.T, d Detector, recs []schemas.Record) []Verdict {
	return feedUntil(t, d, recs, 0)
}

// feedUntil is feed, then time passes up to until.
func feedUntil(t *testing.T, d Detector, recs []schemas.Record, until int64) []Verdict {
	t.Helper()
	var out []Verdict
	report := func(v Verdict) {
		if v.Active {
			out = append(out, v)
		}
	}
	last := int64(0)
	for _, r := range recs {
		sub, ok := d.View().Subject(r)
		if !ok {
			continue
		}
		e := newEvent(sub, r, testLocate)
		if e.Time < last {
			t.Fatalf("records out of event-time order at %d", e.Time)
		}
		last = e.Time
		d.Advance(e.Time, report)
		report(d.Observe(&e))
	}
	if until > last {
		d.Advance(until, report)
	}
	return out
}
