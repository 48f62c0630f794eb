package erasure

import (
	"context"
	"slices"
	"testing"

	"github.com/atlas-stream/atlas/consumers/aggregates"
	"github.com/atlas-stream/atlas/consumers/enginetest"
	"github.com/atlas-stream/atlas/schemas"
)

type rowSink struct{ rows []aggregates.PlaybackRow }

func (s *rowSink) Write(_ context.Context, b *aggregates.Batch) error {
	s.rows = append(s.rows, b.Playback...)
	return nil
}

// Erasure finds a profile among a row's distinct viewers by the hash the
// aggregates role stores: if the two drifted apart, erase-profile would
// silently leave the profile in every minute it watched.
func TestProfileHashIsTheHashTheAggregatesRoleStores(t *testing.T) {
	sink := &rowSink{}
	f, err := aggregates.NewFactory(aggregates.Config{Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	h := enginetest.New(f)
	for _, id := range []string{"pro-42-1", "", "ü-profile"} {
		sink.rows = nil
		e := &schemas.Playback{Envelope: schemas.Envelope{EventID: "e-" + id, EventTime: 1_767_225_600_000, ProfileID: id,
			Country: "DE", DeviceType: schemas.DeviceTV}, Kind: schemas.PlayStart, TitleID: "t1"}
		if err := h.Feed("pb", 0, e); err != nil {
			t.Fatal(err)
		}
		if _, err := h.Checkpoint("pb", 0); err != nil {
			t.Fatal(err)
		}
		if len(sink.rows) != 1 || !slices.Contains(sink.rows[0].ViewerHashes, ProfileHash(id)) {
			t.Fatalf("profile %q: rows %+v, ProfileHash %d", id, sink.rows, ProfileHash(id))
		}
	}
}
