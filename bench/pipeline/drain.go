package main

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/atlas-stream/atlas/producers/sim"
	"github.com/atlas-stream/atlas/topology"
)

// preload writes the simulator's traffic (cfg) to the stack's topics, as
// `atlas simulate` does, and returns its ground truth. The same cfg gives
// the same records in the same partitions every time.
func (s *stack) preload(ctx context.Context, cfg sim.Config) (*sim.Truth, error) {
	transport, err := s.b.kafka.Transport()
	if err != nil {
		return nil, err
	}
	w := sim.NewKafkaWriter(s.b.kafka.BrokerList(), transport)
	defer w.Close()
	g, err := sim.New(cfg)
	if err != nil {
		return nil, err
	}
	truth, err := g.Run(ctx, sim.NewKafkaSink(w, s.topo, 0))
	if err != nil {
		return nil, fmt.Errorf("cannot preload %s: %w", s.prefix, err)
	}
	return truth, nil
}

// drain is one measured drain of the preloaded topics.
type drain struct {
	events  int64
	elapsed time.Duration // first record handed over → everything done
	startup time.Duration // process start (or reader open) → first record
}

func (d drain) rate() float64 { return float64(d.events) / d.elapsed.Seconds() }

// rawDrain is row (a): a kafka-go consumer-group Reader reads every record
// of the playback and browse topics, decodes nothing, and commits offsets
// every second (CommitInterval), with the engine's fetch settings
// (consumers/engine/claim.go: MaxBytes 8 MiB, MaxWait 200 ms, 1000
// messages queued per partition). The clock runs from the first record to
// the Reader's Close, which commits the last offsets.
func (s *stack) rawDrain(ctx context.Context, total int64) (drain, error) {
	dialer, err := s.b.kafka.Dialer()
	if err != nil {
		return drain{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	opened := time.Now()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:        s.b.kafka.BrokerList(),
		Dialer:         dialer,
		GroupID:        s.prefix + "bench-raw",
		GroupTopics:    []string{s.topo.Name(topology.Playback), s.topo.Name(topology.Browse)},
		StartOffset:    kafka.FirstOffset,
		CommitInterval: time.Second,
		MinBytes:       1,
		MaxBytes:       8 << 20,
		MaxWait:        200 * time.Millisecond,
		QueueCapacity:  1000,
	})
	var first time.Time
	for n := int64(0); n < total; n++ {
		if _, err := r.ReadMessage(ctx); err != nil {
			r.Close()
			return drain{}, fmt.Errorf("raw drain read %d of %d records: %w", n, total, err)
		}
		if n == 0 {
			first = time.Now()
		}
	}
	if err := r.Close(); err != nil {
		return drain{}, fmt.Errorf("raw drain: cannot commit and close: %w", err)
	}
	return drain{events: total, elapsed: time.Since(first), startup: first.Sub(opened)}, nil
}

// atlasDrain is row (b): `atlas run all` (the real binary, every role in
// one process, fresh consumer groups) drains the preloaded topics. The
// clock runs from the first record any role processed
// (atlas_engine_events_total) until every group has committed, with the
// engine's metadata saying it processed, every partition of its inputs
// to the end, which the engine does only after the ClickHouse rows, the
// embeddings changelog, the re-key records and the alerts are durable.
// The process must then stop cleanly on SIGTERM.
func (s *stack) atlasDrain(ctx context.Context, total int64) (drain, error) {
	ops, err := freeAddr()
	if err != nil {
		return drain{}, err
	}
	started := time.Now()
	p, err := s.start("run", "all", "--ops-addr", ops)
	if err != nil {
		return drain{}, err
	}
	defer func() {
		if done, _ := p.exited(); !done {
			p.cmd.Process.Kill()
			<-p.done
		}
	}()
	deadline := time.Now().Add(2 * time.Minute)
	for metric(ops, "atlas_engine_events_total") < 1 {
		if done, err := p.exited(); done {
			return drain{}, fmt.Errorf("atlas run all exited (%v) before processing a record:\n%s", err, p.tail(30))
		}
		if time.Now().After(deadline) {
			return drain{}, fmt.Errorf("atlas run all processed no record within 2 minutes:\n%s", p.tail(30))
		}
		time.Sleep(10 * time.Millisecond)
	}
	first := time.Now()
	client, err := s.b.kafka.Client()
	if err != nil {
		return drain{}, err
	}
	deadline = time.Now().Add(10 * time.Minute)
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ok, why, err := s.drained(cctx, client)
		cancel()
		if ok {
			break
		}
		if done, perr := p.exited(); done {
			return drain{}, fmt.Errorf("atlas run all exited (%v) before it drained the topics:\n%s", perr, p.tail(30))
		}
		if time.Now().After(deadline) {
			return drain{}, fmt.Errorf("atlas run all has not drained the topics after 10 minutes: %s %v", why, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	d := drain{events: total, elapsed: time.Since(first), startup: first.Sub(started)}
	if err := p.stop(time.Minute); err != nil {
		return drain{}, err
	}
	return d, nil
}
