package replay

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/atlas-stream/atlas/schemas"
)

// collector is a Sink that keeps copies of what it receives and checks
// every record with schemas.Validate.
type collector struct {
	t    testing.TB
	recs []schemas.Record
}

func (c *collector) Send(_ context.Context, rec schemas.Record) error {
	if err := schemas.Validate(rec, schemas.Limits{}, time.Now()); err != nil {
		c.t.Fatalf("invalid record %+v: %v", rec, err)
	}
	switch r := rec.(type) {
	case *schemas.Playback:
		cp := *r
		c.recs = append(c.recs, &cp)
	case *schemas.Browse:
		cp := *r
		c.recs = append(c.recs, &cp)
	default:
		c.recs = append(c.recs, rec)
	}
	return nil
}

func run(t testing.TB, cfg Config, rows []Interaction) ([]schemas.Record, Summary) {
	t.Helper()
	g, err := NewGenerator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{t: t}
	sum, err := g.Run(context.Background(), rows, c)
	if err != nil {
		t.Fatal(err)
	}
	return c.recs, sum
}

// envelopeOf returns the envelope of a playback or browse event.
func envelopeOf(rec schemas.Record) *schemas.Envelope {
	switch r := rec.(type) {
	case *schemas.Playback:
		return &r.Envelope
	case *schemas.Browse:
		return &r.Envelope
	}
	panic(fmt.Sprintf("not an event: %T", rec))
}

// randomRows returns n distinct interactions in replay order, with many
// ties on time.
func randomRows(n int, seed uint64) []Interaction {
	r := rand.New(rand.NewPCG(seed, 1))
	rows := make([]Interaction, n)
	for i := range rows {
		rows[i] = Interaction{
			Time:      828124615 + uint32(r.IntN(n*60)),
			User:      uint32(1 + r.IntN(50)),
			Item:      uint32(1 + r.IntN(2000)),
			HalfStars: uint8(1 + r.IntN(10)),
		}
	}
	rows, _ = Order(rows)
	return rows
}

// triple recovers (user, item, time) from a start event.
func triple(t testing.TB, e *schemas.Playback) Interaction {
	t.Helper()
	u, err1 := strconv.ParseUint(strings.TrimPrefix(e.ProfileID, "ml-u"), 10, 32)
	i, err2 := strconv.ParseUint(strings.TrimPrefix(e.TitleID, "ml-m"), 10, 32)
	if err1 != nil || err2 != nil || e.EventTime%1000 != 0 {
		t.Fatalf("cannot recover the rating of %+v", e)
	}
	return Interaction{User: uint32(u), Item: uint32(i), Time: uint32(e.EventTime / 1000)}
}

func TestEveryRatingBecomesOnePlayInReplayOrder(t *testing.T) {
	rows := randomRows(3000, 1)
	recs, sum := run(t, Config{Seed: 9}, rows)

	var starts []Interaction
	for _, rec := range recs {
		if e, ok := rec.(*schemas.Playback); ok && e.Kind == schemas.PlayStart {
			starts = append(starts, triple(t, e))
		}
	}
	want := make([]Interaction, len(rows))
	for i, in := range rows {
		want[i] = Interaction{User: in.User, Item: in.Item, Time: in.Time}
	}
	if diff := cmp.Diff(want, starts); diff != "" {
		t.Fatalf("starts are not the rows in replay order (-want +got):\n%s", diff)
	}
	if sum.Plays != len(rows) || sum.Events != len(recs) || sum.Ratings != len(rows) || sum.Completes+sum.Stops != len(rows) {
		t.Fatalf("summary %+v does not add up for %d rows and %d events", sum, len(rows), len(recs))
	}
}

func TestEventsComeInEventTimeOrderWithTiesInRowOrder(t *testing.T) {
	rows := randomRows(3000, 2)
	recs, _ := run(t, Config{Heartbeat: 10 * time.Minute}, rows)
	rowIndex := make(map[string]int, len(rows))
	for i, in := range rows {
		rowIndex[SessionID(in)] = i
	}
	step := map[string]int{}
	var prevT int64
	prevRow, prevStep := -1, -1
	for n, rec := range recs {
		e := envelopeOf(rec)
		row := rowIndex[e.SessionID]
		st := step[e.SessionID]
		step[e.SessionID]++
		switch {
		case e.EventTime < prevT:
			t.Fatalf("event %d %s at %d comes after an event at %d", n, e.EventID, e.EventTime, prevT)
		case e.EventTime == prevT && row < prevRow:
			t.Fatalf("event %d %s (row %d) comes after row %d at the same time %d", n, e.EventID, row, prevRow, prevT)
		case e.EventTime == prevT && row == prevRow && st <= prevStep:
			t.Fatalf("event %d %s repeats step %d", n, e.EventID, st)
		}
		prevT, prevRow, prevStep = e.EventTime, row, st
	}
}

func TestAPlayIsStartHeartbeatsEndAndRatingInOneSession(t *testing.T) {
	rows := randomRows(2000, 3)
	cfg := Config{Seed: 4, Heartbeat: 20 * time.Minute}
	g, _ := NewGenerator(cfg)
	recs, _ := run(t, cfg, rows)
	sessions := map[string][]schemas.Record{}
	for _, rec := range recs {
		e := envelopeOf(rec)
		sessions[e.SessionID] = append(sessions[e.SessionID], rec)
	}
	if len(sessions) != len(rows) {
		t.Fatalf("%d sessions for %d rows", len(sessions), len(rows))
	}
	ids := map[string]bool{}
	for _, in := range rows {
		p := g.Play(in)
		evs := sessions[SessionID(in)]
		start := evs[0].(*schemas.Playback)
		if start.Kind != schemas.PlayStart || start.EventTime != in.TimeMs() || start.PositionMs != 0 || start.DurationMs != p.DurationMs {
			t.Fatalf("%+v: first event %+v is not a start at the rating time", in, start)
		}
		if got := triple(t, start); got != (Interaction{User: in.User, Item: in.Item, Time: in.Time}) {
			t.Fatalf("start %+v gives back %+v, want %+v", start, got, in)
		}
		var watched int64
		for k, rec := range evs[1 : len(evs)-2] {
			hb := rec.(*schemas.Playback)
			if hb.Kind != schemas.PlayHeartbeat || hb.PositionMs != int64(k+1)*cfg.Heartbeat.Milliseconds() ||
				hb.EventTime != start.EventTime+hb.PositionMs || hb.WatchedMs != cfg.Heartbeat.Milliseconds() {
				t.Fatalf("%+v: event %d is not heartbeat %d: %+v", in, k+1, k+1, hb)
			}
			watched += hb.WatchedMs
		}
		end := evs[len(evs)-2].(*schemas.Playback)
		wantKind := schemas.PlayStop
		if p.Fraction >= 0.9 {
			wantKind = schemas.PlayComplete
		}
		watched += end.WatchedMs
		if end.Kind != wantKind || end.PositionMs != p.WatchedMs || end.EventTime != start.EventTime+p.WatchedMs || watched != p.WatchedMs {
			t.Fatalf("%+v (fraction %.3f): end %+v, watched %d; want %s at %d having watched %d", in, p.Fraction, end, watched, wantKind, p.WatchedMs, p.WatchedMs)
		}
		if p.WatchedMs != int64(p.Fraction*float64(p.DurationMs)+0.5) {
			t.Fatalf("%+v: watched %d is not fraction × duration", in, p.WatchedMs)
		}
		rating := evs[len(evs)-1].(*schemas.Browse)
		if rating.Kind != schemas.BrowseRating || rating.Rating != in.Stars() || rating.EventTime != end.EventTime || rating.TitleID != end.TitleID {
			t.Fatalf("%+v: last event %+v is not its rating", in, rating)
		}
		for _, rec := range evs {
			e := envelopeOf(rec)
			if ids[e.EventID] {
				t.Fatalf("event id %s repeats", e.EventID)
			}
			ids[e.EventID] = true
			if e.ReceiveTime != e.EventTime || e.ProfileID != ProfileID(in.User) || e.AccountID != AccountID(in.User) ||
				e.DeviceID != DeviceID(in.User) || e.Country != ViewerOf(in.User).Country || e.AppVersion != DefaultAppVersion {
				t.Fatalf("%+v: envelope %+v", in, e)
			}
			if !strings.HasPrefix(e.EventID, fmt.Sprintf("ml-%d-%d-%d-", in.User, in.Item, in.Time)) {
				t.Fatalf("event id %s does not carry the rating", e.EventID)
			}
		}
	}
}

func TestTheMappingOfARatingDoesNotDependOnTheRestOfTheLog(t *testing.T) {
	rows := randomRows(500, 5)
	// A log with other ratings mixed in, read in another order.
	other := append(randomRows(700, 6), rows...)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(other), func(i, j int) { other[i], other[j] = other[j], other[i] })
	other, _ = Order(other)

	byID := func(recs []schemas.Record) map[string]schemas.Record {
		m := map[string]schemas.Record{}
		for _, r := range recs {
			m[envelopeOf(r).EventID] = r
		}
		return m
	}
	a, _ := run(t, Config{Seed: 77}, rows)
	b := byID(func() []schemas.Record { r, _ := run(t, Config{Seed: 77}, other); return r }())
	for _, rec := range a {
		id := envelopeOf(rec).EventID
		if diff := cmp.Diff(rec, b[id]); diff != "" {
			t.Fatalf("event %s differs when the log has other rows (-alone +mixed):\n%s", id, diff)
		}
	}
	c, _ := run(t, Config{Seed: 77}, rows)
	if diff := cmp.Diff(a, c); diff != "" {
		t.Fatalf("a second run differs:\n%s", diff)
	}
}

func TestOptionsOffsetOmitRatingsAndPlan(t *testing.T) {
	rows := randomRows(1000, 7)
	base, baseSum := run(t, Config{}, rows)
	off := 27*365*24*time.Hour + 1234*time.Millisecond
	shifted, sum := run(t, Config{Offset: off, OmitRatings: true}, rows)
	if sum.Ratings != 0 || sum.Events != baseSum.Events-baseSum.Ratings || len(shifted) != sum.Events {
		t.Fatalf("OmitRatings: summary %+v vs %+v", sum, baseSum)
	}
	j := 0
	for _, rec := range base {
		if _, ok := rec.(*schemas.Browse); ok {
			continue
		}
		a, b := envelopeOf(rec), envelopeOf(shifted[j])
		if b.EventTime != a.EventTime+off.Milliseconds() || b.ReceiveTime != b.EventTime || a.EventID != b.EventID {
			t.Fatalf("event %s: shifted %d, original %d, offset %d", a.EventID, b.EventTime, a.EventTime, off.Milliseconds())
		}
		j++
	}
	for _, cfg := range []Config{{}, {Offset: off, OmitRatings: true}, {Heartbeat: time.Minute}} {
		g, _ := NewGenerator(cfg)
		_, got := run(t, cfg, rows)
		if plan := g.Plan(rows); plan != got {
			t.Fatalf("config %+v: Plan %+v, Run %+v", cfg, plan, got)
		}
	}
}

func TestRunRefusesUnorderedRows(t *testing.T) {
	g, _ := NewGenerator(Config{})
	for _, rows := range [][]Interaction{
		{{Time: 2, User: 1, Item: 1, HalfStars: 2}, {Time: 1, User: 1, Item: 1, HalfStars: 2}},
		{{Time: 1, User: 2, Item: 1, HalfStars: 2}, {Time: 1, User: 1, Item: 1, HalfStars: 2}},
		{{Time: 1, User: 1, Item: 1, HalfStars: 2}, {Time: 1, User: 1, Item: 1, HalfStars: 4}},
	} {
		c := &collector{t: t}
		if _, err := g.Run(context.Background(), rows, c); !errors.Is(err, ErrUnordered) || len(c.recs) != 0 {
			t.Fatalf("%+v: error %v after %d records, want ErrUnordered before any", rows, err, len(c.recs))
		}
	}
}

func TestRunStopsOnSinkErrorsAndCancellation(t *testing.T) {
	g, _ := NewGenerator(Config{})
	rows := randomRows(2000, 8)
	boom := errors.New("boom")
	n := 0
	sum, err := g.Run(context.Background(), rows, SinkFunc(func(context.Context, schemas.Record) error {
		if n++; n == 10 {
			return boom
		}
		return nil
	}))
	if !errors.Is(err, boom) || sum.Events != 9 {
		t.Fatalf("error %v after %d events, want boom after 9", err, sum.Events)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sum, err = g.Run(ctx, rows, SinkFunc(func(context.Context, schemas.Record) error {
		cancel()
		return nil
	}))
	if !errors.Is(err, context.Canceled) || sum.Plays > 300 {
		t.Fatalf("error %v after %d plays, want context.Canceled soon", err, sum.Plays)
	}
}

func TestRunRejectsEventsThatWouldBeInvalid(t *testing.T) {
	g, _ := NewGenerator(Config{Offset: -time.Duration(2000) * time.Second})
	_, err := g.Run(context.Background(), []Interaction{{Time: 1000, User: 1, Item: 1, HalfStars: 2}}, SinkFunc(func(context.Context, schemas.Record) error { return nil }))
	if !errors.Is(err, schemas.ErrInvalid) || !strings.Contains(err.Error(), "user 1") {
		t.Fatalf("error %v, want an invalid-event error naming the rating", err)
	}
}

func TestConfigValidation(t *testing.T) {
	check := func(ok bool, cfg Config) {
		t.Helper()
		if err := cfg.Validate(); (err == nil) != ok {
			t.Fatalf("%+v: Validate() = %v", cfg, err)
		}
	}
	check(true, Config{})
	check(true, Config{Heartbeat: time.Hour})
	check(false, Config{Heartbeat: time.Hour + time.Millisecond})
	check(false, Config{Heartbeat: time.Millisecond})
	check(false, Config{Offset: time.Microsecond})
	check(false, Config{AppVersion: strings.Repeat("v", 200)})
}

func TestSendCatalogSendsValidTitles(t *testing.T) {
	movies := []Movie{{ID: 1, Name: "A", ReleaseDate: "1995-01-01"}, {ID: 2, Name: "B", Genres: []string{"drama"}}}
	c := &collector{t: t}
	n, err := SendCatalog(context.Background(), movies, c)
	if err != nil || n != 2 || c.recs[1].(*schemas.Title).TitleID != "ml-m2" {
		t.Fatalf("SendCatalog = %d, %v; records %+v", n, err, c.recs)
	}
	_, err = SendCatalog(context.Background(), []Movie{{ID: 3, Name: strings.Repeat("x", 2000)}}, c)
	if !errors.Is(err, schemas.ErrInvalid) {
		t.Fatalf("an over-long name gave %v, want a validation error", err)
	}
}
