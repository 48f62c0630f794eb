package sim

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/segmentio/kafka-go"

	"github.com/atlas-stream/atlas/internal/eventtime"
	"github.com/atlas-stream/atlas/producers/sim/geo"
	"github.com/atlas-stream/atlas/producers/sim/recfile"
	"github.com/atlas-stream/atlas/schemas"
)

// small is a configuration that runs in well under a second yet plants
// every incident: few profiles make simulated time pass quickly.
func small(seed uint64, events int64) Config {
	c := DefaultConfig()
	c.Seed = seed
	c.Events = events
	c.Profiles = 3000
	c.Titles = 400
	return c
}

// run simulates cfg into a record file in memory and returns its bytes and
// the truth.
func run(t testing.TB, cfg Config) ([]byte, *Truth) {
	t.Helper()
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tr, err := g.Run(context.Background(), FileSink{W: recfile.NewWriter(&buf)})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), tr
}

func encodeTruth(t testing.TB, tr *Truth) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := tr.Encode(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// decoded is one record read back from a record file.
type decoded struct {
	schema schemas.Schema
	rec    schemas.Record
}

func decodeAll(t testing.TB, b []byte) []decoded {
	t.Helper()
	r := recfile.NewReader(bytes.NewReader(b))
	dec := schemas.NewDecoder(schemas.Limits{})
	var out []decoded
	for {
		s, v, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		rec, err := dec.Decode(string(s), v)
		if err != nil {
			t.Fatalf("record %d does not decode: %v", len(out), err)
		}
		out = append(out, decoded{s, rec})
	}
}

func TestTheSameSeedGivesByteIdenticalEventsAndTruth(t *testing.T) {
	a, ta := run(t, small(7, 40_000))
	b, tb := run(t, small(7, 40_000))
	if !bytes.Equal(a, b) {
		t.Fatalf("two runs with seed 7 wrote different streams (%d and %d bytes)", len(a), len(b))
	}
	if !bytes.Equal(encodeTruth(t, ta), encodeTruth(t, tb)) {
		t.Fatal("two runs with seed 7 wrote different truths")
	}
	c, tc := run(t, small(8, 40_000))
	if bytes.Equal(a, c) {
		t.Fatal("seeds 7 and 8 wrote the same stream")
	}
	if bytes.Equal(encodeTruth(t, ta), encodeTruth(t, tc)) {
		t.Fatal("seeds 7 and 8 wrote the same truth")
	}
}

func TestEveryRecordIsValidAndTheStreamHasTheExpectedShape(t *testing.T) {
	cfg := small(3, 60_000)
	b, tr := run(t, cfg)
	recs := decodeAll(t, b)
	if got, want := len(recs), cfg.Titles+int(cfg.Events); got != want {
		t.Fatalf("%d records, want %d titles + %d events", got, cfg.Titles, cfg.Events)
	}
	kinds := map[string]int{}
	for i, d := range recs {
		if err := schemas.Validate(d.rec, schemas.Limits{}, time.Time{}); err != nil {
			t.Fatalf("record %d (%s) is invalid: %v\n%+v", i, d.schema, err, d.rec)
		}
		if i < cfg.Titles != (d.schema == schemas.SchemaCatalog) {
			t.Fatalf("record %d is %s: the catalog must come first, and only first", i, d.schema)
		}
		switch e := d.rec.(type) {
		case *schemas.Playback:
			kinds["playback."+string(e.Kind)]++
			if e.ReceiveTime < e.EventTime || e.CDN == "" || e.ISP == "" || e.Country == "" || e.DeviceType == "" {
				t.Fatalf("record %d lacks a receive time after its event time, a CDN, ISP, country or device type: %+v", i, e)
			}
			if e.Kind == schemas.PlayStart && (e.SourceRow == "") != (e.SourceArtworkID == "") {
				t.Fatalf("record %d: a start has a source row without an artwork or the reverse: %+v", i, e)
			}
			if _, _, ok := geo.Locate(e.ClientNet); !ok || !strings.Contains(e.ClientNet, "/24#") || len(e.ClientNet[strings.Index(e.ClientNet, "#")+1:]) != 12 {
				t.Fatalf("record %d: ClientNet %q is not <prefix>/24#<12 hex> of a known city", i, e.ClientNet)
			}
		case *schemas.Browse:
			kinds["browse."+string(e.Kind)]++
			if e.ReceiveTime < e.EventTime {
				t.Fatalf("record %d: receive time before event time", i)
			}
		}
	}
	for _, k := range schemas.PlaybackKinds {
		if kinds["playback."+string(k)] == 0 {
			t.Errorf("no playback event of kind %s in %d events", k, cfg.Events)
		}
	}
	for _, k := range schemas.BrowseKinds {
		if kinds["browse."+string(k)] == 0 {
			t.Errorf("no browse event of kind %s in %d events", k, cfg.Events)
		}
	}
	if tr.Totals.Sent != cfg.Events || tr.Totals.Unique+tr.Totals.Duplicates != tr.Totals.Sent {
		t.Fatalf("totals do not add up: %+v", tr.Totals)
	}
	t.Logf("kinds: %v", kinds)
}

// recompute derives the truth's tables from the decoded stream alone, with
// the rules of the package doc written out the straightforward way.
type recomputed struct {
	playback   []PlaybackRow
	quality    []QualityRow
	funnel     []FunnelRow
	late       []LateEvent
	duplicates []string
	totals     Totals
}

func recompute(t *testing.T, recs []decoded, partitions int, rules eventtime.Rules) recomputed {
	t.Helper()
	parts := make([]int, partitions)
	for i := range parts {
		parts[i] = i
	}
	type wmKey struct {
		topic string
		p     int
	}
	wms := map[wmKey]*eventtime.Watermark{}
	seen := map[string]bool{}
	type pk struct {
		w         int64
		title, cc string
		dt        schemas.DeviceType
	}
	type qk struct {
		w            int64
		cdn, isp, cc string
	}
	type fk struct {
		w        int64
		row, art string
	}
	pb := map[pk]*PlaybackRow{}
	viewers := map[pk]map[string]bool{}
	q := map[qk]*QualityRow{}
	fn := map[fk]*FunnelRow{}
	var out recomputed
	for _, d := range recs {
		var env *schemas.Envelope
		topic := ""
		switch e := d.rec.(type) {
		case *schemas.Playback:
			env, topic = &e.Envelope, "atlas.playback.v1"
		case *schemas.Browse:
			env, topic = &e.Envelope, "atlas.browse.v1"
		default:
			continue
		}
		p := (&kafka.Murmur2Balancer{}).Balance(kafka.Message{Key: []byte(env.ProfileID)}, parts...)
		k := wmKey{topic, p}
		if wms[k] == nil {
			wms[k] = rules.NewWatermark()
		}
		late := wms[k].IsLate(env.EventTime)
		wms[k].Observe(env.EventTime)
		out.totals.Sent++
		if seen[env.EventID] {
			out.duplicates = append(out.duplicates, env.EventID)
			continue
		}
		seen[env.EventID] = true
		w := rules.WindowStart(env.EventTime)
		if late {
			out.late = append(out.late, LateEvent{EventID: env.EventID, Window: w, Topic: topic, Partition: p})
			continue
		}
		switch e := d.rec.(type) {
		case *schemas.Playback:
			key := pk{w, e.TitleID, e.Country, e.DeviceType}
			r := pb[key]
			if r == nil {
				r = &PlaybackRow{Window: w, TitleID: e.TitleID, Country: e.Country, DeviceType: e.DeviceType}
				pb[key] = r
				viewers[key] = map[string]bool{}
			}
			viewers[key][e.ProfileID] = true
			r.WatchMs += e.WatchedMs
			qkey := qk{w, e.CDN, e.ISP, e.Country}
			qr := q[qkey]
			if qr == nil {
				qr = &QualityRow{Window: w, CDN: e.CDN, ISP: e.ISP, Country: e.Country}
				q[qkey] = qr
			}
			switch e.Kind {
			case schemas.PlayStart:
				r.Starts++
				qr.Sessions++
				if e.SourceRow != "" {
					fkey := fk{w, e.SourceRow, e.SourceArtworkID}
					if fn[fkey] == nil {
						fn[fkey] = &FunnelRow{Window: w, Row: e.SourceRow, ArtworkID: e.SourceArtworkID}
					}
					fn[fkey].Plays++
				}
			case schemas.PlayComplete:
				r.Completes++
			case schemas.PlayStop:
				dec := int64(0)
				if e.DurationMs > 0 {
					dec = min(9, max(0, 10*e.PositionMs/e.DurationMs))
				}
				r.Dropoff[dec]++
			case schemas.PlayRebuffer:
				qr.Rebuffers++
				qr.RebufferMs += e.RebufferMs
			case schemas.PlayError:
				qr.Errors++
				if e.PositionMs == 0 {
					qr.StartFailures++
				}
			case schemas.PlayHeartbeat:
				qr.BitrateSum += e.BitrateKbps
				qr.BitrateSamples++
			}
		case *schemas.Browse:
			if e.Row == "" || (e.Kind != schemas.BrowseImpression && e.Kind != schemas.BrowseSelect) {
				continue
			}
			fkey := fk{w, e.Row, e.ArtworkID}
			if fn[fkey] == nil {
				fn[fkey] = &FunnelRow{Window: w, Row: e.Row, ArtworkID: e.ArtworkID}
			}
			if e.Kind == schemas.BrowseImpression {
				fn[fkey].Impressions++
			} else {
				fn[fkey].Selects++
			}
		}
	}
	for k, r := range pb {
		r.Viewers = int64(len(viewers[k]))
		out.playback = append(out.playback, *r)
	}
	for _, r := range q {
		if *r != (QualityRow{Window: r.Window, CDN: r.CDN, ISP: r.ISP, Country: r.Country}) {
			out.quality = append(out.quality, *r)
		}
	}
	for _, r := range fn {
		out.funnel = append(out.funnel, *r)
	}
	slices.SortFunc(out.playback, func(a, b PlaybackRow) int {
		return strings.Compare(
			strings.Join([]string{pad64(a.Window), a.TitleID, a.Country, string(a.DeviceType)}, "\x00"),
			strings.Join([]string{pad64(b.Window), b.TitleID, b.Country, string(b.DeviceType)}, "\x00"))
	})
	slices.SortFunc(out.quality, func(a, b QualityRow) int {
		return strings.Compare(strings.Join([]string{pad64(a.Window), a.CDN, a.ISP, a.Country}, "\x00"),
			strings.Join([]string{pad64(b.Window), b.CDN, b.ISP, b.Country}, "\x00"))
	})
	slices.SortFunc(out.funnel, func(a, b FunnelRow) int {
		return strings.Compare(strings.Join([]string{pad64(a.Window), a.Row, a.ArtworkID}, "\x00"),
			strings.Join([]string{pad64(b.Window), b.Row, b.ArtworkID}, "\x00"))
	})
	out.totals.Unique = int64(len(seen))
	out.totals.Duplicates = int64(len(out.duplicates))
	out.totals.Late = int64(len(out.late))
	return out
}

func pad64(v int64) string { return strings.Repeat("0", 20-len(itoa(v))) + itoa(v) }

func itoa(v int64) string { return string(appendInt(nil, v)) }

func appendInt(b []byte, v int64) []byte {
	if v >= 10 {
		b = appendInt(b, v/10)
	}
	return append(b, byte('0'+v%10))
}

func TestTheTruthEqualsARecomputationFromTheStream(t *testing.T) {
	cfg := small(11, 80_000)
	cfg.Partitions = 4
	b, tr := run(t, cfg)
	got := recompute(t, decodeAll(t, b), cfg.Partitions, eventtime.Rules{})
	if diff := cmp.Diff(got.playback, tr.Playback); diff != "" {
		t.Errorf("playback aggregates differ (-recomputed +truth):\n%s", diff)
	}
	if diff := cmp.Diff(got.quality, tr.Quality); diff != "" {
		t.Errorf("quality aggregates differ (-recomputed +truth):\n%s", diff)
	}
	if diff := cmp.Diff(got.funnel, tr.Funnel); diff != "" {
		t.Errorf("funnel aggregates differ (-recomputed +truth):\n%s", diff)
	}
	if diff := cmp.Diff(got.late, tr.Late); diff != "" {
		t.Errorf("late events differ (-recomputed +truth):\n%s", diff)
	}
	if diff := cmp.Diff(got.duplicates, tr.Duplicates); diff != "" {
		t.Errorf("duplicates differ (-recomputed +truth):\n%s", diff)
	}
	for _, c := range []struct {
		name      string
		got, want int64
	}{
		{"sent", got.totals.Sent, tr.Totals.Sent},
		{"unique", got.totals.Unique, tr.Totals.Unique},
		{"duplicates", got.totals.Duplicates, tr.Totals.Duplicates},
		{"late", got.totals.Late, tr.Totals.Late},
	} {
		if c.got != c.want {
			t.Errorf("totals.%s: recomputed %d, truth %d", c.name, c.got, c.want)
		}
	}
	if len(tr.Playback) == 0 || len(tr.Quality) == 0 || len(tr.Funnel) == 0 || len(tr.Late) == 0 || len(tr.Duplicates) == 0 {
		t.Fatalf("a table is empty: %d playback, %d quality, %d funnel rows, %d late, %d duplicates",
			len(tr.Playback), len(tr.Quality), len(tr.Funnel), len(tr.Late), len(tr.Duplicates))
	}
	var plays int64
	for _, r := range tr.Funnel {
		plays += r.Plays
	}
	if plays == 0 {
		t.Fatal("no play is attributed to a row and artwork")
	}
}

func TestInjectedRatesAreWithinTolerance(t *testing.T) {
	_, tr := run(t, small(5, 200_000))
	tot := tr.Totals
	u := float64(tot.Unique)
	check := func(name string, got, want, tol float64) {
		t.Helper()
		if math.Abs(got-want) > tol {
			t.Errorf("%s rate %.4f, want %.4f ± %.4f", name, got, want, tol)
		}
	}
	check("late", float64(tot.Late)/u, 0.01, 0.002)
	check("duplicate", float64(tot.Duplicates)/u, 0.01, 0.002)
	check("delayed out-of-order", float64(tot.DelayedOutOfOrder)/u, 0.05, 0.005)
	check("out-of-order (late included)", float64(tot.OutOfOrder)/u, 0.06, 0.01)
	if tot.LateDuplicateCopies != 0 {
		t.Errorf("%d duplicate copies were late: a duplicate must follow its original closely", tot.LateDuplicateCopies)
	}
	if tot.DelayedLate < tot.Late {
		t.Errorf("%d late events but only %d were held back: only held-back heartbeats may be late", tot.Late, tot.DelayedLate)
	}
}

func TestWithoutInjectionNothingIsLateOutOfOrderOrDuplicated(t *testing.T) {
	cfg := small(5, 30_000)
	cfg.LateRate, cfg.OutOfOrderRate, cfg.DuplicateRate = 0, 0, 0
	_, tr := run(t, cfg)
	if tot := tr.Totals; tot.Late+tot.OutOfOrder+tot.Duplicates != 0 {
		t.Fatalf("totals %+v: want no late, out-of-order or duplicate event", tot)
	}
}

func TestASpanBoundsSimulatedTime(t *testing.T) {
	cfg := small(9, 0)
	cfg.Span = 2 * time.Hour
	_, tr := run(t, cfg)
	end := DefaultEpoch.Add(2 * time.Hour).UnixMilli()
	if tr.Totals.Sent == 0 || tr.Totals.LastEventMs >= end {
		t.Fatalf("sent %d events, the last at %d: want some, all before %d", tr.Totals.Sent, tr.Totals.LastEventMs, end)
	}
	if len(tr.Incidents) == 0 {
		t.Fatal("a span-bounded run planted no incident")
	}
}

func TestTheTruthFileRoundTrips(t *testing.T) {
	_, tr := run(t, small(2, 20_000))
	for _, name := range []string{"truth.json", "truth.json.gz"} {
		path := filepath.Join(t.TempDir(), name)
		if err := tr.WriteFile(path); err != nil {
			t.Fatal(err)
		}
		back, err := LoadTruth(path)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tr, back); diff != "" {
			t.Fatalf("%s does not load back equal (-written +loaded):\n%s", name, diff)
		}
	}
	if _, err := DecodeTruth(strings.NewReader(`{"version": 99}`)); err == nil {
		t.Fatal("a truth of an unknown version loaded")
	}
}

func TestConfigValidation(t *testing.T) {
	check := func(ok bool, mutate func(*Config)) {
		t.Helper()
		c := DefaultConfig()
		mutate(&c)
		if err := c.Validate(); (err == nil) != ok {
			t.Fatalf("Validate() = %v, want ok=%v", err, ok)
		}
	}
	check(true, func(c *Config) {})
	check(true, func(c *Config) { c.Events, c.Span = 0, time.Hour })
	check(false, func(c *Config) { c.Events = 0 })
	check(false, func(c *Config) { c.Events = -1 })
	check(false, func(c *Config) { c.LateRate = -0.1 })
	check(false, func(c *Config) { c.DuplicateRate = 0.9 })
	check(false, func(c *Config) { c.OutOfOrderRate, c.LateRate = 0.3, 0.3 })
	check(false, func(c *Config) { c.Titles = 5 })
	check(false, func(c *Config) { c.Partitions = -2 })
	check(false, func(c *Config) { c.Rules.Window = 7 * time.Minute })
	check(true, func(c *Config) {
		c.Rules = eventtime.Rules{Window: 5 * time.Minute, Lateness: time.Second, Grace: time.Second}
	})
}

func TestASinkErrorStopsTheRun(t *testing.T) {
	g, err := New(small(1, 10_000))
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	_, err = g.Run(context.Background(), &failingSink{after: 500, err: boom})
	if !errors.Is(err, boom) {
		t.Fatalf("Run returned %v, want the sink's error", err)
	}
	if _, err := g.Run(context.Background(), Discard{}); err == nil {
		t.Fatal("a Generator ran twice")
	}
}

type failingSink struct {
	after, n int
	err      error
}

func (f *failingSink) Send(context.Context, schemas.Record) error {
	if f.n++; f.n > f.after {
		return f.err
	}
	return nil
}

func (f *failingSink) Flush(context.Context) error { return nil }
