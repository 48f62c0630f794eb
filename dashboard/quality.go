package dashboard

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/atlas-stream/atlas/schemas/warehouse"
)

// Quality metrics the page can plot, as columns of the named query
// "quality". For every one but the bitrate, higher is worse.
var qualityMetrics = []string{
	"rebuffers_per_session", "rebuffer_s_per_session", "start_failure_rate", "error_rate", "mean_bitrate_kbps",
}

const (
	defaultQualityMetric = "rebuffers_per_session"
	defaultQualityLines  = 6
	maxQualityLines      = 20
	// qualityCellsPerBucket caps the CDN × ISP cells read per bucket (the
	// named query's --limit with --bucket), the busiest first.
	qualityCellsPerBucket = "1000"
)

// qualitySeries is the quality panel's chart: one point per bucket of the
// period for the whole service ("overall") and for a few CDN × ISP cells:
// half of them the busiest, half the worst by the metric among cells with
// enough sessions to mean something, so that a degraded cell shows up
// even when it is small.
type qualitySeries struct {
	Metric  string        `json:"metric"`
	Buckets []time.Time   `json:"buckets"`
	Lines   []qualityLine `json:"lines"`
	Cells   int           `json:"cells"` // CDN × ISP cells with sessions in the period
}

type qualityLine struct {
	Label    string `json:"label"` // "overall" or "cdn-a · de-telco"
	CDN      string `json:"cdn,omitempty"`
	ISP      string `json:"isp,omitempty"`
	Why      string `json:"why"` // overall, busiest or worst
	Sessions uint64 `json:"sessions"`
	// Value is the metric over the whole period.
	Value float64 `json:"value"`
	// Points are the metric per bucket, null where the cell had no
	// sessions.
	Points []*float64 `json:"points"`
}

// qualityAcc sums a cell's (or the service's) counters; the per-session
// rates of a group are its sums' ratios. The mean bitrate is weighted by
// sessions, as the named query returns no bitrate sample counts: close to,
// not exactly, the mean over samples.
type qualityAcc struct {
	sessions, rebuffers, startFailures, errors float64
	rebufferS, bitrate                         float64
}

func (a *qualityAcc) add(o qualityAcc) {
	a.sessions += o.sessions
	a.rebuffers += o.rebuffers
	a.startFailures += o.startFailures
	a.errors += o.errors
	a.rebufferS += o.rebufferS
	a.bitrate += o.bitrate
}

func (a *qualityAcc) metric(name string) float64 {
	if a.sessions == 0 {
		return 0
	}
	switch name {
	case "rebuffers_per_session":
		return a.rebuffers / a.sessions
	case "rebuffer_s_per_session":
		return a.rebufferS / a.sessions
	case "start_failure_rate":
		return a.startFailures / a.sessions
	case "error_rate":
		return a.errors / a.sessions
	case "mean_bitrate_kbps":
		return a.bitrate / a.sessions
	}
	panic("BUG: unknown quality metric " + name)
}

func runQuality(ctx context.Context, _ *Server, conn driver.Conn, r request, out *panelData) error {
	metric := cmp.Or(r.params.Get("metric"), defaultQualityMetric)
	if !slices.Contains(qualityMetrics, metric) {
		return &badRequest{fmt.Errorf("invalid metric %q: want one of %v", metric, qualityMetrics)}
	}
	lines := defaultQualityLines
	if v := r.params.Get("lines"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxQualityLines {
			return &badRequest{fmt.Errorf("invalid lines %q: want a whole number from 1 to %d", v, maxQualityLines)}
		}
		lines = n
	}
	bucket := strconv.FormatInt(int64(r.Bucket/time.Minute), 10) + "m"
	res, err := runNamed(ctx, conn, r, "quality", map[string]string{"bucket": bucket, "limit": qualityCellsPerBucket}, out)
	if err != nil {
		return err
	}
	// The page draws the series; the rows (every cell of every bucket)
	// would only weigh on it.
	out.Rows = []byte("[]")
	out.Bucket = int64(r.Bucket / time.Second)
	s, err := buildQualitySeries(res, r.window, metric, lines)
	if err != nil {
		return err
	}
	out.Series = s
	return nil
}

type cellKey struct{ cdn, isp string }

// buildQualitySeries turns the named query's rows (bucket × CDN × ISP) into
// the chart's lines.
func buildQualitySeries(res *warehouse.Result, w window, metric string, lines int) (*qualitySeries, error) {
	col := map[string]int{}
	for i, c := range res.Columns {
		col[c.Name] = i
	}
	for _, name := range []string{"bucket", "cdn", "isp", "sessions", "rebuffers", "rebuffer_s_per_session", "start_failures", "errors", "mean_bitrate_kbps"} {
		if _, ok := col[name]; !ok {
			return nil, fmt.Errorf("BUG: the quality query returned no column %s", name)
		}
	}
	n := int(w.To.Sub(w.From) / w.Bucket)
	if w.To.Sub(w.From)%w.Bucket != 0 {
		n++
	}
	s := &qualitySeries{Metric: metric, Buckets: make([]time.Time, n)}
	for i := range n {
		s.Buckets[i] = w.From.Add(time.Duration(i) * w.Bucket)
	}
	total := make([]qualityAcc, n)
	cells := map[cellKey][]qualityAcc{}
	for _, row := range res.Rows {
		t, _ := row[col["bucket"]].(time.Time)
		i := int(t.Sub(w.From) / w.Bucket)
		if i < 0 || i >= n {
			continue
		}
		cdn, _ := row[col["cdn"]].(string)
		isp, _ := row[col["isp"]].(string)
		a := qualityAcc{
			sessions:      num(row[col["sessions"]]),
			rebuffers:     num(row[col["rebuffers"]]),
			startFailures: num(row[col["start_failures"]]),
			errors:        num(row[col["errors"]]),
		}
		a.rebufferS = num(row[col["rebuffer_s_per_session"]]) * a.sessions
		a.bitrate = num(row[col["mean_bitrate_kbps"]]) * a.sessions
		k := cellKey{cdn, isp}
		if cells[k] == nil {
			cells[k] = make([]qualityAcc, n)
		}
		cells[k][i].add(a)
		total[i].add(a)
	}
	s.Cells = len(cells)
	s.Lines = append(s.Lines, line("overall", cellKey{}, "overall", total, metric))

	type ranked struct {
		key   cellKey
		sum   qualityAcc
		value float64
	}
	var all []ranked
	var sessions float64
	for k, accs := range cells {
		var sum qualityAcc
		for _, a := range accs {
			sum.add(a)
		}
		if sum.sessions == 0 {
			continue
		}
		all = append(all, ranked{k, sum, sum.metric(metric)})
		sessions += sum.sessions
	}
	byKey := func(a, b ranked) int {
		return cmp.Or(cmp.Compare(a.key.cdn, b.key.cdn), cmp.Compare(a.key.isp, b.key.isp))
	}
	// The busiest half.
	slices.SortFunc(all, func(a, b ranked) int { return cmp.Or(cmp.Compare(b.sum.sessions, a.sum.sessions), byKey(a, b)) })
	chosen := map[cellKey]string{}
	var order []cellKey
	for _, c := range all[:min(len(all), (lines+1)/2)] {
		chosen[c.key] = "busiest"
		order = append(order, c.key)
	}
	// The worst of the rest, among cells with at least 0.5 % of the
	// sessions (and 5): a cell of two sessions is noise.
	floor := math.Max(5, sessions*0.005)
	worse := func(a, b ranked) int { return cmp.Compare(b.value, a.value) }
	if metric == "mean_bitrate_kbps" {
		worse = func(a, b ranked) int { return cmp.Compare(a.value, b.value) }
	}
	slices.SortFunc(all, func(a, b ranked) int { return cmp.Or(worse(a, b), byKey(a, b)) })
	for _, c := range all {
		if len(order) >= lines {
			break
		}
		if _, ok := chosen[c.key]; ok || c.sum.sessions < floor {
			continue
		}
		chosen[c.key] = "worst"
		order = append(order, c.key)
	}
	for _, k := range order {
		s.Lines = append(s.Lines, line(k.cdn+" · "+k.isp, k, chosen[k], cells[k], metric))
	}
	return s, nil
}

func line(label string, k cellKey, why string, accs []qualityAcc, metric string) qualityLine {
	l := qualityLine{Label: label, CDN: k.cdn, ISP: k.isp, Why: why, Points: make([]*float64, len(accs))}
	var sum qualityAcc
	for i, a := range accs {
		sum.add(a)
		if a.sessions > 0 {
			v := a.metric(metric)
			l.Points[i] = &v
		}
	}
	l.Sessions = uint64(sum.sessions)
	l.Value = sum.metric(metric)
	return l
}

// num is a result value as a float64; NULL and non-numbers are 0.
func num(v any) float64 {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return 0
		}
		return x
	case uint64:
		return float64(x)
	case int64:
		return float64(x)
	}
	return 0
}
