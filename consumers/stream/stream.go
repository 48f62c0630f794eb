// Package stream is the contract between the consumer engine and the
// processors of the roles: the record a processor sees, the claim it
// restores from, and the checkpoint it returns. It imports neither kafka-go
// nor clickhouse-go, so processors that depend only on it stay pure and can
// be tested in microseconds (see consumers/enginetest).
//
// # Contract
//
// A [Processor] owns the state of one topic-partition (a claim). The engine
// calls it from one goroutine: Process for every valid record in offset
// order, then, periodically and when the claim is revoked or the process
// stops, Checkpoint. Checkpoint must make every output derived from the
// records processed so far durable and return where a restart must resume
// and a metadata string to hand back in the next [Claim]. The engine commits
// only after Checkpoint returned.
//
// A restart (or the next owner) gets every record from the committed offset
// again. Records below [Claim.Processed] were processed before; their
// one-off side effects are durable already, and [Record.Replay] says so.
package stream

import (
	"context"

	"github.com/atlas-stream/atlas/schemas"
)

// Record is one valid input record handed to a processor. Value is owned by
// the processor once handed over; Key aliases fetch memory: copy what you
// keep. The Record itself is reused for the next record: keep its fields,
// not the pointer.
type Record struct {
	Topic     string
	Partition int
	Offset    int64
	Key       []byte
	Value     schemas.Record
	// Replay is true when this offset was processed before a restart: its
	// one-off side effects (late-event rows, dead letters) are durable
	// already and must not be produced again.
	Replay bool
}

// Claim describes a topic-partition being handed to a processor.
type Claim struct {
	Topic     string
	Partition int
	// Committed is the offset the engine resumes from, or -1 when the group
	// never committed for this partition (the engine then starts at
	// Config.StartOffset).
	Committed int64
	// Processed is the offset after the last record processed before the
	// last commit (≥ Committed), or -1 when unknown.
	Processed int64
	// Metadata is what the processor's last Checkpoint returned ("" if none).
	Metadata string
}

// Checkpoint is what a processor returns once its outputs are durable.
type Checkpoint struct {
	// Offset is where a restart must resume: every record below it is fully
	// reflected in durable outputs. It may be below the next offset (open
	// windows are recomputed from their first record). A negative value means
	// "the next offset".
	Offset int64
	// Metadata is handed back in Claim.Metadata after a restart. Keep it
	// small: the broker limits commit metadata (4 KiB by default).
	Metadata string
}

// Processor is the per-partition logic of a role; see the package doc.
type Processor interface {
	// Process handles one valid record. An error is treated like a panic:
	// the record goes to the dead-letter topic with the error as reason.
	Process(ctx context.Context, r *Record) error
	// Checkpoint makes outputs durable and says where to resume. It is
	// retried with backoff while it returns errors (a sink that is down);
	// the engine does not fetch meanwhile.
	Checkpoint(ctx context.Context) (Checkpoint, error)
	// Close releases the claim's resources after its last Checkpoint (or
	// after a failure, without one).
	Close() error
}

// Factory builds the processor of a claim, restoring its state.
type Factory func(ctx context.Context, c Claim) (Processor, error)
