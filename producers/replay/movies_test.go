package replay

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/atlas-stream/atlas/schemas"
)

func TestReadMoviesCSVHandlesQuotedTitlesYearsAndMissingGenres(t *testing.T) {
	const text = "movieId,title,genres\n" +
		"1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n" +
		"11,\"American President, The (1995)\",Comedy|Drama|Romance\n" +
		"29,\"City of Lost Children, The (Cité des enfants perdus, La) (1995)\",Sci-Fi\n" +
		"27008,From Dusk Till Dawn 2: Texas Blood Money (1999) ,Comedy\n" +
		"40697,Babylon 5,Sci-Fi\n" +
		"171749,Death Note: Desu nôto (2006–2007),(no genres listed)\n" +
		"3,\"Say \"\"Cheese\"\" (2001)\",Comedy\n"
	movies, st, err := ReadMovies(strings.NewReader(text), "movies.csv", ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Movie{
		{ID: 1, Name: "Toy Story", Genres: []string{"adventure", "animation", "children", "comedy", "fantasy"}, ReleaseDate: "1995-01-01"},
		{ID: 3, Name: `Say "Cheese"`, Genres: []string{"comedy"}, ReleaseDate: "2001-01-01"},
		{ID: 11, Name: "American President, The", Genres: []string{"comedy", "drama", "romance"}, ReleaseDate: "1995-01-01"},
		{ID: 29, Name: "City of Lost Children, The (Cité des enfants perdus, La)", Genres: []string{"sci-fi"}, ReleaseDate: "1995-01-01"},
		{ID: 27008, Name: "From Dusk Till Dawn 2: Texas Blood Money", Genres: []string{"comedy"}, ReleaseDate: "1999-01-01"},
		{ID: 40697, Name: "Babylon 5", Genres: []string{"sci-fi"}},
		{ID: 171749, Name: "Death Note: Desu nôto", ReleaseDate: "2006-01-01"},
	}
	if diff := cmp.Diff(want, movies); diff != "" {
		t.Fatalf("movies (-want +got):\n%s", diff)
	}
	if st.Format != FormatMoviesCSV || st.Rows != len(want) {
		t.Fatalf("stats = %+v", st)
	}
}

func TestReadUItemDecodesLatin1AndGenreFlags(t *testing.T) {
	flags := func(set ...int) string {
		f := make([]string, 19)
		for i := range f {
			f[i] = "0"
		}
		for _, i := range set {
			f[i] = "1"
		}
		return strings.Join(f, "|")
	}
	text := "1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|" + flags(3, 4, 5) + "\n" +
		// "Misérables, Les" with é as the single Latin-1 byte 0xE9.
		"1300|Mis\xe9rables, Les (1995)|||http://x|" + flags(8) + "\n" +
		"267|unknown||||" + flags(0) + "\n"
	movies, st, err := ReadMovies(strings.NewReader(text), "u.item", ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Movie{
		{ID: 1, Name: "Toy Story", Genres: []string{"animation", "children", "comedy"}, ReleaseDate: "1995-01-01"},
		{ID: 267, Name: "unknown"},
		{ID: 1300, Name: "Misérables, Les", Genres: []string{"drama"}, ReleaseDate: "1995-01-01"},
	}
	if diff := cmp.Diff(want, movies); diff != "" {
		t.Fatalf("movies (-want +got):\n%s", diff)
	}
	if st.Format != FormatUItem {
		t.Fatalf("format = %s", st.Format)
	}
}

func TestUItemReleaseDateWinsOverTheTitleYear(t *testing.T) {
	text := "5|Copycat (1995)|17-Nov-1995||http://x|" + strings.Repeat("0|", 18) + "1\n"
	movies, _, err := ReadMovies(strings.NewReader(text), "u.item", ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := movies[0].ReleaseDate; got != "1995-11-17" {
		t.Fatalf("release date = %q, want 1995-11-17", got)
	}
	if got := movies[0].Genres; !cmp.Equal(got, []string{"western"}) {
		t.Fatalf("genres = %v, want [western]", got)
	}
}

func TestMalformedMoviesNameFileLineAndProblem(t *testing.T) {
	check := func(name, text, wantInError string) {
		t.Helper()
		_, _, err := ReadMovies(strings.NewReader(text), name, ReadOptions{})
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), wantInError) || !strings.Contains(err.Error(), name) {
			t.Fatalf("%q: error %v, want a malformed-line error naming %s and %q", text, err, name, wantInError)
		}
	}
	const h = "movieId,title,genres\n"
	check("movies.csv", h+"1,A (1995),Drama\n2,B, The (1995),Drama\n", "line 3: want 3 fields")
	check("movies.csv", h+"x,A (1995),Drama\n", `line 2: movie id "x"`)
	check("movies.csv", h+"1,,Drama\n", "line 2: the title is empty")
	check("movies.csv", h+"1,\"A (1995),Drama\n", "line 2")
	check("movies.csv", h+"1,A \xe9 (1995),Drama\n", "line 2: not valid UTF-8")
	check("u.item", "1|A (1995)|01-Jan-1995||x|0|1\n", "line 1: want 24 '|'-separated fields")
	check("u.item", "1|A (1995)|1995||x|"+strings.Repeat("0|", 18)+"1\n", `line 1: release date "1995"`)
	check("u.item", "1|A (1995)|||x|"+strings.Repeat("0|", 18)+"2\n", `line 1: genre flag 19 "2"`)
}

func TestSkipBadMoviesAndRepeatedIDs(t *testing.T) {
	const text = "movieId,title,genres\n1,A (1995),Drama\nx,B,Drama\n1,C (1996),Drama\n2,D,Comedy\n"
	movies, st, err := ReadMovies(strings.NewReader(text), "movies.csv", ReadOptions{SkipBad: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(movies) != 2 || movies[0].Name != "A" || st.Skipped != 1 || st.Duplicates != 1 {
		t.Fatalf("movies %+v, stats %+v; want A and D, 1 skipped, 1 duplicate", movies, st)
	}
}

func TestUnknownCatalogFormatFails(t *testing.T) {
	for _, text := range []string{"", "id;title\n1;x\n"} {
		if _, _, err := ReadMovies(strings.NewReader(text), "m", ReadOptions{}); err == nil {
			t.Fatalf("%q: no error", text)
		}
	}
}

func TestTitleOfIsAValidCatalogRecord(t *testing.T) {
	m := Movie{ID: 1, Name: "Toy Story", Genres: []string{"animation"}, ReleaseDate: "1995-01-01"}
	got := TitleOf(m)
	want := &schemas.Title{TitleID: "ml-m1", Name: "Toy Story", Genres: []string{"animation"}, ReleaseDate: "1995-01-01",
		DurationSec: int64(TitleDuration(1).Seconds()), Type: schemas.TitleFilm}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("title (-want +got):\n%s", diff)
	}
	if err := schemas.Validate(got, schemas.Limits{}, time.Now()); err != nil {
		t.Fatal(err)
	}
}

func TestMoviesThatCannotBeCatalogRecordsAreMalformed(t *testing.T) {
	text := "movieId,title,genres\n1,A," + strings.Repeat("g", 200) + "\n2,B," + strings.Repeat("x|", 40) + "y\n3,C,Drama\n"
	movies, st, err := ReadMovies(strings.NewReader(text), "movies.csv", ReadOptions{SkipBad: true})
	if err != nil || len(movies) != 1 || st.Skipped != 2 || !strings.Contains(st.Errors[0].Error(), "line 2: the movie does not fit Atlas's catalog limits") {
		t.Fatalf("movies %+v, stats %+v, error %v; want only C and two lines skipped", movies, st, err)
	}
}
