package alertsink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
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
	// Partitions of the re-key topic. Required.
	Partitions int
	// MaxInFlight bounds the unacknowledged records per claim; Send blocks
	// past it. Default 20,000.
	MaxInFlight int
	// MaxBatch bounds the records of one write to one partition. Default
	// 3,000 (the broker takes at most 1 MiB per batch).
	MaxBatch int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Rekey writes stage one's records to the re-key topic, in the partition
// of their subject ([anomaly.PartitionOf]). Safe for concurrent use; one
// handle per claim.
//
// Each partition has one writer goroutine that sends, in one request,
// everything queued for the partition while its previous request was in
// flight: a batch grows with the load instead of a backlog of small ones
// (kafka-go's asynchronous writer cuts batches on a timer and queues them
// one request at a time, which falls behind once the round trip is longer
// than the timer). At low load a record waits only for the round trip.
type Rekey struct {
	cfg    RekeyConfig
	w      *kafka.Writer
	log    *slog.Logger
	queues []*partitionQueue
	done   sync.WaitGroup
}

type partitionQueue struct {
	mu     sync.Mutex
	wake   chan struct{} // capacity 1
	msgs   []kafka.Message
	closed bool
}

// NewRekey returns a writer of the re-key topic and starts its partition
// writers; Close stops them. Nothing connects until the first write.
func NewRekey(cfg RekeyConfig) (*Rekey, error) {
	if cfg.Topic == "" || cfg.Partitions < 1 {
		return nil, errors.New("cannot write the re-key topic: Topic and Partitions are required")
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = 20_000
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = 3000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	transport, err := cfg.Kafka.Transport()
	if err != nil {
		return nil, err
	}
	w := newWriter(writerConfig{brokers: cfg.Kafka.BrokerList(), topic: cfg.Topic, transport: transport,
		balancer: subjectBalancer{}, batch: cfg.MaxBatch, timeout: time.Millisecond}, cfg.Logger)
	w.Async, w.Completion = false, nil
	r := &Rekey{cfg: cfg, w: w, log: cfg.Logger}
	for p := 0; p < cfg.Partitions; p++ {
		q := &partitionQueue{wake: make(chan struct{}, 1)}
		r.queues = append(r.queues, q)
		r.done.Add(1)
		go r.run(q)
	}
	return r, nil
}

// run writes what is queued for one partition, one request at a time,
// until Close.
func (r *Rekey) run(q *partitionQueue) {
	defer r.done.Done()
	var batch []kafka.Message
	for {
		q.mu.Lock()
		for len(q.msgs) == 0 && !q.closed {
			q.mu.Unlock()
			<-q.wake
			q.mu.Lock()
		}
		if len(q.msgs) == 0 && q.closed {
			q.mu.Unlock()
			return
		}
		n := min(len(q.msgs), r.cfg.MaxBatch)
		batch = append(batch[:0], q.msgs[:n]...)
		clear(q.msgs[:n])
		q.msgs = q.msgs[n:]
		if len(q.msgs) == 0 {
			q.msgs = nil // let the backing array go
		}
		q.mu.Unlock()

		err := r.w.WriteMessages(context.Background(), batch...)
		var werrs kafka.WriteErrors
		if errors.As(err, &werrs) && len(werrs) == len(batch) {
			for i := range batch {
				completion(batch[i:i+1], werrs[i])
			}
		} else {
			completion(batch, err)
		}
		clear(batch)
	}
}

func (r *Rekey) enqueue(msg kafka.Message) {
	q := r.queues[anomaly.PartitionOf(anomaly.SubjectOf(msg.Key), len(r.queues))]
	q.mu.Lock()
	q.msgs = append(q.msgs, msg)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Claim returns the handle of one claimed input partition.
func (r *Rekey) Claim(c stream.Claim) (anomaly.Rekeyer, error) {
	return &rekeyHandle{r: r, t: newTracker(r.cfg.MaxInFlight),
		what: fmt.Sprintf("re-keyed records of %s/%d", c.Topic, c.Partition)}, nil
}

// Close writes what is queued, stops the partition writers and closes the
// Kafka writer.
func (r *Rekey) Close() error {
	for _, q := range r.queues {
		q.mu.Lock()
		q.closed = true
		q.mu.Unlock()
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	r.done.Wait()
	return r.w.Close()
}

type rekeyHandle struct {
	r    *Rekey
	t    *tracker
	what string
	// lastRec was encoded as lastValue (see Send).
	lastRec   schemas.Record
	lastValue []byte
}

var rekeyHeaders = map[schemas.Schema][]kafka.Header{
	schemas.SchemaPlayback: headers(schemas.SchemaPlayback),
	schemas.SchemaBrowse:   headers(schemas.SchemaBrowse),
}

func headers(s schemas.Schema) []kafka.Header {
	return []kafka.Header{{Key: schemas.HeaderSchema, Value: []byte(s)}, {Key: schemas.HeaderContentType, Value: []byte(schemas.ContentType)}}
}

// Send encodes rec and queues it for its partition's writer; it blocks
// only while MaxInFlight records of the claim are unacknowledged. An
// encoding error cannot happen for a record that decoded; it is logged and
// the record skipped.
func (h *rekeyHandle) Send(key []byte, rec schemas.Record) {
	// Stage one sends a record once per view and again as a mark: encode
	// it once. The bytes are never written to after, so the messages can
	// share them.
	v := h.lastValue
	if rec != h.lastRec || v == nil {
		var err error
		if v, err = schemas.Append(nil, rec); err != nil {
			h.r.log.Error("BUG: cannot encode a decoded record for the re-key topic", "err", err)
			return
		}
		h.lastRec, h.lastValue = rec, v
	}
	if err := h.t.add(context.Background(), 1); err != nil {
		return
	}
	h.r.enqueue(kafka.Message{Key: append([]byte(nil), key...), Value: v, Headers: rekeyHeaders[rec.Schema()], WriterData: h.t})
}

// Flush waits until everything sent is acknowledged, sending again what
// failed.
func (h *rekeyHandle) Flush(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		failed, err := h.t.wait(ctx)
		if err == nil && len(failed) == 0 {
			return nil
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		h.r.log.Warn("cannot write "+h.what+"; sending again", "messages", len(failed), "attempt", attempt+1, "err", err)
		if err := h.t.add(ctx, len(failed)); err != nil {
			return err
		}
		for _, m := range failed {
			h.r.enqueue(m)
		}
		if attempt >= 2 {
			return fmt.Errorf("cannot write %s: %w", h.what, err)
		}
	}
}

// Close drops the handle; the shared writer stays open.
func (h *rekeyHandle) Close() error { return nil }

// subjectBalancer puts a re-keyed record in the partition of its subject:
// the key up to its last '#'.
type subjectBalancer struct{}

func (subjectBalancer) Balance(msg kafka.Message, partitions ...int) int {
	return partitions[anomaly.PartitionOf(anomaly.SubjectOf(msg.Key), len(partitions))]
}
