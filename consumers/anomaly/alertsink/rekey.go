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
	"github.com/atlas-stream/atlas/internal/slab"
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
	// 3,000.
	MaxBatch int
	// MaxBatchBytes bounds the bytes of one write to one partition, keys,
	// values, headers and a per-record allowance. Default 1,000,000: the
	// broker refuses a batch over message.max.bytes (1 MiB by default).
	MaxBatchBytes int
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
//
// The request goes out through kafka.Client.Produce, not a kafka.Writer:
// the Writer allocates every batch at its full BatchSize (3,000 messages,
// 456 KB), however few records it carries, and holds a batch that is not
// full for its BatchTimeout. Live, a request carries a handful of records;
// those allocations were 82% of the bytes `atlas run all` allocated at
// 10k events/s, and the garbage collector 20% of its CPU samples.
//
// A partition's records reach the topic in the order sent, or not at all:
// stage two drops a record that comes after a later mark of its source.
// So a request that fails is sent again in place (back-off up to 2 s), and
// nothing queued behind it goes first; Flush meanwhile reports that the
// records are not durable (its context ends), and the claim does not
// commit. Only Close gives up: it fails the request and everything queued
// behind it, which the next owner of the claims sends again, in order,
// from their commits.
type Rekey struct {
	cfg    RekeyConfig
	client *kafka.Client
	log    *slog.Logger
	queues []*partitionQueue
	done   sync.WaitGroup
	// send writes one request to a partition (produce; tests replace it).
	send    func(p int, msgs []kafka.Message) error
	stop    chan struct{} // closed by Close
	stopped sync.Once
}

type partitionQueue struct {
	mu     sync.Mutex
	wake   chan struct{} // capacity 1
	msgs   []kafka.Message
	closed bool
	dead   bool // the writer goroutine returned: enqueue fails at once
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
	if cfg.MaxBatchBytes == 0 {
		cfg.MaxBatchBytes = 1_000_000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	transport, err := cfg.Kafka.Transport()
	if err != nil {
		return nil, err
	}
	client := &kafka.Client{Addr: kafka.TCP(cfg.Kafka.BrokerList()...), Transport: transport}
	r := &Rekey{cfg: cfg, client: client, log: cfg.Logger, stop: make(chan struct{})}
	r.send = r.produce
	for p := 0; p < cfg.Partitions; p++ {
		q := &partitionQueue{wake: make(chan struct{}, 1)}
		r.queues = append(r.queues, q)
		r.done.Add(1)
		go r.run(p, q)
	}
	return r, nil
}

// reuseQueue is the largest queue array (in messages, 152 B each) that a
// partition's writer keeps for the next requests; a backlog's larger ones
// are let go.
const reuseQueue = 4096

// run writes what is queued for partition p, one request at a time,
// until Close.
func (r *Rekey) run(p int, q *partitionQueue) {
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
			q.dead = true
			q.mu.Unlock()
			return
		}
		// The first message always goes; then as many as fit both bounds.
		// (A batch over the broker's limit is refused whole, every time:
		// catching up after a restart, the e2e kill test lost alerts to
		// such batches before this bound, when Flush still sent failed
		// records again behind later ones.)
		n, size := 1, batchBytes(&q.msgs[0])
		for n < len(q.msgs) && n < r.cfg.MaxBatch {
			size += batchBytes(&q.msgs[n])
			if size > r.cfg.MaxBatchBytes {
				break
			}
			n++
		}
		if n == len(q.msgs) && cap(q.msgs) <= reuseQueue {
			// Live, the whole queue goes: it becomes the batch, and the
			// last batch's (cleared) array becomes the queue. Growing a new
			// queue per request was 9% of the bytes atlas run all
			// allocated at 21k events/s.
			batch, q.msgs = q.msgs, batch[:0]
			if cap(q.msgs) > reuseQueue {
				q.msgs = nil
			}
		} else {
			batch = append(batch[:0], q.msgs[:n]...)
			clear(q.msgs[:n])
			q.msgs = q.msgs[n:]
			if len(q.msgs) == 0 {
				q.msgs = nil // let a backlog's array go
			}
		}
		q.mu.Unlock()

		if err := r.write(p, batch); err != nil {
			// Closing, and the request still fails: fail it and everything
			// queued behind it, so that none of it is written out of order.
			q.mu.Lock()
			rest := q.msgs
			q.msgs, q.dead = nil, true
			q.mu.Unlock()
			completion(batch, err)
			completion(rest, err)
			r.log.Error("stopped writing re-keyed records: the process is closing and a write still fails; the next owner of their input partitions sends them again",
				"partition", p, "records", len(batch)+len(rest), "err", err)
			return
		}
		completion(batch, nil)
		clear(batch)
	}
}

// Back-off between two attempts of a failed request: 100 ms doubling to
// retryPause, as kafka-go's Writer does between its own retries. Failures
// shorter than quietAttempts attempts (≈ 1.5 s: a leader election) are
// logged at debug level only.
const (
	retryBackoffMin = 100 * time.Millisecond
	retryPause      = 2 * time.Second
	quietAttempts   = 5
)

// write sends msgs to partition p until it succeeds; it returns the error
// only when Close was called while the request was failing.
func (r *Rekey) write(p int, msgs []kafka.Message) error {
	backoff := retryBackoffMin
	for attempt := 1; ; attempt++ {
		err := r.send(p, msgs)
		if err == nil {
			if attempt >= quietAttempts {
				r.log.Info("re-keyed records written after failed attempts", "partition", p, "attempts", attempt)
			}
			return nil
		}
		level := slog.LevelDebug
		if attempt >= quietAttempts {
			level = slog.LevelWarn
		}
		r.log.Log(context.Background(), level, "cannot write re-keyed records; trying again, the records behind them wait",
			"partition", p, "records", len(msgs), "attempt", attempt, "err", err)
		select {
		case <-r.stop:
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, retryPause)
	}
}

// batchBytes is what m adds to a record batch, at most: key, value,
// headers, and 32 bytes for the lengths, deltas and attributes.
func batchBytes(m *kafka.Message) int {
	n := len(m.Key) + len(m.Value) + 32
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value) + 10
	}
	return n
}

// produceTimeout bounds one produce request.
const produceTimeout = 10 * time.Second

// produce writes msgs to partition p in one request, acknowledged by every
// in-sync replica. write retries it.
func (r *Rekey) produce(p int, msgs []kafka.Message) error {
	// A request reads its records' keys and values out (they are readers),
	// so each attempt builds its own; an attempt given up on its context
	// may still be encoded by the connection's goroutine.
	recs := make([]kafka.Record, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		recs[i] = kafka.Record{Key: kafka.NewBytes(m.Key), Value: kafka.NewBytes(m.Value), Headers: m.Headers}
	}
	ctx, cancel := context.WithTimeout(context.Background(), produceTimeout)
	defer cancel()
	res, err := r.client.Produce(ctx, &kafka.ProduceRequest{Topic: r.cfg.Topic, Partition: p,
		RequiredAcks: kafka.RequireAll, Records: kafka.NewRecordReader(recs...)})
	if err == nil {
		err = res.Error
	}
	if err == nil {
		for _, e := range res.RecordErrors {
			err = e
			break
		}
	}
	if err != nil {
		return fmt.Errorf("cannot write %d records to %s/%d: %w", len(msgs), r.cfg.Topic, p, err)
	}
	return nil
}

// errWriterStopped fails what is sent after a partition's writer stopped.
var errWriterStopped = errors.New("the re-key writer is closed")

func (r *Rekey) enqueue(msg kafka.Message) {
	q := r.queues[anomaly.PartitionOf(anomaly.SubjectOf(msg.Key), len(r.queues))]
	q.mu.Lock()
	if q.dead {
		q.mu.Unlock()
		completion([]kafka.Message{msg}, errWriterStopped)
		return
	}
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

// Close writes what is queued and stops the partition writers. Closing, a
// request is tried at most once (an attempt takes up to 10 s): one that
// fails is given up, with everything queued behind it, and what is sent
// after fails at once.
func (r *Rekey) Close() error {
	r.stopped.Do(func() { close(r.stop) })
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
	return nil
}

type rekeyHandle struct {
	r    *Rekey
	t    *tracker
	what string
	// broken: a record could not be queued or written; every Flush fails
	// from then on, so that the claim never commits past it. (Send and
	// Flush run on the claim's goroutine.)
	broken error
	// lastRec was encoded as lastValue (see Send).
	lastRec   schemas.Record
	lastValue []byte
	// slab holds the keys and values of the messages sent: they live
	// until acknowledged, and copying each into an allocation of its own
	// was 3.8 allocations per event in stage one (a key per view and
	// mark, a value per event).
	slab slab.Slab
}

// valueHint is the room Send makes for an encoded record: simulated
// playback and browse records take 200–300 bytes.
const valueHint = 512

var rekeyHeaders = map[schemas.Schema][]kafka.Header{
	schemas.SchemaPlayback: headers(schemas.SchemaPlayback),
	schemas.SchemaBrowse:   headers(schemas.SchemaBrowse),
}

func headers(s schemas.Schema) []kafka.Header {
	return []kafka.Header{{Key: schemas.HeaderSchema, Value: []byte(s)}, {Key: schemas.HeaderContentType, Value: []byte(schemas.ContentType)}}
}

// Send encodes rec and queues it for its partition's writer; it blocks
// while MaxInFlight records of the claim are unacknowledged, until ctx
// ends (the claim is revoked or the process stops): the record is then
// dropped and the handle broken. An encoding error cannot happen for a
// record that decoded; it is logged and the record skipped.
func (h *rekeyHandle) Send(ctx context.Context, key []byte, rec schemas.Record) {
	if h.broken != nil {
		return
	}
	// Stage one sends a record once per view and again as a mark: encode
	// it once. The bytes are never written to after, so the messages can
	// share them.
	v := h.lastValue
	if rec != h.lastRec || v == nil {
		var err error
		if v, err = schemas.Append(h.slab.Tail(valueHint), rec); err != nil {
			h.r.log.Error("BUG: cannot encode a decoded record for the re-key topic", "err", err)
			return
		}
		v = h.slab.Keep(v)
		h.lastRec, h.lastValue = rec, v
	}
	if err := h.t.add(ctx, 1); err != nil {
		h.broken = fmt.Errorf("a re-keyed record was not sent (%w): %s cannot be committed past it", err, h.what)
		return
	}
	h.r.enqueue(kafka.Message{Key: h.slab.Copy(key), Value: v, Headers: rekeyHeaders[rec.Schema()], WriterData: h.t})
}

// Flush waits until everything sent is acknowledged. It does not send a
// failed record again: behind records sent after it, stage two would drop
// it. A partition's writer retries in place until Close; after Close, what
// failed is the next owner's to send, from the claim's commit, which a
// failed Flush keeps where it is.
func (h *rekeyHandle) Flush(ctx context.Context) error {
	if h.broken != nil {
		return h.broken
	}
	failed, err := h.t.wait(ctx)
	if err != nil && len(failed) == 0 {
		return err
	}
	if len(failed) > 0 {
		// Never again nil: a later Flush must not let the claim commit.
		h.broken = fmt.Errorf("cannot write %d %s: %w", len(failed), h.what, err)
		return h.broken
	}
	return nil
}

// Close drops the handle; the shared writer stays open.
func (h *rekeyHandle) Close() error { return nil }
