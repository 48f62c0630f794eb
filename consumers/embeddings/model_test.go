package embeddings

import (
	"fmt"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// play feeds plays "profile:title" in order to one model, one source.
func play(m *Model, ps map[string]*Profile, plays ...string) {
	for i, s := range plays {
		u, t, _ := strings.Cut(s, ":")
		p := ps[u]
		if p == nil {
			p = &Profile{ID: u}
			ps[u] = p
		}
		m.Play(p, m.Title(t), "DE", 0, int64(i), nil)
	}
}

func ids(s []Scored) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = x.Title
	}
	return out
}

func TestRecommendationsFollowCoOccurrenceAndExcludeWhatWasWatched(t *testing.T) {
	m := NewModel(Config{})
	ps := map[string]*Profile{}
	// a, b, c watch the x series in order; d watches y; e starts x.
	play(m, ps, "a:x1", "a:x2", "a:x3", "b:x1", "b:x2", "b:x3", "c:x1", "c:x2", "d:y1", "d:y2", "d:y3", "e:x1")
	got := ids(m.Recommend(ps["e"], "DE", 2, nil))
	if want := []string{"x2", "x3"}; !slices.Equal(got, want) {
		t.Fatalf("e watched x1: got %v, want %v", got, want)
	}
	for _, r := range m.Recommend(ps["a"], "DE", 10, nil) {
		if strings.HasPrefix(r.Title, "x") {
			t.Fatalf("a watched every x but was recommended %s", r.Title)
		}
	}
	if got := ids(m.Recommend(ps["c"], "DE", 1, nil)); !slices.Equal(got, []string{"x3"}) {
		t.Fatalf("c watched x1, x2: got %v, want x3", got)
	}
}

func TestColdStartIsTheCountrysMostPlayed(t *testing.T) {
	m := NewModel(Config{})
	ps := map[string]*Profile{}
	for i, s := range []string{"a:t1", "b:t1", "c:t1", "a:t2", "b:t2", "c:t3"} {
		u, ti, _ := strings.Cut(s, ":")
		if ps[u] == nil {
			ps[u] = &Profile{ID: u}
		}
		cc := "DE"
		if ti == "t1" {
			cc = "FR" // t1 is the global favourite, but in France only
		}
		m.Play(ps[u], m.Title(ti), cc, 0, int64(i), nil)
	}
	check := func(country string, p *Profile, want ...string) {
		t.Helper()
		if got := ids(m.Recommend(p, country, len(want), nil)); !slices.Equal(got, want) {
			t.Fatalf("cold start in %q: got %v, want %v", country, got, want)
		}
	}
	check("DE", nil, "t2", "t3", "t1")
	check("FR", nil, "t1", "t2", "t3")
	check("", nil, "t1", "t2", "t3")
	check("DE", &Profile{ID: "new"}, "t2", "t3", "t1")
}

func TestTheLearnerIsDeterministic(t *testing.T) {
	run := func() (uint64, []string, []byte) {
		m := NewModel(Config{Dim: 4})
		ps := map[string]*Profile{}
		rng := rand.New(rand.NewPCG(5, 5))
		var plays []string
		for i := 0; i < 3000; i++ {
			u := rng.IntN(50)
			plays = append(plays, fmt.Sprintf("u%d:t%d", u, (u%5)*10+rng.IntN(10)))
		}
		play(m, ps, plays...)
		m.Refresh()
		return m.Digest(), ids(m.Recommend(ps["u7"], "DE", 10, nil)), m.AppendProfile(nil, ps["u7"])
	}
	d1, r1, b1 := run()
	d2, r2, b2 := run()
	if d1 != d2 || !slices.Equal(r1, r2) || string(b1) != string(b2) {
		t.Fatalf("two runs over the same input differ: digests %x %x, recommendations %v %v", d1, d2, r1, r2)
	}
}

func TestTheModelDoesNotDependOnTheOrderOfPartitions(t *testing.T) {
	// Three partitions learn separately; their increments reach two
	// members in different interleavings. The members must agree bit for
	// bit, dense vectors included.
	lg := traffic(3, 2000, 3)
	type incs = []increment
	var per [3]incs
	src := NewModel(Config{Dim: 8})
	for p := 0; p < 3; p++ {
		ps := map[string]*Profile{}
		for off, r := range lg[p][0] {
			e := playback(r)
			if e == nil || e.Kind != "start" {
				continue
			}
			pr := ps[e.ProfileID]
			if pr == nil {
				pr = &Profile{ID: e.ProfileID}
				ps[e.ProfileID] = pr
			}
			var inc increment
			if src.Play(pr, src.Title(e.TitleID), e.Country, int32(p), int64(off), &inc) {
				per[p] = append(per[p], cloneIncrement(&inc))
			}
		}
	}
	member := func(seed uint64) *Model {
		m := NewModel(Config{Dim: 8})
		rng := rand.New(rand.NewPCG(seed, 1))
		var next [3]int
		for next[0] < len(per[0]) || next[1] < len(per[1]) || next[2] < len(per[2]) {
			p := rng.IntN(3)
			if next[p] == len(per[p]) {
				continue
			}
			// Through the wire, as the model topic carries them; a third
			// of them twice (a replay after a crash republishes).
			b := src.appendIncrementLocked(nil, &per[p][next[p]])
			var inc increment
			for k := 0; k <= rng.IntN(3)/2; k++ {
				if err := m.decodeIncrement(b, &inc); err != nil {
					t.Fatal(err)
				}
				m.apply(&inc)
			}
			next[p]++
		}
		m.Refresh()
		return m
	}
	a, b := member(1), member(2)
	if a.Digest() != b.Digest() || a.Digest() != src.Digest() {
		t.Fatalf("members disagree: digests %x, %x, learner %x", a.Digest(), b.Digest(), src.Digest())
	}
	for _, id := range []string{"t01", "t42", "t77"} {
		if va, vb := a.TitleVector(id), b.TitleVector(id); !slices.Equal(va, vb) || va == nil {
			t.Fatalf("dense vector of %s differs between members: %v vs %v", id, va, vb)
		}
	}
}

func TestAProfileRoundTripsThroughItsChangelogValue(t *testing.T) {
	m := NewModel(Config{Dim: 4})
	ps := map[string]*Profile{}
	play(m, ps, "a:tt-00012", "a:tt-00013", "b:tt-00012", "a:ml-m9", "a:tt-00001", "b:tt-00013")
	p := ps["a"]
	m.Finish(p, m.Title("tt-00013"), 0.1)
	m.Intent(p, m.Title("tt-00777"), "FR")
	p.PlayNext, p.BrowseNext = 1234, 99
	m.Refresh()
	b := m.AppendProfile(nil, p)

	// Into another process's model, where indices differ.
	other := NewModel(Config{Dim: 4})
	other.Title("zzz")
	var q Profile
	if err := other.DecodeProfile(b, &q); err != nil {
		t.Fatal(err)
	}
	q.ID = "a"
	if got := other.AppendProfile(nil, &q); string(got[:len(got)-1]) != string(m.appendProfileLocked(nil, p, false)[:len(got)-1]) {
		t.Fatalf("re-encoded profile differs:\n%x\n%x", got, b)
	}
	if q.PlayNext != 1234 || q.BrowseNext != 99 || q.Plays != 4 || q.Country() != "DE" || q.Watched() != 4 {
		t.Fatalf("decoded %+v", q)
	}
	v, err := DecodeTaste(b)
	if err != nil || len(v) != 4 {
		t.Fatalf("taste in the value: %v, %v", v, err)
	}
	if len(b) > 80 {
		t.Fatalf("a profile of 4 titles takes %d bytes", len(b))
	}
}

func TestCorruptValuesAreErrorsNotPanics(t *testing.T) {
	m := NewModel(Config{})
	ps := map[string]*Profile{}
	play(m, ps, "a:x", "a:y", "a:z")
	good := m.AppendProfile(nil, ps["a"])
	var inc increment
	m.derive(&inc, ps["a"], m.Title("w"), "DE", 1, 7)
	goodInc := m.appendIncrementLocked(nil, &inc)
	for _, b := range [][]byte{
		nil, {0}, {1}, {2, 0}, good[:len(good)-1], append(slices.Clone(good), 0),
		{1, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, // a count larger than the bytes
		{1, 0, 0, 0, 0, 0, 1, 5, 1, 'a'},                 // shares more than the previous id
	} {
		var p Profile
		if err := m.DecodeProfile(b, &p); err == nil {
			t.Errorf("profile %x decoded without error", b)
		}
	}
	for _, b := range [][]byte{goodInc[:len(goodInc)-1], {1, 0, 0, 5, 'a'}, {recIncrement, 1, 1, 1, 'x', 0, 1, 0xff, 0xff, 0x7f}} {
		if err := m.decodeIncrement(b, &inc); err == nil {
			t.Errorf("increment %x decoded without error", b)
		}
	}
}

func FuzzDecodeProfile(f *testing.F) {
	m := NewModel(Config{Dim: 2})
	ps := map[string]*Profile{}
	play(m, ps, "a:x", "a:y", "b:x", "a:zz")
	m.Refresh()
	f.Add(m.AppendProfile(nil, ps["a"]))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Profile
		if err := m.DecodeProfile(b, &p); err != nil {
			return
		}
		// What decodes re-encodes to the same bytes, taste aside.
		again := m.appendProfileLocked(nil, &p, false)
		var q Profile
		if err := m.DecodeProfile(again, &q); err != nil {
			t.Fatalf("re-encoded value does not decode: %v", err)
		}
	})
}

func FuzzDecodeIncrement(f *testing.F) {
	m := NewModel(Config{})
	ps := map[string]*Profile{}
	play(m, ps, "a:x", "a:y")
	var inc increment
	m.derive(&inc, ps["a"], m.Title("z"), "DE", 1, 7)
	f.Add(m.appendIncrementLocked(nil, &inc))
	f.Fuzz(func(t *testing.T, b []byte) {
		var inc increment
		_ = m.decodeIncrement(b, &inc)
	})
}

func TestTheLearnerDependsOnNeitherKafkaNorClickHouse(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, forbidden := range []string{"github.com/segmentio/kafka-go", "github.com/ClickHouse/clickhouse-go"} {
		if strings.Contains(string(out), forbidden) {
			t.Fatalf("consumers/embeddings depends on %s; the learner must stay pure", forbidden)
		}
	}
}
