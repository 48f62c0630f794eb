package engine

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/atlas-stream/atlas/consumers/stream"
	"github.com/atlas-stream/atlas/internal/kafkaconn"
	"github.com/atlas-stream/atlas/schemas"
)

// Config configures a Runner. Zero fields take the documented defaults.
type Config struct {
	// Role names the role in logs and metrics ("aggregates").
	Role string
	// Group is the consumer group id (as on the cluster).
	Group string
	// Topics are the input topics (as on the cluster).
	Topics []string
	// DLQTopic receives records that cannot be decoded, validated or
	// processed. Required.
	DLQTopic string
	Kafka    kafkaconn.Config
	// Limits bound decoding and validation (schemas defaults).
	Limits schemas.Limits
	// Factory builds a processor per claimed partition. Required.
	Factory stream.Factory

	// FlushInterval is how often each claim checkpoints and commits.
	// Default 1 s.
	FlushInterval time.Duration
	// MaxUncommitted forces a checkpoint after this many records. Default
	// 50,000.
	MaxUncommitted int
	// QueueCapacity bounds the messages each partition reader prefetches.
	// Default 1,000.
	QueueCapacity int
	// SessionTimeout and RebalanceTimeout of the group. Defaults 10 s, 30 s.
	SessionTimeout   time.Duration
	RebalanceTimeout time.Duration
	// StartOffset is where a partition without a commit starts:
	// kafka.FirstOffset (default) or kafka.LastOffset.
	StartOffset int64

	// Registerer receives the engine's metrics, labelled with the role.
	// Default: no metrics are exported.
	Registerer prometheus.Registerer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Failpoint, when set, is called with the name of each step of a
	// checkpoint ("before-checkpoint", "before-dlq", "before-commit",
	// "after-commit") so that tests can kill the process inside each window.
	Failpoint func(name string)
	// UnsafeCommitFirst commits before the processor's checkpoint instead
	// of after it. It exists only as a negative control: the end-to-end
	// tests switch it on to prove that their oracle catches the loss it
	// causes. Never set it in production.
	UnsafeCommitFirst bool
}

// Validate reports a configuration that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.Role == "":
		return errors.New("engine: Role is required")
	case c.Group == "":
		return errors.New("engine: Group is required")
	case len(c.Topics) == 0:
		return errors.New("engine: at least one input topic is required")
	case c.DLQTopic == "":
		return errors.New("engine: DLQTopic is required")
	case c.Factory == nil:
		return errors.New("engine: Factory is required")
	case c.FlushInterval < 0 || c.MaxUncommitted < 0 || c.QueueCapacity < 0:
		return errors.New("engine: intervals and sizes must not be negative")
	}
	if err := c.Kafka.Validate(); err != nil {
		return err
	}
	return c.Limits.Validate()
}

func (c *Config) defaults() {
	if c.FlushInterval == 0 {
		c.FlushInterval = time.Second
	}
	if c.MaxUncommitted == 0 {
		c.MaxUncommitted = 50_000
	}
	if c.QueueCapacity == 0 {
		c.QueueCapacity = 1000
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 10 * time.Second
	}
	if c.RebalanceTimeout == 0 {
		c.RebalanceTimeout = 30 * time.Second
	}
	if c.StartOffset == 0 {
		c.StartOffset = kafka.FirstOffset
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Runner runs one role's consumer group member.
type Runner struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	client  *kafka.Client
	dialer  *kafka.Dialer
	dlq     *kafka.Writer

	ready atomic.Bool
}

// New validates cfg and returns a Runner. Nothing connects until Run.
func New(cfg Config) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	client, err := cfg.Kafka.Client()
	if err != nil {
		return nil, err
	}
	client.Timeout = 10 * time.Second
	dialer, err := cfg.Kafka.Dialer()
	if err != nil {
		return nil, err
	}
	transport, err := cfg.Kafka.Transport()
	if err != nil {
		return nil, err
	}
	return &Runner{
		cfg:     cfg,
		log:     cfg.Logger.With("role", cfg.Role),
		metrics: newMetrics(cfg.Registerer, cfg.Role),
		client:  client,
		dialer:  dialer,
		dlq: &kafka.Writer{
			Addr: kafka.TCP(cfg.Kafka.BrokerList()...), Topic: cfg.DLQTopic, Transport: transport,
			RequiredAcks: kafka.RequireAll, Balancer: &kafka.Hash{}, BatchTimeout: time.Millisecond,
			MaxAttempts: 3,
		},
	}, nil
}

// Ready reports whether the member has joined its group and restored the
// partitions it owns.
func (r *Runner) Ready() bool { return r.ready.Load() }

// Run joins the group and processes claims until ctx is done, then commits
// what is durable, leaves the group and returns nil. It returns an error
// only when the group cannot be used at all.
func (r *Runner) Run(ctx context.Context) error {
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                    r.cfg.Group,
		Brokers:               r.cfg.Kafka.BrokerList(),
		Dialer:                r.dialer,
		Topics:                r.cfg.Topics,
		SessionTimeout:        r.cfg.SessionTimeout,
		RebalanceTimeout:      r.cfg.RebalanceTimeout,
		HeartbeatInterval:     r.cfg.SessionTimeout / 4,
		WatchPartitionChanges: true,
		StartOffset:           r.cfg.StartOffset,
		ErrorLogger:           kafka.LoggerFunc(func(msg string, args ...any) { r.log.Debug("kafka-go: " + fmt.Sprintf(msg, args...)) }),
	})
	if err != nil {
		return fmt.Errorf("cannot create consumer group %s: %w", r.cfg.Group, err)
	}
	// Closing the group ends the generation (its partitions drain, flush
	// and commit) and then leaves the group, so that the partitions move
	// to the other members at once instead of after the session timeout.
	// Run returns only after that, and only then closes the dead-letter
	// writer that draining partitions may still use.
	stopped, closed := make(chan struct{}), make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-stopped:
		}
		group.Close()
		close(closed)
	}()
	defer r.dlq.Close()
	defer func() {
		close(stopped)
		select {
		case <-closed:
		case <-time.After(leaveTimeout):
			r.log.Warn("the consumer group did not close in time; leaving without waiting", "group", r.cfg.Group, "waited", leaveTimeout)
		}
	}()

	backoff := newBackoff(200*time.Millisecond, 5*time.Second)
	for {
		gen, err := group.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed) {
				r.ready.Store(false)
				return nil
			}
			// kafka-go retries coordinator errors itself; these are the ones
			// it surfaces (e.g. the coordinator is still loading on a fresh
			// broker). Keep trying: the group is not unusable.
			if refused(err) {
				r.ready.Store(false)
				return fmt.Errorf("cannot join consumer group %s: the cluster refused these credentials: %w", r.cfg.Group, err)
			}
			r.log.Warn("cannot join consumer group yet; retrying", "group", r.cfg.Group, "err", err)
			if !backoff.wait(ctx) {
				return nil
			}
			continue
		}
		backoff.reset()
		r.startGeneration(ctx, gen)
	}
}

// startGeneration fetches committed offsets with their metadata and starts
// one goroutine per assigned partition inside the generation.
func (r *Runner) startGeneration(ctx context.Context, gen *kafka.Generation) {
	request := map[string][]int{}
	n := 0
	for topic, parts := range gen.Assignments {
		for _, p := range parts {
			request[topic] = append(request[topic], p.ID)
			n++
		}
	}
	r.log.Info("joined consumer group", "group", r.cfg.Group, "generation", gen.ID, "member", gen.MemberID, "partitions", n)
	if n == 0 {
		r.ready.Store(true)
		return
	}
	commits, err := r.fetchCommits(ctx, request)
	if err != nil {
		// Without the committed metadata a claim cannot restore correctly:
		// end this generation and rejoin rather than guess.
		r.log.Error("cannot fetch committed offsets; rejoining", "err", err)
		gen.Start(func(context.Context) {})
		return
	}
	var restored sync.WaitGroup
	restored.Add(n)
	for topic, parts := range gen.Assignments {
		for _, p := range parts {
			c := commits[topicPartition{topic, p.ID}]
			gen.Start(func(genCtx context.Context) {
				r.runClaim(ctx, genCtx, gen, c, &restored)
			})
		}
	}
	go func() {
		restored.Wait()
		r.ready.Store(true)
	}()
}

type topicPartition struct {
	topic     string
	partition int
}

// leaveTimeout bounds how long Run waits for its last generation to drain
// and for the group to be left.
const leaveTimeout = 30 * time.Second

// refused reports whether err says that the cluster refused who we are or
// what we may do — a wrong password, an untrusted certificate, a missing
// ACL. Retrying cannot help: the role exits with the reason instead of
// waiting forever.
func refused(err error) bool {
	for _, code := range []kafka.Error{kafka.SASLAuthenticationFailed, kafka.UnsupportedSASLMechanism, kafka.IllegalSASLState,
		kafka.GroupAuthorizationFailed, kafka.TopicAuthorizationFailed, kafka.ClusterAuthorizationFailed} {
		if errors.Is(err, code) {
			return true
		}
	}
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	return errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &invalid)
}
