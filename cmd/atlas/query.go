package main

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/spf13/cobra"

	"github.com/atlas-stream/atlas/schemas/warehouse"
)

func init() { subcommands = append(subcommands, newQueryCmd) }

// ClickHouse error codes that mean "not migrated" rather than "failed".
const (
	codeUnknownTable    = 60
	codeUnknownDatabase = 81
)

func newQueryCmd(g *globals) *cobra.Command {
	var list bool
	cmd := &cobra.Command{
		Use:   "query NAME [flags]",
		Short: "Run a named content-strategy query (trending, completion, …) as the read-only user",
		Long: `Run one of the named content-strategy queries that live next to Atlas's
ClickHouse schema (schemas/warehouse/queries), as the read-only user, and
print the result as an aligned table, JSON or CSV.

Every query reads the aggregate tables with FINAL, so rows rewritten by a
replay count once. Periods are [--from, --to): a one-minute window counts
when its start is in the period. Times are RFC 3339, a date (midnight UTC),
"now", or relative to now: -24h, -7d, -90m.

Exit codes: 0 ok (also for an empty result), 1 failure, 2 bad flags or an
unknown query, 3 the database is not migrated.`,
		Example: `  atlas query --list
  atlas query trending --from -7d --country DE --limit 10
  atlas query overlap --a tt0111161 --b tt0068646 --format json
  atlas query quality --bucket 1h --by-country --format csv > quality.csv
  atlas query early-hit --help`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case list:
				return listQueries(cmd)
			case len(args) == 0:
				return &usageError{errors.New("name a query to run; atlas query --list names them")}
			default:
				return &usageError{fmt.Errorf("unknown query %q; atlas query --list names them", args[0])}
			}
		},
	}
	cmd.Flags().BoolVar(&list, "list", false, "list the named queries with a line about each")
	for _, q := range warehouse.Queries() {
		cmd.AddCommand(newNamedQueryCmd(g, q))
	}
	return cmd
}

func listQueries(cmd *cobra.Command) error {
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	for _, q := range warehouse.Queries() {
		fmt.Fprintf(w, "%s\t%s\n", q.Name, q.Short)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout(), "\natlas query NAME --help explains a query, its flags and its columns.")
	return nil
}

func newNamedQueryCmd(g *globals, q warehouse.Query) *cobra.Command {
	var format string
	values := make(map[string]*string, len(q.Params))
	cmd := &cobra.Command{
		Use:     q.Name,
		Short:   q.Short,
		Long:    queryHelp(q),
		Example: queryExample(q),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Flags are read whether they came from the command line or an
			// ATLAS_* variable; an empty value means the default.
			text := make(map[string]string)
			for name, v := range values {
				if *v != "" {
					text[name] = *v
				}
			}
			args, err := q.ParseArgs(text, time.Now())
			if err != nil {
				return &usageError{err}
			}
			switch format {
			case warehouse.FormatTable, warehouse.FormatJSON, warehouse.FormatCSV:
			default:
				return &usageError{fmt.Errorf("invalid --format %q: want table, json or csv", format)}
			}
			cfg, err := g.clickhouse("reader")
			if err != nil {
				return err
			}
			conn, err := warehouse.Open(cmd.Context(), cfg)
			if err != nil {
				return notMigrated(err, cfg.Database)
			}
			defer conn.Close()
			res, err := q.Run(cmd.Context(), conn, args)
			if err != nil {
				return notMigrated(err, cfg.Database)
			}
			return res.Write(cmd.OutOrStdout(), format)
		},
	}
	f := cmd.Flags()
	for _, p := range q.Params {
		v := new(string)
		values[p.Name] = v
		usage := p.Usage
		if p.Required {
			usage += " (required)"
		}
		*v = p.Default
		f.Var(paramValue{v, paramTypes[p.Kind]}, p.Name, usage)
		if p.Kind == warehouse.ParamBool {
			f.Lookup(p.Name).NoOptDefVal = "true"
		}
	}
	f.StringVar(&format, "format", warehouse.FormatTable, "output: table (aligned, for people), json or csv")
	return cmd
}

// notMigrated turns the server's "no such table or database" into a
// problem to fix (exit 3) with the remedy; other errors stay failures.
func notMigrated(err error, database string) error {
	var ex *clickhouse.Exception
	if errors.As(err, &ex) && (ex.Code == codeUnknownTable || ex.Code == codeUnknownDatabase) {
		return &problemsError{fmt.Sprintf("%v\ndatabase %s lacks Atlas's tables: run atlas clickhouse migrate", err, database)}
	}
	return err
}

// queryHelp is the query's explanation followed by its columns.
func queryHelp(q warehouse.Query) string {
	var b strings.Builder
	b.WriteString(q.Long)
	b.WriteString("\n\nColumns:\n")
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, c := range q.Columns {
		fmt.Fprintf(w, "  %s\t%s\n", c.Name, c.Doc)
	}
	_ = w.Flush()
	return strings.TrimRight(b.String(), "\n")
}

func queryExample(q warehouse.Query) string {
	var flags []string
	for _, p := range q.Params {
		if p.Required {
			flags = append(flags, "--"+p.Name+" ID")
		}
	}
	base := strings.TrimSpace("atlas query " + q.Name + " " + strings.Join(flags, " "))
	ex := []string{"  " + base}
	if _, ok := q.Param("country"); ok {
		ex = append(ex, "  "+base+" --from -7d --country DE")
	} else {
		ex = append(ex, "  "+base+" --from -7d")
	}
	ex = append(ex, "  "+base+" --from 2026-03-01 --to 2026-03-08 --format json")
	return strings.Join(ex, "\n")
}

// paramValue is a query flag: its text is kept as given and parsed by
// warehouse.Query.ParseArgs; the type only names it in --help.
type paramValue struct {
	s   *string
	typ string
}

func (v paramValue) String() string     { return *v.s }
func (v paramValue) Set(s string) error { *v.s = s; return nil }
func (v paramValue) Type() string       { return v.typ }

var paramTypes = map[warehouse.ParamKind]string{
	warehouse.ParamTime:     "time",
	warehouse.ParamCountry:  "code",
	warehouse.ParamID:       "id",
	warehouse.ParamCount:    "int",
	warehouse.ParamDuration: "duration",
	warehouse.ParamBool:     "bool",
}
