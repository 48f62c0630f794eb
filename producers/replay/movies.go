package replay

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/atlas-stream/atlas/schemas"
)

// Movie is one title of a MovieLens catalog.
type Movie struct {
	ID uint32
	// Name is the title as the file has it, UTF-8, without the trailing
	// release year: "American President, The" (MovieLens moves articles to
	// the end; replay keeps them there).
	Name string
	// Genres are lower case, in the file's order ("sci-fi", "children");
	// nil when none are listed.
	Genres []string
	// ReleaseDate is YYYY-MM-DD, or "" when unknown: u.item's release date
	// if it has one, else January 1st of the year in the title.
	ReleaseDate string
}

// moviesHeader is the header of FormatMoviesCSV.
const moviesHeader = "movieId,title,genres"

// uItemGenres are the 19 genre flags of u.item, in column order, named as
// movies.csv names them (lower case) so that both catalogs share one
// vocabulary. The first flag, "unknown", means no genre.
var uItemGenres = [19]string{"", "action", "adventure", "animation", "children", "comedy", "crime",
	"documentary", "drama", "fantasy", "film-noir", "horror", "musical", "mystery", "romance", "sci-fi",
	"thriller", "war", "western"}

// yearSuffix matches the release year at the end of a MovieLens title:
// "(1995)", or "(2006–2007)" for series.
var yearSuffix = regexp.MustCompile(`\s*\((\d{4})(?:\s*[-–]\s*\d{4})?\)\s*$`)

// splitYear returns a title without its trailing year, and the year (0 when
// there is none).
func splitYear(title string) (string, int) {
	title = strings.TrimSpace(title)
	m := yearSuffix.FindStringSubmatchIndex(title)
	if m == nil {
		return title, 0
	}
	year, _ := strconv.Atoi(title[m[2]:m[3]])
	name := strings.TrimSpace(title[:m[0]])
	if name == "" {
		return title, year
	}
	return name, year
}

func yearDate(year int) string {
	if year <= 0 {
		return ""
	}
	return fmt.Sprintf("%04d-01-01", year)
}

// ReadMovies reads a catalog, detecting its format from the first line:
// the header movieId,title,genres means [FormatMoviesCSV], a line of '|'
// separated fields [FormatUItem]. Movies come back sorted by id; a repeated
// id keeps the first and is counted in [ReadStats.Duplicates]. name labels
// errors.
func ReadMovies(r io.Reader, name string, opts ReadOptions) ([]Movie, ReadStats, error) {
	br := bufio.NewReader(r)
	head, err := br.Peek(512)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return nil, ReadStats{}, fmt.Errorf("cannot read movies from %s: %w", name, err)
	}
	head = bytes.TrimPrefix(head, []byte("\xef\xbb\xbf"))
	first, _, _ := bytes.Cut(head, []byte("\n"))
	first = bytes.TrimSpace(first)
	var movies []Movie
	var st ReadStats
	switch {
	case len(head) == 0:
		return nil, st, fmt.Errorf("cannot read movies from %s: the file is empty", name)
	case bytes.HasPrefix(first, []byte(moviesHeader)):
		st.Format = FormatMoviesCSV
		movies, err = readMoviesCSV(br, name, opts, &st)
	case bytes.Count(first, []byte("|")) >= 5:
		st.Format = FormatUItem
		movies, err = readUItem(br, name, opts, &st)
	default:
		return nil, st, fmt.Errorf("cannot detect the format of %s: line 1 is neither the movies.csv header %q nor a '|'-separated u.item row: %q",
			name, moviesHeader, truncate(first))
	}
	if err != nil {
		return nil, st, err
	}
	slices.SortStableFunc(movies, func(a, b Movie) int { return cmp.Compare(a.ID, b.ID) })
	n := len(movies)
	movies = slices.CompactFunc(movies, func(a, b Movie) bool { return a.ID == b.ID })
	st.Duplicates = n - len(movies)
	st.Rows = len(movies)
	return movies, st, nil
}

// LoadMovies opens path and calls [ReadMovies].
func LoadMovies(path string, opts ReadOptions) ([]Movie, ReadStats, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, ReadStats{}, fmt.Errorf("cannot open movies: %w", err)
	}
	defer f.Close()
	return ReadMovies(f, path, opts)
}

func readMoviesCSV(r io.Reader, name string, opts ReadOptions, st *ReadStats) ([]Movie, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // checked below, with a better message
	var movies []Movie
	header := true
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		var line int
		if err == nil {
			line, _ = cr.FieldPos(0)
			st.Lines = line
		}
		var lerr error
		var pe *csv.ParseError
		switch {
		case errors.As(err, &pe):
			st.Lines = pe.Line
			lerr = &LineError{File: name, Line: pe.StartLine, Reason: pe.Err.Error()}
		case err != nil:
			return nil, fmt.Errorf("cannot read %s after line %d: %w", name, st.Lines, err)
		case header:
			header = false
			continue
		default:
			var m Movie
			m, lerr = parseMovieCSV(rec)
			if lerr == nil {
				movies = append(movies, m)
				continue
			}
			lerr = &LineError{File: name, Line: line, Reason: lerr.Error()}
		}
		if !opts.SkipBad {
			return nil, lerr
		}
		st.skip(lerr)
	}
	return movies, nil
}

func parseMovieCSV(rec []string) (Movie, error) {
	if len(rec) != 3 {
		return Movie{}, fmt.Errorf("want 3 fields (movieId, title, genres), found %d (a title with a comma must be quoted)", len(rec))
	}
	id, err := parseID([]byte(strings.TrimSpace(rec[0])))
	if err != nil {
		return Movie{}, fmt.Errorf("movie id %q: %v", truncate([]byte(rec[0])), err)
	}
	if !utf8.ValidString(rec[1]) || !utf8.ValidString(rec[2]) {
		return Movie{}, errors.New("not valid UTF-8 (movies.csv is UTF-8; u.item is Latin-1)")
	}
	if strings.TrimSpace(rec[1]) == "" {
		return Movie{}, errors.New("the title is empty")
	}
	name, year := splitYear(rec[1])
	m := Movie{ID: id, Name: name, ReleaseDate: yearDate(year)}
	if g := strings.TrimSpace(rec[2]); g != "" && g != "(no genres listed)" {
		for _, s := range strings.Split(g, "|") {
			if s = strings.ToLower(strings.TrimSpace(s)); s != "" {
				m.Genres = append(m.Genres, s)
			}
		}
	}
	return m, fits(m)
}

// fits checks that a movie makes a valid catalog record, so that a catalog
// that reads without error also sends without error.
func fits(m Movie) error {
	if err := schemas.Validate(TitleOf(m), schemas.DefaultLimits(), time.Time{}); err != nil {
		return fmt.Errorf("the movie does not fit Atlas's catalog limits: %v", err)
	}
	return nil
}

func readUItem(r io.Reader, name string, opts ReadOptions, st *ReadStats) ([]Movie, error) {
	ls := newLineScanner(r, name)
	var movies []Movie
	for {
		b, ok := ls.next()
		if !ok {
			break
		}
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		m, err := parseUItem(b)
		if err == nil {
			movies = append(movies, m)
			continue
		}
		lerr := &LineError{File: name, Line: ls.line, Reason: err.Error()}
		if !opts.SkipBad {
			st.Lines = ls.line
			return nil, lerr
		}
		st.skip(lerr)
	}
	st.Lines = ls.line
	if ls.err != nil {
		return nil, ls.err
	}
	return movies, nil
}

// parseUItem reads one u.item row:
// id|title|release date|video release date|IMDb URL|19 genre flags.
func parseUItem(b []byte) (Movie, error) {
	f := bytes.Split(b, []byte("|"))
	if len(f) != 5+len(uItemGenres) {
		return Movie{}, fmt.Errorf("want %d '|'-separated fields (id, title, release date, video release date, URL, 19 genre flags), found %d",
			5+len(uItemGenres), len(f))
	}
	id, err := parseID(bytes.TrimSpace(f[0]))
	if err != nil {
		return Movie{}, fmt.Errorf("movie id %q: %v", truncate(f[0]), err)
	}
	title := latin1(f[1])
	if strings.TrimSpace(title) == "" {
		return Movie{}, errors.New("the title is empty")
	}
	name, year := splitYear(title)
	m := Movie{ID: id, Name: name, ReleaseDate: yearDate(year)}
	if d := strings.TrimSpace(string(f[2])); d != "" {
		t, err := time.Parse("02-Jan-2006", d)
		if err != nil {
			return Movie{}, fmt.Errorf("release date %q: want DD-Mon-YYYY", truncate(f[2]))
		}
		m.ReleaseDate = t.Format(time.DateOnly)
	}
	for i, flag := range f[5:] {
		switch string(bytes.TrimSpace(flag)) {
		case "0":
		case "1":
			if g := uItemGenres[i]; g != "" {
				m.Genres = append(m.Genres, g)
			}
		default:
			return Movie{}, fmt.Errorf("genre flag %d %q: want 0 or 1", i+1, truncate(flag))
		}
	}
	return m, fits(m)
}

// latin1 decodes ISO 8859-1 bytes: each byte is the code point of the same
// value.
func latin1(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b) + 8)
	for _, c := range b {
		sb.WriteRune(rune(c))
	}
	return sb.String()
}

// TitleOf returns the catalog record of m: TitleID "ml-m<id>", the name,
// the genres, the release date, type film, and the duration of
// [TitleDuration]. Country of origin is unknown (MovieLens has none).
func TitleOf(m Movie) *schemas.Title {
	return &schemas.Title{
		TitleID:     TitleID(m.ID),
		Name:        m.Name,
		Genres:      m.Genres,
		ReleaseDate: m.ReleaseDate,
		DurationSec: int64(TitleDuration(m.ID) / time.Second),
		Type:        schemas.TitleFilm,
	}
}
