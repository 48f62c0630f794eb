package sim

import (
	"context"
	"testing"
	"time"

	"github.com/atlas-stream/atlas/schemas"
)

type keepSink struct{ recs []schemas.Record }

func (k *keepSink) Send(_ context.Context, rec schemas.Record) error {
	k.recs = append(k.recs, rec)
	return nil
}
func (*keepSink) Flush(context.Context) error { return nil }

func TestWallClockStampsEventsAsTheyAreSent(t *testing.T) {
	var k keepSink
	w := WallClock{Sink: &k}
	before := time.Now().UnixMilli()
	old := int64(1_000)
	recs := []schemas.Record{
		&schemas.Playback{Envelope: schemas.Envelope{EventTime: old, ReceiveTime: old}},
		&schemas.Browse{Envelope: schemas.Envelope{EventTime: old, ReceiveTime: old}},
		&schemas.Title{TitleID: "tt-1"},
	}
	for _, r := range recs {
		if err := w.Send(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	after := time.Now().UnixMilli()
	if len(k.recs) != 3 {
		t.Fatalf("forwarded %d records, want 3", len(k.recs))
	}
	for _, e := range []schemas.Envelope{k.recs[0].(*schemas.Playback).Envelope, k.recs[1].(*schemas.Browse).Envelope} {
		if e.EventTime < before || e.EventTime > after || e.ReceiveTime != e.EventTime {
			t.Errorf("event time %d, receive time %d: want the wall clock between %d and %d", e.EventTime, e.ReceiveTime, before, after)
		}
	}
}
