package player

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/atlas-stream/atlas/internal/kafkaconn"
	"github.com/atlas-stream/atlas/schemas"
	"github.com/atlas-stream/atlas/topology"
)

func TestPartitionIsTheJavaClientsMurmur2Partition(t *testing.T) {
	// Java murmur2 of the key bytes (kafka-go's and librdkafka's test
	// vectors); the partition is the hash with the sign bit cleared,
	// modulo the count, as in Kafka's BuiltInPartitioner.
	javaMurmur2 := map[string]uint32{
		"kafka":                                  0xd067cf64,
		"giberish123456789":                      0x8f552b0c,
		"1234":                                   0x9fc97b14,
		"234":                                    0xe7c009ca,
		"34":                                     0x873930da,
		"4":                                      0x5a4b5ca1,
		"PreAmbleWillBeRemoved,ThePrePartThatIs": 0x78424f1c,
		"":                                       0x106e08d9,
	}
	for key, h := range javaMurmur2 {
		for _, n := range []int{1, 3, 6, 17, 1000} {
			if got, want := Partition(key, n), int((h&0x7fffffff)%uint32(n)); got != want {
				t.Errorf("Partition(%q, %d) = %d, want %d", key, n, got, want)
			}
		}
	}
	// The same balancer value as the Writer's.
	for _, key := range []string{"pro-1", "pro-2", "a-much-longer-profile-identifier"} {
		want := (&kafka.Murmur2Balancer{}).Balance(kafka.Message{Key: []byte(key)}, 0, 1, 2, 3, 4, 5)
		if got := Partition(key, 6); got != want {
			t.Errorf("Partition(%q, 6) = %d, Murmur2Balancer says %d", key, got, want)
		}
	}
	if got := Partition("x", 0); got != -1 {
		t.Errorf("Partition with 0 partitions = %d, want -1", got)
	}
}

func TestSlotsAreAFairBoundedBuffer(t *testing.T) {
	var used int
	s := newSlots(10, func(d int) { used += d })
	ctx := context.Background()
	if err := s.acquire(ctx, 8); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.tryAcquire(3); ok {
		t.Fatal("took 3 of the 2 free slots")
	}
	// A large waiter first in line is not overtaken by a small one.
	big := make(chan error, 1)
	go func() { big <- s.acquire(ctx, 6) }()
	waitFor(t, func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.waiters.Len() == 1 })
	if ok, _ := s.tryAcquire(1); ok {
		t.Fatal("a small request overtook a waiting one")
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := s.acquire(short, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("acquire with an expiring context: %v", err)
	}
	s.release(4) // 4 used: the waiter's 6 fit
	if err := <-big; err != nil {
		t.Fatal(err)
	}
	if s.inUse() != 10 || used != 10 {
		t.Fatalf("in use %d, gauge %d; want 10", s.inUse(), used)
	}
	closed := make(chan error, 1)
	go func() { closed <- s.acquire(ctx, 1) }()
	waitFor(t, func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.waiters.Len() == 1 })
	s.close()
	if err := <-closed; !errors.Is(err, ErrClosed) {
		t.Fatalf("a waiter at close got %v, want ErrClosed", err)
	}
	s.release(10)
	if used != 0 {
		t.Fatalf("gauge %d after releasing everything", used)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestConfigValidateNamesTheSetting(t *testing.T) {
	check := func(c Config, want string) {
		t.Helper()
		err := c.Validate()
		if want == "" {
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			return
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Validate: %v, want an error containing %q", err, want)
		}
	}
	check(Config{}, "")
	check(Config{Topology: topology.Topology{Prefix: "test-1."}}, "")
	check(Config{Kafka: kafkaconn.Config{Brokers: []string{"no-port"}}}, "host:port")
	check(Config{BatchSize: -1}, "BatchSize")
	check(Config{Buffer: 10, BatchSize: 100}, "smaller than BatchSize")
	check(Config{WhenFull: Policy(7)}, "WhenFull")
	check(Config{Topology: topology.Topology{Topics: []topology.TopicSpec{{Name: topology.Playback}}}}, `does not declare topic "atlas.browse.v1"`)
	check(Config{Limits: schemas.Limits{MaxEventBytes: 10}}, "MaxEventBytes")
}

// unreachable is a producer config for a broker that is not there; these
// tests never get as far as writing.
func unreachable(reg prometheus.Registerer) Config {
	return Config{
		Kafka:      kafkaconn.Config{Brokers: []string{"127.0.0.1:1"}, DialTimeout: 200 * time.Millisecond},
		Topology:   topology.Default(topology.Options{Prefix: "unit."}),
		Registerer: reg,
		Buffer:     600,
	}
}

func TestTwoProducersInOneProcessShareTheirMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, err := New(unreachable(reg))
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(unreachable(reg))
	if err != nil {
		t.Fatalf("a second producer on the same registry: %v", err)
	}
	// And on the default registry, twice, without a panic.
	c, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	bad := &schemas.Playback{}
	a.Send(context.Background(), bad)
	b.Send(context.Background(), bad)
	if got := metricValue(t, reg, "atlas_player_failed_records_total", "reason", reasonInvalid, "schema", "playback.v1"); got != 2 {
		t.Fatalf("failed{invalid} = %v, want 2 (one per producer)", got)
	}
	for _, p := range []*Producer{a, b, c, d} {
		if err := p.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWhatIsRefusedBeforeKafkaIsAsked(t *testing.T) {
	p, err := New(unreachable(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now()
	valid := func(id string) *schemas.Playback {
		return &schemas.Playback{
			Envelope: schemas.Envelope{EventID: id, EventTime: now.UnixMilli(), AccountID: "a", ProfileID: "p", DeviceID: "d", SessionID: "s", Country: "DE", DeviceType: schemas.DeviceTV},
			Kind:     schemas.PlayStart, TitleID: "t",
		}
	}
	invalid := valid("x")
	invalid.Country = "Germany"

	var ve *schemas.ValidationError
	if err := p.Send(ctx, invalid); !errors.As(err, &ve) || ve.Field != "cc" {
		t.Fatalf("Send of an invalid record: %v, want a ValidationError on cc", err)
	}
	if err := p.Send(ctx, nil); err == nil {
		t.Fatal("Send(nil) succeeded")
	}
	if err := p.Send(ctx, (*schemas.Browse)(nil)); err == nil {
		t.Fatal("Send of a nil *Browse succeeded")
	}
	huge := valid("huge")
	huge.TitleID = strings.Repeat("t", 128)
	lim := p.cfg.Limits
	lim.MaxEventBytes = 256
	p.cfg.Limits = lim
	huge.CDN, huge.ISP, huge.SourceRow, huge.SourceArtworkID = strings.Repeat("c", 128), strings.Repeat("i", 128), strings.Repeat("r", 128), strings.Repeat("a", 128)
	if err := p.Send(ctx, huge); !errors.As(err, &ve) || !strings.Contains(ve.Reason, "bytes encoded, over the limit of 256") {
		t.Fatalf("Send of an oversized record: %v", err)
	}
	// Records the caller validated are still refused when too large encoded.
	if errs := p.SendSyncValidated(ctx, []schemas.Record{huge}, p.cfg.Limits); !errors.As(errs[0], &ve) || !strings.Contains(ve.Reason, "bytes encoded") {
		t.Fatalf("SendSyncValidated of an oversized record: %v", errs[0])
	}
	p.cfg.Limits.MaxEventBytes = 8 << 10

	// A slice larger than the whole buffer can never be queued.
	recs := make([]schemas.Record, 602)
	for i := range recs {
		recs[i] = valid("r")
	}
	recs[3] = invalid
	errs := p.SendSync(ctx, recs)
	if !errors.As(errs[3], &ve) {
		t.Fatalf("SendSync: invalid record got %v", errs[3])
	}
	if !errors.Is(errs[0], ErrBufferFull) {
		t.Fatalf("SendSync of 601 valid records with a buffer of 600: %v, want ErrBufferFull", errs[0])
	}
	// Validated by the caller against the Producer's own limits (zero
	// fields are the defaults): not validated again, so the invalid record
	// gets as far as the buffer. Against other limits it is refused.
	errs = p.SendSyncValidated(ctx, recs, schemas.Limits{})
	if !errors.Is(errs[3], ErrBufferFull) {
		t.Fatalf("SendSyncValidated with the Producer's limits: the invalid record got %v, want ErrBufferFull (not validated again)", errs[3])
	}
	errs = p.SendSyncValidated(ctx, recs, schemas.Limits{MaxStringBytes: 64})
	if !errors.As(errs[3], &ve) {
		t.Fatalf("SendSyncValidated with other limits: the invalid record got %v, want a ValidationError", errs[3])
	}

	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Send(ctx, valid("late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close: %v, want ErrClosed", err)
	}
	if errs := p.SendSync(ctx, []schemas.Record{valid("late")}); !errors.Is(errs[0], ErrClosed) {
		t.Fatalf("SendSync after Close: %v, want ErrClosed", errs[0])
	}
	if err := p.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// metricValue returns the value of the series of a counter or gauge with
// the given label pairs.
func metricValue(t *testing.T, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i := 0; i < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue series
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}
