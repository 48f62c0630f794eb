package anomaly

import (
	"strconv"
	"testing"

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
