package replay

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func readRatings(t *testing.T, name, text string, opts ReadOptions) ([]Interaction, ReadStats) {
	t.Helper()
	rows, st, err := ReadRatings(strings.NewReader(text), name, opts)
	if err != nil {
		t.Fatalf("ReadRatings(%s): %v", name, err)
	}
	return rows, st
}

func TestReadRatingsCSVReturnsRowsInReplayOrder(t *testing.T) {
	const text = "userId,movieId,rating,timestamp\r\n" +
		"2,10,4.0,964982703\r\n" +
		"1,3,0.5,964981247\r\n" +
		"\r\n" +
		"1,7,5,964982703\r\n"
	rows, st := readRatings(t, "ratings.csv", text, ReadOptions{})
	want := []Interaction{
		{Time: 964981247, User: 1, Item: 3, HalfStars: 1},
		{Time: 964982703, User: 1, Item: 7, HalfStars: 10},
		{Time: 964982703, User: 2, Item: 10, HalfStars: 8},
	}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Fatalf("rows (-want +got):\n%s", diff)
	}
	if st.Format != FormatRatingsCSV || st.Rows != 3 || st.Lines != 5 || st.Skipped != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestReadRatingsUData(t *testing.T) {
	const text = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n"
	rows, st := readRatings(t, "u.data", text, ReadOptions{})
	want := []Interaction{
		{Time: 878887116, User: 22, Item: 377, HalfStars: 2},
		{Time: 881250949, User: 196, Item: 242, HalfStars: 6},
		{Time: 891717742, User: 186, Item: 302, HalfStars: 6},
	}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Fatalf("rows (-want +got):\n%s", diff)
	}
	if st.Format != FormatUData {
		t.Fatalf("format = %s, want u.data", st.Format)
	}
}

func TestReadRatingsDatOfML1M(t *testing.T) {
	const text = "1::1193::5::978300760\n1::661::3::978302109\n"
	rows, st := readRatings(t, "ratings.dat", text, ReadOptions{})
	want := []Interaction{
		{Time: 978300760, User: 1, Item: 1193, HalfStars: 10},
		{Time: 978302109, User: 1, Item: 661, HalfStars: 6},
	}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Fatalf("rows (-want +got):\n%s", diff)
	}
	if st.Format != FormatRatingsDat {
		t.Fatalf("format = %s, want ratings.dat", st.Format)
	}
}

func TestReadRatingsTabSeparatedWithAHeaderOfRecBole(t *testing.T) {
	const text = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n196\t242\t3\t881250949\n"
	rows, st := readRatings(t, "ml-100k.inter", text, ReadOptions{})
	if want := []Interaction{{Time: 881250949, User: 196, Item: 242, HalfStars: 6}}; !cmp.Equal(want, rows) || st.Format != FormatUData {
		t.Fatalf("rows = %+v (%s), want %+v", rows, st.Format, want)
	}
	_, err := NewRatingsReader(strings.NewReader("item\tuser\trating\ttimestamp\n"), "swapped.tsv")
	if err == nil || !strings.Contains(err.Error(), "header naming user, item, rating and timestamp") {
		t.Fatalf("a header in another order: err = %v", err)
	}
}

func TestReadRatingsAcceptsAHeaderlessCSVAndAByteOrderMark(t *testing.T) {
	rows, _ := readRatings(t, "x", "\xef\xbb\xbf1,2,3.5,100\n", ReadOptions{})
	if want := []Interaction{{Time: 100, User: 1, Item: 2, HalfStars: 7}}; !cmp.Equal(want, rows) {
		t.Fatalf("rows = %+v, want %+v", rows, want)
	}
	rows, _ = readRatings(t, "x", "\xef\xbb\xbfuserId,movieId,rating,timestamp\n1,2,3.5,100\n", ReadOptions{})
	if len(rows) != 1 {
		t.Fatalf("rows = %+v, want one", rows)
	}
}

func TestTiesAreBrokenByUserThenItem(t *testing.T) {
	const text = "userId,movieId,rating,timestamp\n" +
		"9,1,3,50\n" + "2,8,3,50\n" + "2,5,3,50\n" + "1,9,3,51\n" + "10,1,3,50\n" + "2,6,3,49\n"
	rows, _ := readRatings(t, "ratings.csv", text, ReadOptions{})
	var got []string
	for _, r := range rows {
		got = append(got, fmtTriple(r))
	}
	want := []string{"49/2/6", "50/2/5", "50/2/8", "50/9/1", "50/10/1", "51/1/9"}
	if !cmp.Equal(want, got) {
		t.Fatalf("order (time/user/item) = %v, want %v", got, want)
	}
}

func TestRepeatedRatingsKeepTheFirstAndAreCounted(t *testing.T) {
	const text = "1,2,3,100\n1,2,5,100\n1,2,4,101\n"
	rows, st := readRatings(t, "x.csv", text, ReadOptions{})
	want := []Interaction{{Time: 100, User: 1, Item: 2, HalfStars: 6}, {Time: 101, User: 1, Item: 2, HalfStars: 8}}
	if !cmp.Equal(want, rows) || st.Duplicates != 1 {
		t.Fatalf("rows = %+v, duplicates = %d; want %+v and 1", rows, st.Duplicates, want)
	}
}

func TestMalformedRatingsNameFileLineAndProblem(t *testing.T) {
	check := func(text, wantInError string) {
		t.Helper()
		_, _, err := ReadRatings(strings.NewReader(text), "data/ratings.csv", ReadOptions{})
		var le *LineError
		if !errors.As(err, &le) || !errors.Is(err, ErrMalformed) {
			t.Fatalf("%q: error %v, want a *LineError", text, err)
		}
		if !strings.Contains(err.Error(), wantInError) || !strings.Contains(err.Error(), "data/ratings.csv") {
			t.Fatalf("%q: error %q does not name the file and %q", text, err, wantInError)
		}
	}
	const h = "userId,movieId,rating,timestamp\n"
	check(h+"1,2,3.0,100\n1,2,3.0\n", "line 3: want 4 fields")
	check(h+"1,2,3.0,100,7\n", "line 2: want 4 fields (user, item, rating, timestamp), found more")
	check(h+"x,2,3.0,100\n", `line 2: user "x"`)
	check(h+"1,-2,3.0,100\n", `line 2: item "-2"`)
	check(h+"1,2,3.2,100\n", `line 2: rating "3.2": want 0.5 to 5 stars in steps of 0.5`)
	check(h+"1,2,0,100\n", `rating "0"`)
	check(h+"1,2,5.5,100\n", `rating "5.5"`)
	check(h+"1,2,NaN,100\n", `rating "NaN"`)
	check(h+"1,2,4,\n", `line 2: timestamp ""`)
	check(h+"1,2,4,1e9\n", `timestamp "1e9"`)
	check(h+"1,2,4,99999999999\n", `timestamp "99999999999"`)
	check("user,item,rating,time\n1,2,3,4\n", `line 1: expected the header "userId,movieId,rating,timestamp"`)
	check("1\t2\t3\n", "line 1: want 4 fields")
	check("1\t2\t3\t4\t5\n", "line 1: want 4 fields")
}

func TestUndetectableRatingsFail(t *testing.T) {
	for _, text := range []string{"", "\n\n", "hello world\n"} {
		if _, _, err := ReadRatings(strings.NewReader(text), "r", ReadOptions{}); err == nil {
			t.Fatalf("%q: no error", text)
		}
	}
}

func TestSkipBadCountsMalformedLinesAndKeepsTheRest(t *testing.T) {
	var b strings.Builder
	b.WriteString("userId,movieId,rating,timestamp\n")
	for i := 0; i < 15; i++ {
		b.WriteString("1,2,9,100\n") // bad rating
	}
	b.WriteString("1,2,3,100\n")
	rows, st := readRatings(t, "r.csv", b.String(), ReadOptions{SkipBad: true})
	if len(rows) != 1 || st.Skipped != 15 || len(st.Errors) != maxKeptErrors {
		t.Fatalf("rows %d, skipped %d, kept errors %d; want 1, 15, %d", len(rows), st.Skipped, len(st.Errors), maxKeptErrors)
	}
	if !strings.Contains(st.Errors[0].Error(), "line 2") {
		t.Fatalf("first kept error %q does not name line 2", st.Errors[0])
	}
}

func TestLoadRatingsNamesTheMissingFile(t *testing.T) {
	_, _, err := LoadRatings(filepath.Join(t.TempDir(), "nope.csv"), ReadOptions{})
	if err == nil || !strings.Contains(err.Error(), "nope.csv") {
		t.Fatalf("error %v does not name the file", err)
	}
}

func TestFindMoviesPrefersMoviesCSVNextToTheRatings(t *testing.T) {
	dir := t.TempDir()
	ratings := filepath.Join(dir, "ratings.csv")
	if _, ok := FindMovies(ratings); ok {
		t.Fatal("found a catalog in an empty folder")
	}
	os.WriteFile(filepath.Join(dir, "u.item"), []byte("x"), 0o644)
	if p, ok := FindMovies(ratings); !ok || filepath.Base(p) != "u.item" {
		t.Fatalf("FindMovies = %q, %v; want u.item", p, ok)
	}
	os.WriteFile(filepath.Join(dir, "movies.csv"), []byte("x"), 0o644)
	if p, ok := FindMovies(ratings); !ok || filepath.Base(p) != "movies.csv" {
		t.Fatalf("FindMovies = %q, %v; want movies.csv", p, ok)
	}
}

func fmtTriple(in Interaction) string { return fmt.Sprintf("%d/%d/%d", in.Time, in.User, in.Item) }
