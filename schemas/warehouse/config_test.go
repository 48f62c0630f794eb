package warehouse

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	f := func(cfg Config, wantErr string) {
		t.Helper()
		err := cfg.Validate()
		switch {
		case wantErr == "" && err != nil:
			t.Fatalf("Validate(%+v): unexpected error: %v", cfg, err)
		case wantErr != "" && err == nil:
			t.Fatalf("Validate(%+v): no error, want one containing %q", cfg, wantErr)
		case wantErr != "" && !strings.Contains(err.Error(), wantErr):
			t.Fatalf("Validate(%+v) = %q, want it to contain %q", cfg, err, wantErr)
		}
	}
	f(Config{}, "")
	f(Config{Addr: "clickhouse.internal:9440", Database: "atlas_test_1", User: "atlas_writer", DialTimeout: time.Second}, "")
	f(Config{Addr: "[::1]:9000"}, "")
	f(Config{Addr: "127.0.0.1"}, "want host:port")
	f(Config{Addr: ":9000"}, "the host is empty")
	f(Config{Addr: "127.0.0.1:http"}, "the port must be a number")
	f(Config{Addr: "127.0.0.1:70000"}, "the port must be a number")
	f(Config{Database: "atlas-prod"}, `database name "atlas-prod"`)
	f(Config{Database: "1atlas"}, `database name "1atlas"`)
	f(Config{Database: "atlas; DROP"}, "database name")
	f(Config{DialTimeout: -time.Second}, "DialTimeout")
	f(Config{ReadTimeout: -time.Second}, "ReadTimeout")
	f(Config{ConnMaxLifetime: -time.Second}, "ConnMaxLifetime")
	f(Config{MaxOpenConns: -1}, "MaxOpenConns")
	f(Config{MaxIdleConns: 5}, "exceeds MaxOpenConns 4")
	f(Config{MaxOpenConns: 8, MaxIdleConns: 5}, "")
}

func TestConfigDefaults(t *testing.T) {
	var c Config
	if c.addr() != "127.0.0.1:9000" || c.database() != "atlas" || c.user() != "default" ||
		c.dialTimeout() != 5*time.Second || c.readTimeout() != time.Minute ||
		c.maxOpenConns() != 4 || c.maxIdleConns() != 4 || c.connMaxLifetime() != time.Hour {
		t.Fatalf("the zero Config does not apply the documented defaults: %s %s %s %s %s %d %d %s",
			c.addr(), c.database(), c.user(), c.dialTimeout(), c.readTimeout(), c.maxOpenConns(), c.maxIdleConns(), c.connMaxLifetime())
	}
}

func TestOpenNamesAddressAndUserWhenNothingListens(t *testing.T) {
	// Port 1 on loopback refuses connections on any sane machine.
	_, err := Open(context.Background(), Config{Addr: "127.0.0.1:1", User: "atlas_writer", DialTimeout: time.Second})
	if err == nil {
		t.Fatal("Open succeeded against 127.0.0.1:1")
	}
	if want := "cannot connect to ClickHouse at 127.0.0.1:1 as atlas_writer: "; !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("Open error = %q, want it to start with %q", err, want)
	}
}
