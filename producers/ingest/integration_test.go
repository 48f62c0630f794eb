//go:build integration

// These tests run the gateway in front of a real Kafka broker: start one
// with
//
//	scripts/kafka.sh start
//	eval "$(scripts/kafka.sh env)"
//	go test -tags integration -count=1 -v ./producers/ingest/
//
// They fail, never skip, when no broker is configured or reachable. Every
// test creates the topics of its own prefix and deletes them at the end.
// The outage test starts a second, private broker of its own (with
// scripts/kafka.sh, on free ports, in a temporary folder) and stops and
// restarts that one, never the shared broker.

package ingest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"golang.org/x/time/rate"

	"github.com/atlas-stream/atlas/internal/kafkaconn"
	"github.com/atlas-stream/atlas/producers/player"
	"github.com/atlas-stream/atlas/schemas"
	"github.com/atlas-stream/atlas/topology"
)

const brokersEnv = "ATLAS_KAFKA_BROKERS"

// sharedBrokers returns ATLAS_KAFKA_BROKERS, failing the test when it is
// unset or does not answer.
func sharedBrokers(t *testing.T) []string {
	t.Helper()
	v := os.Getenv(brokersEnv)
	if v == "" {
		t.Fatalf("%s is not set: these tests need a real Kafka broker. Start one with `scripts/kafka.sh start` and run `eval \"$(scripts/kafka.sh env)\"`, or set %s=host:port of an existing broker", brokersEnv, brokersEnv)
	}
	brokers := kafkaconn.ParseBrokers(v)
	conn, err := net.DialTimeout("tcp", brokers[0], 5*time.Second)
	if err != nil {
		t.Fatalf("cannot reach the Kafka broker %s=%s: %v; is it running? Start one with `scripts/kafka.sh start`", brokersEnv, v, err)
	}
	conn.Close()
	return brokers
}

// cluster is one test's topics on a broker.
type cluster struct {
	kafka  kafkaconn.Config
	client *kafka.Client
	topo   topology.Topology
}

func newCluster(t *testing.T, brokers []string) *cluster {
	t.Helper()
	kc := kafkaconn.Config{Brokers: brokers}
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
		t.Fatalf("cannot create the test topics on %v: %v", brokers, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var names []string
		for _, s := range c.topo.Topics {
			names = append(names, c.topo.Name(s.Name))
		}
		fresh, err := kc.Client() // the broker may have restarted since
		if err != nil {
			t.Fatal(err)
		}
		defer fresh.Transport.(*kafka.Transport).CloseIdleConnections()
		if _, err := fresh.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: names}); err != nil {
			t.Errorf("cannot delete the test topics: %v", err)
		}
	})
	t.Logf("topics under prefix %s on %v", c.topo.Prefix, brokers)
	return c
}

func (c *cluster) producer(t *testing.T, cfg player.Config) *player.Producer {
	t.Helper()
	cfg.Kafka, cfg.Topology, cfg.Registerer = c.kafka, c.topo, prometheus.NewRegistry()
	p, err := player.New(cfg)
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
	// Topics that were just created get their leaders a moment later; a
	// producer that looks them up before would retry until its metadata
	// refreshes. Ready reads fresh metadata.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := p.Ready(ctx)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the producer is not ready after 30 s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return p
}

// readAll returns every message of the playback and browse topics.
func (c *cluster) readAll(t *testing.T) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// A client of its own: c.client's pooled connections may be to a
	// broker that has restarted since.
	client, err := c.kafka.Client()
	if err != nil {
		t.Fatal(err)
	}
	client.Timeout = 30 * time.Second
	defer client.Transport.(*kafka.Transport).CloseIdleConnections()
	var out []kafka.Message
	for _, logical := range []topology.Topic{topology.Playback, topology.Browse} {
		topic := c.topo.Name(logical)
		spec, _ := c.topo.Topic(logical)
		for p := 0; p < spec.Partitions; p++ {
			res, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: {kafka.LastOffsetOf(p)}}})
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
	}
	return out
}

// idsOnTopics counts the event ids on the playback and browse topics.
func (c *cluster) idsOnTopics(t *testing.T) (map[string]int, []kafka.Message) {
	t.Helper()
	msgs := c.readAll(t)
	ids := map[string]int{}
	dec := schemas.NewDecoder(schemas.Limits{})
	for _, m := range msgs {
		var schema string
		for _, h := range m.Headers {
			if h.Key == schemas.HeaderSchema {
				schema = string(h.Value)
			}
		}
		rec, err := dec.Decode(schema, m.Value)
		if err != nil {
			t.Fatalf("a message on %s does not decode: %v", m.Topic, err)
		}
		switch r := rec.(type) {
		case *schemas.Playback:
			ids[r.EventID]++
		case *schemas.Browse:
			ids[r.EventID]++
		}
	}
	return ids, msgs
}

// gateway serves a Gateway over producer on a loopback port.
func gateway(t *testing.T, cfg Config, producer Sender) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Secret, cfg.Registerer, cfg.Gatherer = testSecret, reg, reg
	if cfg.IPHashKey == nil {
		cfg.IPHashKey = []byte("ip-hash-key-for-tests")
	}
	if cfg.SessionRate == 0 {
		cfg.SessionRate = rate.Inf
	}
	if cfg.IPRate == 0 {
		cfg.IPRate = rate.Inf
	}
	g, err := New(cfg, producer)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return srv.URL
}

// rawClientAddr is the client address the bad-input tests send through a
// trusted proxy; it must never reach Kafka.
const rawClientAddr = "203.0.113.77"

func TestBadInputIsRefusedWithAReasonAndNothingButAcceptedEventsReachesKafka(t *testing.T) {
	c := newCluster(t, sharedBrokers(t))
	producer := c.producer(t, player.Config{})
	now := time.Now()
	// accepted collects the ids that got "accepted" in a 200.
	accepted := map[string]bool{}
	collect := func(a answer) {
		for _, st := range a.resp.Events {
			if st.Status == StatusAccepted {
				accepted[st.ID] = true
			}
		}
	}
	type want struct {
		status     int
		reason     string // part of the reason: of the ErrorResponse, or of the rejected event
		field      string // of the rejected event, for 200
		accepted   int
		retryAfter bool
	}
	cases := []struct {
		name   string
		config func(*Config)
		// send returns the answer whose status the case is about; earlier
		// answers go through collect.
		send func(t *testing.T, c *client) answer
		want want
	}{
		{
			name: "an unsigned request gets 401 saying that it is not signed",
			send: func(t *testing.T, c *client) answer {
				return c.do(t, c.request(t, "application/msgpack", mustBatch(t, events("unsigned", c.session, 3, now)), nil))
			},
			want: want{status: 401, reason: "not signed"},
		},
		{
			name: "a request signed with another session's key gets 401: the signature does not match",
			send: func(t *testing.T, c *client) answer {
				return c.do(t, c.request(t, "application/msgpack", mustBatch(t, events("wrongsig", c.session, 3, now)), func(r *http.Request, b []byte) {
					Sign(r, b, c.session, SessionKey(testSecret, "another-session"), time.Now(), "")
				}))
			},
			want: want{status: 401, reason: "signature does not match"},
		},
		{
			name: "a request whose timestamp is 301 s old gets 401 naming the ±300 s window",
			send: func(t *testing.T, c *client) answer {
				return c.do(t, c.request(t, "application/msgpack", mustBatch(t, events("stale", c.session, 3, now)), func(r *http.Request, b []byte) {
					Sign(r, b, c.session, c.key, time.Now().Add(-301*time.Second), "")
				}))
			},
			want: want{status: 401, reason: "301 s behind the server clock, outside the allowed ±300 s"},
		},
		{
			name: "a replayed request gets 401 naming the replay, and its events are on the topic once",
			send: func(t *testing.T, c *client) answer {
				body := mustBatch(t, events("replay", c.session, 3, now))
				sign := func(r *http.Request, b []byte) { Sign(r, b, c.session, c.key, time.Now(), "nonce-replayed") }
				first := c.do(t, c.request(t, "application/msgpack", body, sign))
				if first.status != 200 || first.resp.Accepted != 3 {
					t.Fatalf("the original request: %s", first)
				}
				collect(first)
				return c.do(t, c.request(t, "application/msgpack", body, sign))
			},
			want: want{status: 401, reason: "a replayed request"},
		},
		{
			name: "a body of the limit plus one byte gets 413",
			send: func(t *testing.T, c *client) answer {
				body := mustBatch(t, events("huge", c.session, 1, now))
				body = append(body, bytes.Repeat([]byte{0xc0}, DefaultMaxBodyBytes+1-len(body))...)
				if len(body) != 1<<20+1 {
					t.Fatalf("body of %d bytes", len(body))
				}
				return c.do(t, c.request(t, "application/msgpack", body, c.signNow))
			},
			want: want{status: 413, reason: "over the limit of 1048576 bytes"},
		},
		{
			name: "a batch of 501 events gets 413 saying how many and the limit",
			send: func(t *testing.T, c *client) answer { return c.send(t, events("many", c.session, 501, now)) },
			want: want{status: 413, reason: "the batch has 501 events, over the limit of 500"},
		},
		{
			name: "malformed msgpack gets 400 with what and where",
			send: func(t *testing.T, c *client) answer {
				body := append([]byte{0x81, 0xa6}, "events\xdd\xff\xff\xff\xff"...)
				return c.do(t, c.request(t, "application/msgpack", body, c.signNow))
			},
			want: want{status: 400, reason: "array declares 4294967295 entries but only 0 bytes remain at byte 8"},
		},
		{
			name: "malformed JSON gets 400 with what and where",
			send: func(t *testing.T, c *client) answer {
				body := mustBatchJSON(t, events("json", c.session, 2, now))
				return c.do(t, c.request(t, "application/json", body[:len(body)-7], c.signNow))
			},
			want: want{status: 400, reason: "cannot decode JSON batch: unexpected EOF"},
		},
		{
			name: "one invalid event in a batch of 10: its status names the field, the 9 valid ones are accepted",
			send: func(t *testing.T, c *client) answer {
				recs := events("mixed", c.session, 10, now)
				recs[4].(*schemas.Playback).DeviceType = "toaster"
				return c.send(t, recs)
			},
			want: want{status: 200, accepted: 9, field: "dt", reason: `"toaster" is not one of`},
		},
		{
			name: "a JSON batch with one invalid event gets the same per-event answer",
			send: func(t *testing.T, c *client) answer {
				recs := events("mixedjson", c.session, 4, now)
				recs[1].(*schemas.Browse).Rank = -1
				return c.do(t, c.request(t, "application/json", mustBatchJSON(t, recs), c.signNow))
			},
			want: want{status: 200, accepted: 3, field: "rk", reason: "-1 is outside 0..10000"},
		},
		{
			name:   "a network over its rate gets 429 with Retry-After, before its body is read",
			config: func(cfg *Config) { cfg.IPRate, cfg.IPBurst = 0.2, 1 },
			send: func(t *testing.T, c *client) answer {
				first := c.send(t, events("iprate", c.session, 2, now))
				if first.status != 200 {
					t.Fatalf("the first request: %s", first)
				}
				collect(first)
				other := newClient(c.url, c.session+"-other") // another session of the same client address
				other.forwardedFor = c.forwardedFor
				return other.do(t, other.request(t, "application/msgpack", []byte("not even a batch"), nil))
			},
			want: want{status: 429, reason: "too many requests from your network", retryAfter: true},
		},
		{
			name:   "a session over its rate gets 429 with Retry-After",
			config: func(cfg *Config) { cfg.SessionRate, cfg.SessionBurst = 0.2, 1 },
			send: func(t *testing.T, c *client) answer {
				first := c.send(t, events("rate", c.session, 2, now))
				if first.status != 200 {
					t.Fatalf("the first request: %s", first)
				}
				collect(first)
				return c.send(t, events("rate2", c.session, 2, now))
			},
			want: want{status: 429, reason: "too many requests in this session", retryAfter: true},
		},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
			if tc.config != nil {
				tc.config(&cfg)
			}
			url := gateway(t, cfg, producer)
			cl := newClient(url, fmt.Sprintf("session-%d", i))
			cl.forwardedFor = rawClientAddr
			a := tc.send(t, cl)
			t.Logf("answer: %.300s", a)
			w := tc.want
			if a.status != w.status {
				t.Fatalf("status %d, want %d: %s", a.status, w.status, a)
			}
			if w.retryAfter {
				if s, err := strconv.Atoi(a.retryAfter); err != nil || s < 1 {
					t.Fatalf("Retry-After %q, want whole seconds ≥ 1", a.retryAfter)
				}
			}
			if w.status != 200 {
				if !strings.Contains(a.err.Reason, w.reason) {
					t.Fatalf("reason %q, want it to contain %q", a.err.Reason, w.reason)
				}
				return
			}
			collect(a)
			if a.resp.Accepted != w.accepted || a.resp.Rejected != len(a.resp.Events)-w.accepted {
				t.Fatalf("%d accepted, %d rejected; want %d accepted", a.resp.Accepted, a.resp.Rejected, w.accepted)
			}
			for _, st := range a.resp.Events {
				if st.Status == StatusRejected && (st.Field != w.field || !strings.Contains(st.Reason, w.reason)) {
					t.Fatalf("rejected event %+v, want field %q and a reason containing %q", st, w.field, w.reason)
				}
			}
		})
	}

	// Exactly the accepted events are on the topics, each once, and no
	// raw client address is anywhere in what reached Kafka.
	ids, msgs := c.idsOnTopics(t)
	for id := range accepted {
		if ids[id] != 1 {
			t.Errorf("accepted event %s is on the topics %d times, want once", id, ids[id])
		}
	}
	for id, n := range ids {
		if !accepted[id] {
			t.Errorf("event %s is on the topics (%d times) but was never accepted", id, n)
		}
	}
	addr := netip.MustParseAddr(rawClientAddr).As4()
	wantNet := ClientNet([]byte("ip-hash-key-for-tests"), netip.MustParseAddr(rawClientAddr))
	for _, m := range msgs {
		all := append(append([]byte(nil), m.Key...), m.Value...)
		for _, h := range m.Headers {
			all = append(append(all, h.Key...), h.Value...)
		}
		if bytes.Contains(all, []byte(rawClientAddr)) || bytes.Contains(all, addr[:]) {
			t.Fatalf("the raw client address reached Kafka in %s@%d: %q", m.Topic, m.Offset, all)
		}
		if !bytes.Contains(m.Value, []byte(wantNet)) {
			t.Fatalf("%s@%d does not carry the client network %s", m.Topic, m.Offset, wantNet)
		}
	}
	t.Logf("%d accepted events are on the topics exactly once, nothing else is; none carries %s, all carry %s", len(accepted), rawClientAddr, wantNet)
}

// privateBroker is a Kafka broker of the test's own, so that it can be
// stopped without disturbing anyone.
type privateBroker struct {
	env  []string
	addr string
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func startPrivateBroker(t *testing.T) *privateBroker {
	t.Helper()
	port, controller := freePort(t), freePort(t)
	dir := t.TempDir()
	b := &privateBroker{
		env: append(os.Environ(),
			"ATLAS_RUN_DIR="+dir,
			"ATLAS_KAFKA_PORT="+strconv.Itoa(port),
			"ATLAS_KAFKA_CONTROLLER_PORT="+strconv.Itoa(controller),
			"ATLAS_KAFKA_HEAP=-Xms256m -Xmx512m",
		),
		addr: "127.0.0.1:" + strconv.Itoa(port),
	}
	b.run(t, "start")
	t.Cleanup(func() { b.run(t, "stop") })
	return b
}

// run runs scripts/kafka.sh with the broker's environment.
func (b *privateBroker) run(t *testing.T, verb string) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "..", "scripts", "kafka.sh")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, script, verb)
	cmd.Env = b.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/kafka.sh %s for the private broker on %s: %v\n%s", verb, b.addr, err, out)
	}
	t.Logf("private broker on %s: kafka.sh %s took %s", b.addr, verb, time.Since(start).Round(time.Millisecond))
}

func TestWhenKafkaIsDownTheGatewayAnswers503AndEveryEventThatGot200IsOnTheTopicAfterItReturns(t *testing.T) {
	sharedBrokers(t) // the tier's precondition, like every integration test
	broker := startPrivateBroker(t)
	c := newCluster(t, []string{broker.addr})
	producer := c.producer(t, player.Config{MaxAttempts: 3})
	url := gateway(t, Config{KafkaTimeout: 5 * time.Second}, producer)
	cl := newClient(url, "outage-session")
	now := time.Now()

	got200 := map[string]bool{}
	send := func(recs []schemas.Record) answer {
		a := cl.send(t, recs)
		if a.status == 200 {
			for _, st := range a.resp.Events {
				if st.Status != StatusAccepted {
					t.Fatalf("an event was rejected: %+v", st)
				}
				got200[st.ID] = true
			}
		}
		return a
	}
	// Right after its topics are created, a fresh broker can still answer
	// "Not Leader For Partition" while leaders settle and kafka-go's
	// metadata cache catches up: warm up until one batch is acknowledged.
	// A warm-up batch that got 503 was not acknowledged, so the accounting
	// of 200s below is unaffected.
	warm := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		a := send(events(fmt.Sprintf("warmup-%d", i), cl.session, 20, now))
		if a.status == 200 {
			break
		}
		if time.Now().After(warm) {
			t.Fatalf("the fresh broker did not acknowledge a batch within 30 s: %s", a)
		}
		t.Logf("warm-up batch %d: %d, retrying", i, a.status)
		time.Sleep(500 * time.Millisecond)
	}
	for i := range 5 {
		if a := send(events(fmt.Sprintf("before-%d", i), cl.session, 20, now)); a.status != 200 {
			t.Fatalf("batch %d before the outage: %s", i, a)
		}
	}
	readyz := func() int {
		res, err := http.Get(url + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code := readyz(); code != 200 {
		t.Fatalf("/readyz before the outage: %d", code)
	}

	broker.run(t, "stop")
	var during []schemas.Record
	for i := range 3 {
		batch := events(fmt.Sprintf("during-%d", i), cl.session, 20, now)
		during = append(during, batch...)
		start := time.Now()
		a := send(batch)
		if a.status != http.StatusServiceUnavailable || a.err.Error != CodeUnavailable || a.retryAfter == "" {
			t.Fatalf("batch %d while Kafka is down: %s (Retry-After %q), want 503 with Retry-After", i, a, a.retryAfter)
		}
		t.Logf("batch %d while Kafka is down: %d after %s, Retry-After %s: %s", i, a.status, time.Since(start).Round(time.Millisecond), a.retryAfter, a.err.Reason)
	}
	time.Sleep(1100 * time.Millisecond) // past the readiness cache
	if code := readyz(); code != 503 {
		t.Fatalf("/readyz while Kafka is down: %d, want 503", code)
	}

	broker.run(t, "start")
	// The device retries its batches (as one), signed afresh, until it
	// gets a 200.
	deadline := time.Now().Add(2 * time.Minute)
	retries := 0
	for {
		a := send(during)
		if a.status == 200 {
			break
		}
		if a.status != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("retrying the batch after the restart: %s", a)
		}
		retries++
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("the retried batch got 200 after %d more 503s", retries)
	for i := range 3 {
		if a := send(events(fmt.Sprintf("after-%d", i), cl.session, 20, now)); a.status != 200 {
			t.Fatalf("batch %d after the restart: %s", i, a)
		}
	}

	ids, _ := c.idsOnTopics(t)
	missing := 0
	for id := range got200 {
		if ids[id] == 0 {
			missing++
			t.Errorf("event %s got a 200 but is not on the topic", id)
		}
	}
	dups := 0
	for _, n := range ids {
		if n > 1 {
			dups++
		}
	}
	if missing == 0 {
		t.Logf("all %d events that got a 200 are on the topics after the restart (%d ids twice: written during the outage and retried, deduplicated downstream by id)", len(got200), dups)
	}
}
