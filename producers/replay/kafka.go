package replay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/atlas-stream/atlas/internal/kafkaconn"
	"github.com/atlas-stream/atlas/schemas"
	"github.com/atlas-stream/atlas/topology"
)

// This file is a stop-gap: a small Kafka sink for replays, until the
// producer library (producers/player) can take its place. It makes the same
// choices the library must make: acks from all in-sync replicas, Murmur2
// partitioning (Java clients put a key on the same partition), and the
// atlas-schema and content-type headers.

// KafkaConfig says where a [KafkaSink] writes.
type KafkaConfig struct {
	// Conn says how to reach the cluster.
	Conn kafkaconn.Config
	// Topology names the topics: playback events go to its Playback topic,
	// browse events to Browse, titles to Catalog.
	Topology topology.Topology
	// BatchSize is how many records are buffered before a write. Default
	// 2000.
	BatchSize int
	// Linger bounds how long a record waits in a partial batch: a Send
	// that finds the oldest buffered record older than this writes the
	// batch. Default 100 ms.
	Linger time.Duration
}

// KafkaConfig defaults.
const (
	DefaultBatchSize = 2000
	DefaultLinger    = 100 * time.Millisecond
)

func (c KafkaConfig) withDefaults() KafkaConfig {
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.Linger == 0 {
		c.Linger = DefaultLinger
	}
	return c
}

// Validate reports settings that cannot work.
func (c KafkaConfig) Validate() error {
	c = c.withDefaults()
	if err := c.Conn.Validate(); err != nil {
		return err
	}
	if err := c.Topology.Validate(); err != nil {
		return err
	}
	for _, topic := range []topology.Topic{topology.Playback, topology.Browse, topology.Catalog} {
		if _, ok := c.Topology.Topic(topic); !ok {
			return fmt.Errorf("the topology declares no %s topic: replay writes to it", topic)
		}
	}
	switch {
	case c.BatchSize < 1 || c.BatchSize > 100_000:
		return fmt.Errorf("invalid Kafka batch size %d: want 1 to 100000", c.BatchSize)
	case c.Linger < 0:
		return fmt.Errorf("invalid Kafka linger %s: must not be negative", c.Linger)
	}
	return nil
}

// KafkaSink writes records to Kafka in batches. It implements [Sink] and
// [Flusher]; Close flushes. One batch is written (and waits for the
// acknowledgement of all in-sync replicas) while the next one fills, so
// encoding and the round trip to Kafka overlap; batches are written one at
// a time, in order, so the records of one key keep their order. Memory is
// bounded by two batches. The Kafka timestamp of a record is its send
// time, not its event time, so that topic retention counts from the replay
// rather than from 1996. It is not safe for concurrent use.
type KafkaSink struct {
	cfg     KafkaConfig
	w       *kafka.Writer
	tr      *kafka.Transport
	topics  map[schemas.Schema]string
	headers map[schemas.Schema][]kafka.Header

	cur     *kafkaBatch      // being filled by Send
	free    chan *kafkaBatch // the other batch, once written
	pending chan *kafkaBatch // to the writer goroutine
	stopped chan struct{}    // closed when the writer goroutine returns
	closed  bool

	mu   sync.Mutex
	err  error // the first failed write; every later call returns it
	sent atomic.Int64
}

// kafkaBatch is a batch of messages and the encoded values they point into.
type kafkaBatch struct {
	ctx    context.Context // of the Send or Flush that handed it over
	msgs   []kafka.Message
	arena  []byte
	oldest time.Time
}

// NewKafkaSink checks that the playback, browse and catalog topics exist
// (so that a missing `atlas topology apply` fails at once, not after
// retries) and returns a sink writing to them. It starts one goroutine,
// which Close stops.
func NewKafkaSink(ctx context.Context, cfg KafkaConfig) (*KafkaSink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	tr, err := cfg.Conn.Transport()
	if err != nil {
		return nil, err
	}
	s := &KafkaSink{
		cfg: cfg,
		tr:  tr,
		topics: map[schemas.Schema]string{
			schemas.SchemaPlayback: cfg.Topology.Name(topology.Playback),
			schemas.SchemaBrowse:   cfg.Topology.Name(topology.Browse),
			schemas.SchemaCatalog:  cfg.Topology.Name(topology.Catalog),
		},
		headers: make(map[schemas.Schema][]kafka.Header),
		cur:     &kafkaBatch{msgs: make([]kafka.Message, 0, cfg.BatchSize)},
		free:    make(chan *kafkaBatch, 1),
		pending: make(chan *kafkaBatch, 1),
		stopped: make(chan struct{}),
	}
	s.free <- &kafkaBatch{msgs: make([]kafka.Message, 0, cfg.BatchSize)}
	for schema := range s.topics {
		s.headers[schema] = []kafka.Header{
			{Key: schemas.HeaderSchema, Value: []byte(schema)},
			{Key: schemas.HeaderContentType, Value: []byte(schemas.ContentType)},
		}
	}
	client := &kafka.Client{Addr: kafka.TCP(cfg.Conn.BrokerList()...), Transport: tr, Timeout: 30 * time.Second}
	names := []string{s.topics[schemas.SchemaPlayback], s.topics[schemas.SchemaBrowse], s.topics[schemas.SchemaCatalog]}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
	if err != nil {
		tr.CloseIdleConnections()
		return nil, fmt.Errorf("cannot read topic metadata from Kafka at %v: %w", cfg.Conn.BrokerList(), err)
	}
	for _, t := range md.Topics {
		if t.Error != nil {
			tr.CloseIdleConnections()
			if errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
				return nil, fmt.Errorf("cannot replay into topic %s: it does not exist; create Atlas's topics with `atlas topology apply`", t.Name)
			}
			return nil, fmt.Errorf("cannot replay into topic %s: %w", t.Name, t.Error)
		}
	}
	s.w = &kafka.Writer{
		Addr:         kafka.TCP(cfg.Conn.BrokerList()...),
		Transport:    tr,
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		// WriteMessages is called with whole batches; a partial
		// per-partition batch must not wait for more.
		// BatchBytes stays at kafka-go's default, 1 MiB: the broker's
		// default message.max.bytes refuses larger per-partition batches.
		BatchSize:    cfg.BatchSize,
		BatchTimeout: time.Millisecond,
	}
	go s.writeLoop()
	return s, nil
}

// writeLoop writes the batches handed over, in order, and returns each to
// free once written.
func (s *KafkaSink) writeLoop() {
	defer close(s.stopped)
	for b := range s.pending {
		if err := s.failed(); err == nil {
			if err := s.w.WriteMessages(b.ctx, b.msgs...); err != nil {
				s.fail(fmt.Errorf("cannot write %d records to Kafka: %w", len(b.msgs), summarize(err)))
				// A cancelled write may still be in flight and read
				// the batch: give it up rather than reuse it.
				b = &kafkaBatch{msgs: make([]kafka.Message, 0, s.cfg.BatchSize)}
			} else {
				s.sent.Add(int64(len(b.msgs)))
			}
		}
		clear(b.msgs)
		b.msgs, b.arena, b.ctx = b.msgs[:0], b.arena[:0], nil
		s.free <- b
	}
}

func (s *KafkaSink) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *KafkaSink) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

// Send encodes rec and buffers it. A full batch, or one whose oldest record
// is older than Linger, is handed to the writer; Send blocks while the
// previous batch is still being written. A failed write is returned by the
// Send (or Flush) after it, and by every later call: the replay stops.
func (s *KafkaSink) Send(ctx context.Context, rec schemas.Record) error {
	if err := s.failed(); err != nil {
		return err
	}
	if s.closed {
		return errors.New("cannot send to a closed Kafka sink")
	}
	schema := rec.Schema()
	topic, ok := s.topics[schema]
	if !ok {
		return fmt.Errorf("cannot replay a %s record: replay writes only playback, browse and catalog records", schema)
	}
	b := s.cur
	start := len(b.arena)
	arena, err := schemas.Append(b.arena, rec)
	if err != nil {
		return err
	}
	// The arena may move when it grows; values already sliced keep
	// pointing at the old array, which nothing writes to any more.
	b.arena = arena
	if len(b.msgs) == 0 {
		b.oldest = time.Now()
	}
	b.msgs = append(b.msgs, kafka.Message{
		Topic:   topic,
		Key:     []byte(rec.Key()),
		Value:   b.arena[start:len(b.arena):len(b.arena)],
		Headers: s.headers[schema],
	})
	if len(b.msgs) >= s.cfg.BatchSize || time.Since(b.oldest) >= s.cfg.Linger {
		s.handOver(ctx)
	}
	return nil
}

// handOver passes the current batch to the writer and takes the other one,
// waiting until it is written.
func (s *KafkaSink) handOver(ctx context.Context) {
	s.cur.ctx = ctx
	s.pending <- s.cur
	s.cur = <-s.free
}

// Flush hands over the buffered records and waits until Kafka has
// acknowledged everything sent so far, or a write failed.
func (s *KafkaSink) Flush(ctx context.Context) error {
	if s.closed {
		return s.failed()
	}
	if len(s.cur.msgs) > 0 {
		s.handOver(ctx)
	}
	// The other batch comes back when its write is done.
	select {
	case b := <-s.free:
		s.free <- b
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.failed()
}

// Sent returns how many records Kafka acknowledged.
func (s *KafkaSink) Sent() int { return int(s.sent.Load()) }

// Close flushes, stops the writer goroutine and closes the connections.
// It returns the first error of the sink's life.
func (s *KafkaSink) Close(ctx context.Context) error {
	if s.closed {
		return s.failed()
	}
	err := s.Flush(ctx)
	s.closed = true
	close(s.pending)
	<-s.stopped
	if cerr := s.w.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("cannot close the Kafka writer: %w", cerr)
	}
	s.tr.CloseIdleConnections()
	return err
}

// summarize shortens kafka-go's WriteErrors, which hold one error per
// message of the batch, to a count and the first error.
func summarize(err error) error {
	var we kafka.WriteErrors
	if !errors.As(err, &we) {
		return err
	}
	var first error
	n := 0
	for _, e := range we {
		if e != nil {
			n++
			if first == nil {
				first = e
			}
		}
	}
	if first == nil {
		return err
	}
	return fmt.Errorf("%d of %d failed, the first with: %w", n, len(we), first)
}
