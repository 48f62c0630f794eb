package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/atlas-stream/atlas/consumers/embeddings"
	"github.com/atlas-stream/atlas/consumers/embeddings/api"
	"github.com/atlas-stream/atlas/consumers/embeddings/changelog"
	"github.com/atlas-stream/atlas/consumers/engine"
	"github.com/atlas-stream/atlas/internal/ops"
	"github.com/atlas-stream/atlas/producers/player"
	"github.com/atlas-stream/atlas/topology"
)

func init() { registerRole("embeddings", runEmbeddings) }

// embeddingsEnv are the embeddings role's settings. `atlas run` has no
// per-role flags yet, so they are read from the environment only:
//
//	ATLAS_EMBEDDINGS_ADDR        API listen address (default 127.0.0.1:9470; empty: no API)
//	ATLAS_EMBEDDINGS_ADVERTISE   address other members forward to (default: ADDR)
//	ATLAS_EMBEDDINGS_DIM         dimension of the dense vectors (default 32)
//	ATLAS_EMBEDDINGS_FLUSH_EVERY least time between writes of a partition's state (default 0: every checkpoint)
//	ATLAS_EMBEDDINGS_REFRESH     how often the dense vectors are recomputed (default 10s)
//	ATLAS_EMBEDDINGS_EVAL_PERCENT first plays judged prequentially, in % (default 0)
type embeddingsEnv struct {
	addr, advertise string
	dim, evalPct    int
	flushEvery      time.Duration
	refresh         time.Duration
}

func readEmbeddingsEnv() (embeddingsEnv, error) {
	e := embeddingsEnv{addr: "127.0.0.1:9470", dim: 32, refresh: 10 * time.Second}
	var errs []error
	str := func(name string, dst *string) {
		if v, ok := os.LookupEnv(name); ok {
			*dst = v
		}
	}
	num := func(name string, dst *int) {
		if v, ok := os.LookupEnv(name); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("invalid %s=%q: want an integer", name, v))
			}
			*dst = n
		}
	}
	dur := func(name string, dst *time.Duration) {
		if v, ok := os.LookupEnv(name); ok {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				errs = append(errs, fmt.Errorf("invalid %s=%q: want a duration such as 5s", name, v))
			}
			*dst = d
		}
	}
	str("ATLAS_EMBEDDINGS_ADDR", &e.addr)
	e.advertise = e.addr
	str("ATLAS_EMBEDDINGS_ADVERTISE", &e.advertise)
	num("ATLAS_EMBEDDINGS_DIM", &e.dim)
	num("ATLAS_EMBEDDINGS_EVAL_PERCENT", &e.evalPct)
	dur("ATLAS_EMBEDDINGS_FLUSH_EVERY", &e.flushEvery)
	dur("ATLAS_EMBEDDINGS_REFRESH", &e.refresh)
	return e, errors.Join(errs...)
}

// runEmbeddings wires the embeddings role: the engine over playback and
// browse, a Node that learns and serves, its Kafka store (state
// changelog, model topic), the catalog as a table, and the HTTP API.
func runEmbeddings(ctx context.Context, env *roleEnv) error {
	ee, err := readEmbeddingsEnv()
	if err != nil {
		return &usageError{err}
	}
	t := env.topo
	store, err := changelog.New(changelog.Config{Kafka: env.kafka,
		StateTopic: t.Name(topology.EmbeddingsState), ModelTopic: t.Name(topology.EmbeddingsModel)})
	if err != nil {
		return &usageError{err}
	}
	env.closers = append(env.closers, func() { store.Close() })
	advertise := ee.advertise
	if ee.addr == "" {
		advertise = ""
	}
	node, err := embeddings.NewNode(embeddings.NodeConfig{
		Learner:       embeddings.Config{Dim: ee.dim},
		Store:         store,
		PlaybackTopic: t.Name(topology.Playback),
		BrowseTopic:   t.Name(topology.Browse),
		FlushEvery:    ee.flushEvery,
		Advertise:     advertise,
		EvalPercent:   ee.evalPct,
		Registerer:    env.reg,
	})
	if err != nil {
		return &usageError{err}
	}
	store.Model.Apply = node.ApplyModel
	catalog := api.NewCatalog()
	catalogTable := &changelog.Follower{Kafka: env.kafka, Topic: t.Name(topology.Catalog), Apply: catalog.Apply}

	spec, _ := t.Role(topology.Embeddings)
	runner, err := engine.New(engine.Config{
		Role:           "embeddings",
		Group:          t.GroupID(spec.Group),
		Topics:         []string{t.Name(topology.Playback), t.Name(topology.Browse)},
		DLQTopic:       t.Name(topology.DLQ),
		Kafka:          env.kafka,
		Factory:        node.Factory,
		FlushInterval:  env.f.flushInterval,
		SessionTimeout: env.f.sessionTO,
		Registerer:     env.reg,
		Failpoint:      failpointFromEnv(),
	})
	if err != nil {
		return &usageError{err}
	}

	// Parts stop in reverse order: the runner first (its last checkpoints
	// write through the store), the model follower last.
	env.parts = append(env.parts,
		part{"embeddings model follower", store.Model.Run},
		part{"embeddings catalog table", catalogTable.Run},
		part{"embeddings dense refresh", func(ctx context.Context) error { return node.RunRefresh(ctx, ee.refresh) }},
	)
	if ee.addr != "" {
		partitions, err := partitionCount(ctx, env, t.Name(topology.Playback))
		if err != nil {
			return err
		}
		h, err := api.Handler(api.Config{Node: node, Self: advertise, Catalog: catalog,
			PartitionOf: func(id string) int { return player.Partition(id, partitions) }})
		if err != nil {
			return err
		}
		env.parts = append(env.parts, part{"embeddings api", func(ctx context.Context) error { return serveAPI(ctx, ee.addr, h) }})
	}
	env.parts = append(env.parts, part{"embeddings consumer", runner.Run})
	env.checks = append(env.checks, ops.Check{Name: "embeddings", Ready: runner.Ready})
	return nil
}

// partitionCount reads how many partitions the playback topic has: the
// API maps a profile to its partition as the producers do.
func partitionCount(ctx context.Context, env *roleEnv, topic string) (int, error) {
	client, err := env.kafka.Client()
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		if err == nil && len(md.Topics) == 1 && md.Topics[0].Error == nil && len(md.Topics[0].Partitions) > 0 {
			return len(md.Topics[0].Partitions), nil
		}
		if err == nil && len(md.Topics) == 1 {
			err = md.Topics[0].Error
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("cannot read the partitions of %s (run atlas topology apply): %v", topic, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// serveAPI serves the embeddings API until ctx ends.
func serveAPI(ctx context.Context, addr string, h http.Handler) error {
	return ops.Serve(ctx, "the embeddings API", addr, h)
}
