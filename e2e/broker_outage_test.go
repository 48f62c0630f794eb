//go:build integration

package e2e

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/atlas-stream/atlas/producers/sim"
	"github.com/atlas-stream/atlas/schemas"
	"github.com/atlas-stream/atlas/topology"
)

// ledgerSink is the producer of the broker-outage scenario: the
// simulator's events through a kafka-go Writer configured as the
// simulator's (acks=all, Murmur2 partitioning), retrying each record until
// Kafka acknowledges it, and recording every acknowledged event id — the
// ledger. A write is one batch per partition, and only the records Kafka
// refused are written again, so each partition receives the records in
// send order, which is what the ground truth's lateness assumes.
type ledgerSink struct {
	w       *kafka.Writer
	topo    topology.Topology
	headers map[schemas.Schema][]kafka.Header
	buf     []kafka.Message
	ids     []string // event id of each buffered record; "" for a title
	first   time.Time

	acked        map[string]int // event id → acknowledged sends
	ackedRecords int
	failedWrites int
	stalled      time.Duration // time spent waiting for Kafka to come back
}

func newLedgerSink(s *stack) (*ledgerSink, error) {
	tr, err := s.kafka.Transport()
	if err != nil {
		return nil, err
	}
	h := map[schemas.Schema][]kafka.Header{}
	for _, sc := range schemas.Schemas() {
		h[sc] = []kafka.Header{{Key: schemas.HeaderSchema, Value: []byte(sc)}, {Key: schemas.HeaderContentType, Value: []byte(schemas.ContentType)}}
	}
	return &ledgerSink{w: sim.NewKafkaWriter(s.kafka.BrokerList(), tr), topo: s.topo, headers: h, acked: map[string]int{}}, nil
}

// ledgerBatch is at most a tenth of the Writer's batch size, so that one
// write makes one produce batch per partition, acknowledged or refused as
// a whole.
const ledgerBatch = sim.DefaultBatch / 10

func (l *ledgerSink) Send(ctx context.Context, rec schemas.Record) error {
	v, err := schemas.Append(nil, rec)
	if err != nil {
		return err
	}
	var topic topology.Topic
	id := ""
	switch r := rec.(type) {
	case *schemas.Playback:
		topic, id = topology.Playback, r.EventID
	case *schemas.Browse:
		topic, id = topology.Browse, r.EventID
	case *schemas.Title:
		topic = topology.Catalog
	default:
		return fmt.Errorf("BUG: the simulator sent a %T", rec)
	}
	if len(l.buf) == 0 {
		l.first = time.Now()
	}
	l.buf = append(l.buf, kafka.Message{Topic: l.topo.Name(topic), Key: []byte(rec.Key()), Value: v, Headers: l.headers[rec.Schema()]})
	l.ids = append(l.ids, id)
	if len(l.buf) >= ledgerBatch || time.Since(l.first) >= 100*time.Millisecond {
		return l.write(ctx)
	}
	return nil
}

func (l *ledgerSink) Flush(ctx context.Context) error { return l.write(ctx) }

func (l *ledgerSink) write(ctx context.Context) error {
	var since time.Time
	for len(l.buf) > 0 {
		err := l.w.WriteMessages(ctx, l.buf...)
		var per kafka.WriteErrors
		if err != nil && !(errors.As(err, &per) && len(per) == len(l.buf)) {
			per = make(kafka.WriteErrors, len(l.buf))
			for i := range per {
				per[i] = err
			}
		}
		keep := 0
		for i, m := range l.buf {
			if err != nil && per[i] != nil {
				l.buf[keep], l.ids[keep] = m, l.ids[i]
				keep++
				continue
			}
			l.ackedRecords++
			if l.ids[i] != "" {
				l.acked[l.ids[i]]++
			}
		}
		clear(l.buf[keep:])
		l.buf, l.ids = l.buf[:keep], l.ids[:keep]
		if keep == 0 {
			break
		}
		l.failedWrites++
		if since.IsZero() {
			since = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cannot write %d records to Kafka: %w", keep, errors.Join(err, ctx.Err()))
		case <-time.After(250 * time.Millisecond):
		}
	}
	if !since.IsZero() {
		l.stalled += time.Since(since)
	}
	return nil
}

// TestEveryAcknowledgedEventIsCountedOnceWhileTheBrokerIsKilled kills the
// Kafka broker three times for 20 s while the simulator produces and an
// aggregates consumer consumes. The producer keeps a ledger of the events
// Kafka acknowledged; the input topics must hold exactly those events
// (extra copies of a retried write carry the same event id), and the
// aggregates must equal the ground truth of the ledger: every acknowledged
// event processed exactly once.
func TestEveryAcknowledgedEventIsCountedOnceWhileTheBrokerIsKilled(t *testing.T) {
	s := newStack(t, 6)
	// Registered after newStack, so it runs before the stack's cleanup,
	// which needs the broker to delete the topics.
	kafkaService.restoreOnCleanup(t)

	ops := freeAddr(t)
	consumer := s.start("aggregates", "run", "aggregates", "--ops-addr", ops, "--flush-interval", "300ms", "--session-timeout", "6s")
	s.waitReady(consumer, ops, time.Minute)

	ledger, err := newLedgerSink(s)
	if err != nil {
		t.Fatal(err)
	}
	defer ledger.w.Close()
	cfg := sim.DefaultConfig()
	cfg.Seed, cfg.Events, cfg.Partitions = 1729, 80_000, 6
	gen, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		truth *sim.Truth
		err   error
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	done := make(chan result, 1)
	counter := &sim.Counter{Sink: ledger}
	go func() {
		// 650 events/s: the traffic lasts about 2 minutes, as long as the
		// three outages with their restarts (about 13 s each); what the
		// producer could not send while the broker was down goes out as
		// fast as it can afterwards.
		truth, err := gen.Run(ctx, &sim.Paced{Sink: counter, Rate: 650})
		done <- result{truth, err}
	}()

	var down time.Duration
	for i := 1; i <= 3; i++ {
		time.Sleep(5 * time.Second)
		sent, processed := counter.Sent(), metric(ops, "atlas_engine_events_total")
		start := time.Now()
		restart := kafkaService.outage(t, 20*time.Second)
		down += time.Since(start)
		t.Logf("outage %d: broker down for %s (restart took %s) after %d of %d events; meanwhile the producer sent %d events and the consumer processed %.0f records",
			i, time.Since(start).Round(100*time.Millisecond), restart.Round(100*time.Millisecond), sent, cfg.Events,
			counter.Sent()-sent, metric(ops, "atlas_engine_events_total")-processed)
		if err := consumer.wait(0); err == nil || err.Error() != "still running after 0s" {
			t.Fatalf("the consumer exited during outage %d (%v):\n%s", i, err, lastLines(consumer.output(), 30))
		}
	}
	var res result
	select {
	case res = <-done:
	case <-time.After(3 * time.Minute):
		t.Fatalf("the producer did not finish within 3 minutes of the last outage (%d events sent)", counter.Sent())
	}
	if res.err != nil {
		t.Fatalf("producer: %v", res.err)
	}
	truth := res.truth
	t.Logf("producer: %d events acknowledged (%d unique, %d duplicates sent on purpose), %d failed writes retried, %s stalled",
		truth.Totals.Sent, truth.Totals.Unique, truth.Totals.Duplicates, ledger.failedWrites, ledger.stalled.Round(100*time.Millisecond))

	s.waitDrained(3*time.Minute, s.topo.GroupID(topology.AggregatesGroup),
		s.topo.Name(topology.Playback), s.topo.Name(topology.Browse), s.topo.Name(topology.Catalog))
	consumer.signal(syscall.SIGTERM)
	if err := consumer.wait(30 * time.Second); err != nil {
		t.Fatalf("the consumer did not stop cleanly: %v\n%s", err, lastLines(consumer.output(), 20))
	}

	// The input topics hold exactly the ledger: every acknowledged event,
	// nothing that was not acknowledged.
	held := map[string]int{}
	records := 0
	for _, topic := range []topology.Topic{topology.Playback, topology.Browse} {
		msgs, _ := s.readAll(s.topo.Name(topic))
		for _, m := range msgs {
			var env schemas.Envelope
			if topic == topology.Playback {
				var e schemas.Playback
				must(t, schemas.DecodePlayback(m.Value, &e))
				env = e.Envelope
			} else {
				var e schemas.Browse
				must(t, schemas.DecodeBrowse(m.Value, &e))
				env = e.Envelope
			}
			held[env.EventID]++
			records++
		}
	}
	var missing, unacked []string
	extra := 0
	for id, n := range ledger.acked {
		switch {
		case held[id] < n:
			missing = append(missing, id)
		case held[id] > n:
			extra += held[id] - n
		}
	}
	for id := range held {
		if ledger.acked[id] == 0 {
			unacked = append(unacked, id)
		}
	}
	if len(missing) > 0 || len(unacked) > 0 {
		t.Fatalf("the input topics do not hold the ledger: %d acknowledged events missing (e.g. %v), %d events never acknowledged (e.g. %v)",
			len(missing), missing[:min(3, len(missing))], len(unacked), unacked[:min(3, len(unacked))])
	}
	if int64(len(ledger.acked)) != truth.Totals.Unique {
		t.Fatalf("the ledger has %d event ids, the ground truth %d", len(ledger.acked), truth.Totals.Unique)
	}
	n := s.compareWithTruth(truth)
	t.Logf("broker killed 3 × 20 s (%s down in all): the input topics hold all %d acknowledged events (%d records, %d extra copies from retried writes); all %d aggregate rows and late events equal the ground truth of the ledger",
		down.Round(time.Second), len(ledger.acked), records, extra, n)
}
