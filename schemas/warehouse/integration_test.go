//go:build integration

// These tests talk to a real ClickHouse server, the one started by
// scripts/clickhouse.sh or any other reachable through the same variables:
//
//	scripts/clickhouse.sh start
//	eval "$(scripts/clickhouse.sh env)"
//	go test -tags integration -count=1 -v ./schemas/warehouse/
//
// They fail, never skip, when the server is not there. Each test migrates a
// database of its own (atlas_test_<time>_<n>) and drops it at the end.

package warehouse

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/go-cmp/cmp"
)

// ClickHouse error codes the tests expect (ErrorCodes.cpp, stable since
// long before 18.16).
const (
	codeReadonly           = 164 // READONLY: readonly = 1 or 2 refuses writes and DDL
	codeQueryIsProhibited  = 392 // QUERY_IS_PROHIBITED: allow_ddl = 0 refuses DDL
	codeUnknownTable       = 60
	startServerInstruction = "start ClickHouse with `scripts/clickhouse.sh start` and export its settings with `eval \"$(scripts/clickhouse.sh env)\"`, or export the ATLAS_CLICKHOUSE_* variables of an existing server"
)

type server struct {
	addr                       string
	adminUser, adminPassword   string
	writerUser, writerPassword string
	readerUser, readerPassword string
}

// serverFromEnv reads the variables printed by scripts/clickhouse.sh env.
func serverFromEnv(t *testing.T) server {
	t.Helper()
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
		t.Fatalf("ClickHouse integration tests need %s: %s", strings.Join(missing, ", "), startServerInstruction)
	}
	return s
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// open connects as user to database and closes the connection when the
// test ends.
func open(t *testing.T, s server, user, password, database string) driver.Conn {
	t.Helper()
	conn, err := Open(testContext(t), Config{
		Addr: s.addr, Database: database, User: user, Password: password, DialTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatalf("%v\nIs ClickHouse running? %s", err, startServerInstruction)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

var databaseSeq atomic.Int64

// newDatabase returns an admin connection (current database "default") and
// the name of a database unique to this test run, dropped when the test
// ends. The database is not created: Migrate does that.
func newDatabase(t *testing.T, s server) (driver.Conn, string) {
	t.Helper()
	admin := open(t, s, s.adminUser, s.adminPassword, "default")
	v, err := DetectVersion(testContext(t), admin)
	if err != nil {
		t.Fatal(err)
	}
	db := fmt.Sprintf("atlas_test_%d_%d", time.Now().UnixNano(), databaseSeq.Add(1))
	t.Logf("ClickHouse %s at %s, database %s", v, s.addr, db)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
			t.Errorf("cannot drop test database %s: %v", db, err)
		}
	})
	return admin, db
}

// migrated is newDatabase followed by Migrate.
func migrated(t *testing.T, s server) (driver.Conn, string) {
	t.Helper()
	admin, db := newDatabase(t, s)
	if _, err := Migrate(testContext(t), admin, db, t.Logf); err != nil {
		t.Fatal(err)
	}
	return admin, db
}

func errorCode(err error) int32 {
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		return ex.Code
	}
	return 0
}

func files(ms []Migration) []string {
	var names []string
	for _, m := range ms {
		names = append(names, m.File())
	}
	return names
}

func TestMigrateTwiceAppliesNothingTheSecondTime(t *testing.T) {
	s := serverFromEnv(t)
	admin, db := newDatabase(t, s)
	ctx := testContext(t)
	all, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}

	pending, err := Pending(ctx, admin, db)
	if err != nil {
		t.Fatalf("Pending before the first Migrate: %v", err)
	}
	if diff := cmp.Diff(files(all), files(pending)); diff != "" {
		t.Fatalf("before the first Migrate, Pending mismatch (-want +got):\n%s", diff)
	}
	var dbs uint64
	if err := admin.QueryRow(ctx, "SELECT count() FROM system.databases WHERE name = ?", db).Scan(&dbs); err != nil {
		t.Fatal(err)
	}
	if dbs != 0 {
		t.Fatalf("Pending created database %s; it must change nothing", db)
	}

	first, err := Migrate(ctx, admin, db, t.Logf)
	if err != nil {
		t.Fatalf("first Migrate: %v", err)
	}
	if diff := cmp.Diff(files(all), files(first)); diff != "" {
		t.Fatalf("first Migrate applied the wrong migrations (-want +got):\n%s", diff)
	}
	second, err := Migrate(ctx, admin, db, t.Logf)
	if err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if len(second) != 0 {
		t.Fatalf("second Migrate applied %v, want nothing", files(second))
	}

	statuses, err := Status(ctx, admin, db)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range statuses {
		if !st.Applied || time.Since(st.AppliedAt) > time.Hour || time.Since(st.AppliedAt) < -time.Minute {
			t.Fatalf("Status after Migrate: %s applied=%v at %s, want applied a moment ago", st.File(), st.Applied, st.AppliedAt)
		}
	}
	var engine, sortingKey string
	err = admin.QueryRow(ctx, "SELECT engine, sorting_key FROM system.tables WHERE database = ? AND name = 'alerts'", db).
		Scan(&engine, &sortingKey)
	if err != nil {
		t.Fatalf("cannot find %s.alerts after Migrate: %v", db, err)
	}
	if engine != "ReplacingMergeTree" || sortingKey != "kind, subject, id, status, severity" {
		t.Fatalf("%s.alerts has engine %q and sorting key %q", db, engine, sortingKey)
	}
}

func TestMigrateRefusesAnAppliedMigrationWhoseFileChanged(t *testing.T) {
	s := serverFromEnv(t)
	admin, db := newDatabase(t, s)
	ctx := testContext(t)
	load := func(files fstest.MapFS) []Migration {
		t.Helper()
		ms, err := loadMigrations(files)
		if err != nil {
			t.Fatal(err)
		}
		return ms
	}
	original := load(fstest.MapFS{
		"0001_t.sql": {Data: []byte("CREATE TABLE IF NOT EXISTS {{.Database}}.t (a UInt8) ENGINE = Log;")},
	})
	edited := load(fstest.MapFS{
		"0001_t.sql": {Data: []byte("CREATE TABLE IF NOT EXISTS {{.Database}}.t (a UInt16) ENGINE = Log;")},
		"0002_u.sql": {Data: []byte("CREATE TABLE IF NOT EXISTS {{.Database}}.u (a UInt8) ENGINE = Log;")},
	})
	if _, err := migrate(ctx, admin, db, original, t.Logf); err != nil {
		t.Fatal(err)
	}

	applied, err := migrate(ctx, admin, db, edited, t.Logf)
	if !errors.Is(err, ErrChecksumMismatch) {
		t.Fatalf("Migrate after editing an applied file: error = %v, want ErrChecksumMismatch", err)
	}
	t.Logf("refused as expected: %v", err)
	if len(applied) != 0 {
		t.Fatalf("Migrate applied %v although it refused", files(applied))
	}
	if err := admin.Exec(ctx, "SELECT * FROM "+db+".u"); errorCode(err) != codeUnknownTable {
		t.Fatalf("after the refusal, SELECT from %s.u: error = %v, want code %d (the pending 0002 must not run)", db, err, codeUnknownTable)
	}
	if _, err := status(ctx, admin, db, edited); !errors.Is(err, ErrChecksumMismatch) {
		t.Fatalf("Status after editing an applied file: error = %v, want ErrChecksumMismatch", err)
	}
	if _, err := migrate(ctx, admin, db, nil, t.Logf); !errors.Is(err, ErrUnknownMigration) {
		t.Fatalf("Migrate by a binary without the applied 0001: error = %v, want ErrUnknownMigration", err)
	}
}

// alert mirrors the columns of the alerts table.
type alert struct {
	ID, Kind, Status                          string
	Severity                                  uint8
	Subject                                   string
	Score                                     float64
	Evidence                                  string
	WindowStart, WindowEnd, FirstSeen, Detect time.Time
}

const alertColumns = "id, kind, status, severity, subject, score, evidence, window_start, window_end, first_seen, detected_at"

func insertAlerts(ctx context.Context, conn driver.Conn, alerts []alert) error {
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO alerts ("+alertColumns+")")
	if err != nil {
		return err
	}
	defer batch.Close()
	for _, a := range alerts {
		err := batch.Append(a.ID, a.Kind, a.Status, a.Severity, a.Subject, a.Score, a.Evidence,
			a.WindowStart, a.WindowEnd, a.FirstSeen, a.Detect)
		if err != nil {
			return err
		}
	}
	return batch.Send()
}

func sampleAlerts() []alert {
	t0 := time.Date(2026, 3, 14, 15, 9, 0, 0, time.UTC)
	return []alert{
		{"a1", "account_sharing", "firing", 2, "account:42", 3.5, `{"devices":5,"plan":2}`,
			t0, t0.Add(5 * time.Minute), t0.Add(time.Minute), t0.Add(6 * time.Minute)},
		{"a1", "account_sharing", "escalated", 4, "account:42", 7.25, `{"devices":9,"plan":2}`,
			t0, t0.Add(5 * time.Minute), t0.Add(time.Minute), t0.Add(11 * time.Minute)},
		{"q7", "quality_incident", "firing", 3, "cdn:edge1|isp:acme|DE", 5.1, `{"rebuffer_ratio":0.21}`,
			t0, t0.Add(time.Minute), t0, t0.Add(2 * time.Minute)},
	}
}

func TestWriterInsertsABatchThatReadsBackOnceAfterAReplay(t *testing.T) {
	s := serverFromEnv(t)
	_, db := migrated(t, s)
	writer := open(t, s, s.writerUser, s.writerPassword, db)
	ctx := testContext(t)
	want := sampleAlerts()

	// The second insert is a replay after a crash: the same rows again.
	for i := 0; i < 2; i++ {
		if err := insertAlerts(ctx, writer, want); err != nil {
			t.Fatalf("insert %d as %s: %v", i+1, s.writerUser, err)
		}
	}

	rows, err := writer.Query(ctx, "SELECT "+alertColumns+" FROM alerts FINAL ORDER BY id, status")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []alert
	for rows.Next() {
		var a alert
		if err := rows.Scan(&a.ID, &a.Kind, &a.Status, &a.Severity, &a.Subject, &a.Score, &a.Evidence,
			&a.WindowStart, &a.WindowEnd, &a.FirstSeen, &a.Detect); err != nil {
			t.Fatal(err)
		}
		for _, ts := range []*time.Time{&a.WindowStart, &a.WindowEnd, &a.FirstSeen, &a.Detect} {
			*ts = ts.UTC()
		}
		got = append(got, a)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	// ORDER BY id, status: "escalated" sorts before "firing".
	want[0], want[1] = want[1], want[0]
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("alerts read back with FINAL mismatch (-want +got):\n%s", diff)
	}
}

func TestBatchWithoutAColumnListHasNoColumnsOnOldServers(t *testing.T) {
	s := serverFromEnv(t)
	_, db := migrated(t, s)
	writer := open(t, s, s.writerUser, s.writerPassword, db)
	ctx := testContext(t)
	v, err := DetectVersion(ctx, writer)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := writer.PrepareBatch(ctx, "INSERT INTO alerts")
	if err != nil {
		t.Fatalf("PrepareBatch without a column list: %v", err)
	}
	defer batch.Close()
	a := sampleAlerts()[0]
	err = batch.Append(a.ID, a.Kind, a.Status, a.Severity, a.Subject, a.Score, a.Evidence,
		a.WindowStart, a.WindowEnd, a.FirstSeen, a.Detect)
	t.Logf("ClickHouse %s, Append to a batch prepared without a column list: %v", v, err)
	if !v.AtLeast(ServerVersion{Major: 19}) && (err == nil || !strings.Contains(err.Error(), "expected 0 arguments")) {
		t.Fatalf("on ClickHouse %s, Append without a column list: error = %v, want \"expected 0 arguments\" (the quirk the package doc describes)", v, err)
	}
}

func TestReaderCanSelectButCannotWrite(t *testing.T) {
	s := serverFromEnv(t)
	admin, db := migrated(t, s)
	ctx := testContext(t)
	adminInDB := open(t, s, s.adminUser, s.adminPassword, db)
	if err := insertAlerts(ctx, adminInDB, sampleAlerts()); err != nil {
		t.Fatal(err)
	}
	reader := open(t, s, s.readerUser, s.readerPassword, db)

	var n uint64
	if err := reader.QueryRow(ctx, "SELECT count() FROM alerts FINAL").Scan(&n); err != nil {
		t.Fatalf("SELECT as %s: %v", s.readerUser, err)
	}
	if n != 3 {
		t.Fatalf("SELECT count() as %s = %d, want 3", s.readerUser, n)
	}

	err := insertAlerts(ctx, reader, sampleAlerts())
	if errorCode(err) != codeReadonly {
		t.Fatalf("INSERT as %s: error = %v, want code %d (READONLY)", s.readerUser, err, codeReadonly)
	}
	t.Logf("INSERT as %s refused as expected: %v", s.readerUser, err)

	for _, q := range []string{"DROP TABLE alerts", "SET readonly = 0"} {
		if err := reader.Exec(ctx, q); errorCode(err) != codeReadonly {
			t.Fatalf("%s as %s: error = %v, want code %d (READONLY)", q, s.readerUser, err, codeReadonly)
		}
	}
	if err := admin.QueryRow(ctx, "SELECT count() FROM "+db+".alerts FINAL").Scan(&n); err != nil || n != 3 {
		t.Fatalf("after the reader's attempts, %s.alerts holds %d rows (err %v), want 3", db, n, err)
	}
}

func TestWriterCannotChangeTheSchema(t *testing.T) {
	s := serverFromEnv(t)
	admin, db := migrated(t, s)
	writer := open(t, s, s.writerUser, s.writerPassword, db)
	ctx := testContext(t)
	if err := insertAlerts(ctx, writer, sampleAlerts()); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, query string
	}{
		{"the writer cannot drop the alerts table", "DROP TABLE alerts"},
		{"the writer cannot add a column to the alerts table", "ALTER TABLE alerts ADD COLUMN extra String"},
		{"the writer cannot delete alerts with a mutation", "ALTER TABLE alerts DELETE WHERE 1"},
		{"the writer cannot truncate the alerts table", "TRUNCATE TABLE alerts"},
		{"the writer cannot create a table", "CREATE TABLE other (a UInt8) ENGINE = Log"},
		{"the writer cannot drop the database", "DROP DATABASE " + db},
		{"the writer cannot turn DDL back on with SET", "SET allow_ddl = 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := writer.Exec(ctx, tc.query)
			if errorCode(err) != codeQueryIsProhibited {
				t.Fatalf("%s: error = %v, want code %d (QUERY_IS_PROHIBITED)", tc.query, err, codeQueryIsProhibited)
			}
		})
	}

	var columns, rows uint64
	if err := admin.QueryRow(ctx, "SELECT count() FROM system.columns WHERE database = ? AND table = 'alerts'", db).Scan(&columns); err != nil {
		t.Fatal(err)
	}
	if err := admin.QueryRow(ctx, "SELECT count() FROM "+db+".alerts FINAL").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if columns != 11 || rows != 3 {
		t.Fatalf("after the writer's attempts, %s.alerts has %d columns and %d rows, want 11 and 3", db, columns, rows)
	}
}

func TestOpenWithAWrongPasswordNamesTheAddressAndTheUser(t *testing.T) {
	s := serverFromEnv(t)
	_, err := Open(testContext(t), Config{Addr: s.addr, Database: "default", User: s.writerUser, Password: "not-the-password"})
	want := fmt.Sprintf("cannot connect to ClickHouse at %s as %s: ", s.addr, s.writerUser)
	if err == nil || !strings.HasPrefix(err.Error(), want) || errorCode(err) == 0 {
		t.Fatalf("Open with a wrong password: error = %v, want a server error starting with %q", err, want)
	}
	t.Logf("refused as expected: %v", err)
}
