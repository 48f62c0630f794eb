package anomaly

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/atlas-stream/atlas/schemas"
)

// cell returns the playback of one CDN × ISP × country cell from start for
// length: streams concurrent sessions, each with a heartbeat every 30 s
// and, before it, a rebuffer with probability ratio(t); a session ends
// after ten minutes and a new one starts, which fails to start with
// probability fail(t).
func cell(seed uint64, start, length int64, streams int, ratio, fail func(t int64) float64) []schemas.Record {
	rng := rand.New(rand.NewPCG(seed, 1))
	var out []schemas.Record
	for s := 0; s < streams; s++ {
		offset := int64(rng.IntN(30_000))
		for k := int64(0); start+offset+k*10*minute < start+length; k++ {
			ses := fmt.Sprintf("s%d-%d", s, k)
			t := start + offset + k*10*minute
			if rng.Float64() < fail(t) {
				e := play(t, "a", "d", ses, net(10, 1), schemas.PlayError)
				e.PositionMs = 0
				out = append(out, e)
				continue
			}
			out = append(out, play(t, "a", "d", ses, net(10, 1), schemas.PlayStart))
			for hb := t + 30*sec; hb < t+10*minute && hb < start+length; hb += 30 * sec {
				if rng.Float64() < ratio(hb) {
					out = append(out, play(hb-rng.Int64N(20_000)-1, "a", "d", ses, net(10, 1), schemas.PlayRebuffer))
				}
				out = append(out, play(hb, "a", "d", ses, net(10, 1), schemas.PlayHeartbeat))
			}
		}
	}
	return merge(out)
}

func TestQuality(t *testing.T) {
	const jump = t0 + 70*minute
	step := func(before, during float64) func(int64) float64 {
		return func(t int64) float64 {
			if t >= jump && t < jump+15*minute {
				return during
			}
			return before
		}
	}
	no := func(int64) float64 { return 0 }
	for _, c := range []struct {
		name  string
		recs  []schemas.Record
		fires bool
	}{
		{name: "A busy cell whose rebuffers jump from 1.2% to 25% of heartbeats fires within two minutes of the jump",
			recs: cell(1, t0, 2*60*minute, 40, step(0.012, 0.25), no), fires: true},
		{name: "The same cell without the jump stays quiet for two hours",
			recs: cell(2, t0, 2*60*minute, 40, step(0.012, 0.012), no)},
		{name: "A quiet cell of three streams never fires, even when every heartbeat rebuffers",
			recs: cell(3, t0, 2*60*minute, 3, step(0.012, 1), no)},
		{name: "A mobile cell that always rebuffers 6% of the time is judged against its own baseline: 12% is not an incident",
			recs: cell(4, t0, 2*60*minute, 40, step(0.06, 0.12), no)},
		{name: "The mobile cell fires when it reaches 45%",
			recs: cell(5, t0, 2*60*minute, 40, step(0.06, 0.45), no), fires: true},
		{name: "Half of the starts failing, with enough starts, fires",
			recs: cell(6, t0, 2*60*minute, 150, step(0.012, 0.012), step(0.005, 0.5)), fires: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := feed(t, NewQuality(QualityConfig{}), c.recs)
			if !c.fires {
				if len(got) > 0 {
					t.Fatalf("active %d times, first at jump%+ds: %+v", len(got), (got[0].At-jump)/1000, got[0])
				}
				return
			}
			if len(got) == 0 {
				t.Fatal("never active")
			}
			v := got[0]
			if v.At < jump || v.At > jump+2*minute || v.Start < jump-15*sec || v.Subject != "cdn:cdn-a|isp:de-telco|cc:DE" {
				t.Fatalf("first active verdict at jump%+ds, start jump%+ds (%+v); want within two minutes after the jump", (v.At-jump)/1000, (v.Start-jump)/1000, v)
			}
			if last := got[len(got)-1]; last.At > jump+18*minute {
				t.Fatalf("still active at jump%+ds, three minutes after the end", (last.At-jump)/1000)
			}
		})
	}
}

func TestQualityBeforeAnHourOfHistoryUsesThePrior(t *testing.T) {
	jump := t0 + 6*minute
	recs := cell(7, t0, 30*minute, 40, func(t int64) float64 {
		if t >= jump {
			return 0.25
		}
		return 0.012
	}, func(int64) float64 { return 0 })
	got := feed(t, NewQuality(QualityConfig{}), recs)
	if len(got) == 0 || got[0].At > jump+2*minute {
		t.Fatalf("verdicts %v; want one within two minutes of the jump six minutes into the cell's life", got)
	}
}

func TestPoissonTail(t *testing.T) {
	check := func(k int, lambda, want float64) {
		t.Helper()
		if got := PoissonTail(k, lambda); got < want*0.999 || got > want*1.001 {
			t.Fatalf("P(X ≥ %d | λ=%v) = %g, want %g", k, lambda, got, want)
		}
	}
	check(0, 3, 1)
	check(1, 2, 0.8646647167633873)
	check(10, 2, 4.649807501e-05)
	check(3, 0.5, 0.01438767796)
	check(50, 10, 1.8547268838698e-19)
	if PoissonTail(5, 0) != 0 {
		t.Fatal("a count above zero at rate zero must have probability zero")
	}
}

func TestBaselineAndRobustZ(t *testing.T) {
	b := NewBaseline(5)
	for _, x := range []float64{1, 2, 3, 100, 4, 5, 6} { // 1 and 2 fall out
		b.Add(x)
	}
	med, mad := b.Stats()
	if b.Len() != 5 || med != 5 || mad != 1 {
		t.Fatalf("len %d median %v MAD %v, want 5, 5, 1 (of 3, 100, 4, 5, 6)", b.Len(), med, mad)
	}
	if z := RobustZ(8, 5, 1, 0.1); z < 2.02 || z > 2.03 {
		t.Fatalf("z = %v, want 3/1.4826", z)
	}
	if z := RobustZ(5.5, 5, 0, 0.5); z < 0.67 || z > 0.68 {
		t.Fatalf("z = %v with a zero MAD, want the floor to apply", z)
	}
}

func TestBinomialTail(t *testing.T) {
	check := func(k, n int, p, want float64) {
		t.Helper()
		if got := BinomialTail(k, n, p); got < want*0.999 || got > want*1.001 {
			t.Fatalf("P(X ≥ %d | n=%d, p=%v) = %g, want %g", k, n, p, got, want)
		}
	}
	check(0, 10, 0.3, 1)
	check(1, 10, 0.5, 1-1.0/1024)
	check(10, 10, 0.5, 1.0/1024)
	check(7, 27, 0.048, 0.00022236160012623608)
}
