package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/atlas-stream/atlas/internal/kafkaconn"
	"github.com/atlas-stream/atlas/internal/ops"
	"github.com/atlas-stream/atlas/topology"
)

func init() { subcommands = append(subcommands, newRunCmd) }

// runFlags are the flags of `atlas run`.
type runFlags struct {
	opsAddr       string
	flushInterval time.Duration
	window        time.Duration
	lateness      time.Duration
	grace         time.Duration
	finalOnly     bool
	sessionTO     time.Duration
}

// roleBuilder wires one role: it returns the parts to run (in start
// order), the readiness checks, and cleanups to run after the parts
// stopped. Each role registers its builder from its own file (see
// run_aggregates.go).
type roleBuilder func(ctx context.Context, env *roleEnv) error

// roleEnv is what every role builder gets and fills.
type roleEnv struct {
	g       *globals
	f       runFlags
	kafka   kafkaconn.Config
	topo    topology.Topology
	reg     *prometheus.Registry
	parts   []part
	checks  []ops.Check
	closers []func()
}

// roles that `atlas run` knows, and their start order for "all".
var (
	roleBuilders  = map[string]roleBuilder{}
	runnableRoles []string
)

func registerRole(name string, b roleBuilder) {
	roleBuilders[name] = b
	runnableRoles = append(runnableRoles, name)
}

func newRunCmd(g *globals) *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run ROLE...",
		Short: "Run consumer roles (aggregates, …) or all of them in one process",
		Long: `Run one or more consumer roles in this process until SIGINT or SIGTERM.
Each role is its own consumer group member: it owns some partitions of its
input topics, restores their state, processes records, and commits offsets
only after what depends on them is durable. "all" runs every role.

On SIGTERM the process stops taking new records, makes what it processed
durable, commits, leaves the group and exits 0.

Metrics, health and readiness are served on --ops-addr:
/metrics, /healthz, /readyz, and Go's profiles on /debug/pprof/ (for
example go tool pprof http://127.0.0.1:9464/debug/pprof/profile?seconds=10).`,
		Example: `  atlas run aggregates
  atlas run all --ops-addr 127.0.0.1:9464
  ATLAS_TOPIC_PREFIX=staging. atlas run aggregates --flush-interval 2s`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			roles, err := parseRoles(args)
			if err != nil {
				return &usageError{err}
			}
			return runRoles(cmd.Context(), g, f, roles)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.opsAddr, "ops-addr", "127.0.0.1:9464", "address of /metrics, /healthz, /readyz and /debug/pprof/ (empty: none)")
	fl.DurationVar(&f.flushInterval, "flush-interval", time.Second, "how often each partition makes its outputs durable and commits")
	fl.DurationVar(&f.window, "window", time.Minute, "aggregates: tumbling window length (must divide an hour)")
	fl.DurationVar(&f.lateness, "lateness", 5*time.Second, "aggregates: out-of-orderness the watermark allows")
	fl.DurationVar(&f.grace, "grace", 10*time.Second, "aggregates: time a window stays open after the watermark passes its end")
	fl.BoolVar(&f.finalOnly, "final-only", false, "aggregates: write rows only when their window closes (no provisional rows)")
	fl.DurationVar(&f.sessionTO, "session-timeout", 10*time.Second, "consumer group session timeout")
	return cmd
}

func parseRoles(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		if a == "all" {
			return runnableRoles, nil
		}
		found := false
		for _, r := range runnableRoles {
			if a == r {
				found, out = true, append(out, r)
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown role %q: want one of %s, or all", a, strings.Join(runnableRoles, ", "))
		}
	}
	return out, nil
}

// part is one long-running piece of the process.
type part struct {
	name string
	run  func(ctx context.Context) error
}

func runRoles(ctx context.Context, g *globals, f runFlags, roles []string) error {
	kc, err := g.kafka()
	if err != nil {
		return err
	}
	t := topology.Default(topology.Options{Prefix: g.topicPrefix})
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	env := &roleEnv{g: g, f: f, kafka: kc, topo: t, reg: reg}
	defer func() {
		for i := len(env.closers) - 1; i >= 0; i-- {
			env.closers[i]()
		}
	}()
	for _, role := range roles {
		if err := roleBuilders[role](ctx, env); err != nil {
			return err
		}
	}
	parts, checks := env.parts, env.checks
	if f.opsAddr != "" {
		parts = append([]part{{"ops http", func(ctx context.Context) error {
			return ops.Serve(ctx, "metrics and health", f.opsAddr, ops.Handler(reg, checks))
		}}}, parts...)
	}
	return runParts(ctx, parts)
}

// runParts starts parts in order and, when ctx ends or one part fails,
// stops them in reverse order, each after the ones started after it have
// returned, logging how long each stop took.
func runParts(ctx context.Context, parts []part) error {
	type running struct {
		cancel context.CancelFunc
		done   chan error
	}
	failed := make(chan string, len(parts))
	rs := make([]running, len(parts))
	for i, p := range parts {
		pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		rs[i] = running{cancel, make(chan error, 1)}
		go func() {
			err := p.run(pctx)
			if err != nil {
				slog.Error("part failed", "part", p.name, "err", err)
				failed <- p.name
			}
			rs[i].done <- err
		}()
		slog.Info("started", "part", p.name)
	}
	var why string
	select {
	case <-ctx.Done():
		why = "signal"
	case name := <-failed:
		why = name + " failed"
	}
	slog.Info("stopping", "reason", why)
	var errs []error
	for i := len(parts) - 1; i >= 0; i-- {
		start := time.Now()
		rs[i].cancel()
		if err := <-rs[i].done; err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", parts[i].name, err))
		}
		slog.Info("stopped", "part", parts[i].name, "took", time.Since(start).Round(time.Millisecond))
	}
	return errors.Join(errs...)
}

// failpointFromEnv reads ATLAS_FAILPOINT=NAME:N — kill the process with
// SIGKILL the Nth time the engine reaches checkpoint step NAME
// (before-checkpoint, before-dlq, before-commit, after-commit). Tests use
// it to crash inside each window of flush → commit.
func failpointFromEnv() func(string) {
	spec := os.Getenv("ATLAS_FAILPOINT")
	if spec == "" {
		return nil
	}
	name, nth, ok := strings.Cut(spec, ":")
	n, err := strconv.Atoi(nth)
	if !ok || err != nil || n < 1 {
		slog.Error("ignoring malformed ATLAS_FAILPOINT (want NAME:N)", "value", spec)
		return nil
	}
	var hits atomic.Int64
	return func(step string) {
		if step != name {
			return
		}
		if h := hits.Add(1); h == int64(n) {
			slog.Warn("failpoint reached: killing the process", "failpoint", name, "hit", h)
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}
}
