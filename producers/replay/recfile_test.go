package replay

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/atlas-stream/atlas/producers/sim/recfile"
	"github.com/atlas-stream/atlas/schemas"
)

// `atlas replay --out` writes the simulator's record file format; this pins
// that a replay survives the trip, so that offline tools read both alike.
func TestAReplayRoundTripsThroughARecordFile(t *testing.T) {
	rows := randomRows(300, 10)
	movies := []Movie{{ID: 1, Name: "Misérables, Les", Genres: []string{"drama"}, ReleaseDate: "1995-01-01"}}
	var buf bytes.Buffer
	w := recfile.NewWriter(&buf)
	sink := SinkFunc(func(_ context.Context, rec schemas.Record) error { return w.Write(rec) })
	ctx := context.Background()
	if _, err := SendCatalog(ctx, movies, sink); err != nil {
		t.Fatal(err)
	}
	g, _ := NewGenerator(Config{})
	if _, err := g.Run(ctx, rows, sink); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}

	want, _ := run(t, Config{}, rows)
	want = append([]schemas.Record{TitleOf(movies[0])}, want...)
	r := recfile.NewReader(&buf)
	d := schemas.NewDecoder(schemas.Limits{})
	for i, rec := range want {
		schema, value, err := r.Next()
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		got, err := d.Decode(string(schema), value)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if diff := cmp.Diff(rec, got); diff != "" {
			t.Fatalf("record %d (-sent +read):\n%s", i, diff)
		}
	}
	if _, _, err := r.Next(); err != io.EOF {
		t.Fatalf("after the last record: %v, want io.EOF", err)
	}
}
