//go:build integration

// The named queries against a real ClickHouse: a small dataset, written
// through the aggregates role's sink (twice, as a replay would, plus stale
// provisional rows), then each query as the read-only user, compared with
// results worked out by hand in the comments.

package warehouse_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/atlas-stream/atlas/consumers/aggregates"
	"github.com/atlas-stream/atlas/consumers/aggregates/chsink"
	"github.com/atlas-stream/atlas/schemas/warehouse"
)

const howToStart = "start ClickHouse with `scripts/clickhouse.sh start` and export its settings with `eval \"$(scripts/clickhouse.sh env)\"`"

func env(t *testing.T, names ...string) []string {
	t.Helper()
	var vals, missing []string
	for _, n := range names {
		v := os.Getenv(n)
		if v == "" {
			missing = append(missing, n)
		}
		vals = append(vals, v)
	}
	if len(missing) > 0 {
		t.Fatalf("ClickHouse integration tests need %s: %s", strings.Join(missing, ", "), howToStart)
	}
	return vals
}

var dbSeq atomic.Int64

// queryFixture migrates a database of its own, writes the dataset through
// a chsink.Writer as the writer user and returns a reader connection.
func queryFixture(t *testing.T) driver.Conn {
	t.Helper()
	v := env(t, "ATLAS_CLICKHOUSE_ADDR", "ATLAS_CLICKHOUSE_ADMIN_USER", "ATLAS_CLICKHOUSE_ADMIN_PASSWORD",
		"ATLAS_CLICKHOUSE_USER", "ATLAS_CLICKHOUSE_PASSWORD", "ATLAS_CLICKHOUSE_READER_USER", "ATLAS_CLICKHOUSE_READER_PASSWORD")
	addr := v[0]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	open := func(user, password, db string) driver.Conn {
		conn, err := warehouse.Open(ctx, warehouse.Config{Addr: addr, Database: db, User: user, Password: password})
		if err != nil {
			t.Fatalf("%v\nIs ClickHouse running? %s", err, howToStart)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return conn
	}
	admin := open(v[1], v[2], "default")
	db := fmt.Sprintf("atlas_queries_%d_%d", time.Now().UnixNano(), dbSeq.Add(1))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
			t.Errorf("cannot drop %s: %v", db, err)
		}
	})
	if _, err := warehouse.Migrate(ctx, admin, db, nil); err != nil {
		t.Fatal(err)
	}

	w, err := chsink.New(open(v[3], v[4], db), chsink.Config{})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	for _, b := range []*aggregates.Batch{dataset(), dataset(), stale()} {
		if err := w.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return open(v[5], v[6], db)
}

var day = time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC)

// at is day + d, in ms.
func at(d time.Duration) int64 { return day.Add(d).UnixMilli() }

const (
	pb = "atlas.playback.v1"
	br = "atlas.browse.v1"
)

func play(ts int64, title, country string, partition int32, starts, completes, watchMs uint64, hashes []uint64, dropoff ...uint64) aggregates.PlaybackRow {
	r := aggregates.PlaybackRow{WindowStart: ts, TitleID: title, Country: country, DeviceType: "tv",
		Source: aggregates.Source{Topic: pb, Partition: partition, Version: 1000},
		Starts: starts, Completes: completes, WatchMs: watchMs, Viewers: uint64(len(hashes)), ViewerHashes: hashes}
	copy(r.Dropoff[:], dropoff)
	return r
}

const h = time.Hour

// dataset: the period is 2026-03-14 (the day), the previous period
// 2026-03-13.
func dataset() *aggregates.Batch {
	return &aggregates.Batch{
		Titles: []aggregates.TitleRow{
			{TitleID: "t1", Genres: []string{"drama", "crime"}, Version: 1},
			{TitleID: "t2", Genres: []string{"drama"}, Version: 1},
			{TitleID: "t3", Genres: []string{"comedy"}, Version: 1},
			{TitleID: "t4", Genres: []string{"comedy", "drama"}, Version: 1},
			{TitleID: "t5", Genres: []string{"documentary"}, Version: 1},
			{TitleID: "t6", Genres: []string{"drama"}, Version: 1},
			{TitleID: "t7", Genres: []string{"drama"}, Version: 1},
		},
		Playback: []aggregates.PlaybackRow{
			// t1: previous day 5 starts; the day 6 (DE) + 4 (FR).
			play(at(-14*h), "t1", "DE", 0, 5, 0, 0, []uint64{1, 2}),
			play(at(10*h), "t1", "DE", 0, 6, 3, 3_600_000, []uint64{1, 2, 3}, 1, 0, 2),
			play(at(11*h), "t1", "FR", 1, 4, 1, 1_800_000, []uint64{3, 4}, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1),
			// t2: previous day 3 starts; the day 12; a row at the end of
			// the period (excluded from it, inside t2's first 72 h).
			play(at(-12*h), "t2", "DE", 0, 3, 0, 0, []uint64{5}),
			play(at(12*h), "t2", "DE", 2, 12, 6, 7_200_000, []uint64{3, 5, 6, 7}, 0, 2),
			play(at(24*h), "t2", "DE", 2, 50, 0, 0, []uint64{10, 11}),
			// t3: new on the day, and a viewer of a window without a start
			// before its first start.
			play(at(12*h), "t3", "DE", 1, 0, 0, 0, []uint64{30}),
			play(at(13*h), "t3", "DE", 1, 10, 10, 3_600_000, []uint64{1, 8}),
			// t4: 1 start the day before, 2 on the day.
			play(at(-10*h), "t4", "DE", 0, 1, 0, 0, []uint64{9}),
			play(at(14*h), "t4", "DE", 0, 2, 0, 1_800_000, []uint64{9}, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2),
			// t9 is not in the catalog: watched, no starts.
			play(at(15*h), "t9", "DE", 1, 0, 0, 3_600_000, []uint64{40}),
			// t6 starts on 03-18, its 72 h are not over on 03-20.
			play(at(4*24*h+10*h), "t6", "DE", 0, 1, 0, 0, []uint64{1, 2, 3, 4, 5, 6, 7, 8}),
			// t7 started on 03-01; 03-05 is past its 72 h.
			play(at(-13*24*h), "t7", "DE", 0, 3, 0, 0, []uint64{20, 21, 22}),
			play(at(-9*24*h), "t7", "DE", 0, 1, 0, 0, []uint64{23}),
		},
		Funnel: []aggregates.FunnelRow{
			{WindowStart: at(10 * h), Row: "trending", ArtworkID: "a1", Source: aggregates.Source{Topic: br, Partition: 0, Version: 9}, Impressions: 100, Selects: 10},
			{WindowStart: at(10 * h), Row: "trending", ArtworkID: "a1", Source: aggregates.Source{Topic: pb, Partition: 1, Version: 9}, Plays: 4},
			{WindowStart: at(10 * h), Row: "trending", ArtworkID: "a2", Source: aggregates.Source{Topic: br, Partition: 1, Version: 9}, Impressions: 50, Selects: 10},
			{WindowStart: at(11 * h), Row: "trending", ArtworkID: "a2", Source: aggregates.Source{Topic: pb, Partition: 0, Version: 9}, Plays: 5},
			{WindowStart: at(10 * h), Row: "continue", ArtworkID: "a3", Source: aggregates.Source{Topic: br, Partition: 0, Version: 9}, Impressions: 20, Selects: 2},
			{WindowStart: at(10*h + time.Minute), Row: "continue", ArtworkID: "a3", Source: aggregates.Source{Topic: br, Partition: 0, Version: 9}, Impressions: 5},
			{WindowStart: at(12 * h), Source: aggregates.Source{Topic: pb, Partition: 2, Version: 9}, Plays: 7},
			{WindowStart: at(-12 * h), Row: "trending", ArtworkID: "a1", Source: aggregates.Source{Topic: br, Partition: 0, Version: 9}, Impressions: 1000},
		},
		Quality: []aggregates.QualityRow{
			{WindowStart: at(10 * h), CDN: "edge1", ISP: "acme", Country: "DE", Source: aggregates.Source{Topic: pb, Partition: 0, Version: 9},
				Sessions: 10, Rebuffers: 3, RebufferMs: 4500, StartFailures: 1, Errors: 2, BitrateSum: 30_000, BitrateSamples: 10},
			{WindowStart: at(10 * h), CDN: "edge1", ISP: "acme", Country: "DE", Source: aggregates.Source{Topic: pb, Partition: 1, Version: 9},
				Sessions: 5, Rebuffers: 1, RebufferMs: 500, BitrateSum: 20_000, BitrateSamples: 5},
			{WindowStart: at(11*h + 30*time.Minute), CDN: "edge1", ISP: "acme", Country: "FR", Source: aggregates.Source{Topic: pb, Partition: 0, Version: 9},
				Sessions: 5, StartFailures: 1, Errors: 1, BitrateSum: 25_000, BitrateSamples: 5},
			{WindowStart: at(13 * h), CDN: "edge2", ISP: "zeta", Country: "DE", Source: aggregates.Source{Topic: pb, Partition: 2, Version: 9},
				Sessions: 2, Rebuffers: 2, RebufferMs: 2000, BitrateSum: 6000, BitrateSamples: 2},
			{WindowStart: at(-h), CDN: "edge2", ISP: "zeta", Country: "DE", Source: aggregates.Source{Topic: pb, Partition: 2, Version: 9},
				Sessions: 1000},
		},
	}
}

// stale is provisional rows written late with lower versions: the queries
// must not see them.
func stale() *aggregates.Batch {
	b := &aggregates.Batch{
		Playback: []aggregates.PlaybackRow{play(at(12*h), "t2", "DE", 2, 100, 100, 100, []uint64{99})},
		Funnel:   []aggregates.FunnelRow{{WindowStart: at(10 * h), Row: "trending", ArtworkID: "a1", Source: aggregates.Source{Topic: br, Partition: 0, Version: 8}, Impressions: 1}},
		Quality:  []aggregates.QualityRow{{WindowStart: at(13 * h), CDN: "edge2", ISP: "zeta", Country: "DE", Source: aggregates.Source{Topic: pb, Partition: 2, Version: 8}, Sessions: 1}},
		Titles:   []aggregates.TitleRow{{TitleID: "t4", Genres: []string{"drama"}, Version: 0}},
	}
	b.Playback[0].Version = 999
	return b
}

// run runs the named query with flags ("--from", "2026-03-14", …).
func run(t *testing.T, conn driver.Conn, name string, flags ...string) *warehouse.Result {
	t.Helper()
	q, ok := warehouse.LookupQuery(name)
	if !ok {
		t.Fatalf("no query %s", name)
	}
	text := map[string]string{"from": "2026-03-14", "to": "2026-03-15"}
	for i := 0; i+1 < len(flags); i += 2 {
		text[strings.TrimPrefix(flags[i], "--")] = flags[i+1]
	}
	args, err := q.ParseArgs(text, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := q.Run(ctx, conn, args)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func check(t *testing.T, res *warehouse.Result, columns string, want [][]any) {
	t.Helper()
	var names []string
	for _, c := range res.Columns {
		names = append(names, c.Name)
	}
	if got := strings.Join(names, " "); got != columns {
		t.Fatalf("%s returned columns\n  %s\nwant\n  %s", res.Query, got, columns)
	}
	if diff := cmp.Diff(want, res.Rows, cmpopts.EquateApprox(0, 1e-12), cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("%s (-want +got):\n%s", res.Query, diff)
	}
	var b strings.Builder
	if err := res.Write(&b, warehouse.FormatTable); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s:\n%s", res.Query, b.String())
}

func TestNamedQueriesOnAKnownDataset(t *testing.T) {
	conn := queryFixture(t)

	t.Run("trending ranks new titles first, then by growth of starts, and leaves out titles under --min-starts", func(t *testing.T) {
		// t3: 10 starts, none before (new); viewers 1, 8 and 30.
		// t2: 12 vs 3 (the stale 100 is ignored), viewers 3, 5, 6, 7 vs 5.
		// t1: 6 + 4 vs 5, viewers 1..4 vs 1, 2.
		// t4: 2 vs 1, under --min-starts 10.
		check(t, run(t, conn, "trending"), "title_id starts prev_starts viewers prev_viewers growth", [][]any{
			{"t3", uint64(10), uint64(0), uint64(3), uint64(0), nil},
			{"t2", uint64(12), uint64(3), uint64(4), uint64(1), 4.0},
			{"t1", uint64(10), uint64(5), uint64(4), uint64(2), 2.0},
		})
		// Same growth (2.0): more starts first.
		check(t, run(t, conn, "trending", "--min-starts", "1", "--limit", "4"), "title_id starts prev_starts viewers prev_viewers growth", [][]any{
			{"t3", uint64(10), uint64(0), uint64(3), uint64(0), nil},
			{"t2", uint64(12), uint64(3), uint64(4), uint64(1), 4.0},
			{"t1", uint64(10), uint64(5), uint64(4), uint64(2), 2.0},
			{"t4", uint64(2), uint64(1), uint64(1), uint64(1), 2.0},
		})
		// In FR only t1 played, and only on the day.
		check(t, run(t, conn, "trending", "--country", "fr", "--min-starts", "1"), "title_id starts prev_starts viewers prev_viewers growth", [][]any{
			{"t1", uint64(4), uint64(0), uint64(2), uint64(0), nil},
		})
	})

	t.Run("completion divides completes by starts and sums drop-off by decile", func(t *testing.T) {
		// t9 has no starts and is left out.
		check(t, run(t, conn, "completion"), "title_id starts completes completion_rate abandons abandon_rate dropoff peak_dropoff", [][]any{
			{"t2", uint64(12), uint64(6), 0.5, uint64(2), 2.0 / 12, []uint64{0, 2, 0, 0, 0, 0, 0, 0, 0, 0}, "10-20%"},
			{"t1", uint64(10), uint64(4), 0.4, uint64(5), 0.5, []uint64{1, 0, 3, 0, 0, 0, 0, 0, 0, 1}, "20-30%"},
			{"t3", uint64(10), uint64(10), 1.0, uint64(0), 0.0, []uint64{0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, ""},
			{"t4", uint64(2), uint64(0), 0.0, uint64(2), 1.0, []uint64{0, 0, 0, 0, 0, 0, 0, 0, 0, 2}, "90-100%"},
		})
		check(t, run(t, conn, "completion", "--title", "t1", "--country", "DE"), "title_id starts completes completion_rate abandons abandon_rate dropoff peak_dropoff", [][]any{
			{"t1", uint64(6), uint64(3), 0.5, uint64(3), 0.5, []uint64{1, 0, 2, 0, 0, 0, 0, 0, 0, 0}, "20-30%"},
		})
	})

	t.Run("genre-gap compares each genre's share of watch time with its share of the catalog", func(t *testing.T) {
		// Catalog: 7 titles; drama t1 t2 t4 t6 t7 (5/7), crime t1 (1/7),
		// comedy t3 t4 (2/7), documentary t5 (1/7). t9 is not in the
		// catalog: its hour counts nowhere.
		// DE: t1 1 h, t2 2 h, t3 1 h, t4 0.5 h = 4.5 h.
		//   drama 3.5 h, crime 1 h, comedy 1.5 h.
		// FR: t1 0.5 h: drama and crime.
		check(t, run(t, conn, "genre-gap"), "country genre watch_hours demand_share titles supply_share underserved", [][]any{
			{"DE", "crime", 1.0, 1 / 4.5, uint64(1), 1.0 / 7, (1 / 4.5) / (1.0 / 7)},
			{"DE", "comedy", 1.5, 1.5 / 4.5, uint64(2), 2.0 / 7, (1.5 / 4.5) / (2.0 / 7)},
			{"DE", "drama", 3.5, 3.5 / 4.5, uint64(5), 5.0 / 7, (3.5 / 4.5) / (5.0 / 7)},
			{"FR", "crime", 0.5, 1.0, uint64(1), 1.0 / 7, 7.0},
			{"FR", "drama", 0.5, 1.0, uint64(5), 5.0 / 7, 7.0 / 5},
		})
		check(t, run(t, conn, "genre-gap", "--country", "DE", "--limit", "1"), "country genre watch_hours demand_share titles supply_share underserved", [][]any{
			{"DE", "crime", 1.0, 1 / 4.5, uint64(1), 1.0 / 7, (1 / 4.5) / (1.0 / 7)},
		})
	})

	t.Run("overlap counts the viewers of each title, of both, and their Jaccard index", func(t *testing.T) {
		// t1: 1 2 3 4; t2: 3 5 6 7 (the stale 99 is ignored).
		check(t, run(t, conn, "overlap", "--a", "t1", "--b", "t2"), "a b viewers_a viewers_b viewers_both jaccard a_also_b b_also_a", [][]any{
			{"t1", "t2", uint64(4), uint64(4), uint64(1), 1.0 / 7, 0.25, 0.25},
		})
		// In DE, t1 has 1 2 3.
		check(t, run(t, conn, "overlap", "--a", "t1", "--b", "t2", "--country", "DE"), "a b viewers_a viewers_b viewers_both jaccard a_also_b b_also_a", [][]any{
			{"t1", "t2", uint64(3), uint64(4), uint64(1), 1.0 / 6, 1.0 / 3, 0.25},
		})
		// A quote in an id is bound as a value, not SQL.
		check(t, run(t, conn, "overlap", "--a", "t1' OR '1'='1", "--b", "t2"), "a b viewers_a viewers_b viewers_both jaccard a_also_b b_also_a", [][]any{
			{"t1' OR '1'='1", "t2", uint64(0), uint64(4), uint64(0), 0.0, 0.0, 0.0},
		})
	})

	t.Run("early-hit compares the first 72 hours of new titles with the median of their first genre", func(t *testing.T) {
		// First starts and 72-hour viewers (to = 03-20):
		//   t7 03-01 10:00  20 21 22 (03-05 is too late)     3 drama
		//   t1 03-13 10:00  1 2 3 4                          4 drama
		//   t2 03-13 12:00  5, 3 5 6 7, 10 11 (03-15 00:00)  6 drama
		//   t4 03-13 14:00  9                                1 comedy (its first genre)
		//   t3 03-14 13:00  1 8 (30 was before its first start) 2 comedy
		//   t6 03-18 10:00  1..8, 72 h not over              8 drama
		// Medians over titles whose 72 h are over: drama 3 4 6 → 4;
		// comedy 1 2 → 1.5. t7 started before --from: a peer, not listed.
		check(t, run(t, conn, "early-hit", "--from", "2026-03-10", "--to", "2026-03-20"),
			"title_id genre first_start viewers_72h genre_median peers ratio partial", [][]any{
				{"t6", "drama", day.Add(4*24*h + 10*h), uint64(8), 4.0, uint64(3), 2.0, uint64(1)},
				{"t2", "drama", day.Add(-12 * h), uint64(6), 4.0, uint64(3), 1.5, uint64(0)},
				{"t3", "comedy", day.Add(13 * h), uint64(2), 1.5, uint64(2), 2 / 1.5, uint64(0)},
				{"t1", "drama", day.Add(-14 * h), uint64(4), 4.0, uint64(3), 1.0, uint64(0)},
				{"t4", "comedy", day.Add(-10 * h), uint64(1), 1.5, uint64(2), 1 / 1.5, uint64(0)},
			})
		// On 03-15, only t7 has completed 72 h: the only drama peer is t7,
		// comedy has none (ratio NULL, sorted last), and t2 has not had its
		// 03-15 viewers yet: 3 5 6 7. Equal ratios: more viewers, then id.
		check(t, run(t, conn, "early-hit", "--from", "2026-03-13", "--to", "2026-03-15"),
			"title_id genre first_start viewers_72h genre_median peers ratio partial", [][]any{
				{"t1", "drama", day.Add(-14 * h), uint64(4), 3.0, uint64(1), 4.0 / 3, uint64(1)},
				{"t2", "drama", day.Add(-12 * h), uint64(4), 3.0, uint64(1), 4.0 / 3, uint64(1)},
				{"t3", "comedy", day.Add(13 * h), uint64(2), 0.0, uint64(0), nil, uint64(1)},
				{"t4", "comedy", day.Add(-10 * h), uint64(1), 0.0, uint64(0), nil, uint64(1)},
			})
	})

	t.Run("funnel sums impressions and selects from browse and plays from playback per row and artwork", func(t *testing.T) {
		check(t, run(t, conn, "funnel"), "row artwork_id impressions selects plays select_rate play_rate conversion", [][]any{
			{"trending", "a1", uint64(100), uint64(10), uint64(4), 0.1, 0.4, 0.04},
			{"trending", "a2", uint64(50), uint64(10), uint64(5), 0.2, 0.5, 0.1},
			{"continue", "a3", uint64(25), uint64(2), uint64(0), 0.08, 0.0, 0.0},
			{"", "", uint64(0), uint64(0), uint64(7), 0.0, 0.0, 0.0},
		})
		check(t, run(t, conn, "funnel", "--row", "continue"), "row artwork_id impressions selects plays select_rate play_rate conversion", [][]any{
			{"continue", "a3", uint64(25), uint64(2), uint64(0), 0.08, 0.0, 0.0},
		})
	})

	t.Run("quality rates are per session, per CDN and ISP, optionally per country and time bucket", func(t *testing.T) {
		// edge1 acme: 10 + 5 + 5 sessions, 4 rebuffers, 5 s stalled, 2 start
		// failures, 3 errors, 75000 kbps over 20 samples.
		check(t, run(t, conn, "quality"), "cdn isp sessions rebuffers rebuffers_per_session rebuffer_s_per_session start_failures start_failure_rate errors error_rate mean_bitrate_kbps", [][]any{
			{"edge1", "acme", uint64(20), uint64(4), 0.2, 0.25, uint64(2), 0.1, uint64(3), 0.15, 3750.0},
			{"edge2", "zeta", uint64(2), uint64(2), 1.0, 1.0, uint64(0), 0.0, uint64(0), 0.0, 3000.0},
		})
		check(t, run(t, conn, "quality", "--by-country", "true"), "cdn isp country sessions rebuffers rebuffers_per_session rebuffer_s_per_session start_failures start_failure_rate errors error_rate mean_bitrate_kbps", [][]any{
			{"edge1", "acme", "DE", uint64(15), uint64(4), 4.0 / 15, 5.0 / 15, uint64(1), 1.0 / 15, uint64(2), 2.0 / 15, 50000.0 / 15},
			{"edge1", "acme", "FR", uint64(5), uint64(0), 0.0, 0.0, uint64(1), 0.2, uint64(1), 0.2, 5000.0},
			{"edge2", "zeta", "DE", uint64(2), uint64(2), 1.0, 1.0, uint64(0), 0.0, uint64(0), 0.0, 3000.0},
		})
		check(t, run(t, conn, "quality", "--bucket", "12h", "--country", "DE"), "bucket cdn isp country sessions rebuffers rebuffers_per_session rebuffer_s_per_session start_failures start_failure_rate errors error_rate mean_bitrate_kbps", [][]any{
			{day, "edge1", "acme", "DE", uint64(15), uint64(4), 4.0 / 15, 5.0 / 15, uint64(1), 1.0 / 15, uint64(2), 2.0 / 15, 50000.0 / 15},
			{day.Add(12 * h), "edge2", "zeta", "DE", uint64(2), uint64(2), 1.0, 1.0, uint64(0), 0.0, uint64(0), 0.0, 3000.0},
		})
	})
}

func TestEveryNamedQueryRunsWithItsDefaultsAndReturnsOnlyDocumentedColumns(t *testing.T) {
	conn := queryFixture(t)
	for _, q := range warehouse.Queries() {
		t.Run(q.Name, func(t *testing.T) {
			text := map[string]string{}
			for _, p := range q.Params {
				if p.Required {
					text[p.Name] = "t1"
				}
			}
			args, err := q.ParseArgs(text, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			res, err := q.Run(context.Background(), conn, args)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range res.Columns {
				if c.Doc == "" {
					t.Errorf("column %s is not documented in the registry", c.Name)
				}
			}
		})
	}
}

func TestANamedQueryOnADatabaseWithoutTheTablesNamesTheTable(t *testing.T) {
	v := env(t, "ATLAS_CLICKHOUSE_ADDR", "ATLAS_CLICKHOUSE_READER_USER", "ATLAS_CLICKHOUSE_READER_PASSWORD")
	conn, err := warehouse.Open(context.Background(), warehouse.Config{Addr: v[0], Database: "default", User: v[1], Password: v[2]})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	q, _ := warehouse.LookupQuery("funnel")
	args, err := q.ParseArgs(nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, err = q.Run(context.Background(), conn, args)
	if err == nil || !strings.Contains(err.Error(), "funnel_minute") || !strings.HasPrefix(err.Error(), "cannot run query funnel: ") {
		t.Fatalf("funnel in the default database: %v", err)
	}
	t.Logf("as expected: %v", err)
}
