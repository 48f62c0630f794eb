//go:build integration

package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/atlas-stream/atlas/consumers/stream"
	"github.com/atlas-stream/atlas/internal/kafkaconn"
	"github.com/atlas-stream/atlas/schemas"
	"github.com/atlas-stream/atlas/topology"
)

// env is one test's slice of the real broker: its own topic prefix.
type env struct {
	kafka kafkaconn.Config
	topo  topology.Topology
	in    string // playback topic
	dlq   string
}

func newEnv(t *testing.T) *env {
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
	topo := topology.Default(topology.Options{Prefix: "test-" + hex.EncodeToString(b[:]) + ".", Partitions: 2})
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
		names := make([]string, 0, len(topo.Topics))
		for _, s := range topo.Topics {
			names = append(names, topo.Name(s.Name))
		}
		client.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: names})
	})
	return &env{kafka: kc, topo: topo, in: topo.Name(topology.Playback), dlq: topo.Name(topology.DLQ)}
}

func (e *env) produce(t *testing.T, msgs ...kafka.Message) {
	t.Helper()
	tr, _ := e.kafka.Transport()
	w := &kafka.Writer{Addr: kafka.TCP(e.kafka.BrokerList()...), Topic: e.in, Transport: tr,
		RequiredAcks: kafka.RequireAll, Balancer: &kafka.Murmur2Balancer{}, BatchTimeout: time.Millisecond}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("cannot produce: %v", err)
	}
}

func playback(t *testing.T, i int) kafka.Message {
	t.Helper()
	now := time.Now().UnixMilli()
	e := &schemas.Playback{Envelope: schemas.Envelope{EventID: fmt.Sprintf("ev-%d", i), EventTime: now, ReceiveTime: now,
		AccountID: "a1", ProfileID: fmt.Sprintf("p%d", i%7), DeviceID: "d1", SessionID: "s1", Country: "DE",
		DeviceType: schemas.DeviceTV}, Kind: schemas.PlayHeartbeat, TitleID: "t1"}
	b, err := schemas.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return kafka.Message{Key: []byte(e.ProfileID), Value: b, Headers: []kafka.Header{{Key: schemas.HeaderSchema, Value: []byte(schemas.SchemaPlayback)}}}
}

// counter is a processor that records every event id it was handed, and
// panics on an event whose title is "boom".
type counter struct {
	mu   sync.Mutex
	seen map[string]int
}

func (c *counter) factory(context.Context, stream.Claim) (stream.Processor, error) { return c, nil }
func (c *counter) Process(_ context.Context, r *stream.Record) error {
	e := r.Value.(*schemas.Playback)
	if e.TitleID == "boom" {
		panic("boom title")
	}
	c.mu.Lock()
	c.seen[e.EventID]++
	c.mu.Unlock()
	return nil
}
func (c *counter) Checkpoint(context.Context) (stream.Checkpoint, error) {
	return stream.Checkpoint{Offset: -1}, nil
}
func (c *counter) Close() error { return nil }
func (c *counter) count() (distinct, total int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.seen {
		distinct++
		total += n
	}
	return
}

func (e *env) runner(t *testing.T, c *counter) *Runner {
	t.Helper()
	r, err := New(Config{Role: "test", Group: e.topo.GroupID(topology.AggregatesGroup), Topics: []string{e.in},
		DLQTopic: e.dlq, Kafka: e.kafka, Factory: c.factory, FlushInterval: 200 * time.Millisecond,
		SessionTimeout: 6 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func readAll(t *testing.T, e *env, topic string, want int) []kafka.Message {
	t.Helper()
	var out []kafka.Message
	for p := 0; p < 3; p++ {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: e.kafka.BrokerList(), Topic: topic, Partition: p, MaxWait: 100 * time.Millisecond})
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			m, err := r.ReadMessage(ctx)
			cancel()
			if err != nil {
				break
			}
			out = append(out, m)
		}
		r.Close()
	}
	return out
}

func TestPoisonRecordsGoToTheDeadLetterTopicWithReasonsAndNothingStalls(t *testing.T) {
	e := newEnv(t)
	var msgs []kafka.Message
	for i := 0; i < 200; i++ {
		msgs = append(msgs, playback(t, i))
	}
	bad := []kafka.Message{
		{Key: []byte("p1"), Value: []byte{0xdf, 0xff, 0xff, 0xff, 0xff}, Headers: []kafka.Header{{Key: schemas.HeaderSchema, Value: []byte("playback.v1")}}},
		{Key: []byte("p2"), Value: msgs[0].Value, Headers: []kafka.Header{{Key: schemas.HeaderSchema, Value: []byte("playback.v9")}}},
		{Key: []byte("p3"), Value: []byte("not msgpack at all"), Headers: []kafka.Header{{Key: schemas.HeaderSchema, Value: []byte("playback.v1")}}},
	}
	invalid := playback(t, 1000)
	var pb schemas.Playback
	if err := schemas.DecodePlayback(invalid.Value, &pb); err != nil {
		t.Fatal(err)
	}
	pb.ProfileID = ""
	invalid.Value, _ = schemas.Marshal(&pb)
	boom := playback(t, 1001)
	schemas.DecodePlayback(boom.Value, &pb)
	pb.TitleID = "boom"
	boom.Value, _ = schemas.Marshal(&pb)
	// An event time a year ahead of its receive time is rejected, so it can
	// never push a partition's watermark into the future.
	future := playback(t, 1002)
	schemas.DecodePlayback(future.Value, &pb)
	pb.EventTime += 365 * 24 * 3600 * 1000
	future.Value, _ = schemas.Marshal(&pb)
	bad = append(bad, invalid, boom, future)
	// Interleave the bad records with the valid ones.
	all := append(append(append([]kafka.Message{}, msgs[:100]...), bad...), msgs[100:]...)
	e.produce(t, all...)

	c := &counter{seen: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	r := e.runner(t, c)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	waitFor(t, "200 valid events", 60*time.Second, func() bool { d, _ := c.count(); return d == 200 })
	waitFor(t, "readiness", 10*time.Second, r.Ready)
	time.Sleep(time.Second) // one more checkpoint
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	dead := readAll(t, e, e.dlq, len(bad))
	if len(dead) != len(bad) {
		t.Fatalf("dead-letter topic holds %d records, want %d", len(dead), len(bad))
	}
	stages := map[string]int{}
	for _, m := range dead {
		h := map[string]string{}
		for _, x := range m.Headers {
			h[x.Key] = string(x.Value)
		}
		if h[HeaderDLQTopic] != e.in || h[HeaderDLQOffset] == "" || h[HeaderDLQError] == "" || h[HeaderDLQPartition] == "" {
			t.Fatalf("dead letter lacks its source or reason: %v", h)
		}
		stages[h[HeaderDLQStage]]++
		t.Logf("dead letter from %s/%s@%s stage=%s field=%q: %s", h[HeaderDLQTopic], h[HeaderDLQPartition], h[HeaderDLQOffset], h[HeaderDLQStage], h[HeaderDLQField], h[HeaderDLQError])
		if h[HeaderDLQStage] == "process" && !strings.Contains(h[HeaderDLQError], "processor panic at "+e.in) {
			t.Fatalf("a panic's dead letter does not name the partition and offset: %s", h[HeaderDLQError])
		}
	}
	if stages["decode"] != 3 || stages["validate"] != 2 || stages["process"] != 1 {
		t.Fatalf("dead letters by stage = %v, want decode 3, validate 2, process 1", stages)
	}

	// The commits carry the engine's metadata and point past everything.
	client, _ := e.kafka.Client()
	res, err := client.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{GroupID: e.topo.GroupID(topology.AggregatesGroup), Topics: map[string][]int{e.in: {0, 1}}})
	if err != nil {
		t.Fatal(err)
	}
	var committed int64
	for _, p := range res.Topics[e.in] {
		m := decodeMeta(p.Metadata)
		if m.Processed != p.CommittedOffset {
			t.Fatalf("partition %d: committed %d with metadata %q", p.Partition, p.CommittedOffset, p.Metadata)
		}
		t.Logf("partition %d committed at %d, metadata %s", p.Partition, p.CommittedOffset, p.Metadata)
		committed += p.CommittedOffset
	}
	if committed != int64(len(all)) {
		t.Fatalf("committed offsets add up to %d, want %d", committed, len(all))
	}
}

func TestARestartResumesFromTheCommitAndProcessesEachRecordOnce(t *testing.T) {
	e := newEnv(t)
	var first []kafka.Message
	for i := 0; i < 300; i++ {
		first = append(first, playback(t, i))
	}
	e.produce(t, first...)
	c := &counter{seen: map[string]int{}}
	for round := 0; round < 3; round++ {
		ctx, cancel := context.WithCancel(context.Background())
		r := e.runner(t, c)
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		want := 300 * (round + 1)
		waitFor(t, strconv.Itoa(want)+" events", 60*time.Second, func() bool { d, _ := c.count(); return d == want })
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		var next []kafka.Message
		for i := 0; i < 300; i++ {
			next = append(next, playback(t, want+i))
		}
		e.produce(t, next...)
	}
	if d, total := c.count(); d != total {
		t.Fatalf("%d distinct events were processed %d times: graceful restarts must not reprocess", d, total)
	}
}
