package warehouse

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// DayPartitionedTables are the tables that grow with traffic. Each is
// partitioned by day (the minute tables and late_events by
// toYYYYMMDD(window_start), alerts by toDate(first_seen)), so that old days
// leave by dropping whole partitions: 18.16 has no TTL. titles is small and
// never dropped.
var DayPartitionedTables = []string{"playback_minute", "quality_minute", "funnel_minute", "late_events", "alerts"}

// Partition is one day of one table.
type Partition struct {
	Table string
	// Day is the partition id: the day as YYYYMMDD for every table here.
	Day string
	// Value is the partition as system.parts shows it and ALTER TABLE …
	// PARTITION takes it (quoted when it is a date).
	Value string
	Rows  uint64
}

// PartitionsBefore lists the active partitions of [DayPartitionedTables]
// whose day is before the UTC day of before, oldest first.
func PartitionsBefore(ctx context.Context, conn driver.Conn, database string, before time.Time) ([]Partition, error) {
	if err := checkDatabaseName(database); err != nil {
		return nil, err
	}
	cutoff := before.UTC().Format("20060102")
	rows, err := conn.Query(ctx, `SELECT table, partition_id, partition, sum(rows)
		FROM system.parts
		WHERE database = ? AND active AND has(?, table) AND partition_id < ?
		GROUP BY table, partition_id, partition
		ORDER BY partition_id, table`, database, DayPartitionedTables, cutoff)
	if err != nil {
		return nil, fmt.Errorf("cannot list the partitions of %s: %w", database, err)
	}
	defer rows.Close()
	var out []Partition
	for rows.Next() {
		var p Partition
		if err := rows.Scan(&p.Table, &p.Day, &p.Value, &p.Rows); err != nil {
			return nil, fmt.Errorf("cannot list the partitions of %s: %w", database, err)
		}
		if strings.Trim(p.Value, "0123456789") != "" && !strings.HasPrefix(p.Value, "'") {
			p.Value = "'" + p.Value + "'" // a Date partition: 2026-03-14
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// DropPartitions drops each partition with ALTER TABLE … DROP PARTITION.
// It needs a user that may run DDL (the admin user: the writer has
// allow_ddl = 0). Dropping a partition that is gone already is not an
// error.
func DropPartitions(ctx context.Context, conn driver.Conn, database string, parts []Partition) error {
	if err := checkDatabaseName(database); err != nil {
		return err
	}
	for _, p := range parts {
		if strings.Trim(p.Value, "0123456789-'") != "" {
			return fmt.Errorf("cannot drop partition %q of %s: not a day", p.Value, p.Table)
		}
		q := fmt.Sprintf("ALTER TABLE %s.%s DROP PARTITION %s", database, p.Table, p.Value)
		if err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("cannot drop partition %s of %s.%s: %w", p.Value, database, p.Table, err)
		}
	}
	return nil
}
