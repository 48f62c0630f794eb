package player

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/atlas-stream/atlas/internal/kafkaconn"
	"github.com/atlas-stream/atlas/schemas"
	"github.com/atlas-stream/atlas/topology"
)

// Policy says what Send and SendSync do when the buffer is full.
type Policy int

const (
	// Block waits for room in the buffer until the caller's context ends,
	// then returns the context's error. It is the default: a producer that
	// cannot keep up slows its callers down instead of losing events.
	Block Policy = iota
	// Fail returns [ErrBufferFull] at once, for callers that would rather
	// shed load (and count it) than wait.
	Fail
)

func (p Policy) String() string {
	switch p {
	case Block:
		return "block"
	case Fail:
		return "fail"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

var (
	// ErrBufferFull is returned by Send and SendSync, with the [Fail]
	// policy, when [Config.Buffer] records are already queued or in flight;
	// and by SendSync, with either policy, for a slice of more records than
	// the whole buffer holds. Nothing was sent; the caller may retry later.
	ErrBufferFull = errors.New("producer buffer is full")
	// ErrClosed is returned by Send and SendSync after Close was called,
	// and by a Send that was waiting for room when Close was called.
	ErrClosed = errors.New("producer is closed")
)

// Defaults of [Config].
const (
	DefaultBatchSize   = 500
	DefaultLinger      = 10 * time.Millisecond
	DefaultBuffer      = 10000
	DefaultMaxAttempts = 10
)

// Config configures a [Producer]. Zero fields take the defaults that their
// documentation states.
type Config struct {
	// Kafka says how to reach the cluster.
	Kafka kafkaconn.Config
	// Topology names the topics. The zero value means
	// topology.Default(topology.Options{}), the production names; tests
	// pass a topology with a prefix of their own.
	Topology topology.Topology
	// BatchSize is the most records in one produce request to one
	// partition. Default 500.
	BatchSize int
	// Linger is how long a partition's batch waits for more records before
	// it is sent anyway. Default 10 ms.
	Linger time.Duration
	// Buffer is the most records that may be queued or in flight (sent but
	// not yet acknowledged) at a time, across all callers. Default 10000.
	Buffer int
	// WhenFull says what happens when the buffer is full. Default [Block].
	WhenFull Policy
	// Limits are the validation limits every record must meet, including
	// MaxEventBytes on the encoded record. Zero fields take the defaults of
	// [schemas.Limits].
	Limits schemas.Limits
	// MaxAttempts is how many times a batch is written before its records
	// fail, when the errors are temporary (no leader, connection refused).
	// Default 10, as kafka-go's; with its backoff that is about 7 s.
	MaxAttempts int
	// Registerer receives the Producer's metrics. Default
	// prometheus.DefaultRegisterer. Producers sharing a Registerer share
	// their series (counts add up) rather than failing to register.
	Registerer prometheus.Registerer
	// OnError is called once for each record that Send accepted and that
	// could not be written. It is called from the Writer's goroutines: it
	// must be safe for concurrent use and return quickly, and it must not
	// call Close. Default: a log line per failed batch. Records of SendSync
	// are reported to its caller instead.
	OnError func(rec schemas.Record, err error)
	// Logger receives the default OnError lines. Default slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if len(c.Topology.Topics) == 0 {
		c.Topology = topology.Default(topology.Options{Prefix: c.Topology.Prefix})
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.Linger == 0 {
		c.Linger = DefaultLinger
	}
	if c.Buffer == 0 {
		c.Buffer = DefaultBuffer
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.Limits.MaxEventBytes == 0 {
		c.Limits.MaxEventBytes = schemas.DefaultLimits().MaxEventBytes
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.DefaultRegisterer
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// routes maps each schema to the logical topic it is written to.
var routes = []struct {
	schema schemas.Schema
	topic  topology.Topic
}{
	{schemas.SchemaPlayback, topology.Playback},
	{schemas.SchemaBrowse, topology.Browse},
	{schemas.SchemaCatalog, topology.Catalog},
	{schemas.SchemaAlert, topology.Alerts},
}

// Validate reports settings that cannot work, naming the setting.
func (c Config) Validate() error {
	if err := c.Kafka.Validate(); err != nil {
		return err
	}
	d := c.withDefaults()
	for _, r := range routes {
		if _, ok := d.Topology.Topic(r.topic); !ok {
			return fmt.Errorf("invalid producer config: the topology does not declare topic %q, where %s records go", r.topic, r.schema)
		}
	}
	switch {
	case c.BatchSize < 0:
		return fmt.Errorf("invalid producer config: BatchSize %d is negative", c.BatchSize)
	case c.Linger < 0:
		return fmt.Errorf("invalid producer config: Linger %s is negative", c.Linger)
	case c.Buffer < 0:
		return fmt.Errorf("invalid producer config: Buffer %d is negative", c.Buffer)
	case d.Buffer < d.BatchSize:
		return fmt.Errorf("invalid producer config: Buffer %d is smaller than BatchSize %d, so no batch could ever fill", d.Buffer, d.BatchSize)
	case c.WhenFull != Block && c.WhenFull != Fail:
		return fmt.Errorf("invalid producer config: unknown WhenFull policy %d", int(c.WhenFull))
	case c.MaxAttempts < 0:
		return fmt.Errorf("invalid producer config: MaxAttempts %d is negative", c.MaxAttempts)
	}
	if err := c.Limits.Validate(); err != nil {
		return err
	}
	return nil
}

// route is where records of one schema go, with what they carry.
type route struct {
	schema  schemas.Schema
	topic   string
	headers []kafka.Header // shared by every message; kafka-go only reads them
	sent    prometheus.Counter
	failed  map[string]prometheus.Counter
}

// Producer writes records to Kafka. It is safe for concurrent use; share
// one per process, so that concurrent callers fill the same batches.
type Producer struct {
	cfg       Config
	w         *kafka.Writer
	transport *kafka.Transport
	dialer    *kafka.Dialer
	routes    map[schemas.Schema]*route
	topics    []string
	slots     *slots
	m         *metrics

	// mu is held for reading while a call hands records to the Writer, and
	// for writing by Close, so that no record reaches a closed Writer.
	mu        sync.RWMutex
	closing   atomic.Bool
	closeOnce sync.Once
	closed    chan struct{} // closed when the Writer has flushed and closed
}

// New returns a Producer. It does not connect: the first send does, and
// [Producer.Ready] checks the cluster. Close it to flush.
func New(cfg Config) (*Producer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	transport, err := cfg.Kafka.Transport()
	if err != nil {
		return nil, err
	}
	dialer, err := cfg.Kafka.Dialer()
	if err != nil {
		return nil, err
	}
	p := &Producer{
		cfg:       cfg,
		transport: transport,
		dialer:    dialer,
		routes:    make(map[schemas.Schema]*route, len(routes)),
		m:         m,
		closed:    make(chan struct{}),
	}
	for _, r := range routes {
		rt := &route{
			schema: r.schema,
			topic:  cfg.Topology.Name(r.topic),
			headers: []kafka.Header{
				{Key: schemas.HeaderSchema, Value: []byte(r.schema)},
				{Key: schemas.HeaderContentType, Value: []byte(schemas.ContentType)},
			},
			sent:   m.sent.WithLabelValues(string(r.schema)),
			failed: make(map[string]prometheus.Counter),
		}
		for _, reason := range []string{reasonInvalid, reasonBufferFull, reasonClosed, reasonKafka, reasonCanceled} {
			rt.failed[reason] = m.failed.WithLabelValues(string(r.schema), reason)
		}
		p.routes[r.schema] = rt
		p.topics = append(p.topics, rt.topic)
	}
	p.slots = newSlots(cfg.Buffer, func(delta int) { m.queued.Add(float64(delta)) })
	p.w = &kafka.Writer{
		Addr:         kafka.TCP(cfg.Kafka.BrokerList()...),
		Balancer:     balancer,
		MaxAttempts:  cfg.MaxAttempts,
		BatchSize:    cfg.BatchSize,
		BatchTimeout: cfg.Linger,
		RequiredAcks: kafka.RequireAll,
		Async:        true,
		Completion:   p.completion,
		Transport:    transport,
	}
	return p, nil
}

// pending travels with a message through the Writer (Message.WriterData)
// and comes back in the completion callback.
type pending struct {
	route *route
	start time.Time
	rec   schemas.Record // for OnError; nil for SendSync
	call  *syncCall      // nil for Send
	index int            // in call.errs
}

// syncCall collects the outcome of one SendSync.
type syncCall struct {
	mu        sync.Mutex
	errs      []error // errPending until the record's batch completes
	left      int
	done      chan struct{}
	abandoned bool
}

var errPending = errors.New("BUG: player: record still pending")

// messagePool recycles the message slices of SendSync.
var messagePool = sync.Pool{New: func() any { return new([]kafka.Message) }}

// message validates (unless validated says the caller just did) and
// encodes rec. The returned error is a *schemas.ValidationError or an
// encoding error; the route is nil when the record is not an Atlas record
// at all.
func (p *Producer) message(rec schemas.Record, now time.Time, validated bool) (kafka.Message, *route, error) {
	if isNil(rec) {
		return kafka.Message{}, nil, errors.New("cannot send a nil record")
	}
	rt := p.routes[rec.Schema()]
	if !validated {
		if err := schemas.Validate(rec, p.cfg.Limits, now); err != nil {
			return kafka.Message{}, rt, err
		}
	}
	if rt == nil {
		return kafka.Message{}, nil, fmt.Errorf("cannot send %s record: no topic for this schema", rec.Schema())
	}
	// Key and value share one buffer, sized for a typical record: encoding
	// from nil grew it five times. BenchmarkMessage: 7 allocations and
	// 512 B per record (422 ns) before, 1 and 352 B (300 ns) after.
	key := rec.Key()
	buf := make([]byte, len(key), len(key)+encodeHint)
	copy(buf, key)
	buf, err := schemas.Append(buf, rec)
	if err != nil {
		return kafka.Message{}, rt, err
	}
	value := buf[len(key):]
	if len(value) > p.cfg.Limits.MaxEventBytes {
		return kafka.Message{}, rt, &schemas.ValidationError{Reason: fmt.Sprintf("record is %d bytes encoded, over the limit of %d", len(value), p.cfg.Limits.MaxEventBytes)}
	}
	return kafka.Message{Topic: rt.topic, Key: buf[:len(key):len(key)], Value: value, Headers: rt.headers, Time: now}, rt, nil
}

// encodeHint is the room for an encoded record that message allocates:
// simulated playback and browse records take 200–300 bytes.
const encodeHint = 320

// isNil reports a nil record, which Validate would dereference.
func isNil(rec schemas.Record) bool {
	switch r := rec.(type) {
	case nil:
		return true
	case *schemas.Playback:
		return r == nil
	case *schemas.Browse:
		return r == nil
	case *schemas.Title:
		return r == nil
	case *schemas.Alert:
		return r == nil
	}
	return false
}

// schemaOf is rec.Schema(), or "" for a nil record.
func schemaOf(rec schemas.Record) schemas.Schema {
	if isNil(rec) {
		return ""
	}
	return rec.Schema()
}

func (p *Producer) countFailed(rt *route, reason string, n int) {
	if rt != nil {
		rt.failed[reason].Add(float64(n))
	}
}

// enter begins handing records to the Writer; it returns false after Close.
func (p *Producer) enter() bool {
	p.mu.RLock()
	if p.closing.Load() {
		p.mu.RUnlock()
		return false
	}
	return true
}

func (p *Producer) leave() { p.mu.RUnlock() }

// acquire takes n buffer slots according to the policy.
func (p *Producer) acquire(ctx context.Context, n int) error {
	if n > p.cfg.Buffer {
		return fmt.Errorf("%w: %d records are more than the whole buffer of %d", ErrBufferFull, n, p.cfg.Buffer)
	}
	if p.cfg.WhenFull == Fail {
		ok, err := p.slots.tryAcquire(n)
		if err != nil {
			return err
		}
		if !ok {
			return ErrBufferFull
		}
		return nil
	}
	return p.slots.acquire(ctx, n)
}

func failReason(err error) string {
	switch {
	case errors.Is(err, ErrBufferFull):
		return reasonBufferFull
	case errors.Is(err, ErrClosed):
		return reasonClosed
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return reasonCanceled
	}
	return reasonKafka
}

// Send validates rec, encodes it and queues it for the next batch of its
// partition, and returns without waiting for Kafka. It blocks only while
// the buffer is full under the [Block] policy (until ctx ends) and, on the
// first record of a topic, while the Writer looks up its partitions.
//
// The error is a *schemas.ValidationError when rec breaks a rule (nothing is
// sent), [ErrBufferFull] under the [Fail] policy, ctx's error when it ended
// while waiting for room, [ErrClosed] after Close, or an error from looking
// up the topic. A nil error means the record is queued: if writing it fails
// later, [Config.OnError] is told. rec is not retained after Send returns
// unless OnError needs it.
func (p *Producer) Send(ctx context.Context, rec schemas.Record) error {
	if !p.enter() {
		p.countFailed(p.routes[schemaOf(rec)], reasonClosed, 1)
		return ErrClosed
	}
	defer p.leave()
	now := time.Now()
	msg, rt, err := p.message(rec, now, false)
	if err != nil {
		p.countFailed(rt, reasonInvalid, 1)
		return err
	}
	if err := p.acquire(ctx, 1); err != nil {
		p.countFailed(rt, failReason(err), 1)
		return err
	}
	msg.WriterData = &pending{route: rt, start: now, rec: rec}
	if err := p.w.WriteMessages(ctx, msg); err != nil {
		p.slots.release(1)
		p.countFailed(rt, failReason(err), 1)
		return fmt.Errorf("cannot queue %s record for %s: %w", rt.schema, rt.topic, err)
	}
	return nil
}

// SendSync sends recs and waits until Kafka has acknowledged each of them
// (acks=all) or refused it, or until ctx ends. It returns one error per
// record, in order: nil when the record is acknowledged; a
// *schemas.ValidationError when it breaks a rule (such records are never
// sent, the others are); [ErrBufferFull], ctx's error or [ErrClosed] when it
// was not queued; or the write error when Kafka did not take it.
//
// When ctx ends before every acknowledgement came back, the records still
// waiting get an error wrapping ctx's error, but they may still be written
// afterwards: a caller that retries them may write them twice, which is why
// every event carries an id that consumers deduplicate on.
//
// All records of one call are queued together, so a slice larger than
// [Config.Buffer] fails with ErrBufferFull. recs are not retained.
func (p *Producer) SendSync(ctx context.Context, recs []schemas.Record) []error {
	return p.sendSync(ctx, recs, false)
}

// SendSyncValidated is [Producer.SendSync] for records that the caller
// validated against limits a moment ago, as the ingest gateway does to
// answer each event. When limits are the Producer's own, the records are
// not validated a second time; the encoded size is still checked. With
// other limits it is SendSync. (Validation was 9 % of the gateway's CPU
// samples with 64 clients, half of it the second time.)
func (p *Producer) SendSyncValidated(ctx context.Context, recs []schemas.Record, limits schemas.Limits) []error {
	return p.sendSync(ctx, recs, limits.Same(p.cfg.Limits))
}

func (p *Producer) sendSync(ctx context.Context, recs []schemas.Record, validated bool) []error {
	errs := make([]error, len(recs))
	if len(recs) == 0 {
		return errs
	}
	if !p.enter() {
		for i, rec := range recs {
			errs[i] = ErrClosed
			p.countFailed(p.routes[schemaOf(rec)], reasonClosed, 1)
		}
		return errs
	}
	entered := true
	defer func() {
		if entered {
			p.leave()
		}
	}()

	now := time.Now()
	call := &syncCall{errs: errs, done: make(chan struct{})}
	pend := make([]pending, len(recs))
	// The Writer copies messages into its batches, so the slice can be
	// reused once WriteMessages returned without an error (an error may
	// refer to it).
	msgsp := messagePool.Get().(*[]kafka.Message)
	msgs := (*msgsp)[:0]
	for i, rec := range recs {
		msg, rt, err := p.message(rec, now, validated)
		if err != nil {
			errs[i] = err
			p.countFailed(rt, reasonInvalid, 1)
			continue
		}
		pend[i] = pending{route: rt, start: now, call: call, index: i}
		msg.WriterData = &pend[i]
		msgs = append(msgs, msg)
	}
	if len(msgs) == 0 {
		return errs
	}
	failAll := func(err error) []error {
		reason := failReason(err)
		for i := range msgs {
			pd := msgs[i].WriterData.(*pending)
			errs[pd.index] = err
			pd.route.failed[reason].Inc()
		}
		return errs
	}
	if err := p.acquire(ctx, len(msgs)); err != nil {
		return failAll(err)
	}
	for i := range msgs {
		errs[msgs[i].WriterData.(*pending).index] = errPending
	}
	call.left = len(msgs)
	if err := p.w.WriteMessages(ctx, msgs...); err != nil {
		p.slots.release(len(msgs))
		return failAll(fmt.Errorf("cannot queue %d records: %w", len(msgs), err))
	}
	clear(msgs)
	*msgsp = msgs[:0]
	messagePool.Put(msgsp)
	p.leave()
	entered = false

	select {
	case <-call.done:
		return errs
	case <-ctx.Done():
		call.mu.Lock()
		defer call.mu.Unlock()
		if call.left == 0 {
			return errs
		}
		call.abandoned = true
		out := make([]error, len(errs))
		copy(out, errs)
		for i, err := range out {
			if err == errPending {
				out[i] = fmt.Errorf("cannot wait for Kafka's acknowledgement: %w (the record may still be written)", ctx.Err())
				pend[i].route.failed[reasonCanceled].Inc()
			}
		}
		return out
	}
}

// completion is the Writer's callback: msgs were all written to one
// partition (or failed together with err).
func (p *Producer) completion(msgs []kafka.Message, err error) {
	if len(msgs) == 0 {
		return
	}
	now := time.Now()
	p.m.batch.Observe(float64(len(msgs)))
	if err != nil {
		err = fmt.Errorf("cannot write %d records to %s partition %d: %w", len(msgs), msgs[0].Topic, msgs[0].Partition, err)
	}
	var logged bool
	for i := range msgs {
		pd, ok := msgs[i].WriterData.(*pending)
		if !ok {
			panic("BUG: player: a message without its pending record came back from the Writer")
		}
		if err == nil {
			pd.route.sent.Inc()
			p.m.latency.Observe(now.Sub(pd.start).Seconds())
		}
		if c := pd.call; c != nil {
			c.mu.Lock()
			if err != nil && !c.abandoned {
				pd.route.failed[reasonKafka].Inc()
			}
			c.errs[pd.index] = err
			c.left--
			if c.left == 0 {
				close(c.done)
			}
			c.mu.Unlock()
			continue
		}
		if err != nil {
			pd.route.failed[reasonKafka].Inc()
			if p.cfg.OnError != nil {
				p.cfg.OnError(pd.rec, err)
			} else if !logged {
				logged = true
				p.cfg.Logger.Error("records lost", "records", len(msgs), "err", err)
			}
		}
	}
	p.slots.release(len(msgs))
}

// Close stops accepting records (Send and SendSync return [ErrClosed]),
// writes every queued record, waits for Kafka's answers and closes the
// connections. Records that fail now are reported as usual (OnError, or
// SendSync's result). It returns nil once everything is written, or an error
// wrapping ctx's error if ctx ends first; the flush then goes on in the
// background. Calling Close again waits for the same flush.
func (p *Producer) Close(ctx context.Context) error {
	p.closeOnce.Do(func() {
		p.closing.Store(true)
		p.slots.close()
		// Wait until no call is between its checks and WriteMessages.
		// (An empty critical section: taking the lock is the point.)
		p.mu.Lock()
		p.mu.Unlock()
		go func() {
			// Writer.Close flushes the open batches and waits for every
			// completion callback.
			_ = p.w.Close()
			p.transport.CloseIdleConnections()
			close(p.closed)
		}()
	})
	select {
	case <-p.closed:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cannot flush the producer: %d records still unacknowledged: %w", p.slots.inUse(), ctx.Err())
	}
}

// Ready reports whether the cluster can take records now: a bootstrap
// broker answers a metadata request (not served from a cache) and every
// partition of the Producer's topics has a leader. The error says which
// broker or topic is missing. It is meant for readiness probes and costs a
// connection per call.
func (p *Producer) Ready(ctx context.Context) error {
	var conn *kafka.Conn
	var err error
	for _, b := range p.cfg.Kafka.BrokerList() {
		if conn, err = p.dialer.DialContext(ctx, "tcp", b); err == nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("cannot reach any Kafka broker of %v: %w", p.cfg.Kafka.BrokerList(), err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	parts, err := conn.ReadPartitions(p.topics...)
	if errors.Is(err, kafka.UnknownTopicOrPartition) {
		return fmt.Errorf("cannot read the partitions of %v: %w (create the topics with `atlas topology apply`)", p.topics, err)
	}
	if err != nil {
		return fmt.Errorf("cannot read the partitions of %v: %w", p.topics, err)
	}
	found := make(map[string]int, len(p.topics))
	for _, pt := range parts {
		if pt.Error != nil {
			return fmt.Errorf("topic %s partition %d: %w", pt.Topic, pt.ID, pt.Error)
		}
		if pt.Leader.ID < 0 || pt.Leader.Host == "" {
			return fmt.Errorf("topic %s partition %d has no leader", pt.Topic, pt.ID)
		}
		found[pt.Topic]++
	}
	for _, t := range p.topics {
		if found[t] == 0 {
			return fmt.Errorf("topic %s does not exist (run `atlas topology apply`)", t)
		}
	}
	return nil
}

// Topic returns the name on the cluster of the topic that records of the
// schema are written to, and false for a schema the Producer does not route.
func (p *Producer) Topic(s schemas.Schema) (string, bool) {
	rt, ok := p.routes[s]
	if !ok {
		return "", false
	}
	return rt.topic, true
}
