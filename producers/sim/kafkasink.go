package sim

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/atlas-stream/atlas/schemas"
	"github.com/atlas-stream/atlas/topology"
)

// KafkaSink writes records to Atlas's topics with a kafka-go Writer: the
// topic of each record's schema (with the topology's prefix), the record's
// key, the headers atlas-schema and content-type, and the Writer's
// balancer (Murmur2Balancer, see NewKafkaWriter) choosing the partition.
//
// Order: it buffers up to Batch records and writes them with one
// synchronous WriteMessages call, waiting for it before buffering more. The
// Writer writes each partition's batches one after another from one
// goroutine and retries a failed batch before the next one, so a
// partition receives records in the order they were sent. (A retry after a
// timeout whose first attempt did reach the broker writes that batch twice:
// kafka-go has no idempotent producer. The copies carry the same event ids,
// so consumers deduplicate them, but such extra copies are not in the
// ground truth's duplicate list.)
//
// This is a stand-in until producers/player's Producer can be used as the
// simulator's sink.
type KafkaSink struct {
	w       *kafka.Writer
	topo    topology.Topology
	batch   int
	linger  time.Duration
	buf     []kafka.Message
	arena   []byte
	first   time.Time
	headers map[schemas.Schema][]kafka.Header
}

// DefaultBatch is KafkaSink's batch size when none is given.
const DefaultBatch = 2000

// NewKafkaWriter returns the Writer KafkaSink expects: acks from all
// in-sync replicas, Murmur2Balancer (the partitioning the truth assumes),
// synchronous writes with batches flushed as soon as WriteMessages hands
// them over.
func NewKafkaWriter(brokers []string, transport kafka.RoundTripper) *kafka.Writer {
	return &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchSize:    DefaultBatch,
		BatchBytes:   16 << 20,
		BatchTimeout: time.Millisecond,
		MaxAttempts:  10,
		Transport:    transport,
	}
}

// NewKafkaSink returns a sink writing through w (see NewKafkaWriter) to the
// topics of topo. batch is the number of records per WriteMessages call
// (0: DefaultBatch). Buffered records older than 100 ms are written at the
// next Send, so a slow, paced run still delivers promptly.
//
// It lowers w.BatchSize to batch: kafka-go allocates every partition's
// batch at BatchSize messages (152 B each), however few it gets, and no
// partition gets more than one call's records. With 50 records per call
// to 2 × 12 partitions that was 7.3 MB allocated per call, 4 GB/s for
// make bench (f)'s background traffic at 30k events/s.
func NewKafkaSink(w *kafka.Writer, topo topology.Topology, batch int) *KafkaSink {
	if batch <= 0 {
		batch = DefaultBatch
	}
	if w.BatchSize > batch {
		w.BatchSize = batch
	}
	h := map[schemas.Schema][]kafka.Header{}
	for _, s := range schemas.Schemas() {
		h[s] = []kafka.Header{{Key: schemas.HeaderSchema, Value: []byte(s)}, {Key: schemas.HeaderContentType, Value: []byte(schemas.ContentType)}}
	}
	return &KafkaSink{w: w, topo: topo, batch: batch, linger: 100 * time.Millisecond, headers: h}
}

func topicOf(s schemas.Schema) topology.Topic {
	switch s {
	case schemas.SchemaPlayback:
		return topology.Playback
	case schemas.SchemaBrowse:
		return topology.Browse
	case schemas.SchemaCatalog:
		return topology.Catalog
	default:
		return topology.Alerts
	}
}

// LingerBatch is the batch to give NewKafkaSink so that a paced run at
// rate records/s writes as a producer lingering for linger would (the
// ingest gateway's producer lingers 10 ms): a call, and so a produce
// request per partition, per linger. It is at least 1.
//
// Much smaller calls cannot keep up: each waits for its acknowledgement
// before the next is built. At 23k records/s requested, calls of 50
// delivered 13.1k/s while `atlas run all` consumed them on the same
// machine; calls of 230 (10 ms worth) delivered 22.8k/s.
func LingerBatch(rate float64, linger time.Duration) int {
	return max(1, int(rate*linger.Seconds()))
}

// Send encodes rec and buffers it; a full buffer is written before Send
// returns.
func (k *KafkaSink) Send(ctx context.Context, rec schemas.Record) error {
	if len(k.buf) == 0 {
		k.first = time.Now()
		k.arena = k.arena[:0]
	}
	start := len(k.arena)
	var err error
	k.arena, err = schemas.Append(k.arena, rec)
	if err != nil {
		return err
	}
	schema := rec.Schema()
	k.buf = append(k.buf, kafka.Message{
		Topic:   k.topo.Name(topicOf(schema)),
		Key:     []byte(rec.Key()),
		Value:   k.arena[start:len(k.arena):len(k.arena)],
		Headers: k.headers[schema],
	})
	if len(k.buf) >= k.batch || time.Since(k.first) >= k.linger {
		return k.write(ctx)
	}
	return nil
}

func (k *KafkaSink) write(ctx context.Context) error {
	if len(k.buf) == 0 {
		return nil
	}
	// The arena may have grown (moved) while the batch was built: point
	// the values at its final backing array.
	off := 0
	for i := range k.buf {
		n := len(k.buf[i].Value)
		k.buf[i].Value = k.arena[off : off+n : off+n]
		off += n
	}
	if err := k.w.WriteMessages(ctx, k.buf...); err != nil {
		return fmt.Errorf("cannot write %d records to Kafka: %w", len(k.buf), err)
	}
	clear(k.buf)
	k.buf = k.buf[:0]
	return nil
}

// Flush writes what is buffered.
func (k *KafkaSink) Flush(ctx context.Context) error { return k.write(ctx) }
