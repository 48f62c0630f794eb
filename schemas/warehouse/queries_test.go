package warehouse

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/go-cmp/cmp"
)

var testNow = time.Date(2026, 3, 14, 10, 30, 15, 500_000_000, time.UTC)

func TestParseTime(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		got, err := ParseTime(in, testNow)
		switch {
		case strings.HasPrefix(want, "error:"):
			if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(want, "error:")) {
				t.Fatalf("ParseTime(%q) = %v, %v; want an error containing %q", in, got, err, strings.TrimPrefix(want, "error:"))
			}
		case err != nil:
			t.Fatalf("ParseTime(%q): %v", in, err)
		case got.Format(time.RFC3339) != want || got.Location() != time.UTC:
			t.Fatalf("ParseTime(%q) = %s, want %s UTC", in, got, want)
		}
	}
	f("now", "2026-03-14T10:30:15Z")
	f(" now ", "2026-03-14T10:30:15Z")
	f("-24h", "2026-03-13T10:30:15Z")
	f("-7d", "2026-03-07T10:30:15Z")
	f("-1d12h", "2026-03-12T22:30:15Z")
	f("-90m", "2026-03-14T09:00:15Z")
	f("+15m", "2026-03-14T10:45:15Z")
	f("2026-03-01", "2026-03-01T00:00:00Z")
	f("2026-03-01T12:00:00Z", "2026-03-01T12:00:00Z")
	f("2026-03-01T12:00:00+02:00", "2026-03-01T10:00:00Z")
	f("2026-03-01T12:00:00.999Z", "2026-03-01T12:00:00Z")
	f("yesterday", "error:want RFC 3339")
	f("-1y", "error:cannot parse")
	f("-x", "error:cannot parse")
	f("1969-12-31", "error:outside 1970..2106")
	f("-100000d", "error:cannot parse")
	f("", "error:want RFC 3339")
}

func TestParseArgs(t *testing.T) {
	f := func(query string, text map[string]string, want string) {
		t.Helper()
		q, ok := LookupQuery(query)
		if !ok {
			t.Fatalf("no query %s", query)
		}
		args, err := q.ParseArgs(text, testNow)
		if strings.HasPrefix(want, "error:") {
			var ae *ArgError
			if !errors.As(err, &ae) || !strings.Contains(err.Error(), strings.TrimPrefix(want, "error:")) {
				t.Fatalf("%s %v: err = %v, want an *ArgError containing %q", query, text, err, strings.TrimPrefix(want, "error:"))
			}
			return
		}
		if err != nil {
			t.Fatalf("%s %v: %v", query, text, err)
		}
		var parts []string
		for _, p := range q.Params {
			v := args[p.Name]
			if tm, ok := v.(time.Time); ok {
				v = tm.Format(time.RFC3339)
			}
			parts = append(parts, p.Name+"="+fmt.Sprint(v))
		}
		if got := strings.Join(parts, " "); got != want {
			t.Fatalf("%s %v:\n got %s\nwant %s", query, text, got, want)
		}
	}
	f("trending", nil, "from=2026-03-13T10:30:15Z to=2026-03-14T10:30:15Z country= limit=20 min-starts=10")
	f("trending", map[string]string{"country": "de", "limit": "5", "from": "-7d", "to": "-1d"},
		"from=2026-03-07T10:30:15Z to=2026-03-13T10:30:15Z country=DE limit=5 min-starts=10")
	f("early-hit", nil, "from=2026-03-07T10:30:15Z to=2026-03-14T10:30:15Z country= limit=20")
	f("overlap", map[string]string{"a": "t1", "b": "t2"}, "from=2026-03-13T10:30:15Z to=2026-03-14T10:30:15Z country= a=t1 b=t2")
	f("quality", map[string]string{"bucket": "1h", "by-country": "true"},
		"from=2026-03-13T10:30:15Z to=2026-03-14T10:30:15Z country= limit=20 by-country=true bucket=1h0m0s")
	f("quality", map[string]string{"bucket": "1d"},
		"from=2026-03-13T10:30:15Z to=2026-03-14T10:30:15Z country= limit=20 by-country=false bucket=24h0m0s")

	f("overlap", map[string]string{"a": "t1"}, "error:--b: required")
	f("trending", map[string]string{"from": "now", "to": "-1h"}, "error:is not before --to")
	f("trending", map[string]string{"from": "2026-03-14", "to": "2026-03-14"}, "error:is not before --to")
	f("trending", map[string]string{"country": "Germany"}, `error:invalid --country "Germany": want an ISO 3166-1 alpha-2`)
	f("trending", map[string]string{"country": "D'"}, "error:ISO 3166-1")
	f("trending", map[string]string{"limit": "0"}, "error:from 1 to 100000")
	f("trending", map[string]string{"limit": "100001"}, "error:from 1 to 100000")
	f("trending", map[string]string{"limit": "-1"}, "error:from 1 to 100000")
	f("trending", map[string]string{"a": "t1"}, "error:--a: query trending has no such parameter")
	f("funnel", map[string]string{"country": "DE"}, "error:--country: query funnel has no such parameter")
	f("overlap", map[string]string{"a": strings.Repeat("x", 129), "b": "t"}, "error:longer than 128 bytes")
	f("overlap", map[string]string{"a": "t\n1", "b": "t"}, "error:control character")
	f("overlap", map[string]string{"a": "\xff", "b": "t"}, "error:UTF-8")
	f("quality", map[string]string{"bucket": "90s"}, "error:whole number of minutes")
	f("quality", map[string]string{"bucket": "-1h"}, "error:negative")
	f("quality", map[string]string{"bucket": "1m", "from": "-30d"}, "error:more than 10000")
	f("quality", map[string]string{"by-country": "maybe"}, "error:true or false")
}

var placeholder = regexp.MustCompile(`@[a-z_]+`)

// render returns the SQL of query for text and the names it binds.
func render(t *testing.T, query string, text map[string]string) (string, map[string]any) {
	t.Helper()
	q, _ := LookupQuery(query)
	args, err := q.ParseArgs(text, testNow)
	if err != nil {
		t.Fatal(err)
	}
	sql, named, err := q.SQL(args)
	if err != nil {
		t.Fatal(err)
	}
	bound := make(map[string]any)
	for _, a := range named {
		nv := a.(driver.NamedValue)
		bound[nv.Name] = nv.Value
	}
	return sql, bound
}

func TestEveryQueryBindsEveryPlaceholderAndNeverSplicesUserText(t *testing.T) {
	// Values that would change the SQL if they were spliced into it.
	hostile := "evil' OR 1=1 -- {p:String}"
	for _, q := range Queries() {
		text := map[string]string{}
		for _, p := range q.Params {
			switch p.Kind {
			case ParamID:
				text[p.Name] = hostile
			case ParamCountry:
				text[p.Name] = "ZZ"
			}
		}
		for _, shape := range []map[string]string{{}, {"by-country": "true", "bucket": "1h"}} {
			in := map[string]string{}
			for k, v := range text {
				in[k] = v
			}
			for k, v := range shape {
				if _, ok := q.Param(k); ok {
					in[k] = v
				}
			}
			sql, bound := render(t, q.Name, in)
			if strings.Contains(sql, "evil") || strings.Contains(sql, "ZZ") {
				t.Errorf("%s: user text reached the SQL text:\n%s", q.Name, sql)
			}
			// clickhouse-go treats {name:Type} as server-side parameters on
			// newer servers; the rendered SQL must hold no braces at all.
			if strings.ContainsAny(sql, "{}") {
				t.Errorf("%s: braces left in the SQL:\n%s", q.Name, sql)
			}
			for _, ph := range placeholder.FindAllString(sql, -1) {
				if _, ok := bound[ph[1:]]; !ok {
					t.Errorf("%s: %s in the SQL has no bound value", q.Name, ph)
				}
			}
			for _, table := range []string{"playback_minute", "quality_minute", "funnel_minute"} {
				if strings.Contains(sql, table) && !strings.Contains(sql, table+" FINAL") {
					t.Errorf("%s reads %s without FINAL", q.Name, table)
				}
			}
		}
	}
}

func TestQueryShapeFlagsChangeTheColumns(t *testing.T) {
	plain, _ := render(t, "quality", nil)
	split, bound := render(t, "quality", map[string]string{"bucket": "15m", "country": "de"})
	if strings.Contains(plain, "AS bucket") || !strings.Contains(plain, "GROUP BY cdn, isp\n") || strings.Contains(plain, "@country") {
		t.Fatalf("quality without --bucket or --country groups by them:\n%s", plain)
	}
	for _, want := range []string{"AS bucket", "AND country = @country", "GROUP BY bucket, cdn, isp, country\n", "LIMIT @limit BY bucket"} {
		if !strings.Contains(split, want) {
			t.Fatalf("quality --bucket 15m --country de lacks %q:\n%s", want, split)
		}
	}
	if bound["bucket"] != uint64(900) || bound["country"] != "DE" {
		t.Fatalf("bound %v, want bucket 900 (seconds) and country DE", bound)
	}
}

func TestTheRegistryIsComplete(t *testing.T) {
	names := map[string]bool{}
	files := map[string]bool{}
	for _, q := range Queries() {
		if names[q.Name] {
			t.Errorf("two queries are called %s", q.Name)
		}
		names[q.Name] = true
		files[q.file+".sql"] = true
		if q.Short == "" || q.Long == "" || len(q.Columns) == 0 {
			t.Errorf("%s lacks a description or columns", q.Name)
		}
		cols := map[string]bool{}
		for _, c := range q.Columns {
			if cols[c.Name] || c.Doc == "" {
				t.Errorf("%s: column %s is repeated or undocumented", q.Name, c.Name)
			}
			cols[c.Name] = true
		}
		params := map[string]bool{}
		for _, p := range q.Params {
			if params[p.Name] || p.Usage == "" || (p.Required && p.Default != "") {
				t.Errorf("%s: parameter %s is repeated, undocumented, or required with a default", q.Name, p.Name)
			}
			params[p.Name] = true
		}
	}
	for _, want := range []string{"trending", "completion", "genre-gap", "overlap", "early-hit", "funnel", "quality"} {
		if !names[want] {
			t.Errorf("no query %s", want)
		}
	}
	entries, err := fs.ReadDir(queryFiles, "queries")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !files[e.Name()] {
			t.Errorf("queries/%s belongs to no query", e.Name())
		}
	}
	if _, err := loadQueryTemplates(); err != nil {
		t.Fatal(err)
	}
}

func sampleResult() *Result {
	return &Result{
		Query: "sample",
		Columns: []Column{
			{Name: "title_id", Kind: ColText},
			{Name: "starts", Kind: ColCount},
			{Name: "share", Kind: ColPercent},
			{Name: "growth", Kind: ColFactor, Null: "new"},
			{Name: "hours", Kind: ColNumber},
			{Name: "at", Kind: ColTime},
			{Name: "dropoff", Kind: ColList},
			{Name: "partial", Kind: ColFlag},
		},
		Rows: [][]any{
			{"t1", uint64(1234567), 0.4167, 2.5, 1234.5, time.Date(2026, 3, 14, 10, 0, 0, 0, time.UTC), []uint64{1, 0, 2}, uint64(1)},
			{"", uint64(3), math.NaN(), nil, -0.5, time.Date(2026, 3, 14, 11, 0, 0, 0, time.UTC), []uint64{}, uint64(0)},
		},
	}
}

func TestResultWrite(t *testing.T) {
	f := func(format, want string) {
		t.Helper()
		var b strings.Builder
		if err := sampleResult().Write(&b, format); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, b.String()); diff != "" {
			t.Fatalf("%s output (-want +got):\n%s", format, diff)
		}
	}
	f(FormatTable, ""+
		"title_id     starts  share  growth     hours  at                dropoff  partial\n"+
		"t1        1,234,567  41.7%   2.50x  1,234.50  2026-03-14 10:00  1 0 2    yes\n"+
		"-                 3      -     new     -0.50  2026-03-14 11:00           no\n")
	f(FormatJSON, "[\n"+
		`  {"title_id": "t1", "starts": 1234567, "share": 0.4167, "growth": 2.5, "hours": 1234.5, "at": "2026-03-14T10:00:00Z", "dropoff": [1,0,2], "partial": 1},`+"\n"+
		`  {"title_id": "", "starts": 3, "share": null, "growth": null, "hours": -0.5, "at": "2026-03-14T11:00:00Z", "dropoff": [], "partial": 0}`+"\n"+
		"]\n")
	f(FormatCSV, ""+
		"title_id,starts,share,growth,hours,at,dropoff,partial\n"+
		"t1,1234567,0.4167,2.5,1234.5,2026-03-14T10:00:00Z,\"[1,0,2]\",1\n"+
		",3,,,-0.5,2026-03-14T11:00:00Z,[],0\n")

	var b strings.Builder
	empty := &Result{Columns: []Column{{Name: "a"}, {Name: "b", Kind: ColCount}}}
	for format, want := range map[string]string{FormatTable: "a  b\n(no rows)\n", FormatJSON: "[]\n", FormatCSV: "a,b\n"} {
		b.Reset()
		if err := empty.Write(&b, format); err != nil || b.String() != want {
			t.Fatalf("empty result as %s: %q, %v; want %q", format, b.String(), err, want)
		}
	}
	if err := empty.Write(&b, "xml"); err == nil {
		t.Fatal("Write accepted the format xml")
	}
}

func TestGroupThousands(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := groupThousands(in); got != want {
			t.Fatalf("groupThousands(%q) = %q, want %q", in, got, want)
		}
	}
	f("0", "0")
	f("999", "999")
	f("1000", "1,000")
	f("1234567", "1,234,567")
	f("-1234567.50", "-1,234,567.50")
	f("123456.789", "123,456.789")
}
