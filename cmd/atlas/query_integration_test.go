//go:build integration

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/atlas-stream/atlas/consumers/aggregates"
	"github.com/atlas-stream/atlas/consumers/aggregates/chsink"
	"github.com/atlas-stream/atlas/schemas/warehouse"
)

// queryDatabase migrates a database of its own, writes a few playback rows
// through the sink (twice, as a replay) and returns its name.
func queryDatabase(t *testing.T) string {
	t.Helper()
	env := func(name string) string {
		v := os.Getenv(name)
		if v == "" {
			t.Fatalf("the atlas query integration test needs %s: start ClickHouse with scripts/clickhouse.sh start and eval \"$(scripts/clickhouse.sh env)\"", name)
		}
		return v
	}
	addr := env("ATLAS_CLICKHOUSE_ADDR")
	env("ATLAS_CLICKHOUSE_READER_PASSWORD")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := warehouse.Open(ctx, warehouse.Config{Addr: addr, Database: "default",
		User: env("ATLAS_CLICKHOUSE_ADMIN_USER"), Password: env("ATLAS_CLICKHOUSE_ADMIN_PASSWORD")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	db := fmt.Sprintf("atlas_cmd_query_%d", time.Now().UnixNano())
	t.Cleanup(func() {
		if err := admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db); err != nil {
			t.Errorf("cannot drop %s: %v", db, err)
		}
	})
	if _, err := warehouse.Migrate(ctx, admin, db, nil); err != nil {
		t.Fatal(err)
	}
	writer, err := warehouse.Open(ctx, warehouse.Config{Addr: addr, Database: db,
		User: env("ATLAS_CLICKHOUSE_USER"), Password: env("ATLAS_CLICKHOUSE_PASSWORD")})
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	w, err := chsink.New(writer, chsink.Config{})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	day := time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC)
	row := func(d time.Duration, title string, starts uint64, hashes ...uint64) aggregates.PlaybackRow {
		return aggregates.PlaybackRow{WindowStart: day.Add(d).UnixMilli(), TitleID: title, Country: "DE", DeviceType: "tv",
			Source: aggregates.Source{Topic: "atlas.playback.v1", Version: 1}, Starts: starts, Completes: starts / 2,
			Viewers: uint64(len(hashes)), ViewerHashes: hashes}
	}
	b := &aggregates.Batch{Playback: []aggregates.PlaybackRow{
		row(-time.Hour, "t1", 4, 1, 2),
		row(time.Hour, "t1", 12, 1, 2, 3),
		row(2*time.Hour, "t2", 20, 4),
	}}
	for range 2 {
		if err := w.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return db
}

func TestAtlasQueryPrintsTheNamedQueryAsJSONAndCSV(t *testing.T) {
	db := queryDatabase(t)
	period := []string{"--clickhouse-database", db, "--from", "2026-03-14", "--to", "2026-03-15"}

	out := execute(t, append([]string{"query", "trending", "--format", "json"}, period...)...)
	var got []map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("atlas query trending --format json printed %q: %v", out, err)
	}
	want := []map[string]any{
		{"title_id": "t2", "starts": 20.0, "prev_starts": 0.0, "viewers": 1.0, "prev_viewers": 0.0, "growth": nil},
		{"title_id": "t1", "starts": 12.0, "prev_starts": 4.0, "viewers": 3.0, "prev_viewers": 2.0, "growth": 3.0},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("atlas query trending --format json (-want +got):\n%s", diff)
	}

	out = execute(t, append([]string{"query", "completion", "--format", "csv"}, period...)...)
	wantCSV := "title_id,starts,completes,completion_rate,abandons,abandon_rate,dropoff,peak_dropoff\n" +
		"t2,20,10,0.5,0,0,\"[0,0,0,0,0,0,0,0,0,0]\",\n" +
		"t1,12,6,0.5,0,0,\"[0,0,0,0,0,0,0,0,0,0]\",\n"
	if diff := cmp.Diff(wantCSV, out); diff != "" {
		t.Fatalf("atlas query completion --format csv (-want +got):\n%s", diff)
	}

	out = execute(t, append([]string{"query", "trending", "--min-starts", "1"}, period...)...)
	t.Logf("atlas query trending --min-starts 1:\n%s", out)
	if !strings.Contains(out, "t1            12            4        3             2   3.00x") {
		t.Fatalf("table output:\n%s", out)
	}
	if code := run(context.Background(), append([]string{"query", "overlap", "--a", "t1", "--b", "t2"}, period...)); code != exitOK {
		t.Fatalf("atlas query overlap exited %d", code)
	}
}

func TestAtlasQueryOnADatabaseWithoutTablesExits3(t *testing.T) {
	if os.Getenv("ATLAS_CLICKHOUSE_ADDR") == "" {
		t.Fatal("the atlas query integration test needs ATLAS_CLICKHOUSE_ADDR: start ClickHouse with scripts/clickhouse.sh start and eval \"$(scripts/clickhouse.sh env)\"")
	}
	for _, db := range []string{"default", "atlas_no_such_database"} {
		if code := run(context.Background(), []string{"query", "funnel", "--clickhouse-database", db}); code != exitProblems {
			t.Fatalf("atlas query funnel on database %s exited %d, want %d", db, code, exitProblems)
		}
	}
}
