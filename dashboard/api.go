package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/atlas-stream/atlas/schemas/warehouse"
)

// panelData is the body of every panel's API answer. Rows are the panel's
// named query's result as `atlas query NAME --format json` prints it: an
// array of objects keyed by column name, times in RFC 3339, NULL and
// non-finite numbers as null.
type panelData struct {
	Panel   string          `json:"panel"`
	From    time.Time       `json:"from"`
	To      time.Time       `json:"to"`
	Bucket  int64           `json:"bucket_seconds,omitempty"`
	Country string          `json:"country,omitempty"`
	Rows    json.RawMessage `json:"rows"`
	// Names maps the title ids of Rows to catalog names, where known.
	Names map[string]string `json:"names,omitempty"`
	// ByRow is the funnel summed per UI row (funnel only).
	ByRow []funnelRow `json:"by_row,omitempty"`
	// Series is the quality time series (quality only).
	Series *qualitySeries `json:"series,omitempty"`
	TookMs int64          `json:"took_ms"`
}

// apiError is the body of every API answer that is not 200.
type apiError struct {
	Error string `json:"error"`
	// Unavailable is set when ClickHouse cannot be read (503), as opposed
	// to a bad request (400) or a query the server refused (500).
	Unavailable bool `json:"unavailable,omitempty"`
}

// request is one parsed panel request.
type request struct {
	window
	params  url.Values
	country string
}

// panel is one endpoint of the API: /api/<name>.
type panel struct {
	name string
	// params are the URL parameters it takes besides period; each one
	// that names a parameter of query goes to it.
	params []string
	run    func(ctx context.Context, s *Server, conn driver.Conn, r request, out *panelData) error
}

var panels = []panel{
	{name: "trending", params: []string{"country", "limit", "min-starts"}, run: runTrending},
	{name: "completion", params: []string{"country", "limit", "title"}, run: runCompletion},
	{name: "genre-gap", params: []string{"country", "limit"}, run: runGenreGap},
	{name: "funnel", params: []string{"limit", "row"}, run: runFunnel},
	{name: "quality", params: []string{"country", "metric", "lines"}, run: runQuality},
	{name: "alerts", params: []string{"limit", "kind"}, run: runAlerts},
}

// serveAPI answers GET /api/{panel}.
func (s *Server) servePanel(p panel) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		start := time.Now()
		r, err := s.parseRequest(req, p)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, apiError{Error: err.Error()})
			return
		}
		ctx, cancel := context.WithTimeout(req.Context(), s.cfg.queryTimeout())
		defer cancel()
		conn, _, err := s.src.get(ctx)
		if err != nil {
			s.writeError(w, req, p.name, err)
			return
		}
		out := panelData{Panel: p.name, From: r.From, To: r.To, Country: r.country, Rows: json.RawMessage("[]")}
		if err := p.run(ctx, s, conn, r, &out); err != nil {
			s.writeError(w, req, p.name, classify(err, s.cfg.ClickHouse))
			return
		}
		out.TookMs = time.Since(start).Milliseconds()
		writeJSON(w, http.StatusOK, out)
	}
}

func (s *Server) parseRequest(req *http.Request, p panel) (request, error) {
	q := req.URL.Query()
	period := s.cfg.period()
	for name, vs := range q {
		if len(vs) != 1 {
			return request{}, fmt.Errorf("parameter %s given %d times", name, len(vs))
		}
		if name != "period" && !slices.Contains(p.params, name) {
			return request{}, fmt.Errorf("/api/%s has no parameter %s; it takes period and %v", p.name, name, p.params)
		}
	}
	if v := q.Get("period"); v != "" {
		d, err := parsePeriod(v)
		if err != nil {
			return request{}, fmt.Errorf("invalid period %q: %v", v, err)
		}
		period = d
	}
	q.Del("period")
	r := request{window: newWindow(period, time.Now()), params: q}
	r.country = q.Get("country")
	return r, nil
}

// args parses the named query's arguments: the request's window, the
// dashboard's defaults, then the URL parameters the query has.
func (r request) args(name string, defaults map[string]string) (warehouse.Query, warehouse.Args, error) {
	q, ok := warehouse.LookupQuery(name)
	if !ok {
		return q, nil, fmt.Errorf("BUG: no named query %s", name)
	}
	text := map[string]string{"from": r.From.Format(time.RFC3339), "to": r.To.Format(time.RFC3339)}
	for k, v := range defaults {
		text[k] = v
	}
	for k := range r.params {
		if _, ok := q.Param(k); ok && r.params.Get(k) != "" {
			text[k] = r.params.Get(k)
		}
	}
	args, err := q.ParseArgs(text, time.Now())
	var ae *warehouse.ArgError
	switch {
	case errors.As(err, &ae) && ae.Value != "":
		// The API's parameters are not flags: no dashes.
		return q, nil, &badRequest{fmt.Errorf("invalid %s %q: %s", ae.Param, ae.Value, ae.Reason)}
	case err != nil:
		return q, nil, &badRequest{err}
	}
	return q, args, nil
}

// badRequest marks an error of the request's parameters (400).
type badRequest struct{ err error }

func (e *badRequest) Error() string { return e.err.Error() }
func (e *badRequest) Unwrap() error { return e.err }

func (s *Server) writeError(w http.ResponseWriter, req *http.Request, panel string, err error) {
	var br *badRequest
	switch {
	case errors.As(err, &br):
		writeJSON(w, http.StatusBadRequest, apiError{Error: err.Error()})
	case errors.Is(err, ErrUnavailable):
		if req.Context().Err() == nil {
			slog.Debug("panel unavailable", "panel", panel, "err", err)
		}
		w.Header().Set("Retry-After", strconv.Itoa(int(s.cfg.refresh().Seconds())))
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: err.Error(), Unavailable: true})
	default:
		slog.Error("panel query failed", "panel", panel, "err", err)
		writeJSON(w, http.StatusInternalServerError, apiError{Error: err.Error()})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(apiError{Error: "cannot encode the answer: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
	_, _ = w.Write([]byte("\n"))
}

// runNamed runs a named query and puts its rows, as JSON, into out.
func runNamed(ctx context.Context, conn driver.Conn, r request, name string, defaults map[string]string, out *panelData) (*warehouse.Result, error) {
	q, args, err := r.args(name, defaults)
	if err != nil {
		return nil, err
	}
	res, err := q.Run(ctx, conn, args)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := res.Write(&b, warehouse.FormatJSON); err != nil {
		return nil, err
	}
	out.Rows = b.Bytes()
	return res, nil
}

func runTrending(ctx context.Context, _ *Server, conn driver.Conn, r request, out *panelData) error {
	res, err := runNamed(ctx, conn, r, "trending", map[string]string{"limit": "10", "min-starts": "5"}, out)
	if err != nil {
		return err
	}
	out.Names, err = titleNames(ctx, conn, column(res, "title_id"))
	return err
}

func runCompletion(ctx context.Context, _ *Server, conn driver.Conn, r request, out *panelData) error {
	res, err := runNamed(ctx, conn, r, "completion", map[string]string{"limit": "10"}, out)
	if err != nil {
		return err
	}
	out.Names, err = titleNames(ctx, conn, column(res, "title_id"))
	return err
}

// runGenreGap returns every country (the page picks one), all genres each.
func runGenreGap(ctx context.Context, _ *Server, conn driver.Conn, r request, out *panelData) error {
	_, err := runNamed(ctx, conn, r, "genre-gap", map[string]string{"limit": "50"}, out)
	return err
}

// column returns the string values of a result's column.
func column(res *warehouse.Result, name string) []string {
	idx := slices.IndexFunc(res.Columns, func(c warehouse.Column) bool { return c.Name == name })
	if idx < 0 {
		return nil
	}
	var out []string
	for _, row := range res.Rows {
		if s, ok := row[idx].(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// titleNames looks up the catalog names of title ids: the named queries
// return ids, people read names.
func titleNames(ctx context.Context, conn driver.Conn, ids []string) (map[string]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := conn.Query(ctx, "SELECT title_id, name FROM titles FINAL WHERE has(@ids, title_id)", clickhouse.Named("ids", ids))
	if err != nil {
		return nil, fmt.Errorf("cannot look up title names: %w", err)
	}
	defer rows.Close()
	names := make(map[string]string, len(ids))
	for rows.Next() {
		var id, name string
		if err := rows.Scan(&id, &name); err != nil {
			return nil, fmt.Errorf("cannot read title names: %w", err)
		}
		if name != "" {
			names[id] = name
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read title names: %w", err)
	}
	return names, nil
}

// funnelRow is the browse funnel of one UI row over the period.
type funnelRow struct {
	Row         string  `json:"row"`
	Impressions uint64  `json:"impressions"`
	Selects     uint64  `json:"selects"`
	Plays       uint64  `json:"plays"`
	SelectRate  float64 `json:"select_rate"`
	PlayRate    float64 `json:"play_rate"`
	Conversion  float64 `json:"conversion"`
}

// funnelByRowSQL sums the funnel per UI row: the named query "funnel" is
// per row and artwork, too many rows to sum in the page. Plays that did
// not come from browsing (empty row) are left out. FINAL, and a filter on
// sorting-key columns only, as in the named queries.
const funnelByRowSQL = `
SELECT row, sum(i) AS impressions, sum(s) AS selects, sum(p) AS plays
FROM
(
    SELECT row, impressions AS i, selects AS s, plays AS p
    FROM funnel_minute FINAL
    WHERE window_start >= @from AND window_start < @to AND row != ''
)
GROUP BY row
ORDER BY impressions DESC, row`

// runFunnel returns the top row × artwork pairs (the named query) and the
// funnel per row.
func runFunnel(ctx context.Context, _ *Server, conn driver.Conn, r request, out *panelData) error {
	if _, err := runNamed(ctx, conn, r, "funnel", map[string]string{"limit": "10"}, out); err != nil {
		return err
	}
	rows, err := conn.Query(ctx, funnelByRowSQL, clickhouse.Named("from", r.From), clickhouse.Named("to", r.To))
	if err != nil {
		return fmt.Errorf("cannot sum the funnel by row: %w", err)
	}
	defer rows.Close()
	out.ByRow = []funnelRow{}
	for rows.Next() {
		var f funnelRow
		if err := rows.Scan(&f.Row, &f.Impressions, &f.Selects, &f.Plays); err != nil {
			return fmt.Errorf("cannot read the funnel by row: %w", err)
		}
		f.SelectRate = ratio(f.Selects, f.Impressions)
		f.PlayRate = ratio(f.Plays, f.Selects)
		f.Conversion = ratio(f.Plays, f.Impressions)
		out.ByRow = append(out.ByRow, f)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot read the funnel by row: %w", err)
	}
	return nil
}

func ratio(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// alert is one state of an incident, as the alerts table holds it.
type alert struct {
	ID          string    `json:"id"`
	Kind        string    `json:"kind"`
	Status      string    `json:"status"`
	Severity    uint8     `json:"severity"`
	Subject     string    `json:"subject"`
	Score       float64   `json:"score"`
	Evidence    string    `json:"evidence"`
	WindowStart time.Time `json:"window_start"`
	WindowEnd   time.Time `json:"window_end"`
	FirstSeen   time.Time `json:"first_seen"`
	DetectedAt  time.Time `json:"detected_at"`
}

// alertsSQL reads the newest alert states detected in the period. FINAL
// first, then the filter on detected_at, which is not a sorting-key
// column (see 0002's note on FINAL and PREWHERE); kind is one, so a filter
// on it (the %s, constant text) goes inside.
const alertsSQL = `
SELECT id, kind, status, severity, subject, score, evidence, window_start, window_end, first_seen, detected_at
FROM
(
    SELECT id, kind, status, severity, subject, score, evidence, window_start, window_end, first_seen, detected_at
    FROM alerts FINAL
    %s
)
WHERE detected_at >= @from AND detected_at < @to
ORDER BY detected_at DESC, severity DESC, id, status
LIMIT @limit`

// runAlerts returns the newest alert states of the period, at most limit
// (default 50, at most 1000), optionally of one kind.
func runAlerts(ctx context.Context, _ *Server, conn driver.Conn, r request, out *panelData) error {
	limit := uint64(50)
	if v := r.params.Get("limit"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n < 1 || n > 1000 {
			return &badRequest{fmt.Errorf("invalid limit %q: want a whole number from 1 to 1000", v)}
		}
		limit = n
	}
	args := []any{clickhouse.Named("from", r.From), clickhouse.Named("to", r.To), clickhouse.Named("limit", limit)}
	where := ""
	if kind := r.params.Get("kind"); kind != "" {
		if len(kind) > 64 {
			return &badRequest{errors.New("invalid kind: longer than 64 bytes")}
		}
		args = append(args, clickhouse.Named("kind", kind))
		where = "WHERE kind = @kind"
	}
	sql := fmt.Sprintf(alertsSQL, where)
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		return fmt.Errorf("cannot read alerts: %w", err)
	}
	defer rows.Close()
	list := []alert{}
	for rows.Next() {
		var a alert
		if err := rows.Scan(&a.ID, &a.Kind, &a.Status, &a.Severity, &a.Subject, &a.Score, &a.Evidence,
			&a.WindowStart, &a.WindowEnd, &a.FirstSeen, &a.DetectedAt); err != nil {
			return fmt.Errorf("cannot read alerts: %w", err)
		}
		a.WindowStart, a.WindowEnd = a.WindowStart.UTC(), a.WindowEnd.UTC()
		a.FirstSeen, a.DetectedAt = a.FirstSeen.UTC(), a.DetectedAt.UTC()
		list = append(list, a)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot read alerts: %w", err)
	}
	b, err := json.Marshal(list)
	if err != nil {
		return err
	}
	out.Rows = b
	return nil
}
