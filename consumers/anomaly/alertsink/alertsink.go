// Package alertsink is the anomaly role's outputs: the writer of the re-key
// topic (stage one's re-keyed records, see package anomaly) and the alert
// sink, which publishes alerts to the alert topic (key = subject, header
// atlas-schema alert.v1) and writes them to ClickHouse's alerts table.
//
// Both give each claimed partition its own handle, so that a checkpoint
// waits only for what its own partition sent, acknowledged by all in-sync
// replicas. Alerts go through kafka-go's asynchronous Writer; their
// handle's Flush sends again what failed, then inserts the alerts into
// ClickHouse. Re-keyed records go through a writer goroutine per
// partition (see Rekey), which keeps their order and retries a failed
// request in place; a re-key Send waits only while too many records are
// unacknowledged. A processor checkpoints only after Flush returned, so
// nothing is committed before it is durable.
//
// Delivery is at least once: a replay after a crash publishes the same
// alerts again, with the same ids. Consumers of the alert topic keep one
// alert per (id, status, severity); the alerts table collapses the copies
// (ReplacingMergeTree).
package alertsink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// tracker counts one claim's messages in flight on an asynchronous writer
// and keeps those that failed (the alert sink sends them again; the re-key
// writer reports them).
type tracker struct {
	mu       sync.Mutex
	inFlight int
	max      int
	idle     chan struct{} // closed while nothing is in flight
	room     chan struct{} // closed (and replaced) whenever messages complete
	failed   []kafka.Message
	lastErr  error
}

func newTracker(max int) *tracker {
	t := &tracker{max: max, idle: make(chan struct{}), room: make(chan struct{})}
	close(t.idle)
	return t
}

// add accounts for n messages about to be written; it blocks while more
// than max are in flight, so that a slow broker slows the sender.
func (t *tracker) add(ctx context.Context, n int) error {
	t.mu.Lock()
	for t.inFlight > 0 && t.inFlight+n > t.max {
		room := t.room
		t.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		}
		t.mu.Lock()
	}
	if t.inFlight == 0 {
		t.idle = make(chan struct{})
	}
	t.inFlight += n
	t.mu.Unlock()
	return nil
}

// done records the outcome of a batch.
func (t *tracker) done(msgs []kafka.Message, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.failed = append(t.failed, msgs...)
		t.lastErr = err
	}
	t.inFlight -= len(msgs)
	close(t.room)
	t.room = make(chan struct{})
	if t.inFlight == 0 {
		close(t.idle)
	}
}

// wait blocks until nothing is in flight and returns the messages that
// failed (to send again) and the last error.
func (t *tracker) wait(ctx context.Context) ([]kafka.Message, error) {
	t.mu.Lock()
	idle := t.idle
	t.mu.Unlock()
	select {
	case <-idle:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	failed, err := t.failed, t.lastErr
	t.failed, t.lastErr = nil, nil
	return failed, err
}

// completion routes a batch's outcome to the trackers of its messages.
func completion(msgs []kafka.Message, err error) {
	var cur *tracker
	start := 0
	for i := range msgs {
		tr, _ := msgs[i].WriterData.(*tracker)
		if tr != cur {
			if cur != nil {
				cur.done(msgs[start:i], err)
			}
			cur, start = tr, i
		}
	}
	if cur != nil {
		cur.done(msgs[start:], err)
	}
}

// flush waits for a tracker and sends again what failed, until nothing
// fails or ctx ends.
func flush(ctx context.Context, w *kafka.Writer, t *tracker, log *slog.Logger, what string) error {
	for attempt := 0; ; attempt++ {
		failed, err := t.wait(ctx)
		if err == nil && len(failed) == 0 {
			return nil
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		log.Warn("cannot write "+what+"; sending again", "messages", len(failed), "attempt", attempt+1, "err", err)
		if attempt >= 2 {
			// Leave the rest to the next checkpoint: the engine retries it
			// with backoff while the broker is down.
			if len(failed) > 0 {
				t.mu.Lock()
				t.failed = append(failed, t.failed...)
				t.mu.Unlock()
			}
			return fmt.Errorf("cannot write %s: %w", what, err)
		}
		if len(failed) == 0 {
			continue
		}
		if err := t.add(ctx, len(failed)); err != nil {
			return err
		}
		if err := w.WriteMessages(ctx, failed...); err != nil {
			t.done(failed, err)
		}
	}
}

// writerConfig holds what both writers share.
type writerConfig struct {
	brokers   []string
	topic     string
	transport *kafka.Transport
	balancer  kafka.Balancer
	batch     int
	timeout   time.Duration
}

func newWriter(c writerConfig, log *slog.Logger) *kafka.Writer {
	return &kafka.Writer{
		Addr:            kafka.TCP(c.brokers...),
		Topic:           c.topic,
		Transport:       c.transport,
		Balancer:        c.balancer,
		RequiredAcks:    kafka.RequireAll,
		Async:           true,
		Completion:      completion,
		BatchSize:       c.batch,
		BatchBytes:      1_000_000, // under the broker's message.max.bytes (1 MiB by default)
		BatchTimeout:    c.timeout,
		MaxAttempts:     30,
		WriteBackoffMin: 100 * time.Millisecond,
		WriteBackoffMax: 2 * time.Second,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			log.Debug("kafka-go writer: " + fmt.Sprintf(msg, args...))
		}),
	}
}
