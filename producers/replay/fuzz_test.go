package replay

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/atlas-stream/atlas/schemas"
)

// The readers take files from anywhere: whatever the bytes, they return
// rows or an error, never panic, and what they return is usable.

func FuzzReadRatings(f *testing.F) {
	f.Add("userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.0,964981247\n")
	f.Add("196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
	f.Add("1,2,3.5,100\r\n\r\n1,2,3.5,100\n")
	f.Add("\xef\xbb\xbf1,2,0.5,1\n")
	f.Add("1,2,3,4,5\n,,,\n")
	f.Fuzz(func(t *testing.T, text string) {
		rows, st, err := ReadRatings(strings.NewReader(text), "fuzz", ReadOptions{SkipBad: true})
		if err != nil {
			return
		}
		if len(rows) != st.Rows {
			t.Fatalf("%d rows, stats say %d", len(rows), st.Rows)
		}
		for i, in := range rows {
			if in.HalfStars < 1 || in.HalfStars > 10 || in.Time == 0 || (i > 0 && Compare(rows[i-1], in) >= 0) {
				t.Fatalf("row %d %+v is invalid or out of order", i, in)
			}
		}
		g, _ := NewGenerator(Config{})
		if _, err := g.Run(context.Background(), rows, SinkFunc(func(context.Context, schemas.Record) error { return nil })); err != nil {
			t.Fatalf("rows the reader accepted do not replay: %v", err)
		}
	})
}

func FuzzReadMovies(f *testing.F) {
	f.Add("movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n11,\"American President, The (1995)\",Comedy\n")
	f.Add("1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n")
	f.Add("movieId,title,genres\n1,\"unterminated,x\n")
	f.Add("1|Mis\xe9rables (1995)|||x|" + strings.Repeat("0|", 18) + "0\n")
	f.Fuzz(func(t *testing.T, text string) {
		movies, _, err := ReadMovies(strings.NewReader(text), "fuzz", ReadOptions{SkipBad: true})
		if err != nil {
			return
		}
		for _, m := range movies {
			if err := schemas.Validate(TitleOf(m), schemas.Limits{}, time.Time{}); err != nil {
				t.Fatalf("movie %+v gives an invalid title: %v", m, err)
			}
		}
	})
}
