package warehouse

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// MigrationsTable is the table, in the migrated database, where Migrate
// records each applied migration: version, name, checksum, applied_at.
const MigrationsTable = "schema_migrations"

var (
	// ErrChecksumMismatch is returned (wrapped) by Migrate, Status and
	// Pending when the file of an applied migration differs from the one
	// that was applied. Add a new migration instead of editing an applied
	// one.
	ErrChecksumMismatch = errors.New("migration file changed after it was applied")

	// ErrUnknownMigration is returned (wrapped) by Migrate, Status and
	// Pending when the database records a migration that this binary does
	// not have: the database was migrated by a newer Atlas.
	ErrUnknownMigration = errors.New("database records a migration this binary does not have")
)

// MigrationStatus is one migration and whether the database has it.
type MigrationStatus struct {
	Migration
	// Applied is true once the migration ran and was recorded.
	Applied bool
	// AppliedAt is when it was recorded (UTC, whole seconds); zero while
	// pending.
	AppliedAt time.Time
}

// applied is one row of the migrations table.
type applied struct {
	Version   int
	Name      string
	Checksum  string
	AppliedAt time.Time
}

// Migrate brings database up to date with the migrations built into this
// binary ([Migrations]). It detects the server version, creates the
// database and its migrations table when missing, then applies every pending
// migration in version order, recording each one after its last statement
// succeeded. It returns the migrations it applied: none when the database
// was already up to date, so running it twice is harmless.
//
// It refuses to apply anything, returning an error that wraps
// ErrChecksumMismatch or ErrUnknownMigration, when an applied migration's
// file changed or is missing. When a statement fails, the migrations
// applied before it stay recorded and are returned with the error.
//
// conn must be allowed to run DDL (atlas_admin); its current database does
// not matter, since every statement names database. log, when not nil,
// receives one line per applied migration. ClickHouse has no locks: run one
// Migrate at a time per database.
func Migrate(ctx context.Context, conn driver.Conn, database string, log func(format string, args ...any)) ([]Migration, error) {
	ms, err := Migrations()
	if err != nil {
		return nil, fmt.Errorf("cannot migrate %s: %w", database, err)
	}
	return migrate(ctx, conn, database, ms, log)
}

func migrate(ctx context.Context, conn driver.Conn, database string, ms []Migration, log func(string, ...any)) ([]Migration, error) {
	if log == nil {
		log = func(string, ...any) {}
	}
	if err := checkDatabaseName(database); err != nil {
		return nil, fmt.Errorf("cannot migrate: %w", err)
	}
	v, err := DetectVersion(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("cannot migrate %s: %w", database, err)
	}
	if err := conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+database); err != nil {
		return nil, fmt.Errorf("cannot create database %s: %w", database, err)
	}
	if err := conn.Exec(ctx, createMigrationsTable(database)); err != nil {
		return nil, fmt.Errorf("cannot create %s.%s: %w", database, MigrationsTable, err)
	}
	records, err := readApplied(ctx, conn, database)
	if err != nil {
		return nil, err
	}
	statuses, err := plan(ms, records)
	if err != nil {
		return nil, fmt.Errorf("cannot migrate %s: %w", database, err)
	}

	var done []Migration
	for _, st := range statuses {
		if st.Applied {
			continue
		}
		m := st.Migration
		stmts, err := m.Statements(database, v)
		if err != nil {
			return done, err
		}
		start := time.Now()
		for i, stmt := range stmts {
			if err := conn.Exec(ctx, stmt); err != nil {
				return done, fmt.Errorf("cannot apply migration %s to %s (statement %d of %d) on ClickHouse %s: %w",
					m.File(), database, i+1, len(stmts), v, err)
			}
		}
		if err := record(ctx, conn, database, m); err != nil {
			return done, err
		}
		done = append(done, m)
		log("applied migration %s to %s on ClickHouse %s in %s", m.File(), database, v, time.Since(start).Round(time.Millisecond))
	}
	if len(done) == 0 {
		log("database %s is up to date (%d migrations) on ClickHouse %s", database, len(statuses), v)
	}
	return done, nil
}

// Status lists every migration built into this binary and whether database
// has it, in version order. It changes nothing: a database or migrations
// table that does not exist yet means every migration is pending. It
// returns an error wrapping ErrChecksumMismatch or ErrUnknownMigration in
// the cases where Migrate would refuse.
func Status(ctx context.Context, conn driver.Conn, database string) ([]MigrationStatus, error) {
	ms, err := Migrations()
	if err != nil {
		return nil, fmt.Errorf("cannot read the migration status of %s: %w", database, err)
	}
	return status(ctx, conn, database, ms)
}

func status(ctx context.Context, conn driver.Conn, database string, ms []Migration) ([]MigrationStatus, error) {
	if err := checkDatabaseName(database); err != nil {
		return nil, fmt.Errorf("cannot read the migration status: %w", err)
	}
	var n uint64
	err := conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = ?",
		database, MigrationsTable).Scan(&n)
	if err != nil {
		return nil, fmt.Errorf("cannot look for %s.%s: %w", database, MigrationsTable, err)
	}
	var records []applied
	if n > 0 {
		if records, err = readApplied(ctx, conn, database); err != nil {
			return nil, err
		}
	}
	statuses, err := plan(ms, records)
	if err != nil {
		return nil, fmt.Errorf("cannot read the migration status of %s: %w", database, err)
	}
	return statuses, nil
}

// Pending returns the migrations that Migrate would apply to database now,
// in order, with the same errors as [Status].
func Pending(ctx context.Context, conn driver.Conn, database string) ([]Migration, error) {
	statuses, err := Status(ctx, conn, database)
	if err != nil {
		return nil, err
	}
	var pending []Migration
	for _, st := range statuses {
		if !st.Applied {
			pending = append(pending, st.Migration)
		}
	}
	return pending, nil
}

// plan matches the migrations of this binary against the records of a
// database.
func plan(ms []Migration, records []applied) ([]MigrationStatus, error) {
	byVersion := make(map[int]applied, len(records))
	for _, r := range records {
		byVersion[r.Version] = r
	}
	statuses := make([]MigrationStatus, 0, len(ms))
	for _, m := range ms {
		r, ok := byVersion[m.Version]
		if !ok {
			statuses = append(statuses, MigrationStatus{Migration: m})
			continue
		}
		delete(byVersion, m.Version)
		if r.Checksum != m.Checksum {
			return nil, fmt.Errorf("%w: %s was applied at %s with checksum %.12s…, the file now has %.12s…",
				ErrChecksumMismatch, m.File(), r.AppliedAt.Format(time.RFC3339), r.Checksum, m.Checksum)
		}
		statuses = append(statuses, MigrationStatus{Migration: m, Applied: true, AppliedAt: r.AppliedAt})
	}
	for _, r := range records {
		if _, unknown := byVersion[r.Version]; unknown {
			return nil, fmt.Errorf("%w: %04d_%s.sql, applied at %s",
				ErrUnknownMigration, r.Version, r.Name, r.AppliedAt.Format(time.RFC3339))
		}
	}
	return statuses, nil
}

// createMigrationsTable uses ReplacingMergeTree so that the rows of two
// Migrate runs that raced (which the doc of Migrate forbids) collapse to
// one per version instead of accumulating.
func createMigrationsTable(database string) string {
	return "CREATE TABLE IF NOT EXISTS " + database + "." + MigrationsTable + ` (
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime
)
ENGINE = ReplacingMergeTree()
ORDER BY version`
}

func readApplied(ctx context.Context, conn driver.Conn, database string) ([]applied, error) {
	rows, err := conn.Query(ctx, "SELECT version, name, checksum, applied_at FROM "+
		database+"."+MigrationsTable+" FINAL ORDER BY version")
	if err != nil {
		return nil, fmt.Errorf("cannot read %s.%s: %w", database, MigrationsTable, err)
	}
	defer rows.Close()
	var records []applied
	for rows.Next() {
		var (
			version uint32
			r       applied
		)
		if err := rows.Scan(&version, &r.Name, &r.Checksum, &r.AppliedAt); err != nil {
			return nil, fmt.Errorf("cannot read %s.%s: %w", database, MigrationsTable, err)
		}
		r.Version = int(version)
		r.AppliedAt = r.AppliedAt.UTC()
		records = append(records, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read %s.%s: %w", database, MigrationsTable, err)
	}
	return records, nil
}

// record writes one row per migration. It uses PrepareBatch with the
// column list written out, which ClickHouse 18.16 needs.
func record(ctx context.Context, conn driver.Conn, database string, m Migration) error {
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+database+"."+MigrationsTable+
		" (version, name, checksum, applied_at)")
	if err != nil {
		return fmt.Errorf("cannot record migration %s in %s.%s: %w", m.File(), database, MigrationsTable, err)
	}
	defer batch.Close()
	if err := batch.Append(uint32(m.Version), m.Name, m.Checksum, time.Now().UTC().Truncate(time.Second)); err != nil {
		return fmt.Errorf("cannot record migration %s in %s.%s: %w", m.File(), database, MigrationsTable, err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("cannot record migration %s in %s.%s: %w", m.File(), database, MigrationsTable, err)
	}
	return nil
}
