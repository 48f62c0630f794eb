// Package evaluate measures the anomaly detectors against the incidents
// the simulator planted: per detector, precision (the share of its
// incidents — distinct firing alert ids — that match a planted incident),
// recall (the share of planted incidents matched by at least one of its
// alerts), duplicates (planted incidents matched by more than one id) and
// detection delay (event time from the planted start to the first matching
// alert). It also runs the whole role offline over a record stream, through
// the in-memory [anomaly.Pipeline], so that `atlas eval anomaly` measures
// exactly what `atlas run anomaly` would alert.
package evaluate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"time"

	"github.com/atlas-stream/atlas/consumers/anomaly"
	"github.com/atlas-stream/atlas/producers/sim"
	"github.com/atlas-stream/atlas/schemas"
	"github.com/atlas-stream/atlas/topology"
)

// Kinds lists the detectors in report order.
var Kinds = []string{anomaly.KindAccountSharing, anomaly.KindImpossibleTravel, anomaly.KindBot,
	anomaly.KindCredentialStuffing, anomaly.KindQuality}

// Slack is how long after a planted incident's end an alert still matches
// it: some detectors wait (impossible travel holds a jump for ten minutes).
const Slack = 30 * time.Minute

// KindScore is one detector's score.
type KindScore struct {
	Kind string
	// Planted incidents, and how many of them at least one alert matched.
	Planted, Detected int
	// Incidents the detector raised (distinct firing ids), and how many of
	// them matched a planted incident.
	Raised, Matched int
	// Duplicated counts planted incidents matched by more than one id.
	Duplicated int
	// Delays from each detected incident's start to its first matching
	// alert, sorted.
	Delays []time.Duration
	// Missed, Spurious and Split name what went wrong, for the report:
	// planted incidents without an alert, alerts without a planted
	// incident, and planted incidents with more than one alert id.
	Missed   []sim.Incident
	Spurious []schemas.Alert
	Split    []sim.Incident
}

// Precision is Matched / Raised (1 when nothing was raised).
func (k KindScore) Precision() float64 {
	if k.Raised == 0 {
		return 1
	}
	return float64(k.Matched) / float64(k.Raised)
}

// Recall is Detected / Planted (1 when nothing was planted).
func (k KindScore) Recall() float64 {
	if k.Planted == 0 {
		return 1
	}
	return float64(k.Detected) / float64(k.Planted)
}

// Delay returns the q-quantile of the delays (0 ≤ q ≤ 1), or -1 when
// nothing was detected.
func (k KindScore) Delay(q float64) time.Duration {
	if len(k.Delays) == 0 {
		return -1
	}
	i := int(q * float64(len(k.Delays)-1))
	return k.Delays[i]
}

// Report is the score of every detector.
type Report struct {
	Kinds []KindScore
}

// Kind returns the score of one detector.
func (r Report) Kind(kind string) KindScore {
	for _, k := range r.Kinds {
		if k.Kind == kind {
			return k
		}
	}
	return KindScore{Kind: kind}
}

// Add merges another run's report into r (for several seeds).
func (r *Report) Add(o Report) {
	for _, ok := range o.Kinds {
		found := false
		for i := range r.Kinds {
			k := &r.Kinds[i]
			if k.Kind != ok.Kind {
				continue
			}
			found = true
			k.Planted += ok.Planted
			k.Detected += ok.Detected
			k.Raised += ok.Raised
			k.Matched += ok.Matched
			k.Duplicated += ok.Duplicated
			k.Delays = append(k.Delays, ok.Delays...)
			slices.Sort(k.Delays)
			k.Missed = append(k.Missed, ok.Missed...)
			k.Spurious = append(k.Spurious, ok.Spurious...)
			k.Split = append(k.Split, ok.Split...)
		}
		if !found {
			r.Kinds = append(r.Kinds, ok)
		}
	}
}

// Score compares the firing alerts among alerts (copies with the same id
// count once) with the planted incidents.
func Score(incidents []sim.Incident, alerts []schemas.Alert) Report {
	firing, ids := FirstFiring(alerts)
	var r Report
	for _, kind := range Kinds {
		ks := KindScore{Kind: kind}
		matchedIDs := map[string]bool{}
		for _, inc := range incidents {
			if inc.Kind != kind {
				continue
			}
			ks.Planted++
			n := 0
			for _, id := range ids {
				a := firing[id]
				if matches(a, inc) {
					if n == 0 {
						ks.Delays = append(ks.Delays, time.Duration(a.DetectedAt-inc.Start)*time.Millisecond)
					}
					n++
					matchedIDs[id] = true
				}
			}
			if n > 0 {
				ks.Detected++
			} else {
				ks.Missed = append(ks.Missed, inc)
			}
			if n > 1 {
				ks.Duplicated++
				ks.Split = append(ks.Split, inc)
			}
		}
		for _, id := range ids {
			a := firing[id]
			if a.Kind != kind {
				continue
			}
			ks.Raised++
			if matchedIDs[id] {
				ks.Matched++
			} else {
				ks.Spurious = append(ks.Spurious, a)
			}
		}
		slices.Sort(ks.Delays)
		r.Kinds = append(r.Kinds, ks)
	}
	return r
}

func matches(a schemas.Alert, inc sim.Incident) bool {
	return a.Kind == inc.Kind && a.Subject == inc.Subject && a.DetectedAt >= inc.Start &&
		a.DetectedAt <= inc.End+Slack.Milliseconds()
}

// Run feeds records, in the order they were sent, through an in-memory
// anomaly role and returns every alert it published. Each record goes to
// the partition of its key among cfg.Partitions, as a Kafka producer would
// put it. next returns io.EOF at the end.
func Run(ctx context.Context, cfg anomaly.Config, next func() (schemas.Record, error)) ([]schemas.Alert, *anomaly.Pipeline, error) {
	p, err := anomaly.NewPipeline(cfg)
	if err != nil {
		return nil, nil, err
	}
	for n := 1; ; n++ {
		rec, err := next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		if err := p.Add(anomaly.Murmur2Partition([]byte(rec.Key()), cfg.Partitions), rec); err != nil {
			return nil, nil, err
		}
		if n%20_000 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, nil, err
			}
			if err := p.Drain(); err != nil {
				return nil, nil, err
			}
			p.Compact(false)
		}
	}
	if err := p.Drain(); err != nil {
		return nil, nil, err
	}
	return p.Alerts(), p, nil
}

// Simulate runs the simulator with scfg in memory, feeds its events
// through an in-memory anomaly role (Config.Partitions is set to the
// simulator's partitions) and returns the truth and the alerts.
func Simulate(ctx context.Context, scfg sim.Config, cfg anomaly.Config) (*sim.Truth, []schemas.Alert, error) {
	gen, err := sim.New(scfg)
	if err != nil {
		return nil, nil, err
	}
	if scfg.Partitions == 0 {
		scfg.Partitions = topology.DefaultPartitions
	}
	cfg.Partitions = scfg.Partitions
	p, err := anomaly.NewPipeline(cfg)
	if err != nil {
		return nil, nil, err
	}
	sink := &pipeSink{p: p, parts: scfg.Partitions}
	truth, err := gen.Run(ctx, sink)
	if err != nil {
		return nil, nil, err
	}
	if sink.err != nil {
		return nil, nil, sink.err
	}
	if err := p.Drain(); err != nil {
		return nil, nil, err
	}
	return truth, p.Alerts(), nil
}

type pipeSink struct {
	p     *anomaly.Pipeline
	parts int
	n     int
	err   error
}

func (s *pipeSink) Send(_ context.Context, rec schemas.Record) error {
	if s.err != nil {
		return s.err
	}
	if err := s.p.Add(anomaly.Murmur2Partition([]byte(rec.Key()), s.parts), rec); err != nil {
		return err
	}
	s.n++
	if s.n%20_000 == 0 {
		if err := s.p.Drain(); err != nil {
			s.err = fmt.Errorf("cannot run the detectors: %w", err)
			return s.err
		}
		s.p.Compact(false)
	}
	return nil
}

func (s *pipeSink) Flush(context.Context) error { return nil }

// FirstFiring returns the first firing alert of each id among alerts
// (copies of an alert count once) and their ids in the order they were
// detected, ties by id: what Score matches with the planted incidents.
func FirstFiring(alerts []schemas.Alert) (map[string]schemas.Alert, []string) {
	firing := map[string]schemas.Alert{}
	for _, a := range alerts {
		if a.Status != schemas.AlertFiring {
			continue
		}
		if old, ok := firing[a.ID]; !ok || a.DetectedAt < old.DetectedAt {
			firing[a.ID] = a
		}
	}
	ids := make([]string, 0, len(firing))
	for id := range firing {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		a, b := firing[ids[i]], firing[ids[j]]
		return a.DetectedAt < b.DetectedAt || a.DetectedAt == b.DetectedAt && a.ID < b.ID
	})
	return firing, ids
}
