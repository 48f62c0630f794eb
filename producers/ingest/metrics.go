package ingest

import (
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

type gatewayMetrics struct {
	requests *prometheus.CounterVec
	accepted prometheus.Counter
	rejected prometheus.Counter
	duration prometheus.Histogram
	inFlight prometheus.Gauge

	mu       sync.Mutex
	byAnswer map[[2]string]prometheus.Counter
}

func newGatewayMetrics(reg prometheus.Registerer) (*gatewayMetrics, error) {
	events := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "atlas_ingest_events_total",
		Help: "Events of signed, well-formed batches, by status: accepted (acknowledged by Kafka) or rejected (invalid, with a reason in the answer).",
	}, []string{"status"})
	m := &gatewayMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atlas_ingest_requests_total",
			Help: "Answers to POST /v1/events by HTTP status and error code (ok for 200).",
		}, []string{"code", "error"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "atlas_ingest_request_duration_seconds",
			Help:    "Time to answer POST /v1/events, including the wait for Kafka's acknowledgements.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "atlas_ingest_requests_in_flight",
			Help: "POST /v1/events requests being handled.",
		}),
		byAnswer: make(map[[2]string]prometheus.Counter),
	}
	var err error
	if m.requests, err = register(reg, m.requests); err != nil {
		return nil, err
	}
	if events, err = register(reg, events); err != nil {
		return nil, err
	}
	if m.duration, err = register(reg, m.duration); err != nil {
		return nil, err
	}
	if m.inFlight, err = register(reg, m.inFlight); err != nil {
		return nil, err
	}
	m.accepted = events.WithLabelValues(StatusAccepted)
	m.rejected = events.WithLabelValues(StatusRejected)
	return m, nil
}

// request returns the counter of one answer, caching the few that exist.
func (m *gatewayMetrics) request(status int, code string) prometheus.Counter {
	k := [2]string{strconv.Itoa(status), code}
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.byAnswer[k]
	if !ok {
		c = m.requests.WithLabelValues(k[0], k[1])
		m.byAnswer[k] = c
	}
	return c
}

// register registers c, or returns the collector already registered under
// the same descriptor, so that several gateways in one process (tests)
// share series instead of panicking.
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
	return c, fmt.Errorf("cannot register ingest metrics: %w", err)
}
