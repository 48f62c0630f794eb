package main

import (
	"context"
	"os"

	"github.com/atlas-stream/atlas/consumers/aggregates"
	"github.com/atlas-stream/atlas/consumers/aggregates/chsink"
	"github.com/atlas-stream/atlas/consumers/engine"
	"github.com/atlas-stream/atlas/internal/eventtime"
	"github.com/atlas-stream/atlas/internal/ops"
	"github.com/atlas-stream/atlas/schemas/warehouse"
	"github.com/atlas-stream/atlas/topology"
)

func init() { registerRole("aggregates", runAggregates) }

// runAggregates wires the aggregates role: the engine over playback,
// browse and catalog, the windowing processor, and the ClickHouse sink.
func runAggregates(ctx context.Context, env *roleEnv) error {
	cfg, err := env.g.clickhouse("writer")
	if err != nil {
		return err
	}
	conn, err := warehouse.Open(ctx, cfg)
	if err != nil {
		return err
	}
	env.closers = append(env.closers, func() { conn.Close() })
	sink, err := chsink.New(conn, chsink.Config{Registerer: env.reg})
	if err != nil {
		return err
	}
	factory, err := aggregates.NewFactory(aggregates.Config{
		Rules:      eventtime.Rules{Window: env.f.window, Lateness: env.f.lateness, Grace: env.f.grace},
		Sink:       sink,
		FinalOnly:  env.f.finalOnly,
		Registerer: env.reg,
	})
	if err != nil {
		return &usageError{err}
	}
	t := env.topo
	spec, _ := t.Role(topology.Aggregates)
	runner, err := engine.New(engine.Config{
		Role:           "aggregates",
		Group:          t.GroupID(spec.Group),
		Topics:         []string{t.Name(topology.Playback), t.Name(topology.Browse), t.Name(topology.Catalog)},
		DLQTopic:       t.Name(topology.DLQ),
		Kafka:          env.kafka,
		Factory:        factory,
		FlushInterval:  env.f.flushInterval,
		SessionTimeout: env.f.sessionTO,
		Registerer:     env.reg,
		Failpoint:      failpointFromEnv(),
		// A negative control for the end-to-end tests only.
		UnsafeCommitFirst: os.Getenv("ATLAS_UNSAFE_COMMIT_FIRST") == "1",
	})
	if err != nil {
		return &usageError{err}
	}
	// The sink must outlive the runner: the runner's last checkpoints write
	// through it. Parts stop in reverse order.
	env.parts = append(env.parts, part{"aggregates sink", sink.Run}, part{"aggregates consumer", runner.Run})
	env.checks = append(env.checks, ops.Check{Name: "aggregates", Ready: runner.Ready})
	return nil
}
