package alertsink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/atlas-stream/atlas/consumers/anomaly"
	"github.com/atlas-stream/atlas/consumers/stream"
	"github.com/atlas-stream/atlas/internal/kafkaconn"
	"github.com/atlas-stream/atlas/schemas"
)

// RekeyConfig configures the re-key topic writer.
type RekeyConfig struct {
	Kafka kafkaconn.Config
	// Topic is the re-key topic's name on the cluster. Required.
	Topic string
	// MaxInFlight bounds the unacknowledged records per claim; Send blocks
	// past it. Default 20,000.
	MaxInFlight int
	// BatchTimeout is how long a partial batch waits for company. Default
	// 2 ms: stage two waits for the slowest input partition, so every
	// millisecond here is alert latency.
	BatchTimeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Rekey writes stage one's records to the re-key topic, in the partition
// of their subject ([anomaly.PartitionOf]). Safe for concurrent use; one
// handle per claim.
type Rekey struct {
	cfg RekeyConfig
	w   *kafka.Writer
	log *slog.Logger
}

// NewRekey returns a writer of the re-key topic. Nothing connects until the
// first write.
func NewRekey(cfg RekeyConfig) (*Rekey, error) {
	if cfg.Topic == "" {
		return nil, errors.New("cannot write the re-key topic: Topic is required")
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = 20_000
	}
	if cfg.BatchTimeout == 0 {
		cfg.BatchTimeout = 2 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	transport, err := cfg.Kafka.Transport()
	if err != nil {
		return nil, err
	}
	w := newWriter(writerConfig{brokers: cfg.Kafka.BrokerList(), topic: cfg.Topic, transport: transport,
		balancer: subjectBalancer{}, batch: 2000, timeout: cfg.BatchTimeout}, cfg.Logger)
	return &Rekey{cfg: cfg, w: w, log: cfg.Logger}, nil
}

// Claim returns the handle of one claimed input partition.
func (r *Rekey) Claim(c stream.Claim) (anomaly.Rekeyer, error) {
	return &rekeyHandle{r: r, t: newTracker(r.cfg.MaxInFlight),
		what: fmt.Sprintf("re-keyed records of %s/%d", c.Topic, c.Partition)}, nil
}

// Close flushes what is queued and closes the writer.
func (r *Rekey) Close() error { return r.w.Close() }

type rekeyHandle struct {
	r    *Rekey
	t    *tracker
	what string
	buf  []byte
}

var rekeyHeaders = map[schemas.Schema][]kafka.Header{
	schemas.SchemaPlayback: headers(schemas.SchemaPlayback),
	schemas.SchemaBrowse:   headers(schemas.SchemaBrowse),
}

func headers(s schemas.Schema) []kafka.Header {
	return []kafka.Header{{Key: schemas.HeaderSchema, Value: []byte(s)}, {Key: schemas.HeaderContentType, Value: []byte(schemas.ContentType)}}
}

// Send encodes rec and writes it asynchronously; it blocks only while
// MaxInFlight records are unacknowledged. An encoding error cannot happen
// for a record that decoded; it is logged and the record skipped.
func (h *rekeyHandle) Send(_ string, key []byte, rec schemas.Record) {
	v, err := schemas.Append(nil, rec)
	if err != nil {
		h.r.log.Error("BUG: cannot encode a decoded record for the re-key topic", "err", err)
		return
	}
	msg := kafka.Message{Key: append([]byte(nil), key...), Value: v, Headers: rekeyHeaders[rec.Schema()], WriterData: h.t}
	ctx := context.Background()
	if err := h.t.add(ctx, 1); err != nil {
		return
	}
	if err := h.r.w.WriteMessages(ctx, msg); err != nil {
		h.t.done([]kafka.Message{msg}, err)
	}
}

// Flush waits until everything sent is acknowledged.
func (h *rekeyHandle) Flush(ctx context.Context) error {
	return flush(ctx, h.r.w, h.t, h.r.log, h.what)
}

// Close drops the handle; the shared writer stays open.
func (h *rekeyHandle) Close() error { return nil }

// subjectBalancer puts a re-keyed record in the partition of its subject:
// the key up to its last '#'.
type subjectBalancer struct{}

func (subjectBalancer) Balance(msg kafka.Message, partitions ...int) int {
	return partitions[anomaly.PartitionOf(anomaly.SubjectOf(msg.Key), len(partitions))]
}
