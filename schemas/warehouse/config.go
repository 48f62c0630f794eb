package warehouse

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Defaults applied by [Config] to fields left at their zero value.
const (
	DefaultAddr            = "127.0.0.1:9000"
	DefaultDatabase        = "atlas"
	DefaultUser            = "default"
	DefaultDialTimeout     = 5 * time.Second
	DefaultReadTimeout     = 60 * time.Second
	DefaultMaxOpenConns    = 4
	DefaultConnMaxLifetime = time.Hour
)

// Config says how to reach ClickHouse over its native protocol. The zero
// value is valid and connects to a local server's "atlas" database as the
// "default" user. Only cmd/atlas fills it from flags or the environment
// (ATLAS_CLICKHOUSE_ADDR, ATLAS_CLICKHOUSE_USER, …).
type Config struct {
	// Addr is host:port of the native protocol (not HTTP).
	//
	// Default: "127.0.0.1:9000".
	Addr string

	// Database is the connection's current database: unqualified table names
	// in queries resolve in it. It must exist when Open is called; to run
	// Migrate before it does, open the connection with Database "default",
	// which every server has, and pass the target database to Migrate.
	//
	// Default: "atlas".
	Database string

	// User and Password authenticate the connection.
	//
	// Default User: "default"; Password has no default (empty).
	User     string
	Password string

	// DialTimeout bounds connecting and the handshake of one connection.
	//
	// Default: 5s.
	DialTimeout time.Duration

	// ReadTimeout bounds each wait for bytes from the server during a
	// query; a context deadline shortens it per query.
	//
	// Default: 60s.
	ReadTimeout time.Duration

	// MaxOpenConns caps the connections in the pool; MaxIdleConns of them
	// are kept open between queries.
	//
	// Default MaxOpenConns: 4. Default MaxIdleConns: MaxOpenConns.
	MaxOpenConns int
	MaxIdleConns int

	// ConnMaxLifetime closes pooled connections older than this.
	//
	// Default: 1h.
	ConnMaxLifetime time.Duration

	// Compress enables LZ4 compression of data blocks, worth it when the
	// server is across a network rather than on this machine.
	//
	// Default: false.
	Compress bool
}

func (c *Config) addr() string {
	if c.Addr == "" {
		return DefaultAddr
	}
	return c.Addr
}

func (c *Config) database() string {
	if c.Database == "" {
		return DefaultDatabase
	}
	return c.Database
}

func (c *Config) user() string {
	if c.User == "" {
		return DefaultUser
	}
	return c.User
}

func (c *Config) dialTimeout() time.Duration {
	if c.DialTimeout == 0 {
		return DefaultDialTimeout
	}
	return c.DialTimeout
}

func (c *Config) readTimeout() time.Duration {
	if c.ReadTimeout == 0 {
		return DefaultReadTimeout
	}
	return c.ReadTimeout
}

func (c *Config) maxOpenConns() int {
	if c.MaxOpenConns == 0 {
		return DefaultMaxOpenConns
	}
	return c.MaxOpenConns
}

func (c *Config) maxIdleConns() int {
	if c.MaxIdleConns == 0 {
		return c.maxOpenConns()
	}
	return c.MaxIdleConns
}

func (c *Config) connMaxLifetime() time.Duration {
	if c.ConnMaxLifetime == 0 {
		return DefaultConnMaxLifetime
	}
	return c.ConnMaxLifetime
}

// identifier matches the database names Atlas accepts: they are written
// into SQL unquoted, so nothing that would need quoting is allowed.
var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate reports the first field that cannot work, after defaults are
// applied. It never contacts the server.
func (c *Config) Validate() error {
	host, port, err := net.SplitHostPort(c.addr())
	if err != nil {
		return fmt.Errorf("cannot use Addr %q: want host:port: %w", c.addr(), err)
	}
	if host == "" {
		return fmt.Errorf("cannot use Addr %q: the host is empty", c.addr())
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("cannot use Addr %q: the port must be a number from 1 to 65535", c.addr())
	}
	if err := checkDatabaseName(c.database()); err != nil {
		return err
	}
	switch {
	case c.DialTimeout < 0:
		return fmt.Errorf("cannot use DialTimeout %s: it must not be negative", c.DialTimeout)
	case c.ReadTimeout < 0:
		return fmt.Errorf("cannot use ReadTimeout %s: it must not be negative", c.ReadTimeout)
	case c.ConnMaxLifetime < 0:
		return fmt.Errorf("cannot use ConnMaxLifetime %s: it must not be negative", c.ConnMaxLifetime)
	case c.MaxOpenConns < 0:
		return fmt.Errorf("cannot use MaxOpenConns %d: it must not be negative", c.MaxOpenConns)
	case c.MaxIdleConns < 0:
		return fmt.Errorf("cannot use MaxIdleConns %d: it must not be negative", c.MaxIdleConns)
	case c.maxIdleConns() > c.maxOpenConns():
		return fmt.Errorf("cannot use MaxIdleConns %d: it exceeds MaxOpenConns %d", c.maxIdleConns(), c.maxOpenConns())
	}
	return nil
}

func checkDatabaseName(name string) error {
	if !identifier.MatchString(name) {
		return fmt.Errorf("cannot use database name %q: want letters, digits and underscores, not starting with a digit", name)
	}
	return nil
}

// Open validates cfg, opens a pool of native-protocol connections and pings
// the server, so that a wrong address, user, password or database fails
// here with an error naming the address and the user, for example
//
//	cannot connect to ClickHouse at 127.0.0.1:9000 as atlas_writer: …
//
// The returned connection is safe for concurrent use; the caller closes it.
// Errors from the server unwrap to *clickhouse.Exception.
func Open(ctx context.Context, cfg Config) (driver.Conn, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cannot connect to ClickHouse: %w", err)
	}
	opts := &clickhouse.Options{
		Protocol: clickhouse.Native,
		Addr:     []string{cfg.addr()},
		Auth: clickhouse.Auth{
			Database: cfg.database(),
			Username: cfg.user(),
			Password: cfg.Password,
		},
		DialTimeout:     cfg.dialTimeout(),
		ReadTimeout:     cfg.readTimeout(),
		MaxOpenConns:    cfg.maxOpenConns(),
		MaxIdleConns:    cfg.maxIdleConns(),
		ConnMaxLifetime: cfg.connMaxLifetime(),
	}
	if cfg.Compress {
		opts.Compression = &clickhouse.Compression{Method: clickhouse.CompressionLZ4}
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to ClickHouse at %s as %s: %w", cfg.addr(), cfg.user(), err)
	}
	if err := conn.Ping(ctx); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("cannot connect to ClickHouse at %s as %s: %w", cfg.addr(), cfg.user(), err)
	}
	return conn, nil
}
