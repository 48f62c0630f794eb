package embeddings

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// benchModel learns plays of profiles with clustered tastes over a catalog
// of titles ("tt-00001"…): each profile watches mostly one of 20 genres,
// titles by a Zipf popularity.
func benchModel(tb testing.TB, titles, profiles, plays int) (*Model, []*Profile) {
	tb.Helper()
	m := NewModel(Config{})
	rng := rand.New(rand.NewPCG(1, 2))
	zipf := rand.NewZipf(rng, 1.1, 1, uint64(titles/20-1))
	ids := make([]int32, titles)
	for i := range ids {
		ids[i] = m.Title(fmt.Sprintf("tt-%05d", i+1))
	}
	ps := make([]*Profile, profiles)
	for u := range ps {
		ps[u] = &Profile{ID: fmt.Sprintf("pro-%d", u)}
	}
	off := int64(0)
	for n := 0; n < plays; n++ {
		u := rng.IntN(profiles)
		g := u % 20
		if rng.IntN(5) == 0 {
			g = rng.IntN(20)
		}
		t := ids[(int(zipf.Uint64())*20+g)%titles]
		m.Play(ps[u], t, "DE", int32(u%6), off, nil)
		off++
	}
	return m, ps
}

// BenchmarkRecommend measures one top-10 request for a catalog of 10,000
// titles, and reports its p99 over the iterations.
func BenchmarkRecommend(b *testing.B) {
	m, ps := benchModel(b, 10_000, 50_000, 1_000_000)
	start := time.Now()
	m.Refresh() // the dense part of the score, as in the consumer
	b.Logf("dense refresh of %d titles: %s", m.Stats().Titles, time.Since(start).Round(time.Millisecond))
	st := m.Stats()
	var active []*Profile
	for _, p := range ps {
		if len(p.ring) >= 10 {
			active = append(active, p)
		}
	}
	scratch := make([]float64, st.Titles)
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := active[i%len(active)]
		start := time.Now()
		if r := m.Recommend(p, "DE", 10, scratch); len(r) != 10 {
			b.Fatal(len(r))
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(st.Pairs)/float64(st.Titles), "row-len")
}

// BenchmarkPlay measures learning one first play (the hot path of the
// consumer) in a model of 10,000 titles.
func BenchmarkPlay(b *testing.B) {
	m, ps := benchModel(b, 10_000, 50_000, 200_000)
	rng := rand.New(rand.NewPCG(3, 4))
	var inc increment
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := ps[rng.IntN(len(ps))]
		t := int32(rng.IntN(10_000))
		m.Play(p, t, "DE", 0, int64(1_000_000+i), &inc)
	}
}

// BenchmarkRestoreProfiles decodes changelog values into profiles as a
// restore does, and reports bytes per value. Profiles watched 20 titles
// (10 in the sample's median, 30 in its tail, see the package doc).
func BenchmarkRestoreProfiles(b *testing.B) {
	for _, watched := range []int{5, 20, 40} {
		b.Run(fmt.Sprintf("watched=%d", watched), func(b *testing.B) {
			m, _ := benchModel(b, 10_000, 100, 20_000)
			m.Refresh()
			rng := rand.New(rand.NewPCG(9, 9))
			vals := make([][]byte, 1000)
			size := 0
			for i := range vals {
				p := &Profile{ID: fmt.Sprintf("pro-%d", i)}
				for n := 0; n < watched; n++ {
					m.Play(p, int32(rng.IntN(10_000)), "DE", 0, int64(n), nil)
				}
				p.PlayNext, p.BrowseNext = 123_456_789, 98_765
				vals[i] = m.AppendProfile(nil, p)
				size += len(vals[i])
			}
			profiles := make(map[string]*Profile, b.N)
			b.ReportAllocs()
			b.SetBytes(int64(size / len(vals)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				p := &Profile{ID: fmt.Sprint(i)}
				if err := m.DecodeProfile(vals[i%len(vals)], p); err != nil {
					b.Fatal(err)
				}
				profiles[p.ID] = p
			}
			b.StopTimer()
			b.ReportMetric(float64(size)/float64(len(vals)), "B/profile")
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)*1e6, "s/1M-profiles")
		})
	}
}
