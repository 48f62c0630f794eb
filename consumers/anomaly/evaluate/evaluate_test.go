package evaluate

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/atlas-stream/atlas/producers/sim"
	"github.com/atlas-stream/atlas/topology"
)

// TestDefaultSettingsMeetTheAcceptanceOnSimulatedRuns runs the detectors
// over full simulator runs (default configuration, incidents planted) and
// checks issue 6's acceptance: per fraud detector precision ≥ 0.95 and
// recall ≥ 0.90, quality incidents alerted within two minutes of onset
// and no quality alert outside them. ATLAS_EVAL_SEEDS=N runs seeds 1..N
// (default 2; each run takes about ten seconds).
func TestDefaultSettingsMeetTheAcceptanceOnSimulatedRuns(t *testing.T) {
	n := 2
	if s := os.Getenv("ATLAS_EVAL_SEEDS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			t.Fatalf("ATLAS_EVAL_SEEDS=%q: %v", s, err)
		}
	}
	var total Report
	for seed := 1; seed <= n; seed++ {
		scfg := sim.DefaultConfig()
		scfg.Seed = uint64(seed)
		truth, alerts, err := Simulate(context.Background(), scfg, OfflineConfig(topology.DefaultPartitions))
		if err != nil {
			t.Fatal(err)
		}
		total.Add(Score(truth.Incidents, alerts))
	}
	for _, k := range total.Kinds {
		t.Logf("%-20s planted %2d detected %2d raised %2d precision %.3f recall %.3f duplicates %d delay p50 %v max %v",
			k.Kind, k.Planted, k.Detected, k.Raised, k.Precision(), k.Recall(), k.Duplicated, k.Delay(0.5), k.Delay(1))
		for _, m := range k.Missed {
			t.Errorf("%s: missed %s at %d", k.Kind, m.Subject, m.Start)
		}
		for _, a := range k.Spurious {
			t.Errorf("%s: unmatched alert %s on %s at %d", k.Kind, a.ID, a.Subject, a.DetectedAt)
		}
		if k.Precision() < 0.95 || k.Recall() < 0.90 {
			t.Errorf("%s: precision %.3f, recall %.3f; want at least 0.95 and 0.90", k.Kind, k.Precision(), k.Recall())
		}
		if k.Duplicated > 0 {
			t.Errorf("%s: %d planted incidents got more than one alert id", k.Kind, k.Duplicated)
		}
	}
	if q := total.Kind("quality_degradation"); q.Delay(1) > 2*time.Minute {
		t.Errorf("quality incidents detected up to %v after onset; want within 2m", q.Delay(1))
	}
}
