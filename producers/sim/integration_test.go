//go:build integration

// These tests write to a real Kafka broker: start one with
//
//	scripts/kafka.sh start
//	ATLAS_KAFKA_BROKERS=127.0.0.1:9092 go test -tags integration -count=1 -v ./producers/sim/
//
// They fail, never skip, when no broker is configured or reachable. Each run
// uses topic prefixes of its own and deletes its topics at the end.

package sim

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/atlas-stream/atlas/producers/sim/recfile"
	"github.com/atlas-stream/atlas/schemas"
	"github.com/atlas-stream/atlas/topology"
)

const brokersEnv = "ATLAS_KAFKA_BROKERS"

func brokers(t *testing.T) []string {
	t.Helper()
	v := os.Getenv(brokersEnv)
	if v == "" {
		t.Fatalf("%s is not set: these tests need a real Kafka broker. Start one with `scripts/kafka.sh start` and run `eval \"$(scripts/kafka.sh env)\"`", brokersEnv)
	}
	bs := strings.Split(v, ",")
	conn, err := net.DialTimeout("tcp", bs[0], 5*time.Second)
	if err != nil {
		t.Fatalf("cannot reach the Kafka broker %s=%s: %v; start one with `scripts/kafka.sh start`", brokersEnv, v, err)
	}
	conn.Close()
	return bs
}

// wire is one record as stored in a partition.
type wire struct {
	key, value string
	headers    string
}

func (w wire) String() string {
	return fmt.Sprintf("key=%s headers=%s value=%x", w.key, w.headers, w.value)
}

// readPartition reads a partition from its start to its high watermark.
func readPartition(t *testing.T, bs []string, topic string, p int) []wire {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := kafka.DialLeader(ctx, "tcp", bs[0], topic, p)
	if err != nil {
		t.Fatalf("cannot dial the leader of %s/%d: %v", topic, p, err)
	}
	last, err := conn.ReadLastOffset()
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	var out []wire
	if last == 0 {
		return out
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: bs, Topic: topic, Partition: p, MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 200 * time.Millisecond})
	defer r.Close()
	for int64(len(out)) < last {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("cannot read %s/%d at offset %d of %d: %v", topic, p, len(out), last, err)
		}
		var h strings.Builder
		for _, x := range m.Headers {
			fmt.Fprintf(&h, "%s=%s;", x.Key, x.Value)
		}
		out = append(out, wire{string(m.Key), string(m.Value), h.String()})
	}
	return out
}

func TestTwoRunsWithTheSameSeedFillTheTopicsIdentically(t *testing.T) {
	bs := brokers(t)
	client := &kafka.Client{Addr: kafka.TCP(bs...), Timeout: 30 * time.Second}
	var b [4]byte
	rand.Read(b[:])
	cfg := small(99, 30_000)
	cfg.Titles = 200
	cfg.Partitions = 5 // not the default, to prove the flag is honoured end to end

	// The expected content: the same simulation written to a record file.
	var file bytes.Buffer
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	truth, err := g.Run(context.Background(), FileSink{W: recfile.NewWriter(&file)})
	if err != nil {
		t.Fatal(err)
	}

	var topos []topology.Topology
	for _, run := range []string{"a", "b"} {
		topo := topology.Default(topology.Options{Prefix: "test-" + hex.EncodeToString(b[:]) + "-" + run + ".", Partitions: cfg.Partitions})
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		if _, err := topology.Apply(ctx, client, topo); err != nil {
			cancel()
			t.Fatalf("cannot create the test topics: %v", err)
		}
		cancel()
		t.Cleanup(func() {
			var names []string
			for _, s := range topo.Topics {
				names = append(names, topo.Name(s.Name))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: names}); err != nil {
				t.Errorf("cannot delete the test topics: %v", err)
			}
		})
		g, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		w := NewKafkaWriter(bs, nil)
		start := time.Now()
		tr, err := g.Run(context.Background(), NewKafkaSink(w, topo, 0))
		if err != nil {
			t.Fatalf("run %s: %v", run, err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("run %s: %d events and %d titles to %s* in %s", run, tr.Totals.Sent, tr.Totals.Catalog, topo.Prefix, time.Since(start).Round(time.Millisecond))
		if !bytes.Equal(encodeTruth(t, tr), encodeTruth(t, truth)) {
			t.Fatalf("run %s: the truth differs from the file run's", run)
		}
		topos = append(topos, topo)
	}

	// Expected per-partition content, in send order, from the file.
	expected := map[string][]wire{}
	parts := make([]int, cfg.Partitions)
	for i := range parts {
		parts[i] = i
	}
	r := recfile.NewReader(bytes.NewReader(file.Bytes()))
	dec := schemas.NewDecoder(schemas.Limits{})
	for {
		s, v, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		rec, err := dec.Decode(string(s), v)
		if err != nil {
			t.Fatal(err)
		}
		topic, p := topicOf(s), 0
		if topic != topology.Catalog {
			p = partitionOf(rec.Key(), parts)
		}
		k := fmt.Sprintf("%s/%d", topic, p)
		expected[k] = append(expected[k], wire{rec.Key(), string(v), "atlas-schema=" + string(s) + ";content-type=application/msgpack;"})
	}

	total := 0
	for _, topic := range []topology.Topic{topology.Playback, topology.Browse, topology.Catalog} {
		n := cfg.Partitions
		if topic == topology.Catalog {
			n = 1
		}
		for p := 0; p < n; p++ {
			a := readPartition(t, bs, topos[0].Name(topic), p)
			bb := readPartition(t, bs, topos[1].Name(topic), p)
			want := expected[fmt.Sprintf("%s/%d", topic, p)]
			if len(a) != len(want) || len(bb) != len(want) {
				t.Fatalf("%s/%d holds %d and %d records, want %d", topic, p, len(a), len(bb), len(want))
			}
			for i := range want {
				if a[i] != bb[i] {
					t.Fatalf("%s/%d offset %d differs between the runs:\n a %v\n b %v", topic, p, i, a[i], bb[i])
				}
				if a[i] != want[i] {
					t.Fatalf("%s/%d offset %d is not the record sent there in that order:\n got  %v\n want %v", topic, p, i, a[i], want[i])
				}
			}
			total += len(want)
		}
	}
	if want := int(truth.Totals.Sent + truth.Totals.Catalog); total != want {
		t.Fatalf("the topics hold %d records, want %d", total, want)
	}
	for _, pt := range truth.Partitions {
		if got := len(expected[fmt.Sprintf("%s/%d", pt.Topic, pt.Partition)]); int64(got) != pt.Sent {
			t.Fatalf("%s/%d: the truth says %d sends, the stream has %d", pt.Topic, pt.Partition, pt.Sent, got)
		}
	}
	t.Logf("both runs wrote the same %d records, partition by partition, in send order", total)
}
