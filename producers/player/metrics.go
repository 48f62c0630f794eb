package player

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/atlas-stream/atlas/schemas"
)

// Reasons of atlas_player_failed_records_total.
const (
	reasonInvalid    = "invalid"
	reasonBufferFull = "buffer_full"
	reasonClosed     = "closed"
	reasonKafka      = "kafka"
	reasonCanceled   = "canceled"
)

type metrics struct {
	queued  prometheus.Gauge
	sent    *prometheus.CounterVec
	failed  *prometheus.CounterVec
	batch   prometheus.Histogram
	latency prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		queued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "atlas_player_queued_records",
			Help: "Records accepted by Send or SendSync and not yet acknowledged or failed: the use of the bounded buffer.",
		}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atlas_player_sent_records_total",
			Help: "Records that Kafka acknowledged (acks=all), by schema.",
		}, []string{"schema"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atlas_player_failed_records_total",
			Help: "Records that were not sent, by schema and reason: invalid, buffer_full, closed, kafka (the write failed), canceled (the caller's context ended first).",
		}, []string{"schema", "reason"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "atlas_player_batch_records",
			Help:    "Records per produce request to one partition.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000},
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "atlas_player_send_latency_seconds",
			Help:    "Time from Send or SendSync to Kafka's acknowledgement of a record.",
			Buckets: []float64{.001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5, 10, 30},
		}),
	}
	var err error
	m.queued, err = register(reg, m.queued)
	if err != nil {
		return nil, err
	}
	if m.sent, err = register(reg, m.sent); err != nil {
		return nil, err
	}
	if m.failed, err = register(reg, m.failed); err != nil {
		return nil, err
	}
	if m.batch, err = register(reg, m.batch); err != nil {
		return nil, err
	}
	if m.latency, err = register(reg, m.latency); err != nil {
		return nil, err
	}
	// Every series exists from the start, so that dashboards show a zero
	// rather than no data.
	for _, s := range schemas.Schemas() {
		m.sent.WithLabelValues(string(s))
		for _, r := range []string{reasonInvalid, reasonBufferFull, reasonClosed, reasonKafka, reasonCanceled} {
			m.failed.WithLabelValues(string(s), r)
		}
	}
	return m, nil
}

// register registers c, or returns the collector already registered under
// the same descriptor: several Producers in one process (tests, a gateway
// and a simulator in `atlas run all`) then add to the same series instead of
// panicking on a duplicate registration.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("cannot register player metrics: %w", err)
}
