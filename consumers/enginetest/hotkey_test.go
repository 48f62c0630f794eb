package enginetest_test

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/atlas-stream/atlas/consumers/aggregates"
	"github.com/atlas-stream/atlas/consumers/anomaly"
	"github.com/atlas-stream/atlas/consumers/anomaly/evaluate"
	"github.com/atlas-stream/atlas/consumers/enginetest"
	"github.com/atlas-stream/atlas/schemas"
)

const (
	partitions = 6
	hotProfile = "pro-hot"
	pbTopic    = "playback"
	brTopic    = "browse"
)

// hotTraffic returns n events over about an hour of event time, 30 % of
// them from one profile (its own account, network and CDN cell, so that
// what it does to other subjects can be told apart), the rest from 2,000
// profiles of 500 accounts: plays (start, heartbeats, stop) and browse
// impressions, in event-time order. An account of six profiles streaming
// at once (more than any plan allows) is planted, so that other subjects
// have an alert to keep.
func hotTraffic(n int) []schemas.Record {
	rng := rand.New(rand.NewPCG(30, 70))
	base := int64(1_767_225_600_000) // 2026-01-01
	out := make([]schemas.Record, 0, n)
	for i := range n {
		t := base + int64(i)*3600_000/int64(n)
		profile, account, cdn, net := hotProfile, "acc-hot", "cdn-hot", "198.51.100.0/24#h0t"
		if i%10 >= 3 {
			k := rng.IntN(2000)
			profile, account = fmt.Sprintf("pro-%d", k), fmt.Sprintf("acc-%d", k/4)
			cdn, net = "cdn-a", fmt.Sprintf("10.%d.%d.0/24#c01d", k%50, k/50)
		}
		env := schemas.Envelope{EventID: fmt.Sprintf("ev-%d", i), EventTime: t, ReceiveTime: t + 50, AccountID: account,
			ProfileID: profile, DeviceID: "dev-" + profile, SessionID: "ses-" + profile, ClientNet: net,
			Country: "DE", DeviceType: schemas.DeviceTV}
		title := fmt.Sprintf("tt-%d", rng.IntN(50))
		switch r := rng.IntN(10); {
		case r < 3:
			out = append(out, &schemas.Browse{Envelope: env, Kind: schemas.BrowseImpression, TitleID: title, Row: "trending", DwellMs: int64(200 + rng.IntN(3000))})
		case r < 4:
			out = append(out, &schemas.Playback{Envelope: env, Kind: schemas.PlayStart, TitleID: title, DurationMs: 3_600_000, CDN: cdn, ISP: "isp-b"})
		case r < 5:
			out = append(out, &schemas.Playback{Envelope: env, Kind: schemas.PlayStop, TitleID: title, PositionMs: 600_000, DurationMs: 3_600_000, CDN: cdn, ISP: "isp-b"})
		default:
			out = append(out, &schemas.Playback{Envelope: env, Kind: schemas.PlayHeartbeat, TitleID: title, PositionMs: 300_000,
				DurationMs: 3_600_000, BitrateKbps: 4300, WatchedMs: 30_000, CDN: cdn, ISP: "isp-b"})
		}
	}
	for k := range 6 {
		profile := fmt.Sprintf("pro-shared-%d", k)
		for t := base + 20*60_000; t <= base+30*60_000; t += 30_000 {
			kind := schemas.PlayHeartbeat
			switch t {
			case base + 20*60_000:
				kind = schemas.PlayStart
			case base + 30*60_000:
				kind = schemas.PlayStop
			}
			out = append(out, &schemas.Playback{Envelope: schemas.Envelope{EventID: fmt.Sprintf("ev-%s-%d", profile, t), EventTime: t,
				ReceiveTime: t + 50, AccountID: "acc-shared", ProfileID: profile, DeviceID: "dev-" + profile, SessionID: "ses-" + profile,
				ClientNet: fmt.Sprintf("10.200.%d.0/24#5ha4", k), Country: "DE", DeviceType: schemas.DeviceTV},
				Kind: kind, TitleID: "tt-7", PositionMs: t - base - 20*60_000, DurationMs: 3_600_000, CDN: "cdn-a", ISP: "isp-b"})
		}
	}
	slices.SortStableFunc(out, func(a, b schemas.Record) int {
		return cmp.Compare(envOf(a).EventTime, envOf(b).EventTime)
	})
	return out
}

func envOf(r schemas.Record) *schemas.Envelope {
	if b, ok := r.(*schemas.Browse); ok {
		return &b.Envelope
	}
	return &r.(*schemas.Playback).Envelope
}

func topicOf(r schemas.Record) string {
	if _, ok := r.(*schemas.Browse); ok {
		return brTopic
	}
	return pbTopic
}

// startSink sums the starts of the playback rows it is given, keeping the
// highest version of each row as ClickHouse's ReplacingMergeTree does.
type startSink struct {
	rows map[string]aggregates.PlaybackRow
}

func (s *startSink) Write(_ context.Context, b *aggregates.Batch) error {
	for _, r := range b.Playback {
		k := fmt.Sprint(r.WindowStart, r.TitleID, r.Country, r.DeviceType, r.Source.Topic, r.Source.Partition)
		if old, ok := s.rows[k]; !ok || r.Source.Version >= old.Source.Version {
			s.rows[k] = r
		}
	}
	return nil
}

func (s *startSink) starts(partition int32) uint64 {
	var n uint64
	for _, r := range s.rows {
		if partition < 0 || r.Source.Partition == partition {
			n += r.Starts
		}
	}
	return n
}

// gauge reads one labelled value of a gauge from reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue metrics
				}
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s%v", name, labels)
	return 0
}

// One profile sending 30 % of all traffic: the aggregates of every other
// partition are complete before its partition is even processed (no
// partition waits for another), its own partition holds at most three
// one-minute windows at every checkpoint however many events the profile
// sends, and every start of every profile is counted once.
func TestAHotProfileKeepsTheAggregatesStateBoundedAndStallsNoOtherPartition(t *testing.T) {
	recs := hotTraffic(60_000)
	hot := anomaly.Murmur2Partition([]byte(hotProfile), partitions)
	logs := map[int][]schemas.Record{}
	wantStarts := map[int]uint64{}
	hotEvents := 0
	for _, r := range recs {
		p := anomaly.Murmur2Partition([]byte(r.Key()), partitions)
		logs[p] = append(logs[p], r)
		if pb, ok := r.(*schemas.Playback); ok && pb.Kind == schemas.PlayStart {
			wantStarts[p]++
		}
		if r.Key() == hotProfile {
			hotEvents++
		}
	}
	reg := prometheus.NewRegistry()
	sink := &startSink{rows: map[string]aggregates.PlaybackRow{}}
	f, err := aggregates.NewFactory(aggregates.Config{Sink: sink, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	h := enginetest.New(f)
	// run processes a partition's log in slices of 500 records per topic,
	// checkpointing after each as the engine would, and returns the most
	// windows any checkpoint left open.
	run := func(p int) int {
		most := 0
		for i := 0; i < len(logs[p]); i += 500 {
			for _, r := range logs[p][i:min(i+500, len(logs[p]))] {
				if err := h.Feed(topicOf(r), p, r); err != nil {
					t.Fatal(err)
				}
			}
			for _, topic := range []string{pbTopic, brTopic} {
				if _, err := h.Checkpoint(topic, p); err != nil {
					t.Fatal(err)
				}
				open := gauge(t, reg, "atlas_aggregates_open_windows", map[string]string{"topic": topic, "partition": fmt.Sprint(p)})
				most = max(most, int(open))
			}
		}
		return most
	}
	for p := range partitions {
		if p == hot {
			continue
		}
		run(p)
		if got := sink.starts(int32(p)); got != wantStarts[p] {
			t.Fatalf("partition %d: %d starts written, want %d, while the hot partition has not been processed at all", p, got, wantStarts[p])
		}
	}
	most := run(hot)
	if most > 3 {
		t.Fatalf("the hot partition held %d open windows at a checkpoint; want at most 3 (one-minute windows, 15 s lateness + grace)", most)
	}
	var total uint64
	for _, n := range wantStarts {
		total += n
	}
	if got := sink.starts(-1); got != total {
		t.Fatalf("%d starts written, want %d", got, total)
	}
	t.Logf("%d events, %d (%.0f %%) from %s in partition %d (%d of its %d records); other partitions complete before it ran; at most %d open windows in it; %d starts counted once",
		len(recs), hotEvents, 100*float64(hotEvents)/float64(len(recs)), hotProfile, hot, hotEvents, len(logs[hot]), most, total)
}

// One profile sending 30 % of all traffic: the anomaly detectors' state
// for its account, network and cell is capped per subject (rings, session
// and stay limits), so it costs a few kilobytes rather than growing with
// its 18,000 events; and the alerts about every other subject are exactly
// those of a run without it.
func TestAHotProfileKeepsTheAnomalyStateBoundedAndChangesNoOtherSubjectsAlerts(t *testing.T) {
	recs := hotTraffic(60_000)
	run := func(skipHot bool) (map[string][2]int, []schemas.Alert) {
		p, err := anomaly.NewPipeline(evaluate.OfflineConfig(partitions))
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range recs {
			if skipHot && r.Key() == hotProfile {
				continue
			}
			if err := p.Add(anomaly.Murmur2Partition([]byte(r.Key()), partitions), r); err != nil {
				t.Fatal(err)
			}
			if i%5000 == 4999 {
				if err := p.Drain(); err != nil {
					t.Fatal(err)
				}
				p.Compact(false)
			}
		}
		if err := p.Drain(); err != nil {
			t.Fatal(err)
		}
		return p.StateSize(), anomaly.Dedup(p.Alerts())
	}
	withHot, alertsWith := run(false)
	without, alertsWithout := run(true)
	var bytesWith, bytesWithout int
	for name, v := range withHot {
		w := without[name]
		bytesWith += v[1]
		bytesWithout += w[1]
		t.Logf("%-10s with the hot profile: %5d subjects, %8d bytes; without: %5d subjects, %8d bytes", name, v[0], v[1], w[0], w[1])
		if v[0]-w[0] > 3 {
			t.Errorf("%s: the hot profile added %d subjects; it has one account, one network and one cell", name, v[0]-w[0])
		}
	}
	if extra := bytesWith - bytesWithout; extra > 64<<10 {
		t.Fatalf("the hot profile's 18,000 events cost the detectors %d bytes of state; want at most 64 KiB (state is capped per subject)", extra)
	}
	others := func(alerts []schemas.Alert) []string {
		var out []string
		for _, a := range alerts {
			if a.Subject == "account:acc-hot" || strings.HasPrefix(a.Subject, "net:198.51.100.") || strings.HasPrefix(a.Subject, "cdn:cdn-hot") {
				continue
			}
			out = append(out, fmt.Sprint(a.ID, a.Status, a.Severity))
		}
		slices.Sort(out)
		return out
	}
	a, b := others(alertsWith), others(alertsWithout)
	if len(a) == 0 {
		t.Fatal("no alert about other subjects: the planted sharing was not detected, so the comparison proves nothing")
	}
	if !slices.Equal(a, b) {
		t.Fatalf("the hot profile changed the alerts about other subjects: %d with it, %d without", len(a), len(b))
	}
	var hotAlerts []string
	for _, al := range alertsWith {
		if al.Subject == "account:acc-hot" || strings.HasPrefix(al.Subject, "net:198.51.100.") || strings.HasPrefix(al.Subject, "cdn:cdn-hot") {
			hotAlerts = append(hotAlerts, al.Kind+" "+string(al.Status)+" "+al.Subject)
		}
	}
	t.Logf("state: %d bytes with the hot profile, %d without (+%d); %d alerts about other subjects, identical in both runs; about the hot profile's subjects: %v",
		bytesWith, bytesWithout, bytesWith-bytesWithout, len(a), hotAlerts)
}
