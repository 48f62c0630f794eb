package warehouse

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
)

var (
	v18 = ServerVersion{18, 16, 1}
	v24 = ServerVersion{24, 3, 1}
)

func TestSplitStatements(t *testing.T) {
	f := func(sql string, want ...string) {
		t.Helper()
		if diff := cmp.Diff(want, splitStatements(sql)); diff != "" {
			t.Fatalf("splitStatements(%q) mismatch (-want +got):\n%s", sql, diff)
		}
	}
	f("")
	f("  \n\n")
	f("-- only a comment;\n")
	f("SELECT 1;", "SELECT 1")
	f("SELECT 1", "SELECT 1")
	f("SELECT 1;\nSELECT 2;\n", "SELECT 1", "SELECT 2")
	f("CREATE TABLE t\n(\n    a UInt8\n)\nENGINE = Log;\n", "CREATE TABLE t\n(\n    a UInt8\n)\nENGINE = Log")
	f("SELECT 'a;b'\nFROM t;", "SELECT 'a;b'\nFROM t")
	f("SELECT 1; SELECT 2;", "SELECT 1; SELECT 2")
	f("-- header\nSELECT 1;\n-- trailer\n", "SELECT 1")
	f("SELECT 1\n  -- a comment ending in ;\n  , 2;", "SELECT 1\n  , 2")
	f("SELECT 1;  \t\nSELECT 2", "SELECT 1", "SELECT 2")
	f("SELECT 1;;\n", "SELECT 1;")
}

func TestLoadMigrationsOrdersByVersion(t *testing.T) {
	ms, err := loadMigrations(fstest.MapFS{
		"0010_views.sql":  {Data: []byte("SELECT 10;")},
		"0002_events.sql": {Data: []byte("SELECT 2;")},
		"0001_alerts.sql": {Data: []byte("SELECT 1;")},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.File())
	}
	if diff := cmp.Diff([]string{"0001_alerts.sql", "0002_events.sql", "0010_views.sql"}, got); diff != "" {
		t.Fatalf("order mismatch (-want +got):\n%s", diff)
	}
	sum := sha256.Sum256([]byte("SELECT 1;"))
	if want := hex.EncodeToString(sum[:]); ms[0].Checksum != want {
		t.Fatalf("checksum of 0001_alerts.sql = %q, want the SHA-256 of its bytes %q", ms[0].Checksum, want)
	}
}

func TestLoadMigrationsRejects(t *testing.T) {
	f := func(files fstest.MapFS, wantErr string) {
		t.Helper()
		_, err := loadMigrations(files)
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("loadMigrations(%v) error = %v, want one containing %q", keys(files), err, wantErr)
		}
	}
	sql := &fstest.MapFile{Data: []byte("SELECT 1;")}
	f(fstest.MapFS{"0001-alerts.sql": sql}, "want a file named NNNN_name.sql")
	f(fstest.MapFS{"1_alerts.sql": sql}, "want a file named NNNN_name.sql")
	f(fstest.MapFS{"0001_Alerts.sql": sql}, "want a file named NNNN_name.sql")
	f(fstest.MapFS{"0001_alerts.txt": sql}, "want a file named NNNN_name.sql")
	f(fstest.MapFS{"0001_alerts.sql/x": sql}, "want a file named NNNN_name.sql")
	f(fstest.MapFS{"0000_zero.sql": sql}, "versions start at 0001")
	f(fstest.MapFS{"0001_alerts.sql": sql, "0001_events.sql": sql}, `version 0001 is also used by "0001_alerts.sql"`)
	f(fstest.MapFS{"0001_alerts.sql": {Data: []byte("{{if}}")}}, "missing value for if")
	f(fstest.MapFS{"0001_alerts.sql": {Data: []byte("{{nosuchfunc}}")}}, `function "nosuchfunc" not defined`)
}

func keys(m fstest.MapFS) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestMigrationStatementsRenderTheTemplate(t *testing.T) {
	f := func(src string, v ServerVersion, want ...string) {
		t.Helper()
		ms, err := loadMigrations(fstest.MapFS{"0001_t.sql": {Data: []byte(src)}})
		if err != nil {
			t.Fatal(err)
		}
		got, err := ms[0].Statements("atlas_x", v)
		if err != nil {
			t.Fatalf("Statements(%q, %s): %v", src, v, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("Statements(%q, %s) mismatch (-want +got):\n%s", src, v, diff)
		}
	}
	f("CREATE DATABASE IF NOT EXISTS {{.Database}};", v18, "CREATE DATABASE IF NOT EXISTS atlas_x")
	f(`k {{if atLeast "20.1"}}LowCardinality(String){{else}}String{{end}};`, v18, "k String")
	f(`k {{if atLeast "20.1"}}LowCardinality(String){{else}}String{{end}};`, v24, "k LowCardinality(String)")
	f(`k {{if atLeast "18.16.1"}}new{{else}}old{{end}};`, v18, "k new")
	f(`k {{if atLeast "18.16.2"}}new{{else}}old{{end}};`, v18, "k old")
	f("-- {{.Version}}\nSELECT '{{.Version}}';\n{{if atLeast \"19\"}}SELECT 2;{{end}}", v18, "SELECT '18.16.1'")
	f("-- {{.Version}}\nSELECT '{{.Version}}';\n{{if atLeast \"19\"}}SELECT 2;{{end}}", v24, "SELECT '24.3.1'", "SELECT 2")
}

func TestMigrationStatementsRejects(t *testing.T) {
	f := func(src, database, wantErr string) {
		t.Helper()
		ms, err := loadMigrations(fstest.MapFS{"0001_t.sql": {Data: []byte(src)}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = ms[0].Statements(database, v18)
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("Statements(%q, %q) error = %v, want one containing %q", src, database, err, wantErr)
		}
	}
	f("SELECT 1;", "atlas-x", "database name")
	f(`{{if atLeast "twenty"}}x{{end}};`, "atlas", `cannot parse ClickHouse version "twenty"`)
	f("{{.Nope}};", "atlas", "can't evaluate field Nope")
	f("-- nothing for this server\n{{if atLeast \"99\"}}SELECT 1;{{end}}", "atlas", "holds no statement for ClickHouse 18.16.1")
	if _, err := (Migration{Version: 1, Name: "x"}).Statements("atlas", v18); err == nil {
		t.Fatal("Statements on a Migration not loaded by Migrations succeeded")
	}
}

// modernOnly are the features 18.16 lacks (DESIGN.md, ClickHouse); a
// migration may use them only inside {{if atLeast …}}.
var modernOnly = regexp.MustCompile(`(?i)\b(DateTime64|LowCardinality|TTL|Map\s*\(|OVER\s*\(|CODEC|JSON\s*\(|Object\s*\()`)

func TestEmbeddedMigrationsRenderForOldAndNewServers(t *testing.T) {
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].Version != 1 || ms[0].Name != "alerts" {
		t.Fatalf("the first embedded migration is not 0001_alerts.sql: %v", ms)
	}
	for i, m := range ms {
		if m.Version != i+1 {
			t.Fatalf("migration %s: want version %04d, the versions must have no gaps", m.File(), i+1)
		}
		for _, v := range []ServerVersion{v18, v24} {
			stmts, err := m.Statements("atlas", v)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range stmts {
				if v == v18 && modernOnly.MatchString(s) {
					t.Fatalf("migration %s renders for ClickHouse 18.16 with %q, which 18.16 lacks:\n%s",
						m.File(), modernOnly.FindString(s), s)
				}
				if strings.Contains(s, "CREATE TABLE") && !strings.Contains(s, "IF NOT EXISTS atlas.") {
					t.Fatalf("migration %s creates a table that is not qualified with {{.Database}} or not IF NOT EXISTS:\n%s", m.File(), s)
				}
			}
		}
	}
}

func TestAlertsMigrationUsesLowCardinalityOnlyOnNewServers(t *testing.T) {
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	old, _ := ms[0].Statements("atlas", v18)
	cur, _ := ms[0].Statements("atlas", v24)
	if strings.Contains(old[0], "LowCardinality") || !strings.Contains(cur[0], "kind LowCardinality(String)") {
		t.Fatalf("0001_alerts.sql renders wrong:\n18.16:\n%s\n24.3:\n%s", old[0], cur[0])
	}
	for _, want := range []string{"ReplacingMergeTree(detected_at)", "PARTITION BY toDate(first_seen)", "ORDER BY (kind, subject, id, status, severity)"} {
		if !strings.Contains(old[0], want) {
			t.Fatalf("0001_alerts.sql lacks %q:\n%s", want, old[0])
		}
	}
}

func TestPlan(t *testing.T) {
	ms, err := loadMigrations(fstest.MapFS{
		"0001_a.sql": {Data: []byte("SELECT 1;")},
		"0002_b.sql": {Data: []byte("SELECT 2;")},
		"0003_c.sql": {Data: []byte("SELECT 3;")},
	})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rec := func(m Migration) applied { return applied{m.Version, m.Name, m.Checksum, at} }
	f := func(records []applied, wantApplied []bool, wantErr error) {
		t.Helper()
		got, err := plan(ms, records)
		if !errors.Is(err, wantErr) {
			t.Fatalf("plan(%v) error = %v, want %v", records, err, wantErr)
		}
		if err != nil {
			return
		}
		var flags []bool
		for _, st := range got {
			flags = append(flags, st.Applied)
			if st.Applied != !st.AppliedAt.IsZero() {
				t.Fatalf("plan(%v): %s has Applied %v and AppliedAt %s", records, st.File(), st.Applied, st.AppliedAt)
			}
		}
		if diff := cmp.Diff(wantApplied, flags); diff != "" {
			t.Fatalf("plan(%v) applied flags mismatch (-want +got):\n%s", records, diff)
		}
	}
	changed := rec(ms[1])
	changed.Checksum = "0123456789abcdef"
	f(nil, []bool{false, false, false}, nil)
	f([]applied{rec(ms[0])}, []bool{true, false, false}, nil)
	f([]applied{rec(ms[0]), rec(ms[1]), rec(ms[2])}, []bool{true, true, true}, nil)
	f([]applied{rec(ms[0]), rec(ms[2])}, []bool{true, false, true}, nil)
	f([]applied{rec(ms[0]), changed}, nil, ErrChecksumMismatch)
	f([]applied{rec(ms[0]), {Version: 4, Name: "d", Checksum: "x", AppliedAt: at}}, nil, ErrUnknownMigration)
}
