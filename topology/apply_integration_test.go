//go:build integration

// These tests talk to a real Kafka broker: start one with
//
//	scripts/kafka.sh start
//	ATLAS_KAFKA_BROKERS=127.0.0.1:9092 go test -tags integration -count=1 -v ./topology/
//
// They fail, never skip, when no broker is configured or reachable. Every
// test uses its own topic and group prefix and deletes its topics at the end.

package topology

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

const brokersEnv = "ATLAS_KAFKA_BROKERS"

// cluster is one test's view of the broker: a client and a topology whose
// names carry a prefix of their own.
type cluster struct {
	brokers []string
	client  *kafka.Client
	topo    Topology
}

// newCluster connects to ATLAS_KAFKA_BROKERS and returns the default
// topology under a fresh prefix; the topics it creates are deleted when the
// test ends.
func newCluster(t *testing.T) *cluster {
	t.Helper()
	v := os.Getenv(brokersEnv)
	if v == "" {
		t.Fatalf("%s is not set: these tests need a real Kafka broker. Start one with `scripts/kafka.sh start` and run `eval \"$(scripts/kafka.sh env)\"`, or set %s=host:port of an existing broker", brokersEnv, brokersEnv)
	}
	brokers := strings.Split(v, ",")
	conn, err := net.DialTimeout("tcp", brokers[0], 5*time.Second)
	if err != nil {
		t.Fatalf("cannot reach the Kafka broker %s=%s: %v; is it running? Start one with `scripts/kafka.sh start`", brokersEnv, v, err)
	}
	conn.Close()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 20 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{}})
	if err != nil {
		t.Fatalf("cannot read metadata from the Kafka broker %s=%s: %v; is it a Kafka broker? Start one with `scripts/kafka.sh start`", brokersEnv, v, err)
	}
	t.Logf("talking to Kafka cluster %s, brokers %v", meta.ClusterID, meta.Brokers)

	var b [4]byte
	rand.Read(b[:])
	c := &cluster{brokers: brokers, client: client, topo: Default(Options{Prefix: "test-" + hex.EncodeToString(b[:]) + "."})}
	t.Cleanup(func() { c.deleteTopics(t) })
	return c
}

func (c *cluster) name(topic Topic) string { return c.topo.Name(topic) }

func (c *cluster) deleteTopics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	names := c.topo.names(topicNames(c.topo))
	res, err := c.client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: names})
	if err != nil {
		t.Errorf("cannot delete the test topics: %v", err)
		return
	}
	for name, err := range res.Errors {
		if err != nil && !errors.Is(err, kafka.UnknownTopicOrPartition) {
			t.Errorf("cannot delete test topic %q: %v", name, err)
		}
	}
}

func topicNames(tp Topology) []Topic {
	out := make([]Topic, len(tp.Topics))
	for i, s := range tp.Topics {
		out[i] = s.Name
	}
	return out
}

// apply runs Apply and logs its report, so that the test output shows what
// the broker did.
func (c *cluster) apply(ctx context.Context, t *testing.T) Report {
	t.Helper()
	report, err := Apply(ctx, c.client, c.topo)
	if err != nil {
		t.Fatalf("Apply: %v\nreport so far:\n%s", err, report)
	}
	t.Logf("Apply:\n%s", report)
	return report
}

// partitions returns the partition count of a topic as the broker's
// metadata has it.
func (c *cluster) partitions(ctx context.Context, t *testing.T, name string) int {
	t.Helper()
	meta, err := c.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{name}})
	if err != nil {
		t.Fatalf("cannot read the metadata of %q: %v", name, err)
	}
	if len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
		t.Fatalf("metadata of %q: %+v", name, meta.Topics)
	}
	return len(meta.Topics[0].Partitions)
}

// waitPartitions waits until the broker's metadata shows n partitions; a
// change made through the controller reaches the broker's cache a moment
// later.
func (c *cluster) waitPartitions(ctx context.Context, t *testing.T, name string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.partitions(ctx, t, name) != n {
		if time.Now().After(deadline) {
			t.Fatalf("topic %q: metadata still shows %d partitions after 10 s, want %d", name, c.partitions(ctx, t, name), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestApplyCreatesEveryTopicOnceOnARealBroker(t *testing.T) {
	c := newCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	before, err := Check(ctx, c.client, c.topo)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range before.Topics {
		if r.Status != Missing {
			t.Errorf("Check before Apply: topic %q is %q, want %q", r.Topic, r.Status, Missing)
		}
	}
	if before.Changed() {
		t.Errorf("Check before Apply: Changed() = true; Check must not create topics")
	}

	first := c.apply(ctx, t)
	if !first.Changed() {
		t.Errorf("first Apply: Changed() = false, want true")
	}
	for _, r := range first.Topics {
		if r.Status != Created {
			t.Errorf("first Apply: topic %q is %q, want %q", r.Topic, r.Status, Created)
		}
	}

	// The broker has every topic with its partitions and configs.
	names := c.topo.names(topicNames(c.topo))
	configs, err := describeConfigs(ctx, c.client, names)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range c.topo.Topics {
		name := c.name(s.Name)
		c.waitPartitions(ctx, t, name, s.Partitions)
		if got := configs[name][configCleanup]; got != string(s.Cleanup) {
			t.Errorf("topic %q: cleanup.policy %q on the broker, want %q", name, got, s.Cleanup)
		}
		if s.Cleanup.deletes() {
			if got, want := configs[name][configRetention], fmt.Sprint(s.Retention.Milliseconds()); got != want {
				t.Errorf("topic %q: retention.ms %s on the broker, want %s", name, got, want)
			}
		}
		t.Logf("broker has %s: %s, cleanup.policy=%s, retention.ms=%s", name, partitions(s.Partitions), configs[name][configCleanup], configs[name][configRetention])
	}

	second := c.apply(ctx, t)
	if second.Changed() {
		t.Errorf("second Apply: Changed() = true, want false")
	}
	if d := second.Drift(); len(d) > 0 {
		t.Errorf("second Apply: drift %v, want none", d)
	}
	for _, r := range second.Topics {
		if r.Status != OK {
			t.Errorf("second Apply: topic %q is %q, want %q", r.Topic, r.Status, OK)
		}
	}
	if !strings.Contains(second.String(), "nothing changed") {
		t.Errorf("second Apply report does not say that nothing changed:\n%s", second)
	}
}

func TestApplyReportsDriftAndChangesNothing(t *testing.T) {
	c := newCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c.apply(ctx, t)

	// Someone adds partitions and shortens a retention by hand.
	playback, alerts := c.name(Playback), c.name(Alerts)
	res, err := c.client.CreatePartitions(ctx, &kafka.CreatePartitionsRequest{
		Topics: []kafka.TopicPartitionsConfig{{Name: playback, Count: 8}},
	})
	if err != nil || res.Errors[playback] != nil {
		t.Fatalf("CreatePartitions(%s, 8): %v %v", playback, err, res)
	}
	alter, err := c.client.IncrementalAlterConfigs(ctx, &kafka.IncrementalAlterConfigsRequest{
		Resources: []kafka.IncrementalAlterConfigsRequestResource{{
			ResourceType: kafka.ResourceTypeTopic,
			ResourceName: alerts,
			Configs:      []kafka.IncrementalAlterConfigsRequestConfig{{Name: configRetention, Value: "86400000", ConfigOperation: kafka.ConfigOperationSet}},
		}},
	})
	if err != nil || alter.Resources[0].Error != nil {
		t.Fatalf("IncrementalAlterConfigs(%s, retention.ms=1d): %v %+v", alerts, err, alter)
	}
	c.waitPartitions(ctx, t, playback, 8)
	t.Logf("by hand: %s now has 8 partitions, %s retention.ms=86400000", playback, alerts)

	report := c.apply(ctx, t)
	if report.Changed() {
		t.Errorf("Apply after drift: Changed() = true, want false")
	}
	want := []Drift{
		{Topic: playback, Setting: "partitions", Declared: "6", Cluster: "8"},
		{Topic: alerts, Setting: "retention.ms", Declared: "30d", Cluster: "1d"},
	}
	if got := report.Drift(); !slices.Equal(got, want) {
		t.Errorf("Apply after drift: Drift() = %v, want %v", got, want)
	}
	if !strings.Contains(report.String(), "drift    "+playback+": partitions 6 declared, 8 on cluster; left unchanged") {
		t.Errorf("report does not show the partition drift of %s:\n%s", playback, report)
	}

	// Apply changed nothing: the partitions and the retention are still as
	// set by hand.
	if got := c.partitions(ctx, t, playback); got != 8 {
		t.Errorf("after Apply %s has %d partitions, want the 8 set by hand", playback, got)
	}
	configs, err := describeConfigs(ctx, c.client, []string{alerts})
	if err != nil {
		t.Fatal(err)
	}
	if got := configs[alerts][configRetention]; got != "86400000" {
		t.Errorf("after Apply %s has retention.ms %s, want the 86400000 set by hand", alerts, got)
	}
}

// produce writes n keyed messages to topic and returns their values.
func (c *cluster) produce(ctx context.Context, t *testing.T, topic string, n int) []string {
	t.Helper()
	w := &kafka.Writer{
		Addr:         kafka.TCP(c.brokers...),
		Topic:        topic,
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 10 * time.Millisecond,
	}
	defer w.Close()
	msgs := make([]kafka.Message, n)
	values := make([]string, n)
	for i := range msgs {
		values[i] = fmt.Sprintf("event-%03d", i)
		msgs[i] = kafka.Message{Key: []byte(fmt.Sprintf("profile-%d", i%17)), Value: []byte(values[i])}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("cannot write %d messages to %s: %v", n, topic, err)
	}
	t.Logf("wrote %d messages to %s", n, topic)
	return values
}

// endOffsets returns the offset after the last message of each partition.
func (c *cluster) endOffsets(ctx context.Context, t *testing.T, topic string, partitions []int) map[int]int64 {
	t.Helper()
	reqs := make([]kafka.OffsetRequest, len(partitions))
	for i, p := range partitions {
		reqs[i] = kafka.LastOffsetOf(p)
	}
	res, err := c.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		t.Fatalf("cannot list the offsets of %s: %v", topic, err)
	}
	ends := make(map[int]int64)
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			t.Fatalf("cannot list the offsets of %s partition %d: %v", topic, p.Partition, p.Error)
		}
		ends[p.Partition] = p.LastOffset
	}
	return ends
}

// consumerGroup joins the group with settings that make rebalances quick.
func (c *cluster) consumerGroup(t *testing.T, group string, topics ...string) *kafka.ConsumerGroup {
	t.Helper()
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                group,
		Brokers:           c.brokers,
		Topics:            topics,
		HeartbeatInterval: 300 * time.Millisecond,
		SessionTimeout:    10 * time.Second,
		RebalanceTimeout:  10 * time.Second,
		JoinGroupBackoff:  200 * time.Millisecond,
		StartOffset:       kafka.FirstOffset,
	})
	if err != nil {
		t.Fatalf("cannot create consumer group %s: %v", group, err)
	}
	t.Cleanup(func() { cg.Close() })
	return cg
}

// next returns the group's next generation. kafka-go's ConsumerGroup.Next
// also returns the errors of join attempts that its loop retries by itself,
// such as "group coordinator not available" while a fresh broker creates
// __consumer_offsets; those are logged and waited out.
func next(ctx context.Context, t *testing.T, cg *kafka.ConsumerGroup) (*kafka.Generation, error) {
	t.Helper()
	for {
		gen, err := cg.Next(ctx)
		var kerr kafka.Error
		if err == nil || !errors.As(err, &kerr) || !kerr.Temporary() || ctx.Err() != nil {
			return gen, err
		}
		t.Logf("joining the group: %v (kafka-go retries)", err)
	}
}

func TestConsumerGroupReadsAndCommitsWithMetadata(t *testing.T) {
	c := newCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c.apply(ctx, t)

	topic := c.name(Playback)
	sent := c.produce(ctx, t, topic, 60)

	group := c.topo.GroupID(AggregatesGroup)
	gen, err := next(ctx, t, c.consumerGroup(t, group, topic))
	if err != nil {
		t.Fatalf("cannot join consumer group %s: %v", group, err)
	}
	assigned := gen.Assignments[topic]
	t.Logf("joined group %s as %s in generation %d with %d partitions of %s", gen.GroupID, gen.MemberID, gen.ID, len(assigned), topic)
	if len(assigned) != 6 {
		t.Fatalf("the only member of group %s owns %d partitions of %s, want all 6", group, len(assigned), topic)
	}

	// Read every owned partition from the group's position to its end. The
	// readers run outside Generation.Start: a function started there ends
	// the generation when it returns.
	var ids []int
	for _, a := range assigned {
		ids = append(ids, a.ID)
	}
	ends := c.endOffsets(ctx, t, topic, ids)
	var got []string
	for _, a := range assigned {
		if ends[a.ID] == 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: c.brokers, Topic: topic, Partition: a.ID, MaxWait: 100 * time.Millisecond})
		if err := r.SetOffset(a.Offset); err != nil {
			t.Fatalf("cannot set the offset of partition %d to %d: %v", a.ID, a.Offset, err)
		}
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("cannot read partition %d of %s: %v", a.ID, topic, err)
			}
			got = append(got, string(m.Value))
			if m.Offset == ends[a.ID]-1 {
				break
			}
		}
		r.Close()
	}
	slices.Sort(got)
	if !slices.Equal(got, sent) {
		t.Fatalf("read %d messages through group %s, want the %d written: got %v", len(got), group, len(sent), got)
	}
	t.Logf("read all %d messages through group %s", len(got), group)

	// Commit the ends with the generation, the member and a record in the
	// metadata, as the consumer runtime does, then read them back.
	commits := make([]kafka.OffsetCommit, 0, len(assigned))
	for _, a := range assigned {
		commits = append(commits, kafka.OffsetCommit{
			Partition: a.ID,
			Offset:    ends[a.ID],
			Metadata:  fmt.Sprintf(`{"restart":%d,"watermark":1795674069000,"closed":"p%d"}`, ends[a.ID], a.ID),
		})
	}
	res, err := c.client.OffsetCommit(ctx, &kafka.OffsetCommitRequest{
		GroupID:      gen.GroupID,
		GenerationID: int(gen.ID),
		MemberID:     gen.MemberID,
		Topics:       map[string][]kafka.OffsetCommit{topic: commits},
	})
	if err != nil {
		t.Fatalf("OffsetCommit: %v", err)
	}
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			t.Errorf("OffsetCommit of partition %d: %v", p.Partition, p.Error)
		}
	}

	fetched, err := c.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ids}})
	if err != nil {
		t.Fatalf("OffsetFetch: %v", err)
	}
	if fetched.Error != nil {
		t.Fatalf("OffsetFetch: %v", fetched.Error)
	}
	byPartition := make(map[int]kafka.OffsetFetchPartition)
	for _, p := range fetched.Topics[topic] {
		byPartition[p.Partition] = p
	}
	for _, want := range commits {
		p, ok := byPartition[want.Partition]
		switch {
		case !ok:
			t.Errorf("OffsetFetch returned nothing for partition %d", want.Partition)
		case p.Error != nil:
			t.Errorf("OffsetFetch of partition %d: %v", want.Partition, p.Error)
		case p.CommittedOffset != want.Offset || p.Metadata != want.Metadata:
			t.Errorf("OffsetFetch of partition %d = offset %d, metadata %q; want %d, %q", want.Partition, p.CommittedOffset, p.Metadata, want.Offset, want.Metadata)
		default:
			t.Logf("partition %d: committed offset %d with metadata %s", p.Partition, p.CommittedOffset, p.Metadata)
		}
	}
}

func TestBrokerRefusesACommitFromAStaleGeneration(t *testing.T) {
	c := newCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c.apply(ctx, t)

	topic := c.name(Playback)
	group := c.topo.GroupID(AnomalyGroup)
	a := c.consumerGroup(t, group, topic)
	old, err := next(ctx, t, a)
	if err != nil {
		t.Fatalf("member A cannot join group %s: %v", group, err)
	}
	t.Logf("member A %s joined group %s in generation %d", old.MemberID, group, old.ID)

	// Member B joins: the group rebalances and A, told so by its heartbeat,
	// rejoins in a new generation. A's old generation is now a zombie's.
	b := c.consumerGroup(t, group, topic)
	genB := make(chan *kafka.Generation, 1)
	go func() {
		g, err := next(ctx, t, b)
		if err != nil {
			t.Errorf("member B cannot join group %s: %v", group, err)
		}
		genB <- g
	}()
	cur, err := next(ctx, t, a)
	if err != nil {
		t.Fatalf("member A cannot rejoin group %s: %v", group, err)
	}
	if g := <-genB; g == nil {
		t.FailNow()
	} else {
		t.Logf("rebalanced: A %s and B %s in generation %d (A owns %v, B owns %v)", cur.MemberID, g.MemberID, cur.ID, cur.Assignments[topic], g.Assignments[topic])
	}
	if cur.ID <= old.ID {
		t.Fatalf("generation after the rebalance is %d, want more than %d", cur.ID, old.ID)
	}

	commit := func(gen *kafka.Generation) error {
		res, err := c.client.OffsetCommit(ctx, &kafka.OffsetCommitRequest{
			GroupID:      group,
			GenerationID: int(gen.ID),
			MemberID:     gen.MemberID,
			Topics:       map[string][]kafka.OffsetCommit{topic: {{Partition: 0, Offset: 0, Metadata: "zombie?"}}},
		})
		if err != nil {
			return err
		}
		return res.Topics[topic][0].Error
	}
	err = commit(old)
	if !errors.Is(err, kafka.IllegalGeneration) {
		t.Fatalf("commit with stale generation %d: error %v, want %v", old.ID, err, kafka.IllegalGeneration)
	}
	t.Logf("commit with stale generation %d refused: %v", old.ID, err)
	if err := commit(cur); err != nil {
		t.Errorf("commit with current generation %d: %v, want success", cur.ID, err)
	}
}
