//go:build integration

// These tests read a real ClickHouse server as the dashboard does, the one
// started by scripts/clickhouse.sh or any other reachable through the same
// variables:
//
//	scripts/clickhouse.sh start
//	eval "$(scripts/clickhouse.sh env)"
//	go test -tags integration -count=1 -v ./dashboard/
//
// They fail, never skip, when the server is not there. Each test migrates a
// database of its own (dashboard_test_<random>) and drops it at the end.

package dashboard

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/atlas-stream/atlas/consumers/aggregates"
	"github.com/atlas-stream/atlas/consumers/aggregates/chsink"
	"github.com/atlas-stream/atlas/schemas/warehouse"
)

const codeReadonly = 164 // READONLY: readonly = 1 or 2 refuses writes and DDL

// users are the ClickHouse users of scripts/clickhouse.sh env.
type users struct{ admin, writer, reader warehouse.Config }

func usersFromEnv(t *testing.T) users {
	t.Helper()
	var missing []string
	get := func(name string) string {
		v := os.Getenv(name)
		if v == "" {
			missing = append(missing, name)
		}
		return v
	}
	addr := get("ATLAS_CLICKHOUSE_ADDR")
	u := users{
		admin:  warehouse.Config{Addr: addr, User: get("ATLAS_CLICKHOUSE_ADMIN_USER"), Password: get("ATLAS_CLICKHOUSE_ADMIN_PASSWORD")},
		writer: warehouse.Config{Addr: addr, User: get("ATLAS_CLICKHOUSE_USER"), Password: get("ATLAS_CLICKHOUSE_PASSWORD")},
		reader: warehouse.Config{Addr: addr, User: get("ATLAS_CLICKHOUSE_READER_USER"), Password: get("ATLAS_CLICKHOUSE_READER_PASSWORD")},
	}
	if len(missing) > 0 {
		t.Fatalf("the dashboard's integration tests need %s: start ClickHouse with `scripts/clickhouse.sh start` and export its settings with `eval \"$(scripts/clickhouse.sh env)\"`",
			strings.Join(missing, ", "))
	}
	return u
}

// freshDatabase migrates a new database and returns the users pointed at
// it; the database is dropped when the test ends.
func freshDatabase(t *testing.T) users {
	t.Helper()
	u := usersFromEnv(t)
	var b [4]byte
	rand.Read(b[:])
	db := "dashboard_test_" + hex.EncodeToString(b[:])
	ctx := testContext(t)
	adminCfg := u.admin
	adminCfg.Database = "default"
	admin, err := warehouse.Open(ctx, adminCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)
		admin.Close()
	})
	if _, err := warehouse.Migrate(ctx, admin, db, nil); err != nil {
		t.Fatal(err)
	}
	u.admin.Database, u.writer.Database, u.reader.Database = db, db, db
	return u
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func open(t *testing.T, cfg warehouse.Config) driver.Conn {
	t.Helper()
	conn, err := warehouse.Open(testContext(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func serve(t *testing.T, cfg Config) *httptest.Server {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		ts.Close()
		s.src.close()
	})
	return ts
}

// api GETs path and decodes the JSON answer into v; it returns the status.
func api(t *testing.T, ts *httptest.Server, path string, v any) int {
	t.Helper()
	res, err := http.Get(ts.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %d, cannot decode: %v", path, res.StatusCode, err)
	}
	return res.StatusCode
}

func isReadonly(err error) bool {
	var ex *clickhouse.Exception
	return errors.As(err, &ex) && ex.Code == codeReadonly
}

// TestTheDashboardsUserCannotWrite: the user the dashboard is given (the
// reader of scripts/clickhouse.sh, as cmd/atlas passes it) reports
// readonly = 2, and the server refuses its INSERT, its DDL, and its
// attempts to lift readonly, in a SET or as a per-query setting.
func TestTheDashboardsUserCannotWrite(t *testing.T) {
	u := freshDatabase(t)
	ts := serve(t, Config{ClickHouse: u.reader})
	var h health
	if status := api(t, ts, "/api/health", &h); status != http.StatusOK || h.ClickHouse.User != u.reader.User || h.ClickHouse.Readonly != "2" {
		t.Fatalf("/api/health: %d %+v; want 200, user %s, readonly 2", status, h, u.reader.User)
	}
	t.Logf("/api/health: user %s, readonly %s, ClickHouse %s", h.ClickHouse.User, h.ClickHouse.Readonly, h.ClickHouse.Version)

	ctx := testContext(t)
	conn := open(t, u.reader)
	insert := `INSERT INTO alerts (id, kind, status, severity, subject, score, evidence, window_start, window_end, first_seen, detected_at)
		VALUES ('a1', 'bot', 'firing', 3, 'net:x', 1, '{}', now(), now(), now(), now())`
	for _, tc := range []struct {
		what string
		do   func() error
	}{
		{"INSERT INTO alerts", func() error { return conn.Exec(ctx, insert) }},
		{"a batch INSERT INTO playback_minute", func() error {
			b, err := conn.PrepareBatch(ctx, "INSERT INTO playback_minute (window_start, title_id, country, device_type, src_topic, src_partition, version)")
			if err != nil {
				return err
			}
			if err := b.Append(time.Now(), "t", "DE", "tv", "x", int32(0), uint64(1)); err != nil {
				return err
			}
			return b.Send()
		}},
		{"INSERT with readonly = 0 as a per-query setting", func() error {
			return conn.Exec(clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"readonly": 0})), insert)
		}},
		{"SET readonly = 0", func() error { return conn.Exec(ctx, "SET readonly = 0") }},
		{"CREATE TABLE", func() error { return conn.Exec(ctx, "CREATE TABLE evil (x UInt8) ENGINE = Memory") }},
		{"DROP TABLE alerts", func() error { return conn.Exec(ctx, "DROP TABLE alerts") }},
		{"ALTER TABLE alerts DELETE", func() error { return conn.Exec(ctx, "ALTER TABLE alerts DELETE WHERE 1") }},
	} {
		err := tc.do()
		if !isReadonly(err) {
			t.Errorf("%s as %s: got %v, want the server's READONLY refusal (code %d)", tc.what, u.reader.User, err, codeReadonly)
			continue
		}
		t.Logf("%s as %s: refused: %v", tc.what, u.reader.User, err)
	}
	var n uint64
	if err := open(t, u.admin).QueryRow(ctx, "SELECT count() FROM alerts").Scan(&n); err != nil || n != 0 {
		t.Fatalf("alerts holds %d rows (%v) after the refused inserts, want 0", n, err)
	}
}

// TestTheAPIServesWhatTheAggregatesSinkWrote: rows written by the
// aggregates role's sink come back through every panel, with the numbers
// the named queries compute, title names from the catalog, and the funnel
// summed per row; an empty database gives empty panels, not errors.
func TestTheAPIServesWhatTheAggregatesSinkWrote(t *testing.T) {
	u := freshDatabase(t)
	ts := serve(t, Config{ClickHouse: u.reader})

	for _, p := range panels {
		var d panelData
		if status := api(t, ts, "/api/"+p.name, &d); status != http.StatusOK || string(d.Rows) != "[]" || len(d.ByRow) != 0 {
			t.Errorf("/api/%s on an empty database: %d, rows %s, by_row %v; want 200 and no rows", p.name, status, d.Rows, d.ByRow)
		}
	}

	ctx := testContext(t)
	now := time.Now().UTC().Truncate(time.Minute)
	min := func(ago int) int64 { return now.Add(-time.Duration(ago) * time.Minute).UnixMilli() }
	src := func(p int32, v uint64) aggregates.Source {
		return aggregates.Source{Topic: "atlas.playback.v1", Partition: p, Version: v}
	}
	b := &aggregates.Batch{
		Titles: []aggregates.TitleRow{
			{TitleID: "tt-1", Name: "The First", Genres: []string{"drama"}, Version: 1},
			{TitleID: "tt-2", Name: "The Second", Genres: []string{"comedy", "drama"}, Version: 2},
			{TitleID: "tt-3", Name: "The Third", Genres: []string{"horror"}, Version: 3},
		},
		Playback: []aggregates.PlaybackRow{
			// tt-1: 8 starts now, 4 in the hour before; tt-2: 6 starts, new.
			{WindowStart: min(5), TitleID: "tt-1", Country: "DE", DeviceType: "tv", Source: src(0, 10), Starts: 5, Completes: 2, WatchMs: 3_600_000,
				Viewers: 2, ViewerHashes: []uint64{1, 2}, Dropoff: [10]uint64{1, 2}},
			{WindowStart: min(4), TitleID: "tt-1", Country: "DE", DeviceType: "tv", Source: src(1, 10), Starts: 3, WatchMs: 1_800_000,
				Viewers: 1, ViewerHashes: []uint64{3}, Dropoff: [10]uint64{0, 0, 0, 0, 0, 0, 0, 0, 0, 1}},
			{WindowStart: min(70), TitleID: "tt-1", Country: "DE", DeviceType: "tv", Source: src(0, 5), Starts: 4, Viewers: 1, ViewerHashes: []uint64{1}},
			{WindowStart: min(3), TitleID: "tt-2", Country: "US", DeviceType: "web", Source: src(2, 10), Starts: 6, Completes: 6, WatchMs: 7_200_000,
				Viewers: 1, ViewerHashes: []uint64{4}},
		},
		Quality: []aggregates.QualityRow{
			{WindowStart: min(5), CDN: "cdn-a", ISP: "de-telco", Country: "DE", Source: src(0, 10), Sessions: 40, Rebuffers: 4, BitrateSum: 120_000, BitrateSamples: 40},
			{WindowStart: min(4), CDN: "cdn-b", ISP: "us-cable", Country: "US", Source: src(2, 10), Sessions: 20, Rebuffers: 10, StartFailures: 2, BitrateSum: 40_000, BitrateSamples: 20},
		},
		Funnel: []aggregates.FunnelRow{
			{WindowStart: min(5), Row: "trending", ArtworkID: "art-1-a", Source: src(0, 10), Impressions: 100, Selects: 10},
			{WindowStart: min(5), Row: "trending", ArtworkID: "art-1-a", Source: aggregates.Source{Topic: "atlas.browse.v1", Partition: 0, Version: 3}, Plays: 5},
			{WindowStart: min(4), Row: "trending", ArtworkID: "art-2-b", Source: src(1, 10), Impressions: 50, Selects: 5, Plays: 1},
			{WindowStart: min(4), Row: "top-10", ArtworkID: "art-3-a", Source: src(1, 10), Impressions: 30, Selects: 3, Plays: 3},
		},
	}
	writer := open(t, u.writer)
	w, err := chsink.New(writer, chsink.Config{FlushInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	go w.Run(ctx)
	if err := w.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	w.Close()
	alerts, err := writer.PrepareBatch(ctx, "INSERT INTO alerts (id, kind, status, severity, subject, score, evidence, window_start, window_end, first_seen, detected_at)")
	if err != nil {
		t.Fatal(err)
	}
	ws, we, old := now.Add(-5*time.Minute), now.Add(-3*time.Minute), now.Add(-3*time.Hour)
	if err := alerts.Append("al-1", "quality_degradation", "firing", uint8(3), "cdn:cdn-b|isp:us-cable|cc:US", 4.5, `{"rebuffer_ratio":"0.5"}`, ws, we, ws, we); err != nil {
		t.Fatal(err)
	}
	if err := alerts.Append("al-old", "bot", "firing", uint8(2), "net:x", 2.0, "{}", old, old, old, old); err != nil {
		t.Fatal(err)
	}
	if err := alerts.Send(); err != nil {
		t.Fatal(err)
	}

	var trending struct {
		panelData
		Rows []struct {
			TitleID    string   `json:"title_id"`
			Starts     uint64   `json:"starts"`
			PrevStarts uint64   `json:"prev_starts"`
			Viewers    uint64   `json:"viewers"`
			Growth     *float64 `json:"growth"`
		} `json:"rows"`
	}
	if status := api(t, ts, "/api/trending?period=1h", &trending); status != http.StatusOK {
		t.Fatalf("/api/trending: %d", status)
	}
	var got []string
	for _, r := range trending.Rows {
		growth := "new"
		if r.Growth != nil {
			growth = fmt.Sprint(*r.Growth)
		}
		got = append(got, fmt.Sprintf("%s %d/%d %d viewers growth %s", r.TitleID, r.Starts, r.PrevStarts, r.Viewers, growth))
	}
	if want := "tt-2 6/0 1 viewers growth new, tt-1 8/4 3 viewers growth 2"; strings.Join(got, ", ") != want ||
		trending.Names["tt-1"] != "The First" || trending.Names["tt-2"] != "The Second" {
		t.Errorf("/api/trending: %s, names %v; want %s", strings.Join(got, ", "), trending.Names, want)
	}
	if status := api(t, ts, "/api/trending?period=1h&country=US", &trending); status != http.StatusOK || len(trending.Rows) != 1 || trending.Rows[0].TitleID != "tt-2" {
		t.Errorf("/api/trending?country=US: %d %+v, want tt-2 only", status, trending.Rows)
	}

	var completion struct {
		Rows []struct {
			TitleID        string   `json:"title_id"`
			CompletionRate float64  `json:"completion_rate"`
			Dropoff        []uint64 `json:"dropoff"`
		} `json:"rows"`
	}
	api(t, ts, "/api/completion?period=1h", &completion)
	if got := fmt.Sprint(completion.Rows); got != "[{tt-1 0.25 [1 2 0 0 0 0 0 0 0 1]} {tt-2 1 [0 0 0 0 0 0 0 0 0 0]}]" {
		t.Errorf("/api/completion: %s", got)
	}

	var gap struct {
		Rows []struct {
			Country     string  `json:"country"`
			Genre       string  `json:"genre"`
			WatchHours  float64 `json:"watch_hours"`
			Underserved float64 `json:"underserved"`
		} `json:"rows"`
	}
	api(t, ts, "/api/genre-gap?period=1h", &gap)
	// DE watched 1.5 h of tt-1 (drama); US 2 h of tt-2 (comedy, drama). Of
	// 3 titles, 2 are drama, 1 comedy.
	if got := fmt.Sprint(gap.Rows); got != "[{DE drama 1.5 1.5} {US comedy 2 3} {US drama 2 1.5}]" {
		t.Errorf("/api/genre-gap: %s", got)
	}

	var funnel panelData
	api(t, ts, "/api/funnel?period=1h", &funnel)
	if got := fmt.Sprint(funnel.ByRow); got != "[{trending 150 15 6 0.1 0.4 0.04} {top-10 30 3 3 0.1 1 0.1}]" {
		t.Errorf("/api/funnel by_row: %s", got)
	}
	if !strings.Contains(string(funnel.Rows), `{"row":"trending","artwork_id":"art-1-a","impressions":100,"selects":10,"plays":5,`) {
		t.Errorf("/api/funnel rows: %s", funnel.Rows)
	}

	var quality panelData
	api(t, ts, "/api/quality?period=15m", &quality)
	s := quality.Series
	if s == nil || len(s.Lines) != 3 || s.Lines[0].Sessions != 60 || s.Lines[0].Value != 14.0/60 || s.Cells != 2 || quality.Bucket != 60 {
		t.Fatalf("/api/quality: %+v", quality)
	}
	i := int(now.Add(-4*time.Minute).Sub(quality.From) / time.Minute)
	if p := s.Lines[0].Points[i]; p == nil || *p != 0.5 {
		t.Errorf("/api/quality: overall point of 4 minutes ago is %v, want 0.5", p)
	}
	api(t, ts, "/api/quality?period=15m&metric=mean_bitrate_kbps", &quality)
	if v := quality.Series.Lines[0].Value; v != (3000*40+2000*20)/60.0 {
		t.Errorf("/api/quality mean bitrate %v", v)
	}

	var recent struct {
		Rows []alert `json:"rows"`
	}
	api(t, ts, "/api/alerts?period=1h", &recent)
	if len(recent.Rows) != 1 || recent.Rows[0].ID != "al-1" || recent.Rows[0].Severity != 3 || recent.Rows[0].Subject != "cdn:cdn-b|isp:us-cable|cc:US" {
		t.Errorf("/api/alerts?period=1h: %+v; want al-1 only", recent.Rows)
	}
	api(t, ts, "/api/alerts?period=6h&kind=bot", &recent)
	if len(recent.Rows) != 1 || recent.Rows[0].ID != "al-old" {
		t.Errorf("/api/alerts?period=6h&kind=bot: %+v; want al-old only", recent.Rows)
	}

	var h health
	api(t, ts, "/api/health", &h)
	if h.Status != "ok" || h.LatestData == nil || !h.LatestData.Equal(now.Add(-3*time.Minute)) {
		t.Errorf("/api/health: %+v, latest %v; want the window of 3 minutes ago", h, h.LatestData)
	}
}

// TestAnUnmigratedDatabaseIs503WithTheRemedy: the dashboard pointed at a
// database without Atlas's tables says to migrate.
func TestAnUnmigratedDatabaseIs503WithTheRemedy(t *testing.T) {
	u := usersFromEnv(t)
	for _, db := range []string{"no_such_database_here", "default"} {
		cfg := u.reader
		cfg.Database = db
		ts := serve(t, Config{ClickHouse: cfg})
		for _, p := range []string{"health", "trending"} {
			var e apiError
			if status := api(t, ts, "/api/"+p, &e); status != http.StatusServiceUnavailable || !strings.Contains(e.Error, "lacks Atlas's tables: run atlas clickhouse migrate") {
				t.Errorf("database %s, /api/%s: %d %q", db, p, status, e.Error)
			}
		}
	}
}
