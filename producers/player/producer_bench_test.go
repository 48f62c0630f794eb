package player

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/atlas-stream/atlas/schemas"
)

// BenchmarkMessage is the Producer's own CPU per record before kafka-go:
// validation, encoding, routing; "validated" leaves out the validation, as
// for records the ingest gateway has validated (SendSyncValidated).
func BenchmarkMessage(b *testing.B) {
	for _, validated := range []bool{false, true} {
		name := "validating"
		if validated {
			name = "validated"
		}
		b.Run(name, func(b *testing.B) { benchmarkMessage(b, validated) })
	}
}

func benchmarkMessage(b *testing.B, validated bool) {
	p, err := New(unreachable(prometheus.NewRegistry()))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	rec := &schemas.Playback{
		Envelope: schemas.Envelope{EventID: "ev-1", EventTime: now.UnixMilli(), ReceiveTime: now.UnixMilli(), AccountID: "acc-1", ProfileID: "pro-1", DeviceID: "dev-1", SessionID: "ses-1", ClientNet: "203.0.113.0/24#5c1d0e6a3b2f", Country: "DE", DeviceType: schemas.DeviceTV, AppVersion: "5.12.0"},
		Kind:     schemas.PlayHeartbeat, TitleID: "title-1", PositionMs: 60_000, DurationMs: 5_400_000, BitrateKbps: 4800, BufferMs: 12_000, WatchedMs: 10_000, CDN: "cdn-a", ISP: "isp-b",
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := p.message(rec, now, validated); err != nil {
			b.Fatal(err)
		}
	}
}
