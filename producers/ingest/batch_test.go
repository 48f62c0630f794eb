package ingest

import (
	"bytes"
	"errors"
	"net/http"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/atlas-stream/atlas/schemas"
	"github.com/atlas-stream/atlas/schemas/badinput"
)

func TestEncodeBatchWritesWhatTheMsgpackLibraryReads(t *testing.T) {
	now := time.Now()
	recs := events("e", "s1", 20, now)
	b := mustBatch(t, recs)
	// Our own bytes, so the library may read them.
	var generic struct {
		Events []struct {
			S string             `msgpack:"s"`
			E msgpack.RawMessage `msgpack:"e"`
		} `msgpack:"events"`
	}
	if err := msgpack.Unmarshal(b, &generic); err != nil {
		t.Fatal(err)
	}
	if len(generic.Events) != 20 || generic.Events[1].S != "browse.v1" {
		t.Fatalf("decoded %d events, second schema %q", len(generic.Events), generic.Events[1].S)
	}
	items, err := splitMsgpack(b, 500, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, it := range items {
		want, _ := schemas.Marshal(recs[i])
		if it.bad || it.schema != string(recs[i].Schema()) || !bytes.Equal(it.raw, want) || !bytes.Equal(it.raw, generic.Events[i].E) {
			t.Fatalf("item %d: %+v", i, it)
		}
	}
	// Headers of every size class.
	for _, n := range []int{0, 15, 16, 70000} {
		b := appendArrayHeader(nil, n)
		var got []byte
		got, _ = msgpack.Marshal(make([]struct{}, n))
		if !bytes.HasPrefix(got, b) {
			t.Fatalf("array header of %d: % x, library % x", n, b, got[:len(b)])
		}
	}
	for _, s := range []string{"", strings.Repeat("x", 31), strings.Repeat("x", 32), strings.Repeat("x", 300), strings.Repeat("x", 70000)} {
		want, _ := msgpack.Marshal(s)
		if got := appendStr(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("string of %d bytes encoded differently from the library", len(s))
		}
	}
}

func TestEncodeBatchJSONHasTheSameShape(t *testing.T) {
	now := time.Now()
	recs := events("e", "s1", 3, now)
	items, err := splitJSON(mustBatchJSON(t, recs), 500, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 3 || items[0].schema != "playback.v1" || items[1].schema != "browse.v1" {
		t.Fatalf("items %+v", items)
	}
	rec, _, field, reason := decodeEvent(schemas.NewDecoder(schemas.Limits{}), &items[0], true, nil)
	if rec == nil {
		t.Fatalf("cannot decode the JSON event: %s: %s", field, reason)
	}
	if !reflect.DeepEqual(rec, recs[0]) {
		t.Fatalf("JSON round trip: %+v, want %+v", rec, recs[0])
	}
}

// A request-level failure: the status and a part of the reason.
type splitFailure struct {
	status int
	reason string
}

func TestSplitMsgpackRefusesMalformedBatchesWithAReason(t *testing.T) {
	check := func(body []byte, max int, want splitFailure) {
		t.Helper()
		_, err := splitMsgpack(body, max, nil)
		var re *requestError
		if !errors.As(err, &re) {
			t.Fatalf("% x: error %v, want a requestError", body[:min(len(body), 32)], err)
		}
		if re.status != want.status || !strings.Contains(re.reason, want.reason) {
			t.Fatalf("% x: %d %q, want %d containing %q", body[:min(len(body), 32)], re.status, re.reason, want.status, want.reason)
		}
	}
	events3 := mustBatch(t, events("e", "s", 3, time.Now()))
	check(nil, 500, splitFailure{400, "body is empty"})
	check([]byte{0x90}, 500, splitFailure{400, "expected map, got array at byte 0"})
	check([]byte{0x80}, 500, splitFailure{400, `key "events" is missing`})
	// The allocation bombs of STYLE.md, inside and outside the envelope.
	check([]byte{0xdd, 0xff, 0xff, 0xff, 0xff}, 500, splitFailure{400, "expected map, got array"})
	check([]byte{0xdf, 0xff, 0xff, 0xff, 0xff}, 500, splitFailure{400, "declares 4294967295 entries but only 0 bytes remain"})
	check(append([]byte{0x81, 0xa6}, "events\xdd\xff\xff\xff\xff"...), 500, splitFailure{400, "declares 4294967295 entries"})
	check(append([]byte{0x81, 0xa6}, "events\x91\x82\xa1s\xabplayback.v1\xa1e\x81\xa1e\xdd\xff\xff\xff\xff"...), 500, splitFailure{400, "declares 4294967295 entries"})
	check(append([]byte{0x81, 0xa6}, "events\x91\x82\xa1s\xabplayback.v1\xa1e"+strings.Repeat("\xdc\x00\x01", 2000)+"\x00"...), 500, splitFailure{400, "nesting deeper than 16"})
	check(append([]byte{0x81, 0xa6}, "events\x91\x82\xa1s\xdb\xff\xff\xff\xff"...), 500, splitFailure{400, "declares 4294967295 bytes"})
	check(append([]byte{0x81, 0xa6}, "events\x91\x82\xa1s\xa1x\xa1e\xc6\xff\xff\xff\xff"...), 500, splitFailure{400, "declares 4294967295 bytes"})
	check(append([]byte{0x81, 0xa6}, "events\x91\x82\xa1s\xa1x\xa1e\xc1"...), 500, splitFailure{400, "invalid msgpack code 0xc1"})
	check(events3[:len(events3)-1], 500, splitFailure{400, "declares 5 bytes but only 4 remain"})
	check(events3[:9], 500, splitFailure{400, "array declares 3 entries but only 0 bytes remain at byte 8"})
	check(append(append([]byte(nil), events3...), 0xc0), 500, splitFailure{400, "1 trailing bytes"})
	check(append([]byte{0x82, 0xa6}, "events\x90\xa6events\x90"...), 500, splitFailure{400, "appears twice"})
	check(events3, 2, splitFailure{413, "the batch has 3 events, over the limit of 2"})
}

func TestSplitMsgpackRejectsBadEntriesOneByOne(t *testing.T) {
	body := append([]byte{0x81, 0xa6}, "events\x95"...)
	body = append(body, 0x2a)                                          // 0: an integer
	body = append(body, "\x81\xa1e\x80"...)                            // 1: no schema
	body = append(body, "\x81\xa1s\xa1x"...)                           // 2: no event
	body = append(body, "\x82\xa1s\x07\xa1e\x80"...)                   // 3: schema is not a string
	body = append(body, "\x83\xa1s\xa1x\xa1e\x80\xa1z\x92\x01\x02"...) // 4: fine, with an unknown key
	items, err := splitMsgpack(body, 500, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []item{
		{bad: true, reason: "entry is a msgpack integer at byte 9, not a map"},
		{bad: true, field: "s", reason: "no schema"},
		{bad: true, field: "e", reason: "no event"},
		{bad: true, field: "s", reason: "not a string"},
		{schema: "x", raw: []byte{0x80}},
	}
	if len(items) != len(want) {
		t.Fatalf("%d items, want %d", len(items), len(want))
	}
	for i, w := range want {
		got := items[i]
		if got.bad != w.bad || got.field != w.field || !strings.Contains(got.reason, w.reason) || !got.bad && (got.schema != w.schema || !bytes.Equal(got.raw, w.raw)) {
			t.Errorf("item %d: %+v, want %+v", i, got, w)
		}
	}
}

func TestSplitJSONRefusesMalformedBatchesWithAReason(t *testing.T) {
	check := func(body string, max int, want splitFailure) {
		t.Helper()
		_, err := splitJSON([]byte(body), max, nil)
		var re *requestError
		if !errors.As(err, &re) {
			t.Fatalf("%q: error %v, want a requestError", body, err)
		}
		if re.status != want.status || !strings.Contains(re.reason, want.reason) {
			t.Fatalf("%q: %d %q, want %d containing %q", body, re.status, re.reason, want.status, want.reason)
		}
	}
	check(``, 500, splitFailure{400, "unexpected EOF"})
	check(`{"events": [`, 500, splitFailure{400, "cannot decode JSON batch"})
	check(`{"events": [{"s": "playback.v1", "e": {"id": 1}}`, 500, splitFailure{400, "cannot decode JSON batch"})
	check(`[]`, 500, splitFailure{400, `expected "{", found "["`})
	check(`{"events": {}}`, 500, splitFailure{400, `expected "[", found "{"`})
	check(`{}`, 500, splitFailure{400, `key "events" is missing`})
	check(`{"events": []} {}`, 500, splitFailure{400, "trailing data"})
	check(`{"events": [], "events": []}`, 500, splitFailure{400, "appears twice"})
	check(`{"events": [{}, {}, {}]}`, 2, splitFailure{413, "the batch has 3 events, over the limit of 2"})
	check(`{"events": [{"s": "x", "e": {]}`, 500, splitFailure{400, "invalid character"})
}

func TestSplitJSONRejectsBadEntriesOneByOne(t *testing.T) {
	items, err := splitJSON([]byte(`{"v": [1, {"x": 2}], "events": [42, {"e": {}}, {"s": "x"}, {"s": 7, "e": {}}, {"s": "x", "e": null}, {"s": "x", "e": {"id": "a"}, "z": 1}]}`), 500, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []item{
		{bad: true, reason: "entry is not an object"},
		{bad: true, field: "s", reason: "no schema"},
		{bad: true, field: "e", reason: "no event"},
		{bad: true, field: "s", reason: "entry is not an object"},
		{bad: true, field: "e", schema: "x", reason: "no event"},
		{schema: "x", raw: []byte(`{"id": "a"}`)},
	}
	if len(items) != len(want) {
		t.Fatalf("%d items, want %d: %+v", len(items), len(want), items)
	}
	for i, w := range want {
		got := items[i]
		if got.bad != w.bad || got.field != w.field || !strings.Contains(got.reason, w.reason) || !got.bad && (got.schema != w.schema || !bytes.Equal(got.raw, w.raw)) {
			t.Errorf("item %d: %+v, want %+v", i, got, w)
		}
	}
}

func TestDecodeEventNamesTheField(t *testing.T) {
	dec := schemas.NewDecoder(schemas.Limits{})
	check := func(it item, isJSON bool, wantField, wantReason string) {
		t.Helper()
		rec, _, field, reason := decodeEvent(dec, &it, isJSON, nil)
		if rec != nil || field != wantField || !strings.Contains(reason, wantReason) {
			t.Fatalf("decodeEvent(%s %q): %v %q %q, want field %q and a reason containing %q", it.schema, it.raw, rec, field, reason, wantField, wantReason)
		}
	}
	check(item{schema: "catalog.v1", raw: []byte{0x80}}, false, "s", "not accepted from devices")
	check(item{schema: "alert.v1", raw: []byte{0x80}}, false, "s", "not accepted from devices")
	check(item{schema: "playback.v9", raw: []byte{0x80}}, false, "s", "not a supported version")
	check(item{schema: "playback.v1", raw: []byte("\x81\xa1t\xa3abc")}, false, "t", "expected integer, got string")
	check(item{schema: "browse.v1", raw: []byte("\x81\xa1r\xa3abc")}, false, "r", "expected number")
	check(item{schema: "playback.v1", raw: []byte(`{"t": "abc"}`)}, true, "t", "t is a JSON string, want int64")
	check(item{schema: "browse.v1", raw: []byte(`{"id": 5}`)}, true, "id", "id is a JSON number, want string")
	check(item{schema: "browse.v1", raw: []byte(`"abc"`)}, true, "", "JSON string")
}

// The walker must not allocate in proportion to what the input declares.
func TestSplitMsgpackMemoryIsBoundedByTheInput(t *testing.T) {
	bombs := [][]byte{
		append([]byte{0x81, 0xa6}, "events\xdd\xff\xff\xff\xff"...),
		append([]byte{0x81, 0xa6}, "events"+strings.Repeat("\xdc\xff\xff", 2000)...),
		append([]byte{0x81, 0xa6}, "events\x91\x82\xa1s\xa1x\xa1e"+strings.Repeat("\xdc\xff\xff", 2000)...),
	}
	for _, b := range bombs {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := splitMsgpack(b, 500, nil)
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Fatalf("% x…: no error", b[:12])
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
			t.Fatalf("% x…: allocated %d bytes for a %d-byte input", b[:12], grew, len(b))
		}
	}
}

func FuzzSplitMsgpack(f *testing.F) {
	now := time.Unix(1_750_000_000, 0)
	f.Add(mustBatch(f, events("e", "s", 3, now)))
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Add(append([]byte{0x81, 0xa6}, "events\xdd\xff\xff\xff\xff"...))
	f.Add(append([]byte{0x81, 0xa6}, "events\x91\x82\xa1s\xabplayback.v1\xa1e\x81\xa1e\xdd\xff\xff\xff\xff"...))
	f.Add(append([]byte{0x81, 0xa6}, "events"+strings.Repeat("\xdc\xff\xff", 100)...))
	f.Add([]byte{0x81, 0xa6, 'e', 'v', 'e', 'n', 't', 's', 0x91, 0xc7, 0xff, 0x01})
	dec := schemas.NewDecoder(schemas.Limits{})
	f.Fuzz(func(t *testing.T, b []byte) {
		items, err := splitMsgpack(b, 500, nil)
		if err != nil {
			var re *requestError
			if !errors.As(err, &re) || (re.status != http.StatusBadRequest && re.status != http.StatusRequestEntityTooLarge) {
				t.Fatalf("error %v is not a 400/413 requestError", err)
			}
			return
		}
		for _, it := range items {
			if it.bad {
				continue
			}
			// The event is a slice of the body; decoding it never panics.
			if len(it.raw) == 0 || len(it.raw) > len(b) {
				t.Fatalf("event of %d bytes out of a %d-byte body", len(it.raw), len(b))
			}
			decodeEvent(dec, &it, false, nil)
		}
	})
}

func FuzzSplitJSON(f *testing.F) {
	f.Add(mustBatchJSON(f, events("e", "s", 3, time.Unix(1_750_000_000, 0))))
	f.Add([]byte(`{"events": [42, {"s": 7}, {"s": "playback.v1", "e": {"t": "x"}}]}`))
	f.Add([]byte(`{"events": [[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]}`))
	dec := schemas.NewDecoder(schemas.Limits{})
	f.Fuzz(func(t *testing.T, b []byte) {
		items, err := splitJSON(b, 500, nil)
		if err != nil {
			var re *requestError
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not a requestError", err)
			}
			return
		}
		for _, it := range items {
			if !it.bad {
				decodeEvent(dec, &it, true, nil)
			}
		}
	})
}

func TestBatchesAsEncodeBatchWritesThemTakeTheFastScan(t *testing.T) {
	now := time.Unix(1_750_000_000, 0)
	for _, n := range []int{1, 15, 16, 100, 500} {
		b := mustBatch(t, events("e", "s", n, now))
		if items, ok := scanMsgpack(b, 500, nil); !ok || len(items) != n {
			t.Errorf("%d events: the scan gave up (%v) or found %d", n, ok, len(items))
		}
	}
	if _, ok := scanMsgpack(mustBatch(t, events("e", "s", 501, now)), 500, nil); ok {
		t.Error("the scan accepted 501 events with a limit of 500")
	}
}

// The fast scan of plain batches and the careful walk agree: whatever the
// scan accepts, the walk accepts with the same items (the same bytes of
// the body for each event).
func FuzzScanMsgpackAgreesWithTheCarefulWalk(f *testing.F) {
	now := time.Unix(1_750_000_000, 0)
	f.Add(mustBatch(f, events("e", "s", 3, now)))
	f.Add(append([]byte{0x81, 0xa6}, "events\x91\x82\xa1s\xabplayback.v1\xa1e\x81\xa1e\xdd\xff\xff\xff\xff"...))
	f.Add(append([]byte{0x81, 0xa6}, "events"+strings.Repeat("\xdc\xff\xff", 100)...))
	f.Add([]byte{0x81, 0xa6, 'e', 'v', 'e', 'n', 't', 's', 0x91, 0xc7, 0xff, 0x01})
	// Nesting around the scan's depth and the walk's cap.
	for _, depth := range []int{6, 7, 8, 9, 15, 16, 17} {
		f.Add(append([]byte{0x81, 0xa6}, "events\x91\x82\xa1s\xa1x\xa1e"+strings.Repeat("\x91", depth)+"\x01"...))
	}
	// Every type code, as an event and as an unknown key's value.
	for _, v := range []string{"\xc0", "\xc2", "\xca\x00\x00\x00\x00", "\xcb\x00\x00\x00\x00\x00\x00\x00\x00", "\xcf\x7f\xff\xff\xff\xff\xff\xff\xff", "\xcf\xff\xff\xff\xff\xff\xff\xff\xff",
		"\xd3\x80\x00\x00\x00\x00\x00\x00\x00", "\xc4\x01x", "\xc5\x00\x01x", "\xc6\x00\x00\x00\x01x", "\xc7\x01\x05x", "\xc8\x00\x01\x05x", "\xc9\x00\x00\x00\x01\x05x",
		"\xd4\x05x", "\xd8\x05xxxxxxxxxxxxxxxx", "\xd9\x01x", "\xda\x00\x01x", "\xdb\x00\x00\x00\x01x", "\xdc\x00\x01\x01", "\xdd\x00\x00\x00\x01\x01", "\xde\x00\x01\xa1k\x01", "\xdf\x00\x00\x00\x01\xa1k\x01", "\xc1"} {
		f.Add(append([]byte{0x81, 0xa6}, "events\x91\x82\xa1s\xa1x\xa1e"+v...))
		f.Add(append([]byte{0x82, 0xa1, 'z'}, v+"\xa6events\x91\x83\xa1s\xa1x\xa1e\x01\xa1q"+v...))
	}
	for _, bc := range badinput.Cases(now) {
		f.Add(appendEntry(append([]byte{0x81, 0xa6}, "events\x91"...), bc.Schema, bc.Value))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		scanned, ok := scanMsgpack(b, 500, nil)
		if !ok {
			return
		}
		walked, err := splitMsgpackCarefully(b, 500, nil)
		if err != nil {
			t.Fatalf("the scan accepted a batch that the careful walk refuses: %v", err)
		}
		if len(scanned) != len(walked) {
			t.Fatalf("the scan found %d entries, the careful walk %d", len(scanned), len(walked))
		}
		for i := range scanned {
			s, w := scanned[i], walked[i]
			if !reflect.DeepEqual(s, w) || cap(s.raw) != cap(w.raw) || (len(s.raw) > 0 && &s.raw[0] != &w.raw[0]) {
				t.Fatalf("entry %d: the scan found %+v, the careful walk %+v", i, s, w)
			}
		}
	})
}
