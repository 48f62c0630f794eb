// Command bench measures the ingest gateway against the raw kafka-go Writer
// it is built on, in one run, on one broker:
//
//	eval "$(scripts/kafka.sh env)"
//	go run ./producers/ingest/bench            # or scripts/bench-ingest.sh
//
// Both sides write the same playback events, keyed by profile id, with
// acks=all, the same balancer, batch size and linger, from the same number
// of concurrent clients, each sending batches of -batch events and waiting
// for the answer before sending the next:
//
//   - raw Writer: each client calls Writer.WriteMessages with a batch of
//     pre-encoded messages (the strictest baseline: no encoding, no
//     validation, no HTTP);
//   - gateway: each client POSTs a signed msgpack batch over loopback HTTP
//     to an in-process gateway (with its player.Producer) and waits for the
//     200, which comes after Kafka acknowledged every event. The client
//     signs each request (HMAC-SHA256 over the body) as a device would, on
//     the same CPUs.
//
// One table per concurrency level (-concurrency, default 16 and 64): at 16
// clients both sides wait mostly on the linger and on Kafka, as a gateway
// does in service; at 64 the machine's CPUs are the limit, which shows the
// gateway's cost per event. Repetitions are interleaved (raw then gateway,
// gateway then raw, …) so that drift of the machine hits both sides alike;
// the table prints every repetition and the medians of events acknowledged
// per second and of p50/p99 latency of a batch, then what each side cost
// this process per event: CPU time (getrusage: the gateway side's HTTP
// clients included, the Kafka broker not) and heap allocations. The
// gateway's target is at least half the raw Writer's events/s. -cpuprofile
// and -memprofile profile the first gateway repetition of each level.
//
// It creates topics under a fresh prefix and deletes them at the end.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/atlas-stream/atlas/internal/kafkaconn"
	"github.com/atlas-stream/atlas/producers/ingest/internal/loadtest"
	"github.com/atlas-stream/atlas/producers/player"
	"github.com/atlas-stream/atlas/topology"
)

type options struct {
	loadtest.Options
	reps        int
	duration    time.Duration
	warmup      time.Duration
	concurrency []int
	cpuProfile  string
	memProfile  string
}

func main() {
	var o options
	brokers := os.Getenv("ATLAS_KAFKA_BROKERS")
	if brokers == "" {
		brokers = kafkaconn.DefaultBrokers
	}
	flag.StringVar(&brokers, "brokers", brokers, "Kafka bootstrap brokers (default $ATLAS_KAFKA_BROKERS)")
	flag.IntVar(&o.reps, "reps", 5, "interleaved repetitions of each side (medians are reported)")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "length of one repetition")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "length of the unreported warm-up of each side")
	flag.IntVar(&o.Batch, "batch", 100, "events per request (gateway) or per WriteMessages call (raw)")
	levels := flag.String("concurrency", "16,64", "concurrent clients on each side; a comma-separated list prints one table per level")
	flag.IntVar(&o.BatchSize, "batch-size", player.DefaultBatchSize, "Kafka batch size per partition, both sides")
	flag.DurationVar(&o.Linger, "linger", player.DefaultLinger, "Kafka batch linger, both sides")
	flag.IntVar(&o.Partitions, "partitions", topology.DefaultPartitions, "partitions of the event topics")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the first gateway repetition of each level to FILE.<clients>")
	flag.StringVar(&o.memProfile, "memprofile", "", "write allocation profiles before and after the first gateway repetition of each level to FILE.<clients>.base and FILE.<clients> (go tool pprof -sample_index=alloc_space -diff_base FILE.64.base FILE.64)")
	flag.Parse()
	o.Brokers = kafkaconn.ParseBrokers(brokers)
	for _, f := range strings.Split(*levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "bench: invalid -concurrency %q: want positive integers, comma-separated\n", *levels)
			os.Exit(2)
		}
		o.concurrency = append(o.concurrency, n)
	}
	o.MaxClients = slices.Max(o.concurrency)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, out io.Writer) error {
	rig, err := loadtest.Start(ctx, o.Options)
	if err != nil {
		return err
	}
	defer rig.Close()
	lo := rig.Options
	fmt.Fprintf(out, "ingest benchmark: batches of %d playback events (%d bytes each), acks=all, batch size %d, linger %s, %d partitions, broker %s, GOMAXPROCS %d; gateway and raw Writer in one process\n",
		lo.Batch, rig.EventBytes, lo.BatchSize, lo.Linger, lo.Partitions, strings.Join(lo.Brokers, ","), runtime.GOMAXPROCS(0))
	var failed error
	for _, clients := range o.concurrency {
		if err := measure(ctx, o, rig, clients, out); err != nil {
			if ctx.Err() != nil {
				return err
			}
			failed = errors.Join(failed, err)
		}
	}
	return failed
}

// measure runs both sides with the given number of clients: a warm-up,
// then interleaved repetitions, and prints their table.
func measure(ctx context.Context, o options, rig *loadtest.Rig, clients int, out io.Writer) error {
	raw, gateway := rig.Raw, rig.Gateway
	fmt.Fprintf(out, "\n%d clients per side: warming up each side for %s…\n", clients, o.warmup)
	for _, s := range []loadtest.Side{raw, gateway} {
		if r := s.Run(ctx, clients, o.warmup); r.Errors > 0 {
			return fmt.Errorf("%s warm-up: %d errors, first: %s", s.Name, r.Errors, r.FirstErr)
		}
	}

	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "rep\traw events/s\tgateway events/s\tratio\traw p50\traw p99\tgateway p50\tgateway p99\terrors\traw CPU/ev\tgateway CPU/ev\traw allocs/ev\tgateway allocs/ev\t")
	var raws, gws []loadtest.Result
	var rcs, gcs []cost
	for rep := range o.reps {
		order := []loadtest.Side{raw, gateway}
		if rep%2 == 1 {
			order = []loadtest.Side{gateway, raw}
		}
		var r, g loadtest.Result
		var rc, gc cost
		for _, s := range order {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			stopProfile := func() {}
			if s.Name == gateway.Name && rep == 0 && o.cpuProfile != "" {
				var err error
				if stopProfile, err = startProfile(fmt.Sprintf("%s.%d", o.cpuProfile, clients)); err != nil {
					return err
				}
			}
			if s.Name == gateway.Name && rep == 0 && o.memProfile != "" {
				if err := writeAllocs(fmt.Sprintf("%s.%d.base", o.memProfile, clients)); err != nil {
					return err
				}
			}
			before := sample()
			res := s.Run(ctx, clients, o.duration)
			c := sample().since(before, res.Events)
			stopProfile()
			if s.Name == gateway.Name && rep == 0 && o.memProfile != "" {
				if err := writeAllocs(fmt.Sprintf("%s.%d", o.memProfile, clients)); err != nil {
					return err
				}
			}
			if s.Name == raw.Name {
				r, rc = res, c
			} else {
				g, gc = res, c
			}
		}
		raws, gws = append(raws, r), append(gws, g)
		rcs, gcs = append(rcs, rc), append(gcs, gc)
		fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%.2f\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%.1f\t%.1f\t\n", rep+1, r.Rate(), g.Rate(), g.Rate()/r.Rate(),
			ms(r.Percentile(.5)), ms(r.Percentile(.99)), ms(g.Percentile(.5)), ms(g.Percentile(.99)), r.Errors+g.Errors,
			us(rc.cpuPerEvent), us(gc.cpuPerEvent), rc.allocsPerEvent, gc.allocsPerEvent)
		if r.Errors+g.Errors > 0 {
			fmt.Fprintf(os.Stderr, "bench: errors in repetition %d: raw %q, gateway %q\n", rep+1, r.FirstErr, g.FirstErr)
		}
	}
	med := medianOf[loadtest.Result]
	rateOf := func(r loadtest.Result) float64 { return r.Rate() }
	pct := func(p float64) func(loadtest.Result) float64 {
		return func(r loadtest.Result) float64 { return float64(r.Percentile(p)) }
	}
	rawRate, gwRate := med(raws, rateOf), med(gws, rateOf)
	medCost := medianOf[cost]
	cpuOf := func(c cost) float64 { return float64(c.cpuPerEvent) }
	allocsOf := func(c cost) float64 { return c.allocsPerEvent }
	fmt.Fprintf(tw, "median\t%.0f\t%.0f\t%.2f\t%s\t%s\t%s\t%s\t\t%s\t%s\t%.1f\t%.1f\t\n", rawRate, gwRate, gwRate/rawRate,
		ms(time.Duration(med(raws, pct(.5)))), ms(time.Duration(med(raws, pct(.99)))),
		ms(time.Duration(med(gws, pct(.5)))), ms(time.Duration(med(gws, pct(.99)))),
		us(time.Duration(medCost(rcs, cpuOf))), us(time.Duration(medCost(gcs, cpuOf))), medCost(rcs, allocsOf), medCost(gcs, allocsOf))
	tw.Flush()
	verdict := "meets"
	if gwRate < 0.5*rawRate {
		verdict = "MISSES"
	}
	fmt.Fprintf(out, "%d clients: gateway/raw = %.2f, %s the target of ≥ 0.50 (medians of %d interleaved repetitions of %s)\n", clients, gwRate/rawRate, verdict, o.reps, o.duration)
	var errs int64
	for i := range raws {
		errs += raws[i].Errors + gws[i].Errors
	}
	if errs > 0 {
		return fmt.Errorf("%d requests failed with %d clients; the numbers above count only acknowledged events", errs, clients)
	}
	return nil
}

// startProfile writes a CPU profile to path until the returned function is
// called.
func startProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	var once sync.Once
	return func() { once.Do(func() { pprof.StopCPUProfile(); f.Close() }) }, nil
}

// cost is what one side spent per acknowledged event, in this process:
// CPU time (user and system, client side included, and whatever else
// the process ran meanwhile, which is little) and heap allocations.
type cost struct {
	cpuPerEvent    time.Duration
	allocsPerEvent float64
}

type usage struct {
	cpu     time.Duration
	mallocs uint64
}

func sample() usage {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return usage{cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), mallocs: ms.Mallocs}
}

func (u usage) since(before usage, events int64) cost {
	if events <= 0 {
		return cost{}
	}
	return cost{cpuPerEvent: (u.cpu - before.cpu) / time.Duration(events), allocsPerEvent: float64(u.mallocs-before.mallocs) / float64(events)}
}

// writeAllocs writes the allocation profile so far to path.
func writeAllocs(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	runtime.GC() // the profile is as of the last GC
	return pprof.Lookup("allocs").WriteTo(f, 0)
}

func us(d time.Duration) string { return fmt.Sprintf("%.2f µs", float64(d)/float64(time.Microsecond)) }

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// medianOf is the median of f over xs.
func medianOf[T any](xs []T, f func(T) float64) float64 {
	v := make([]float64, len(xs))
	for i, x := range xs {
		v[i] = f(x)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}
