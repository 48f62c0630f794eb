package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/segmentio/kafka-go"

	"github.com/atlas-stream/atlas/consumers/stream"
)

// commitMeta is what the engine stores in a commit's metadata string: the
// offset after the last processed record and the processor's own metadata.
type commitMeta struct {
	// V versions this format.
	V int `json:"v"`
	// Processed is the offset after the last record processed when the
	// commit was made.
	Processed int64 `json:"hi"`
	// Processor is the processor's Checkpoint.Metadata.
	Processor string `json:"p,omitempty"`
}

func encodeMeta(m commitMeta) string {
	m.V = 1
	b, err := json.Marshal(m)
	if err != nil {
		panic("BUG: cannot encode commit metadata: " + err.Error())
	}
	return string(b)
}

// decodeMeta reads commit metadata; metadata written by something else
// (another tool committed for the group) yields Processed -1, so every
// record is treated as new.
func decodeMeta(s string) commitMeta {
	var m commitMeta
	if s == "" || json.Unmarshal([]byte(s), &m) != nil || m.V != 1 {
		return commitMeta{Processed: -1}
	}
	return m
}

// fetchCommits reads the committed offset and metadata of every requested
// partition.
func (r *Runner) fetchCommits(ctx context.Context, topics map[string][]int) (map[topicPartition]stream.Claim, error) {
	res, err := r.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: r.cfg.Group, Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("cannot fetch offsets of group %s: %w", r.cfg.Group, err)
	}
	if res.Error != nil {
		return nil, fmt.Errorf("cannot fetch offsets of group %s: %w", r.cfg.Group, res.Error)
	}
	out := map[topicPartition]stream.Claim{}
	for topic, parts := range topics {
		got := map[int]kafka.OffsetFetchPartition{}
		for _, p := range res.Topics[topic] {
			got[p.Partition] = p
		}
		for _, id := range parts {
			p, ok := got[id]
			if ok && p.Error != nil {
				return nil, fmt.Errorf("cannot fetch offset of %s/%d: %w", topic, id, p.Error)
			}
			c := stream.Claim{Topic: topic, Partition: id, Committed: -1, Processed: -1}
			if ok && p.CommittedOffset >= 0 {
				m := decodeMeta(p.Metadata)
				c.Committed, c.Processed, c.Metadata = p.CommittedOffset, m.Processed, m.Processor
			}
			out[topicPartition{topic, id}] = c
		}
	}
	return out, nil
}

// ErrFenced is returned when the broker refuses a commit because this
// member no longer owns the partition in the current generation: another
// member took over, and this one must stop writing for it.
var ErrFenced = errors.New("commit refused: this member no longer owns the partition")

// commit commits one partition's offset with metadata under the
// generation's id and member id.
func (r *Runner) commit(ctx context.Context, gen *kafka.Generation, topic string, partition int, offset int64, meta commitMeta) error {
	res, err := r.client.OffsetCommit(ctx, &kafka.OffsetCommitRequest{
		GroupID:      r.cfg.Group,
		GenerationID: int(gen.ID),
		MemberID:     gen.MemberID,
		Topics: map[string][]kafka.OffsetCommit{
			topic: {{Partition: partition, Offset: offset, Metadata: encodeMeta(meta)}},
		},
	})
	if err != nil {
		return fmt.Errorf("cannot commit %s/%d at %d: %w", topic, partition, offset, err)
	}
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			if isFencing(p.Error) {
				return fmt.Errorf("%w (%s/%d, generation %d): %v", ErrFenced, topic, partition, gen.ID, p.Error)
			}
			return fmt.Errorf("cannot commit %s/%d at %d: %w", topic, partition, offset, p.Error)
		}
	}
	return nil
}

func isFencing(err error) bool {
	return errors.Is(err, kafka.IllegalGeneration) || errors.Is(err, kafka.UnknownMemberId) ||
		errors.Is(err, kafka.RebalanceInProgress) || errors.Is(err, kafka.FencedInstanceID)
}

// ProcessedOffset reads, from the metadata of a commit made by the engine,
// the offset after the last record processed when it was made; -1 when the
// metadata is not the engine's. The committed offset itself can be lower
// (a processor restarts open windows from their first record), so tools
// that ask "has the group processed everything?" compare this value with the
// end of the partition.
func ProcessedOffset(metadata string) int64 { return decodeMeta(metadata).Processed }
