package engine

import "github.com/prometheus/client_golang/prometheus"

// metrics of one Runner; every series carries the role as a constant label.
type metrics struct {
	events      *prometheus.CounterVec // topic
	deadLetters *prometheus.CounterVec // topic, stage
	process     prometheus.Histogram   // seconds per record
	checkpoint  prometheus.Histogram   // seconds per checkpoint + commit
	commits     *prometheus.CounterVec // result
	restore     prometheus.Histogram   // seconds to build a claim's processor
	lag         *prometheus.GaugeVec   // topic, partition
	claims      prometheus.Gauge       // partitions owned
	panics      *prometheus.CounterVec // topic
}

func newMetrics(reg prometheus.Registerer, role string) *metrics {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "atlas_engine_events_total",
			Help: "Valid records processed."}, []string{"topic"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "atlas_engine_dead_letters_total",
			Help: "Records sent to the dead-letter topic, by stage (decode, validate, process)."}, []string{"topic", "stage"}),
		process: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "atlas_engine_process_seconds",
			Help: "Time to decode, validate and process one record.", Buckets: prometheus.ExponentialBuckets(1e-7, 4, 12)}),
		checkpoint: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "atlas_engine_checkpoint_seconds",
			Help: "Time to flush sinks, write dead letters and commit.", Buckets: prometheus.ExponentialBuckets(1e-4, 4, 10)}),
		commits: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "atlas_engine_commits_total",
			Help: "Offset commits by result (ok, fenced, error)."}, []string{"result"}),
		restore: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "atlas_engine_restore_seconds",
			Help: "Time to restore a claimed partition's state.", Buckets: prometheus.ExponentialBuckets(1e-3, 4, 10)}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "atlas_engine_lag_records",
			Help: "Records between the last fetched offset and the end of the partition."}, []string{"topic", "partition"}),
		claims: prometheus.NewGauge(prometheus.GaugeOpts{Name: "atlas_engine_claims",
			Help: "Partitions this member owns."}),
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "atlas_engine_processor_panics_total",
			Help: "Processor panics recovered at the partition boundary."}, []string{"topic"}),
	}
	if reg != nil {
		reg = prometheus.WrapRegistererWith(prometheus.Labels{"role": role}, reg)
		reg.MustRegister(m.events, m.deadLetters, m.process, m.checkpoint, m.commits, m.restore, m.lag, m.claims, m.panics)
	}
	return m
}
