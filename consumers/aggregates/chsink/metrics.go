package chsink

import "github.com/prometheus/client_golang/prometheus"

// metrics of one Writer. Without a Registerer they are still updated, and
// simply not exported.
type metrics struct {
	rows         *prometheus.CounterVec // table
	inserts      *prometheus.CounterVec // table
	flushes      *prometheus.CounterVec // result: ok, error
	flushSeconds prometheus.Histogram
	pending      prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "atlas_chsink_rows_total",
			Help: "Rows inserted into ClickHouse, by table."}, []string{"table"}),
		inserts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "atlas_chsink_inserts_total",
			Help: "INSERT statements that succeeded, by table."}, []string{"table"}),
		flushes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "atlas_chsink_flushes_total",
			Help: "Flushes by result (ok, error); a failed flush fails every Write it held."}, []string{"result"}),
		flushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "atlas_chsink_flush_seconds",
			Help: "Time to insert one flush, all tables.", Buckets: prometheus.ExponentialBuckets(1e-3, 2, 14)}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "atlas_chsink_pending_rows",
			Help: "Rows accepted by Write and not yet inserted or failed."}),
	}
	for _, result := range []string{"ok", "error"} {
		m.flushes.WithLabelValues(result)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.rows, m.inserts, m.flushes, m.flushSeconds, m.pending} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
