package warehouse

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

//go:embed queries/*.sql
var queryFiles embed.FS

// ArgError is the error of [Query.ParseArgs]: a parameter value that does
// not parse, is out of range, or is missing. cmd/atlas reports it as a
// usage error.
type ArgError struct {
	Param  string // the flag, without dashes
	Value  string // as given; empty when the flag is missing
	Reason string
}

func (e *ArgError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("--%s: %s", e.Param, e.Reason)
	}
	return fmt.Sprintf("invalid --%s %q: %s", e.Param, e.Value, e.Reason)
}

// ParamKind says how a parameter's text is parsed and bound.
type ParamKind int

// Parameter kinds.
const (
	// ParamTime is RFC 3339 ("2026-03-14T10:00:00Z"), a date
	// ("2026-03-14", midnight UTC), "now", or a duration relative to now
	// ("-24h", "-7d", "-90m"); bound as a DateTime (whole seconds, UTC).
	ParamTime ParamKind = iota
	// ParamCountry is an ISO 3166-1 alpha-2 code, any case; bound upper
	// case as a String. Empty means every country.
	ParamCountry
	// ParamID is an identifier (a title id, a row name): valid UTF-8, at
	// most 128 bytes, no control characters; bound as a String.
	ParamID
	// ParamCount is a whole number from 1 to 100,000; bound as a UInt64.
	ParamCount
	// ParamDuration is a Go duration ("1h", "15m") or days ("1d"), a whole
	// number of minutes, 0 for none; bound as UInt64 seconds.
	ParamDuration
	// ParamBool is "true" or "false"; it only changes the query's shape.
	ParamBool
)

// Param is one flag of a named query.
type Param struct {
	// Name is the flag's name ("min-starts"); the SQL binds it as
	// @min_starts.
	Name string
	Kind ParamKind
	// Default is used when the flag is not given, written as on the
	// command line; "" means empty (no filter) for strings and 0 or false
	// otherwise.
	Default string
	// Required parameters have no default and must be given.
	Required bool
	Usage    string
}

// ColumnKind says how a result column is shown.
type ColumnKind int

// Column kinds.
const (
	ColText    ColumnKind = iota
	ColCount              // whole number, thousands separated in tables
	ColNumber             // real number, two decimals in tables
	ColPercent            // a share from 0 to 1, a percentage in tables
	ColFactor             // a ratio around 1, "1.50x" in tables
	ColTime               // DateTime, UTC
	ColList               // array
	ColFlag               // 0 or 1, "yes"/"no" in tables
)

// Column documents one result column of a named query.
type Column struct {
	Name string
	Kind ColumnKind
	Doc  string
	// Null is what a table shows for NULL (for example "new" for the
	// growth of a title without a previous period); JSON shows null and
	// CSV an empty cell.
	Null string
}

// Query is a named content-strategy query: SQL next to the DDL, run by
// `atlas query NAME` as the read-only user.
type Query struct {
	Name  string
	Short string // one line for `atlas query --list`
	Long  string // what it computes and how to read it
	// Params are its flags, in the order --help shows them.
	Params []Param
	// Columns documents every column the query can return; some appear
	// only with some flags (quality's bucket and country).
	Columns []Column

	file string // queries/<file>.sql, a text/template over the shape flags
}

// Args are parsed parameter values by parameter name: time.Time (UTC),
// string, uint64, time.Duration or bool. Build them with [Query.ParseArgs].
type Args map[string]any

// Shared parameters.
var (
	fromParam = func(def string) Param {
		return Param{Name: "from", Kind: ParamTime, Default: def,
			Usage: "start of the period, inclusive: RFC 3339, a date, \"now\" or relative (-24h, -7d)"}
	}
	toParam      = Param{Name: "to", Kind: ParamTime, Default: "now", Usage: "end of the period, exclusive (same forms as --from)"}
	countryParam = Param{Name: "country", Kind: ParamCountry, Usage: "only this country (ISO 3166-1 alpha-2); default every country"}
	limitParam   = func(def string) Param {
		return Param{Name: "limit", Kind: ParamCount, Default: def, Usage: "at most this many rows"}
	}
)

var registry = []Query{
	{
		Name:  "trending",
		Short: "titles whose starts grew most against the previous period of the same length",
		Long: `Trending titles: starts and distinct viewers of each title in [from, to)
against the previous period of the same length, [from - (to - from), from),
and the growth of starts between them. Titles without starts in the previous
period come first (growth "new"), then by growth, then by starts. Titles with
fewer than --min-starts starts in the period are left out, so that a title
going from 1 start to 3 does not top the list.

A window counts when its start (a whole minute) is in the period.`,
		Params: []Param{fromParam("-24h"), toParam, countryParam, limitParam("20"),
			{Name: "min-starts", Kind: ParamCount, Default: "10", Usage: "leave out titles with fewer starts in the period"}},
		Columns: []Column{
			{Name: "title_id", Kind: ColText, Doc: "the title"},
			{Name: "starts", Kind: ColCount, Doc: "playback starts in the period"},
			{Name: "prev_starts", Kind: ColCount, Doc: "playback starts in the previous period"},
			{Name: "viewers", Kind: ColCount, Doc: "distinct profiles that watched in the period"},
			{Name: "prev_viewers", Kind: ColCount, Doc: "distinct profiles that watched in the previous period"},
			{Name: "growth", Kind: ColFactor, Null: "new", Doc: "starts / prev_starts; null (\"new\") without previous starts"},
		},
		file: "trending",
	},
	{
		Name:  "completion",
		Short: "completion rate and drop-off deciles by title",
		Long: `Completion and drop-off by title over the windows in [from, to): how many
starts reached the end, and where the others stopped, by decile of the
title's duration (0-10%, 10-20%, … 90-100%). Sorted by starts.

A start and its completion can fall in different windows, so near the edges
of the period completion_rate can be off, and can exceed 1 for a very short
period.`,
		Params: []Param{fromParam("-24h"), toParam, countryParam, limitParam("20"),
			{Name: "title", Kind: ParamID, Usage: "only this title"}},
		Columns: []Column{
			{Name: "title_id", Kind: ColText, Doc: "the title"},
			{Name: "starts", Kind: ColCount, Doc: "playback starts"},
			{Name: "completes", Kind: ColCount, Doc: "playbacks that reached the end"},
			{Name: "completion_rate", Kind: ColPercent, Doc: "completes / starts"},
			{Name: "abandons", Kind: ColCount, Doc: "stops before the end (the sum of dropoff)"},
			{Name: "abandon_rate", Kind: ColPercent, Doc: "abandons / starts"},
			{Name: "dropoff", Kind: ColList, Doc: "stops before the end per decile of the duration, 0-10% first"},
			{Name: "peak_dropoff", Kind: ColText, Doc: "the decile with the most stops, e.g. \"10-20%\"; empty without stops"},
		},
		file: "completion",
	},
	{
		Name:  "genre-gap",
		Short: "genre demand (watch time) vs catalog supply per country: underserved genres",
		Long: `Genre demand against catalog supply, per country, over the windows in
[from, to). Demand share: the share of the country's watch time spent on
titles of the genre. Supply share: the share of the catalog's titles that
have the genre. underserved = demand share / supply share: above 1, viewers
watch more of the genre than the catalog offers. Sorted by country, then
most underserved first; --limit applies per country.

Only titles in the catalog count, on both sides, and a title counts fully
for each of its genres, so shares over genres add up to more than 1. The
catalog carries no per-country availability: supply is the whole catalog.`,
		Params: []Param{fromParam("-24h"), toParam, countryParam, limitParam("10")},
		Columns: []Column{
			{Name: "country", Kind: ColText, Doc: "viewers' country"},
			{Name: "genre", Kind: ColText, Doc: "a genre of the catalog"},
			{Name: "watch_hours", Kind: ColNumber, Doc: "hours watched of titles with the genre"},
			{Name: "demand_share", Kind: ColPercent, Doc: "watch time on the genre / the country's watch time on catalog titles"},
			{Name: "titles", Kind: ColCount, Doc: "catalog titles with the genre"},
			{Name: "supply_share", Kind: ColPercent, Doc: "titles / all catalog titles"},
			{Name: "underserved", Kind: ColFactor, Doc: "demand_share / supply_share"},
		},
		file: "genre_gap",
	},
	{
		Name:  "overlap",
		Short: "audience overlap between two titles (--a, --b): viewers of each, of both, Jaccard",
		Long: `Audience overlap between titles --a and --b over the windows in [from,
to): distinct viewers of each, of both, and the Jaccard index (viewers of
both / viewers of either). Exact: counted from the profile hashes of the
rows, not estimated.`,
		Params: []Param{fromParam("-24h"), toParam, countryParam,
			{Name: "a", Kind: ParamID, Required: true, Usage: "first title id"},
			{Name: "b", Kind: ParamID, Required: true, Usage: "second title id"}},
		Columns: []Column{
			{Name: "a", Kind: ColText, Doc: "first title"},
			{Name: "b", Kind: ColText, Doc: "second title"},
			{Name: "viewers_a", Kind: ColCount, Doc: "distinct profiles that watched a"},
			{Name: "viewers_b", Kind: ColCount, Doc: "distinct profiles that watched b"},
			{Name: "viewers_both", Kind: ColCount, Doc: "profiles that watched both"},
			{Name: "jaccard", Kind: ColPercent, Doc: "viewers_both / viewers of either"},
			{Name: "a_also_b", Kind: ColPercent, Doc: "share of a's viewers who also watched b"},
			{Name: "b_also_a", Kind: ColPercent, Doc: "share of b's viewers who also watched a"},
		},
		file: "overlap",
	},
	{
		Name:  "early-hit",
		Short: "first-72-hour audience of new titles vs the median of their genre",
		Long: `Early hit signal for titles whose first start is in [from, to): distinct
viewers in the 72 hours from the title's first start (the first minute with
a start, over all history before --to), against the median of the titles
sharing its first genre whose 72 hours ended before --to. ratio above 1:
the title draws more viewers early than a typical title of its genre.
partial marks titles whose own 72 hours are not over yet (their count can
only grow). Sorted by ratio. With --country, starts and viewers of that
country only. It reads all history before --to.`,
		Params: []Param{fromParam("-7d"), toParam, countryParam, limitParam("20")},
		Columns: []Column{
			{Name: "title_id", Kind: ColText, Doc: "the title"},
			{Name: "genre", Kind: ColText, Doc: "its first genre in the catalog"},
			{Name: "first_start", Kind: ColTime, Doc: "window of its first start"},
			{Name: "viewers_72h", Kind: ColCount, Doc: "distinct profiles in the 72 h from first_start"},
			{Name: "genre_median", Kind: ColNumber, Doc: "median viewers_72h of the genre's titles with 72 complete hours"},
			{Name: "peers", Kind: ColCount, Doc: "titles in that median"},
			{Name: "ratio", Kind: ColFactor, Null: "-", Doc: "viewers_72h / genre_median; null without peers"},
			{Name: "partial", Kind: ColFlag, Doc: "1 when the title's 72 hours are not over at --to"},
		},
		file: "early_hit",
	},
	{
		Name:  "funnel",
		Short: "browse funnel by row and artwork: impressions, selects, plays",
		Long: `The browse funnel by UI row and artwork over the windows in [from, to):
impressions and selects from browse events, plays from playback starts
launched from that row and artwork (an empty row and artwork collect the
plays that did not come from browsing). Sorted by impressions. Funnel rows
carry no country.`,
		Params: []Param{fromParam("-24h"), toParam, limitParam("20"),
			{Name: "row", Kind: ParamID, Usage: "only this UI row"}},
		Columns: []Column{
			{Name: "row", Kind: ColText, Doc: "UI row"},
			{Name: "artwork_id", Kind: ColText, Doc: "artwork shown"},
			{Name: "impressions", Kind: ColCount, Doc: "times shown"},
			{Name: "selects", Kind: ColCount, Doc: "times selected"},
			{Name: "plays", Kind: ColCount, Doc: "playback starts launched from it"},
			{Name: "select_rate", Kind: ColPercent, Doc: "selects / impressions"},
			{Name: "play_rate", Kind: ColPercent, Doc: "plays / selects"},
			{Name: "conversion", Kind: ColPercent, Doc: "plays / impressions"},
		},
		file: "funnel",
	},
	{
		Name:  "quality",
		Short: "streaming quality by CDN × ISP [× country] [× time bucket]",
		Long: `Streaming quality per CDN and ISP over the windows in [from, to), split by
country with --by-country (or when --country is given) and by time with
--bucket (buckets aligned to --from; --limit then applies per bucket).
Sorted by sessions.

Rates are per playback session, as the quality rows count sessions, not
watch time: the rebuffer ratio is rebuffers per session (and stalled
seconds per session), the start failure rate is start failures per session,
the error rate errors per session.`,
		Params: []Param{fromParam("-24h"), toParam, countryParam, limitParam("20"),
			{Name: "by-country", Kind: ParamBool, Default: "false", Usage: "one row per country too"},
			{Name: "bucket", Kind: ParamDuration, Default: "0", Usage: "split the period into buckets of this length (e.g. 1h); 0: one bucket"}},
		Columns: []Column{
			{Name: "bucket", Kind: ColTime, Doc: "start of the time bucket (with --bucket)"},
			{Name: "cdn", Kind: ColText, Doc: "CDN"},
			{Name: "isp", Kind: ColText, Doc: "viewer's ISP"},
			{Name: "country", Kind: ColText, Doc: "viewers' country (with --by-country or --country)"},
			{Name: "sessions", Kind: ColCount, Doc: "playback sessions"},
			{Name: "rebuffers", Kind: ColCount, Doc: "rebuffering stalls"},
			{Name: "rebuffers_per_session", Kind: ColNumber, Doc: "rebuffers / sessions: the rebuffer ratio"},
			{Name: "rebuffer_s_per_session", Kind: ColNumber, Doc: "stalled seconds / sessions"},
			{Name: "start_failures", Kind: ColCount, Doc: "sessions that failed before playing"},
			{Name: "start_failure_rate", Kind: ColPercent, Doc: "start_failures / sessions"},
			{Name: "errors", Kind: ColCount, Doc: "playback errors"},
			{Name: "error_rate", Kind: ColPercent, Doc: "errors / sessions"},
			{Name: "mean_bitrate_kbps", Kind: ColNumber, Doc: "mean of the bitrate samples, kbit/s"},
		},
		file: "quality",
	},
}

var loadQueryTemplates = sync.OnceValues(func() (map[string]*template.Template, error) {
	out := make(map[string]*template.Template, len(registry))
	for _, q := range registry {
		src, err := queryFiles.ReadFile("queries/" + q.file + ".sql")
		if err != nil {
			return nil, fmt.Errorf("BUG: cannot read the SQL of query %s: %w", q.Name, err)
		}
		t, err := template.New(q.file).Option("missingkey=zero").Parse(string(src))
		if err != nil {
			return nil, fmt.Errorf("BUG: cannot parse the SQL of query %s: %w", q.Name, err)
		}
		out[q.Name] = t
	}
	return out, nil
})

// Queries returns the named queries, in the order `atlas query --list`
// shows them. The slice is the caller's.
func Queries() []Query {
	out := make([]Query, len(registry))
	copy(out, registry)
	return out
}

// LookupQuery returns the named query called name.
func LookupQuery(name string) (Query, bool) {
	for _, q := range registry {
		if q.Name == name {
			return q, true
		}
	}
	return Query{}, false
}

// Param returns the query's parameter called name.
func (q Query) Param(name string) (Param, bool) {
	for _, p := range q.Params {
		if p.Name == name {
			return p, true
		}
	}
	return Param{}, false
}

// column returns the documentation of a result column; an undocumented one
// is shown as text.
func (q Query) column(name string) Column {
	for _, c := range q.Columns {
		if c.Name == name {
			return c
		}
	}
	return Column{Name: name, Kind: ColText}
}

// Limits of the values ParseArgs accepts.
const (
	maxCount   = 100_000
	maxIDBytes = 128
	maxBuckets = 10_000
)

var countryCode = regexp.MustCompile(`^[A-Z]{2}$`)

// ParseArgs parses the query's parameters from their text (by parameter
// name; absent ones take their defaults) relative to now, and checks them:
// from before to, a bucket no shorter than a minute and no more than 10,000
// buckets in the period. Unknown names are an error. Every error is an
// *ArgError.
func (q Query) ParseArgs(text map[string]string, now time.Time) (Args, error) {
	for name := range text {
		if _, ok := q.Param(name); !ok {
			return nil, &ArgError{Param: name, Reason: "query " + q.Name + " has no such parameter"}
		}
	}
	args := make(Args, len(q.Params))
	for _, p := range q.Params {
		s, given := text[p.Name]
		if !given {
			if p.Required {
				return nil, &ArgError{Param: p.Name, Reason: "required"}
			}
			s = p.Default
		}
		v, err := parseParam(p, s, now)
		if err != nil {
			return nil, &ArgError{Param: p.Name, Value: s, Reason: err.Error()}
		}
		args[p.Name] = v
	}
	from, hasFrom := args["from"].(time.Time)
	to, hasTo := args["to"].(time.Time)
	if hasFrom && hasTo && !from.Before(to) {
		return nil, &ArgError{Param: "from", Value: text["from"],
			Reason: fmt.Sprintf("%s is not before --to %s", from.Format(time.RFC3339), to.Format(time.RFC3339))}
	}
	if bucket, ok := args["bucket"].(time.Duration); ok && bucket > 0 && hasFrom && hasTo {
		if n := to.Sub(from) / bucket; n > maxBuckets {
			return nil, &ArgError{Param: "bucket", Value: text["bucket"],
				Reason: fmt.Sprintf("makes %d buckets between --from and --to, more than %d", n, maxBuckets)}
		}
	}
	return args, nil
}

func parseParam(p Param, s string, now time.Time) (any, error) {
	switch p.Kind {
	case ParamTime:
		return ParseTime(s, now)
	case ParamCountry:
		c := strings.ToUpper(strings.TrimSpace(s))
		if c != "" && !countryCode.MatchString(c) {
			return nil, errors.New("want an ISO 3166-1 alpha-2 country code such as DE")
		}
		return c, nil
	case ParamID:
		switch {
		case len(s) > maxIDBytes:
			return nil, fmt.Errorf("longer than %d bytes", maxIDBytes)
		case !utf8.ValidString(s):
			return nil, errors.New("not valid UTF-8")
		case strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }):
			return nil, errors.New("contains a control character")
		}
		return s, nil
	case ParamCount:
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil || n < 1 || n > maxCount {
			return nil, fmt.Errorf("want a whole number from 1 to %d", maxCount)
		}
		return n, nil
	case ParamDuration:
		d, err := parseDuration(s)
		switch {
		case err != nil:
			return nil, err
		case d < 0:
			return nil, errors.New("must not be negative")
		case d%time.Minute != 0:
			return nil, errors.New("want a whole number of minutes, the windows' size")
		}
		return d, nil
	case ParamBool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, errors.New("want true or false")
		}
		return b, nil
	}
	return nil, fmt.Errorf("BUG: parameter %s has unknown kind %d", p.Name, p.Kind)
}

// ParseTime reads a --from or --to value: RFC 3339 ("2026-03-14T10:00:00Z",
// "2026-03-14T12:00:00+02:00"), a date ("2026-03-14", midnight UTC),
// "now", or a signed duration relative to now ("-24h", "-7d", "-1h30m",
// "+15m"; d is 24 h). The result is UTC, truncated to the second.
func ParseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	var t time.Time
	switch {
	case s == "now":
		t = now
	case strings.HasPrefix(s, "-") || strings.HasPrefix(s, "+"):
		d, err := parseDuration(s[1:])
		if err != nil {
			return time.Time{}, err
		}
		if s[0] == '-' {
			d = -d
		}
		t = now.Add(d)
	default:
		var err error
		if t, err = time.Parse(time.RFC3339, s); err != nil {
			if t, err = time.Parse(time.DateOnly, s); err != nil {
				return time.Time{}, errors.New(`want RFC 3339 (2026-03-14T10:00:00Z), a date (2026-03-14), "now" or a relative time (-24h, -7d)`)
			}
		}
	}
	t = t.UTC().Truncate(time.Second)
	if t.Unix() < 0 || t.Unix() > maxDateTime {
		return time.Time{}, errors.New("outside 1970..2106, the range of DateTime")
	}
	return t, nil
}

const maxDateTime = 1<<32 - 1

// parseDuration is time.ParseDuration with a "d" unit of 24 hours ("7d",
// "1d12h").
func parseDuration(s string) (time.Duration, error) {
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.ParseUint(s[:i], 10, 16)
		if err != nil {
			return 0, fmt.Errorf("cannot parse %q as a duration", s)
		}
		days = time.Duration(n) * 24 * time.Hour
		s = s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("cannot parse %q as a duration (e.g. 90m, 24h, 7d)", s)
	}
	return days + d, nil
}

// SQL renders the query's SQL for args and returns it with the arguments
// to bind, one clickhouse.Named per parameter (@name in the SQL, dashes
// as underscores). User-supplied text never reaches the SQL text: the
// template sees only booleans (has_<param> for non-empty strings, the
// bool parameters, bucket for a non-zero bucket), and values go through
// clickhouse-go's binding, which quotes and escapes them.
func (q Query) SQL(args Args) (string, []any, error) {
	tmpls, err := loadQueryTemplates()
	if err != nil {
		return "", nil, err
	}
	tmpl, ok := tmpls[q.Name]
	if !ok {
		return "", nil, fmt.Errorf("BUG: query %s has no SQL", q.Name)
	}
	shape := make(map[string]bool)
	var named []any
	for _, p := range q.Params {
		v, ok := args[p.Name]
		if !ok {
			return "", nil, fmt.Errorf("BUG: query %s run without --%s; use ParseArgs", q.Name, p.Name)
		}
		key := strings.ReplaceAll(p.Name, "-", "_")
		switch v := v.(type) {
		case string:
			shape["has_"+key] = v != ""
			named = append(named, clickhouse.Named(key, v))
		case time.Time:
			named = append(named, clickhouse.Named(key, v.UTC()))
		case uint64:
			named = append(named, clickhouse.Named(key, v))
		case time.Duration:
			shape[key] = v > 0
			named = append(named, clickhouse.Named(key, uint64(v/time.Second)))
		case bool:
			shape[key] = v
		default:
			return "", nil, fmt.Errorf("BUG: query %s: --%s has a value of type %T", q.Name, p.Name, v)
		}
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, shape); err != nil {
		return "", nil, fmt.Errorf("BUG: cannot render query %s: %w", q.Name, err)
	}
	return b.String(), named, nil
}

// Result is the outcome of a named query: its columns, documented, and its
// rows, one value per column: string, uint64, int64, float64, time.Time
// (UTC), a slice, or nil for NULL.
type Result struct {
	Query   string
	Columns []Column
	Rows    [][]any
}

// Run runs the query with args (from [Query.ParseArgs]) over conn, whose
// current database is Atlas's; the read-only user is enough and meant.
// Errors from the server unwrap to *clickhouse.Exception.
func (q Query) Run(ctx context.Context, conn driver.Conn, args Args) (*Result, error) {
	sql, named, err := q.SQL(args)
	if err != nil {
		return nil, err
	}
	rows, err := conn.Query(ctx, sql, named...)
	if err != nil {
		return nil, fmt.Errorf("cannot run query %s: %w", q.Name, err)
	}
	defer rows.Close()
	res := &Result{Query: q.Name}
	types := rows.ColumnTypes()
	for _, ct := range types {
		res.Columns = append(res.Columns, q.column(ct.Name()))
	}
	for rows.Next() {
		dest := make([]any, len(types))
		for i, ct := range types {
			dest[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("cannot read the result of query %s: %w", q.Name, err)
		}
		row := make([]any, len(dest))
		for i, d := range dest {
			row[i] = plain(reflect.ValueOf(d).Elem())
		}
		res.Rows = append(res.Rows, row)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read the result of query %s: %w", q.Name, err)
	}
	return res, nil
}

// plain turns a scanned value into one of the types Result documents.
func plain(v reflect.Value) any {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	switch x := v.Interface().(type) {
	case time.Time:
		return x.UTC()
	case string:
		return x
	}
	switch v.Kind() {
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return v.Uint()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int()
	case reflect.Float32, reflect.Float64:
		return v.Float()
	}
	return v.Interface()
}
