package anomaly

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/atlas-stream/atlas/consumers/stream"
	"github.com/atlas-stream/atlas/schemas"
)

// Rekeyer carries stage one's re-keyed records to the re-key topic. Each
// claimed input partition gets its own (see Config.Rekeyer).
type Rekeyer interface {
	// Send queues rec for the re-key topic under key, in the partition of
	// the key's subject (see [SubjectOf] and [PartitionOf]), after
	// everything sent before. It may block while too much is
	// unacknowledged, until ctx ends; a record it then could not queue
	// makes every later Flush fail, so that nothing past it is committed.
	// It does not retain key.
	Send(ctx context.Context, key []byte, rec schemas.Record)
	// Flush returns once every record sent so far is durable, or an error
	// when they are not (the caller then does not commit). A record that
	// could not be written must never be written after records sent
	// after it: stage two would drop it behind a later mark.
	Flush(ctx context.Context) error
	// Close releases the claim's resources.
	Close() error
}

// Outbox publishes the alerts of one claimed re-key partition.
type Outbox interface {
	// Publish starts writing a to the alert topic now; it does not wait
	// and does not retain a after Flush.
	Publish(a *schemas.Alert)
	// Flush returns once every alert published so far is on the alert topic
	// and in ClickHouse, or an error.
	Flush(ctx context.Context) error
	// Close releases the claim's resources.
	Close() error
}

// Config configures the anomaly role's processors. Zero fields take the
// documented defaults.
type Config struct {
	// PlaybackTopic, BrowseTopic and RekeyTopic are names on the cluster.
	// Records of the first two are re-keyed into the third (stage one);
	// records of the third are judged (stage two). Required.
	PlaybackTopic, BrowseTopic, RekeyTopic string
	// Partitions of the playback and browse topics; the re-key topic has as
	// many. Required: stage two waits for every input partition.
	Partitions int
	// Lateness is how far behind the newest event time of its input
	// partition an event may be and still be judged at its own time, in
	// event-time order with the others; an older one is counted and
	// judged at the newest event time minus the lateness (the source's
	// mark). It is also how far stage two's clock lags behind the inputs,
	// so it bounds the latency of the alerts the clock fires from below
	// (not stuffing's, mostly: see [Ahead]). Default none: events are
	// judged in the order of their partitions, late ones at the mark.
	// (A default of 2 s held every alert back 2 s: event → alert p99
	// 2.3 s at half load, against 0.3 s without.)
	Lateness time.Duration
	// Horizon: an event more than this behind the newest event time of its
	// input partition is counted and not judged at all: judged at the
	// mark, an event minutes old would pass for a current one. (The
	// aggregates still count it, in its own window.) Default 1 min; at
	// least Lateness. Measured: with the simulator's defaults (5% of
	// heartbeats out of order by up to a minute, 1% late by 1–3 min),
	// eval anomaly seeds 1–3 give the same table with the horizon at 2 s
	// or 1 min; in the e2e kill test's run, the slowest quality detection
	// is 1m43s with both at 2 s, and 1m54s with the defaults.
	Horizon time.Duration
	// IdleAfter: an input partition that stage two has heard nothing from
	// (no record, no mark) for this long on the wall clock is not waited
	// for, so that an input partition without traffic cannot stop the
	// role. Records it sends later that are behind the clock are dropped.
	// It must exceed the longest pause of a working stage one — a
	// rebalance, a restart — or results stop being exact. (Event time
	// cannot tell idle from slow: while a member catches up, the browse
	// partitions, with fewer records per minute, run hours ahead.)
	// Default 2 m.
	IdleAfter time.Duration
	// Now is the wall clock, for IdleAfter only. Default time.Now.
	Now func() time.Time
	// MaxBuffered bounds the records stage two holds back per partition
	// while it waits for slower input partitions; past it, it stops
	// waiting (and is then no longer exact). Default 1,000,000.
	MaxBuffered int
	// ByClock makes stage two fire every incident when its clock reaches
	// the first active verdict, never ahead of it (see [Ahead]): the
	// firing alert then carries that verdict's numbers, whatever the
	// timing, at the cost of waiting for the slowest input partition.
	// Default false: credential stuffing fires as soon as it is certain.
	ByClock bool
	// Detectors returns a fresh set of detectors for one claim. Default:
	// Settings{}.Detectors.
	Detectors func() []Detector
	// Locate places client networks. Default: nothing is placed (travel
	// and the place-based parts of sharing then see nothing).
	Locate Locator
	// Rekeyer and Outbox give a claim its outputs. Required.
	Rekeyer func(c stream.Claim) (Rekeyer, error)
	Outbox  func(c stream.Claim) (Outbox, error)
	// Registerer receives the role's metrics; nil exports none.
	Registerer prometheus.Registerer
}

// Validate reports a configuration that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.PlaybackTopic == "" || c.BrowseTopic == "" || c.RekeyTopic == "":
		return errors.New("anomaly: PlaybackTopic, BrowseTopic and RekeyTopic are required")
	case c.Partitions < 1 || c.Partitions > 1<<12:
		return fmt.Errorf("anomaly: Partitions must be between 1 and 4096, got %d", c.Partitions)
	case c.Horizon != 0 && c.Horizon < c.Lateness:
		return fmt.Errorf("anomaly: Horizon (%s) must be at least Lateness (%s)", c.Horizon, c.Lateness)
	case c.Lateness < 0 || c.Horizon < 0 || c.IdleAfter < 0 || c.MaxBuffered < 0:
		return errors.New("anomaly: Lateness, IdleAfter and MaxBuffered must not be negative")
	case c.Rekeyer == nil || c.Outbox == nil:
		return errors.New("anomaly: Rekeyer and Outbox are required")
	}
	return nil
}

func (c *Config) defaults() {
	if c.Horizon == 0 {
		c.Horizon = max(time.Minute, c.Lateness)
	}
	if c.IdleAfter == 0 {
		c.IdleAfter = 2 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MaxBuffered == 0 {
		c.MaxBuffered = 1_000_000
	}
	if c.Detectors == nil {
		c.Detectors = Settings{Locate: c.Locate}.Detectors
	}
}

// Settings configure the five detectors; zero fields take their defaults.
type Settings struct {
	Sharing  SharingConfig
	Travel   TravelConfig
	Bot      BotConfig
	Stuffing StuffingConfig
	Quality  QualityConfig
	// Locate places client networks (for the detectors that need places).
	Locate Locator
}

// Detectors returns a fresh instance of every detector.
func (s Settings) Detectors() []Detector {
	return []Detector{NewSharing(s.Sharing), NewTravel(s.Travel), NewBot(s.Bot), NewStuffing(s.Stuffing), NewQuality(s.Quality)}
}

// NewFactory returns the engine factory of the anomaly role: a stage-one
// [Forwarder] for each claimed playback or browse partition, a stage-two
// [Judge] for each claimed re-key partition.
func NewFactory(cfg Config) (stream.Factory, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	m := newMetrics(cfg.Registerer)
	return func(_ context.Context, c stream.Claim) (stream.Processor, error) {
		switch c.Topic {
		case cfg.PlaybackTopic, cfg.BrowseTopic:
			code := srcPlayback
			if c.Topic == cfg.BrowseTopic {
				code = srcBrowse
			}
			r, err := cfg.Rekeyer(c)
			if err != nil {
				return nil, fmt.Errorf("cannot open the re-key output of %s/%d: %w", c.Topic, c.Partition, err)
			}
			return newForwarder(&cfg, m, c, code, r)
		case cfg.RekeyTopic:
			o, err := cfg.Outbox(c)
			if err != nil {
				return nil, fmt.Errorf("cannot open the alert output of %s/%d: %w", c.Topic, c.Partition, err)
			}
			return newJudge(&cfg, m, c, o)
		}
		return nil, fmt.Errorf("anomaly: cannot process topic %s: not an input of the role", c.Topic)
	}, nil
}

type metrics struct {
	forwarded  *prometheus.CounterVec // view
	late       *prometheus.CounterVec
	duplicates prometheus.Counter
	staleJudge prometheus.Counter
	buffered   *prometheus.GaugeVec // partition
	idle       *prometheus.GaugeVec // partition
	forced     prometheus.Counter
	alerts     *prometheus.CounterVec // kind, status
	ahead      *prometheus.CounterVec // kind
	subjects   *prometheus.GaugeVec   // kind
	stateBytes *prometheus.GaugeVec   // kind
	lag        *prometheus.GaugeVec   // partition: event time of stage two behind its newest input
	dropped    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "atlas_anomaly_forwarded_total",
			Help: "Records re-keyed into a view by stage one."}, []string{"view"}),
		late: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "atlas_anomaly_late_events_total",
			Help: "Events more than the lateness behind their input partition: judged at its mark (at_mark), or, beyond the horizon, not judged (dropped)."},
			[]string{"outcome"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "atlas_anomaly_duplicate_events_total",
			Help: "Events whose id was just seen in their input partition, not judged twice."}),
		staleJudge: prometheus.NewCounter(prometheus.CounterOpts{Name: "atlas_anomaly_rekeyed_dropped_total",
			Help: "Re-keyed records dropped by stage two: sent again after a stage-one restart, or behind its clock."}),
		buffered: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "atlas_anomaly_buffered_records",
			Help: "Records stage two holds back until every input partition has passed them."}, []string{"partition"}),
		idle: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "atlas_anomaly_idle_inputs",
			Help: "Input partitions stage two does not wait for: nothing heard from them for IdleAfter."}, []string{"partition"}),
		forced: prometheus.NewCounter(prometheus.CounterOpts{Name: "atlas_anomaly_forced_total",
			Help: "Records judged before every input partition passed them, because the buffer was full."}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "atlas_anomaly_alerts_total",
			Help: "Alerts published, by kind and status (replays included)."}, []string{"kind", "status"}),
		ahead: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "atlas_anomaly_fired_ahead_total",
			Help: "Incidents fired by stage two before its clock reached them, because records buffered ahead of it made them certain."}, []string{"kind"}),
		subjects: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "atlas_anomaly_subjects",
			Help: "Subjects whose state a detector holds, summed over claims."}, []string{"kind"}),
		stateBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "atlas_anomaly_state_bytes",
			Help: "Estimated bytes of detector state, summed over claims."}, []string{"kind"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "atlas_anomaly_clock_lag_seconds",
			Help: "Event time between stage two's clock and the newest input it has seen."}, []string{"partition"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "atlas_anomaly_incidents_not_checkpointed_total",
			Help: "Open incidents left out of the commit metadata for lack of room."}),
	}
	if reg != nil {
		reg.MustRegister(m.forwarded, m.late, m.duplicates, m.staleJudge, m.buffered, m.idle, m.forced, m.alerts, m.ahead,
			m.subjects, m.stateBytes, m.lag, m.dropped)
	}
	return m
}
