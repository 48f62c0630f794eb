package main

import (
	"github.com/spf13/cobra"

	"github.com/atlas-stream/atlas/dashboard"
)

func init() { subcommands = append(subcommands, newDashboardCmd) }

func newDashboardCmd(g *globals) *cobra.Command {
	var cfg dashboard.Config
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Serve the web dashboard: trending, completion, genre gaps, funnel, quality, alerts",
		Long: `Serve a web page for content strategy and streaming ops over the aggregates
in ClickHouse: trending titles, completion and drop-off, genre demand vs
supply per country, the browse funnel, streaming quality by CDN × ISP over
time, and recent alerts. The page refreshes itself every --refresh; its
period (15 minutes to 7 days) and country are chosen on the page and kept in
its URL.

The dashboard reads ClickHouse only as the read-only user
(--clickhouse-reader-user, ATLAS_CLICKHOUSE_READER_USER) and starts even when
ClickHouse is down: the page then shows why in a banner, its JSON API
answers 503 with the reason, and both recover by themselves. The panels use
the named queries of atlas query, so both show the same numbers.

Endpoints: / (the page), /api/{trending,completion,genre-gap,funnel,quality,
alerts}?period=1h (JSON), /api/health, /healthz, /readyz. There is no login: keep
--listen on loopback or put an authenticating proxy in front. On SIGTERM or
SIGINT it finishes the requests in flight (up to 5 s) and exits 0.`,
		Example: `  # the local services, then open http://127.0.0.1:8080/
  eval "$(scripts/clickhouse.sh env)"
  atlas dashboard

  # on all interfaces, refreshing every 30 s, showing the last 24 hours by default
  atlas dashboard --listen :8080 --refresh 30s --period 24h

  # what the page reads
  curl -s '127.0.0.1:8080/api/trending?period=6h&country=DE'
  curl -s 127.0.0.1:8080/api/health`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ch, err := g.clickhouse("reader")
			if err != nil {
				return err
			}
			cfg.ClickHouse = ch
			if err := cfg.Validate(); err != nil {
				return &usageError{err}
			}
			srv, err := dashboard.New(cfg)
			if err != nil {
				return err
			}
			return srv.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Addr, "listen", dashboard.DefaultAddr, "address to serve the dashboard on, host:port")
	f.DurationVar(&cfg.Refresh, "refresh", dashboard.DefaultRefresh, "how often the page reloads its panels (at least 1s)")
	f.DurationVar(&cfg.Period, "period", dashboard.DefaultPeriod, "time range the page shows unless its URL says otherwise (1m to 2160h)")
	f.DurationVar(&cfg.QueryTimeout, "query-timeout", dashboard.DefaultQueryTimeout, "longest a panel's ClickHouse queries may take")
	return cmd
}
