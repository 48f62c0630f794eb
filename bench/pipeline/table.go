package main

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// stat formats the median and min–max of v with f.
func stat(v []float64, f func(float64) string) (string, string) {
	if len(v) == 0 {
		return "—", ""
	}
	return f(median(v)), f(slices.Min(v)) + "–" + f(slices.Max(v))
}

func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func thousands(v float64) string {
	if v >= 10_000 {
		return fmt.Sprintf("%.0fk", v/1000)
	}
	return fmt.Sprintf("%.0f", v)
}

func ms(d time.Duration) string {
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%d ms", d.Milliseconds())
}

// atLeast and atMost are a row's verdict beside its target.
func atLeast(v, target float64) string {
	if v >= target {
		return "met"
	}
	return fmt.Sprintf("MISSED by %.0f%%", 100*(1-v/target))
}

func atMost(v, target float64) string {
	if v <= target {
		return "met"
	}
	return fmt.Sprintf("MISSED: %.1f× the target", v/target)
}

// print writes the table.
func (b *bench) print(w io.Writer, reps int, took time.Duration) {
	fmt.Fprintf(w, "\nAtlas pipeline benchmark: %d interleaved repetitions, medians with min–max; %d CPUs, GOMAXPROCS %d; %d events preloaded; %s in all\n\n",
		reps, runtime.NumCPU(), runtime.GOMAXPROCS(0), b.events, took.Round(time.Second))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "row\tmeasure\tmedian\tmin–max\ttarget\tverdict")
	line := func(row, what, med, rng, target, verdict string) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", row, what, med, rng, target, verdict)
	}
	if len(b.raw) > 0 {
		m, r := stat(rates(b.raw), thousands)
		line("(a)", "raw kafka-go group drain, events/s", m, r, "", "")
	}
	if len(b.atlas) > 0 {
		m, r := stat(rates(b.atlas), thousands)
		line("(b)", fmt.Sprintf("atlas run all drain, events/s (exact: %d rows + late events = truth)", b.compared), m, r, "", "")
	}
	if len(b.ratios) > 0 {
		m, r := stat(b.ratios, num)
		line("(c)", "b/a", m, r, "≥ 0.75", atLeast(median(b.ratios), 0.75))
	}
	g := b.gosamples
	if len(g) > 0 {
		var sumNs, sumAllocs float64
		for _, p := range []struct{ bench, what string }{
			{"BenchmarkDecode", "decode + validate"},
			{"BenchmarkAggregates", "aggregates processor"},
			{"BenchmarkEmbeddings", "embeddings processor"},
			{"BenchmarkAnomaly", "anomaly processor (both stages)"},
		} {
			ns, al := g.get(p.bench, "ns/event"), g.get(p.bench, "allocs/event")
			if len(ns) == 0 {
				continue
			}
			m, r := stat(ns, num)
			am, ar := stat(al, num)
			line("(d)", p.what+", CPU ns | allocs per event", m+" | "+am, r+" | "+ar, "", "")
			sumNs += median(ns)
			sumAllocs += median(al)
		}
		if sumNs > 0 {
			line("(d)", "decode + all processors, CPU ns | allocs per event", num(sumNs)+" | "+num(sumAllocs), "(sum of medians)",
				"≤ 1500 | ≤ 2", atMost(sumNs, 1500)+" | "+atMost(sumAllocs, 2))
			// atlas run all decodes every event in each of its three roles
			// and once more when the anomaly role reads its re-keyed copy.
			dec, decAllocs := median(g.get("BenchmarkDecode", "ns/event")), median(g.get("BenchmarkDecode", "allocs/event"))
			line("(d)", "  as atlas run all pays it: 4 decodes (3 roles + re-key) + processors", num(sumNs+3*dec)+" | "+num(sumAllocs+3*decAllocs),
				"(sum of medians)", "", "")
		}
		if wr, pb := g.get("BenchmarkWriter", "rows/s"), g.get("BenchmarkPlainBatch", "rows/s"); len(wr) > 0 && len(pb) > 0 {
			m, r := stat(wr, thousands)
			line("(e)", "ClickHouse sink (chsink.Writer), rows/s", m, r, "", "")
			m, r = stat(pb, thousands)
			line("(e)", "plain clickhouse-go batch insert, rows/s", m, r, "", "")
			ratios := make([]float64, min(len(wr), len(pb)))
			for i := range ratios {
				ratios[i] = wr[i] / pb[i]
			}
			m, r = stat(ratios, num)
			line("(e)", "sink / plain", m, r, "≥ 0.8", atLeast(median(ratios), 0.8))
		}
	}
	if len(b.levels) > 0 {
		line("(f)", "sustainable rate = (b), events/s", thousands(median(rates(b.atlas))), "", "", "")
		for _, lv := range b.levels {
			at := fmt.Sprintf("at %.0f%%", 100*lv.frac)
			if lv.lateness != "" {
				at += ", anomaly lateness " + lv.lateness
			}
			what := fmt.Sprintf("%s (%s/s, %s/s delivered): event → queryable in ClickHouse, p50 | p99 (%d markers)", at, thousands(lv.rate), thousands(lv.delivered), lv.markers)
			target, verdict := "", ""
			if lv.frac == 0.5 && lv.lateness == "" {
				target = "≤ window end + 1 s"
				verdict = "met"
				if lv.pastWindow > 0 {
					verdict = fmt.Sprintf("MISSED by %d of %d", lv.pastWindow, lv.markers)
				}
			}
			if lv.delivered < 0.95*lv.rate {
				// The load asked for did not happen: no verdict on it.
				target, verdict = "", fmt.Sprintf("NOT MEASURED: %.0f%% of the load delivered", 100*lv.delivered/lv.rate)
			}
			line("(f)", what, ms(quantile(lv.queryable, 0.5))+" | "+ms(quantile(lv.queryable, 0.99)), "", target, verdict)
			for _, k := range []struct {
				what   string
				lat    []time.Duration
				probes int
			}{
				{"bot alerts, judged on arrival", lv.alert, lv.bots},
				{"stuffing alerts, re-keyed, fired by stage two once certain", lv.stuffing, lv.stuffers},
			} {
				what = fmt.Sprintf("%s: event → alert on the topic, p50 | p99 (%d of %d %s)", at, len(k.lat), k.probes, k.what)
				target, verdict = "", ""
				if lv.frac == 0.5 && lv.lateness == "" {
					target = "p99 ≤ 100 ms"
					verdict = atMost(float64(quantile(k.lat, 0.99).Milliseconds()), 100)
					if len(k.lat) < k.probes/2 {
						verdict = "MISSED: too few alerts"
					}
					if lv.delivered < 0.95*lv.rate {
						verdict = fmt.Sprintf("NOT MEASURED: %.0f%% of the load delivered", 100*lv.delivered/lv.rate)
					}
				}
				line("(f)", what, ms(quantile(k.lat, 0.5))+" | "+ms(quantile(k.lat, 0.99)), "", target, verdict)
			}
		}
	}
	if len(b.ingest) > 0 {
		var cs []int
		for c := range b.ingest {
			cs = append(cs, c)
		}
		sort.Ints(cs)
		for _, c := range cs {
			r := b.ingest[c]
			m, rg := stat(r[1], thousands)
			line("(g)", fmt.Sprintf("ingest gateway, %d clients, events/s", c), m, rg, "", "")
			m, rg = stat(r[0], thousands)
			line("(g)", fmt.Sprintf("raw kafka-go Writer, %d clients, events/s", c), m, rg, "", "")
			ratios := make([]float64, len(r[0]))
			for i := range ratios {
				ratios[i] = r[1][i] / r[0][i]
			}
			m, rg = stat(ratios, num)
			line("(g)", fmt.Sprintf("gateway / raw, %d clients", c), m, rg, "≥ 0.5", atLeast(median(ratios), 0.5))
		}
	}
	if bp := g.get("BenchmarkRestoreProfiles/watched=20", "B/profile"); len(bp) > 0 {
		m, r := stat(bp, num)
		line("(h)", "embeddings state, bytes per profile (dimension 32, 20 titles watched)", m, r, "≤ 300", atMost(median(bp), 300))
	}
	if rs := g.get("BenchmarkRestoreAMillionProfiles", "restore-s"); len(rs) > 0 {
		m, r := stat(rs, num)
		line("(h)", "restore of 1M profiles from the changelog, s", m, r, "≤ 5", atMost(median(rs), 5))
		if bp := g.get("BenchmarkRestoreAMillionProfiles", "B/profile"); len(bp) > 0 {
			m, r := stat(bp, num)
			line("(h)", "  its changelog values, bytes per profile", m, r, "", "")
		}
	}
	tw.Flush()
	var notes []string
	if len(b.atlas) > 0 {
		var su []float64
		for _, a := range b.atlas {
			su = append(su, a.startup.Seconds())
		}
		notes = append(notes, fmt.Sprintf("(b) the clock starts at the first record processed; before it, atlas run all took %.1f s (median) to start, join three groups and restore", median(su)))
	}
	if len(notes) > 0 {
		fmt.Fprintln(w, "\n"+strings.Join(notes, "\n"))
	}
}
