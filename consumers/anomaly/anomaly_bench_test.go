package anomaly_test

import (
	"context"
	"runtime"
	"strconv"
	"testing"

	"github.com/atlas-stream/atlas/consumers/anomaly"
	"github.com/atlas-stream/atlas/consumers/anomaly/evaluate"
	"github.com/atlas-stream/atlas/producers/sim"
	"github.com/atlas-stream/atlas/schemas"
)

// BenchmarkStateBytesPerAccount feeds a million accounts through the
// detectors of the account view (sharing, impossible travel, bot), each
// account with one playback session (start, three heartbeats, stop) and a
// row of eight impressions, all within the look-back so that nothing is
// forgotten, and reports the heap the detectors then hold per account
// (measured after a GC) beside their own estimate.
func BenchmarkStateBytesPerAccount(b *testing.B) {
	const accounts = 1_000_000
	locate := evaluate.GeoLocator()
	for range b.N {
		var dets []anomaly.Detector
		for _, d := range (anomaly.Settings{Locate: locate}).Detectors() {
			if d.View() == anomaly.ViewAccount {
				dets = append(dets, d)
			}
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		t0 := int64(1_793_577_600_000)
		pb := &schemas.Playback{TitleID: "tt-00001", CDN: "cdn-a", ISP: "us-telco"}
		bw := &schemas.Browse{Kind: schemas.BrowseImpression, TitleID: "tt-00001", Row: "trending", DwellMs: 900}
		// Sessions start 3 ms apart: a million of them span 50 minutes.
		for i := 0; i < accounts; i++ {
			id := strconv.Itoa(i)
			env := schemas.Envelope{AccountID: "acc-" + id, ProfileID: "pro-" + id + "-1", DeviceID: "dev-" + id + "-1",
				SessionID: "ses-" + id, ClientNet: "9.0." + strconv.Itoa(i%256) + ".0/24#0123456789ab", Country: "US", DeviceType: schemas.DeviceTV}
			subject := "account:" + env.AccountID
			t := t0 + int64(i)*3
			feed := func(rec schemas.Record) {
				for _, d := range dets {
					e := anomaly.NewEvent(subject, rec, locate)
					d.Observe(&e)
				}
			}
			pb.Envelope, bw.Envelope = env, env
			for k, kind := range []schemas.PlaybackKind{schemas.PlayStart, schemas.PlayHeartbeat, schemas.PlayHeartbeat, schemas.PlayHeartbeat, schemas.PlayStop} {
				pb.Kind, pb.EventTime = kind, t+int64(k)
				feed(pb)
			}
			for k := 0; k < 8; k++ {
				bw.EventTime = t + 5 + int64(k)
				feed(bw)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		est := 0
		for _, d := range dets {
			_, n := d.Size()
			est += n
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/accounts, "heap-bytes/account")
		b.ReportMetric(float64(est)/accounts, "estimated-bytes/account")
		runtime.KeepAlive(dets)
	}
}

// BenchmarkRoleOffline runs both stages of the role in memory over a
// simulator run (incidents planted) and reports input events per second of
// one core.
func BenchmarkRoleOffline(b *testing.B) {
	cfg := sim.DefaultConfig()
	cfg.Seed, cfg.Events = 5, 200_000
	g, err := sim.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	var mem sim.Memory
	if _, err := g.Run(context.Background(), &mem); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		i := 0
		next := func() (schemas.Record, error) {
			for i < len(mem.Records) {
				r := mem.Records[i]
				i++
				if r.Schema() != schemas.SchemaCatalog {
					return r, nil
				}
			}
			return nil, errEOF
		}
		if _, _, err := evaluate.Run(context.Background(), evaluate.OfflineConfig(6), next); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cfg.Events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
