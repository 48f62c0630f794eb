//go:build integration

// These tests write to a real Kafka broker: start one with
//
//	scripts/kafka.sh start
//	eval "$(scripts/kafka.sh env)"
//	go test -tags integration -count=1 -v ./producers/player/
//
// They fail, never skip, when no broker is configured or reachable. Every
// test creates the topics of its own prefix and deletes them at the end.

package player

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/atlas-stream/atlas/internal/kafkaconn"
	"github.com/atlas-stream/atlas/schemas"
	"github.com/atlas-stream/atlas/topology"
)

const brokersEnv = "ATLAS_KAFKA_BROKERS"

// cluster is one test's topics on the broker.
type cluster struct {
	kafka  kafkaconn.Config
	client *kafka.Client
	topo   topology.Topology
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	v := os.Getenv(brokersEnv)
	if v == "" {
		t.Fatalf("%s is not set: these tests need a real Kafka broker. Start one with `scripts/kafka.sh start` and run `eval \"$(scripts/kafka.sh env)\"`, or set %s=host:port of an existing broker", brokersEnv, brokersEnv)
	}
	kc := kafkaconn.Config{Brokers: kafkaconn.ParseBrokers(v)}
	conn, err := net.DialTimeout("tcp", kc.BrokerList()[0], 5*time.Second)
	if err != nil {
		t.Fatalf("cannot reach the Kafka broker %s=%s: %v; is it running? Start one with `scripts/kafka.sh start`", brokersEnv, v, err)
	}
	conn.Close()
	client, err := kc.Client()
	if err != nil {
		t.Fatal(err)
	}
	client.Timeout = 30 * time.Second
	var b [4]byte
	rand.Read(b[:])
	c := &cluster{kafka: kc, client: client, topo: topology.Default(topology.Options{Prefix: "test-" + hex.EncodeToString(b[:]) + "."})}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := topology.Apply(ctx, client, c.topo); err != nil {
		t.Fatalf("cannot create the test topics: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var names []string
		for _, s := range c.topo.Topics {
			names = append(names, c.topo.Name(s.Name))
		}
		if _, err := client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: names}); err != nil {
			t.Errorf("cannot delete the test topics: %v", err)
		}
	})
	t.Logf("topics under prefix %s on %s", c.topo.Prefix, v)
	return c
}

func (c *cluster) producer(t *testing.T, cfg Config) (*Producer, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Kafka, cfg.Topology, cfg.Registerer = c.kafka, c.topo, reg
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return p, reg
}

// readAll returns every message of a topic, partition by partition.
func (c *cluster) readAll(t *testing.T, logical topology.Topic) []kafka.Message {
	t.Helper()
	topic := c.topo.Name(logical)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	spec, _ := c.topo.Topic(logical)
	var out []kafka.Message
	for p := 0; p < spec.Partitions; p++ {
		res, err := c.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: {kafka.LastOffsetOf(p)}}})
		if err != nil {
			t.Fatalf("cannot list the offsets of %s: %v", topic, err)
		}
		last := res.Topics[topic][0].LastOffset
		if last <= 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: c.kafka.BrokerList(), Topic: topic, Partition: p, MaxWait: 100 * time.Millisecond})
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("cannot read %s partition %d: %v", topic, p, err)
			}
			out = append(out, m)
			if m.Offset >= last-1 {
				break
			}
		}
		r.Close()
	}
	return out
}

func event(i int, now time.Time) *schemas.Playback {
	return &schemas.Playback{
		Envelope: schemas.Envelope{
			EventID: fmt.Sprintf("ev-%d", i), EventTime: now.UnixMilli(), AccountID: "acc-1",
			ProfileID: fmt.Sprintf("profile-%d", i%13), DeviceID: "dev-1", SessionID: "ses-1",
			Country: "DE", DeviceType: schemas.DeviceTV,
		},
		Kind: schemas.PlayHeartbeat, TitleID: "title-1", PositionMs: int64(i) * 1000,
	}
}

func TestSendSyncWritesEachRecordToItsSchemasTopicKeyedAndPartitionedByItsKey(t *testing.T) {
	c := newCluster(t)
	p, reg := c.producer(t, Config{})
	now := time.Now()
	var recs []schemas.Record
	for i := range 40 {
		recs = append(recs, event(i, now))
	}
	recs = append(recs,
		&schemas.Browse{Envelope: schemas.Envelope{EventID: "b-1", EventTime: now.UnixMilli(), AccountID: "acc-1", ProfileID: "profile-3", DeviceID: "d", SessionID: "s", Country: "FR", DeviceType: schemas.DeviceWeb}, Kind: schemas.BrowseSearch, Query: "space"},
		&schemas.Title{TitleID: "title-1", Name: "A Film", Genres: []string{"drama"}, Country: "US", ReleaseDate: "2020-01-02", DurationSec: 5400, Type: schemas.TitleFilm},
		&schemas.Alert{ID: "al-1", Kind: "account_sharing", Status: schemas.AlertFiring, Severity: schemas.SeverityHigh, Subject: "account:acc-1", Score: 3.5, WindowStart: 1, WindowEnd: 2, FirstSeen: 1, DetectedAt: 2},
	)
	invalid := event(99, now)
	invalid.ProfileID = ""
	recs = append(recs, invalid)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	errs := p.SendSync(ctx, recs)
	t.Logf("SendSync of %d records took %s", len(recs), time.Since(start).Round(time.Millisecond))
	for i, err := range errs[:len(errs)-1] {
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	var ve *schemas.ValidationError
	if !errors.As(errs[len(errs)-1], &ve) || ve.Field != "pro" {
		t.Fatalf("the invalid record got %v, want a ValidationError on pro", errs[len(errs)-1])
	}

	want := map[string]schemas.Record{}
	for _, r := range recs[:len(recs)-1] {
		b, _ := schemas.Marshal(r)
		want[string(b)] = r
	}
	seen := 0
	for _, topic := range []topology.Topic{topology.Playback, topology.Browse, topology.Catalog, topology.Alerts} {
		spec, _ := c.topo.Topic(topic)
		for _, m := range c.readAll(t, topic) {
			rec, ok := want[string(m.Value)]
			if !ok {
				t.Fatalf("%s: unexpected or duplicated message %q", m.Topic, m.Value)
			}
			delete(want, string(m.Value))
			seen++
			headers := map[string]string{}
			for _, h := range m.Headers {
				headers[h.Key] = string(h.Value)
			}
			if headers[schemas.HeaderSchema] != string(rec.Schema()) || headers[schemas.HeaderContentType] != schemas.ContentType {
				t.Errorf("%s: headers %v", m.Topic, headers)
			}
			if string(m.Key) != rec.Key() {
				t.Errorf("%s: key %q, want %q", m.Topic, m.Key, rec.Key())
			}
			if got := Partition(rec.Key(), spec.Partitions); got != m.Partition {
				t.Errorf("%s: key %q is in partition %d, Partition says %d", m.Topic, m.Key, m.Partition, got)
			}
			if wantTopic, _ := p.Topic(rec.Schema()); m.Topic != wantTopic {
				t.Errorf("%s record written to %s, want %s", rec.Schema(), m.Topic, wantTopic)
			}
			back, err := schemas.NewDecoder(schemas.Limits{}).Decode(string(rec.Schema()), m.Value)
			if err != nil || !reflect.DeepEqual(back, rec) {
				t.Errorf("%s: decoded %+v (%v), want %+v", m.Topic, back, err, rec)
			}
		}
	}
	if len(want) > 0 {
		t.Fatalf("%d records are not on their topics", len(want))
	}
	t.Logf("read back %d records from 4 topics: right topic, key, partition, headers and bytes", seen)
	if got := metricValue(t, reg, "atlas_player_sent_records_total", "schema", "playback.v1"); got != 40 {
		t.Errorf("sent{playback} = %v, want 40", got)
	}
	if got := metricValue(t, reg, "atlas_player_failed_records_total", "schema", "playback.v1", "reason", "invalid"); got != 1 {
		t.Errorf("failed{playback,invalid} = %v, want 1", got)
	}
	if got := metricValue(t, reg, "atlas_player_send_latency_seconds"); got != 43 {
		t.Errorf("latency observations %v, want 43", got)
	}
	if got := metricValue(t, reg, "atlas_player_queued_records"); got != 0 {
		t.Errorf("queued %v after every acknowledgement, want 0", got)
	}
}

func TestSendQueuesAndCloseFlushesEverything(t *testing.T) {
	c := newCluster(t)
	// A linger far longer than the test: only Close can flush.
	p, reg := c.producer(t, Config{Linger: time.Minute})
	now := time.Now()
	ctx := context.Background()
	start := time.Now()
	for i := range 200 {
		if err := p.Send(ctx, event(i, now)); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("200 Sends returned in %s", time.Since(start).Round(time.Microsecond))
	if got := metricValue(t, reg, "atlas_player_queued_records"); got != 200 {
		t.Errorf("queued %v before Close, want 200", got)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := p.Close(cctx); err != nil {
		t.Fatal(err)
	}
	msgs := c.readAll(t, topology.Playback)
	if len(msgs) != 200 {
		t.Fatalf("%d messages on the topic after Close, want 200", len(msgs))
	}
	if got := metricValue(t, reg, "atlas_player_sent_records_total", "schema", "playback.v1"); got != 200 {
		t.Errorf("sent = %v, want 200", got)
	}
	if got := metricValue(t, reg, "atlas_player_batch_records"); got < 1 || got > 13 {
		t.Errorf("%v batches for 200 records over 13 keys, want one per partition used", got)
	}
}

func TestAFullBufferBlocksOrFailsAsConfigured(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	now := time.Now()
	// Ten records spread over six partitions never fill a batch of ten,
	// so they stay in the buffer until the linger passes.
	for _, policy := range []Policy{Fail, Block} {
		t.Run(policy.String(), func(t *testing.T) {
			p, reg := c.producer(t, Config{Buffer: 10, BatchSize: 10, Linger: 2 * time.Second, WhenFull: policy})
			for i := range 10 {
				if err := p.Send(ctx, event(i, now)); err != nil {
					t.Fatal(err)
				}
			}
			short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := p.Send(short, event(10, now))
			took := time.Since(start)
			switch policy {
			case Fail:
				if !errors.Is(err, ErrBufferFull) || took > 50*time.Millisecond {
					t.Fatalf("Send into a full buffer: %v after %s, want ErrBufferFull at once", err, took)
				}
				if got := metricValue(t, reg, "atlas_player_failed_records_total", "schema", "playback.v1", "reason", "buffer_full"); got != 1 {
					t.Errorf("failed{buffer_full} = %v, want 1", got)
				}
			case Block:
				if !errors.Is(err, context.DeadlineExceeded) || took < 100*time.Millisecond {
					t.Fatalf("Send into a full buffer: %v after %s, want the context's deadline after 100 ms", err, took)
				}
			}
			// Once the linger sends the batches, there is room again.
			wait, cancel2 := context.WithTimeout(ctx, 10*time.Second)
			defer cancel2()
			start = time.Now()
			if policy == Block {
				if err := p.Send(wait, event(11, now)); err != nil {
					t.Fatal(err)
				}
				t.Logf("a blocked Send got room after %s, when the linger flushed", time.Since(start).Round(time.Millisecond))
			} else {
				for p.Send(ctx, event(11, now)) != nil {
					if wait.Err() != nil {
						t.Fatal("the buffer never drained")
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}
}

func TestReadySaysWhetherTheTopicsCanBeWritten(t *testing.T) {
	c := newCluster(t)
	p, _ := c.producer(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	missing, _ := c.producer(t, Config{})
	missing.topics = append(missing.topics, c.topo.Prefix+"no-such-topic")
	if err := missing.Ready(ctx); err == nil || !strings.Contains(err.Error(), "no-such-topic") {
		t.Fatalf("Ready with a missing topic: %v", err)
	}
	down, err := New(Config{Kafka: kafkaconn.Config{Brokers: []string{"127.0.0.1:1"}}, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close(ctx)
	if err := down.Ready(ctx); err == nil || !strings.Contains(err.Error(), "cannot reach any Kafka broker") {
		t.Fatalf("Ready without a broker: %v", err)
	}
}

func TestSendSyncReturnsWhenItsContextEndsAndTheRecordsMayStillBeWritten(t *testing.T) {
	c := newCluster(t)
	p, reg := c.producer(t, Config{Linger: time.Minute})
	now := time.Now()
	recs := []schemas.Record{event(1, now), event(2, now), event(3, now)}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	errs := p.SendSync(ctx, recs)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("SendSync returned after %s, its context ended after 200 ms", took)
	}
	for i, err := range errs {
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "may still be written") {
			t.Fatalf("record %d: %v, want the context's error saying the record may still be written", i, err)
		}
	}
	if got := metricValue(t, reg, "atlas_player_failed_records_total", "schema", "playback.v1", "reason", "canceled"); got != 3 {
		t.Errorf("failed{canceled} = %v, want 3", got)
	}
	cctx, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel2()
	if err := p.Close(cctx); err != nil {
		t.Fatal(err)
	}
	if n := len(c.readAll(t, topology.Playback)); n != 3 {
		t.Fatalf("%d records on the topic after Close, want the 3 abandoned ones", n)
	}
	t.Log("the 3 records whose wait was abandoned were written by Close")
}

func TestConcurrentSendSyncCallsShareBatches(t *testing.T) {
	c := newCluster(t)
	p, reg := c.producer(t, Config{})
	now := time.Now()
	const callers, each = 32, 50
	done := make(chan []error, callers)
	for g := range callers {
		go func() {
			recs := make([]schemas.Record, each)
			for i := range recs {
				recs[i] = event(g*each+i, now)
			}
			done <- p.SendSync(context.Background(), recs)
		}()
	}
	for range callers {
		for _, err := range <-done {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	batches := metricValue(t, reg, "atlas_player_batch_records")
	t.Logf("%d records from %d concurrent SendSync calls went out in %v produce requests", callers*each, callers, batches)
	if batches >= callers*6 {
		t.Errorf("%v produce requests for %d calls over 6 partitions: the calls did not share batches", batches, callers)
	}
	if n := len(c.readAll(t, topology.Playback)); n != callers*each {
		t.Fatalf("%d records on the topic, want %d", n, callers*each)
	}
}
