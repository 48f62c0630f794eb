package main

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/atlas-stream/atlas/consumers/embeddings"
	"github.com/atlas-stream/atlas/producers/replay"
	"github.com/atlas-stream/atlas/producers/sim/recfile"
	"github.com/atlas-stream/atlas/schemas"
)

func init() { evalSubcommands = append(evalSubcommands, newEvalRecsCmd) }

func newEvalRecsCmd(*globals) *cobra.Command {
	var (
		input    string
		models   string
		limit    int
		logEvery time.Duration
		cfg      embeddings.EvalConfig
	)
	cmd := &cobra.Command{
		Use:   "recs --input FILE",
		Short: "Prequential recall@10 and NDCG@10 of the embeddings learner beside popularity and item-kNN",
		Long: `Run the embeddings role's learner offline over a recorded stream and judge it
prequentially: for each first play of a title by a profile, every model ranks
the titles that appeared in plays so far and that the profile has not
played; the play is a hit if its title is in the top 10. Then every model
learns from it. A play of a (profile, title) pair seen before is skipped
entirely; a title never played before is a miss for every model.

Printed per model: recall@10 (hits / first plays), NDCG@10 (1/log2(rank+2)
per hit), catalog coverage (titles that were in at least one top 10, over
titles seen), learn events/s (the stream's events per second of the
model's learning time; the dense refreshes are reported apart) and ms/ranking (scoring
every title and ranking them for one judged play). Models: popularity (most played so far),
item-knn (cosine over co-occurrence with the profile's 50 most recent
titles, ties by popularity) and atlas (the learner 'atlas run embeddings'
runs); atlas-dense ranks by the dense taste and title vectors alone.

--input is either a record file of 'atlas simulate --out' or 'atlas replay
--out' (.gz or not: play starts are plays, stops and completes give the
watched fraction, browse selects and add-to-lists are intents), or a rating
log: MovieLens ratings.csv, ML-100k u.data (or RecBole's ml-100k.inter) or
ML-1M ratings.dat, in (timestamp, user, item) order, every rating one play.`,
		Example: `  # MovieLens-small
  atlas eval recs --input ../shared/data/movielens-latest-small/ratings.csv

  # simulator traffic with planted tastes
  atlas simulate --no-kafka --out sim.rec.gz --events 6000000 --profiles 2000 --no-incidents
  atlas eval recs --input sim.rec.gz

  # try another context window and decay, dense vectors alone included
  atlas eval recs --input ratings.csv --window 30 --decay 0.85 --models popularity,atlas,atlas-dense`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if input == "" {
				return &usageError{errors.New("--input is required")}
			}
			if models != "" {
				cfg.Models = strings.Split(models, ",")
			}
			ev, err := embeddings.NewEvaluator(cfg)
			if err != nil {
				return &usageError{err}
			}
			start := time.Now()
			desc, err := feedEval(input, ev, limit, cmd.ErrOrStderr(), logEvery)
			if err != nil {
				return err
			}
			printEval(cmd.OutOrStdout(), input, desc, ev, time.Since(start))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&input, "input", "", "record file (simulate/replay --out) or rating log (ratings.csv, u.data, ratings.dat)")
	f.StringVar(&models, "models", "", "comma-separated models to compare (default popularity,item-knn,atlas; also atlas-dense)")
	f.IntVar(&limit, "limit", 0, "stop after this many events (0: all)")
	f.DurationVar(&logEvery, "log-every", 10*time.Second, "progress log interval when stderr is not a terminal (0: none)")
	f.IntVar(&cfg.K, "k", 10, "cut-off of recall and NDCG")
	f.IntVar(&cfg.KNNWindow, "knn-window", 50, "recent titles of the item-kNN baseline")
	f.IntVar(&cfg.RefreshEvery, "refresh-every", 5000, "refresh the dense vectors after this many first plays")
	l := &cfg.Learner
	f.IntVar(&l.Dim, "dim", 32, "dimension of the dense taste and title vectors")
	f.IntVar(&l.Window, "window", 40, "learner: recent plays in a profile's context")
	f.Float64Var(&l.Decay, "decay", 0.9, "learner: weight of the k-th most recent play is decay^k")
	f.Float64Var(&l.Reverse, "reverse", 0.5, "learner: weight of 'played before' relative to 'played after'")
	f.Float64Var(&l.Alpha, "alpha", 0.3, "learner: popularity normalisation of candidates (0.5 is cosine)")
	f.Float64Var(&l.PopWeight, "pop-weight", 0.03, "learner: weight of log(1+plays) in every score")
	f.Float64Var(&l.DenseWeight, "dense-weight", 0.3, "learner: weight of taste · title vector in the score (negative: none)")
	f.Uint64Var(&l.Seed, "seed", 1, "learner: seed of the dense refresh")
	return cmd
}

// feedEval reads input and feeds the evaluator; it returns a description
// of what it read. Progress goes to progress (see showProgress): bytes of a
// record file read, or ratings fed.
func feedEval(path string, ev *embeddings.Evaluator, limit int, progress io.Writer, logEvery time.Duration) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("cannot open input: %w", err)
	}
	defer f.Close()
	size := int64(-1)
	if st, err := f.Stat(); err == nil {
		size = st.Size()
	}
	cr := &countingReader{r: f}
	var r io.Reader = bufio.NewReaderSize(cr, 1<<20)
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return "", fmt.Errorf("cannot read %s: %w", path, err)
		}
		defer zr.Close()
		r = zr
	}
	br := bufio.NewReaderSize(r, 1<<16)
	head, _ := br.Peek(len(recfile.Magic))
	if string(head) == recfile.Magic {
		defer showProgress(progress, "evaluated", "bytes", &cr.n, size, logEvery)()
		return feedRecords(br, ev, limit)
	}
	rows, st, err := replay.ReadRatings(br, path, replay.ReadOptions{})
	if err != nil {
		return "", err
	}
	if limit > 0 && len(rows) > limit {
		rows = rows[:limit]
	}
	var fed atomic.Int64
	defer showProgress(progress, "evaluated", "ratings", &fed, int64(len(rows)), logEvery)()
	for _, in := range rows {
		fed.Add(1)
		ev.Observe(embeddings.EvalEvent{Kind: embeddings.EvalPlay,
			Profile: "u" + strconv.FormatUint(uint64(in.User), 10), Title: "m" + strconv.FormatUint(uint64(in.Item), 10)})
	}
	return fmt.Sprintf("rating log (%s), every rating a play in (timestamp, user, item) order", st.Format), nil
}

// feedRecords maps a record file's events to evaluation events.
func feedRecords(r io.Reader, ev *embeddings.Evaluator, limit int) (string, error) {
	rf := recfile.NewReader(r)
	dec := schemas.NewDecoder(schemas.DefaultLimits())
	n, bad := 0, 0
	for limit == 0 || n < limit {
		schema, value, err := rf.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", err
		}
		rec, err := dec.Decode(string(schema), value)
		if err != nil {
			bad++
			continue
		}
		n++
		switch e := rec.(type) {
		case *schemas.Playback:
			switch e.Kind {
			case schemas.PlayStart:
				ev.Observe(embeddings.EvalEvent{Kind: embeddings.EvalPlay, Profile: e.ProfileID, Title: e.TitleID, Country: e.Country})
			case schemas.PlayStop, schemas.PlayComplete:
				frac := 1.0
				if e.DurationMs > 0 {
					frac = float64(e.PositionMs) / float64(e.DurationMs)
				}
				ev.Observe(embeddings.EvalEvent{Kind: embeddings.EvalFinish, Profile: e.ProfileID, Title: e.TitleID, Fraction: frac})
			}
		case *schemas.Browse:
			if (e.Kind == schemas.BrowseSelect || e.Kind == schemas.BrowseAddToList) && e.TitleID != "" {
				ev.Observe(embeddings.EvalEvent{Kind: embeddings.EvalIntent, Profile: e.ProfileID, Title: e.TitleID, Country: e.Country})
			}
		}
	}
	desc := fmt.Sprintf("record file, %d records", n)
	if bad > 0 {
		desc += fmt.Sprintf(" (%d undecodable, skipped)", bad)
	}
	return desc + "; play starts are plays", nil
}

func printEval(w io.Writer, input, desc string, ev *embeddings.Evaluator, took time.Duration) {
	events, profiles, titles := ev.Events()
	res := ev.Results()
	fmt.Fprintf(w, "input:  %s\n        %s\n", input, desc)
	plays := 0
	if len(res) > 0 {
		plays = res[0].Evaluated
	}
	fmt.Fprintf(w, "        %d events fed, %d first plays judged, %d profiles, %d titles played; %s\n\n",
		events, plays, profiles, titles, took.Round(time.Millisecond))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "model\trecall@10\tNDCG@10\tcoverage\tlearn events/s\tms/ranking\t")
	var pop float64
	for _, r := range res {
		if r.Model == embeddings.EvalPopularity {
			pop = r.Recall
		}
		fmt.Fprintf(tw, "%s\t%.4f\t%.4f\t%.3f\t%.0f\t%.3f\t\n", r.Model, r.Recall, r.NDCG, r.Coverage, r.EventsPerSec, r.RankMs)
	}
	tw.Flush()
	if n, d := ev.Refreshes(); n > 0 {
		fmt.Fprintf(w, "dense vectors refreshed %d times, %s in all (not in learn events/s: the consumer refreshes in the background)\n",
			n, d.Round(time.Millisecond))
	}
	if pop > 0 {
		for _, r := range res {
			if r.Model != embeddings.EvalPopularity {
				fmt.Fprintf(w, "%s recall@10 is %.2f× popularity\n", r.Model, r.Recall/pop)
			}
		}
	}
}

// countingReader counts the bytes read through it, for progress.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
