package warehouse

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/template"
)

//go:embed migrations/*.sql
var embedded embed.FS

// Migration is one numbered SQL file of migrations/, named NNNN_name.sql.
//
// The file is a Go text/template evaluated with
//
//	.Database     the database being migrated; qualify every table with it
//	.Version      the server's [ServerVersion]
//	atLeast "X.Y" true when the server is version X.Y or newer
//
// and holds one or more statements, each ending with a ';' at the end of a
// line (a ';' elsewhere, or before a trailing "--" comment, does not end
// one). Lines whose first non-blank characters are "--" are comments and
// are dropped. Write every statement so that it can run twice (CREATE … IF NOT
// EXISTS): ClickHouse has no transactions, so a migration that failed half
// way is run again from its first statement.
type Migration struct {
	// Version is the NNNN of the file name; migrations apply in its order.
	Version int
	// Name is the part of the file name between the underscore and ".sql".
	Name string
	// Checksum is the hex SHA-256 of the file as written (the template, not
	// the SQL rendered for one server), recorded when the migration is
	// applied so that an edit after that is caught.
	Checksum string

	tmpl *template.Template
}

// File returns the migration's file name, as in "0001_alerts.sql".
func (m Migration) File() string {
	return fmt.Sprintf("%04d_%s.sql", m.Version, m.Name)
}

// Statements renders the migration for a server of version v migrating
// database and splits it into statements ready for conn.Exec, without the
// trailing ';'.
func (m Migration) Statements(database string, v ServerVersion) ([]string, error) {
	if m.tmpl == nil {
		return nil, fmt.Errorf("cannot render migration %s: it was not loaded by Migrations", m.File())
	}
	if err := checkDatabaseName(database); err != nil {
		return nil, fmt.Errorf("cannot render migration %s: %w", m.File(), err)
	}
	t, err := m.tmpl.Clone()
	if err != nil {
		return nil, fmt.Errorf("cannot render migration %s: %w", m.File(), err)
	}
	t.Funcs(templateFuncs(v))
	var b bytes.Buffer
	data := struct {
		Database string
		Version  ServerVersion
	}{database, v}
	if err := t.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("cannot render migration %s: %w", m.File(), err)
	}
	stmts := splitStatements(b.String())
	if len(stmts) == 0 {
		return nil, fmt.Errorf("cannot render migration %s: it holds no statement for ClickHouse %s", m.File(), v)
	}
	return stmts, nil
}

func templateFuncs(v ServerVersion) template.FuncMap {
	return template.FuncMap{
		"atLeast": func(min string) (bool, error) {
			want, err := ParseServerVersion(min)
			if err != nil {
				return false, err
			}
			return v.AtLeast(want), nil
		},
	}
}

var loadEmbedded = sync.OnceValues(func() ([]Migration, error) {
	sub, err := fs.Sub(embedded, "migrations")
	if err != nil {
		return nil, fmt.Errorf("BUG: cannot open the embedded migrations: %w", err)
	}
	return loadMigrations(sub)
})

// Migrations returns the migrations built into this binary, ordered by
// version. An error means a migration file is malformed (a bad name, a
// duplicate version, a template that does not parse); the unit tests catch
// that before a binary ships. The returned slice is the caller's.
func Migrations() ([]Migration, error) {
	ms, err := loadEmbedded()
	return slices.Clone(ms), err
}

var migrationFile = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// loadMigrations reads every file at the root of fsys as a migration.
func loadMigrations(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("cannot list migrations: %w", err)
	}
	var ms []Migration
	seen := make(map[int]string)
	for _, e := range entries {
		name := e.Name()
		match := migrationFile.FindStringSubmatch(name)
		if e.IsDir() || match == nil {
			return nil, fmt.Errorf("cannot load migration %q: want a file named NNNN_name.sql (lower case, digits, underscores)", name)
		}
		version, _ := strconv.Atoi(match[1])
		if version == 0 {
			return nil, fmt.Errorf("cannot load migration %q: versions start at 0001", name)
		}
		if other, ok := seen[version]; ok {
			return nil, fmt.Errorf("cannot load migration %q: version %04d is also used by %q", name, version, other)
		}
		seen[version] = name
		src, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("cannot load migration %q: %w", name, err)
		}
		tmpl, err := template.New(name).
			Option("missingkey=error").
			Funcs(templateFuncs(ServerVersion{})).
			Parse(string(src))
		if err != nil {
			return nil, fmt.Errorf("cannot load migration %q: %w", name, err)
		}
		sum := sha256.Sum256(src)
		ms = append(ms, Migration{
			Version:  version,
			Name:     match[2],
			Checksum: hex.EncodeToString(sum[:]),
			tmpl:     tmpl,
		})
	}
	slices.SortFunc(ms, func(a, b Migration) int { return a.Version - b.Version })
	return ms, nil
}

// splitStatements drops comment lines and cuts sql after every line that
// ends with ';'. Text after the last ';' is a statement too.
func splitStatements(sql string) []string {
	var stmts []string
	var cur strings.Builder
	flush := func() {
		s := strings.TrimSpace(cur.String())
		s = strings.TrimSpace(strings.TrimSuffix(s, ";"))
		if s != "" {
			stmts = append(stmts, s)
		}
		cur.Reset()
	}
	for line := range strings.Lines(sql) {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		if strings.HasSuffix(trimmed, ";") {
			flush()
		}
	}
	flush()
	return stmts
}
