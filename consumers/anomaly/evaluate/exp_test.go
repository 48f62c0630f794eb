package evaluate

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/atlas-stream/atlas/producers/sim"
)

func TestExperiment(t *testing.T) {
	seeds := os.Getenv("EXP_SEEDS")
	if seeds == "" {
		t.Skip()
	}
	n, _ := strconv.Atoi(seeds)
	events, _ := strconv.Atoi(os.Getenv("EXP_EVENTS"))
	var total Report
	for seed := 1; seed <= n; seed++ {
		scfg := sim.DefaultConfig()
		scfg.Seed = uint64(seed)
		if events > 0 {
			scfg.Events = int64(events)
		}
		start := time.Now()
		truth, alerts, err := Simulate(context.Background(), scfg, OfflineConfig(6))
		if err != nil {
			t.Fatal(err)
		}
		r := Score(truth.Incidents, alerts)
		total.Add(r)
		fmt.Printf("seed %d: %d alerts in %s\n", seed, len(alerts), time.Since(start).Round(time.Millisecond))
		for _, k := range r.Kinds {
			fmt.Printf("  %-20s planted %d detected %d raised %d matched %d dup %d delay %v\n", k.Kind, k.Planted, k.Detected, k.Raised, k.Matched, k.Duplicated, k.Delays)
			for _, m := range k.Missed {
				fmt.Printf("     MISSED %s %s %d..%d %v\n", m.Subject, m.Kind, m.Start, m.End, m.Evidence)
			}
			for _, s := range k.Spurious {
				fmt.Printf("     SPURIOUS %s %s %s at %d first %d ev %v\n", s.ID, s.Subject, s.Kind, s.DetectedAt, s.FirstSeen, s.Evidence)
			}
		}
	}
	fmt.Println("TOTAL")
	for _, k := range total.Kinds {
		fmt.Printf("  %-20s P %.3f R %.3f planted %d raised %d dup %d delay p50 %v max %v\n", k.Kind, k.Precision(), k.Recall(), k.Planted, k.Raised, k.Duplicated, k.Delay(0.5), k.Delay(1))
	}
}
