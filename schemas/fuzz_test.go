package schemas

import (
	"bytes"
	"testing"
)

// Each fuzz target checks that its decoder never panics, and that whatever
// it accepts re-encodes to bytes that decode to the same record (a
// round-trip). The seed corpus (golden vectors, truncations, bombs) runs on
// every `go test`.
func fuzzDecoder(f *testing.F, schema Schema, golden ...string) {
	for _, g := range golden {
		b := mustGolden(f, g)
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	for _, b := range bombs {
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0xc0})
	f.Fuzz(func(t *testing.T, b []byte) {
		d := NewDecoder(Limits{})
		rec, err := d.Decode(string(schema), b)
		if err != nil {
			return
		}
		once, err := Marshal(rec)
		if err != nil {
			t.Fatalf("accepted record does not encode: %v", err)
		}
		rec2, err := d.Decode(string(schema), once)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v\n% x", err, once)
		}
		twice, err := Marshal(rec2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(once, twice) {
			t.Fatalf("round-trip changed the record:\n% x\n% x", once, twice)
		}
	})
}

func FuzzDecodePlayback(f *testing.F) {
	fuzzDecoder(f, SchemaPlayback, "playback_start", "playback_rebuffer", "playback_error", "playback_heartbeat", "playback_start_from_row")
}

func FuzzDecodeBrowse(f *testing.F) {
	fuzzDecoder(f, SchemaBrowse, "browse_impression", "browse_search", "browse_rating")
}

func FuzzDecodeTitle(f *testing.F) { fuzzDecoder(f, SchemaCatalog, "catalog_title") }

func FuzzDecodeAlert(f *testing.F) { fuzzDecoder(f, SchemaAlert, "alert_firing") }
