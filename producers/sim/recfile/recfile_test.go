package recfile

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/atlas-stream/atlas/schemas"
)

func samples() []schemas.Record {
	env := schemas.Envelope{EventID: "e1", EventTime: 1793577600000, AccountID: "acc-1", ProfileID: "pro-1-1",
		DeviceID: "dev-1-1", SessionID: "s1", Country: "DE", DeviceType: schemas.DeviceTV}
	return []schemas.Record{
		&schemas.Title{TitleID: "tt-1", Name: "A", Genres: []string{"drama"}, Type: schemas.TitleFilm},
		&schemas.Playback{Envelope: env, Kind: schemas.PlayStart, TitleID: "tt-1"},
		&schemas.Browse{Envelope: env, Kind: schemas.BrowseSearch, Query: "x"},
	}
}

func TestRecordsRoundTripThroughAFile(t *testing.T) {
	for _, name := range []string{"events.rec", "events.rec.gz"} {
		path := filepath.Join(t.TempDir(), name)
		f, err := Create(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range samples() {
			if err := f.Write(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		f, err = Open(path)
		if err != nil {
			t.Fatal(err)
		}
		dec := schemas.NewDecoder(schemas.Limits{})
		var got []schemas.Record
		for {
			s, v, err := f.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			r, err := dec.Decode(string(s), v)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, r)
		}
		f.Close()
		if diff := cmp.Diff(samples(), got); diff != "" {
			t.Fatalf("%s: records differ (-written +read):\n%s", name, diff)
		}
	}
}

func TestCorruptFilesAreErrorsNotPanics(t *testing.T) {
	check := func(input string) {
		t.Helper()
		r := NewReader(bytes.NewReader([]byte(input)))
		var err error
		for err == nil {
			_, _, err = r.Next()
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%q: got %v, want ErrCorrupt", input, err)
		}
	}
	check("")
	check("NOTMAGIC")
	check(Magic + "\x0bplayback.v1")
	check(Magic + "\x0bplayback.v1\xff\xff\xff\xff")
	check(Magic + "\x0bplayback.v1\x00\x00\x00\x05ab")
	if _, _, err := NewReader(bytes.NewReader([]byte(Magic))).Next(); err != io.EOF {
		t.Fatalf("an empty file: got %v, want io.EOF", err)
	}
}
