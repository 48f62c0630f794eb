package anomaly

import (
	"testing"

	"github.com/atlas-stream/atlas/schemas"
)

// impressions returns n impressions of one profile from start, gap(i)
// apart, each with dwell(i).
func impressions(acc string, start int64, n int, gap, dwell func(i int) int64) []schemas.Record {
	var out []schemas.Record
	t := start
	for i := 0; i < n; i++ {
		out = append(out, impression(t, acc, "pro-"+acc, net(10, 1), dwell(i)))
		t += gap(i)
	}
	return out
}

func TestBot(t *testing.T) {

	jitter := func(i int) int64 { return 197 + int64(i%7) }
	human := func(i int) int64 {
		if i%8 == 7 {
			return 2500 // the next row
		}
		return 150 + int64(i*137%500)
	}
	for _, c := range []struct {
		name  string
		recs  []schemas.Record
		fires bool
		at    int64
	}{
		{
			name:  "Impressions every 197–203 ms without dwell are a bot, from the fiftieth on",
			recs:  impressions("a", t0, 300, jitter, func(int) int64 { return 0 }),
			fires: true, at: t0 + func() int64 {
				s := int64(0)
				for i := 0; i < 49; i++ {
					s += jitter(i)
				}
				return s
			}(),
		},
		{
			name: "A person scanning rows, at irregular intervals and looking at each title, is not a bot",
			recs: impressions("a", t0, 300, human, func(i int) int64 { return 300 + int64(i*211%2000) }),
		},
		{
			name: "Fast and regular but looking at every title (dwell) is not a bot",
			recs: impressions("a", t0, 300, jitter, func(int) int64 { return 800 }),
		},
		{
			name: "Regular and without dwell, but one every two seconds, is not too fast for a person",
			recs: impressions("a", t0, 300, func(int) int64 { return 2000 }, func(int) int64 { return 0 }),
		},
		{
			name: "Bursts of forty fast impressions separated by pauses never fill the ring",
			recs: func() []schemas.Record {
				var out []schemas.Record
				for b := int64(0); b < 5; b++ {
					out = append(out, impressions("a", t0+b*20*sec, 40, jitter, func(int) int64 { return 0 })...)
				}
				return out
			}(),
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := feed(t, NewBot(BotConfig{}), c.recs)
			if !c.fires {
				if len(got) > 0 {
					t.Fatalf("active at t0%+d: %+v", got[0].At-t0, got[0])
				}
				return
			}
			if len(got) == 0 || got[0].At != c.at || got[0].Start != t0 {
				t.Fatalf("verdicts %+v, want the first at t0%+d starting at t0", got[:min(len(got), 1)], c.at-t0)
			}
		})
	}
}

func TestBotEvidenceGivesRateRegularityAndDwell(t *testing.T) {
	d := NewBot(BotConfig{})
	feed(t, d, impressions("a", t0, 60, func(int) int64 { return 200 }, func(int) int64 { return 0 }))
	ev := d.Evidence("account:a")
	if ev["rate_per_s"] != "5.00" || ev["cv"] != "0.000" || ev["dwell_ms"] != "0" || ev["impressions"] != "60" {
		t.Fatalf("evidence %v", ev)
	}
}
