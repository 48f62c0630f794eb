package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"golang.org/x/time/rate"

	"github.com/atlas-stream/atlas/producers/ingest"
	"github.com/atlas-stream/atlas/producers/player"
	"github.com/atlas-stream/atlas/topology"
)

func init() { subcommands = append(subcommands, newIngestCmd) }

// Environment variables of the gateway's secrets. They are not flags, so
// that they never show in a process list.
const (
	envIngestSecret = "ATLAS_INGEST_SECRET"
	envIngestIPKey  = "ATLAS_INGEST_IP_KEY"
)

func newIngestCmd(g *globals) *cobra.Command {
	var (
		cfg                       ingest.Config
		sessionRate, ipRate       float64
		trustedProxies            []string
		batchSize, buffer         int
		linger, producerCloseTime time.Duration
	)
	cmd := &cobra.Command{
		Use:   "ingest",
		Short: "Run the HTTP ingest gateway: signed event batches from devices into Kafka",
		Long: `Serve POST /v1/events for devices that cannot speak Kafka. Each request
carries a batch of playback and browse events (msgpack, or JSON for
browsers), signed with HMAC-SHA256 under a per-session key derived from the
server secret. The gateway refuses unsigned, stale (±300 s) and replayed
requests, enforces body, batch and per-field limits and per-session and
per-network rates, stamps the receive time, replaces the client address by
its network prefix and a keyed hash, and answers 200 with a status per event
only after Kafka acknowledged every accepted one (503 when it did not).
It also serves /healthz, /readyz and /metrics.

The server secret comes from ` + envIngestSecret + ` (required, at least 32
bytes); the key of the client-network hash from ` + envIngestIPKey + `
(default: derived from the secret). On SIGTERM or SIGINT the gateway stops
accepting connections, finishes the requests in flight and flushes the
producer.`,
		Example: `  # a local gateway on the local broker
  export ATLAS_INGEST_SECRET=$(openssl rand -hex 32)
  eval "$(scripts/kafka.sh env)"
  atlas ingest

  # behind a load balancer in 10.0.0.0/8, on all interfaces, stricter rates
  atlas ingest --listen :8088 --trusted-proxies 10.0.0.0/8 --session-rate 2 --ip-rate 50

  # check it
  curl -s localhost:8088/readyz; curl -s localhost:8088/metrics | grep atlas_ingest`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			secret, ok := os.LookupEnv(envIngestSecret)
			if !ok || secret == "" {
				return &usageError{fmt.Errorf("%s is not set: the gateway needs the server secret that session keys derive from (at least %d bytes, e.g. export %s=$(openssl rand -hex 32)); the login service must use the same one", envIngestSecret, ingest.MinSecretBytes, envIngestSecret)}
			}
			cfg.Secret = []byte(secret)
			if k := os.Getenv(envIngestIPKey); k != "" {
				cfg.IPHashKey = []byte(k)
			}
			cfg.SessionRate = flagRate(sessionRate)
			cfg.IPRate = flagRate(ipRate)
			for _, s := range trustedProxies {
				p, err := netip.ParsePrefix(s)
				if err != nil {
					return &usageError{fmt.Errorf("invalid --trusted-proxies entry %q: want a CIDR such as 10.0.0.0/8", s)}
				}
				cfg.TrustedProxies = append(cfg.TrustedProxies, p.Masked())
			}
			if err := cfg.Validate(); err != nil {
				return &usageError{err}
			}

			kc, err := g.kafka()
			if err != nil {
				return err
			}
			topts := topology.Options{Prefix: g.topicPrefix}
			if err := topts.Validate(); err != nil {
				return &usageError{err}
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			pcfg := player.Config{
				Kafka:      kc,
				Topology:   topology.Default(topts),
				BatchSize:  batchSize,
				Linger:     linger,
				Buffer:     buffer,
				WhenFull:   player.Block,
				Limits:     cfg.Limits,
				Registerer: reg,
			}
			if err := pcfg.Validate(); err != nil {
				return &usageError{err}
			}
			cfg.Registerer, cfg.Gatherer = reg, reg
			return runIngest(cmd.Context(), cfg, pcfg, producerCloseTime)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Addr, "listen", ingest.DefaultAddr, "address to serve HTTP on, host:port")
	f.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", ingest.DefaultMaxBodyBytes, "largest request body; larger ones get 413")
	f.IntVar(&cfg.MaxEvents, "max-events", ingest.DefaultMaxEvents, "most events in one batch; more get 413")
	f.Float64Var(&sessionRate, "session-rate", ingest.DefaultSessionRate, "requests per second per session (token bucket); 0 disables the limit")
	f.IntVar(&cfg.SessionBurst, "session-burst", ingest.DefaultSessionBurst, "burst of the per-session token bucket")
	f.Float64Var(&ipRate, "ip-rate", ingest.DefaultIPRate, "requests per second per client address (IPv6: per /64); 0 disables the limit")
	f.IntVar(&cfg.IPBurst, "ip-burst", ingest.DefaultIPBurst, "burst of the per-address token bucket")
	f.IntVar(&cfg.MaxInFlight, "max-in-flight", ingest.DefaultMaxInFlight, "requests handled at once; more get 503")
	f.StringSliceVar(&trustedProxies, "trusted-proxies", nil, "CIDRs of proxies whose X-Forwarded-For is believed, comma-separated")
	f.DurationVar(&cfg.KafkaTimeout, "kafka-timeout", ingest.DefaultKafkaTimeout, "longest wait for Kafka's acknowledgements before answering 503")
	f.DurationVar(&cfg.DrainTimeout, "drain-timeout", ingest.DefaultDrainTimeout, "longest wait for requests in flight on shutdown")
	f.IntVar(&batchSize, "batch-size", player.DefaultBatchSize, "most records in one produce request to a partition")
	f.DurationVar(&linger, "linger", player.DefaultLinger, "how long a partition's batch waits to fill before it is sent")
	f.IntVar(&buffer, "buffer", player.DefaultBuffer, "most records queued or in flight to Kafka; requests wait for room")
	f.DurationVar(&producerCloseTime, "flush-timeout", 30*time.Second, "longest wait for the producer to flush on shutdown")
	return cmd
}

// flagRate maps a rate flag to a limit: 0 means no limit.
func flagRate(v float64) rate.Limit {
	if v <= 0 {
		return rate.Inf
	}
	return rate.Limit(v)
}

// runIngest starts the producer, then the gateway; on ctx's end it stops
// them in reverse order and logs how long each took.
func runIngest(ctx context.Context, cfg ingest.Config, pcfg player.Config, flushTimeout time.Duration) error {
	producer, err := player.New(pcfg)
	if err != nil {
		return err
	}
	gw, err := ingest.New(cfg, producer)
	if err != nil {
		_ = producer.Close(context.Background())
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	if err := producer.Ready(rctx); err != nil {
		slog.Warn("Kafka is not ready; the gateway answers 503 until it is", "err", err)
	}
	cancel()

	runErr := gw.Run(ctx)

	start := time.Now()
	fctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	closeErr := producer.Close(fctx)
	slog.Info("producer flushed and closed", "took", time.Since(start).Round(time.Millisecond).String())
	return errors.Join(runErr, closeErr)
}
