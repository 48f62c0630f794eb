package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/atlas-stream/atlas/consumers/anomaly"
	"github.com/atlas-stream/atlas/consumers/anomaly/alertsink"
	"github.com/atlas-stream/atlas/consumers/anomaly/evaluate"
	"github.com/atlas-stream/atlas/consumers/engine"
	"github.com/atlas-stream/atlas/consumers/stream"
	"github.com/atlas-stream/atlas/internal/kafkaconn"
	"github.com/atlas-stream/atlas/internal/ops"
	"github.com/atlas-stream/atlas/schemas/warehouse"
	"github.com/atlas-stream/atlas/topology"
)

func init() { registerRole("anomaly", runAnomaly) }

// RekeyTopic is the anomaly role's internal re-key topic (logical name):
// stage one writes playback and browse events into it keyed by account,
// network or quality cell, stage two reads it (see package anomaly). It is
// not in the topology declaration yet, so the role creates it when it is
// missing, with the partitions of the playback topic.
const RekeyTopic topology.Topic = "atlas.anomaly.rekey.v1"

// rekeyRetention keeps re-keyed records as long as the inputs: the role can
// be down that long and still resume.
const rekeyRetention = 7 * 24 * time.Hour

// runAnomaly wires the anomaly role: the engine over playback, browse and
// the re-key topic, stage one writing the re-key topic, stage two
// publishing alerts to the alert topic and ClickHouse.
func runAnomaly(ctx context.Context, env *roleEnv) error {
	t := env.topo
	lateness, err := durationEnv("ATLAS_ANOMALY_LATENESS", 0)
	if err != nil {
		return &usageError{err}
	}
	horizon, err := durationEnv("ATLAS_ANOMALY_HORIZON", 0)
	if err != nil {
		return &usageError{err}
	}
	partitions, err := ensureRekeyTopic(ctx, env.kafka, t)
	if err != nil {
		return err
	}
	chCfg, err := env.g.clickhouse("writer")
	if err != nil {
		return err
	}
	conn, err := warehouse.Open(ctx, chCfg)
	if err != nil {
		return err
	}
	rekey, err := alertsink.NewRekey(alertsink.RekeyConfig{Kafka: env.kafka, Topic: t.Name(RekeyTopic), Partitions: partitions})
	if err != nil {
		return &usageError{err}
	}
	sink, err := alertsink.New(alertsink.Config{Kafka: env.kafka, Topic: t.Name(topology.Alerts), ClickHouse: conn})
	if err != nil {
		return &usageError{err}
	}
	// Closers run after every part stopped, in reverse: the writers flush
	// and close before the ClickHouse connection goes.
	env.closers = append(env.closers, func() { conn.Close() }, func() { sink.Close() }, func() { rekey.Close() })

	factory, err := anomaly.NewFactory(anomaly.Config{
		PlaybackTopic: t.Name(topology.Playback),
		BrowseTopic:   t.Name(topology.Browse),
		RekeyTopic:    t.Name(RekeyTopic),
		Partitions:    partitions,
		Lateness:      lateness,
		Horizon:       horizon,
		Locate:        evaluate.GeoLocator(),
		Rekeyer:       func(c stream.Claim) (anomaly.Rekeyer, error) { return rekey.Claim(c) },
		Outbox:        func(c stream.Claim) (anomaly.Outbox, error) { return sink.Claim(c) },
		Registerer:    env.reg,
	})
	if err != nil {
		return &usageError{err}
	}
	spec, _ := t.Role(topology.Anomaly)
	runner, err := engine.New(engine.Config{
		Role:           "anomaly",
		Group:          t.GroupID(spec.Group),
		Topics:         []string{t.Name(topology.Playback), t.Name(topology.Browse), t.Name(RekeyTopic)},
		DLQTopic:       t.Name(topology.DLQ),
		Kafka:          env.kafka,
		Factory:        factory,
		FlushInterval:  env.f.flushInterval,
		SessionTimeout: env.f.sessionTO,
		Registerer:     env.reg,
		Failpoint:      failpointFromEnv(),
	})
	if err != nil {
		return &usageError{err}
	}
	env.parts = append(env.parts, part{"anomaly consumer", runner.Run})
	env.checks = append(env.checks, ops.Check{Name: "anomaly", Ready: runner.Ready})
	return nil
}

// ensureRekeyTopic checks that playback and browse have the same number of
// partitions, creates the re-key topic with as many when it is missing,
// and returns the count.
func ensureRekeyTopic(ctx context.Context, kc kafkaconn.Config, t topology.Topology) (int, error) {
	client, err := kc.Client()
	if err != nil {
		return 0, err
	}
	client.Timeout = 20 * time.Second
	names := []string{t.Name(topology.Playback), t.Name(topology.Browse), t.Name(RekeyTopic)}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
	if err != nil {
		return 0, fmt.Errorf("cannot read topic metadata from Kafka at %v: %w", kc.BrokerList(), err)
	}
	counts := map[string]int{}
	for _, tm := range meta.Topics {
		if tm.Error == nil {
			counts[tm.Name] = len(tm.Partitions)
		}
	}
	p, b := counts[names[0]], counts[names[1]]
	if p == 0 || b == 0 {
		return 0, fmt.Errorf("cannot run the anomaly role: topics %s and %s must exist (atlas topology apply)", names[0], names[1])
	}
	if p != b {
		return 0, fmt.Errorf("cannot run the anomaly role: %s has %d partitions and %s %d; they must be co-partitioned", names[0], p, names[1], b)
	}
	if n, ok := counts[names[2]]; ok {
		if n != p {
			return 0, fmt.Errorf("cannot run the anomaly role: the re-key topic %s has %d partitions, the inputs %d", names[2], n, p)
		}
		return p, nil
	}
	spec, _ := t.Topic(topology.Playback)
	res, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: names[2], NumPartitions: p, ReplicationFactor: max(spec.ReplicationFactor, 1),
		ConfigEntries: []kafka.ConfigEntry{
			{ConfigName: "cleanup.policy", ConfigValue: "delete"},
			{ConfigName: "retention.ms", ConfigValue: strconv.FormatInt(rekeyRetention.Milliseconds(), 10)},
		},
	}}})
	if err != nil {
		return 0, fmt.Errorf("cannot create the re-key topic %s: %w", names[2], err)
	}
	if err := res.Errors[names[2]]; err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return 0, fmt.Errorf("cannot create the re-key topic %s: %w", names[2], err)
	}
	return p, nil
}

func durationEnv(name string, def time.Duration) (time.Duration, error) {
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("invalid %s=%q: want a duration such as 2s", name, v)
	}
	return d, nil
}
