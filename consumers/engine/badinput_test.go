package engine

import (
	"context"
	"io"
	"log/slog"
	"math"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/atlas-stream/atlas/consumers/stream"
	"github.com/atlas-stream/atlas/schemas"
	"github.com/atlas-stream/atlas/schemas/badinput"
)

// seen is a processor that records the event ids it was handed.
type seen struct{ ids []string }

func (s *seen) Process(_ context.Context, r *stream.Record) error {
	s.ids = append(s.ids, r.Value.(*schemas.Playback).EventID)
	return nil
}
func (s *seen) Checkpoint(context.Context) (stream.Checkpoint, error) {
	return stream.Checkpoint{Offset: -1}, nil
}
func (s *seen) Close() error { return nil }

// Every entry of the bad-input catalogue, fetched between two valid
// records, becomes one dead letter whose headers carry the source, the
// stage, the field and a reason that names the problem; the valid
// neighbours are processed, in order; and a bad record costs the engine no
// more memory than a small multiple of its size (plus the dead letter's
// copy of it).
func TestEveryCatalogueEntryBecomesADeadLetterWithItsReasonAndTheNeighboursAreProcessed(t *testing.T) {
	now := time.Now()
	r := &Runner{cfg: Config{Role: "test"}, log: slog.New(slog.NewTextHandler(io.Discard, nil)), metrics: newMetrics(nil, "test")}
	proc := &seen{}
	w := &claimState{r: r, log: r.log, claim: stream.Claim{Topic: "atlas.playback.v1", Partition: 4, Committed: -1, Processed: -1},
		proc: proc, dec: schemas.NewDecoder(schemas.Limits{}), next: -1,
		lag: r.metrics.lag.WithLabelValues("atlas.playback.v1", "4"), events: r.metrics.events.WithLabelValues("atlas.playback.v1")}
	offset := int64(100)
	msg := func(schema, key string, value []byte) kafka.Message {
		offset++
		return kafka.Message{Topic: "atlas.playback.v1", Partition: 4, Offset: offset, Key: []byte(key), Value: value, Time: now,
			Headers: []kafka.Header{{Key: schemas.HeaderSchema, Value: []byte(schema)}}}
	}
	valid := func(i int) kafka.Message {
		e := badinput.Valid(now, "pro-ok-"+strconv.Itoa(i))
		b, err := schemas.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		return msg(string(schemas.SchemaPlayback), e.ProfileID, b)
	}

	cases := badinput.Cases(now)
	var want []string
	byStage := map[string]int{}
	w.handle(context.Background(), valid(0))
	want = append(want, proc.ids[0])
	for i, c := range cases {
		bad := msg(c.Schema, c.Key, c.Value)
		before := len(w.deadLetters)
		allocated := bytesAllocated(func() {
			w.deadLetters = w.deadLetters[:before] // the three runs leave one dead letter
			w.handle(context.Background(), bad)
		})
		if limit := uint64(8192 + 4*len(c.Value)); allocated > limit {
			t.Errorf("%s: handling allocated %d bytes for %d bytes of input (limit %d)", c.Name, allocated, len(c.Value), limit)
		}
		if len(w.deadLetters) != before+1 {
			t.Fatalf("%s: %d dead letters, want one", c.Name, len(w.deadLetters)-before)
		}
		dl := w.deadLetters[before]
		h := map[string]string{}
		for _, x := range dl.Headers {
			h[x.Key] = string(x.Value)
		}
		switch {
		case string(dl.Value) != string(c.Value) || string(dl.Key) != c.Key:
			t.Errorf("%s: the dead letter does not carry the original key and bytes", c.Name)
		case h[schemas.HeaderSchema] != c.Schema:
			t.Errorf("%s: the dead letter lost the original headers: %v", c.Name, h)
		case h[HeaderDLQTopic] != "atlas.playback.v1" || h[HeaderDLQPartition] != "4" || h[HeaderDLQOffset] != strconv.FormatInt(bad.Offset, 10):
			t.Errorf("%s: the dead letter does not name its source: %v", c.Name, h)
		case h[HeaderDLQStage] != string(c.Stage):
			t.Errorf("%s: stage %q, want %q (%s)", c.Name, h[HeaderDLQStage], c.Stage, h[HeaderDLQError])
		case !c.MatchField(h[HeaderDLQField]):
			t.Errorf("%s: field %q, want %q (%s)", c.Name, h[HeaderDLQField], c.Field, h[HeaderDLQError])
		case !c.Match(h[HeaderDLQError]):
			t.Errorf("%s: reason %q does not match %q", c.Name, h[HeaderDLQError], c.Reason)
		}
		byStage[h[HeaderDLQStage]]++
		w.handle(context.Background(), valid(i+1))
		if len(proc.ids) != len(want)+1 {
			t.Fatalf("%s: the valid record after it was not processed", c.Name)
		}
		want = append(want, proc.ids[len(proc.ids)-1])
	}
	if len(w.deadLetters) != len(cases) {
		t.Fatalf("%d dead letters for %d bad records", len(w.deadLetters), len(cases))
	}
	if w.next != offset+1 {
		t.Fatalf("next offset %d, want %d: a bad record must be stepped over like any other", w.next, offset+1)
	}
	t.Logf("%d bad records → %d dead letters (decode %d, validate %d); %d valid neighbours processed in order",
		len(cases), len(w.deadLetters), byStage["decode"], byStage["validate"], len(proc.ids))
}

// bytesAllocated returns the heap bytes f allocates, the least of three
// runs (the runtime's background allocations land in the same counter).
func bytesAllocated(f func()) uint64 {
	least := uint64(math.MaxUint64)
	for range 3 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	return least
}
