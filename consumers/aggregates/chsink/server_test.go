//go:build integration

package chsink_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/atlas-stream/atlas/consumers/aggregates/chsink"
	"github.com/atlas-stream/atlas/schemas/warehouse"
)

const startServerInstruction = "start ClickHouse with `scripts/clickhouse.sh start` and export its settings with `eval \"$(scripts/clickhouse.sh env)\"`, or export the ATLAS_CLICKHOUSE_* variables of an existing server"

// server is what scripts/clickhouse.sh env exports.
type server struct {
	addr                       string
	adminUser, adminPassword   string
	writerUser, writerPassword string
	readerUser, readerPassword string
}

// serverFromEnv fails the test, never skips it, when a variable is missing.
func serverFromEnv(tb testing.TB) server {
	tb.Helper()
	var missing []string
	get := func(name string) string {
		v := os.Getenv(name)
		if v == "" {
			missing = append(missing, name)
		}
		return v
	}
	s := server{
		addr:           get("ATLAS_CLICKHOUSE_ADDR"),
		adminUser:      get("ATLAS_CLICKHOUSE_ADMIN_USER"),
		adminPassword:  get("ATLAS_CLICKHOUSE_ADMIN_PASSWORD"),
		writerUser:     get("ATLAS_CLICKHOUSE_USER"),
		writerPassword: get("ATLAS_CLICKHOUSE_PASSWORD"),
		readerUser:     get("ATLAS_CLICKHOUSE_READER_USER"),
		readerPassword: get("ATLAS_CLICKHOUSE_READER_PASSWORD"),
	}
	if len(missing) > 0 {
		tb.Fatalf("ClickHouse integration tests need %s: %s", strings.Join(missing, ", "), startServerInstruction)
	}
	return s
}

func testContext(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	tb.Cleanup(cancel)
	return ctx
}

func open(tb testing.TB, s server, user, password, database string) driver.Conn {
	tb.Helper()
	conn, err := warehouse.Open(testContext(tb), warehouse.Config{
		Addr: s.addr, Database: database, User: user, Password: password,
	})
	if err != nil {
		tb.Fatalf("%v\nIs ClickHouse running? %s", err, startServerInstruction)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	return conn
}

var databaseSeq atomic.Int64

// fixture is a freshly migrated database of its own, dropped at the end of
// the test, with connections as the writer and the reader.
type fixture struct {
	db     string
	admin  driver.Conn // current database "default"
	writer driver.Conn
	reader driver.Conn
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	s := serverFromEnv(tb)
	admin := open(tb, s, s.adminUser, s.adminPassword, "default")
	db := fmt.Sprintf("atlas_chsink_%d_%d", time.Now().UnixNano(), databaseSeq.Add(1))
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
			tb.Errorf("cannot drop test database %s: %v", db, err)
		}
	})
	if _, err := warehouse.Migrate(testContext(tb), admin, db, nil); err != nil {
		tb.Fatal(err)
	}
	return &fixture{
		db:     db,
		admin:  admin,
		writer: open(tb, s, s.writerUser, s.writerPassword, db),
		reader: open(tb, s, s.readerUser, s.readerPassword, db),
	}
}

// startWriter runs a Writer over the writer connection until the test ends.
func (f *fixture) startWriter(tb testing.TB, cfg chsink.Config) *chsink.Writer {
	tb.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(tb)
	}
	w, err := chsink.New(f.writer, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Run: %v", err)
		}
	})
	return w
}

// testLogger sends a Writer's log lines to the test's log.
func testLogger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(logWriter{tb}, nil))
}

type logWriter struct{ tb testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
