package schemas

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

func mustGolden(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".msgpack"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// encodeMap builds a record by hand, so tests can put wrong types where the
// typed encoder never would.
func encodeMap(t testing.TB, kv ...any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	if err := enc.EncodeMapLen(len(kv) / 2); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(kv); i += 2 {
		if err := enc.EncodeString(kv[i].(string)); err != nil {
			t.Fatal(err)
		}
		if err := enc.Encode(kv[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestEveryTruncationOfAValidEventIsAnErrorNotAPanic(t *testing.T) {
	for _, name := range []string{"playback_start", "browse_impression", "catalog_title", "alert_firing"} {
		full := mustGolden(t, name)
		schema := map[string]Schema{"playback_start": SchemaPlayback, "browse_impression": SchemaBrowse,
			"catalog_title": SchemaCatalog, "alert_firing": SchemaAlert}[name]
		for n := 0; n < len(full); n++ {
			_, err := NewDecoder(Limits{}).Decode(string(schema), full[:n])
			if err == nil {
				t.Fatalf("%s truncated to %d of %d bytes decoded without error", name, n, len(full))
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("%s truncated to %d bytes: error %T is not a *DecodeError: %v", name, n, err, err)
			}
			if !strings.Contains(err.Error(), "truncated") && !strings.Contains(err.Error(), "remain") && !strings.Contains(err.Error(), "empty record") {
				t.Fatalf("%s truncated to %d bytes: error does not say the input is short: %v", name, n, err)
			}
		}
	}
}

func TestDecodeErrorsNameTheProblem(t *testing.T) {
	valid := func(extra ...any) []byte {
		kv := []any{"id", "e1", "t", int64(1732600000000), "pro", "p1"}
		return encodeMap(t, append(kv, extra...)...)
	}
	check := func(schema Schema, b []byte, wantField string, wantText ...string) {
		t.Helper()
		_, err := NewDecoder(Limits{}).Decode(string(schema), b)
		if err == nil {
			t.Fatalf("% x decoded without error; want field %q", b, wantField)
		}
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("error %T is not a *DecodeError: %v", err, err)
		}
		if de.Field != wantField {
			t.Fatalf("error names field %q, want %q: %v", de.Field, wantField, err)
		}
		for _, w := range wantText {
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("error %q does not contain %q", err, w)
			}
		}
	}
	check(SchemaPlayback, encodeMap(t, "t", "yesterday"), "t", "expected integer, got string")
	check(SchemaPlayback, encodeMap(t, "pro", 42), "pro", "expected string, got integer")
	check(SchemaPlayback, valid("cc", map[string]int{"x": 1}), "cc", "expected string, got map")
	check(SchemaBrowse, valid("r", "five"), "r", "expected number, got string")
	check(SchemaCatalog, encodeMap(t, "g", "drama"), "g", "expected array, got string")
	check(SchemaCatalog, encodeMap(t, "g", []any{"drama", 7}), "g", "element 1", "expected string, got integer")
	check(SchemaAlert, encodeMap(t, "ev", []string{"a"}), "ev", "expected map, got array")
	check(SchemaAlert, encodeMap(t, "sev", 300), "sev", "out of range")
	check(SchemaPlayback, []byte{0x93, 1, 2, 3}, "", "expected map, got array")
	check(SchemaPlayback, append(valid(), 0xc0), "", "1 trailing bytes")
	check(SchemaPlayback, []byte{0x81, 0x01, 0x02}, "", "map key", "expected string, got integer")
	check(SchemaPlayback, []byte{0x81, 0xa1, 'x', 0xc1}, "x", "invalid msgpack code 0xc1")
	check(SchemaPlayback, encodeMap(t, "t", uint64(math.MaxUint64)), "t", "overflows int64")
}

// Allocation bombs: headers that declare far more data than the input
// holds. The decoder must reject each from the header alone.
var bombs = map[string][]byte{
	"an unknown field claiming a 4-billion-element array": {0x81, 0xa1, 'e', 0xdd, 0xff, 0xff, 0xff, 0xff},
	"a top-level map claiming 4 billion entries":          {0xdf, 0xff, 0xff, 0xff, 0xff},
	"a genres array claiming 4 billion strings":           {0x81, 0xa1, 'g', 0xdd, 0xff, 0xff, 0xff, 0xff},
	"evidence claiming a 65535-entry map":                 {0x81, 0xa2, 'e', 'v', 0xde, 0xff, 0xff},
	"a string field claiming 4 GB":                        {0x81, 0xa3, 'p', 'r', 'o', 0xdb, 0xff, 0xff, 0xff, 0xff},
	"a bin32 claiming 4 GB":                               {0x81, 0xa1, 'x', 0xc6, 0xff, 0xff, 0xff, 0xff},
	"an ext32 claiming 4 GB":                              {0x81, 0xa1, 'x', 0xc9, 0xff, 0xff, 0xff, 0xff, 0x01},
	"a bare array32 header":                               {0xdd, 0xff, 0xff, 0xff, 0xff},
	"a chain of array16 headers":                          bytes.Repeat([]byte{0xdc, 0xff, 0xff}, 2000),
	"nesting 100 levels deep":                             append([]byte{0x81, 0xa1, 'x'}, bytes.Repeat([]byte{0x91}, 100)...),
}

func TestAllocationBombsAreRejectedWithBoundedMemory(t *testing.T) {
	for name, b := range bombs {
		for _, s := range []Schema{SchemaPlayback, SchemaCatalog, SchemaAlert, SchemaBrowse} {
			d := NewDecoder(Limits{})
			var err error
			allocated := bytesAllocated(func() { _, err = d.Decode(string(s), b) })
			if err == nil {
				t.Fatalf("%s decoded as %s without error", name, s)
			}
			// A small constant for the error value and the record, plus a
			// small multiple of the input.
			if limit := uint64(4096 + 4*len(b)); allocated > limit {
				t.Fatalf("%s as %s allocated %d bytes for %d bytes of input (limit %d): %v", name, s, allocated, len(b), limit, err)
			}
		}
	}
}

// bytesAllocated returns the heap bytes f allocates: the least of three
// runs, because the runtime's own background allocations land in the same
// counter.
func bytesAllocated(f func()) uint64 {
	least := uint64(math.MaxUint64)
	for range 3 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	return least
}

func TestARecordOverTheSizeLimitIsRejectedBeforeDecoding(t *testing.T) {
	huge := encodeMap(t, "id", "e1", "pro", strings.Repeat("x", 10<<20))
	var e Playback
	d := NewDecoder(Limits{})
	var err error
	allocated := bytesAllocated(func() { err = d.Playback(huge, &e) })
	if err == nil || !strings.Contains(err.Error(), "over the limit of 8192") {
		t.Fatalf("a 10 MB record gave %v, want a size-limit error", err)
	}
	if allocated > 4096 {
		t.Fatalf("rejecting a 10 MB record allocated %d bytes", allocated)
	}
}

func TestUnknownSchemaVersionsAreNamed(t *testing.T) {
	check := func(header, want string) {
		t.Helper()
		_, err := NewDecoder(Limits{}).Decode(header, mustGolden(t, "playback_start"))
		if !errors.Is(err, ErrUnknownSchema) || !strings.Contains(err.Error(), want) {
			t.Fatalf("header %q gave %v, want ErrUnknownSchema mentioning %q", header, err, want)
		}
	}
	check("playback.v9", `"playback.v9" is not a supported version of playback (this build reads playback.v1)`)
	check("telemetry.v1", `"telemetry.v1"`)
	check("", "header is missing")
}

func TestUnknownFieldsAreIgnoredAndMissingOnesAreZero(t *testing.T) {
	b := encodeMap(t, "id", "e1", "pro", "p1", "new_field", map[string]any{"nested": []int{1, 2}}, "k", "start")
	var e Playback
	if err := DecodePlayback(b, &e); err != nil {
		t.Fatal(err)
	}
	if e.EventID != "e1" || e.ProfileID != "p1" || e.Kind != PlayStart || e.TitleID != "" || e.EventTime != 0 {
		t.Fatalf("decoded %+v", e)
	}
}

func TestValidationRejectsBadValuesWithTheirField(t *testing.T) {
	now := timeOf(base.ReceiveTime)
	check := func(field, want string, mutate func(p *Playback, b *Browse, a *Alert, ti *Title), rec string) {
		t.Helper()
		p := *goldenSamples()["playback_start"].(*Playback)
		b := *goldenSamples()["browse_rating"].(*Browse)
		a := *goldenSamples()["alert_firing"].(*Alert)
		ti := *goldenSamples()["catalog_title"].(*Title)
		mutate(&p, &b, &a, &ti)
		r := map[string]Record{"playback": &p, "browse": &b, "alert": &a, "title": &ti}[rec]
		err := Validate(r, Limits{}, now)
		var ve *ValidationError
		if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) {
			t.Fatalf("want a *ValidationError for %q, got %v", field, err)
		}
		if ve.Field != field || !strings.Contains(ve.Reason, want) {
			t.Fatalf("got field %q reason %q; want field %q reason containing %q", ve.Field, ve.Reason, field, want)
		}
	}
	year := int64(365 * 24 * time.Hour / time.Millisecond)
	check("pro", "must not be empty", func(p *Playback, _ *Browse, _ *Alert, _ *Title) { p.ProfileID = "" }, "playback")
	check("t", "ahead of the receive time", func(p *Playback, _ *Browse, _ *Alert, _ *Title) { p.EventTime += year }, "playback")
	check("t", "behind the receive time", func(p *Playback, _ *Browse, _ *Alert, _ *Title) { p.EventTime -= 8 * 24 * 3600 * 1000 }, "playback")
	check("t", "not a positive Unix time", func(p *Playback, _ *Browse, _ *Alert, _ *Title) { p.EventTime = 0 }, "playback")
	check("t", "not a positive Unix time", func(p *Playback, _ *Browse, _ *Alert, _ *Title) { p.EventTime = -5 }, "playback")
	check("ses", "not valid UTF-8", func(p *Playback, _ *Browse, _ *Alert, _ *Title) { p.SessionID = "s\xff\xfe" }, "playback")
	check("dev", "over the limit of 128", func(p *Playback, _ *Browse, _ *Alert, _ *Title) { p.DeviceID = strings.Repeat("d", 129) }, "playback")
	check("k", `"skip" is not one of`, func(p *Playback, _ *Browse, _ *Alert, _ *Title) { p.Kind = "skip" }, "playback")
	check("dt", `"fridge" is not one of`, func(p *Playback, _ *Browse, _ *Alert, _ *Title) { p.DeviceType = "fridge" }, "playback")
	check("cc", "not an ISO 3166-1", func(p *Playback, _ *Browse, _ *Alert, _ *Title) { p.Country = "Germany" }, "playback")
	check("pos", "outside 0..", func(p *Playback, _ *Browse, _ *Alert, _ *Title) { p.PositionMs = -1 }, "playback")
	check("err", "must not be empty", func(p *Playback, _ *Browse, _ *Alert, _ *Title) { p.Kind = PlayError }, "playback")
	check("r", "NaN is not a finite number", func(_ *Playback, b *Browse, _ *Alert, _ *Title) { b.Rating = math.NaN() }, "browse")
	check("r", "+Inf is not a finite number", func(_ *Playback, b *Browse, _ *Alert, _ *Title) { b.Rating = math.Inf(1) }, "browse")
	check("r", "outside 0.5..5", func(_ *Playback, b *Browse, _ *Alert, _ *Title) { b.Rating = 6 }, "browse")
	check("q", "must not be empty", func(_ *Playback, b *Browse, _ *Alert, _ *Title) { b.Kind, b.TitleID = BrowseSearch, "" }, "browse")
	check("sc", "-Inf is not a finite number", func(_ *Playback, _ *Browse, a *Alert, _ *Title) { a.Score = math.Inf(-1) }, "alert")
	check("sev", "outside 1..4", func(_ *Playback, _ *Browse, a *Alert, _ *Title) { a.Severity = 9 }, "alert")
	check("rd", "not a YYYY-MM-DD date", func(_ *Playback, _ *Browse, _ *Alert, ti *Title) { ti.ReleaseDate = "01/10/2024" }, "title")
	check("ty", `"movie" is not one of`, func(_ *Playback, _ *Browse, _ *Alert, ti *Title) { ti.Type = "movie" }, "title")
}

func TestNaNAndInfSurviveDecodingSoValidationCanRejectThem(t *testing.T) {
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		b := encodeMap(t, "r", v)
		var e Browse
		if err := DecodeBrowse(b, &e); err != nil {
			t.Fatal(err)
		}
		err := Validate(&e, Limits{}, time.Now())
		if err == nil {
			t.Fatalf("rating %v validated", v)
		}
	}
}

func TestLimitsValidateRejectsUnworkableValues(t *testing.T) {
	if err := DefaultLimits().Validate(); err != nil {
		t.Fatalf("default limits are invalid: %v", err)
	}
	if err := (Limits{MaxEventBytes: 10}).Validate(); err == nil || !strings.Contains(err.Error(), "MaxEventBytes") {
		t.Fatalf("got %v", err)
	}
	if err := (Limits{MaxPastSkew: -time.Second}).Validate(); err == nil {
		t.Fatal("a negative skew validated")
	}
}

func TestLimitsSameTreatsZeroFieldsAsTheirDefaults(t *testing.T) {
	def := DefaultLimits()
	if !(Limits{}).Same(def) || !def.Same(Limits{}) {
		t.Fatal("the zero Limits and DefaultLimits() should be the same limits")
	}
	if (Limits{MaxStringBytes: def.MaxStringBytes + 1}).Same(Limits{}) {
		t.Fatal("limits with a larger MaxStringBytes are the same as the defaults")
	}
	if !(Limits{MaxEventBytes: def.MaxEventBytes}).Same(Limits{}) {
		t.Fatal("a field set to its default differs from the zero field")
	}
}
