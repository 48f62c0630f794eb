package replay

import (
	"math"
	"testing"
	"time"

	"github.com/atlas-stream/atlas/schemas"
)

func TestWatchFractionIsPinnedForASeed(t *testing.T) {
	// These values pin the mapping: a change to the generator, the
	// seeding or the distribution changes every replay and must be a
	// deliberate, documented decision.
	check := func(seed uint64, in Interaction, want float64) {
		t.Helper()
		if got := WatchFraction(seed, in); math.Abs(got-want) > 1e-12 {
			t.Fatalf("WatchFraction(%d, %+v) = %.15f, want %.15f", seed, in, got, want)
		}
	}
	check(0, Interaction{User: 1, Item: 1, HalfStars: 8, Time: 964982703}, pinned[0])
	check(0, Interaction{User: 1, Item: 1, HalfStars: 8, Time: 1}, pinned[0])
	check(1, Interaction{User: 1, Item: 1, HalfStars: 8}, pinned[1])
	check(0, Interaction{User: 610, Item: 168252, HalfStars: 10}, pinned[2])
	check(42, Interaction{User: 7, Item: 3, HalfStars: 1}, pinned[3])
}

// pinned are WatchFraction values measured when the mapping was written.
var pinned = [...]float64{0.788459526667000, 0.865933698361221, 0.994838263195499, 0.096284275412923}

func TestWatchFractionDependsOnlyOnSeedUserItemAndRating(t *testing.T) {
	in := Interaction{User: 5, Item: 50, HalfStars: 6, Time: 1000}
	f := WatchFraction(3, in)
	for _, other := range []Interaction{{User: 5, Item: 50, HalfStars: 6, Time: 2000}, {User: 5, Item: 50, HalfStars: 6}} {
		if g := WatchFraction(3, other); g != f {
			t.Fatalf("the time changed the fraction: %v vs %v", g, f)
		}
	}
	same := 0
	for seed := uint64(0); seed < 100; seed++ {
		if WatchFraction(seed, in) == f {
			same++
		}
	}
	if same != 1 {
		t.Fatalf("%d of 100 seeds give the same fraction, want only the seed itself", same)
	}
	if WatchFraction(3, Interaction{User: 50, Item: 5, HalfStars: 6}) == f {
		t.Fatal("swapping user and item gave the same fraction")
	}
}

func TestWatchFractionMatchesTheDocumentedDistribution(t *testing.T) {
	// Completion rates as the doc comment of WatchFraction states them.
	wantComplete := map[uint8]float64{10: 0.84, 9: 0.42, 8: 0.13, 7: 0.03}
	for h := uint8(1); h <= 10; h++ {
		var sum, lo, hi float64
		lo, hi = 1, 0
		complete, n := 0, 0
		for u := uint32(1); u <= 400; u++ {
			for i := uint32(1); i <= 250; i++ {
				f := WatchFraction(11, Interaction{User: u, Item: i, HalfStars: h})
				sum += f
				lo, hi = min(lo, f), max(hi, f)
				if f >= CompleteFraction {
					complete++
				}
				n++
			}
		}
		stars := float64(h) / 2
		if mean := sum / float64(n); math.Abs(mean-MeanFraction(stars)) > 0.005 {
			t.Errorf("%.1f stars: mean fraction %.4f, want %.4f", stars, mean, MeanFraction(stars))
		}
		if lo < minFraction || hi > maxFraction {
			t.Errorf("%.1f stars: fractions span %v..%v, outside [%v, %v]", stars, lo, hi, minFraction, maxFraction)
		}
		rate := float64(complete) / float64(n)
		if want, ok := wantComplete[h]; ok && math.Abs(rate-want) > 0.01 {
			t.Errorf("%.1f stars: completion rate %.3f, documented %.2f", stars, rate, want)
		} else if !ok && rate >= 0.01 {
			t.Errorf("%.1f stars: completion rate %.3f, documented under 0.01", stars, rate)
		}
	}
	if MeanFraction(0.5) != 0.15 || math.Abs(MeanFraction(5)-0.95) > 1e-12 {
		t.Fatalf("MeanFraction spans %v..%v, documented 0.15..0.95", MeanFraction(0.5), MeanFraction(5))
	}
}

func TestTitleDurationIsEightyToOneHundredFiftyMinutes(t *testing.T) {
	var lo, hi time.Duration = time.Hour * 24, 0
	for item := uint32(0); item < 20000; item++ {
		d := TitleDuration(item)
		if d%time.Second != 0 {
			t.Fatalf("item %d: %s is not whole seconds", item, d)
		}
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo < 80*time.Minute || hi > 150*time.Minute || lo > 81*time.Minute || hi < 149*time.Minute {
		t.Fatalf("durations span %s..%s, want about 80m..150m", lo, hi)
	}
	if TitleDuration(1) != TitleDuration(1) || TitleDuration(1) == TitleDuration(2) {
		t.Fatal("TitleDuration is not a spread function of the item")
	}
}

func TestViewersAreValidAndFollowTheTables(t *testing.T) {
	us, tv := 0, 0
	const n = 20000
	for u := uint32(1); u <= n; u++ {
		v := ViewerOf(u)
		e := schemas.Playback{
			Envelope: schemas.Envelope{EventID: "x", EventTime: 1, AccountID: "a", ProfileID: "p", DeviceID: "d",
				SessionID: "s", Country: v.Country, DeviceType: v.DeviceType},
			Kind: schemas.PlayStart, TitleID: "t", CDN: v.CDN, ISP: v.ISP, BitrateKbps: v.BitrateKbps,
		}
		if err := schemas.Validate(&e, schemas.Limits{}, time.UnixMilli(1)); err != nil {
			t.Fatalf("user %d: viewer %+v: %v", u, v, err)
		}
		if v.BitrateKbps == 0 || v != ViewerOf(u) {
			t.Fatalf("user %d: viewer %+v has no bitrate or is not deterministic", u, v)
		}
		if v.Country == "US" {
			us++
		}
		if v.DeviceType == schemas.DeviceTV {
			tv++
		}
	}
	if share := float64(us) / n; math.Abs(share-0.30) > 0.02 {
		t.Errorf("US share %.3f, want about 0.30", share)
	}
	if share := float64(tv) / n; math.Abs(share-0.45) > 0.02 {
		t.Errorf("TV share %.3f, want about 0.45", share)
	}
}

func TestIDsCarryTheMovieLensIDs(t *testing.T) {
	in := Interaction{User: 12, Item: 345, Time: 964982703}
	for got, want := range map[string]string{
		ProfileID(12): "ml-u12", AccountID(12): "ml-a12", DeviceID(12): "ml-d12", TitleID(345): "ml-m345",
		SessionID(in): "ml-s12-345-964982703",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}
