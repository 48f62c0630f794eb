package changelog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/atlas-stream/atlas/internal/kafkaconn"
)

// Follower reads one partition of a topic from its start and keeps
// reading, handing every record to Apply: a compacted topic read as a
// table. Each member runs its own (no consumer group).
type Follower struct {
	Kafka     kafkaconn.Config
	Topic     string
	Partition int
	// Apply is called for every record in offset order, from Run's
	// goroutine. An error is logged and the record skipped: one bad record
	// must not stop a table.
	Apply func(key, value []byte) error
	// Logger defaults to slog.Default().
	Logger *slog.Logger

	mu      sync.Mutex
	next    int64 // offset after the last record applied
	changed chan struct{}
}

// Run reads until ctx ends. It returns an error only when it cannot start.
func (f *Follower) Run(ctx context.Context) error {
	log := f.Logger
	if log == nil {
		log = slog.Default()
	}
	dialer, err := f.Kafka.Dialer()
	if err != nil {
		return err
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: f.Kafka.BrokerList(), Dialer: dialer, Topic: f.Topic, Partition: f.Partition,
		MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 100 * time.Millisecond, QueueCapacity: 1000,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) { log.Debug("kafka-go follower: " + fmt.Sprintf(msg, args...)) }),
	})
	defer r.Close()
	if err := r.SetOffset(kafka.FirstOffset); err != nil {
		return fmt.Errorf("cannot read %s from its start: %w", f.Topic, err)
	}
	for {
		msg, err := r.ReadMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Warn("cannot read table topic; retrying", "topic", f.Topic, "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			continue
		}
		if err := f.Apply(msg.Key, msg.Value); err != nil {
			log.Warn("skipping a record of a table topic", "topic", f.Topic, "offset", msg.Offset, "err", err)
		}
		f.mu.Lock()
		f.next = msg.Offset + 1
		if f.changed != nil {
			close(f.changed)
			f.changed = nil
		}
		f.mu.Unlock()
	}
}

// Next returns the offset after the last record applied.
func (f *Follower) Next() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.next
}

// WaitEnd returns once every record written to the partition before the
// call has been applied, or when ctx ends.
func (f *Follower) WaitEnd(ctx context.Context) error {
	end, err := EndOffset(ctx, f.Kafka, f.Topic, f.Partition)
	if err != nil {
		return err
	}
	// A compacted topic can end in a gap (the last records removed), so
	// also accept a follower that has read everything there is: it polls
	// and finds nothing. Compaction never removes the latest record of a
	// key, so the gap holds only superseded records.
	for {
		f.mu.Lock()
		if f.next >= end {
			f.mu.Unlock()
			return nil
		}
		if f.changed == nil {
			f.changed = make(chan struct{})
		}
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		case <-time.After(2 * time.Second):
			if ok, err := f.atEnd(ctx, end); err != nil || ok {
				return err
			}
		}
	}
}

// atEnd reports whether nothing remains to read below end.
func (f *Follower) atEnd(ctx context.Context, end int64) (bool, error) {
	dialer, err := f.Kafka.Dialer()
	if err != nil {
		return false, err
	}
	conn, err := dialer.DialLeader(ctx, "tcp", f.Kafka.BrokerList()[0], f.Topic, f.Partition)
	if err != nil {
		return false, nil
	}
	defer conn.Close()
	next := f.Next()
	if _, err := conn.Seek(next, kafka.SeekAbsolute|kafka.SeekDontCheck); err != nil {
		return false, nil
	}
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	b := conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond})
	_, err = b.ReadMessage()
	b.Close()
	return err != nil && next < end && !errors.Is(err, context.Canceled), nil
}

// EndOffset returns the offset after the last record of a partition. It
// retries while the partition has no leader yet (a topic just created) or
// the metadata is stale, until ctx ends.
func EndOffset(ctx context.Context, kc kafkaconn.Config, topic string, partition int) (int64, error) {
	client, err := kc.Client()
	if err != nil {
		return 0, err
	}
	wait := 50 * time.Millisecond
	for {
		res, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{
			Topics: map[string][]kafka.OffsetRequest{topic: {kafka.LastOffsetOf(partition)}}})
		if err == nil {
			for _, p := range res.Topics[topic] {
				if p.Partition == partition {
					if p.Error == nil {
						return p.LastOffset, nil
					}
					err = p.Error
				}
			}
			if err == nil {
				err = fmt.Errorf("no answer for partition %d", partition)
			}
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("cannot read the end of %s/%d: %w", topic, partition, err)
		case <-time.After(wait):
			wait = min(2*wait, time.Second)
		}
	}
}
