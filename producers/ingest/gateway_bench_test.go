package ingest

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/atlas-stream/atlas/schemas"
)

// nopSender acknowledges everything at once.
type nopSender struct{}

func (nopSender) SendSync(_ context.Context, recs []schemas.Record) []error {
	return make([]error, len(recs))
}

// BenchmarkGatewayBatchOf100 is the gateway's own CPU per request of 100
// events, without HTTP transport and without Kafka: verification, batch
// walking, decoding, stamping, validation and the answer.
func BenchmarkGatewayBatchOf100(b *testing.B) {
	for _, format := range []string{"msgpack", "json"} {
		b.Run(format, func(b *testing.B) {
			g, err := New(testConfig(), nopSender{})
			if err != nil {
				b.Fatal(err)
			}
			now := time.Now()
			recs := events("e", "s1", 100, now)
			var body []byte
			contentType := "application/" + format
			if format == "json" {
				body = mustBatchJSON(b, recs)
			} else {
				body = mustBatch(b, recs)
			}
			key := SessionKey(testSecret, "s1")
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/v1/events", bytes.NewReader(body))
				req.Header.Set("Content-Type", contentType)
				Sign(req, body, "s1", key, now, "")
				w := httptest.NewRecorder()
				g.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100, "ns/event")
		})
	}
}
