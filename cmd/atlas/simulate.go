package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/spf13/cobra"

	"github.com/atlas-stream/atlas/producers/player"
	"github.com/atlas-stream/atlas/producers/sim"
	"github.com/atlas-stream/atlas/producers/sim/recfile"
	"github.com/atlas-stream/atlas/topology"
)

func init() { subcommands = append(subcommands, newSimulateCmd) }

func newSimulateCmd(g *globals) *cobra.Command {
	cfg := sim.DefaultConfig()
	cfg.Events = 0
	var (
		epoch    string
		duration time.Duration
		rate     float64
		truth    string
		out      string
		noKafka  bool
		batch    int
		logEvery time.Duration
	)
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Send deterministic synthetic traffic to Kafka and write its ground truth",
		Long: `Simulate a streaming service: a catalog (published to the catalog topic),
accounts with plans, profiles with tastes and devices, browse and playback
sessions with a diurnal rhythm, planted fraud and quality incidents, and
out-of-order, late and duplicate deliveries. The same --seed (and flags)
gives byte-identical events and ground truth.

Simulated time starts at --epoch and is independent of the wall clock;
--rate only paces sending. Stop after --events N records (duplicates
included; default 1,000,000), or after --duration at --rate (N = rate ×
duration), or at --span of simulated time, whichever comes first.

--truth writes the ground truth (JSON, gzip if the name ends in .gz): the
expected aggregates per window, the late events and duplicates, the planted
incidents and every profile's taste. --out writes the event stream to a
record file (length-prefixed msgpack with each record's schema), in addition
to Kafka, or instead of it with --no-kafka.

The topics must exist (atlas topology apply) with --partitions partitions:
the ground truth's lateness is computed per partition.`,
		Example: `  # one million events as fast as possible, with the ground truth
  atlas simulate --seed 42 --events 1000000 --truth truth.json.gz

  # a demo: 200 events/s for 10 minutes
  atlas simulate --seed 1 --rate 200 --duration 10m --truth demo-truth.json

  # to a file only, for atlas eval; no incidents, no late events
  atlas simulate --no-kafka --out events.rec.gz --events 100000 --no-incidents --late-rate 0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			if f.Changed("events") && f.Changed("duration") {
				return &usageError{errors.New("give --events or --duration, not both")}
			}
			if rate < 0 {
				return &usageError{fmt.Errorf("invalid --rate %v: must not be negative", rate)}
			}
			if duration > 0 {
				if rate <= 0 {
					return &usageError{errors.New("--duration needs a --rate: as fast as possible, a wall-clock duration would not say how many events to send")}
				}
				cfg.Events = int64(rate * duration.Seconds())
			}
			if cfg.Events == 0 && cfg.Span == 0 {
				cfg.Events = 1_000_000
			}
			t, err := time.Parse(time.RFC3339, epoch)
			if err != nil {
				return &usageError{fmt.Errorf("invalid --epoch %q: want RFC 3339, e.g. 2026-11-02T00:00:00Z", epoch)}
			}
			cfg.Epoch = t
			if noKafka && out == "" {
				return &usageError{errors.New("--no-kafka needs --out: the events must go somewhere")}
			}
			if err := cfg.Validate(); err != nil {
				return &usageError{err}
			}
			return runSimulate(cmd.Context(), g, cfg, simulateOutputs{rate: rate, truth: truth, out: out, kafka: !noKafka,
				batch: batch, logEvery: logEvery, stdout: cmd.OutOrStdout(), stderr: cmd.ErrOrStderr()})
		},
	}
	f := cmd.Flags()
	f.Uint64Var(&cfg.Seed, "seed", 1, "seed: the same seed and flags give identical events and truth")
	f.StringVar(&epoch, "epoch", sim.DefaultEpoch.Format(time.RFC3339), "simulated time of the first event (RFC 3339)")
	f.Int64Var(&cfg.Events, "events", 0, "records to send, duplicates included (default 1000000 without --duration or --span)")
	f.DurationVar(&duration, "duration", 0, "wall-clock duration at --rate: sends rate × duration records")
	f.DurationVar(&cfg.Span, "span", 0, "stop at this much simulated time after --epoch")
	f.Float64Var(&rate, "rate", 0, "records per second of wall time; 0 sends as fast as possible")
	f.IntVar(&cfg.Profiles, "profiles", 20_000, "viewer profiles in the population")
	f.IntVar(&cfg.Titles, "titles", 2_000, "titles in the catalog")
	f.IntVar(&cfg.Partitions, "partitions", topology.DefaultPartitions, "partitions of the playback and browse topics")
	f.Float64Var(&cfg.LateRate, "late-rate", cfg.LateRate, "fraction of events held back until late")
	f.Float64Var(&cfg.OutOfOrderRate, "out-of-order-rate", cfg.OutOfOrderRate, "fraction of events delivered out of order but on time")
	f.Float64Var(&cfg.DuplicateRate, "duplicate-rate", cfg.DuplicateRate, "fraction of events sent twice with the same id")
	f.BoolVar(&cfg.NoIncidents, "no-incidents", false, "plant no fraud or quality incidents")
	f.StringVar(&truth, "truth", "", "write the ground truth to this JSON file (.gz: compressed)")
	f.StringVar(&out, "out", "", "also write the events to this record file (.gz: compressed)")
	f.BoolVar(&noKafka, "no-kafka", false, "do not write to Kafka (with --out)")
	f.IntVar(&batch, "batch", sim.DefaultBatch, "records per Kafka write")
	f.DurationVar(&logEvery, "log-every", 10*time.Second, "progress log interval when stderr is not a terminal")
	return cmd
}

type simulateOutputs struct {
	rate           float64
	truth, out     string
	kafka          bool
	batch          int
	logEvery       time.Duration
	stdout, stderr io.Writer
}

func runSimulate(ctx context.Context, g *globals, cfg sim.Config, o simulateOutputs) (err error) {
	gen, err := sim.New(cfg)
	if err != nil {
		return &usageError{err}
	}
	var sinks sim.Tee
	if o.out != "" {
		f, err := recfile.Create(o.out)
		if err != nil {
			return err
		}
		defer func() {
			if cerr := f.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("cannot close %s: %w", o.out, cerr)
			}
		}()
		sinks = append(sinks, sim.FileSink{W: f.Writer})
	}
	if o.kafka {
		ks, closeKafka, err := simKafkaSink(ctx, g, cfg.Partitions, o.batch)
		if err != nil {
			return err
		}
		defer func() {
			if cerr := closeKafka(); cerr != nil && err == nil {
				err = cerr
			}
		}()
		sinks = append(sinks, ks)
	}
	counter := &sim.Counter{Sink: sinks}
	var sink sim.Sink = counter
	if o.rate > 0 {
		sink = &sim.Paced{Sink: counter, Rate: o.rate}
	}

	start := time.Now()
	stop := startSimProgress(counter, cfg.Events, o, start)
	truth, runErr := gen.Run(ctx, sink)
	stop()
	if runErr != nil {
		return runErr
	}
	elapsed := time.Since(start)
	if msg := behindRate(o.rate, counter.Sent(), elapsed, o.kafka, o.batch); msg != "" {
		fmt.Fprintln(o.stderr, "warning: "+msg)
	}
	if o.truth != "" {
		if err := truth.WriteFile(o.truth); err != nil {
			return err
		}
	}
	tt := truth.Totals
	fmt.Fprintf(o.stdout, "sent %d events (%d unique, %d duplicates, %d late, %d out of order) and %d titles in %s, %.0f events/s\n",
		tt.Sent, tt.Unique, tt.Duplicates, tt.Late, tt.OutOfOrder, tt.Catalog, elapsed.Round(time.Millisecond), float64(tt.Sent)/elapsed.Seconds())
	fmt.Fprintf(o.stdout, "simulated time %s .. %s, %d sessions, %d incidents\n",
		time.UnixMilli(tt.FirstEventMs).UTC().Format(time.RFC3339), time.UnixMilli(tt.LastEventMs).UTC().Format(time.RFC3339), tt.Sessions, len(truth.Incidents))
	if o.truth != "" {
		fmt.Fprintf(o.stdout, "ground truth: %s\n", o.truth)
	}
	return nil
}

// simKafkaSink checks that the event topics exist with the partitions the
// truth assumes and returns a sink writing to them.
func simKafkaSink(ctx context.Context, g *globals, partitions, batch int) (sim.Sink, func() error, error) {
	kc, err := g.kafka()
	if err != nil {
		return nil, nil, err
	}
	topo := topology.Default(topology.Options{Prefix: g.topicPrefix, Partitions: partitions})
	client, err := kc.Client()
	if err != nil {
		return nil, nil, err
	}
	client.Timeout = 20 * time.Second
	names := []string{topo.Name(topology.Playback), topo.Name(topology.Browse), topo.Name(topology.Catalog)}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read topic metadata from Kafka at %v: %w", kc.BrokerList(), err)
	}
	for _, t := range meta.Topics {
		if t.Error != nil {
			return nil, nil, fmt.Errorf("cannot use topic %s: %w (create the topics with `atlas topology apply`)", t.Name, t.Error)
		}
		if t.Name != topo.Name(topology.Catalog) && len(t.Partitions) != partitions {
			return nil, nil, &usageError{fmt.Errorf("topic %s has %d partitions, but --partitions is %d: the ground truth would not match", t.Name, len(t.Partitions), partitions)}
		}
	}
	transport, err := kc.Transport()
	if err != nil {
		return nil, nil, err
	}
	w := sim.NewKafkaWriter(kc.BrokerList(), transport)
	closeFn := func() error {
		defer transport.CloseIdleConnections()
		if err := w.Close(); err != nil {
			return fmt.Errorf("cannot close the Kafka writer: %w", err)
		}
		return nil
	}
	return sim.NewKafkaSink(w, topo, batch), closeFn, nil
}

// progressBar draws done out of total as a 20-cell bar and a percentage,
// for a progress line on a terminal: "[=========>          ]  47%".
func progressBar(done, total int64) string {
	const width = 20
	if total <= 0 {
		return ""
	}
	frac := min(max(float64(done)/float64(total), 0), 1)
	full := int(frac * width)
	bar := strings.Repeat("=", full)
	if full < width {
		bar += ">" + strings.Repeat(" ", width-full-1)
	}
	return fmt.Sprintf("[%s] %3.0f%%", bar, 100*frac)
}

// behindAfter is how long a paced run goes before its progress may warn
// that it is behind --rate: the first writes open connections.
const behindAfter = 5 * time.Second

// behindRate returns a warning when a run paced at rate (0: unpaced) sent
// sent records in elapsed, more than 5% fewer than asked, else "".
// Without it a run with too small a --batch fell behind silently (see
// sim.LingerBatch), and latencies measured under its "load" were taken at
// about half of it.
func behindRate(rate float64, sent int64, elapsed time.Duration, kafka bool, batch int) string {
	if rate <= 0 || elapsed <= 0 {
		return ""
	}
	got := float64(sent) / elapsed.Seconds()
	if got >= 0.95*rate {
		return ""
	}
	msg := fmt.Sprintf("sending %.0f events/s, %.0f%% of --rate %.0f: the load is lower than asked", got, 100*got/rate, rate)
	if kafka {
		// Keeping up means a write per linger of the ingest gateway's producer.
		if want := sim.LingerBatch(rate, player.DefaultLinger); batch < want {
			msg += fmt.Sprintf(" (each Kafka write of --batch %d records waits for its acknowledgement; try --batch %d or more)", batch, want)
		} else {
			msg += " (Kafka or this machine cannot take more)"
		}
	}
	return msg
}

// startSimProgress shows progress on stderr: a line rewritten in place when
// stderr is a terminal, a log line every o.logEvery otherwise. The returned
// function stops it.
func startSimProgress(c *sim.Counter, total int64, o simulateOutputs, start time.Time) func() {
	tty := false
	if f, ok := o.stderr.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	every := o.logEvery
	if tty {
		every = 250 * time.Millisecond
	}
	if every <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(every)
		defer tick.Stop()
		warned := false
		for {
			select {
			case <-done:
				if tty {
					fmt.Fprintln(o.stderr)
				}
				return
			case <-tick.C:
			}
			n := c.Sent()
			el := time.Since(start)
			rate := float64(n) / el.Seconds()
			eta := "?"
			if total > 0 && rate > 0 {
				eta = (time.Duration(float64(total-n)/rate) * time.Second).Round(time.Second).String()
			}
			if !warned && el >= behindAfter {
				if msg := behindRate(o.rate, n, el, o.kafka, o.batch); msg != "" {
					warned = true
					if tty {
						fmt.Fprintf(o.stderr, "\r\033[Kwarning: %s\n", msg)
					} else {
						slog.Warn(msg)
					}
				}
			}
			if tty {
				fmt.Fprintf(o.stderr, "\r\033[K%s sent %d/%d events  %.0f events/s  elapsed %s  ETA %s",
					progressBar(n, total), n, total, rate, el.Round(time.Second), eta)
			} else {
				slog.Info("simulating", "sent", n, "total", total, "events_per_s", int64(rate), "elapsed", el.Round(time.Second).String(), "eta", eta)
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}
