package dashboard

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/atlas-stream/atlas/schemas/warehouse"
)

// redialAfter is how long a failed connection attempt is remembered: the
// panels of one refresh arrive together, and they should learn that
// ClickHouse is down from one attempt, not six.
const redialAfter = time.Second

// ClickHouse error codes that mean "not migrated" rather than "down".
const (
	codeUnknownTable    = 60
	codeUnknownDatabase = 81
)

// ErrUnavailable wraps every error that means the dashboard cannot read
// ClickHouse right now (it is down, unreachable, refuses the user, or the
// database lacks Atlas's tables): the API answers 503 with its text.
var ErrUnavailable = errors.New("ClickHouse is unavailable")

// unavailable is an ErrUnavailable with the reason a person reads.
type unavailable struct{ reason error }

func (e *unavailable) Error() string { return e.reason.Error() }
func (e *unavailable) Unwrap() []error {
	return []error{ErrUnavailable, e.reason}
}

// serverInfo is what the dashboard learns about its user when it connects.
type serverInfo struct {
	Version  string `json:"version"`
	Readonly string `json:"readonly"` // the server's readonly setting for the user: "0" can write
}

// source opens the connection on first use and again after a failed
// attempt, so that the dashboard starts, and its page loads, while
// ClickHouse is down. Once open, the driver's pool redials by itself. Safe
// for concurrent use.
type source struct {
	cfg warehouse.Config

	mu      sync.Mutex
	conn    driver.Conn
	info    serverInfo
	lastErr error
	lastTry time.Time
}

// get returns the open connection, or an error wrapping ErrUnavailable.
func (s *source) get(ctx context.Context) (driver.Conn, serverInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		return s.conn, s.info, nil
	}
	if s.lastErr != nil && time.Since(s.lastTry) < redialAfter {
		return nil, serverInfo{}, s.lastErr
	}
	s.lastTry = time.Now()
	conn, err := warehouse.Open(ctx, s.cfg)
	if err != nil {
		// Whatever refused the connection (no server, a wrong password, no
		// such database), the dashboard cannot read: 503.
		if err = classify(err, s.cfg); !errors.Is(err, ErrUnavailable) {
			err = &unavailable{err}
		}
		s.lastErr = err
		return nil, serverInfo{}, s.lastErr
	}
	info, err := readInfo(ctx, conn)
	if err != nil {
		_ = conn.Close()
		s.lastErr = classify(err, s.cfg)
		return nil, serverInfo{}, s.lastErr
	}
	if info.Readonly == "0" {
		slog.Warn("the dashboard's ClickHouse user can write; give it a readonly profile", "user", s.cfg.User)
	}
	slog.Info("connected to ClickHouse", "addr", s.cfg.Addr, "user", s.cfg.User, "version", info.Version, "readonly", info.Readonly)
	s.conn, s.info, s.lastErr = conn, info, nil
	return conn, info, nil
}

func readInfo(ctx context.Context, conn driver.Conn) (serverInfo, error) {
	var info serverInfo
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&info.Version); err != nil {
		return info, fmt.Errorf("cannot read the server version: %w", err)
	}
	if err := conn.QueryRow(ctx, "SELECT value FROM system.settings WHERE name = 'readonly'").Scan(&info.Readonly); err != nil {
		return info, fmt.Errorf("cannot read the readonly setting: %w", err)
	}
	return info, nil
}

func (s *source) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}

// classify turns an error of a query into one that says whether the API
// should answer 503 (ClickHouse unavailable or not migrated: wraps
// ErrUnavailable) or 500 (the server refused the query itself).
func classify(err error, cfg warehouse.Config) error {
	if errors.Is(err, ErrUnavailable) {
		return err
	}
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		switch ex.Code {
		case codeUnknownTable, codeUnknownDatabase:
			db := cfg.Database
			if db == "" {
				db = warehouse.DefaultDatabase
			}
			return &unavailable{fmt.Errorf("%w; database %s lacks Atlas's tables: run atlas clickhouse migrate", err, db)}
		case codeTimeoutExceeded:
			return &unavailable{err}
		}
		return err
	}
	// Not an answer of the server: the connection failed or timed out.
	if !strings.HasPrefix(err.Error(), "cannot connect to ClickHouse") {
		err = fmt.Errorf("cannot reach ClickHouse at %s as %s: %w", cmp.Or(cfg.Addr, warehouse.DefaultAddr), cmp.Or(cfg.User, warehouse.DefaultUser), err)
	}
	return &unavailable{err}
}

// codeTimeoutExceeded is the server's max_execution_time refusal: it is
// busy, not wrong.
const codeTimeoutExceeded = 159
