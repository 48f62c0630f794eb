package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/atlas-stream/atlas/producers/replay"
	"github.com/atlas-stream/atlas/producers/sim/recfile"
	"github.com/atlas-stream/atlas/schemas"
	"github.com/atlas-stream/atlas/topology"
)

func init() { subcommands = append(subcommands, newReplayCmd) }

// replayFlags are the flags of `atlas replay`.
type replayFlags struct {
	ratings, movies, out  string
	catalog, ratingEvents bool
	seed                  uint64
	heartbeat             time.Duration
	speed, rate           float64
	maxGap                time.Duration
	shiftToNow            bool
	limit                 int
	dryRun, skipBad       bool
	logEvery              time.Duration
}

func newReplayCmd(g *globals) *cobra.Command {
	var f replayFlags
	cmd := &cobra.Command{
		Use:   "replay --ratings PATH",
		Short: "Replay a MovieLens rating log as playback events, in time order",
		Long: `Replay a recorded interaction log — MovieLens ratings.csv or ML-100k u.data —
as playback and browse events, to Kafka (default), to a record file (--out)
or nowhere (--dry-run).

Every rating becomes exactly one play, in the order (timestamp, user, item):
a start at the rating's time, a heartbeat every --heartbeat of content, and
a complete (watch fraction >= 0.9) or stop event where the viewer stopped,
all in one session, then a browse rating event with the stars. The watch
fraction is drawn from a Beta distribution whose mean rises from 0.15 at
half a star to 0.95 at five stars, seeded by (--seed, user, movie), so the
same seed always gives the same events. Profiles are "ml-u<user>", titles
"ml-m<movie>". Events are sent in event-time order.

Before the plays, the catalog (movies.csv or u.item, found next to the
ratings unless --movies says otherwise) is sent as titles.

Event times are the original ones (1996-2018 for MovieLens-small), with the
receive time equal to the event time, so the events pass validation;
--shift-to-now moves the whole log so that its last event is now. Pacing is
as fast as possible unless --speed (event-time gaps divided by the factor)
or --rate (events per second) is given.

The whole log is sorted in memory: 16 bytes per rating (ml-25m: ~400 MB).`,
		Example: `  # MovieLens-small into Kafka as fast as possible (create the topics first)
  atlas topology apply
  atlas replay --ratings ../shared/data/movielens-latest-small/ratings.csv

  # see what would be sent: counts and the first events
  atlas replay --ratings ../shared/data/movielens-latest-small/ratings.csv --dry-run

  # a live-looking stream: times rebased to now, an hour of the log per second,
  # no pause longer than 2s
  atlas replay --ratings ratings.csv --shift-to-now --speed 3600 --max-gap 2s

  # the first 1,000 ML-100k ratings into a gzip'd record file (the simulator's
  # format), with another seed
  atlas replay --ratings ml-100k/u.data --limit 1000 --seed 7 --out replay.rec.gz

  # 500 events per second, skipping malformed lines instead of failing
  atlas replay --ratings ratings.csv --rate 500 --skip-bad-lines`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runReplay(cmd, g, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.ratings, "ratings", "", "rating log: MovieLens ratings.csv or ML-100k u.data (required)")
	fl.StringVar(&f.movies, "movies", "", "catalog: movies.csv or u.item (default: the one next to --ratings, if any)")
	fl.BoolVar(&f.catalog, "catalog", true, "send the catalog as titles before the plays")
	fl.Uint64Var(&f.seed, "seed", 0, "seed of the watch fractions")
	fl.DurationVar(&f.heartbeat, "heartbeat", replay.DefaultHeartbeat, "content time between two heartbeats of a play (1s to 1h)")
	fl.BoolVar(&f.ratingEvents, "rating-events", true, "send a browse rating event after each play")
	fl.Float64Var(&f.speed, "speed", 0, "pace: divide event-time gaps by this factor (3600: an hour of the log per second); 0: as fast as possible")
	fl.Float64Var(&f.rate, "rate", 0, "pace: events per second, ignoring the gaps; 0: as fast as possible")
	fl.DurationVar(&f.maxGap, "max-gap", 0, "with --speed, the longest pause between two events (0: no limit)")
	fl.BoolVar(&f.shiftToNow, "shift-to-now", false, "move every event time so that the last event is now")
	fl.IntVar(&f.limit, "limit", 0, "replay only the first N ratings in replay order (0: all)")
	fl.StringVar(&f.out, "out", "", `write the records to this record file instead of Kafka (the simulator's format; gzip'd if it ends in .gz; "-": standard output)`)
	fl.BoolVar(&f.dryRun, "dry-run", false, "send nothing: print the counts and the first events")
	fl.BoolVar(&f.skipBad, "skip-bad-lines", false, "skip malformed lines of the input files (counted and logged) instead of failing")
	fl.DurationVar(&f.logEvery, "log-every", 10*time.Second, "progress log interval when stderr is not a terminal (0: none)")
	// --ratings is checked in validate, not with MarkFlagRequired: cobra's
	// check would ignore ATLAS_RATINGS.
	return cmd
}

func (f replayFlags) validate() error {
	switch {
	case f.ratings == "":
		return errors.New("--ratings is required (or ATLAS_RATINGS)")
	case f.limit < 0:
		return fmt.Errorf("invalid --limit %d: want 0 (all) or more", f.limit)
	case f.dryRun && f.out != "":
		return errors.New("--dry-run and --out exclude each other")
	case f.maxGap > 0 && f.speed == 0:
		return errors.New("--max-gap needs --speed")
	}
	return replay.Pace{Speed: f.speed, Rate: f.rate, MaxGap: f.maxGap}.Validate()
}

func runReplay(cmd *cobra.Command, g *globals, f replayFlags) error {
	if err := f.validate(); err != nil {
		return &usageError{err}
	}
	cfg := replay.Config{Seed: f.seed, Heartbeat: f.heartbeat, OmitRatings: !f.ratingEvents}
	if err := cfg.Validate(); err != nil {
		return &usageError{err}
	}
	ctx := cmd.Context()
	stdout := cmd.OutOrStdout()
	if f.out == "-" {
		stdout = cmd.ErrOrStderr()
	}
	opts := replay.ReadOptions{SkipBad: f.skipBad}

	// Input.
	start := time.Now()
	rows, st, err := replay.LoadRatings(f.ratings, opts)
	if err != nil {
		return replayReadError(err)
	}
	replayLogSkipped(f.ratings, st)
	slog.Info("ratings read", "file", f.ratings, "format", st.Format, "ratings", st.Rows, "skipped", st.Skipped,
		"duplicates", st.Duplicates, "took", time.Since(start).Round(time.Millisecond))
	if f.limit > 0 && f.limit < len(rows) {
		rows = rows[:f.limit]
	}
	var movies []replay.Movie
	if f.catalog {
		path := f.movies
		if path == "" {
			path, _ = replay.FindMovies(f.ratings)
		}
		if path == "" {
			slog.Warn("no catalog: no movies.csv or u.item next to the ratings and no --movies; sending plays only", "ratings", f.ratings)
		} else {
			var mst replay.ReadStats
			if movies, mst, err = replay.LoadMovies(path, opts); err != nil {
				return replayReadError(err)
			}
			replayLogSkipped(path, mst)
			slog.Info("catalog read", "file", path, "format", mst.Format, "titles", len(movies), "skipped", mst.Skipped)
		}
	}

	// Generator.
	gen, err := replay.NewGenerator(cfg)
	if err != nil {
		return &usageError{err}
	}
	if f.shiftToNow && len(rows) > 0 {
		cfg.Offset = time.Duration(time.Now().UnixMilli()-gen.Plan(rows).LastEventMs) * time.Millisecond
		if gen, err = replay.NewGenerator(cfg); err != nil {
			return err
		}
	}
	plan := gen.Plan(rows)
	total := int64(plan.Events + len(movies))

	// Sink.
	var sink replay.Sink
	var dest string
	var closeSink func(context.Context) error
	var dry *replayDryRun
	var acked func() int // records Kafka acknowledged
	switch {
	case f.dryRun:
		dry = &replayDryRun{show: 10}
		sink, dest, closeSink = dry, "nowhere (dry run)", func(context.Context) error { return nil }
	case f.out != "":
		var rf *recfile.File
		var w *recfile.Writer
		if f.out == "-" {
			w = recfile.NewWriter(cmd.OutOrStdout())
		} else {
			if rf, err = recfile.Create(f.out); err != nil {
				return err
			}
			w = rf.Writer
		}
		sink, dest = replayFileSink{w}, "record file "+f.out
		closeSink = func(context.Context) error {
			if rf != nil {
				return rf.Close()
			}
			return w.Flush()
		}
	default:
		kc, err := g.kafka()
		if err != nil {
			return err
		}
		topo := topology.Default(topology.Options{Prefix: g.topicPrefix})
		ks, err := replay.NewKafkaSink(ctx, replay.KafkaConfig{Conn: kc, Topology: topo})
		if err != nil {
			return err
		}
		sink, closeSink = ks, ks.Close
		acked = ks.Sent
		dest = fmt.Sprintf("Kafka at %s (%s, %s, %s)", strings.Join(kc.BrokerList(), ","),
			topo.Name(topology.Playback), topo.Name(topology.Browse), topo.Name(topology.Catalog))
	}
	counted := &replayCounter{next: sink}
	paced := replay.Paced(counted, replay.Pace{Speed: f.speed, Rate: f.rate, MaxGap: f.maxGap})

	// Run, with progress on stderr.
	slog.Info("replaying", "plays", plan.Plays, "events", plan.Events, "titles", len(movies), "to", dest,
		"first_event", replayTimeString(plan.FirstEventMs), "last_event", replayTimeString(plan.LastEventMs))
	stopProgress := replayProgress(cmd.ErrOrStderr(), &counted.n, total, f.logEvery)
	start = time.Now()
	var titles int
	var sum replay.Summary
	titles, err = replay.SendCatalog(ctx, movies, counted)
	if err == nil {
		sum, err = gen.Run(ctx, rows, paced)
	}
	// Write what is buffered even after a failure or an interrupt: it was
	// generated in order, so a partial replay is a clean prefix.
	flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if cerr := closeSink(flushCtx); err == nil {
		err = cerr
	}
	took := time.Since(start)
	stopProgress()
	if dry != nil {
		dry.print(stdout)
	}
	verb := "replayed"
	if err != nil {
		verb = "stopped after"
	} else if f.dryRun {
		verb = "would replay"
	}
	fmt.Fprintf(stdout, "%s %s: %d plays as %d events, and %d titles, to %s in %s (%.0f records/s)\n",
		verb, f.ratings, sum.Plays, sum.Events, titles, dest, took.Round(time.Millisecond), float64(sum.Events+titles)/max(took.Seconds(), 1e-9))
	fmt.Fprintf(stdout, "  events: %d start, %d heartbeat, %d complete, %d stop, %d rating\n",
		sum.Plays, sum.Heartbeats, sum.Completes, sum.Stops, sum.Ratings)
	if sum.Events > 0 {
		fmt.Fprintf(stdout, "  event time: %s .. %s\n", replayTimeString(sum.FirstEventMs), replayTimeString(sum.LastEventMs))
	}
	if acked != nil {
		fmt.Fprintf(stdout, "  Kafka acknowledged %d of %d records (acks=all)\n", acked(), sum.Events+titles)
	}
	if err != nil {
		return fmt.Errorf("cannot replay %s: %w", f.ratings, err)
	}
	return nil
}

// replayReadError adds the way out to a malformed-line error.
func replayReadError(err error) error {
	if errors.Is(err, replay.ErrMalformed) {
		return fmt.Errorf("%w (use --skip-bad-lines to skip and count such lines)", err)
	}
	return err
}

func replayLogSkipped(file string, st replay.ReadStats) {
	if st.Skipped == 0 && st.Duplicates == 0 {
		return
	}
	slog.Warn("input had problems", "file", file, "skipped_lines", st.Skipped, "duplicates_dropped", st.Duplicates)
	for _, err := range st.Errors {
		slog.Warn("skipped", "error", err)
	}
}

func replayTimeString(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339) }

// replayCounter counts what reached the sink, for the progress display.
type replayCounter struct {
	next replay.Sink
	n    atomic.Int64
}

func (c *replayCounter) Send(ctx context.Context, rec schemas.Record) error {
	if err := c.next.Send(ctx, rec); err != nil {
		return err
	}
	c.n.Add(1)
	return nil
}

func (c *replayCounter) Flush(ctx context.Context) error {
	if f, ok := c.next.(replay.Flusher); ok {
		return f.Flush(ctx)
	}
	return nil
}

// replayFileSink writes to a record file (the simulator's format).
type replayFileSink struct{ w *recfile.Writer }

func (s replayFileSink) Send(_ context.Context, rec schemas.Record) error { return s.w.Write(rec) }

// Flush lets a reader at the other end of --out - see the events before a
// pause of --speed or --rate.
func (s replayFileSink) Flush(context.Context) error { return s.w.Flush() }

// replayDryRun keeps the first events of a dry run as JSON lines.
type replayDryRun struct {
	show  int
	lines []string
}

func (d *replayDryRun) Send(_ context.Context, rec schemas.Record) error {
	if _, isTitle := rec.(*schemas.Title); isTitle && len(d.lines) >= 3 {
		return nil
	}
	if len(d.lines) < d.show {
		b, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		d.lines = append(d.lines, fmt.Sprintf("%-11s %s", rec.Schema(), b))
	}
	return nil
}

func (d *replayDryRun) print(w io.Writer) {
	fmt.Fprintf(w, "first records:\n")
	for _, l := range d.lines {
		fmt.Fprintf(w, "  %s\n", l)
	}
}

// replayProgress shows the replay's progress on w (see showProgress).
func replayProgress(w io.Writer, n *atomic.Int64, total int64, logEvery time.Duration) (stop func()) {
	return showProgress(w, "replayed", "records", n, total, logEvery)
}

// showProgress shows the progress of long work on w: a line with a bar
// rewritten four times a second when w is a terminal, a log line every
// logEvery otherwise. n counts what is done of total (in unit); verb says
// what is being done. The returned function stops it.
func showProgress(w io.Writer, verb, unit string, n *atomic.Int64, total int64, logEvery time.Duration) (stop func()) {
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	every := logEvery
	if tty {
		every = 250 * time.Millisecond
	}
	if every <= 0 || total <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		start, last, lastN := time.Now(), time.Now(), int64(0)
		for {
			select {
			case <-done:
				if tty {
					fmt.Fprint(w, "\r\033[K")
				}
				return
			case now := <-t.C:
				cur := n.Load()
				rate := float64(cur-lastN) / now.Sub(last).Seconds()
				avg := float64(cur) / now.Sub(start).Seconds()
				last, lastN = now, cur
				eta := "?"
				if avg > 0 {
					eta = time.Duration(float64(total-cur) / avg * float64(time.Second)).Round(time.Second).String()
				}
				if tty {
					fmt.Fprintf(w, "\r\033[K%s %s %d/%d %s  %.0f %s/s  ETA %s", progressBar(cur, total), verb, cur, total, unit, rate, unit, eta)
				} else {
					slog.Info(verb, unit, cur, "total", total, "per_second", int64(rate), "eta", eta)
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
