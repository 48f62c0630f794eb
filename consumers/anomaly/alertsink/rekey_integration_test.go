//go:build integration

package alertsink

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/atlas-stream/atlas/consumers/anomaly"
	"github.com/atlas-stream/atlas/consumers/stream"
	"github.com/atlas-stream/atlas/internal/kafkaconn"
	"github.com/atlas-stream/atlas/schemas"
)

// A backlog queued faster than the broker acknowledges it goes out in
// requests under the broker's 1 MiB limit, every record once, each
// subject's records in the order sent. (3,000 records of 1 KB in one
// request were refused whole; Flush then sent them again behind later
// records.)
func TestRekeyWritesABacklogInOrderUnderTheBrokersLimit(t *testing.T) {
	v := os.Getenv("ATLAS_KAFKA_BROKERS")
	if v == "" {
		t.Fatal("ATLAS_KAFKA_BROKERS is not set: this test needs a real Kafka broker. Run scripts/kafka.sh start and eval \"$(scripts/kafka.sh env)\"")
	}
	kc := kafkaconn.Config{Brokers: kafkaconn.ParseBrokers(v)}
	client, err := kc.Client()
	if err != nil {
		t.Fatal(err)
	}
	client.Timeout = 30 * time.Second
	var b [4]byte
	rand.Read(b[:])
	topic := "test-" + hex.EncodeToString(b[:]) + ".rekey"
	const partitions = 2
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Errors[topic]; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: []string{topic}}) })

	r, err := NewRekey(RekeyConfig{Kafka: kc, Topic: topic, Partitions: partitions})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	h, err := r.Claim(stream.Claim{Topic: "in", Partition: 0})
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	pad := strings.Repeat("x", 1000)
	for i := range n {
		rec := &schemas.Playback{Envelope: schemas.Envelope{EventID: "e" + strconv.Itoa(i), EventTime: int64(i), AccountID: "acc-" + strconv.Itoa(i%7)},
			Kind: schemas.PlayHeartbeat, TitleID: pad}
		h.Send(context.Background(), []byte("account:acc-"+strconv.Itoa(i%7)+"#p0."+strconv.Itoa(i)+"."+strconv.Itoa(i)), rec)
	}
	if err := h.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}

	seen := 0
	for p := range partitions {
		conn, err := kafka.DialLeader(ctx, "tcp", kc.BrokerList()[0], topic, p)
		if err != nil {
			t.Fatal(err)
		}
		first, last, err := conn.ReadOffsets()
		if err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		batch := conn.ReadBatch(1, 64<<20)
		lastOf := map[string]int{}
		for o := first; o < last; o++ {
			m, err := batch.ReadMessage()
			if err != nil {
				t.Fatalf("partition %d offset %d of %d: %v", p, o, last, err)
			}
			subject := string(anomaly.SubjectOf(m.Key))
			if got := anomaly.PartitionOf([]byte(subject), partitions); got != p {
				t.Errorf("%s is in partition %d, want %d", m.Key, p, got)
			}
			i, _ := strconv.Atoi(strings.SplitN(string(m.Key[len(subject)+1:]), ".", 3)[1])
			if prev, ok := lastOf[subject]; ok && i <= prev {
				t.Errorf("%s: record %d after %d", subject, i, prev)
			}
			lastOf[subject] = i
			seen++
		}
		batch.Close()
		conn.Close()
	}
	if seen != n {
		t.Errorf("the topic holds %d records, want %d", seen, n)
	}
}
