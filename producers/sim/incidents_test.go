package sim

import (
	"strconv"
	"strings"
	"testing"

	"github.com/atlas-stream/atlas/producers/sim/geo"
	"github.com/atlas-stream/atlas/schemas"
)

// TestEveryPlantedIncidentIsInTheTruthAndVisibleInTheEvents checks each
// incident against the events alone, with the thresholds a detector would
// use.
func TestEveryPlantedIncidentIsInTheTruthAndVisibleInTheEvents(t *testing.T) {
	cfg := small(21, 150_000)
	b, tr := run(t, cfg)
	recs := decodeAll(t, b)
	if len(tr.Incidents) != len(incidentPlan) {
		t.Fatalf("%d incidents in the truth, want %d: %+v", len(tr.Incidents), len(incidentPlan), tr.Incidents)
	}
	envs := make([]*schemas.Envelope, 0, len(recs))
	for _, d := range recs {
		switch e := d.rec.(type) {
		case *schemas.Playback:
			envs = append(envs, &e.Envelope)
		case *schemas.Browse:
			envs = append(envs, &e.Envelope)
		}
	}
	inRange := func(inc Incident, e *schemas.Envelope) bool { return e.EventTime >= inc.Start && e.EventTime < inc.End }
	const hourMs = 3_600_000
	for _, inc := range tr.Incidents {
		if inc.Truncated {
			t.Errorf("%s %s is truncated in a run long enough for all incidents", inc.Kind, inc.Subject)
			continue
		}
		switch inc.Kind {
		case IncidentQuality:
			ev := inc.Evidence
			rb, base := atof(t, ev["rebuffers_per_heartbeat"]), atof(t, ev["baseline_rebuffers_per_heartbeat"])
			sf, sfBase := atof(t, ev["start_failure_rate"]), atof(t, ev["baseline_start_failure_rate"])
			if rb < 3*base || sf < 3*sfBase || inc.End-inc.Start < 10*60_000 || inc.End-inc.Start > 20*60_000 {
				t.Errorf("%s: rebuffers/heartbeat %.4f vs baseline %.4f, start failures %.4f vs %.4f over %d ms: want several times the baseline for 10–20 min",
					inc.Subject, rb, base, sf, sfBase, inc.End-inc.Start)
			}
		case IncidentAccountSharing:
			acc := strings.TrimPrefix(inc.Subject, "account:")
			devices, countries := map[string]bool{}, map[string]bool{}
			for _, e := range envs {
				if e.AccountID == acc && inRange(inc, e) {
					devices[e.DeviceID] = true
					countries[e.Country] = true
				}
			}
			if len(devices) < 5 || len(countries) < 3 || inc.End-inc.Start > hourMs {
				t.Errorf("%s: %d devices in %d countries over %d ms; want 5+ devices in 3+ countries within an hour", inc.Subject, len(devices), len(countries), inc.End-inc.Start)
			}
		case IncidentImpossibleTravel:
			acc := strings.TrimPrefix(inc.Subject, "account:")
			var prev *schemas.Envelope
			fastest := 0.0
			for _, e := range envs {
				if e.AccountID != acc || !inRange(inc, e) {
					continue
				}
				if prev != nil && e.EventTime > prev.EventTime {
					c1, _, ok1 := geo.Locate(prev.ClientNet)
					c2, _, ok2 := geo.Locate(e.ClientNet)
					if ok1 && ok2 && c1 != c2 {
						km := geo.DistanceKm(geo.Cities()[c1], geo.Cities()[c2])
						fastest = max(fastest, km/(float64(e.EventTime-prev.EventTime)/hourMs))
					}
				}
				if prev == nil || e.EventTime >= prev.EventTime {
					prev = e
				}
			}
			if fastest < 1000 {
				t.Errorf("%s: fastest move between consecutive events %.0f km/h, want > 1000", inc.Subject, fastest)
			}
		case IncidentBot:
			var times []int64
			seen := map[string]bool{}
			for _, d := range recs {
				if e, ok := d.rec.(*schemas.Browse); ok && e.ProfileID == inc.Profiles[0] && e.Kind == schemas.BrowseImpression && !seen[e.EventID] {
					seen[e.EventID] = true
					if e.DwellMs != 0 {
						t.Fatalf("%s: a bot impression has dwell %d", inc.Subject, e.DwellMs)
					}
					times = append(times, e.EventTime)
				}
			}
			var sum, sq float64
			n := 0
			for i := 1; i < len(times); i++ {
				if d := float64(times[i] - times[i-1]); d > 0 && d < 1000 {
					sum += d
					sq += d * d
					n++
				}
			}
			mean := sum / float64(n)
			sd := sq/float64(n) - mean*mean
			if n < 2000 || mean < 190 || mean > 210 || sd > 25 {
				t.Errorf("%s: %d intervals, mean %.1f ms, variance %.1f; want about 5/s, near constant", inc.Subject, n, mean, sd)
			}
		case IncidentCredentialStuffing:
			prefix := strings.TrimPrefix(inc.Subject, "net:")
			prefix = strings.TrimSuffix(prefix, "/24")
			accounts := map[string]bool{}
			for _, e := range envs {
				if strings.HasPrefix(e.ClientNet, prefix+"/24#") && inRange(inc, e) {
					accounts[e.AccountID] = true
				}
			}
			if len(accounts) < 30 || inc.End-inc.Start > 5*60_000 {
				t.Errorf("%s: %d accounts within %d ms; want 30+ within 5 minutes", inc.Subject, len(accounts), inc.End-inc.Start)
			}
		default:
			t.Errorf("unknown incident kind %q", inc.Kind)
		}
		t.Logf("%s %s [%d, %d) accounts=%d evidence=%v", inc.Kind, inc.Subject, inc.Start, inc.End, len(inc.Accounts), inc.Evidence)
	}
}

func TestNoIncidentsPlantsNone(t *testing.T) {
	cfg := small(21, 50_000)
	cfg.NoIncidents = true
	_, tr := run(t, cfg)
	if len(tr.Incidents) != 0 {
		t.Fatalf("%d incidents with NoIncidents", len(tr.Incidents))
	}
}

func atof(t *testing.T, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("evidence %q is not a number", s)
	}
	return f
}
