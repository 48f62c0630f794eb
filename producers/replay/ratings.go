package replay

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Format names a file layout that the readers understand.
type Format string

// The layouts of the MovieLens releases.
const (
	// FormatRatingsCSV is ratings.csv of the current MovieLens releases
	// (latest-small, 25m, 32m): the header userId,movieId,rating,timestamp
	// and comma-separated rows, ratings in half stars.
	FormatRatingsCSV Format = "ratings.csv"
	// FormatUData is u.data of ML-100k: user, item, rating, timestamp
	// separated by tabs, no header, whole stars. A header of four
	// tab-separated names starting with user, item, rating and timestamp
	// (RecBole's atomic .inter files: "user_id:token\titem_id:token\t…")
	// is accepted too.
	FormatUData Format = "u.data"
	// FormatRatingsDat is ratings.dat of ML-1M and ML-10M:
	// UserID::MovieID::Rating::Timestamp, no header.
	FormatRatingsDat Format = "ratings.dat"
	// FormatMoviesCSV is movies.csv: the header movieId,title,genres; titles
	// are quoted when they contain commas, genres are separated by '|' and
	// "(no genres listed)" means none.
	FormatMoviesCSV Format = "movies.csv"
	// FormatUItem is u.item of ML-100k: '|'-separated, Latin-1 encoded,
	// id|title|release date|video release date|IMDb URL and 19 genre flags.
	FormatUItem Format = "u.item"
)

// ErrMalformed is wrapped by every [*LineError]: a line of an input file does
// not have the shape its format requires.
var ErrMalformed = errors.New("malformed line")

// LineError says which line of which file is malformed and why.
type LineError struct {
	// File is the name the reader was given (usually the path).
	File string
	// Line is 1-based and counts the header.
	Line   int
	Reason string
}

func (e *LineError) Error() string {
	return fmt.Sprintf("cannot parse %s line %d: %s", e.File, e.Line, e.Reason)
}

// Unwrap lets errors.Is(err, ErrMalformed) match.
func (e *LineError) Unwrap() error { return ErrMalformed }

// ReadOptions tune the readers. The zero value fails on the first malformed
// line.
type ReadOptions struct {
	// SkipBad skips malformed lines instead of failing. They are counted in
	// [ReadStats.Skipped], and the first few errors kept in
	// [ReadStats.Errors]. An unreadable file or an unknown format still
	// fails.
	SkipBad bool
	// SizeHint is the input's size in bytes, if known; it lets
	// [ReadRatings] allocate the row slice once. Default 0: grow as needed.
	SizeHint int64
}

// maxKeptErrors bounds [ReadStats.Errors].
const maxKeptErrors = 10

// ReadStats describes what a reader did with its input.
type ReadStats struct {
	// Format is the detected layout.
	Format Format
	// Lines counts every line read, header and blank lines included.
	Lines int
	// Rows counts the rows returned.
	Rows int
	// Skipped counts malformed lines skipped with [ReadOptions.SkipBad].
	Skipped int
	// Duplicates counts rows dropped because an earlier row had the same
	// key: (time, user, item) for ratings, the id for movies.
	Duplicates int
	// Errors holds the first skipped lines' errors (at most 10).
	Errors []error
}

func (s *ReadStats) skip(err error) {
	s.Skipped++
	if len(s.Errors) < maxKeptErrors {
		s.Errors = append(s.Errors, err)
	}
}

// maxLineBytes bounds one input line; MovieLens lines are under 300 bytes.
const maxLineBytes = 64 << 10

// lineScanner reads lines, counting them, with CR LF and a leading UTF-8
// byte order mark removed.
type lineScanner struct {
	name string
	sc   *bufio.Scanner
	line int
	err  error
}

func newLineScanner(r io.Reader, name string) *lineScanner {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLineBytes)
	return &lineScanner{name: name, sc: sc}
}

// next returns the next line without its terminator; the slice is valid
// until the following call. At the end it returns false; err then says
// whether the input failed.
func (s *lineScanner) next() ([]byte, bool) {
	if !s.sc.Scan() {
		if err := s.sc.Err(); err != nil {
			if errors.Is(err, bufio.ErrTooLong) {
				s.err = &LineError{File: s.name, Line: s.line + 1, Reason: fmt.Sprintf("line is longer than %d bytes; is this a MovieLens file?", maxLineBytes)}
			} else {
				s.err = fmt.Errorf("cannot read %s after line %d: %w", s.name, s.line, err)
			}
		}
		return nil, false
	}
	s.line++
	b := s.sc.Bytes()
	if s.line == 1 {
		b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	}
	return bytes.TrimSuffix(b, []byte("\r")), true
}

func (s *lineScanner) fail(format string, args ...any) error {
	return &LineError{File: s.name, Line: s.line, Reason: fmt.Sprintf(format, args...)}
}

// RatingsReader streams interactions from a ratings file in the order of
// the file. Use [ReadRatings] or [LoadRatings] to get them in replay order.
// It is not safe for concurrent use.
type RatingsReader struct {
	ls     *lineScanner
	format Format
	sep    []byte
	// pending is the first data line of a header-less file, read while
	// detecting the format.
	pending []byte
	hasPend bool
}

// ratingsHeader is the header of FormatRatingsCSV.
const ratingsHeader = "userId,movieId,rating,timestamp"

// NewRatingsReader detects the format from the first line of r: a tab means
// [FormatUData], a comma [FormatRatingsCSV] (whose header is then required
// to be userId,movieId,rating,timestamp if the line is not a data row).
// name labels errors. It reads the first line, so an unreadable or empty
// input fails here.
func NewRatingsReader(r io.Reader, name string) (*RatingsReader, error) {
	rr := &RatingsReader{ls: newLineScanner(r, name)}
	var first []byte
	for {
		b, ok := rr.ls.next()
		if !ok {
			if rr.ls.err != nil {
				return nil, rr.ls.err
			}
			return nil, fmt.Errorf("cannot read ratings from %s: the file is empty", name)
		}
		if len(bytes.TrimSpace(b)) > 0 {
			first = b
			break
		}
	}
	switch {
	case bytes.Contains(first, []byte("::")):
		rr.format, rr.sep = FormatRatingsDat, []byte("::")
	case bytes.IndexByte(first, '\t') >= 0:
		rr.format, rr.sep = FormatUData, []byte{'\t'}
	case bytes.IndexByte(first, ',') >= 0:
		rr.format, rr.sep = FormatRatingsCSV, []byte{','}
	default:
		return nil, fmt.Errorf("cannot detect the format of %s: line %d has none of tabs (u.data), '::' (ratings.dat) or commas (ratings.csv): %q",
			name, rr.ls.line, truncate(first))
	}
	switch {
	case first[0] >= '0' && first[0] <= '9':
		rr.pending, rr.hasPend = append([]byte(nil), first...), true
	case rr.format == FormatRatingsCSV && string(bytes.TrimSpace(first)) == ratingsHeader:
	case rr.format == FormatUData && isTabHeader(first):
	case rr.format == FormatUData:
		return nil, rr.ls.fail("expected a data row or a header naming user, item, rating and timestamp, found %q", truncate(first))
	default:
		return nil, rr.ls.fail("expected the header %q or a data row, found %q", ratingsHeader, truncate(first))
	}
	return rr, nil
}

// isTabHeader reports whether line names the four columns of a
// tab-separated rating log: user, item, rating, timestamp, each name
// possibly followed by more (RecBole writes "user_id:token").
func isTabHeader(line []byte) bool {
	names := strings.Split(strings.ToLower(strings.TrimSpace(string(line))), "\t")
	if len(names) != 4 {
		return false
	}
	for i, want := range []string{"user", "item", "rating", "timestamp"} {
		if !strings.HasPrefix(names[i], want) {
			return false
		}
	}
	return true
}

// Format returns the detected format.
func (r *RatingsReader) Format() Format { return r.format }

// Line returns the number of lines read so far.
func (r *RatingsReader) Line() int { return r.ls.line }

// Read returns the next interaction. Blank lines are skipped. At the end of
// the input it returns io.EOF; a malformed line gives a [*LineError] and the
// reader can go on with the next line; a failing input gives another error
// after which Read keeps failing.
func (r *RatingsReader) Read() (Interaction, error) {
	for {
		var b []byte
		if r.hasPend {
			b, r.hasPend = r.pending, false
		} else {
			var ok bool
			if b, ok = r.ls.next(); !ok {
				if r.ls.err != nil {
					return Interaction{}, r.ls.err
				}
				return Interaction{}, io.EOF
			}
		}
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		return r.parse(b)
	}
}

// parse reads "user<sep>item<sep>rating<sep>timestamp".
func (r *RatingsReader) parse(b []byte) (Interaction, error) {
	var f [4][]byte
	rest := b
	for i := range f {
		var found bool
		if i < 3 {
			f[i], rest, found = bytes.Cut(rest, r.sep)
			if !found {
				return Interaction{}, r.ls.fail("want 4 fields (user, item, rating, timestamp), found %d: %q", i+1, truncate(b))
			}
		} else {
			f[i] = rest
			if bytes.Contains(rest, r.sep) {
				return Interaction{}, r.ls.fail("want 4 fields (user, item, rating, timestamp), found more: %q", truncate(b))
			}
		}
		f[i] = bytes.TrimSpace(f[i])
	}
	user, err := parseID(f[0])
	if err != nil {
		return Interaction{}, r.ls.fail("user %q: %v", truncate(f[0]), err)
	}
	item, err := parseID(f[1])
	if err != nil {
		return Interaction{}, r.ls.fail("item %q: %v", truncate(f[1]), err)
	}
	half, err := parseHalfStars(f[2])
	if err != nil {
		return Interaction{}, r.ls.fail("rating %q: %v", truncate(f[2]), err)
	}
	ts, err := strconv.ParseUint(string(f[3]), 10, 32)
	if err != nil || ts == 0 {
		return Interaction{}, r.ls.fail("timestamp %q: want Unix seconds between 1 and %d", truncate(f[3]), uint32(math.MaxUint32))
	}
	return Interaction{Time: uint32(ts), User: user, Item: item, HalfStars: half}, nil
}

// parseID reads a decimal id that fits 32 bits.
func parseID(b []byte) (uint32, error) {
	v, err := strconv.ParseUint(string(b), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("want a whole number between 0 and %d", uint32(math.MaxUint32))
	}
	return uint32(v), nil
}

// parseHalfStars reads a rating of 0.5 to 5 stars in steps of 0.5.
func parseHalfStars(b []byte) (uint8, error) {
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, errors.New("want a number of stars from 0.5 to 5")
	}
	h := v * 2
	if h != math.Trunc(h) || h < 1 || h > 10 {
		return 0, errors.New("want 0.5 to 5 stars in steps of 0.5")
	}
	return uint8(h), nil
}

// truncate bounds quoted input in error messages.
func truncate(b []byte) string {
	const max = 80
	if len(b) <= max {
		return string(b)
	}
	return string(b[:max]) + "…"
}

// ReadRatings reads every interaction of r, detecting its format (see
// [NewRatingsReader]), and returns them in replay order ([Order]): sorted by
// (time, user, item), repeats of a key dropped and counted in
// [ReadStats.Duplicates]. The first malformed line fails the read unless
// opts.SkipBad is set.
//
// All rows are held in memory: 16 bytes each, so MovieLens-small takes
// 1.6 MB and ml-25m about 400 MB (plus growth unless opts.SizeHint is set).
func ReadRatings(r io.Reader, name string, opts ReadOptions) ([]Interaction, ReadStats, error) {
	var st ReadStats
	rr, err := NewRatingsReader(r, name)
	if err != nil {
		return nil, st, err
	}
	st.Format = rr.Format()
	var rows []Interaction
	if opts.SizeHint > 0 {
		// The shortest rows of ratings.csv are about 20 bytes.
		rows = make([]Interaction, 0, opts.SizeHint/20+16)
	}
	for {
		in, err := rr.Read()
		if err == io.EOF {
			break
		}
		var le *LineError
		if errors.As(err, &le) && opts.SkipBad {
			st.skip(err)
			continue
		}
		if err != nil {
			st.Lines = rr.Line()
			return nil, st, err
		}
		rows = append(rows, in)
	}
	st.Lines = rr.Line()
	rows, st.Duplicates = Order(rows)
	st.Rows = len(rows)
	return rows, st, nil
}

// LoadRatings opens path and calls [ReadRatings] with its size as the hint.
func LoadRatings(path string, opts ReadOptions) ([]Interaction, ReadStats, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, ReadStats{}, fmt.Errorf("cannot open ratings: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && opts.SizeHint == 0 {
		opts.SizeHint = fi.Size()
	}
	return ReadRatings(bufio.NewReaderSize(f, 1<<20), path, opts)
}

// FindMovies returns the catalog file next to a ratings file: movies.csv,
// else u.item, in the same folder. ok is false when neither exists.
func FindMovies(ratingsPath string) (path string, ok bool) {
	dir := filepath.Dir(ratingsPath)
	for _, name := range []string{"movies.csv", "u.item"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, true
		}
	}
	return "", false
}
