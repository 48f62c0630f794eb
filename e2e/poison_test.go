//go:build integration

package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/atlas-stream/atlas/consumers/engine"
	"github.com/atlas-stream/atlas/producers/sim"
	"github.com/atlas-stream/atlas/schemas"
	"github.com/atlas-stream/atlas/topology"
)

// poison returns an undecodable record of one of several kinds.
func poison(rng *rand.Rand, i int) kafka.Message {
	key := []byte(fmt.Sprintf("poison-profile-%d", i%97))
	pb := []kafka.Header{{Key: schemas.HeaderSchema, Value: []byte(schemas.SchemaPlayback)}}
	switch i % 4 {
	case 0: // an allocation bomb
		return kafka.Message{Key: key, Value: []byte{0x81, 0xa1, 'e', 0xdd, 0xff, 0xff, 0xff, 0xff}, Headers: pb}
	case 1: // not msgpack
		return kafka.Message{Key: key, Value: []byte(fmt.Sprintf("garbage %d", rng.Int())), Headers: pb}
	case 2: // an unknown schema version
		return kafka.Message{Key: key, Value: []byte{0x80}, Headers: []kafka.Header{{Key: schemas.HeaderSchema, Value: []byte("playback.v7")}}}
	default: // a truncated map
		return kafka.Message{Key: key, Value: []byte{0x83, 0xa2, 'i', 'd'}, Headers: pb}
	}
}

func TestPoisonRecordsGoToTheDeadLetterTopicAndValidTotalsStayExact(t *testing.T) {
	s := newStack(t, 6)
	truthPath := filepath.Join(s.dir, "truth.json")
	const events = 200_000
	simulate := s.start("simulate", "simulate", "--seed", "99", "--events", fmt.Sprint(events), "--rate", "40000", "--truth", truthPath)
	ops := freeAddr(t)
	consumer := s.start("aggregates", "run", "aggregates", "--ops-addr", ops, "--flush-interval", "300ms")

	// 1% poison, written into the playback topic while the simulator runs.
	tr, _ := s.kafka.Transport()
	w := &kafka.Writer{Addr: kafka.TCP(s.kafka.BrokerList()...), Topic: s.topo.Name(topology.Playback), Transport: tr,
		RequiredAcks: kafka.RequireAll, Balancer: &kafka.Murmur2Balancer{}, BatchTimeout: time.Millisecond}
	rng := rand.New(rand.NewPCG(5, 5))
	const poisoned = events / 100
	for i := 0; i < poisoned; i += 100 {
		var batch []kafka.Message
		for j := i; j < i+100; j++ {
			batch = append(batch, poison(rng, j))
		}
		if err := w.WriteMessages(context.Background(), batch...); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.Close()
	if err := simulate.wait(2 * time.Minute); err != nil {
		t.Fatalf("simulate: %v\n%s", err, simulate.output())
	}

	// No partition may stall: poll every partition's processed offset and
	// measure the longest time one stayed put while records waited.
	stall := s.longestStall(2*time.Minute, s.topo.GroupID(topology.AggregatesGroup),
		s.topo.Name(topology.Playback), s.topo.Name(topology.Browse))
	if stall > 5*time.Second {
		t.Fatalf("a partition made no progress for %s with records waiting (limit 5s)", stall)
	}
	consumer.signal(syscall.SIGTERM)
	if err := consumer.wait(30 * time.Second); err != nil {
		t.Fatalf("consumer: %v", err)
	}

	dead := s.readTopic(s.topo.Name(topology.DLQ))
	if len(dead) != poisoned {
		t.Fatalf("the dead-letter topic holds %d records, want exactly %d", len(dead), poisoned)
	}
	for _, m := range dead {
		h := map[string]string{}
		for _, x := range m.Headers {
			h[x.Key] = string(x.Value)
		}
		if h[engine.HeaderDLQError] == "" || h[engine.HeaderDLQOffset] == "" || h[engine.HeaderDLQTopic] != s.topo.Name(topology.Playback) || h[engine.HeaderDLQStage] != "decode" {
			t.Fatalf("dead letter without its source or reason: %v", h)
		}
	}
	truth, err := sim.LoadTruth(truthPath)
	if err != nil {
		t.Fatal(err)
	}
	n := s.compareWithTruth(truth)
	t.Logf("%d poison records among %d events: %d dead letters with reasons, longest partition stall %s, all %d aggregate rows and late events exact",
		poisoned, events, len(dead), stall.Round(time.Millisecond), n)
}

// longestStall polls the group's progress until it has processed
// everything (or d passes) and returns the longest time any partition's
// processed offset stayed the same while its end was ahead.
func (s *stack) longestStall(d time.Duration, group string, topics ...string) time.Duration {
	s.t.Helper()
	client, _ := s.kafka.Client()
	since := map[string]time.Time{}
	last := map[string]int64{}
	var longest time.Duration
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		prog, err := s.progress(ctx, client, group, topics...)
		cancel()
		if err != nil {
			time.Sleep(250 * time.Millisecond)
			continue
		}
		done := true
		now := time.Now()
		for k, pe := range prog {
			if pe[0] >= pe[1] {
				delete(since, k)
				continue
			}
			done = false
			if last[k] != pe[0] || since[k].IsZero() {
				last[k], since[k] = pe[0], now
			}
			longest = max(longest, now.Sub(since[k]))
		}
		if done {
			return longest
		}
		time.Sleep(250 * time.Millisecond)
	}
	s.t.Fatalf("group %s did not process everything within %s", group, d)
	return longest
}

// progress returns, per topic/partition, [processed offset, end offset].
func (s *stack) progress(ctx context.Context, client *kafka.Client, group string, topics ...string) (map[string][2]int64, error) {
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, err
	}
	req := map[string][]kafka.OffsetRequest{}
	fetch := map[string][]int{}
	for _, tp := range md.Topics {
		for _, p := range tp.Partitions {
			req[tp.Name] = append(req[tp.Name], kafka.LastOffsetOf(p.ID))
			fetch[tp.Name] = append(fetch[tp.Name], p.ID)
		}
	}
	ends, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: req})
	if err != nil {
		return nil, err
	}
	commits, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: fetch})
	if err != nil {
		return nil, err
	}
	out := map[string][2]int64{}
	for topic, ps := range ends.Topics {
		for _, p := range ps {
			out[fmt.Sprint(topic, "/", p.Partition)] = [2]int64{-1, p.LastOffset}
		}
	}
	for topic, ps := range commits.Topics {
		for _, p := range ps {
			k := fmt.Sprint(topic, "/", p.Partition)
			v := out[k]
			v[0] = engine.ProcessedOffset(p.Metadata)
			out[k] = v
		}
	}
	return out, nil
}

// readTopic reads every record of a topic.
func (s *stack) readTopic(topic string) []kafka.Message {
	s.t.Helper()
	client, _ := s.kafka.Client()
	md, err := client.Metadata(context.Background(), &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		s.t.Fatal(err)
	}
	var out []kafka.Message
	for _, p := range md.Topics[0].Partitions {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: s.kafka.BrokerList(), Topic: topic, Partition: p.ID, MaxWait: 100 * time.Millisecond})
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
