package anomaly

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/atlas-stream/atlas/consumers/stream"
	"github.com/atlas-stream/atlas/internal/intern"
	"github.com/atlas-stream/atlas/schemas"
)

type sent struct {
	subject, key string
	rec          schemas.Record
}

type captureRekeyer struct{ got *[]sent }

func (c captureRekeyer) Send(_ context.Context, key []byte, rec schemas.Record) {
	*c.got = append(*c.got, sent{string(SubjectOf(key)), string(key), rec})
}
func (captureRekeyer) Flush(context.Context) error { return nil }
func (captureRekeyer) Close() error                { return nil }

type captureOutbox struct{ got *[]schemas.Alert }

func (c captureOutbox) Publish(a *schemas.Alert)  { *c.got = append(*c.got, *a) }
func (captureOutbox) Flush(context.Context) error { return nil }
func (captureOutbox) Close() error                { return nil }

func testConfig(sends *[]sent, alerts *[]schemas.Alert) Config {
	return Config{PlaybackTopic: "pb", BrowseTopic: "br", RekeyTopic: "rk", Partitions: 2, Locate: testLocate,
		Rekeyer: func(stream.Claim) (Rekeyer, error) { return captureRekeyer{sends}, nil },
		Outbox:  func(stream.Claim) (Outbox, error) { return captureOutbox{alerts}, nil }}
}

func processor(t *testing.T, cfg Config, c stream.Claim) stream.Processor {
	t.Helper()
	f, err := NewFactory(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := f(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestForwarder(t *testing.T) {
	claim := stream.Claim{Topic: "pb", Partition: 1, Committed: -1, Processed: -1}
	hb := func(t int64) *schemas.Playback { return play(t, "a", "d", "s", net(10, 1), schemas.PlayHeartbeat) }
	for _, c := range []struct {
		name   string
		claim  stream.Claim
		recs   []*schemas.Playback
		replay int // records marked Replay, from the first
		want   []string
	}{
		{name: "A heartbeat goes to its account and to its quality cell, keyed with its source, offset and mark",
			claim: claim, recs: []*schemas.Playback{hb(t0)},
			want: []string{"account:a#p1.0." + itoa(t0-2000), "cdn:cdn-a|isp:de-telco|cc:DE#p1.0." + itoa(t0-2000),
				"mark:0#p1.0." + itoa(t0-2000)}},
		{name: "The same event sent twice in a row is forwarded once",
			claim: claim, recs: func() []*schemas.Playback { e := hb(t0); return []*schemas.Playback{e, e} }(),
			want: []string{"account:a#p1.0." + itoa(t0-2000), "cdn:cdn-a|isp:de-telco|cc:DE#p1.0." + itoa(t0-2000),
				"mark:0#p1.0." + itoa(t0-2000)}},
		{name: "An event behind its partition's newest goes with the newest's mark, within the lateness or not (stage two judges a late one at the mark)",
			claim: claim, recs: []*schemas.Playback{hb(t0 + 10*sec), hb(t0 + 7*sec), hb(t0 + 9*sec)},
			want: []string{"account:a#p1.0." + itoa(t0+8000), "cdn:cdn-a|isp:de-telco|cc:DE#p1.0." + itoa(t0+8000),
				"mark:0#p1.0." + itoa(t0+8000), "account:a#p1.1." + itoa(t0+8000), "cdn:cdn-a|isp:de-telco|cc:DE#p1.1." + itoa(t0+8000),
				"account:a#p1.2." + itoa(t0+8000), "cdn:cdn-a|isp:de-telco|cc:DE#p1.2." + itoa(t0+8000)}},
		{name: "An event more than the horizon (a minute) behind its partition's newest is dropped",
			claim: claim, recs: []*schemas.Playback{hb(t0 + 2*minute), hb(t0 + 2*minute - 61*sec), hb(t0 + 2*minute - 59*sec)},
			want: []string{"account:a#p1.0." + itoa(t0+2*minute-2000), "cdn:cdn-a|isp:de-telco|cc:DE#p1.0." + itoa(t0+2*minute-2000),
				"mark:0#p1.0." + itoa(t0+2*minute-2000), "account:a#p1.2." + itoa(t0+2*minute-2000), "cdn:cdn-a|isp:de-telco|cc:DE#p1.2." + itoa(t0+2*minute-2000)}},
		{name: "Records processed before the last commit are not sent again",
			claim: stream.Claim{Topic: "pb", Partition: 1, Committed: 0, Processed: 1}, recs: []*schemas.Playback{hb(t0), hb(t0 + sec)}, replay: 1,
			want: []string{"account:a#p1.1." + itoa(t0-1000), "cdn:cdn-a|isp:de-telco|cc:DE#p1.1." + itoa(t0-1000),
				"mark:0#p1.1." + itoa(t0-1000)}},
		{name: "A partition that gets nothing from this source gets a mark every MarkEvery of event time, and only then",
			claim: claim, recs: []*schemas.Playback{hb(t0), hb(t0 + MarkEvery/2), hb(t0 + MarkEvery)},
			want: []string{"account:a#p1.0." + itoa(t0-2000), "cdn:cdn-a|isp:de-telco|cc:DE#p1.0." + itoa(t0-2000), "mark:0#p1.0." + itoa(t0-2000),
				"account:a#p1.1." + itoa(t0-2000+MarkEvery/2), "cdn:cdn-a|isp:de-telco|cc:DE#p1.1." + itoa(t0-2000+MarkEvery/2),
				"account:a#p1.2." + itoa(t0-2000+MarkEvery), "cdn:cdn-a|isp:de-telco|cc:DE#p1.2." + itoa(t0-2000+MarkEvery), "mark:0#p1.2." + itoa(t0-2000+MarkEvery)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got []sent
			cfg := testConfig(&got, nil)
			cfg.Lateness = 2 * time.Second // the marks below are 2 s behind
			frozen := time.Unix(0, 0)
			cfg.Now = func() time.Time { return frozen } // no live marks
			p := processor(t, cfg, c.claim)
			for i, r := range c.recs {
				if err := p.Process(context.Background(), &stream.Record{Topic: "pb", Partition: 1, Offset: int64(i), Value: r, Replay: i < c.replay}); err != nil {
					t.Fatal(err)
				}
			}
			var keys []string
			for _, s := range got {
				keys = append(keys, s.key)
			}
			if strings.Join(keys, " ") != strings.Join(c.want, " ") {
				t.Fatalf("sent\n  %v\nwant\n  %v", keys, c.want)
			}
		})
	}
}

func TestForwarderResumesAtItsRingAndKeepsItsNewestEventTime(t *testing.T) {
	var got []sent
	cfg := testConfig(&got, nil)
	cfg.Detectors = func() []Detector { // none judged on arrival
		return []Detector{NewSharing(SharingConfig{}), NewTravel(TravelConfig{}), NewStuffing(StuffingConfig{})}
	}
	p := processor(t, cfg, stream.Claim{Topic: "br", Partition: 0, Committed: -1, Processed: -1})
	for i := 0; i < 100; i++ {
		if err := p.Process(context.Background(), &stream.Record{Offset: int64(i), Value: impression(t0+int64(i)*sec, "a", "p", net(10, 1), 500)}); err != nil {
			t.Fatal(err)
		}
	}
	cp, err := p.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if cp.Offset != 100-dedupRing || cp.Metadata != itoa(t0+99*sec) {
		t.Fatalf("checkpoint %+v, want offset %d and metadata %d", cp, 100-dedupRing, t0+99*sec)
	}
}

// botPartition is one browse partition's records: people browsing (one
// impression a second each, with dwell) around a bot (five impressions a
// second, no dwell) that runs from the second minute for 40 s, and six
// more minutes of people, so that its incident resolves.
func botPartition() []schemas.Record {
	var recs []schemas.Record
	for ms := int64(0); ms < 9*60*sec; ms += 200 {
		if ms%sec == 0 {
			for _, who := range []string{"h1", "h2"} {
				recs = append(recs, impression(t0+ms, who, "pro-"+who, net(10, 1), 900+ms%700))
			}
		}
		if ms >= 60*sec && ms < 100*sec {
			recs = append(recs, impression(t0+ms, "bot", "pro-bot", net(10, 2), 0))
		}
	}
	return recs
}

func TestStageOneJudgesBotsOnArrivalAndARestartRebuildsThem(t *testing.T) {
	recs := botPartition()
	// Checkpoints in the middle of the bot's run (its look-back reaches the
	// partition's first record) and after it (the incident still open).
	for _, cut := range []int{400, 700} {
		var alerts []schemas.Alert
		p := processor(t, testConfig(new([]sent), &alerts), stream.Claim{Topic: "br", Partition: 0, Committed: -1, Processed: -1})
		firedAt := -1
		var cp stream.Checkpoint
		var afterCP int
		for i, r := range recs {
			if err := p.Process(context.Background(), &stream.Record{Topic: "br", Offset: int64(i), Value: r}); err != nil {
				t.Fatal(err)
			}
			if firedAt < 0 && len(alerts) > 0 {
				firedAt = i
			}
			if i == cut {
				var err error
				if cp, err = p.Checkpoint(context.Background()); err != nil {
					t.Fatal(err)
				}
				afterCP = len(alerts)
			}
		}
		if len(alerts) != 2 || alerts[0].Kind != KindBot || alerts[0].Status != schemas.AlertFiring || alerts[1].Status != schemas.AlertResolved {
			t.Fatalf("alerts %+v, want the bot firing, then resolved", alerts)
		}
		// Fired in stage one, at the bot's 50th impression: nothing waited
		// for the re-key topic or for other partitions.
		if b := recs[firedAt].(*schemas.Browse); b.AccountID != "bot" || alerts[0].DetectedAt != b.EventTime || b.EventTime != t0+60*sec+49*200 {
			t.Fatalf("fired at record %d (%+v), detected at %d; want the bot's 50th impression, at %d", firedAt, b.Envelope, alerts[0].DetectedAt, t0+60*sec+49*200)
		}
		// The look-back (30 s) plus a minute, to the start of its minute:
		// 1.5 to 2.5 min back, 7 records a second during the bot's run, 2
		// after.
		if cp.Offset < 0 || cp.Offset >= int64(cut-dedupRing) || (cut == 700) != (cp.Offset > 0) ||
			!strings.HasPrefix(cp.Metadata, "f2 ") || !strings.Contains(cp.Metadata, ";bot account%3Abot ") || afterCP != 1 {
			t.Fatalf("checkpoint after record %d: %+v after %d alerts: want an offset before the ring (the bot's look-back) and the open incident", cut, cp, afterCP)
		}

		// A restart from the checkpoint replays from its offset and
		// publishes exactly what the first run published after it.
		var again []schemas.Alert
		p2 := processor(t, testConfig(new([]sent), &again), stream.Claim{Topic: "br", Partition: 0, Committed: cp.Offset, Processed: int64(cut) + 1, Metadata: cp.Metadata})
		for i := int(cp.Offset); i < len(recs); i++ {
			if err := p2.Process(context.Background(), &stream.Record{Topic: "br", Offset: int64(i), Value: recs[i], Replay: i <= cut}); err != nil {
				t.Fatal(err)
			}
		}
		if diff := cmp.Diff(alerts[afterCP:], again); diff != "" {
			t.Fatalf("after a restart from %+v, alerts differ (-first run +restart):\n%s", cp, diff)
		}
		t.Logf("checkpoint after record %d: resume at %d, %q; the restart published the same %d alerts", cut, cp.Offset, cp.Metadata, len(again))
	}
}

func TestRekeyKeysRoundTrip(t *testing.T) {
	for _, c := range []struct {
		subject string
		src     source
		off     int64
		mark    int64
	}{{"account:acc-1", 0, 0, t0}, {"net:1.2.3.0/24", 7, 123456, -5}, {"cdn:a#b|isp:x|cc:DE", 11, 1, 1}} {
		key := appendRekeyKey(nil, c.subject, c.src, 6, c.off, c.mark)
		k, err := parseRekeyKey(key, 6, intern.NewRecent(4))
		if err != nil || k.subject != c.subject || k.src != c.src || k.offset != c.off || k.mark != c.mark {
			t.Fatalf("%q parsed as %+v, %v", key, k, err)
		}
		if string(SubjectOf(key)) != c.subject {
			t.Fatalf("SubjectOf(%q) = %q", key, SubjectOf(key))
		}
	}
	for _, bad := range []string{"", "account:a", "account:a#", "account:a#x1.2.3", "account:a#p9.1.2", "account:a#p1.x.2", "#p1.1.1"} {
		if _, err := parseRekeyKey([]byte(bad), 6, intern.NewRecent(4)); err == nil {
			t.Fatalf("%q parsed", bad)
		}
	}
}

func TestJudge(t *testing.T) {
	ctx := context.Background()
	key := func(subject string, src source, off, mark int64) []byte {
		return appendRekeyKey(nil, subject, src, 2, off, mark)
	}
	t.Run("A record waits until every input partition has passed its event time, then records are judged in event-time order", func(t *testing.T) {
		var alerts []schemas.Alert
		j := processor(t, testConfig(nil, &alerts), stream.Claim{Topic: "rk", Partition: 0, Committed: -1, Processed: -1}).(*Judge)
		// Three of the four sources are past t0+10s; the fourth is not seen yet.
		off := int64(0)
		for _, src := range []source{0, 1, 2} {
			r := &stream.Record{Offset: off, Key: key("account:a", src, off, t0+10*sec), Value: impression(t0+11*sec, "a", "p", net(10, 1), 0)}
			off++
			if err := j.Process(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		if j.buf.Len() != 3 || j.clock != noTime {
			t.Fatalf("%d buffered, clock %d; want 3 held back and no clock", j.buf.Len(), j.clock)
		}
		if err := j.Process(ctx, &stream.Record{Offset: off, Key: key("account:a", 3, off, t0+12*sec),
			Value: impression(t0+12*sec, "a", "p", net(10, 1), 0)}); err != nil {
			t.Fatal(err)
		}
		if j.clock != t0+10*sec || j.buf.Len() != 4 {
			t.Fatalf("clock t0%+d with %d buffered; want t0+10s, nothing judged yet (all at t0+11s or later)", j.clock-t0, j.buf.Len())
		}
		if err := j.Process(ctx, &stream.Record{Offset: off + 1, Key: key("account:a", 0, 99, t0+12*sec),
			Value: impression(t0+12*sec, "a", "p", net(10, 1), 0)}); err != nil {
			t.Fatal(err)
		}
		if err := j.Process(ctx, &stream.Record{Offset: off + 2, Key: key("account:a", 1, 99, t0+12*sec),
			Value: impression(t0+12*sec, "a", "p", net(10, 1), 0)}); err != nil {
			t.Fatal(err)
		}
		if err := j.Process(ctx, &stream.Record{Offset: off + 3, Key: key("account:a", 2, 99, t0+12*sec),
			Value: impression(t0+13*sec, "a", "p", net(10, 1), 0)}); err != nil {
			t.Fatal(err)
		}
		if j.clock != t0+12*sec || j.buf.Len() != 4 {
			t.Fatalf("clock t0%+d with %d buffered; want t0+12s and the three records at t0+11s judged", j.clock-t0, j.buf.Len())
		}
	})
	t.Run("A late record, its event time below its source's mark, is judged at the mark", func(t *testing.T) {
		var alerts []schemas.Alert
		cfg := testConfig(nil, &alerts)
		seen := &timeRecorder{}
		cfg.Detectors = func() []Detector { return []Detector{seen} }
		j := processor(t, cfg, stream.Claim{Topic: "rk", Partition: 0, Committed: -1, Processed: -1}).(*Judge)
		for i, src := range []source{0, 1, 2, 3} {
			at := t0 + 10*sec
			if src == 1 {
				at = t0 + 3*sec // 7 s behind its partition's newest
			}
			if err := j.Process(ctx, &stream.Record{Offset: int64(i), Key: key("account:a", src, int64(i), t0+10*sec),
				Value: impression(at, "a", "p", net(10, 1), 0)}); err != nil {
				t.Fatal(err)
			}
		}
		for i, src := range []source{0, 1, 2, 3} {
			if err := j.Process(ctx, &stream.Record{Offset: int64(4 + i), Key: key("mark:0", src, int64(10+i), t0+20*sec),
				Value: impression(t0+20*sec, "a", "p", net(10, 1), 0)}); err != nil {
				t.Fatal(err)
			}
		}
		if len(seen.times) != 4 || slices.ContainsFunc(seen.times, func(x int64) bool { return x != t0+10*sec }) {
			t.Fatalf("judged at t0%+v; want all four at t0+10000 (the late one at its mark)", func() (d []int64) {
				for _, x := range seen.times {
					d = append(d, x-t0)
				}
				return
			}())
		}
	})
	t.Run("A copy that a restarted stage one sends again is dropped, buffered or judged", func(t *testing.T) {
		j := processor(t, testConfig(nil, &[]schemas.Alert{}), stream.Claim{Topic: "rk", Partition: 0, Committed: -1, Processed: -1}).(*Judge)
		rec := impression(t0, "a", "p", net(10, 1), 0)
		for i := int64(0); i < 3; i++ {
			if err := j.Process(ctx, &stream.Record{Offset: i, Key: key("account:a", 0, 5, t0-sec), Value: rec}); err != nil {
				t.Fatal(err)
			}
		}
		if j.buf.Len() != 1 {
			t.Fatalf("%d buffered, want the copies dropped", j.buf.Len())
		}
	})
	t.Run("A key that is not a re-key key is an error, so the record becomes a dead letter", func(t *testing.T) {
		j := processor(t, testConfig(nil, &[]schemas.Alert{}), stream.Claim{Topic: "rk", Partition: 0, Committed: -1, Processed: -1})
		if err := j.Process(ctx, &stream.Record{Offset: 0, Key: []byte("pro-1-1"), Value: impression(t0, "a", "p", net(10, 1), 0)}); err == nil {
			t.Fatal("accepted")
		}
	})
}

func itoa(x int64) string { return strconv.FormatInt(x, 10) }

func TestWithoutLatenessEverythingIsMarkedAtThePartitionsNewest(t *testing.T) {
	var got []sent
	cfg := testConfig(&got, nil)
	cfg.Lateness = 0
	p := processor(t, cfg, stream.Claim{Topic: "pb", Partition: 1, Committed: -1, Processed: -1})
	t0 := int64(1_793_577_600_000)
	for i, at := range []int64{t0, t0 - 1} {
		rec := &schemas.Playback{Envelope: schemas.Envelope{EventID: "e" + strconv.Itoa(i), EventTime: at, ReceiveTime: at,
			AccountID: "a", ProfileID: "a-1", DeviceID: "d", SessionID: "s", ClientNet: "10.1.1.0/24#000000000000", Country: "DE",
			DeviceType: schemas.DeviceWeb}, Kind: schemas.PlayHeartbeat, TitleID: "tt-1", CDN: "cdn-a", ISP: "de-telco"}
		if err := p.Process(context.Background(), &stream.Record{Topic: "pb", Partition: 1, Offset: int64(i), Value: rec}); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) == 0 {
		t.Fatal("nothing re-keyed")
	}
	var offsets []string
	for _, s := range got {
		i := strings.LastIndexByte(s.key, '#')
		if !strings.HasSuffix(s.key, "."+strconv.FormatInt(t0, 10)) {
			t.Fatalf("sent %s: want every record marked at the newest event time, t0 (no lateness)", s.key)
		}
		if !strings.HasPrefix(s.key, "mark:") {
			offsets = append(offsets, s.key[i+1:i+5]) // "p1.<offset>"
		}
	}
	if !slices.Contains(offsets, "p1.1") {
		t.Fatalf("sent %v: want the event behind the newest sent too", offsets)
	}
}

func TestLiveMarksFollowTheWallClock(t *testing.T) {
	// Event time keeping pace with the wall clock, 60 ms a record: every
	// record is followed by a round of marks (LiveMarkEvery is 50 ms).
	// Event time running ahead of a frozen wall clock: every MarkEvery only.
	hb := func(t int64) *schemas.Playback { return play(t, "a", "d", "s", net(10, 1), schemas.PlayHeartbeat) }
	t0 := int64(1_793_577_600_000)
	for _, c := range []struct {
		name      string
		wallStep  time.Duration
		wantMarks int
	}{{"live", 60 * time.Millisecond, 10}, {"backlog", 0, 1}} {
		var got []sent
		cfg := testConfig(&got, nil)
		now := time.Unix(0, 0)
		cfg.Now = func() time.Time { return now }
		p := processor(t, cfg, stream.Claim{Topic: "pb", Partition: 1, Committed: -1, Processed: -1})
		for i := 0; i < 10; i++ {
			if err := p.Process(context.Background(), &stream.Record{Topic: "pb", Partition: 1, Offset: int64(i), Value: hb(t0 + int64(i)*60)}); err != nil {
				t.Fatal(err)
			}
			now = now.Add(c.wallStep)
		}
		marks := 0
		for _, s := range got {
			if strings.HasPrefix(s.key, markPrefix) {
				marks++
			}
		}
		if marks != c.wantMarks {
			t.Errorf("%s: %d marks over 540 ms of event time, want %d", c.name, marks, c.wantMarks)
		}
	}
}

// timeRecorder is a detector of the account view that records the time
// of every event it is handed.
type timeRecorder struct{ times []int64 }

func (r *timeRecorder) Kind() string                      { return "times" }
func (r *timeRecorder) View() View                        { return ViewAccount }
func (r *timeRecorder) Wants(schemas.Record) bool         { return true }
func (r *timeRecorder) LookBack() time.Duration           { return time.Minute }
func (r *timeRecorder) Observe(e *Event) Verdict          { r.times = append(r.times, e.Time); return Verdict{} }
func (r *timeRecorder) Advance(int64, func(Verdict))      {}
func (r *timeRecorder) Evidence(string) map[string]string { return nil }
func (r *timeRecorder) Quiet() time.Duration              { return time.Minute }
func (r *timeRecorder) Size() (int, int)                  { return len(r.times), 8 * len(r.times) }
