package replay

import (
	"cmp"
	"context"
	"crypto/md5"
	"encoding/csv"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/atlas-stream/atlas/schemas"
)

// movieLensEnv overrides where the MovieLens-small folder is.
const movieLensEnv = "ATLAS_MOVIELENS_DIR"

// Facts of MovieLens "latest-small" from its README and the project's data
// README (../shared/data/README.md).
const (
	movieLensRatings    = 100_836
	movieLensMovies     = 9_742
	movieLensRatingsMD5 = "ac0cf1d26aed3a5b6777a295231976ad"
	movieLensMaxTie     = 128 // most ratings in one second
)

// movieLensDir finds the MovieLens-small folder: $ATLAS_MOVIELENS_DIR, else
// ../shared/data/movielens-latest-small next to the repository root. The
// test fails, never skips, when it is missing: the acceptance of the replay
// is measured on this file.
func movieLensDir(t *testing.T) string {
	t.Helper()
	var tried []string
	if d := os.Getenv(movieLensEnv); d != "" {
		tried = append(tried, d+" (from "+movieLensEnv+")")
		if _, err := os.Stat(filepath.Join(d, "ratings.csv")); err == nil {
			return d
		}
	} else {
		d, _ := filepath.Abs(filepath.Join("..", "..", "..", "shared", "data", "movielens-latest-small"))
		tried = append(tried, d)
		if _, err := os.Stat(filepath.Join(d, "ratings.csv")); err == nil {
			return d
		}
	}
	t.Fatalf("MovieLens-small is missing: no ratings.csv in %v. The replay's acceptance test needs it: "+
		"point %s at the folder that holds ratings.csv and movies.csv (see ../shared/data/README.md)", tried, movieLensEnv)
	return ""
}

func TestReplayOfMovieLensSmallYieldsEveryRatingAsOnePlayInOrder(t *testing.T) {
	dir := movieLensDir(t)
	path := filepath.Join(dir, "ratings.csv")
	if sum := fileMD5(t, path); sum != movieLensRatingsMD5 {
		t.Fatalf("%s has md5 %s, want %s (MovieLens latest-small as the data README describes it)", path, sum, movieLensRatingsMD5)
	}

	start := time.Now()
	rows, st, err := LoadRatings(path, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	readTime := time.Since(start)
	if st.Rows != movieLensRatings || st.Skipped != 0 || st.Duplicates != 0 || st.Format != FormatRatingsCSV {
		t.Fatalf("read stats %+v, want %d rows of ratings.csv and nothing skipped", st, movieLensRatings)
	}

	// The documented order, computed independently of the package: every
	// row through encoding/csv, sorted by (timestamp, user, item).
	want := independentOrder(t, path)
	maxTie, ties := 1, 0
	for i, run := 1, 1; i < len(want); i++ {
		if want[i].Time == want[i-1].Time {
			run++
			ties++
			maxTie = max(maxTie, run)
		} else {
			run = 1
		}
	}
	if maxTie != movieLensMaxTie {
		t.Fatalf("the longest run of ratings in one second is %d, want %d: the tie-breaking is not exercised as expected", maxTie, movieLensMaxTie)
	}

	g, err := NewGenerator(Config{})
	if err != nil {
		t.Fatal(err)
	}
	var starts []Interaction
	var prev int64
	lim := schemas.DefaultLimits()
	var encoded int
	start = time.Now()
	sum, err := g.Run(context.Background(), rows, SinkFunc(func(_ context.Context, rec schemas.Record) error {
		if err := schemas.Validate(rec, lim, time.Time{}); err != nil {
			t.Fatalf("invalid event %+v: %v", rec, err)
		}
		b, err := schemas.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		encoded += len(b)
		e := envelopeOf(rec)
		if e.EventTime < prev {
			t.Fatalf("event %s at %d after an event at %d", e.EventID, e.EventTime, prev)
		}
		prev = e.EventTime
		if p, ok := rec.(*schemas.Playback); ok && p.Kind == schemas.PlayStart {
			in := triple(t, p)
			in.HalfStars = want[len(starts)].HalfStars
			starts = append(starts, in)
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	runTime := time.Since(start)

	if len(starts) != movieLensRatings || sum.Plays != movieLensRatings {
		t.Fatalf("%d start events (summary %d plays), want exactly %d", len(starts), sum.Plays, movieLensRatings)
	}
	for i := range want {
		if starts[i] != want[i] {
			t.Fatalf("play %d is the rating %+v, want %+v (order: timestamp, user, item)", i, starts[i], want[i])
		}
	}
	t.Logf("MovieLens-small: %d ratings read in %s; %d plays (%d ties on the second, longest %d) as %d events "+
		"(%d heartbeats, %d complete, %d stop, %d ratings; %.1f MB of msgpack) generated, validated and encoded in %s (%.0f events/s)",
		len(rows), readTime.Round(time.Millisecond), sum.Plays, ties, maxTie, sum.Events, sum.Heartbeats, sum.Completes, sum.Stops,
		sum.Ratings, float64(encoded)/1e6, runTime.Round(time.Millisecond), float64(sum.Events)/runTime.Seconds())

	movies, mst, err := LoadMovies(filepath.Join(dir, "movies.csv"), ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(movies) != movieLensMovies || mst.Skipped != 0 || mst.Duplicates != 0 {
		t.Fatalf("%d movies (stats %+v), want %d", len(movies), mst, movieLensMovies)
	}
	known := make(map[uint32]bool, len(movies))
	for _, m := range movies {
		known[m.ID] = true
		if err := schemas.Validate(TitleOf(m), lim, time.Time{}); err != nil {
			t.Fatalf("movie %+v: %v", m, err)
		}
	}
	for _, in := range rows {
		if !known[in.Item] {
			t.Fatalf("rated item %d is not in movies.csv", in.Item)
		}
	}
}

func fileMD5(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := md5.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func independentOrder(t *testing.T, path string) []Interaction {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]Interaction, 0, len(recs)-1)
	for _, r := range recs[1:] {
		u, _ := strconv.ParseUint(r[0], 10, 32)
		m, _ := strconv.ParseUint(r[1], 10, 32)
		s, _ := strconv.ParseFloat(r[2], 64)
		ts, _ := strconv.ParseUint(r[3], 10, 32)
		out = append(out, Interaction{User: uint32(u), Item: uint32(m), HalfStars: uint8(s * 2), Time: uint32(ts)})
	}
	slices.SortFunc(out, func(a, b Interaction) int {
		return cmp.Or(cmp.Compare(a.Time, b.Time), cmp.Compare(a.User, b.User), cmp.Compare(a.Item, b.Item))
	})
	return out
}
