// Package enginetest runs processors in memory, the way the engine runs
// them against Kafka: one log per topic-partition, records handed over in
// offset order, checkpoints, commits, and crashes that restart a processor
// from its last commit and replay the log from there. Processor tests use it
// to check, in microseconds, that a crash at any point yields the same
// outputs as a run without one.
package enginetest

import (
	"context"
	"fmt"

	"github.com/atlas-stream/atlas/consumers/stream"
	"github.com/atlas-stream/atlas/schemas"
)

// Harness holds the logs, the committed positions and the live processors.
// It is not safe for concurrent use.
type Harness struct {
	factory stream.Factory
	parts   map[tp]*partition
}

type tp struct {
	topic     string
	partition int
}

type partition struct {
	log       []schemas.Record
	proc      stream.Processor
	next      int64 // next offset to hand to the processor
	committed stream.Claim
}

// New returns a harness that builds processors with factory.
func New(factory stream.Factory) *Harness {
	return &Harness{factory: factory, parts: map[tp]*partition{}}
}

func (h *Harness) part(topic string, p int) (*partition, error) {
	k := tp{topic, p}
	if pt := h.parts[k]; pt != nil {
		return pt, nil
	}
	pt := &partition{committed: stream.Claim{Topic: topic, Partition: p, Committed: -1, Processed: -1}}
	proc, err := h.factory(context.Background(), pt.committed)
	if err != nil {
		return nil, fmt.Errorf("cannot create processor for %s/%d: %w", topic, p, err)
	}
	pt.proc = proc
	h.parts[k] = pt
	return pt, nil
}

// Append adds records to a partition's log without processing them.
func (h *Harness) Append(topic string, p int, recs ...schemas.Record) error {
	pt, err := h.part(topic, p)
	if err != nil {
		return err
	}
	pt.log = append(pt.log, recs...)
	return nil
}

// Feed appends records and processes everything not yet processed.
func (h *Harness) Feed(topic string, p int, recs ...schemas.Record) error {
	if err := h.Append(topic, p, recs...); err != nil {
		return err
	}
	return h.Process(topic, p, -1)
}

// Process hands up to n unprocessed records (all when n < 0) of a
// partition to its processor.
func (h *Harness) Process(topic string, p, n int) error {
	pt, err := h.part(topic, p)
	if err != nil {
		return err
	}
	for ; pt.next < int64(len(pt.log)) && n != 0; n-- {
		off := pt.next
		r := &stream.Record{Topic: topic, Partition: p, Offset: off, Key: []byte(pt.log[off].Key()),
			Value: pt.log[off], Replay: pt.committed.Processed >= 0 && off < pt.committed.Processed}
		pt.next++
		if err := pt.proc.Process(context.Background(), r); err != nil {
			return fmt.Errorf("process %s/%d@%d: %w", topic, p, off, err)
		}
	}
	return nil
}

// Pending reports how many records of a partition are not processed yet.
func (h *Harness) Pending(topic string, p int) int {
	if pt := h.parts[tp{topic, p}]; pt != nil {
		return len(pt.log) - int(pt.next)
	}
	return 0
}

// Checkpoint checkpoints a partition's processor and commits what it
// returns, as the engine would.
func (h *Harness) Checkpoint(topic string, p int) (stream.Checkpoint, error) {
	pt, err := h.part(topic, p)
	if err != nil {
		return stream.Checkpoint{}, err
	}
	cp, err := pt.proc.Checkpoint(context.Background())
	if err != nil {
		return cp, err
	}
	off := cp.Offset
	if off < 0 || off > pt.next {
		off = pt.next
	}
	// A checkpoint in the middle of a replay must not forget how far the
	// log was processed before the crash.
	pt.committed.Committed, pt.committed.Processed, pt.committed.Metadata = off, max(pt.next, pt.committed.Processed), cp.Metadata
	return cp, nil
}

// Crash drops a partition's processor without a checkpoint and builds a new
// one from the last commit, which then replays the log from the committed
// offset on the next Process.
func (h *Harness) Crash(topic string, p int) error {
	pt, err := h.part(topic, p)
	if err != nil {
		return err
	}
	proc, err := h.factory(context.Background(), pt.committed)
	if err != nil {
		return fmt.Errorf("cannot restore %s/%d: %w", topic, p, err)
	}
	pt.proc = proc
	pt.next = max(pt.committed.Committed, 0)
	return nil
}

// Committed returns a partition's last commit.
func (h *Harness) Committed(topic string, p int) stream.Claim {
	if pt := h.parts[tp{topic, p}]; pt != nil {
		return pt.committed
	}
	return stream.Claim{Topic: topic, Partition: p, Committed: -1, Processed: -1}
}
