package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/atlas-stream/atlas/consumers/anomaly/evaluate"
	"github.com/atlas-stream/atlas/consumers/embeddings"
	"github.com/atlas-stream/atlas/consumers/embeddings/api"
	"github.com/atlas-stream/atlas/producers/sim"
	"github.com/atlas-stream/atlas/schemas"
	"github.com/atlas-stream/atlas/schemas/warehouse"
	"github.com/atlas-stream/atlas/topology"
)

type demoReportFlags struct {
	truth    string
	opsAddr  string
	recsAddr string
	profile  string
	since    string
	wait     time.Duration
	limit    int
	country  string
}

func newDemoReportCmd(g *globals) *cobra.Command {
	var f demoReportFlags
	cmd := &cobra.Command{
		Use:   "report --truth FILE",
		Short: "After simulated traffic: wait for the roles, then print queries, alerts vs planted incidents, recommendations, throughput",
		Long: `Wait until every role of 'atlas run all' (metrics on --ops-addr) has
processed the events of the simulator run whose ground truth is --truth,
then print:

  1. the content-strategy queries over the run's simulated period, as the
     read-only ClickHouse user (what 'atlas query NAME' prints);
  2. the alerts raised (read back from the alert topic) beside the
     incidents the simulator planted, matched as 'atlas eval anomaly'
     matches them: same kind and subject, raised between the incident's
     start and 30 minutes after its end; then the alerts that match none;
  3. a simulated profile's recommendations from the embeddings API on
     --embeddings-api (the profile with the most plays among a sample, unless
     --profile names one), beside what it watched;
  4. per role: events processed, events per second since --since (default:
     when the roles started), lag, dead letters.

Exits 3 when the roles did not catch up within --wait or a section found
nothing to show, 1 when a service could not be reached.`,
		Example: `  atlas simulate --seed 7 --rate 2000 --duration 60s --truth truth.json
  atlas demo report --truth truth.json --ops-addr 127.0.0.1:9464 --embeddings-api 127.0.0.1:9470

  # one profile's recommendations, without waiting
  atlas demo report --truth truth.json --profile p-000123 --wait 0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.truth == "" {
				return &usageError{errors.New("--truth is required (or ATLAS_DEMO_TRUTH)")}
			}
			if f.limit < 1 {
				return &usageError{fmt.Errorf("invalid --limit %d: want 1 or more", f.limit)}
			}
			var since time.Time
			if f.since != "" {
				t, err := time.Parse(time.RFC3339, f.since)
				if err != nil {
					return &usageError{fmt.Errorf("invalid --since %q: want RFC 3339, e.g. 2026-11-26T10:00:00Z", f.since)}
				}
				since = t
			}
			truth, err := sim.LoadTruth(f.truth)
			if err != nil {
				return err
			}
			return demoReport(cmd.Context(), g, f, truth, since, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.truth, "truth", "", "ground truth of the simulator run (atlas simulate --truth); required")
	fl.StringVar(&f.opsAddr, "ops-addr", "127.0.0.1:9464", "metrics address of atlas run all (its --ops-addr)")
	fl.StringVar(&f.recsAddr, "embeddings-api", "127.0.0.1:9470", "host:port of the embeddings role's API (ATLAS_EMBEDDINGS_ADDR of atlas run)")
	fl.StringVar(&f.profile, "profile", "", "profile whose recommendations to show (default: the most active of a sample)")
	fl.StringVar(&f.since, "since", "", "wall time the traffic started (RFC 3339), for events per second (default: when the roles started)")
	fl.DurationVar(&f.wait, "wait", 3*time.Minute, "how long to wait for the roles to process the run (0: do not wait)")
	fl.IntVar(&f.limit, "limit", 8, "rows per query")
	fl.StringVar(&f.country, "country", "US", "country of the genre-gap query")
	return cmd
}

// demoReport prints the four sections. A section that fails to reach its
// service says so and the others still print; the error returned joins
// the failures (exit 1), or is a problemsError (exit 3) when the roles did
// not catch up or a section had nothing to show.
func demoReport(ctx context.Context, g *globals, f demoReportFlags, truth *sim.Truth, since time.Time, out, errOut io.Writer) error {
	topo := topology.Default(topology.Options{Prefix: g.topicPrefix, Partitions: truth.Params.Partitions})
	inputs := []string{topo.Name(topology.Playback), topo.Name(topology.Browse)}
	var failures []error
	var problems []string
	mark := time.Now()
	took := func(what string) {
		slog.Debug("report section done", "section", what, "took", time.Since(mark).Round(time.Millisecond))
		mark = time.Now()
	}

	// Throughput is measured up to the moment the roles caught up.
	waitStart := time.Now()
	caught, err := waitCaughtUp(ctx, "http://"+f.opsAddr+"/metrics", inputs, truth.Totals.Sent, f.wait, errOut)
	if err != nil {
		failures = append(failures, err)
	} else if !caught.done {
		problems = append(problems, fmt.Sprintf("the roles had not processed the run after %s", f.wait))
	}
	if caught.done {
		// Alerts and rows are made durable at the next checkpoint.
		sleepCtx(ctx, 2*time.Second)
	}

	took("wait")
	first, last := time.UnixMilli(truth.Totals.FirstEventMs).UTC(), time.UnixMilli(truth.Totals.LastEventMs).UTC()
	fmt.Fprintf(out, "\nSimulated run: seed %d, %d events (%d playback, %d browse, %d duplicates, %d late), %d sessions, %d planted incidents,\nsimulated time %s .. %s (%s).\n",
		truth.Params.Seed, truth.Totals.Sent, truth.Totals.Playback, truth.Totals.Browse, truth.Totals.Duplicates, truth.Totals.Late,
		truth.Totals.Sessions, len(truth.Incidents), first.Format(time.RFC3339), last.Format(time.RFC3339), last.Sub(first).Round(time.Minute))

	// 1. Content strategy.
	from, to := first.Truncate(time.Minute), last.Truncate(time.Minute).Add(time.Minute)
	if n, err := demoQueries(ctx, g, f, from, to, out); err != nil {
		fmt.Fprintf(out, "cannot run the queries: %v\n", err)
		failures = append(failures, err)
	} else if n == 0 {
		problems = append(problems, "the queries returned no rows")
	}

	took("queries")

	// 2. Alerts beside the planted incidents.
	section(out, "Alerts raised beside the incidents planted (alert topic "+topo.Name(topology.Alerts)+")")
	alerts, err := readAlertTopic(ctx, g, topo.Name(topology.Alerts))
	if err != nil {
		fmt.Fprintf(out, "cannot read the alerts: %v\n", err)
		failures = append(failures, err)
	} else {
		lo, hi := truth.Totals.FirstEventMs-time.Minute.Milliseconds(), truth.Totals.LastEventMs+evaluate.Slack.Milliseconds()
		alerts = slices.DeleteFunc(alerts, func(a schemas.Alert) bool { return a.DetectedAt < lo || a.DetectedAt > hi })
		rows := pairAlerts(truth.Incidents, alerts)
		writeAlertTable(out, rows, cellTraffic(truth))
		writeAlertSummary(out, evaluate.Score(truth.Incidents, alerts))
		if len(alerts) == 0 {
			problems = append(problems, "no alert was raised")
		}
	}

	took("alerts")

	// 3. Recommendations.
	section(out, "A simulated profile's recommendations (GET http://"+f.recsAddr+"/v1/profiles/{id}/recommendations?k=10)")
	if err := demoRecommendations(ctx, g, f, truth, out); err != nil {
		fmt.Fprintf(out, "%v\n", err)
		failures = append(failures, err)
	}

	took("recommendations")

	// 4. Throughput and lag.
	section(out, "Throughput and lag (http://"+f.opsAddr+"/metrics)")
	if err := writeThroughput(ctx, out, "http://"+f.opsAddr+"/metrics", inputs, caught, since, waitStart); err != nil {
		fmt.Fprintf(out, "%v\n", err)
		failures = append(failures, err)
	}

	if len(failures) > 0 {
		return errors.Join(failures...)
	}
	if len(problems) > 0 {
		return &problemsError{strings.Join(problems, "; ")}
	}
	return nil
}

func section(w io.Writer, title string) {
	fmt.Fprintf(w, "\n== %s\n\n", title)
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// demoQuery is one query of the report with its arguments.
type demoQuery struct {
	name string
	args map[string]string
}

// demoQueries runs the named queries over [from, to) as the reader and
// prints each with the command line that prints it; it returns the rows
// printed.
func demoQueries(ctx context.Context, g *globals, f demoReportFlags, from, to time.Time, out io.Writer) (int, error) {
	period := map[string]string{"from": from.Format(time.RFC3339), "to": to.Format(time.RFC3339), "limit": fmt.Sprint(f.limit)}
	with := func(extra ...string) map[string]string {
		m := map[string]string{}
		for k, v := range period {
			m[k] = v
		}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return m
	}
	queries := []demoQuery{
		{"trending", with()},
		{"completion", with()},
		{"funnel", with()},
		{"quality", with()},
		{"genre-gap", with("country", f.country)},
	}
	cfg, err := g.clickhouse("reader")
	if err != nil {
		return 0, err
	}
	conn, err := warehouse.Open(ctx, cfg)
	if err != nil {
		return 0, notMigrated(err, cfg.Database)
	}
	defer conn.Close()
	byName := map[string]warehouse.Query{}
	for _, q := range warehouse.Queries() {
		byName[q.Name] = q
	}
	rows := 0
	for _, dq := range queries {
		q, ok := byName[dq.name]
		if !ok {
			continue // a query renamed: the report shows the others
		}
		section(out, "atlas query "+dq.name+" "+queryFlags(dq.args))
		args, err := q.ParseArgs(dq.args, time.Now())
		if err != nil {
			return rows, fmt.Errorf("BUG: demo query %s: %w", dq.name, err)
		}
		res, err := q.Run(ctx, conn, args)
		if err != nil {
			return rows, notMigrated(err, cfg.Database)
		}
		if len(res.Rows) == 0 {
			fmt.Fprintln(out, "(no rows)")
			continue
		}
		rows += len(res.Rows)
		if err := res.Write(out, warehouse.FormatTable); err != nil {
			return rows, err
		}
	}
	return rows, nil
}

// queryFlags renders query arguments as flags, in a stable order.
func queryFlags(args map[string]string) string {
	keys := make([]string, 0, len(args))
	for k := range args {
		keys = append(keys, k)
	}
	order := map[string]int{"from": 0, "to": 1}
	sort.Slice(keys, func(i, j int) bool {
		oi, iok := order[keys[i]]
		oj, jok := order[keys[j]]
		switch {
		case iok && jok:
			return oi < oj
		case iok != jok:
			return iok
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = "--" + k + " " + args[k]
	}
	return strings.Join(parts, " ")
}

// alertRow is one line of the alerts table: a planted incident and the
// alert that matched it, a planted incident no alert matched (Alert nil),
// or an alert that matched no planted incident (Incident nil).
type alertRow struct {
	Incident *sim.Incident
	Alert    *schemas.Alert
	// MaxSeverity is the highest severity the alert reached (escalations).
	MaxSeverity schemas.Severity
	// Also counts further alert ids that matched the same incident.
	Also int
}

// pairAlerts matches each planted incident with the first firing alert
// that evaluate.Score would count for it, and lists the firing alerts that
// match no incident. Copies of an alert (same id) count once; escalations
// raise the row's severity. Rows are in the order of the incidents, then
// of the unmatched alerts' detection.
func pairAlerts(incidents []sim.Incident, alerts []schemas.Alert) []alertRow {
	maxSev := map[string]schemas.Severity{}
	for _, a := range alerts {
		maxSev[a.ID] = max(maxSev[a.ID], a.Severity)
	}
	firing, ids := evaluate.FirstFiring(alerts)
	incs := slices.Clone(incidents)
	sort.SliceStable(incs, func(i, j int) bool { return incs[i].Start < incs[j].Start })
	matched := map[string]bool{}
	var rows []alertRow
	for i := range incs {
		inc := &incs[i]
		row := alertRow{Incident: inc}
		for _, id := range ids {
			a := firing[id]
			// The matching rule is evaluate.Score's: one incident, one alert.
			if evaluate.Score([]sim.Incident{*inc}, []schemas.Alert{a}).Kind(inc.Kind).Detected == 0 {
				continue
			}
			matched[id] = true
			if row.Alert == nil {
				row.Alert, row.MaxSeverity = &a, maxSev[id]
			} else {
				row.Also++
			}
		}
		rows = append(rows, row)
	}
	for _, id := range ids {
		if !matched[id] {
			a := firing[id]
			rows = append(rows, alertRow{Alert: &a, MaxSeverity: maxSev[id]})
		}
	}
	return rows
}

func writeAlertTable(w io.Writer, rows []alertRow, traffic func(sim.Incident) (float64, bool)) {
	if len(rows) == 0 {
		fmt.Fprintln(w, "(no incident planted, no alert raised)")
		return
	}
	clock := func(ms int64) string { return time.UnixMilli(ms).UTC().Format("15:04:05") }
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PLANTED\tSUBJECT\tSTART\t│ ALERT ID\tSEVERITY\tFIRST SEEN\tRAISED AT\tDELAY")
	for _, r := range rows {
		kind, subject, start := "—", "", ""
		if r.Incident != nil {
			kind, subject, start = r.Incident.Kind, r.Incident.Subject, clock(r.Incident.Start)
		} else if r.Alert != nil {
			subject = r.Alert.Subject
		}
		if r.Alert == nil {
			why := "missed"
			if r.Incident.Truncated {
				why = "missed (the run ended during it)"
			} else if perMin, ok := traffic(*r.Incident); ok {
				why = fmt.Sprintf("missed (%.1f sessions a minute in the cell)", perMin)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t│ —\t\t\t\t%s\n", kind, subject, start, why)
			continue
		}
		a := r.Alert
		sev := severityName(a.Severity)
		if r.MaxSeverity > a.Severity {
			sev += "→" + severityName(r.MaxSeverity)
		}
		delay := "unmatched " + a.Kind
		if r.Incident != nil {
			delay = fmtDelay(time.Duration(a.DetectedAt-r.Incident.Start) * time.Millisecond)
			if r.Also > 0 {
				delay += fmt.Sprintf(" (+%d more ids)", r.Also)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t│ %s\t%s\t%s\t%s\t%s\n", kind, subject, start, a.ID, sev, clock(a.FirstSeen), clock(a.DetectedAt), delay)
	}
	tw.Flush()
	fmt.Fprintln(w, "Times are simulated event time (UTC); the delay runs from the planted start to the alert.")
}

// cellTraffic returns, for a quality incident, the sessions a minute its
// CDN × ISP × country cell had while it was degraded, from the truth's
// expected aggregates: a quiet cell cannot be judged on rebuffers.
func cellTraffic(truth *sim.Truth) func(sim.Incident) (float64, bool) {
	return func(inc sim.Incident) (float64, bool) {
		if inc.Kind != sim.IncidentQuality {
			return 0, false
		}
		var sessions int64
		windows := map[int64]bool{}
		for _, q := range truth.Quality {
			if q.Window < inc.Start || q.Window >= inc.End {
				continue
			}
			windows[q.Window] = true
			if "cdn:"+q.CDN+"|isp:"+q.ISP+"|cc:"+q.Country == inc.Subject {
				sessions += q.Sessions
			}
		}
		if len(windows) == 0 {
			return 0, false
		}
		return float64(sessions) / float64(len(windows)), true
	}
}

func writeAlertSummary(w io.Writer, r evaluate.Report) {
	var planted, detected, raised, matched int
	var delays []time.Duration
	for _, k := range r.Kinds {
		planted += k.Planted
		detected += k.Detected
		raised += k.Raised
		matched += k.Matched
		delays = append(delays, k.Delays...)
	}
	slices.Sort(delays)
	median := "-"
	if len(delays) > 0 {
		median = fmtDelay(delays[len(delays)/2])
	}
	var ks evaluate.KindScore
	ks.Planted, ks.Detected, ks.Raised, ks.Matched = planted, detected, raised, matched
	fmt.Fprintf(w, "%d of %d planted incidents alerted (recall %.2f); %d of %d alert ids match a planted incident (precision %.2f); median delay %s.\n",
		detected, planted, ks.Recall(), matched, raised, ks.Precision(), median)
}

// demoRecommendations picks a profile and prints its recent titles and its
// recommendations.
func demoRecommendations(ctx context.Context, g *globals, f demoReportFlags, truth *sim.Truth, out io.Writer) error {
	base := "http://" + f.recsAddr
	id := f.profile
	var emb api.Embedding
	if id == "" {
		var err error
		if id, emb, err = pickProfile(ctx, base, truth); err != nil {
			return err
		}
	} else if err := getJSON(ctx, base+"/v1/profiles/"+url.PathEscape(id)+"/embedding", &emb); err != nil {
		return err
	}
	var recs api.Recommendations
	if err := getJSON(ctx, base+"/v1/profiles/"+url.PathEscape(id)+"/recommendations?k=10", &recs); err != nil {
		return err
	}
	names := titleNames(ctx, g, emb.Context)
	kind := "learned from its plays"
	if recs.ColdStart {
		kind = "cold start: the country's most played"
	}
	fmt.Fprintf(out, "profile %s (country %s, partition %d): %d titles watched, %d plays; recommendations %s\n",
		id, recs.Country, recs.Partition, emb.Watched, emb.Plays, kind)
	if len(emb.Context) > 0 {
		var watched []string
		for i, c := range emb.Context {
			if i == 5 {
				watched = append(watched, fmt.Sprintf("… %d more", len(emb.Context)-5))
				break
			}
			n := names[c.Title]
			if n == "" {
				n = c.Title
			}
			watched = append(watched, n)
		}
		fmt.Fprintf(out, "recently watched: %s\n\n", strings.Join(watched, ", "))
	}
	if len(recs.Recommendations) == 0 {
		fmt.Fprintln(out, "(no recommendations: the model has no titles yet)")
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tTITLE\tNAME\tSCORE")
	for i, r := range recs.Recommendations {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%.4f\n", i+1, r.Title, r.Name, r.Score)
	}
	return tw.Flush()
}

// pickProfile asks the API about a sample of the run's profiles (none
// that an incident used) and returns the one with the most titles
// watched.
func pickProfile(ctx context.Context, base string, truth *sim.Truth) (string, api.Embedding, error) {
	planted := map[string]bool{}
	for _, inc := range truth.Incidents {
		for _, p := range inc.Profiles {
			planted[p] = true
		}
	}
	// Simulated profiles play a few titles in an hour; ask about a sample,
	// for a few seconds at most, and stop at one with a real history.
	const sample, enough, budget = 300, 8, 5 * time.Second
	step := max(1, len(truth.Profiles)/sample)
	best, bestEmb, asked := "", api.Embedding{}, 0
	var lastErr error
	start := time.Now()
	defer func() { slog.Debug("profiles sampled", "asked", asked, "took", time.Since(start)) }()
	for i := 0; i < len(truth.Profiles) && time.Since(start) < budget; i += step {
		id := truth.Profiles[i].ProfileID
		if planted[id] {
			continue
		}
		var e api.Embedding
		err := getJSON(ctx, base+"/v1/profiles/"+url.PathEscape(id)+"/embedding", &e)
		asked++
		if err != nil {
			var he *httpStatusError
			if errors.As(err, &he) && he.code == 404 {
				continue // never played or browsed
			}
			lastErr = err
			if asked >= 3 && best == "" {
				return "", e, fmt.Errorf("cannot ask the embeddings API about profiles: %w", lastErr)
			}
			continue
		}
		if best == "" || e.Watched > bestEmb.Watched {
			best, bestEmb = id, e
		}
		if e.Watched >= enough {
			break
		}
	}
	if best == "" {
		if lastErr != nil {
			return "", bestEmb, fmt.Errorf("cannot ask the embeddings API about profiles: %w", lastErr)
		}
		return "", bestEmb, fmt.Errorf("none of %d sampled profiles is known to the embeddings API", asked)
	}
	return best, bestEmb, nil
}

// titleNames looks the titles up in ClickHouse's catalog table as the
// reader; on failure the titles stay unnamed (ids are printed).
func titleNames(ctx context.Context, g *globals, titles []embeddings.Scored) map[string]string {
	names := map[string]string{}
	if len(titles) == 0 {
		return names
	}
	cfg, err := g.clickhouse("reader")
	if err != nil {
		return names
	}
	conn, err := warehouse.Open(ctx, cfg)
	if err != nil {
		return names
	}
	defer conn.Close()
	ids := make([]string, len(titles))
	for i, t := range titles {
		ids[i] = t.Title
	}
	rows, err := conn.Query(ctx, "SELECT title_id, name FROM "+cfg.Database+".titles_latest WHERE has(?, title_id)", ids)
	if err != nil {
		slog.Debug("no title names", "err", err)
		return names
	}
	defer rows.Close()
	for rows.Next() {
		var id, name string
		if rows.Scan(&id, &name) == nil {
			names[id] = name
		}
	}
	return names
}
