//go:build integration

package warehouse

import (
	"fmt"
	"testing"
	"time"
)

// Old days of the tables that grow with traffic leave as whole partitions
// (the drop policy of `atlas clickhouse drop-partitions`), on 18.16, for
// both kinds of day partition (toYYYYMMDD and toDate); newer days stay.
func TestPartitionsOlderThanTheRetentionAreListedAndDropped(t *testing.T) {
	s := serverFromEnv(t)
	admin, db := migrated(t, s)
	ctx := testContext(t)
	now := time.Now().UTC()
	old, recent := now.AddDate(0, 0, -100), now.AddDate(0, 0, -3)
	// INSERT … SELECT: an INSERT … VALUES through Exec waits for data
	// blocks that never come on the native protocol.
	for _, day := range []time.Time{old, recent} {
		at := "toDateTime('" + day.Format(time.DateTime) + "')"
		if err := admin.Exec(ctx, fmt.Sprintf(`INSERT INTO %s.playback_minute (window_start, title_id, country, device_type, src_topic, src_partition, version, starts)
			SELECT %s, 't1', 'DE', 'tv', 'pb', 0, 1, 3`, db, at)); err != nil {
			t.Fatal(err)
		}
		if err := admin.Exec(ctx, fmt.Sprintf(`INSERT INTO %s.alerts (id, kind, status, severity, subject, score, evidence, window_start, window_end, first_seen, detected_at)
			SELECT 'a-%d', 'bot', 'firing', 3, 'account:x', 1, '{}', %s, %s, %s, %s`, db, day.Unix(), at, at, at, at)); err != nil {
			t.Fatal(err)
		}
	}
	parts, err := PartitionsBefore(ctx, admin, db, now.AddDate(0, 0, -90))
	if err != nil {
		t.Fatal(err)
	}
	want := old.Format("20060102")
	if len(parts) != 2 || parts[0].Day != want || parts[1].Day != want || parts[0].Rows != 1 {
		t.Fatalf("partitions before the cutoff: %+v; want alerts and playback_minute of %s", parts, want)
	}
	for _, p := range parts {
		t.Logf("dropping %s partition %s (%d rows)", p.Table, p.Value, p.Rows)
	}
	if err := DropPartitions(ctx, admin, db, parts); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"playback_minute", "alerts"} {
		var n uint64
		if err := admin.QueryRow(ctx, fmt.Sprintf("SELECT count() FROM %s.%s", db, table)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("%s holds %d rows after the drop; want the recent day's 1", table, n)
		}
	}
	if parts, err := PartitionsBefore(ctx, admin, db, now.AddDate(0, 0, -90)); err != nil || len(parts) != 0 {
		t.Fatalf("after the drop: %+v, %v", parts, err)
	}
}
