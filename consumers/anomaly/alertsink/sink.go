package alertsink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/segmentio/kafka-go"

	"github.com/atlas-stream/atlas/consumers/anomaly"
	"github.com/atlas-stream/atlas/consumers/stream"
	"github.com/atlas-stream/atlas/internal/kafkaconn"
	"github.com/atlas-stream/atlas/schemas"
)

// Config configures the alert sink.
type Config struct {
	Kafka kafkaconn.Config
	// Topic is the alert topic's name on the cluster. Required.
	Topic string
	// ClickHouse receives the alerts table rows; its current database must
	// be Atlas's, migrated (0001_alerts.sql). nil: alerts go to Kafka only.
	ClickHouse driver.Conn
	// InsertTimeout bounds one insert into ClickHouse. Default 30 s.
	InsertTimeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Sink publishes alerts. Safe for concurrent use; one handle per claim.
type Sink struct {
	cfg Config
	w   *kafka.Writer
	log *slog.Logger
}

// New returns an alert sink. Nothing connects until the first alert.
func New(cfg Config) (*Sink, error) {
	if cfg.Topic == "" {
		return nil, errors.New("cannot publish alerts: Topic is required")
	}
	if cfg.InsertTimeout == 0 {
		cfg.InsertTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	transport, err := cfg.Kafka.Transport()
	if err != nil {
		return nil, err
	}
	w := newWriter(writerConfig{brokers: cfg.Kafka.BrokerList(), topic: cfg.Topic, transport: transport,
		balancer: &kafka.Murmur2Balancer{}, batch: 100, timeout: time.Millisecond}, cfg.Logger)
	return &Sink{cfg: cfg, w: w, log: cfg.Logger}, nil
}

// Claim returns the handle of one claimed re-key partition.
func (s *Sink) Claim(c stream.Claim) (anomaly.Outbox, error) {
	return &handle{s: s, t: newTracker(10_000), what: fmt.Sprintf("alerts of %s/%d", c.Topic, c.Partition)}, nil
}

// Close flushes what is queued and closes the writer. The ClickHouse
// connection stays the caller's.
func (s *Sink) Close() error { return s.w.Close() }

type handle struct {
	s    *Sink
	t    *tracker
	what string

	mu      sync.Mutex
	pending []schemas.Alert // published, not yet in ClickHouse
}

var alertHeaders = headers(schemas.SchemaAlert)

// Publish writes a to the alert topic without waiting, keyed by subject.
func (h *handle) Publish(a *schemas.Alert) {
	v, err := schemas.Marshal(a)
	if err != nil {
		h.s.log.Error("BUG: cannot encode an alert", "id", a.ID, "err", err)
		return
	}
	h.mu.Lock()
	h.pending = append(h.pending, *a)
	h.mu.Unlock()
	msg := kafka.Message{Key: []byte(a.Subject), Value: v, Headers: alertHeaders, WriterData: h.t}
	ctx := context.Background()
	if err := h.t.add(ctx, 1); err != nil {
		return
	}
	if err := h.s.w.WriteMessages(ctx, msg); err != nil {
		h.t.done([]kafka.Message{msg}, err)
	}
}

// Flush waits until every published alert is on the topic, then inserts
// them into the alerts table.
func (h *handle) Flush(ctx context.Context) error {
	if err := flush(ctx, h.s.w, h.t, h.s.log, h.what); err != nil {
		return err
	}
	h.mu.Lock()
	rows := h.pending
	h.mu.Unlock()
	if len(rows) == 0 || h.s.cfg.ClickHouse == nil {
		h.clear(len(rows))
		return nil
	}
	ictx, cancel := context.WithTimeout(ctx, h.s.cfg.InsertTimeout)
	defer cancel()
	if err := Insert(ictx, h.s.cfg.ClickHouse, rows); err != nil {
		return err
	}
	h.clear(len(rows))
	return nil
}

func (h *handle) clear(n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	clear(h.pending[:n])
	h.pending = append(h.pending[:0], h.pending[n:]...)
}

// Close drops the handle; the shared writer stays open.
func (h *handle) Close() error { return nil }

// InsertColumns is the column list of the alerts table insert, written
// out: ClickHouse 18.16 needs it for a batch to have columns.
const InsertColumns = "id, kind, status, severity, subject, score, evidence, window_start, window_end, first_seen, detected_at"

// Insert writes alerts as rows of the alerts table. Rows of the same (kind,
// subject, id, status, severity) collapse into one (ReplacingMergeTree).
func Insert(ctx context.Context, conn driver.Conn, alerts []schemas.Alert) error {
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO alerts ("+InsertColumns+")")
	if err != nil {
		return fmt.Errorf("cannot insert alerts: %w", err)
	}
	for _, a := range alerts {
		ev, err := json.Marshal(a.Evidence)
		if err != nil {
			_ = batch.Abort()
			return fmt.Errorf("cannot insert alert %s: %w", a.ID, err)
		}
		if a.Evidence == nil {
			ev = []byte("{}")
		}
		if err := batch.Append(a.ID, a.Kind, string(a.Status), uint8(a.Severity), a.Subject, a.Score, string(ev),
			seconds(a.WindowStart), seconds(a.WindowEnd), seconds(a.FirstSeen), seconds(a.DetectedAt)); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("cannot insert alert %s: %w", a.ID, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("cannot insert %d alerts: %w", len(alerts), err)
	}
	return nil
}

func seconds(ms int64) time.Time { return time.UnixMilli(ms).UTC().Truncate(time.Second) }
