package dashboard

import (
	"fmt"
	"net"
	"time"

	"github.com/atlas-stream/atlas/schemas/warehouse"
)

// Defaults applied by [Config] to fields left at their zero value.
const (
	DefaultAddr         = "127.0.0.1:8080"
	DefaultRefresh      = 10 * time.Second
	DefaultQueryTimeout = 20 * time.Second
	DefaultPeriod       = time.Hour
)

// Limits of Config and of the API's period parameter.
const (
	MinRefresh = time.Second
	MaxPeriod  = 90 * 24 * time.Hour
)

// Config says where the dashboard listens and how it reads ClickHouse. Only
// cmd/atlas fills it from flags and the environment.
type Config struct {
	// Addr is the host:port the page and its API are served on. The
	// dashboard has no login: keep it on loopback or behind a proxy that
	// authenticates.
	//
	// Default: "127.0.0.1:8080".
	Addr string

	// Refresh is how often the page reloads every panel.
	//
	// Default: 10s; at least 1s.
	Refresh time.Duration

	// Period is the time range the page shows when the URL does not say
	// (?period=6h); the page offers 15m, 1h, 6h, 24h and 7d.
	//
	// Default: 1h; at most 90 days.
	Period time.Duration

	// QueryTimeout bounds each API request's work in ClickHouse.
	//
	// Default: 20s.
	QueryTimeout time.Duration

	// ClickHouse is the connection of the read-only dashboard user
	// (readonly = 2 on the server). The dashboard only reads, and reports
	// in /api/health and its log whether the server lets this user write.
	ClickHouse warehouse.Config
}

func (c *Config) addr() string {
	if c.Addr == "" {
		return DefaultAddr
	}
	return c.Addr
}

func (c *Config) refresh() time.Duration {
	if c.Refresh == 0 {
		return DefaultRefresh
	}
	return c.Refresh
}

func (c *Config) period() time.Duration {
	if c.Period == 0 {
		return DefaultPeriod
	}
	return c.Period
}

func (c *Config) queryTimeout() time.Duration {
	if c.QueryTimeout == 0 {
		return DefaultQueryTimeout
	}
	return c.QueryTimeout
}

// Validate reports the first field that cannot work, after defaults are
// applied. It never contacts ClickHouse.
func (c *Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.addr()); err != nil {
		return fmt.Errorf("cannot use Addr %q: want host:port: %w", c.addr(), err)
	}
	switch {
	case c.refresh() < MinRefresh:
		return fmt.Errorf("cannot use Refresh %s: it must be at least %s", c.Refresh, MinRefresh)
	case c.period() < time.Minute || c.period() > MaxPeriod:
		return fmt.Errorf("cannot use Period %s: want from 1m to 90d", c.Period)
	case c.period()%time.Minute != 0:
		return fmt.Errorf("cannot use Period %s: want a whole number of minutes", c.Period)
	case c.queryTimeout() < 0:
		return fmt.Errorf("cannot use QueryTimeout %s: it must not be negative", c.QueryTimeout)
	}
	return c.ClickHouse.Validate()
}
