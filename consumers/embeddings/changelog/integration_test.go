//go:build integration

package changelog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/atlas-stream/atlas/consumers/embeddings"
	"github.com/atlas-stream/atlas/consumers/enginetest"
	"github.com/atlas-stream/atlas/consumers/stream"
	"github.com/atlas-stream/atlas/internal/kafkaconn"
	"github.com/atlas-stream/atlas/schemas"
	"github.com/atlas-stream/atlas/topology"
)

// testTopology creates a fresh prefixed topology on the real broker.
func testTopology(t testing.TB, partitions int) (kafkaconn.Config, topology.Topology) {
	t.Helper()
	v := os.Getenv("ATLAS_KAFKA_BROKERS")
	if v == "" {
		t.Fatal("ATLAS_KAFKA_BROKERS is not set: these tests need a real Kafka broker. Run scripts/kafka.sh start and eval \"$(scripts/kafka.sh env)\"")
	}
	kc := kafkaconn.Config{Brokers: kafkaconn.ParseBrokers(v)}
	if c, err := net.DialTimeout("tcp", kc.BrokerList()[0], 3*time.Second); err != nil {
		t.Fatalf("cannot reach Kafka at %s: %v (run scripts/kafka.sh start)", v, err)
	} else {
		c.Close()
	}
	var b [4]byte
	rand.Read(b[:])
	topo := topology.Default(topology.Options{Prefix: "test-" + hex.EncodeToString(b[:]) + ".", Partitions: partitions})
	client, err := kc.Client()
	if err != nil {
		t.Fatal(err)
	}
	client.Timeout = 30 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := topology.Apply(ctx, client, topo); err != nil {
		t.Fatalf("cannot create test topics: %v", err)
	}
	t.Cleanup(func() {
		var names []string
		for _, s := range topo.Topics {
			names = append(names, topo.Name(s.Name))
		}
		client.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: names})
	})
	return kc, topo
}

// member is a Node on the real broker, with its model follower running.
type member struct {
	node  *embeddings.Node
	store *Store
	stop  context.CancelFunc
	done  chan struct{}
}

func newMember(t testing.TB, kc kafkaconn.Config, topo topology.Topology, advertise string) *member {
	t.Helper()
	store, err := New(Config{Kafka: kc, StateTopic: topo.Name(topology.EmbeddingsState), ModelTopic: topo.Name(topology.EmbeddingsModel)})
	if err != nil {
		t.Fatal(err)
	}
	node, err := embeddings.NewNode(embeddings.NodeConfig{Learner: embeddings.Config{Dim: 8}, Store: store,
		PlaybackTopic: "pb", BrowseTopic: "br", FlushEvery: time.Nanosecond, Advertise: advertise})
	if err != nil {
		t.Fatal(err)
	}
	store.Model.Apply = node.ApplyModel
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{node: node, store: store, stop: cancel, done: make(chan struct{})}
	go func() { defer close(m.done); store.Model.Run(ctx) }()
	t.Cleanup(m.close)
	return m
}

func (m *member) close() {
	m.stop()
	<-m.done
	m.store.Close()
}

func plays(seed uint64, n int) [][]schemas.Record {
	rng := mrand.New(mrand.NewPCG(seed, 1))
	out := make([][]schemas.Record, 2)
	for i := 0; i < n; i++ {
		u := rng.IntN(40)
		title := fmt.Sprintf("t%02d", (u%4)*10+rng.IntN(10))
		env := schemas.Envelope{EventID: fmt.Sprint("e", i), EventTime: int64(1e12 + i), ProfileID: fmt.Sprint("p", u),
			AccountID: "a", DeviceID: "d", SessionID: "s", Country: "DE", DeviceType: schemas.DeviceTV}
		out[u%2] = append(out[u%2], &schemas.Playback{Envelope: env, Kind: schemas.PlayStart, TitleID: title, DurationMs: 1000},
			&schemas.Playback{Envelope: env, Kind: schemas.PlayStop, TitleID: title, PositionMs: rng.Int64N(1000), DurationMs: 1000})
	}
	return out
}

func TestStateWrittenToKafkaRestoresExactlyInAnotherMember(t *testing.T) {
	kc, topo := testTopology(t, 2)
	a := newMember(t, kc, topo, "10.0.0.1:8080")
	h := enginetest.New(a.node.Factory)
	log := plays(1, 600)
	for p := 0; p < 2; p++ {
		if err := h.Feed("pb", p, log[p]...); err != nil {
			t.Fatal(err)
		}
		if _, err := h.Checkpoint("pb", p); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	if err := a.store.SyncModel(ctx); err != nil {
		t.Fatal(err)
	}

	// Every profile went to the changelog partition of its claim.
	for p := 0; p < 2; p++ {
		n := 0
		err := ReadPartition(ctx, a.store.dialer, kc.BrokerList()[0], topo.Name(topology.EmbeddingsState), p, func(key, _ []byte) error {
			n++
			if _, found, owned := a.node.Lookup(p, string(key)); !found || !owned {
				return fmt.Errorf("profile %s is in changelog partition %d but not in claim %d", key, p, p)
			}
			return nil
		})
		if err != nil || n == 0 {
			t.Fatalf("changelog partition %d: %d records, %v", p, n, err)
		}
	}

	b := newMember(t, kc, topo, "10.0.0.2:8080")
	hb := enginetest.New(b.node.Factory)
	start := time.Now()
	for p := 0; p < 2; p++ {
		if err := hb.Feed("pb", p); err != nil { // restores the partition
			t.Fatal(err)
		}
	}
	t.Logf("member b restored 2 partitions in %s", time.Since(start).Round(time.Millisecond))
	if da, db := a.node.Model().Digest(), b.node.Model().Digest(); da != db {
		t.Fatalf("model digests differ: %x restored, %x written", db, da)
	}
	a.node.Refresh()
	b.node.Refresh()
	for u := 0; u < 40; u++ {
		id := fmt.Sprint("p", u)
		pa, _, _ := a.node.Lookup(u%2, id)
		pb, found, _ := b.node.Lookup(u%2, id)
		if !found {
			t.Fatalf("profile %s was not restored", id)
		}
		va, vb := a.node.Model().AppendProfile(nil, pa), b.node.Model().AppendProfile(nil, pb)
		if string(va) != string(vb) {
			t.Fatalf("profile %s: restored %x, written %x", id, vb, va)
		}
		ra, rb := a.node.Model().Recommend(pa, "DE", 10, nil), b.node.Model().Recommend(pb, "DE", 10, nil)
		if !slices.Equal(ra, rb) {
			t.Fatalf("profile %s: restored recommendations %v, written %v", id, rb, ra)
		}
	}
	// b announced itself as the owner of both partitions, after a.
	if o, ok := a.node.Owner(1); !ok || o.Addr != "10.0.0.2:8080" {
		waitOwner(t, a.node, 1, "10.0.0.2:8080")
	}
}

func waitOwner(t *testing.T, n *embeddings.Node, p int, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if o, ok := n.Owner(p); ok && o.Addr == want {
			return
		}
		if time.Now().After(deadline) {
			o, _ := n.Owner(p)
			t.Fatalf("owner of partition %d is %+v, want %s", p, o, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestTheFollowerReachesTheEndOfAnEmptyAndOfAWrittenTopic(t *testing.T) {
	kc, topo := testTopology(t, 1)
	m := newMember(t, kc, topo, "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m.store.SyncModel(ctx); err != nil {
		t.Fatalf("empty model topic: %v", err)
	}
	recs := []embeddings.KV{{Key: []byte("unknown/1"), Value: []byte{99}}, {Key: []byte("bad"), Value: []byte{1, 2}}}
	if err := m.store.WriteModel(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if err := m.store.SyncModel(ctx); err != nil {
		t.Fatalf("after two records (one unknown kind, one corrupt): %v", err)
	}
	if got := m.store.Model.Next(); got != 2 {
		t.Fatalf("follower at %d, want 2", got)
	}
}

// BenchmarkRestoreAMillionProfiles writes a million profiles (20 titles
// watched each, from a catalog of 10,000) to a six-partition changelog on
// the real broker, then measures a member restoring all six partitions at
// once, as after a restart. Run with -benchtime 1x.
func BenchmarkRestoreAMillionProfiles(b *testing.B) {
	const profiles, partitions, watched = 1_000_000, 6, 20
	kc, topo := testTopology(b, partitions)
	store, err := New(Config{Kafka: kc, StateTopic: topo.Name(topology.EmbeddingsState), ModelTopic: topo.Name(topology.EmbeddingsModel)})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	m := embeddings.NewModel(embeddings.Config{})
	rng := mrand.New(mrand.NewPCG(1, 1))
	ctx := context.Background()
	start := time.Now()
	batch := make(map[int][]embeddings.KV)
	bytes := 0
	for i := 0; i < profiles; i++ {
		p := &embeddings.Profile{ID: fmt.Sprintf("pro-%d-%d", i/3, i%3)}
		for n := 0; n < watched; n++ {
			m.Play(p, m.Title(fmt.Sprintf("tt-%05d", 1+rng.IntN(10_000))), "DE", 0, int64(n), nil)
		}
		if i == 10_000 {
			m.Refresh() // later values carry a taste vector, as in production
		}
		p.PlayNext, p.BrowseNext = int64(100_000_000+i), int64(9_000_000+i)
		v := m.AppendProfile(nil, p)
		bytes += len(v)
		part := i % partitions
		batch[part] = append(batch[part], embeddings.KV{Key: []byte(p.ID), Value: v})
		if len(batch[part]) == 5000 || i == profiles-1 {
			for q, recs := range batch {
				if err := store.WriteProfiles(ctx, q, recs); err != nil {
					b.Fatal(err)
				}
				delete(batch, q)
			}
		}
	}
	b.Logf("wrote %d profiles, %.0f bytes each (values), in %s", profiles, float64(bytes)/profiles, time.Since(start).Round(time.Second))
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		// The broker's part alone: read every record, decode nothing.
		start := time.Now()
		errs := make(chan error, partitions)
		var read atomic.Int64
		for p := 0; p < partitions; p++ {
			go func() {
				errs <- ReadPartition(ctx, store.dialer, kc.BrokerList()[0], topo.Name(topology.EmbeddingsState), p,
					func(_, _ []byte) error { read.Add(1); return nil })
			}()
		}
		for p := 0; p < partitions; p++ {
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
		}
		if read.Load() != profiles {
			b.Fatalf("read %d records, want %d", read.Load(), profiles)
		}
		b.ReportMetric(time.Since(start).Seconds(), "read-s")

		mb := newMember(b, kc, topo, "")
		start = time.Now()
		for p := 0; p < partitions; p++ {
			// As the engine does: one goroutine per claim.
			go func() {
				_, err := mb.node.Factory(ctx, stream.Claim{Topic: "pb", Partition: p, Committed: -1, Processed: -1})
				errs <- err
			}()
		}
		for p := 0; p < partitions; p++ {
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
		}
		took := time.Since(start)
		n := 0
		for p := 0; p < partitions; p++ {
			n += len(mb.node.ProfileIDs(p))
		}
		if n != profiles {
			b.Fatalf("restored %d profiles, want %d", n, profiles)
		}
		b.ReportMetric(took.Seconds(), "restore-s")
		// Profiles decode on first use; decoding them all costs this much.
		start = time.Now()
		for p := 0; p < partitions; p++ {
			for _, id := range mb.node.ProfileIDs(p) {
				if _, found, _ := mb.node.Lookup(p, id); !found {
					b.Fatalf("profile %s lost", id)
				}
			}
		}
		b.ReportMetric(time.Since(start).Seconds(), "decode-all-s")
		b.ReportMetric(float64(bytes)/profiles, "B/profile")
	}
}
