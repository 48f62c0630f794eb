package main

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/atlas-stream/atlas/producers/player"
	"github.com/atlas-stream/atlas/producers/sim"
	"github.com/atlas-stream/atlas/schemas"
	"github.com/atlas-stream/atlas/topology"
)

// level is row (f) at one load: background traffic at rate events/s,
// stamped with the wall clock, and two kinds of probes among it.
type level struct {
	frac, rate float64
	lateness   string // the anomaly role's ATLAS_ANOMALY_LATENESS; "" the default
	// queryable: per marker, send → its row is in ClickHouse.
	queryable []time.Duration
	markers   int
	// pastWindow counts markers that became queryable later than their
	// minute's end + 1 s (the target).
	pastWindow int
	// alert: per bot alert, send of the triggering impression → the alert
	// read from the alert topic. Stage one judges bots on arrival.
	alert []time.Duration
	bots  int
	// stuffing: the same per credential-stuffing alert, which takes the
	// re-key topic and stage two (waiting for every input partition).
	stuffing []time.Duration
	stuffers int
	// delivered is the background traffic's rate while the probes ran:
	// the records the generator handed to its Writer (whose calls return
	// once Kafka acknowledged them), short of rate when the machine cannot
	// take that much.
	delivered float64
}

// latency measures row (f): one `atlas run all` on a fresh stack, then for
// each fraction of the sustainable rate, background simulator traffic at
// that rate (event time = wall clock, so the roles' clocks move with it)
// for d, with
//
//   - markers: every 250 ms a playback start of a title of its own; the
//     time from writing it to its title's row being in playback_minute
//     (polled every 100 ms, so the figure is up to 100 ms late);
//   - bots (as e2e/anomaly_latency_test.go): every 400 ms an account
//     starts 60 impressions 200 ms apart; the 50th raises a bot alert whose
//     detection time is that impression's event time; the time from
//     writing it to reading the alert on the alert topic;
//   - credential stuffers: every 200 ms ten accounts browse from a network
//     of their own, 50 ms apart; the tenth raises a stuffing alert, timed
//     the same way. A hundred per load, so that the p99 is not simply
//     the slowest one (as it was of fifty).
//
// The last load is 50 % again with the anomaly role's lateness at 2 s
// (the default is none): what exact event-time order for events up to 2 s
// out of order costs, as stage two waits for the lateness before it
// judges.
func (b *bench) latency(ctx context.Context, sustainable float64, fracs []float64, d time.Duration) ([]level, error) {
	s, err := b.newStack("lat")
	if err != nil {
		return nil, err
	}
	defer s.cleanup()
	ops, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p, err := s.start("run", "all", "--ops-addr", ops)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := p.stop(time.Minute); err != nil {
			logf("latency: %v", err)
		}
	}()
	if err := waitReady(p, ops, 2*time.Minute); err != nil {
		return nil, err
	}
	var out []level
	type load struct {
		frac     float64
		lateness string
	}
	var loads []load
	for _, f := range fracs {
		loads = append(loads, load{f, ""})
	}
	loads = append(loads, load{0.5, "2s"})
	for _, ld := range loads {
		f := ld.frac
		if ld.lateness != "" {
			if err := p.stop(time.Minute); err != nil {
				return out, err
			}
			s.env = append(s.env, "ATLAS_ANOMALY_LATENESS="+ld.lateness)
			if p, err = s.start("run", "all", "--ops-addr", ops); err != nil {
				return out, err
			}
			if err := waitReady(p, ops, 2*time.Minute); err != nil {
				return out, err
			}
			// The restart replays the re-key topic to rebuild the
			// detectors; bots sent meanwhile would time the catch-up.
			if err := waitCaughtUp(p, ops, 2*time.Minute); err != nil {
				return out, err
			}
		}
		lv := level{frac: f, rate: f * sustainable, lateness: ld.lateness}
		logf("(f) %.0f%% of %.0f events/s = %.0f events/s for %s, with markers and bots (anomaly lateness %s)", 100*f, sustainable, lv.rate, d, cmp.Or(ld.lateness, "none, the default"))
		if err := s.probe(ctx, &lv, d); err != nil {
			return out, err
		}
		if done, err := p.exited(); done {
			return out, fmt.Errorf("atlas run all exited (%v) during the latency run:\n%s", err, p.tail(30))
		}
		out = append(out, lv)
	}
	return out, nil
}

func waitReady(p *proc, ops string, d time.Duration) error {
	c := http.Client{Timeout: time.Second}
	deadline := time.Now().Add(d)
	for {
		if res, err := c.Get("http://" + ops + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		if done, err := p.exited(); done {
			return fmt.Errorf("atlas run all exited (%v):\n%s", err, p.tail(30))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("atlas run all not ready after %s:\n%s", d, p.tail(30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitCaughtUp waits until the roles have handled every record their
// partitions held when they fetched them (the engine's lag gauge sums to 0
// once records were handled).
func waitCaughtUp(p *proc, ops string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for metric(ops, "atlas_engine_events_total") < 1 || metric(ops, "atlas_engine_lag_records") != 0 {
		if done, err := p.exited(); done {
			return fmt.Errorf("atlas run all exited (%v):\n%s", err, p.tail(30))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("atlas run all has not caught up after %s: lag %v records", d, metric(ops, "atlas_engine_lag_records"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// botImpressions and botTrigger: a bot sends botImpressions impressions
// botGap apart; the anomaly role's bot detector fires at the
// botTrigger-th (its default rate threshold).
const (
	botImpressions = 60
	botGap         = 200 * time.Millisecond
	botEvery       = 400 * time.Millisecond
	markerEvery    = 250 * time.Millisecond
	stuffersPerBot = 2
)

func (s *stack) probe(ctx context.Context, lv *level, d time.Duration) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Probes of every load need subjects and titles of their own: an
	// account that already raised a bot alert stays suppressed.
	run := fmt.Sprintf("%s-%02.0f%s", s.b.id, 100*lv.frac, strings.TrimSuffix(lv.lateness, "s"))
	brokers := s.b.kafka.BrokerList()
	transport, err := s.b.kafka.Transport()
	if err != nil {
		return err
	}

	// Alerts, read from the end of every partition of the alert topic.
	type arrival struct {
		a  schemas.Alert
		at time.Time
	}
	var mu sync.Mutex
	var arrivals []arrival
	client, err := s.b.kafka.Client()
	if err != nil {
		return err
	}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{s.topo.Name(topology.Alerts)}})
	if err != nil || len(md.Topics) != 1 {
		return fmt.Errorf("cannot read the partitions of the alert topic: %v", err)
	}
	dialer, err := s.b.kafka.Dialer()
	if err != nil {
		return err
	}
	var readers sync.WaitGroup
	for _, pt := range md.Topics[0].Partitions {
		// A long MaxWait, as in e2e/anomaly_latency_test.go: at 5 ms the
		// reader itself added up to 110 ms to the p99.
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Dialer: dialer, Topic: s.topo.Name(topology.Alerts), Partition: pt.ID,
			MinBytes: 1, MaxBytes: 1 << 20, MaxWait: time.Second})
		if err := r.SetOffset(kafka.LastOffset); err != nil {
			return err
		}
		readers.Add(1)
		go func() {
			defer readers.Done()
			defer r.Close()
			for {
				m, err := r.FetchMessage(ctx)
				if err != nil {
					return
				}
				at := time.Now()
				var a schemas.Alert
				if schemas.DecodeAlert(m.Value, &a) == nil {
					mu.Lock()
					arrivals = append(arrivals, arrival{a, at})
					mu.Unlock()
				}
			}
		}()
	}

	// Markers' rows, polled from ClickHouse.
	conn, err := s.reader()
	if err != nil {
		return err
	}
	defer conn.Close()
	seen := map[string]time.Time{}
	var poller sync.WaitGroup
	pctx, stopPolling := context.WithCancel(context.Background())
	poller.Add(1)
	go func() {
		defer poller.Done()
		q := fmt.Sprintf("SELECT DISTINCT title_id FROM playback_minute WHERE title_id LIKE 'bm-%s-%%'", run)
		for pctx.Err() == nil {
			rows, err := conn.Query(pctx, q)
			at := time.Now()
			if err == nil {
				for rows.Next() {
					var id string
					if rows.Scan(&id) == nil {
						mu.Lock()
						if _, ok := seen[id]; !ok {
							seen[id] = at
						}
						mu.Unlock()
					}
				}
				rows.Close()
			}
			select {
			case <-pctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	time.Sleep(time.Second) // the readers are at the end

	// Background traffic: the simulator's sessions, stamped with the wall
	// clock, until the probes are done, written as the ingest gateway's
	// producer would write them: a call per 10 ms linger. Calls of 50
	// records, before 2026-11-27, could not keep up: at 50 % of (b) they
	// delivered about 13k events/s of the 23k asked for (see
	// sim.LingerBatch), so "50 %" and "75 %" were both about 28 %.
	bgw := sim.NewKafkaWriter(brokers, transport)
	bgSink := &sim.Counter{Sink: sim.NewKafkaSink(bgw, s.topo, sim.LingerBatch(lv.rate, player.DefaultLinger))}
	defer bgw.Close()
	var bg sync.WaitGroup
	bg.Add(1)
	go func() {
		defer bg.Done()
		cfg := sim.DefaultConfig()
		cfg.Seed, cfg.Events = uint64(time.Now().UnixNano()), int64(lv.rate*(d+botImpressions*botGap+10*time.Second).Seconds())
		g, err := sim.New(cfg)
		if err != nil {
			logf("(f) background traffic: %v", err)
			return
		}
		if _, err := g.Run(ctx, &sim.Paced{Sink: sim.WallClock{Sink: bgSink}, Rate: lv.rate}); err != nil && ctx.Err() == nil {
			logf("(f) background traffic: %v", err)
		}
	}()

	headers := func(sc schemas.Schema) []kafka.Header {
		return []kafka.Header{{Key: schemas.HeaderSchema, Value: []byte(sc)}, {Key: schemas.HeaderContentType, Value: []byte(schemas.ContentType)}}
	}
	probeWriter := func(topic topology.Topic) *kafka.Writer {
		return &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: s.topo.Name(topic), Balancer: &kafka.Murmur2Balancer{},
			RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, Transport: transport}
	}
	bw, mw := probeWriter(topology.Browse), probeWriter(topology.Playback)
	defer bw.Close()
	defer mw.Close()
	envelopeFrom := func(acc, id, net string, now time.Time) schemas.Envelope {
		return schemas.Envelope{EventID: id, EventTime: now.UnixMilli(), ReceiveTime: now.UnixMilli(), AccountID: acc,
			ProfileID: acc + "-1", DeviceID: acc + "-d", SessionID: acc + "-s", ClientNet: net + "#000000000000",
			Country: "US", DeviceType: schemas.DeviceWeb}
	}

	sent := map[string]time.Time{}       // marker title → wall time it was written
	impressions := map[string][]sentAt{} // bot subject → its impressions, in order
	var probes sync.WaitGroup
	probes.Add(1)
	go func() { // markers
		defer probes.Done()
		for k := 0; time.Duration(k)*markerEvery < d+botImpressions*botGap; k++ {
			now := time.Now()
			title := fmt.Sprintf("bm-%s-%d", run, k)
			e := &schemas.Playback{Envelope: envelopeFrom("bm-"+run+fmt.Sprint(k), title, "9.1.2.0/24", now), Kind: schemas.PlayStart,
				TitleID: title, DurationMs: 3_600_000, CDN: "cdn-a", ISP: "us-telco"}
			v, _ := schemas.Marshal(e)
			mu.Lock()
			sent[title] = now
			mu.Unlock()
			if err := mw.WriteMessages(ctx, kafka.Message{Key: []byte(e.ProfileID), Value: v, Headers: headers(schemas.SchemaPlayback)}); err != nil {
				return
			}
			time.Sleep(time.Until(now.Add(markerEvery)))
		}
	}()
	// impress writes one impression of acc from net and notes it under
	// the subject of the alert it should raise.
	impress := func(subject, acc, id, net string, dwell int64) error {
		now := time.Now()
		e := &schemas.Browse{Envelope: envelopeFrom(acc, id, net, now), Kind: schemas.BrowseImpression,
			TitleID: "tt-00001", Row: "trending", DwellMs: dwell}
		v, _ := schemas.Marshal(e)
		mu.Lock()
		impressions[subject] = append(impressions[subject], sentAt{e.EventTime, now})
		mu.Unlock()
		return bw.WriteMessages(ctx, kafka.Message{Key: []byte(e.ProfileID), Value: v, Headers: headers(schemas.SchemaBrowse)})
	}
	// stuff runs credential stuffer i: ten accounts from a network of its
	// own, 50 ms apart.
	stuff := func(i int) {
		nets := stuffedNets.Add(1)
		net := fmt.Sprintf("10.%d.%d.0/24", nets/256%256, nets%256)
		for k := 0; k < 10; k++ {
			next := time.Now().Add(50 * time.Millisecond)
			acc := fmt.Sprintf("stuffed-%s-%d-%d", run, i, k)
			if impress("net:"+net, acc, acc, net, 800) != nil {
				return
			}
			time.Sleep(time.Until(next))
		}
	}
	n0, t0 := bgSink.Sent(), time.Now()
	nbots := int(d / botEvery)
	for i := 0; i < nbots && ctx.Err() == nil; i++ {
		probes.Add(2)
		go func(i int) { // one bot
			defer probes.Done()
			acc := fmt.Sprintf("bench-%s-%d", run, i)
			for k := 0; k < botImpressions; k++ {
				next := time.Now().Add(botGap)
				if impress("account:"+acc, acc, fmt.Sprintf("%s-%d", acc, k), "9.1.2.0/24", 0) != nil {
					return
				}
				time.Sleep(time.Until(next))
			}
		}(i)
		go func(i int) { // one credential stuffer
			defer probes.Done()
			stuff(i)
		}(i)
		probes.Add(1)
		go func(i int) { // and another, half a round later
			defer probes.Done()
			time.Sleep(botEvery / stuffersPerBot)
			stuff(nbots + i)
		}(i)
		time.Sleep(botEvery)
	}
	probes.Wait()
	lv.delivered = float64(bgSink.Sent()-n0) / time.Since(t0).Seconds()
	time.Sleep(5 * time.Second) // let the last alerts and rows arrive
	cancel()
	stopPolling()
	bg.Wait()
	readers.Wait()
	poller.Wait()

	mu.Lock()
	defer mu.Unlock()
	lv.bots, lv.stuffers = nbots, stuffersPerBot*nbots
	for _, x := range arrivals {
		imps, ok := impressions[x.a.Subject]
		if !ok || x.a.Status != schemas.AlertFiring {
			continue
		}
		at, ok := trigger(imps, x.a.DetectedAt)
		switch {
		case !ok:
		case x.a.Kind == "bot" && strings.HasPrefix(x.a.Subject, "account:bench-"+run+"-"):
			lv.alert = append(lv.alert, x.at.Sub(at))
		case x.a.Kind == "credential_stuffing":
			lv.stuffing = append(lv.stuffing, x.at.Sub(at))
		}
	}
	for title, at := range sent {
		if !strings.HasPrefix(title, "bm-") {
			continue
		}
		lv.markers++
		got, ok := seen[title]
		if !ok {
			lv.pastWindow++
			continue
		}
		lv.queryable = append(lv.queryable, got.Sub(at))
		windowEnd := at.Truncate(time.Minute).Add(time.Minute)
		if got.After(windowEnd.Add(time.Second)) {
			lv.pastWindow++
		}
	}
	slices.Sort(lv.alert)
	slices.Sort(lv.stuffing)
	slices.Sort(lv.queryable)
	return nil
}

// stuffedNets numbers the credential stuffers' networks across loads: an
// open incident on a network would not fire again.
var stuffedNets atomic.Int64

// sentAt is a probe's event time and the wall time it was written.
type sentAt struct {
	eventTime int64
	wall      time.Time
}

// trigger returns when the impression that raised an alert detected at
// detectedAt was written: the last of a bot's impressions (in the order
// sent) with an event time at or before it. The alert's time is the
// triggering impression's event time, or a little later when the anomaly
// role judged the impression late, at its partition's mark (a background
// event stamped after it reached the partition first).
func trigger(sent []sentAt, detectedAt int64) (time.Time, bool) {
	for i := len(sent) - 1; i >= 0; i-- {
		if sent[i].eventTime <= detectedAt {
			return sent[i].wall, true
		}
	}
	return time.Time{}, false
}

// quantile of sorted durations; 0 when there are none.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(q*float64(len(sorted)-1))]
}
