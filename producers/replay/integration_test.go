//go:build integration

// These tests replay into a real Kafka broker: start one with
//
//	scripts/kafka.sh start
//	ATLAS_KAFKA_BROKERS=127.0.0.1:9092 go test -tags integration -count=1 -v ./producers/replay/
//
// They fail, never skip, when no broker is configured or reachable. Each
// test creates its topics under a prefix of its own with topology.Apply and
// deletes them at the end.

package replay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/atlas-stream/atlas/internal/kafkaconn"
	"github.com/atlas-stream/atlas/schemas"
	"github.com/atlas-stream/atlas/topology"
)

const brokersEnv = "ATLAS_KAFKA_BROKERS"

// broker returns the brokers of ATLAS_KAFKA_BROKERS after checking that
// one answers, and a client for them.
func broker(t *testing.T) ([]string, *kafka.Client) {
	t.Helper()
	v := os.Getenv(brokersEnv)
	if v == "" {
		t.Fatalf("%s is not set: this test needs a real Kafka broker. Start one with `scripts/kafka.sh start` and run `eval \"$(scripts/kafka.sh env)\"`, or set %s=host:port of an existing broker", brokersEnv, brokersEnv)
	}
	brokers := kafkaconn.ParseBrokers(v)
	conn, err := net.DialTimeout("tcp", brokers[0], 5*time.Second)
	if err != nil {
		t.Fatalf("cannot reach the Kafka broker %s=%s: %v; is it running? Start one with `scripts/kafka.sh start`", brokersEnv, v, err)
	}
	conn.Close()
	return brokers, &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 20 * time.Second}
}

// freshTopology returns the default topology under a new prefix, without
// creating anything; the prefix's topics are deleted when the test ends.
func freshTopology(t *testing.T, client *kafka.Client) topology.Topology {
	t.Helper()
	var b [4]byte
	rand.Read(b[:])
	topo := topology.Default(topology.Options{Prefix: "test-" + hex.EncodeToString(b[:]) + "."})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var names []string
		for _, s := range topo.Topics {
			names = append(names, topo.Name(s.Name))
		}
		res, err := client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: names})
		if err != nil {
			t.Errorf("cannot delete the test topics: %v", err)
			return
		}
		for name, err := range res.Errors {
			if err != nil && !errors.Is(err, kafka.UnknownTopicOrPartition) {
				t.Errorf("cannot delete test topic %q: %v", name, err)
			}
		}
	})
	return topo
}

// sent remembers the order in which records went to the sink.
type sent struct {
	next  Sink
	index map[string]int // event or title id → position
	keys  map[string]string
}

func recordID(rec schemas.Record) string {
	if t, ok := rec.(*schemas.Title); ok {
		return t.TitleID
	}
	return envelopeOf(rec).EventID
}

func (s *sent) Send(ctx context.Context, rec schemas.Record) error {
	id := recordID(rec)
	s.index[id] = len(s.index)
	s.keys[id] = rec.Key()
	return s.next.Send(ctx, rec)
}

func (s *sent) Flush(ctx context.Context) error { return s.next.(Flusher).Flush(ctx) }

func TestReplayIntoKafkaArrivesOncePerRecordInOrderPerPartition(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	brokers, client := broker(t)
	topo := freshTopology(t, client)
	report, err := topology.Apply(ctx, client, topo)
	if err != nil {
		t.Fatalf("Apply: %v\n%s", err, report)
	}
	t.Logf("topics under prefix %s created:\n%s", topo.Prefix, report)

	dir := movieLensDir(t)
	rows, _, err := LoadRatings(filepath.Join(dir, "ratings.csv"), ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rows = rows[:1000]
	movies, _, err := LoadMovies(filepath.Join(dir, "movies.csv"), ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}

	ks, err := NewKafkaSink(ctx, KafkaConfig{Conn: kafkaconn.Config{Brokers: brokers}, Topology: topo})
	if err != nil {
		t.Fatal(err)
	}
	tee := &sent{next: ks, index: map[string]int{}, keys: map[string]string{}}
	start := time.Now()
	titles, err := SendCatalog(ctx, movies, tee)
	if err != nil {
		t.Fatal(err)
	}
	g, _ := NewGenerator(Config{Seed: 1})
	sum, err := g.Run(ctx, rows, tee)
	if err != nil {
		t.Fatal(err)
	}
	if err := ks.Close(ctx); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if ks.Sent() != titles+sum.Events {
		t.Fatalf("Kafka acknowledged %d records, %d were sent", ks.Sent(), titles+sum.Events)
	}
	t.Logf("replayed %d ratings as %d events (%d plays) and %d titles in %s: %.0f records/s acknowledged by all replicas",
		len(rows), sum.Events, sum.Plays, titles, took.Round(time.Millisecond), float64(ks.Sent())/took.Seconds())

	// Read every partition back and compare with what was sent.
	d := schemas.NewDecoder(schemas.Limits{})
	seen := map[string]bool{}
	starts := 0
	for _, topic := range []topology.Topic{topology.Playback, topology.Browse, topology.Catalog} {
		spec, _ := topo.Topic(topic)
		name := topo.Name(topic)
		for p := 0; p < spec.Partitions; p++ {
			msgs := readPartition(ctx, t, brokers, client, name, p)
			prev := -1
			for _, m := range msgs {
				hdr := map[string]string{}
				for _, h := range m.Headers {
					hdr[h.Key] = string(h.Value)
				}
				if hdr[schemas.HeaderContentType] != schemas.ContentType {
					t.Fatalf("%s/%d@%d: headers %v", name, p, m.Offset, hdr)
				}
				rec, err := d.Decode(hdr[schemas.HeaderSchema], m.Value)
				if err != nil {
					t.Fatalf("%s/%d@%d: %v", name, p, m.Offset, err)
				}
				if err := schemas.Validate(rec, schemas.Limits{}, time.Now()); err != nil {
					t.Fatalf("%s/%d@%d: %v", name, p, m.Offset, err)
				}
				id := recordID(rec)
				i, ok := tee.index[id]
				switch {
				case !ok:
					t.Fatalf("%s/%d@%d: record %s was never sent", name, p, m.Offset, id)
				case seen[id]:
					t.Fatalf("%s/%d@%d: record %s arrived twice", name, p, m.Offset, id)
				case i <= prev:
					t.Fatalf("%s/%d@%d: record %s (sent %d) arrived after a record sent %d", name, p, m.Offset, id, i, prev)
				case string(m.Key) != rec.Key() || tee.keys[id] != rec.Key():
					t.Fatalf("%s/%d@%d: key %q, record key %q", name, p, m.Offset, m.Key, rec.Key())
				}
				if want := (&kafka.Murmur2Balancer{}).Balance(kafka.Message{Key: m.Key}, partitionList(spec.Partitions)...); want != p {
					t.Fatalf("%s/%d@%d: key %q belongs in partition %d (Murmur2, as the Java client)", name, p, m.Offset, m.Key, want)
				}
				seen[id] = true
				prev = i
				if e, ok := rec.(*schemas.Playback); ok && e.Kind == schemas.PlayStart {
					starts++
				}
			}
		}
	}
	if len(seen) != len(tee.index) || starts != len(rows) {
		t.Fatalf("read back %d of %d records and %d starts of %d", len(seen), len(tee.index), starts, len(rows))
	}
	t.Logf("read back all %d records, each once, every partition in the order sent", len(seen))
}

func TestKafkaSinkNamesMissingTopics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	brokers, client := broker(t)
	topo := freshTopology(t, client) // never applied
	_, err := NewKafkaSink(ctx, KafkaConfig{Conn: kafkaconn.Config{Brokers: brokers}, Topology: topo})
	if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "atlas topology apply") {
		t.Fatalf("error %v, want one naming the missing topic and `atlas topology apply`", err)
	}
	t.Logf("without topics: %v", err)
}

func partitionList(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// readPartition reads a partition from its first offset to its end.
func readPartition(ctx context.Context, t *testing.T, brokers []string, client *kafka.Client, topic string, p int) []kafka.Message {
	t.Helper()
	res, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: {kafka.LastOffsetOf(p)}}})
	if err != nil {
		t.Fatalf("cannot list the offsets of %s/%d: %v", topic, p, err)
	}
	end := res.Topics[topic][0].LastOffset
	if end == 0 {
		return nil
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p, MinBytes: 1, MaxBytes: 10 << 20,
		// Close waits for the fetch in flight after the last message.
		MaxWait: 100 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(kafka.FirstOffset); err != nil {
		t.Fatal(err)
	}
	var out []kafka.Message
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("cannot read %s/%d after %d messages (end %d): %v", topic, p, len(out), end, err)
		}
		out = append(out, m)
		if m.Offset >= end-1 {
			return out
		}
	}
}
