package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/atlas-stream/atlas/consumers/stream"
	"github.com/atlas-stream/atlas/schemas"
)

// Dead-letter headers, beside the original record's headers.
const (
	HeaderDLQTopic     = "atlas-dlq-topic"
	HeaderDLQPartition = "atlas-dlq-partition"
	HeaderDLQOffset    = "atlas-dlq-offset"
	HeaderDLQStage     = "atlas-dlq-stage" // decode, validate or process
	HeaderDLQField     = "atlas-dlq-field" // the rejected field, when known
	HeaderDLQError     = "atlas-dlq-error" // the reason, readable
	HeaderDLQRole      = "atlas-dlq-role"
)

// maxPendingDeadLetters forces a checkpoint, so that a burst of poison
// records cannot grow memory.
const maxPendingDeadLetters = 1000

// claimState is one owned partition's worker.
type claimState struct {
	r      *Runner
	log    *slog.Logger
	gen    *kafka.Generation
	claim  stream.Claim
	proc   stream.Processor
	dec    *schemas.Decoder
	reader *kafka.Reader

	next        int64 // offset after the last handled record; -1 before any
	uncommitted int   // records handled since the last commit
	lastFlush   time.Time
	deadLetters []kafka.Message
	fenced      bool
	lastMeta    string // the processor metadata of the last commit

	// Per record, without a label lookup or an allocation: the claim's
	// metric children and the Record handed to the processor (looking
	// the children up per record and a Record escaping per record were
	// 6% of atlas run all's CPU samples in make bench (b)).
	lag    prometheus.Gauge
	events prometheus.Counter
	rec    stream.Record
}

func (r *Runner) runClaim(runCtx, genCtx context.Context, gen *kafka.Generation, c stream.Claim, restored *sync.WaitGroup) {
	var once sync.Once
	markRestored := func() { once.Do(restored.Done) }
	defer markRestored()
	log := r.log.With("topic", c.Topic, "partition", c.Partition)

	start := time.Now()
	proc, err := r.cfg.Factory(genCtx, c)
	if err != nil {
		// Returning ends the generation; the member rejoins and retries.
		log.Error("cannot restore partition state; rejoining to retry", "err", err)
		return
	}
	r.metrics.restore.Observe(time.Since(start).Seconds())
	markRestored()
	r.metrics.claims.Inc()
	defer r.metrics.claims.Dec()

	offset := c.Committed
	if offset < 0 {
		offset = r.cfg.StartOffset
	}
	reader := kafka.NewReader(kafka.ReaderConfig{
		Brokers:       r.cfg.Kafka.BrokerList(),
		Dialer:        r.dialer,
		Topic:         c.Topic,
		Partition:     c.Partition,
		QueueCapacity: r.cfg.QueueCapacity,
		MinBytes:      1,
		MaxBytes:      8 << 20,
		MaxWait:       200 * time.Millisecond,
		ErrorLogger:   kafka.LoggerFunc(func(msg string, args ...any) { log.Debug("kafka-go reader: " + fmt.Sprintf(msg, args...)) }),
	})
	if err := reader.SetOffset(offset); err != nil {
		log.Error("cannot position reader", "offset", offset, "err", err)
		reader.Close()
		proc.Close()
		return
	}
	w := &claimState{r: r, log: log, gen: gen, claim: c, proc: proc, reader: reader,
		dec: schemas.NewDecoder(r.cfg.Limits), next: -1, lastFlush: time.Now(), lastMeta: c.Metadata,
		lag: r.metrics.lag.WithLabelValues(c.Topic, strconv.Itoa(c.Partition)), events: r.metrics.events.WithLabelValues(c.Topic)}
	log.Info("partition claimed", "generation", gen.ID, "resume_offset", offset, "processed_before", c.Processed,
		"restore_ms", time.Since(start).Milliseconds())

	w.loop(genCtx)

	// Revoked, or the process is stopping: make what was processed durable
	// and commit it while this member still owns the partition.
	if !w.fenced && w.uncommitted > 0 {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(runCtx), r.cfg.RebalanceTimeout/2)
		if err := w.checkpoint(fctx); err != nil {
			log.Warn("final checkpoint failed; the next owner replays from the last commit", "err", err)
		}
		cancel()
	}
	if err := reader.Close(); err != nil {
		log.Debug("closing reader", "err", err)
	}
	if err := proc.Close(); err != nil {
		log.Warn("closing processor", "err", err)
	}
	log.Info("partition released", "generation", gen.ID, "next_offset", w.next)
}

// loop fetches and handles records until ctx ends or the claim is fenced.
func (w *claimState) loop(ctx context.Context) {
	// kafka-go's generation context is not one of the context package's
	// own types, so every context derived from it directly starts a
	// goroutine that waits for either to end. Derive one here, once; the
	// per-fetch deadlines below then cost no goroutine (one per fetch was
	// 30% of `atlas run all`'s CPU samples in make bench).
	ctx, cancelLoop := context.WithCancel(ctx)
	defer cancelLoop()
	retry := newBackoff(100*time.Millisecond, 5*time.Second)
	var fetch fetchContext
	defer fetch.stop()
	for ctx.Err() == nil && !w.fenced {
		deadline := w.lastFlush.Add(w.r.cfg.FlushInterval)
		if w.uncommitted == 0 && time.Now().After(deadline) {
			// Nothing to make durable: wait a whole interval for the next
			// record. With the expired deadline the fetch returned at once,
			// and every idle partition spun its goroutine at full speed: in
			// make bench, atlas run all (43 claims, most of them idle while
			// the re-key topic and the slower roles caught up) drained
			// 100k preloaded events at 2.3k events/s.
			w.lastFlush = time.Now()
			deadline = w.lastFlush.Add(w.r.cfg.FlushInterval)
		}
		msg, err := w.reader.FetchMessage(fetch.until(ctx, deadline))
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				w.log.Warn("cannot fetch; retrying", "err", err)
				if !retry.wait(ctx) {
					return
				}
			}
		} else {
			retry.reset()
			w.handle(ctx, msg)
		}
		if w.uncommitted > 0 && (time.Now().After(deadline) || w.uncommitted >= w.r.cfg.MaxUncommitted ||
			len(w.deadLetters) >= maxPendingDeadLetters) {
			if err := w.checkpoint(ctx); err != nil && ctx.Err() == nil && !w.fenced {
				w.log.Warn("checkpoint failed", "err", err)
			}
		}
	}
}

// fetchContext is the context of a claim's fetches: one per flush
// deadline, reused by every fetch until the deadline moves. A context (and
// its timer) per fetch was 7% of `atlas run all`'s CPU samples in make
// bench.
type fetchContext struct {
	ctx      context.Context
	deadline time.Time
	cancel   context.CancelFunc
}

// until returns a context that ends at deadline or with parent.
func (f *fetchContext) until(parent context.Context, deadline time.Time) context.Context {
	if f.ctx == nil || !deadline.Equal(f.deadline) {
		f.stop()
		f.ctx, f.cancel = context.WithDeadline(parent, deadline)
		f.deadline = deadline
	}
	return f.ctx
}

func (f *fetchContext) stop() {
	if f.cancel != nil {
		f.cancel()
	}
}

// handle decodes, validates and processes one record; anything that fails
// becomes a dead letter and processing continues.
func (w *claimState) handle(ctx context.Context, msg kafka.Message) {
	w.handleRecord(ctx, msg)
	// Only now: a lag of 0 says that every record up to the high watermark
	// was handled. Set before, it read 0 while the last record of a replay
	// was still being processed, and a restarted anomaly stage two
	// rebuilds its detectors then, for seconds: alerts sent right after
	// "caught up" waited up to 3.6 s (e2e latency test, after a restart).
	if msg.HighWaterMark > 0 {
		w.lag.Set(float64(msg.HighWaterMark - msg.Offset - 1))
	}
}

func (w *claimState) handleRecord(ctx context.Context, msg kafka.Message) {
	start := time.Now()
	replay := w.claim.Processed >= 0 && msg.Offset < w.claim.Processed
	w.next = msg.Offset + 1
	w.uncommitted++
	rec, err := w.dec.Decode(header(msg, schemas.HeaderSchema), msg.Value)
	if err != nil {
		w.deadLetter(msg, "decode", err, replay)
		return
	}
	// Validate against the record's Kafka timestamp, not the wall clock, so
	// that a replay next week judges the skew exactly as today.
	if err := schemas.Validate(rec, w.r.cfg.Limits, msg.Time); err != nil {
		w.deadLetter(msg, "validate", err, replay)
		return
	}
	w.rec = stream.Record{Topic: msg.Topic, Partition: msg.Partition, Offset: msg.Offset, Key: msg.Key, Value: rec, Replay: replay}
	if err := w.process(ctx, &w.rec); err != nil {
		w.deadLetter(msg, "process", err, replay)
		return
	}
	w.events.Inc()
	w.r.metrics.process.Observe(time.Since(start).Seconds())
}

// process calls the processor, turning a panic into an error that names
// the partition and offset.
func (w *claimState) process(ctx context.Context, r *stream.Record) (err error) {
	defer func() {
		if p := recover(); p != nil {
			w.r.metrics.panics.WithLabelValues(r.Topic).Inc()
			w.log.Error("processor panicked; record sent to the dead-letter topic", "offset", r.Offset,
				"panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("processor panic at %s/%d@%d: %v", r.Topic, r.Partition, r.Offset, p)
		}
	}()
	return w.proc.Process(ctx, r)
}

func (w *claimState) deadLetter(msg kafka.Message, stage string, cause error, replay bool) {
	if replay {
		return // written before the last commit
	}
	field := ""
	var ve *schemas.ValidationError
	var de *schemas.DecodeError
	switch {
	case errors.As(cause, &ve):
		field = ve.Field
	case errors.As(cause, &de):
		field = de.Field
	}
	w.log.Debug("dead letter", "offset", msg.Offset, "stage", stage, "err", cause)
	headers := append([]kafka.Header(nil), msg.Headers...)
	headers = append(headers,
		kafka.Header{Key: HeaderDLQTopic, Value: []byte(msg.Topic)},
		kafka.Header{Key: HeaderDLQPartition, Value: []byte(strconv.Itoa(msg.Partition))},
		kafka.Header{Key: HeaderDLQOffset, Value: []byte(strconv.FormatInt(msg.Offset, 10))},
		kafka.Header{Key: HeaderDLQStage, Value: []byte(stage)},
		kafka.Header{Key: HeaderDLQField, Value: []byte(field)},
		kafka.Header{Key: HeaderDLQError, Value: []byte(cause.Error())},
		kafka.Header{Key: HeaderDLQRole, Value: []byte(w.r.cfg.Role)},
	)
	w.deadLetters = append(w.deadLetters, kafka.Message{Key: msg.Key, Value: msg.Value, Headers: headers})
	w.r.metrics.deadLetters.WithLabelValues(msg.Topic, stage).Inc()
}

// checkpoint: processor outputs durable → dead letters acknowledged →
// commit. Each step is retried with backoff while ctx allows; nothing is
// committed unless every step before it succeeded.
func (w *claimState) checkpoint(ctx context.Context) error {
	start := time.Now()
	fail := w.r.cfg.Failpoint
	if fail == nil {
		fail = func(string) {}
	}
	retry := newBackoff(100*time.Millisecond, 5*time.Second)

	if w.r.cfg.UnsafeCommitFirst {
		// Negative control (see Config.UnsafeCommitFirst): commit what was
		// fetched before anything derived from it is durable.
		if err := w.r.commit(ctx, w.gen, w.claim.Topic, w.claim.Partition, w.next,
			commitMeta{Processed: max(w.next, w.claim.Processed), Processor: w.lastMeta}); err != nil {
			return err
		}
	}
	fail("before-checkpoint")
	var cp stream.Checkpoint
	for {
		var err error
		if cp, err = w.proc.Checkpoint(ctx); err == nil {
			break
		}
		w.log.Warn("cannot checkpoint processor; retrying (fetching paused)", "err", err)
		if !retry.wait(ctx) {
			return fmt.Errorf("cannot checkpoint %s/%d: %w", w.claim.Topic, w.claim.Partition, err)
		}
	}
	fail("before-dlq")
	retry.reset()
	for len(w.deadLetters) > 0 {
		err := w.r.dlq.WriteMessages(ctx, w.deadLetters...)
		if err == nil {
			clear(w.deadLetters)
			w.deadLetters = w.deadLetters[:0]
			break
		}
		w.log.Warn("cannot write dead letters; retrying", "count", len(w.deadLetters), "err", err)
		if !retry.wait(ctx) {
			return fmt.Errorf("cannot write dead letters of %s/%d: %w", w.claim.Topic, w.claim.Partition, err)
		}
	}
	offset := cp.Offset
	if offset < 0 || offset > w.next {
		offset = w.next
	}
	// A checkpoint in the middle of a replay must not forget how far the
	// log was processed before the restart: records up to there keep their
	// one-off side effects written.
	processed := max(w.next, w.claim.Processed)
	fail("before-commit")
	retry.reset()
	for {
		err := w.r.commit(ctx, w.gen, w.claim.Topic, w.claim.Partition, offset,
			commitMeta{Processed: processed, Processor: cp.Metadata})
		if err == nil {
			break
		}
		if errors.Is(err, ErrFenced) {
			w.fenced = true
			w.r.metrics.commits.WithLabelValues("fenced").Inc()
			w.log.Warn("commit refused for a stale generation: another member owns this partition now", "err", err)
			return err
		}
		w.r.metrics.commits.WithLabelValues("error").Inc()
		w.log.Warn("cannot commit; retrying", "err", err)
		if !retry.wait(ctx) {
			return err
		}
	}
	fail("after-commit")
	w.lastMeta = cp.Metadata
	w.r.metrics.commits.WithLabelValues("ok").Inc()
	w.r.metrics.checkpoint.Observe(time.Since(start).Seconds())
	w.uncommitted = 0
	w.lastFlush = time.Now()
	return nil
}

func header(msg kafka.Message, key string) string {
	for _, h := range msg.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
