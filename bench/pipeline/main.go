// Command pipeline is the one table of `make bench` (issue 8): every row
// measured in one run on this machine, against the real Kafka broker and
// ClickHouse server, as medians of interleaved repetitions with min–max,
// each beside its target.
//
//	(a) a raw kafka-go consumer group drains preloaded playback and browse
//	    topics (consume only, offsets committed every second);
//	(b) `atlas run all` (the real binary, all three roles, fresh consumer
//	    groups) drains the same preloaded traffic; a repetition whose
//	    ClickHouse totals differ from the simulator's ground truth fails the
//	    run, and no table is printed;
//	(c) b/a, per repetition;
//	(d) CPU ns, allocations and bytes per event of decode and of each
//	    processor, on one core (bench/perevent);
//	(e) the ClickHouse sink's rows/s beside a plain clickhouse-go batch
//	    insert of the same rows (consumers/aggregates/chsink);
//	(f) at 25, 50 and 75 % of the sustainable rate (b's median), p50/p99 of
//	    event → queryable in ClickHouse and event → alert on the topic;
//	(g) the ingest gateway's events/s beside the raw kafka-go Writer
//	    (producers/ingest/bench);
//	(h) embeddings state bytes per profile and restore of a million profiles
//	    from the changelog on the real broker (consumers/embeddings).
//
// Each repetition of (a) and (b) gets a stack of its own (topic prefix,
// hence topics and consumer groups, and a ClickHouse database), preloaded
// with the same simulator run (same seed: the same records in the same
// partitions); (a) and (b) alternate which goes first, and each
// repetition also runs the Go benchmarks of (d), (e) and (h) once, so that
// a slow minute on this shared machine spreads over every row instead of
// landing on one.
//
// It needs the services (scripts/kafka.sh, scripts/clickhouse.sh and their
// env output) and runs from the module root; scripts/bench.sh runs it.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/atlas-stream/atlas/internal/kafkaconn"
	"github.com/atlas-stream/atlas/producers/sim"
	"github.com/atlas-stream/atlas/topology"
)

// bench is one run: its settings and what every row measured.
type bench struct {
	id         string
	dir        string
	root       string
	atlasBin   string
	kafka      kafkaconn.Config
	partitions int
	keep       bool

	raw, atlas []drain
	ratios     []float64
	compared   int // rows and late events compared with the truth, per repetition
	events     int64
	gosamples  samples
	levels     []level
	ingest     map[int][2][]float64
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	b := &bench{partitions: topology.DefaultPartitions, gosamples: samples{}}
	events := flag.Int64("events", envInt("ATLAS_BENCH_EVENTS", 200_000), "simulated events preloaded for (a) and (b) (env ATLAS_BENCH_EVENTS)")
	reps := flag.Int("count", int(envInt("ATLAS_BENCH_COUNT", 5)), "interleaved repetitions of every row (env ATLAS_BENCH_COUNT)")
	rows := flag.String("rows", envStr("ATLAS_BENCH_ROWS", "abcdefgh"), "rows to measure (env ATLAS_BENCH_ROWS); (c) needs (a) and (b), (f) needs (b)")
	latDur := flag.Duration("latency-duration", 20*time.Second, "(f): how long bots start at each load (each load takes about this + 20 s)")
	clients := flag.String("ingest-concurrency", "16,64", "(g): concurrent clients per side, comma-separated")
	seed := flag.Uint64("seed", 42, "simulator seed of the preloaded traffic")
	flag.BoolVar(&b.keep, "keep", false, "keep every stack's topics and database")
	flag.Parse()
	if *reps < 1 || *events < 1000 {
		return errors.New("-count must be ≥ 1 and -events ≥ 1000")
	}
	want := func(r byte) bool { return strings.IndexByte(*rows, r) >= 0 }
	for _, v := range []string{"ATLAS_KAFKA_BROKERS", "ATLAS_CLICKHOUSE_ADDR", "ATLAS_CLICKHOUSE_ADMIN_PASSWORD"} {
		if os.Getenv(v) == "" {
			return fmt.Errorf("%s is not set: start the services (scripts/kafka.sh start; scripts/clickhouse.sh start) and eval their env output, or run make bench", v)
		}
	}
	b.kafka = kafkaconn.Config{Brokers: kafkaconn.ParseBrokers(os.Getenv("ATLAS_KAFKA_BROKERS"))}
	var err error
	if b.root, err = os.Getwd(); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(b.root, "go.mod")); err != nil {
		return errors.New("run from the module root (make bench does)")
	}
	var id [3]byte
	rand.Read(id[:])
	b.id = hex.EncodeToString(id[:])
	if b.dir, err = os.MkdirTemp("", "atlas-bench-"); err != nil {
		return err
	}
	defer os.RemoveAll(b.dir)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	started := time.Now()

	logf("building bin and benchmarks (run %s, logs in %s)", b.id, b.dir)
	b.atlasBin = filepath.Join(b.dir, "atlas")
	build := exec.Command("go", "build", "-o", b.atlasBin, "./cmd/atlas")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("cannot build the atlas binary: %w\n%s", err, out)
	}
	var gbs []*goBench
	for _, g := range goBenches() {
		if (g.pkg == "./bench/perevent" && want('d')) || (strings.Contains(g.pkg, "chsink") && want('e')) ||
			(strings.Contains(g.pkg, "embeddings") && want('h')) {
			if err := g.build(b.root, b.dir); err != nil {
				return err
			}
			gbs = append(gbs, g)
		}
	}

	cfg := sim.DefaultConfig()
	cfg.Seed, cfg.Events, cfg.Partitions = *seed, *events, b.partitions
	for rep := 0; rep < *reps; rep++ {
		if want('a') || want('b') {
			if err := b.drains(ctx, rep, cfg, want('a'), want('b')); err != nil {
				return err
			}
		}
		for _, g := range gbs {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			logf("rep %d: %s (%s)", rep+1, g.name, g.pkg)
			if err := g.run(b.root, b.gosamples); err != nil {
				return err
			}
		}
	}
	if want('f') && len(b.atlas) > 0 {
		sustainable := median(rates(b.atlas))
		if b.levels, err = b.latency(ctx, sustainable, []float64{0.25, 0.5, 0.75}, *latDur); err != nil {
			return err
		}
	}
	if want('g') {
		logf("(g) ingest gateway vs raw Writer, %d interleaved repetitions per client count (%s)", *reps, *clients)
		if b.ingest, _, err = ingest(b.root, *reps, *clients); err != nil {
			return err
		}
	}
	b.print(os.Stdout, *reps, time.Since(started))
	return nil
}

// drains runs one repetition of (a) and (b) on a fresh stack.
func (b *bench) drains(ctx context.Context, rep int, cfg sim.Config, doRaw, doAtlas bool) error {
	s, err := b.newStack(strconv.Itoa(rep + 1))
	if err != nil {
		return err
	}
	defer s.cleanup()
	start := time.Now()
	truth, err := s.preload(ctx, cfg)
	if err != nil {
		return err
	}
	total, err := endOffsets(ctx, b.kafka, s.topo.Name(topology.Playback), s.topo.Name(topology.Browse))
	if err != nil {
		return err
	}
	logf("rep %d: preloaded %d records (%d sent, %d duplicates, %d late) in %s", rep+1, total, truth.Totals.Sent,
		truth.Totals.Duplicates, truth.Totals.Late, time.Since(start).Round(100*time.Millisecond))
	b.events = total
	var r, a drain
	order := []byte("ab")
	if rep%2 == 1 {
		order = []byte("ba")
	}
	for _, side := range order {
		switch {
		case side == 'a' && doRaw:
			if r, err = s.rawDrain(ctx, total); err != nil {
				return err
			}
			b.raw = append(b.raw, r)
			logf("rep %d: (a) raw drain %.0f events/s (%s, group joined in %s)", rep+1, r.rate(), r.elapsed.Round(time.Millisecond), r.startup.Round(time.Millisecond))
		case side == 'b' && doAtlas:
			if a, err = s.atlasDrain(ctx, total); err != nil {
				return err
			}
			n, diffs, err := s.diffWithTruth(truth)
			if err != nil {
				return err
			}
			if len(diffs) > 0 {
				b.keep = true
				return fmt.Errorf("rep %d: (b) ClickHouse differs from the ground truth in %d of %d rows and late events (database %s kept); first ones:\n%s",
					rep+1, len(diffs), n, s.database, strings.Join(diffs[:min(len(diffs), 15)], "\n"))
			}
			b.compared = n
			b.atlas = append(b.atlas, a)
			logf("rep %d: (b) atlas run all %.0f events/s (%s, first record %s after start); all %d rows and late events equal the truth",
				rep+1, a.rate(), a.elapsed.Round(time.Millisecond), a.startup.Round(time.Millisecond), n)
		}
	}
	if doRaw && doAtlas {
		b.ratios = append(b.ratios, a.rate()/r.rate())
	}
	return nil
}

func rates(ds []drain) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = d.rate()
	}
	return out
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func envInt(name string, def int64) int64 {
	if v, err := strconv.ParseInt(os.Getenv(name), 10, 64); err == nil {
		return v
	}
	return def
}

func envStr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
