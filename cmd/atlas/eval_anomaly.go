package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/atlas-stream/atlas/consumers/anomaly"
	"github.com/atlas-stream/atlas/consumers/anomaly/evaluate"
	"github.com/atlas-stream/atlas/consumers/anomaly/nab"
	"github.com/atlas-stream/atlas/producers/sim"
	"github.com/atlas-stream/atlas/producers/sim/recfile"
	"github.com/atlas-stream/atlas/schemas"
)

func init() { evalSubcommands = append(evalSubcommands, newEvalAnomalyCmd) }

type evalAnomalyFlags struct {
	events, truth string
	seeds         string
	simEvents     int64
	nabDir        string
	nabCorpus     []string
	lateness      time.Duration
	partitions    int
}

func newEvalAnomalyCmd(*globals) *cobra.Command {
	var f evalAnomalyFlags
	cmd := &cobra.Command{
		Use:   "anomaly",
		Short: "Precision, recall and detection delay of the anomaly detectors; the quality baseline on NAB",
		Long: `Run the anomaly role offline — the same stage one, stage two and detectors
that 'atlas run anomaly' runs, in memory — over a simulator run, and compare
its alerts with the incidents the simulator planted. Per detector: planted
incidents, detected ones (at least one firing alert of the kind for the
subject, raised between the incident's start and 30 minutes after its
end), incidents raised (distinct firing alert ids), precision (raised ones
that match a planted incident), recall, duplicates (planted incidents
matched by more than one id) and the detection delay (event time from the
planted start to the first matching alert, median and max).

The run is either a record file with its truth (--events and --truth, from
'atlas simulate --no-kafka --out FILE --truth TRUTH') or simulated in
memory for each seed of --seeds with the simulator's defaults.

Then the quality detector's robust baseline runs over the Numenta Anomaly
Benchmark series in --nab (labelled windows of real metrics): the share of
windows with a detection, false positives per 10,000 points and the NAB
score under the standard profile, for --nab-corpus and for all 58 files,
beside the published scoreboard (final_results.json; all files,
thresholds tuned per profile). --nab '' skips it.`,
		Example: `  atlas simulate --no-kafka --out sim.rec.gz --truth truth.json --seed 7
  atlas eval anomaly --events sim.rec.gz --truth truth.json

  # ten simulator seeds in memory, no NAB
  atlas eval anomaly --seeds 1-10 --nab ''`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (f.events == "") != (f.truth == "") {
				return &usageError{errors.New("give --events and --truth together")}
			}
			if f.events != "" && f.seeds != "" {
				return &usageError{errors.New("give --events/--truth or --seeds, not both")}
			}
			if f.events == "" && f.seeds == "" && f.nabDir == "" {
				return &usageError{errors.New("nothing to evaluate: give --events and --truth, --seeds, or --nab")}
			}
			out := cmd.OutOrStdout()
			ctx := cmd.Context()
			if f.events != "" || f.seeds != "" {
				if err := evalSimulated(ctx, f, out); err != nil {
					return err
				}
			}
			if f.nabDir != "" {
				if _, err := os.Stat(f.nabDir); err != nil {
					if !cmd.Flags().Changed("nab") {
						fmt.Fprintf(out, "\nNAB: %s not found; skipped (--nab DIR to point at it)\n", f.nabDir)
						return nil
					}
					return &usageError{fmt.Errorf("invalid --nab %q: %w", f.nabDir, err)}
				}
				return evalNAB(f, out)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.events, "events", "", "record file of a simulator run (atlas simulate --out)")
	fl.StringVar(&f.truth, "truth", "", "the run's ground truth (atlas simulate --truth)")
	fl.StringVar(&f.seeds, "seeds", "", `simulate in memory for these seeds ("1-10" or "3,5,8") instead of reading a file`)
	fl.Int64Var(&f.simEvents, "sim-events", 1_000_000, "events per simulated run with --seeds")
	fl.StringVar(&f.nabDir, "nab", "../shared/data/nab", "Numenta Anomaly Benchmark folder ('' skips NAB)")
	fl.StringSliceVar(&f.nabCorpus, "nab-corpus", []string{"realKnownCause"}, "NAB corpora (folders under data/) to report file by file")
	fl.DurationVar(&f.lateness, "lateness", 0, "the role's lateness (ATLAS_ANOMALY_LATENESS of atlas run anomaly)")
	fl.IntVar(&f.partitions, "partitions", 0, "input partitions (default: the truth's)")
	return cmd
}

func parseSeeds(s string) ([]uint64, error) {
	var out []uint64
	for _, part := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(strings.TrimSpace(part), "-")
		lo, err := strconv.ParseUint(a, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("invalid --seeds %q: %q is not a seed", s, a)
		}
		hi := lo
		if isRange {
			if hi, err = strconv.ParseUint(b, 10, 64); err != nil || hi < lo || hi-lo > 10_000 {
				return nil, fmt.Errorf("invalid --seeds %q: bad range %q", s, part)
			}
		}
		for x := lo; x <= hi; x++ {
			out = append(out, x)
		}
	}
	return out, nil
}

func evalSimulated(ctx context.Context, f evalAnomalyFlags, out io.Writer) error {
	var total evaluate.Report
	var state map[string][2]int
	runs := 0
	start := time.Now()
	if f.events != "" {
		truth, err := sim.LoadTruth(f.truth)
		if err != nil {
			return err
		}
		parts := truth.Params.Partitions
		if f.partitions > 0 {
			parts = f.partitions
		}
		file, err := recfile.Open(f.events)
		if err != nil {
			return err
		}
		defer file.Close()
		dec := schemas.NewDecoder(schemas.Limits{})
		next := func() (schemas.Record, error) {
			for {
				sch, v, err := file.Next()
				if err != nil {
					return nil, err
				}
				if sch == schemas.SchemaCatalog {
					continue
				}
				rec, err := dec.Decode(string(sch), v)
				if err != nil {
					return nil, fmt.Errorf("cannot read %s: %w", f.events, err)
				}
				return rec, nil
			}
		}
		cfg := evaluate.OfflineConfig(parts)
		cfg.Lateness = f.lateness
		alerts, p, err := evaluate.Run(ctx, cfg, next)
		if err != nil {
			return err
		}
		total = evaluate.Score(truth.Incidents, alerts)
		state = p.StateSize()
		runs = 1
		fmt.Fprintf(out, "anomaly detectors over %s (seed %d, %d events, %d partitions): %d alerts published in %s\n\n",
			f.events, truth.Params.Seed, truth.Totals.Sent, parts, len(anomaly.Dedup(alerts)), time.Since(start).Round(time.Millisecond))
	} else {
		seeds, err := parseSeeds(f.seeds)
		if err != nil {
			return &usageError{err}
		}
		for _, seed := range seeds {
			scfg := sim.DefaultConfig()
			scfg.Seed, scfg.Events = seed, f.simEvents
			cfg := evaluate.OfflineConfig(0)
			cfg.Lateness = f.lateness
			truth, alerts, err := evaluate.Simulate(ctx, scfg, cfg)
			if err != nil {
				return err
			}
			total.Add(evaluate.Score(truth.Incidents, alerts))
			runs++
			slog.Info("evaluated a simulated run", "seed", seed, "run", runs, "of", len(seeds), "alerts", len(alerts),
				"elapsed", time.Since(start).Round(time.Second))
		}
		fmt.Fprintf(out, "anomaly detectors over %d simulated runs (seeds %s, %d events each, default settings) in %s\n\n",
			runs, f.seeds, f.simEvents, time.Since(start).Round(time.Millisecond))
	}
	printReport(out, total)
	if state != nil {
		kinds := make([]string, 0, len(state))
		for k := range state {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		fmt.Fprintln(out, "\ndetector state at the end of the run (estimated):")
		for _, k := range kinds {
			fmt.Fprintf(out, "  %-20s %7d subjects %9.1f KiB\n", k, state[k][0], float64(state[k][1])/1024)
		}
	}
	return nil
}

func printReport(out io.Writer, r evaluate.Report) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "detector\tplanted\tdetected\traised\tprecision\trecall\tduplicates\tdelay p50\tdelay max\t")
	for _, k := range r.Kinds {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.3f\t%.3f\t%d\t%s\t%s\t\n", k.Kind, k.Planted, k.Detected, k.Raised,
			k.Precision(), k.Recall(), k.Duplicated, fmtDelay(k.Delay(0.5)), fmtDelay(k.Delay(1)))
	}
	tw.Flush()
	q := r.Kind(anomaly.KindQuality)
	fmt.Fprintf(out, "\nquality: %d alert(s) outside the planted incidents; slowest detection %s after onset\n",
		len(q.Spurious), fmtDelay(q.Delay(1)))
	for _, k := range r.Kinds {
		for i, m := range k.Missed {
			if i == 5 {
				fmt.Fprintf(out, "  … %d more missed %s\n", len(k.Missed)-5, k.Kind)
				break
			}
			fmt.Fprintf(out, "  missed %s %s at %s\n", k.Kind, m.Subject, time.UnixMilli(m.Start).UTC().Format(time.RFC3339))
		}
		for i, m := range k.Split {
			if i == 5 {
				break
			}
			fmt.Fprintf(out, "  more than one alert id for %s %s at %s\n", k.Kind, m.Subject, time.UnixMilli(m.Start).UTC().Format(time.RFC3339))
		}
		for i, a := range k.Spurious {
			if i == 5 {
				fmt.Fprintf(out, "  … %d more unmatched %s\n", len(k.Spurious)-5, k.Kind)
				break
			}
			fmt.Fprintf(out, "  unmatched %s\n", alertLine(&a))
		}
	}
}

func fmtDelay(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	return d.Round(100 * time.Millisecond).String()
}

func evalNAB(f evalAnomalyFlags, out io.Writer) error {
	cfg := nab.Config{}
	files, err := nab.Load(f.nabDir, f.nabCorpus)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nNAB %s: the quality detector's robust baseline (median and MAD of the previous 288 points, |z| ≥ 6 for 2 points, then 288 points of quiet)\n\n",
		strings.Join(f.nabCorpus, ","))
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "file\tpoints\twindows\tdetected\tfalse positives\tNAB raw\t")
	var corpus nab.Totals
	for _, file := range files {
		s := nab.Score(file, nab.Detect(file.Points, cfg), nab.Standard)
		corpus.Add(s)
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.2f\t\n", file.Name, s.Points, s.Windows, s.Detected, s.FalsePositives, s.Raw)
	}
	tw.Flush()
	fmt.Fprintf(out, "\n%s: %d of %d windows detected (%.1f%%), %.1f false positives per 10k points, NAB standard score %.1f\n",
		strings.Join(f.nabCorpus, ","), corpus.Detected, corpus.Windows, 100*corpus.DetectedShare(), corpus.FPPer10k(), corpus.Normalized())

	all, err := nab.Load(f.nabDir, nil)
	if err != nil {
		return err
	}
	var whole nab.Totals
	for _, file := range all {
		whole.Add(nab.Score(file, nab.Detect(file.Points, cfg), nab.Standard))
	}
	fmt.Fprintf(out, "all %d files: %d of %d windows detected (%.1f%%), %.1f false positives per 10k points, NAB standard score %.1f\n",
		whole.Files, whole.Detected, whole.Windows, 100*whole.DetectedShare(), whole.FPPer10k(), whole.Normalized())

	pub, err := nab.LoadPublished(f.nabDir)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "\npublished NAB scores (final_results.json: all 58 files, thresholds tuned per profile), for context:")
	names := make([]string, 0, len(pub))
	for n := range pub {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return pub[names[i]]["standard"] > pub[names[j]]["standard"] })
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "detector\tstandard\treward low FP\treward low FN\t")
	ours := false
	for _, n := range names {
		if !ours && pub[n]["standard"] < whole.Normalized() {
			fmt.Fprintf(tw, "atlas quality baseline (fixed thresholds)\t%.1f\t\t\t\n", whole.Normalized())
			ours = true
		}
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%.1f\t\n", n, pub[n]["standard"], pub[n]["reward_low_FP_rate"], pub[n]["reward_low_FN_rate"])
	}
	if !ours {
		fmt.Fprintf(tw, "atlas quality baseline (fixed thresholds)\t%.1f\t\t\t\n", whole.Normalized())
	}
	return tw.Flush()
}
