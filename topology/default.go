package topology

import (
	"errors"
	"fmt"
	"time"
)

// Atlas's topics.
const (
	// Playback carries player events (start, heartbeat, rebuffer, …), keyed
	// by profile id.
	Playback Topic = "atlas.playback.v1"
	// Browse carries browse UI events (impression, select, search, …),
	// keyed by profile id and co-partitioned with Playback.
	Browse Topic = "atlas.browse.v1"
	// Catalog holds the newest record of each title, keyed by title id.
	Catalog Topic = "atlas.catalog.v1"
	// Alerts carries one alert per incident, keyed by subject.
	Alerts Topic = "atlas.alerts.v1"
	// DLQ carries the original bytes of input that could not be decoded or
	// validated, with the reason in headers.
	DLQ Topic = "atlas.dlq.v1"
	// EmbeddingsState is the changelog of the per-profile taste vectors,
	// keyed by profile id and co-partitioned with Playback.
	EmbeddingsState Topic = "atlas.embeddings.state.v1"
	// EmbeddingsModel holds the newest vector of each title, keyed by title
	// id; every embeddings member keeps a full copy.
	EmbeddingsModel Topic = "atlas.embeddings.model.v1"
)

// Atlas's roles.
const (
	// Aggregates turns events into windowed aggregates in ClickHouse.
	Aggregates Role = "aggregates"
	// Embeddings learns taste vectors and serves recommendations.
	Embeddings Role = "embeddings"
	// Anomaly detects fraud and quality incidents and raises alerts.
	Anomaly Role = "anomaly"
	// Ingest is the HTTP gateway that devices send events to.
	Ingest Role = "ingest"
	// Simulate generates traffic with a recorded ground truth.
	Simulate Role = "simulate"
	// Replay re-sends recorded interaction logs.
	Replay Role = "replay"
	// CatalogLoader publishes the title catalog.
	CatalogLoader Role = "catalog"
)

// Atlas's consumer groups, one per consuming role.
const (
	AggregatesGroup Group = "atlas-aggregates"
	EmbeddingsGroup Group = "atlas-embeddings"
	AnomalyGroup    Group = "atlas-anomaly"
)

// Sinks that are not topics.
const (
	// SinkClickHouseAggregates is the aggregate tables in ClickHouse.
	SinkClickHouseAggregates = "clickhouse:aggregates"
	// SinkClickHouseAlerts is the alerts table in ClickHouse.
	SinkClickHouseAlerts = "clickhouse:alerts"
)

// Retentions of the topics that delete old records.
const (
	day             = 24 * time.Hour
	EventRetention  = 7 * day
	AlertsRetention = 30 * day
	DLQRetention    = 14 * day
)

// Options adapts [Default] to a cluster. The zero value is a single-broker
// development cluster.
type Options struct {
	// Partitions of the keyed event topics (Playback, Browse) and of the
	// state changelog co-partitioned with them: the most consumers that one
	// group can keep busy. Default 6. Changing it on a live cluster moves
	// keys to other partitions, away from their state.
	Partitions int
	// ReplicationFactor of every topic. Default 1, for one broker; 3 on a
	// production cluster.
	ReplicationFactor int
	// MinInsyncReplicas is set on every topic when ReplicationFactor is
	// above 1. Default ReplicationFactor-1, so that acks=all writes go on
	// while one broker is down.
	MinInsyncReplicas int
	// Prefix is put in front of every topic name and group id on the
	// cluster ([Topology.Prefix]). Default empty.
	Prefix string
}

// Option defaults.
const (
	DefaultPartitions        = 6
	DefaultReplicationFactor = 1
)

func (o Options) partitions() int {
	if o.Partitions == 0 {
		return DefaultPartitions
	}
	return o.Partitions
}

func (o Options) replicationFactor() int {
	if o.ReplicationFactor == 0 {
		return DefaultReplicationFactor
	}
	return o.ReplicationFactor
}

func (o Options) minInsyncReplicas() int {
	rf := o.replicationFactor()
	switch {
	case rf <= 1:
		return 0
	case o.MinInsyncReplicas == 0:
		return rf - 1
	default:
		return o.MinInsyncReplicas
	}
}

// Validate reports options that no cluster accepts.
func (o Options) Validate() error {
	var errs []error
	if o.Partitions < 0 {
		errs = append(errs, fmt.Errorf("partitions must not be negative, got %d", o.Partitions))
	}
	if o.ReplicationFactor < 0 {
		errs = append(errs, fmt.Errorf("replication factor must not be negative, got %d", o.ReplicationFactor))
	}
	if o.MinInsyncReplicas < 0 || o.MinInsyncReplicas > o.replicationFactor() {
		errs = append(errs, fmt.Errorf("min.insync.replicas must be between 0 (default) and the replication factor %d, got %d", o.replicationFactor(), o.MinInsyncReplicas))
	}
	if o.Prefix != "" && !legalTopicChars(o.Prefix) {
		errs = append(errs, fmt.Errorf("prefix %q: only ASCII letters, digits, '.', '_' and '-' are allowed in topic names", o.Prefix))
	}
	return errors.Join(errs...)
}

// Default returns Atlas's topology adapted by opts. It does not validate:
// options that [Options.Validate] rejects give a topology that
// [Topology.Validate] rejects too.
func Default(opts Options) Topology {
	p := opts.partitions()
	rf := opts.replicationFactor()
	isr := opts.minInsyncReplicas()
	topic := func(name Topic, partitions int, cleanup Cleanup, retention time.Duration, key, doc string) TopicSpec {
		return TopicSpec{
			Name:              name,
			Partitions:        partitions,
			ReplicationFactor: rf,
			MinInsyncReplicas: isr,
			Cleanup:           cleanup,
			Retention:         retention,
			Key:               key,
			Doc:               doc,
		}
	}
	events := []Topic{Playback, Browse}
	return Topology{
		Prefix: opts.Prefix,
		Topics: []TopicSpec{
			topic(Playback, p, CleanupDelete, EventRetention, "profile id", "player events"),
			topic(Browse, p, CleanupDelete, EventRetention, "profile id", "browse UI events"),
			topic(Catalog, 1, CleanupCompact, 0, "title id", "the newest record of each title"),
			topic(Alerts, 3, CleanupDelete, AlertsRetention, "subject", "one alert per incident"),
			topic(DLQ, 3, CleanupDelete, DLQRetention, "source key", "input that could not be decoded or validated, with the reason"),
			topic(EmbeddingsState, p, CleanupCompact, 0, "profile id", "changelog of the per-profile taste vectors"),
			topic(EmbeddingsModel, 1, CleanupCompact, 0, "title id", "the newest vector of each title"),
		},
		Roles: []RoleSpec{
			{
				Name:   Ingest,
				Writes: []Topic{Playback, Browse},
				Doc:    "HTTP gateway for devices",
			},
			{
				Name:   Simulate,
				Writes: []Topic{Playback, Browse, Catalog},
				Doc:    "traffic simulator with ground truth",
			},
			{
				Name:   Replay,
				Writes: []Topic{Playback, Browse, Catalog},
				Doc:    "replay of recorded interaction logs",
			},
			{
				Name:   CatalogLoader,
				Writes: []Topic{Catalog},
				Doc:    "publishes the title catalog",
			},
			{
				Name:   Aggregates,
				Group:  AggregatesGroup,
				Reads:  events,
				Tables: []Topic{Catalog},
				Writes: []Topic{DLQ},
				Sinks:  []string{SinkClickHouseAggregates},
				Doc:    "windowed aggregates for content strategy and quality",
			},
			{
				Name:  Embeddings,
				Group: EmbeddingsGroup,
				Reads: events,
				// Every member keeps a full copy of the item model, so
				// it reads back the model topic that it also writes.
				Tables:    []Topic{Catalog, EmbeddingsModel},
				Changelog: EmbeddingsState,
				Writes:    []Topic{EmbeddingsModel, DLQ},
				Doc:       "taste vectors and recommendations",
			},
			{
				Name:   Anomaly,
				Group:  AnomalyGroup,
				Reads:  events,
				Writes: []Topic{Alerts, DLQ},
				Sinks:  []string{SinkClickHouseAlerts},
				Doc:    "fraud and quality incidents",
			},
		},
	}
}
