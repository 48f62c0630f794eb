// Package oracle compares what the aggregates role wrote to ClickHouse
// with the simulator's ground truth. It is the oracle of the end-to-end
// kill and chaos tests (e2e, e2e/secure) and of make bench's exact-totals
// check (bench/pipeline): one comparison, so that they cannot drift apart.
package oracle

import (
	"context"
	"fmt"
	"sort"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/atlas-stream/atlas/producers/sim"
)

// Diff reads every per-window total through the views, as the dashboards
// do, and the late events of conn's database, and returns every
// difference from truth as a readable line, sorted, with the number of
// rows and late events compared. Rows whose counted values are all zero
// are left out on both sides (a key that only saw uncounted event kinds).
func Diff(ctx context.Context, conn driver.Conn, truth *sim.Truth) (int, []string, error) {
	want := map[string]string{}
	for _, r := range truth.Playback {
		add(want, "playback", fmt.Sprint(r.Window, r.TitleID, r.Country, r.DeviceType), r.Starts, r.Completes, r.WatchMs, r.Viewers, r.Dropoff)
	}
	for _, r := range truth.Quality {
		add(want, "quality", fmt.Sprint(r.Window, r.CDN, r.ISP, r.Country), r.Sessions, r.Rebuffers, r.RebufferMs, r.StartFailures, r.Errors, r.BitrateSum, r.BitrateSamples)
	}
	for _, r := range truth.Funnel {
		add(want, "funnel", fmt.Sprint(r.Window, r.Row, r.ArtworkID), r.Impressions, r.Selects, r.Plays)
	}
	got := map[string]string{}
	err := query(ctx, conn, `SELECT toUInt64(window_start) * 1000, title_id, country, device_type, starts, completes, watch_ms, toUInt64(viewers), dropoff FROM playback_by_minute`,
		func(r driver.Rows) error {
			var w, st, co, wm, v uint64
			var title, cc, dt string
			var drop []uint64
			if err := r.Scan(&w, &title, &cc, &dt, &st, &co, &wm, &v, &drop); err != nil {
				return err
			}
			var d [10]int64
			for i := range drop {
				d[i] = int64(drop[i])
			}
			add(got, "playback", fmt.Sprint(int64(w), title, cc, dt), int64(st), int64(co), int64(wm), int64(v), d)
			return nil
		})
	if err != nil {
		return 0, nil, err
	}
	err = query(ctx, conn, `SELECT toUInt64(window_start) * 1000, cdn, isp, country, sessions, rebuffers, rebuffer_ms, start_failures, errors, bitrate_sum, bitrate_samples FROM quality_by_minute`,
		func(r driver.Rows) error {
			var w, a, b, c, d, e, f, g uint64
			var cdn, isp, cc string
			if err := r.Scan(&w, &cdn, &isp, &cc, &a, &b, &c, &d, &e, &f, &g); err != nil {
				return err
			}
			add(got, "quality", fmt.Sprint(int64(w), cdn, isp, cc), int64(a), int64(b), int64(c), int64(d), int64(e), int64(f), int64(g))
			return nil
		})
	if err != nil {
		return 0, nil, err
	}
	err = query(ctx, conn, `SELECT toUInt64(window_start) * 1000, row, artwork_id, impressions, selects, plays FROM funnel_by_minute`,
		func(r driver.Rows) error {
			var w, a, b, c uint64
			var row, art string
			if err := r.Scan(&w, &row, &art, &a, &b, &c); err != nil {
				return err
			}
			add(got, "funnel", fmt.Sprint(int64(w), row, art), int64(a), int64(b), int64(c))
			return nil
		})
	if err != nil {
		return 0, nil, err
	}

	var diffs []string
	for k, v := range want {
		if got[k] != v {
			diffs = append(diffs, fmt.Sprintf("%s: ClickHouse %q, truth %q", k, got[k], v))
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: ClickHouse %q, not in the truth", k, v))
		}
	}
	late := map[string]bool{}
	err = query(ctx, conn, `SELECT event_id FROM late_events FINAL`, func(r driver.Rows) error {
		var id string
		if err := r.Scan(&id); err != nil {
			return err
		}
		late[id] = true
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	wantLate := map[string]bool{}
	for _, l := range truth.Late {
		wantLate[l.EventID] = true
	}
	for id := range wantLate {
		if !late[id] {
			diffs = append(diffs, fmt.Sprintf("late event %s of the truth is not in late_events", id))
		}
	}
	for id := range late {
		if !wantLate[id] {
			diffs = append(diffs, fmt.Sprintf("late_events holds %s, which the truth says was on time", id))
		}
	}
	sort.Strings(diffs)
	return len(want) + len(wantLate), diffs, nil
}

// add records a row as a string of its values, skipping rows whose values
// are all zero (a key that only saw uncounted event kinds).
func add(m map[string]string, table, key string, vals ...any) {
	s := fmt.Sprint(vals...)
	zero := true
	for _, v := range vals {
		switch x := v.(type) {
		case int64:
			zero = zero && x == 0
		case [10]int64:
			zero = zero && x == [10]int64{}
		}
	}
	if !zero {
		m[table+" "+key] = s
	}
}

func query(ctx context.Context, conn driver.Conn, q string, row func(driver.Rows) error) error {
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return fmt.Errorf("cannot query %q: %w", q, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows); err != nil {
			return fmt.Errorf("cannot read a row of %q: %w", q, err)
		}
	}
	return rows.Err()
}
