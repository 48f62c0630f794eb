// Package loadtest is the rig of the ingest benchmarks: an in-process
// gateway with its player.Producer on a loopback port, and a raw kafka-go
// Writer configured like the producer, both writing the same playback
// events to topics of their own prefix. The table program
// (producers/ingest/bench) and the Go benchmarks (-tags integration) drive
// it.
package loadtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"golang.org/x/time/rate"

	"github.com/atlas-stream/atlas/internal/kafkaconn"
	"github.com/atlas-stream/atlas/producers/ingest"
	"github.com/atlas-stream/atlas/producers/player"
	"github.com/atlas-stream/atlas/schemas"
	"github.com/atlas-stream/atlas/topology"
)

// Options shape the rig. Zero fields take the defaults stated.
type Options struct {
	// Brokers of the cluster. Required.
	Brokers []string
	// Batch is the events per request or WriteMessages call. Default 100.
	Batch int
	// BatchSize and Linger configure both the producer and the raw
	// Writer. Defaults: the producer's.
	BatchSize int
	Linger    time.Duration
	// Partitions of the event topics. Default topology.DefaultPartitions.
	Partitions int
	// MaxClients is the most concurrent clients a side will run. Default 64.
	MaxClients int
}

func (o Options) withDefaults() Options {
	if o.Batch == 0 {
		o.Batch = 100
	}
	if o.BatchSize == 0 {
		o.BatchSize = player.DefaultBatchSize
	}
	if o.Linger == 0 {
		o.Linger = player.DefaultLinger
	}
	if o.Partitions == 0 {
		o.Partitions = topology.DefaultPartitions
	}
	if o.MaxClients == 0 {
		o.MaxClients = 64
	}
	return o
}

// Rig holds both sides. Close it to delete its topics.
type Rig struct {
	// Gateway POSTs signed msgpack batches over loopback HTTP and counts
	// the events the 200 says were accepted. Its client signs every
	// request, as a device would, on the same CPUs.
	Gateway Side
	// Raw calls Writer.WriteMessages with a batch of pre-encoded messages:
	// no encoding, no validation, no HTTP.
	Raw Side
	// EventBytes is the encoded size of one event.
	EventBytes int
	// Options are the options in effect.
	Options Options

	closers []func()
}

// Close stops the gateway, closes the producer and the Writer, and deletes
// the topics.
func (r *Rig) Close() {
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
	r.closers = nil
}

// Start creates topics under a fresh prefix and starts both sides.
func Start(ctx context.Context, o Options) (_ *Rig, err error) {
	o = o.withDefaults()
	r := &Rig{Options: o}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	kc := kafkaconn.Config{Brokers: o.Brokers}
	client, err := kc.Client()
	if err != nil {
		return nil, err
	}
	client.Timeout = 30 * time.Second
	var b [4]byte
	rand.Read(b[:])
	topo := topology.Default(topology.Options{Prefix: "bench-" + hex.EncodeToString(b[:]) + ".", Partitions: o.Partitions})
	actx, cancel := context.WithTimeout(ctx, time.Minute)
	_, err = topology.Apply(actx, client, topo)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("cannot create the benchmark topics on %v (is Kafka running? scripts/kafka.sh start): %w", o.Brokers, err)
	}
	r.closers = append(r.closers, func() { deleteTopics(client, topo) })

	// The gateway and its producer, as `atlas ingest` wires them, without
	// rate limits.
	reg := prometheus.NewRegistry()
	producer, err := player.New(player.Config{Kafka: kc, Topology: topo, BatchSize: o.BatchSize, Linger: o.Linger, Registerer: reg})
	if err != nil {
		return nil, err
	}
	r.closers = append(r.closers, func() { producer.Close(context.Background()) })
	if err := waitReady(ctx, producer); err != nil {
		return nil, err
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	gw, err := ingest.New(ingest.Config{
		Secret: secret, SessionRate: rate.Inf, IPRate: rate.Inf,
		MaxInFlight: 4 * o.MaxClients, Registerer: reg, Gatherer: reg,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}, producer)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	sctx, stopServer := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- gw.Serve(sctx, ln) }()
	r.closers = append(r.closers, func() { stopServer(); <-served })
	url := "http://" + ln.Addr().String() + "/v1/events"

	// The raw Writer, configured like the producer's.
	transport, err := kc.Transport()
	if err != nil {
		return nil, err
	}
	writer := &kafka.Writer{
		Addr: kafka.TCP(kc.BrokerList()...), Balancer: &kafka.Murmur2Balancer{},
		BatchSize: o.BatchSize, BatchTimeout: o.Linger, RequiredAcks: kafka.RequireAll, Transport: transport,
	}
	r.closers = append(r.closers, func() { writer.Close() })

	// Inputs, built before any clock starts: per client a few distinct
	// batches, as msgpack bodies (gateway) and as messages (raw).
	const distinct = 8
	now := time.Now()
	bodies := make([][][]byte, o.MaxClients)
	msgs := make([][][]kafka.Message, o.MaxClients)
	sessions := make([]string, o.MaxClients)
	keys := make([][]byte, o.MaxClients)
	headers := []kafka.Header{{Key: schemas.HeaderSchema, Value: []byte(schemas.SchemaPlayback)}, {Key: schemas.HeaderContentType, Value: []byte(schemas.ContentType)}}
	playbackTopic := topo.Name(topology.Playback)
	for c := range o.MaxClients {
		sessions[c] = fmt.Sprintf("bench-session-%d", c)
		keys[c] = ingest.SessionKey(secret, sessions[c])
		for d := range distinct {
			recs := make([]schemas.Record, o.Batch)
			batch := make([]kafka.Message, o.Batch)
			for i := range recs {
				e := event(c, d, i, sessions[c], now)
				recs[i] = e
				v, err := schemas.Marshal(e)
				if err != nil {
					return nil, err
				}
				r.EventBytes = len(v)
				batch[i] = kafka.Message{Topic: playbackTopic, Key: []byte(e.ProfileID), Value: v, Headers: headers}
			}
			body, err := ingest.EncodeBatch(nil, recs)
			if err != nil {
				return nil, err
			}
			bodies[c] = append(bodies[c], body)
			msgs[c] = append(msgs[c], batch)
		}
	}

	// The clients stand for devices, which spend their own CPUs; here they
	// share the gateway's, so they waste none. Buffers that hold a whole
	// request let net/http write it with one syscall and without the
	// 16-32 kB copy buffer it otherwise allocates for every body (via
	// TCPConn.ReadFrom), and each client reads answers into a buffer of
	// its own rather than io.ReadAll's growing ones: 0.29 kB less
	// allocated per event (12 % of the gateway side's bytes), gateway CPU
	// per event 3.5 -> 3.3 us at 64 clients (bench, medians of 3).
	maxBody := 0
	for _, bs := range bodies {
		for _, b := range bs {
			maxBody = max(maxBody, len(b))
		}
	}
	httpClient := &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: o.MaxClients, MaxConnsPerHost: o.MaxClients, DisableCompression: true,
		WriteBufferSize: maxBody + 4<<10, ReadBufferSize: 64 << 10,
	}, Timeout: time.Minute}
	r.closers = append(r.closers, httpClient.CloseIdleConnections)
	answers := make([]bytes.Buffer, o.MaxClients)
	r.Gateway = Side{Name: "gateway", clients: o.MaxClients, send: func(ctx context.Context, c, seq int) (int, error) {
		body := bodies[c][seq%distinct]
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Content-Type", "application/msgpack")
		ingest.Sign(req, body, sessions[c], keys[c], time.Now(), "")
		res, err := httpClient.Do(req)
		if err != nil {
			return 0, err
		}
		defer res.Body.Close()
		answer := &answers[c]
		answer.Reset()
		if _, err := answer.ReadFrom(res.Body); err != nil {
			return 0, err
		}
		b := answer.Bytes()
		if res.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("gateway answered %d: %s", res.StatusCode, bytes.TrimSpace(b))
		}
		return acceptedCount(b)
	}}
	r.Raw = Side{Name: "raw Writer", clients: o.MaxClients, send: func(ctx context.Context, c, seq int) (int, error) {
		batch := msgs[c][seq%distinct]
		if err := writer.WriteMessages(ctx, batch...); err != nil {
			return 0, err
		}
		return len(batch), nil
	}}
	return r, nil
}

// Side is one way of writing events; clients each send a batch and wait
// for its answer before the next.
type Side struct {
	Name    string
	clients int
	send    func(ctx context.Context, client, seq int) (int, error)
}

// Result is one run of one side.
type Result struct {
	Events    int64
	Errors    int64
	FirstErr  string
	Elapsed   time.Duration
	Latencies []time.Duration // one per acknowledged batch
}

// Rate is acknowledged events per second.
func (r Result) Rate() float64 { return float64(r.Events) / r.Elapsed.Seconds() }

// Percentile returns the p-quantile (0..1) of the batch latencies.
func (r Result) Percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	s := slices.Clone(r.Latencies)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// Run runs clients for d.
func (s Side) Run(ctx context.Context, clients int, d time.Duration) Result {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return s.run(clients, func() bool { return ctx.Err() == nil }, context.WithoutCancel(ctx))
}

// RunN runs clients until they sent batches batches in all.
func (s Side) RunN(ctx context.Context, clients, batches int) Result {
	var left atomic.Int64
	left.Store(int64(batches))
	return s.run(clients, func() bool { return ctx.Err() == nil && left.Add(-1) >= 0 }, ctx)
}

func (s Side) run(clients int, more func() bool, ctx context.Context) Result {
	if clients > s.clients {
		panic(fmt.Sprintf("BUG: loadtest: %d clients, the rig was built for %d", clients, s.clients))
	}
	var (
		events, errs atomic.Int64
		mu           sync.Mutex
		lat          []time.Duration
		firstErr     string
		wg           sync.WaitGroup
	)
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 1024)
			for seq := 0; more(); seq++ {
				t0 := time.Now()
				n, err := s.send(ctx, c, seq)
				if err != nil {
					if errs.Add(1) == 1 {
						mu.Lock()
						firstErr = err.Error()
						mu.Unlock()
					}
					continue
				}
				local = append(local, time.Since(t0))
				events.Add(int64(n))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return Result{Events: events.Load(), Errors: errs.Load(), FirstErr: firstErr, Elapsed: time.Since(start), Latencies: lat}
}

// acceptedCount reads "accepted" from the start of a gateway answer, which
// the gateway writes first; parsing the whole answer would spend the
// machine's CPUs on the client rather than on what is measured.
func acceptedCount(b []byte) (int, error) {
	const prefix = `{"accepted":`
	if !bytes.HasPrefix(b, []byte(prefix)) {
		return 0, errors.New("unexpected gateway answer: " + string(b[:min(len(b), 80)]))
	}
	rest := b[len(prefix):]
	end := bytes.IndexByte(rest, ',')
	if end < 0 {
		return 0, errors.New("unexpected gateway answer")
	}
	return strconv.Atoi(string(rest[:end]))
}

// event is a playback heartbeat of one of 10,000 profiles.
func event(client, batch, i int, session string, now time.Time) *schemas.Playback {
	n := (client*7919 + batch*104729 + i*31) % 10000
	return &schemas.Playback{
		Envelope: schemas.Envelope{
			EventID:   fmt.Sprintf("bench-%d-%d-%d", client, batch, i),
			EventTime: now.UnixMilli(), AccountID: fmt.Sprintf("acc-%d", n/3), ProfileID: fmt.Sprintf("pro-%d", n),
			DeviceID: fmt.Sprintf("dev-%d", n), SessionID: session, Country: "DE", DeviceType: schemas.DeviceTV, AppVersion: "5.12.0",
		},
		Kind: schemas.PlayHeartbeat, TitleID: fmt.Sprintf("title-%d", n%500), PositionMs: int64(i) * 10_000, DurationMs: 5_400_000,
		BitrateKbps: 4800, BufferMs: 12_000, WatchedMs: 10_000, CDN: "cdn-a", ISP: "isp-b",
	}
}

func waitReady(ctx context.Context, p *player.Producer) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := p.Ready(rctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the benchmark topics are not ready after 30 s: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func deleteTopics(client *kafka.Client, topo topology.Topology) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var names []string
	for _, s := range topo.Topics {
		names = append(names, topo.Name(s.Name))
	}
	client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: names})
}
