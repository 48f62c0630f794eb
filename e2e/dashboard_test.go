//go:build integration

package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/atlas-stream/atlas/producers/sim"
	"github.com/atlas-stream/atlas/schemas/warehouse"
	"github.com/atlas-stream/atlas/topology"
)

// pageState is what the browser test reads off the dashboard page:
// window.atlasDashboard (app.js) and the DOM.
type pageState struct {
	Refreshes int               `json:"refreshes"`
	Panels    map[string]string `json:"panels"`
	Charts    map[string]struct {
		Datasets int `json:"datasets"`
		// Points are drawn elements with a value and finite coordinates;
		// NonZero the values that are not 0.
		Points  int     `json:"points"`
		NonZero int     `json:"nonZero"`
		Width   float64 `json:"width"`
		Height  float64 `json:"height"`
		First   []any   `json:"first"` // the first dataset's values
	} `json:"charts"`
	Alerts   int               `json:"alerts"`
	Artworks int               `json:"artworks"`
	Banner   string            `json:"banner"` // text of the error banner; "" when hidden
	Warning  string            `json:"warning"`
	Status   string            `json:"status"`
	Messages map[string]string `json:"messages"` // each panel's empty, error or loading message
	Search   string            `json:"search"`
}

const pageStateJS = `(() => {
  const d = window.atlasDashboard;
  const charts = {};
  for (const [name, c] of Object.entries(d.charts)) {
    let points = 0, nonZero = 0;
    c.data.datasets.forEach((ds, i) => {
      const meta = c.getDatasetMeta(i);
      ds.data.forEach((v, j) => {
        const el = meta.data[j];
        if (v != null && el && Number.isFinite(el.x) && Number.isFinite(el.y)) points++;
        if (v != null && v !== 0) nonZero++;
      });
    });
    charts[name] = { datasets: c.data.datasets.length, points, nonZero, width: c.width, height: c.height,
      first: c.data.datasets.length ? c.data.datasets[0].data : [] };
  }
  const messages = {};
  for (const el of document.querySelectorAll('section.panel')) messages[el.id.replace('panel-', '')] = el.querySelector('.message').textContent;
  const banner = document.getElementById('banner'), warning = document.getElementById('warning');
  return {
    refreshes: d.refreshes, panels: d.panels, charts, messages,
    alerts: document.querySelectorAll('#alerts tbody tr').length,
    artworks: document.querySelectorAll('#funnel-artwork tbody tr').length,
    banner: banner.hidden ? '' : banner.textContent.replace(/\s+/g, ' ').trim(),
    warning: warning.hidden ? '' : warning.textContent,
    status: document.getElementById('status').textContent,
    search: location.search,
  };
})()`

// allSettled is true once every panel answered at least once.
const allSettled = `window.atlasDashboard && atlasDashboard.refreshes >= 1 &&
  Object.keys(atlasDashboard.panels).length === 6 &&
  Object.values(atlasDashboard.panels).every((s) => s !== 'loading')`

// chartsLaidOut is true once every chart has its size.
const chartsLaidOut = `Object.values(atlasDashboard.charts).every((c) => c.width >= 100 && c.height >= 100)`

func (s *stack) startDashboard(args ...string) (*proc, string) {
	s.t.Helper()
	addr := freeAddr(s.t)
	p := s.start("dashboard", append([]string{"dashboard", "--listen", addr}, args...)...)
	s.waitReady(p, addr, 30*time.Second)
	return p, addr
}

// TestDashboardShowsSimulatedTrafficInEveryPanel is the browser test of
// `atlas dashboard`: simulated traffic through the aggregates role into a
// fresh database, alerts for the incidents the simulator planted, then the
// page in headless Chromium: every chart has drawn points, the tables have
// rows, nothing went to the console, the page and `atlas query` agree, the
// controls reload the panels, and a screenshot shows it.
func TestDashboardShowsSimulatedTrafficInEveryPanel(t *testing.T) {
	began := time.Now()
	s := newStack(t, 3)

	// 30 minutes of simulated viewing ending about now, so that the
	// page's default period (the last hour) holds all of it.
	epoch := time.Now().UTC().Add(-32 * time.Minute).Truncate(time.Minute)
	truthPath := filepath.Join(s.dir, "truth.json")
	// Only a span, no event count: the incidents are then planted along
	// the simulated time, all ten of them inside the run.
	s.atlas("simulate", "--seed", "7", "--epoch", epoch.Format(time.RFC3339), "--span", "30m",
		"--titles", "300", "--partitions", "3", "--truth", truthPath)
	truth, err := sim.LoadTruth(truthPath)
	if err != nil {
		t.Fatal(err)
	}
	ops := freeAddr(t)
	agg := s.start("aggregates", "run", "aggregates", "--ops-addr", ops, "--flush-interval", "300ms")
	s.waitReady(agg, ops, time.Minute)
	s.waitDrained(2*time.Minute, s.topo.GroupID(topology.AggregatesGroup),
		s.topo.Name(topology.Playback), s.topo.Name(topology.Browse), s.topo.Name(topology.Catalog))
	agg.signal(syscall.SIGTERM)
	if err := agg.wait(30 * time.Second); err != nil {
		t.Fatalf("aggregates did not stop on SIGTERM: %v\n%s", err, lastLines(agg.output(), 20))
	}
	alerts := s.writeIncidentAlerts(truth.Incidents)
	t.Logf("data: %d records simulated from %s, %d alerts, ready after %s", truth.Totals.Sent, epoch.Format("15:04"), alerts, time.Since(began).Round(time.Second))

	dash, addr := s.startDashboard("--refresh", "2s")
	var h struct {
		ClickHouse struct{ User, Readonly string } `json:"clickhouse"`
	}
	if code := getJSON(t, "http://"+addr+"/api/health", &h); code != http.StatusOK ||
		h.ClickHouse.User != os.Getenv("ATLAS_CLICKHOUSE_READER_USER") || h.ClickHouse.Readonly != "2" {
		t.Fatalf("/api/health: %d %+v; want the reader user %s with readonly 2", code, h, os.Getenv("ATLAS_CLICKHOUSE_READER_USER"))
	}

	browserStart := time.Now()
	b := newBrowser(t)
	b.run(30*time.Second, "loading the dashboard", chromedp.Navigate("http://"+addr+"/"))
	state := func() pageState { return eval[pageState](t, b.ctx, pageStateJS) }
	explain := func() string {
		return fmt.Sprintf("page: %+v\nconsole: %v\ndashboard log:\n%s", state(), b.messages(), lastLines(dash.output(), 20))
	}
	poll(t, b.ctx, 30*time.Second, "every panel answered", allSettled, explain)
	// Chart.js sizes a chart on its container's resize callback, a frame
	// or more after the data came: measured at once, five charts of six
	// were once 0x0 in a screenshot that showed all six drawn.
	poll(t, b.ctx, 10*time.Second, "every chart laid out", chartsLaidOut, explain)
	st := state()
	for panel, ps := range st.Panels {
		if ps != "ready" {
			t.Errorf("panel %s is %s: %q", panel, ps, st.Messages[panel])
		}
	}
	for _, name := range []string{"trending", "completion", "dropoff", "genreGap", "funnel", "quality"} {
		c, ok := st.Charts[name]
		switch {
		case !ok:
			t.Errorf("chart %s was not drawn", name)
		case c.Datasets == 0 || c.Points == 0 || c.NonZero == 0:
			t.Errorf("chart %s has %d datasets, %d drawn points, %d non-zero values; want data", name, c.Datasets, c.Points, c.NonZero)
		case c.Width < 100 || c.Height < 100:
			t.Errorf("chart %s is %gx%g pixels", name, c.Width, c.Height)
		default:
			t.Logf("chart %s: %d datasets, %d points drawn, %gx%g px", name, c.Datasets, c.Points, c.Width, c.Height)
		}
	}
	if st.Alerts != min(alerts, 50) || st.Artworks == 0 {
		t.Errorf("tables: %d alert rows (want %d), %d artwork rows", st.Alerts, min(alerts, 50), st.Artworks)
	}
	if st.Banner != "" || st.Warning != "" || !strings.Contains(st.Status, h.ClickHouse.User+" (read-only)") {
		t.Errorf("banner %q, warning %q, status %q; want no banner and the read-only user in the status", st.Banner, st.Warning, st.Status)
	}
	s.checkPageAgreesWithQuery(addr, st)
	shot := screenshot(t, b.ctx, "dashboard.png")

	// The page refreshes itself, and the controls reload the panels and
	// keep the choice in the URL.
	poll(t, b.ctx, 10*time.Second, "a second refresh", "atlasDashboard.refreshes >= 2", explain)
	_ = eval[bool](t, b.ctx, `(() => { window.qualityBefore = JSON.stringify(atlasDashboard.charts.quality.data.datasets[0].data);
		const m = document.getElementById('quality-metric'); m.value = 'start_failure_rate';
		m.dispatchEvent(new Event('change')); return true; })()`)
	poll(t, b.ctx, 10*time.Second, "the quality chart shows the start failure rate",
		`location.search.includes('metric=start_failure_rate') && atlasDashboard.panels.quality === 'ready' &&
		 JSON.stringify(atlasDashboard.charts.quality.data.datasets[0].data) !== window.qualityBefore`, explain)
	country := eval[string](t, b.ctx, `document.getElementById('country').options[1].value`)
	_ = eval[bool](t, b.ctx, `(() => { const c = document.getElementById('country'); c.value = `+jsString(country)+`;
		c.dispatchEvent(new Event('change')); return true; })()`)
	poll(t, b.ctx, 10*time.Second, "the panels reload for "+country,
		`location.search.includes('country=' + `+jsString(country)+`) && document.getElementById('genre-country').value === `+jsString(country)+` &&
		 Object.values(atlasDashboard.panels).every((s) => s === 'ready' || s === 'empty')`, explain)

	for _, m := range b.messages() {
		if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException || m.Type == chromedp.ConsoleWarning {
			t.Errorf("console %s: %s (%s:%d)", m.Type, m.Text, m.URL, m.Line)
		}
	}
	t.Logf("browser part took %s (whole test %s); screenshot %s", time.Since(browserStart).Round(100*time.Millisecond),
		time.Since(began).Round(time.Second), shot)

	dash.signal(syscall.SIGTERM)
	if err := dash.wait(10 * time.Second); err != nil {
		t.Fatalf("atlas dashboard did not exit 0 on SIGTERM: %v\n%s", err, lastLines(dash.output(), 10))
	}
}

// TestDashboardShowsAnErrorBannerWhileClickHouseIsDown: the dashboard
// reads ClickHouse through a proxy that the test closes and opens again.
// On an empty database every panel shows its empty state; with ClickHouse
// gone the banner says why, the API answers 503 with the reason, the
// panels keep their last state dimmed, and a page loaded meanwhile still
// loads; with ClickHouse back the banner goes away by itself.
func TestDashboardShowsAnErrorBannerWhileClickHouseIsDown(t *testing.T) {
	s := newStack(t, 1)
	px := newProxy(t, os.Getenv("ATLAS_CLICKHOUSE_ADDR"))
	dash, addr := s.startDashboard("--refresh", "1s", "--clickhouse-addr", px.addr)
	b := newBrowser(t)
	state := func(tab context.Context) func() pageState {
		return func() pageState { return eval[pageState](t, tab, pageStateJS) }
	}
	explain := func(tab context.Context) func() string {
		return func() string {
			return fmt.Sprintf("page: %+v\ndashboard log:\n%s", state(tab)(), lastLines(dash.output(), 20))
		}
	}

	b.run(30*time.Second, "loading the dashboard", chromedp.Navigate("http://"+addr+"/"))
	poll(t, b.ctx, 20*time.Second, "every panel answered", allSettled, explain(b.ctx))
	st := state(b.ctx)()
	for panel, ps := range st.Panels {
		if ps != "empty" || !strings.HasPrefix(st.Messages[panel], "No ") {
			t.Errorf("panel %s on an empty database: %s %q; want its empty state", panel, ps, st.Messages[panel])
		}
	}
	if st.Banner != "" {
		t.Errorf("banner %q on an empty database", st.Banner)
	}
	screenshot(t, b.ctx, "dashboard-empty.png")

	px.down()
	poll(t, b.ctx, 10*time.Second, "the error banner", `!document.getElementById('banner').hidden &&
		Object.values(atlasDashboard.panels).every((s) => s === 'stale')`, explain(b.ctx))
	st = state(b.ctx)()
	if !strings.Contains(st.Banner, "ClickHouse is unavailable.") || !strings.Contains(st.Banner, px.addr) {
		t.Errorf("banner %q; want it to say ClickHouse is unavailable and name %s", st.Banner, px.addr)
	}
	t.Logf("banner: %s", st.Banner)
	var e struct {
		Error       string `json:"error"`
		Unavailable bool   `json:"unavailable"`
	}
	if code := getJSON(t, "http://"+addr+"/api/trending", &e); code != http.StatusServiceUnavailable || !e.Unavailable || !strings.Contains(e.Error, px.addr) {
		t.Errorf("/api/trending while ClickHouse is down: %d %+v; want 503 with the reason", code, e)
	}
	screenshot(t, b.ctx, "dashboard-clickhouse-down.png")

	// A page opened while ClickHouse is down loads, and says so.
	tab, cancel := chromedp.NewContext(b.ctx)
	defer cancel()
	if err := chromedp.Do(tab, chromedp.Navigate("http://"+addr+"/")); err != nil {
		t.Fatalf("loading the page while ClickHouse is down: %v", err)
	}
	poll(t, tab, 10*time.Second, "the new page's banner", allSettled+` && !document.getElementById('banner').hidden`, explain(tab))
	if st := state(tab)(); !slices.Equal(sortedValues(st.Panels), []string{"unavailable", "unavailable", "unavailable", "unavailable", "unavailable", "unavailable"}) ||
		!strings.Contains(st.Messages["trending"], "ClickHouse is unavailable") {
		t.Errorf("a page loaded while ClickHouse is down: panels %v, trending says %q", st.Panels, st.Messages["trending"])
	}
	if title := eval[string](t, tab, "document.title"); title != "Atlas dashboard" {
		t.Errorf("title %q", title)
	}

	px.up()
	for _, tb := range []context.Context{b.ctx, tab} {
		poll(t, tb, 15*time.Second, "the banner goes away once ClickHouse is back", `document.getElementById('banner').hidden &&
			Object.values(atlasDashboard.panels).every((s) => s === 'empty')`, explain(tb))
	}

	// The only console errors are the browser's notes on the 503 answers.
	for _, m := range b.messages() {
		if m.Type == chromedp.ConsoleException || (m.Type == chromedp.ConsoleError && !strings.Contains(m.Text, "status of 503")) {
			t.Errorf("console %s: %s (%s:%d)", m.Type, m.Text, m.URL, m.Line)
		}
	}
}

func sortedValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

// jsString is s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	c := http.Client{Timeout: 30 * time.Second}
	res, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %d, cannot decode the body: %v", url, res.StatusCode, err)
	}
	return res.StatusCode
}

// checkPageAgreesWithQuery compares the trending chart with what `atlas
// query trending` prints for the same period and parameters.
func (s *stack) checkPageAgreesWithQuery(addr string, st pageState) {
	s.t.Helper()
	var api struct {
		From, To time.Time
	}
	getJSON(s.t, "http://"+addr+"/api/trending", &api)
	out := s.atlas("query", "trending", "--from", api.From.Format(time.RFC3339), "--to", api.To.Format(time.RFC3339),
		"--min-starts", "5", "--limit", "10", "--format", "json")
	var rows []struct {
		Starts uint64 `json:"starts"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		s.t.Fatalf("atlas query trending --format json: %v\n%s", err, out)
	}
	var want []string
	for _, r := range rows {
		want = append(want, fmt.Sprint(r.Starts))
	}
	var got []string
	for _, v := range st.Charts["trending"].First {
		got = append(got, fmt.Sprint(v))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		s.t.Errorf("the trending chart shows starts %v, atlas query trending %v", got, want)
	}
}

// writeIncidentAlerts writes one alert per incident the simulator planted
// into the stack's alerts table, as the anomaly role would: `atlas run`
// has no anomaly role writing ClickHouse yet, and the panel should be
// tested over the shape of data it will show. Returns the number written.
func (s *stack) writeIncidentAlerts(incidents []sim.Incident) int {
	s.t.Helper()
	ctx := context.Background()
	conn, err := warehouse.Open(ctx, warehouse.Config{Addr: os.Getenv("ATLAS_CLICKHOUSE_ADDR"), Database: s.database,
		User: os.Getenv("ATLAS_CLICKHOUSE_USER"), Password: os.Getenv("ATLAS_CLICKHOUSE_PASSWORD")})
	if err != nil {
		s.t.Fatal(err)
	}
	defer conn.Close()
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO alerts (id, kind, status, severity, subject, score, evidence, window_start, window_end, first_seen, detected_at)")
	if err != nil {
		s.t.Fatal(err)
	}
	severity := map[string]uint8{sim.IncidentQuality: 3, sim.IncidentAccountSharing: 2, sim.IncidentImpossibleTravel: 3,
		sim.IncidentBot: 2, sim.IncidentCredentialStuffing: 4}
	now := time.Now().UTC()
	n := 0
	for i, inc := range incidents {
		start, end := time.UnixMilli(inc.Start).UTC(), time.UnixMilli(inc.End).UTC()
		detected := end
		if detected.After(now.Add(-time.Minute)) {
			detected = now.Add(-time.Minute)
		}
		sum := sha256.Sum256([]byte(fmt.Sprint(inc.Kind, inc.Subject, inc.Start)))
		evidence, _ := json.Marshal(inc.Evidence)
		if err := batch.Append(hex.EncodeToString(sum[:8]), inc.Kind, "firing", severity[inc.Kind], inc.Subject, 2+float64(i%5),
			string(evidence), start, end, start, detected); err != nil {
			s.t.Fatal(err)
		}
		n++
	}
	if err := batch.Send(); err != nil {
		s.t.Fatal(err)
	}
	return n
}
