//go:build integration

package ingest_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/atlas-stream/atlas/internal/kafkaconn"
	"github.com/atlas-stream/atlas/producers/ingest/internal/loadtest"
)

// rig is started by the first benchmark that needs it and closed by
// TestMain, so that -count repetitions do not each create topics.
var (
	rigOnce sync.Once
	rig     *loadtest.Rig
	rigErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if rig != nil {
		rig.Close()
	}
	os.Exit(code)
}

func benchRig(b *testing.B) *loadtest.Rig {
	b.Helper()
	rigOnce.Do(func() {
		v := os.Getenv("ATLAS_KAFKA_BROKERS")
		if v == "" {
			rigErr = fmt.Errorf("ATLAS_KAFKA_BROKERS is not set: this benchmark needs a real Kafka broker; start one with `scripts/kafka.sh start` and run `eval \"$(scripts/kafka.sh env)\"`")
			return
		}
		rig, rigErr = loadtest.Start(context.Background(), loadtest.Options{Brokers: kafkaconn.ParseBrokers(v)})
	})
	if rigErr != nil {
		b.Fatal(rigErr)
	}
	return rig
}

// BenchmarkIngest compares the gateway over loopback (signed msgpack
// batches of 100, answered after Kafka's acks) with the raw kafka-go
// Writer (pre-encoded batches of 100), at 16 clients (both sides wait on
// linger and acks, as in service) and 64 (the CPUs are the limit). One op
// is one batch; events/s and the p50/p99 latency of a batch are reported.
// For the two sides interleaved and compared in one table, run
// `go run ./producers/ingest/bench` (scripts/bench-ingest.sh).
func BenchmarkIngest(b *testing.B) {
	r := benchRig(b)
	for _, clients := range []int{16, 64} {
		for _, side := range []loadtest.Side{r.Raw, r.Gateway} {
			name := "raw"
			if side.Name == r.Gateway.Name {
				name = "gateway"
			}
			b.Run(fmt.Sprintf("%s/clients=%d", name, clients), func(b *testing.B) {
				b.SetBytes(int64(r.EventBytes * r.Options.Batch))
				res := side.RunN(context.Background(), clients, b.N)
				if res.Errors > 0 {
					b.Fatalf("%d batches failed, first: %s", res.Errors, res.FirstErr)
				}
				b.ReportMetric(res.Rate(), "events/s")
				b.ReportMetric(float64(res.Percentile(.5).Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(res.Percentile(.99).Microseconds())/1000, "p99-ms")
			})
		}
	}
}
