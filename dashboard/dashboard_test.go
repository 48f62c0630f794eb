package dashboard

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/atlas-stream/atlas/schemas/warehouse"
)

func TestParsePeriod(t *testing.T) {
	ok := func(s string, want time.Duration) {
		t.Helper()
		got, err := parsePeriod(s)
		if err != nil || got != want {
			t.Errorf("parsePeriod(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	bad := func(s string) {
		t.Helper()
		if got, err := parsePeriod(s); err == nil {
			t.Errorf("parsePeriod(%q) = %v, want an error", s, got)
		}
	}
	ok("15m", 15*time.Minute)
	ok("1h", time.Hour)
	ok("90m", 90*time.Minute)
	ok("7d", 7*24*time.Hour)
	ok("90d", 90*24*time.Hour)
	bad("")
	bad("0m")
	bad("30s")
	bad("1h30s")
	bad("91d")
	bad("-1h")
	bad("2y")
	bad("d")
}

func TestWindowEndsWithTheCurrentMinuteAndAlignsItsStartToTheBucket(t *testing.T) {
	now := time.Date(2026, 11, 26, 7, 31, 38, 0, time.UTC)
	check := func(period time.Duration, from string, bucket time.Duration) {
		t.Helper()
		w := newWindow(period, now)
		if got := w.From.Format("15:04 02"); got != from || w.Bucket != bucket || w.To != time.Date(2026, 11, 26, 7, 32, 0, 0, time.UTC) {
			t.Errorf("newWindow(%v) = %s..%s by %v; want from %s by %v", period, w.From, w.To, w.Bucket, from, bucket)
		}
		if n := w.To.Sub(w.From) / w.Bucket; n > maxPoints+1 {
			t.Errorf("newWindow(%v) has %d buckets, more than %d", period, n, maxPoints)
		}
	}
	check(15*time.Minute, "07:17 26", time.Minute)
	check(time.Hour, "06:30 26", 5*time.Minute)
	check(6*time.Hour, "01:30 26", 15*time.Minute)
	check(24*time.Hour, "07:00 25", time.Hour)
	check(7*24*time.Hour, "06:00 19", 6*time.Hour)
	check(30*24*time.Hour, "00:00 27", 24*time.Hour)
	check(90*24*time.Hour, "00:00 27", 72*time.Hour)
}

func TestConfigValidate(t *testing.T) {
	ok := func(c Config) {
		t.Helper()
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	bad := func(c Config, want string) {
		t.Helper()
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: got %v, want an error containing %q", c, err, want)
		}
	}
	ok(Config{})
	ok(Config{Addr: ":8080", Refresh: time.Second, Period: 7 * 24 * time.Hour})
	bad(Config{Addr: "8080"}, "want host:port")
	bad(Config{Refresh: 500 * time.Millisecond}, "at least 1s")
	bad(Config{Period: 30 * time.Second}, "want from 1m to 90d")
	bad(Config{Period: 91 * 24 * time.Hour}, "want from 1m to 90d")
	bad(Config{Period: 90 * time.Second}, "whole number of minutes")
	bad(Config{ClickHouse: warehouse.Config{Addr: "nowhere"}}, "cannot use Addr")
}

// TestVendoredChartJSMatchesItsManifest keeps the embedded chart library
// equal to what scripts/dashboard-assets.sh fetched from npm and recorded.
func TestVendoredChartJSMatchesItsManifest(t *testing.T) {
	manifest, err := fs.ReadFile(assetFiles, "assets/vendor/chart.js.txt")
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	sums := 0
	sc := bufio.NewScanner(bytes.NewReader(manifest))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if f[0] != "sha256" {
			fields[f[0]] = f[1]
			continue
		}
		if len(f) != 3 {
			t.Fatalf("manifest line %q: want sha256 HEX FILE", sc.Text())
		}
		b, err := fs.ReadFile(assetFiles, "assets/vendor/"+f[2])
		if err != nil {
			t.Fatalf("the manifest names %s, which is not embedded: %v", f[2], err)
		}
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); got != f[1] {
			t.Errorf("%s has sha256 %s, the manifest says %s: run scripts/dashboard-assets.sh update", f[2], got, f[1])
		}
		sums++
	}
	if fields["package"] != "chart.js" || fields["license"] != "MIT" || fields["version"] == "" || sums != 2 {
		t.Fatalf("manifest lacks package, version, licence or the two checksums:\n%s", manifest)
	}
	js, _ := fs.ReadFile(assetFiles, "assets/vendor/chart.umd.min.js")
	if !bytes.Contains(js[:200], []byte("Chart.js v"+fields["version"])) {
		t.Errorf("chart.umd.min.js does not start with the banner of Chart.js v%s", fields["version"])
	}
}

// closedAddr is a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// downServer is a dashboard whose ClickHouse is not there.
func downServer(t *testing.T) *httptest.Server {
	t.Helper()
	s, err := New(Config{Refresh: 3 * time.Second, ClickHouse: warehouse.Config{Addr: closedAddr(t), User: "atlas_reader", DialTimeout: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

func TestThePageAndItsAssetsLoadWithoutClickHouse(t *testing.T) {
	ts := downServer(t)
	for _, tc := range []struct {
		path, contentType, contains string
	}{
		{"/", "text/html", `data-refresh-ms="3000"`},
		{"/assets/app.js", "text/javascript", "window.atlasDashboard"},
		{"/assets/app.css", "text/css", ".banner"},
		{"/assets/vendor/chart.umd.min.js", "text/javascript", "Chart.js v"},
		{"/assets/vendor/chart.js.LICENSE.md", "text/markdown", "MIT License"},
		{"/healthz", "text/plain", "ok"},
		{"/readyz", "text/plain", "ready"},
	} {
		res, body := get(t, ts.URL+tc.path)
		if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), tc.contentType) || !strings.Contains(body, tc.contains) {
			t.Errorf("GET %s: %d %s, body has %q: %v", tc.path, res.StatusCode, res.Header.Get("Content-Type"), tc.contains, strings.Contains(body, tc.contains))
		}
		if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", tc.path, csp)
		}
	}
	if res, _ := get(t, ts.URL+"/nothing-here"); res.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nothing-here: %d, want 404", res.StatusCode)
	}
}

func TestEveryEndpointAnswers503WithTheReasonWhileClickHouseIsDown(t *testing.T) {
	ts := downServer(t)
	for _, p := range append([]string{"health"}, panelNames()...) {
		res, body := get(t, ts.URL+"/api/"+p)
		var e struct {
			Error       string `json:"error"`
			Unavailable bool   `json:"unavailable"`
			Status      string `json:"status"`
		}
		if err := json.Unmarshal([]byte(body), &e); err != nil {
			t.Fatalf("/api/%s: %v in %s", p, err, body)
		}
		if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(e.Error, "cannot connect to ClickHouse at 127.0.0.1:") ||
			res.Header.Get("Retry-After") != "3" {
			t.Errorf("/api/%s: %d Retry-After %q %s", p, res.StatusCode, res.Header.Get("Retry-After"), body)
		}
		if p == "health" && e.Status != "unavailable" || p != "health" && !e.Unavailable {
			t.Errorf("/api/%s does not say it is unavailable: %s", p, body)
		}
	}
}

func panelNames() []string {
	var out []string
	for _, p := range panels {
		out = append(out, p.name)
	}
	return out
}

func TestBadParametersAre400BeforeClickHouseIsAsked(t *testing.T) {
	ts := downServer(t)
	for _, tc := range []struct{ path, want string }{
		{"/api/trending?period=2y", `invalid period \"2y\": want a duration`},
		{"/api/trending?period=30s", `invalid period \"30s\": want from 1m`},
		{"/api/trending?colour=red", "has no parameter colour"},
		{"/api/funnel?country=DE", "has no parameter country"},
		{"/api/trending?period=1h&period=2h", "given 2 times"},
		{"/api/nothing", "no such endpoint"},
	} {
		res, body := get(t, ts.URL+tc.path)
		if (res.StatusCode != http.StatusBadRequest && res.StatusCode != http.StatusNotFound) || !strings.Contains(body, tc.want) {
			t.Errorf("GET %s: %d %s; want 400 or 404 with %q", tc.path, res.StatusCode, body, tc.want)
		}
	}
}

func TestServeStopsWhenItsContextEnds(t *testing.T) {
	s, err := New(Config{ClickHouse: warehouse.Config{Addr: closedAddr(t), DialTimeout: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	if res, _ := get(t, "http://"+ln.Addr().String()+"/healthz"); res.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %d", res.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve returned %v after its context ended, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return within 10 s of its context ending")
	}
}

func TestQualitySeriesShowsTheBusiestCellsAndTheWorstOnes(t *testing.T) {
	w := window{From: time.Date(2026, 11, 26, 7, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 26, 7, 3, 0, 0, time.UTC), Bucket: time.Minute}
	res := &warehouse.Result{Columns: []warehouse.Column{
		{Name: "bucket"}, {Name: "cdn"}, {Name: "isp"}, {Name: "sessions"}, {Name: "rebuffers"},
		{Name: "rebuffer_s_per_session"}, {Name: "start_failures"}, {Name: "errors"}, {Name: "mean_bitrate_kbps"},
	}}
	row := func(min int, cdn, isp string, sessions, rebuffers uint64) {
		res.Rows = append(res.Rows, []any{w.From.Add(time.Duration(min) * time.Minute), cdn, isp, sessions, rebuffers, 0.5, uint64(0), uint64(0), 3000.0})
	}
	row(0, "a", "big", 1000, 100)
	row(1, "a", "big", 1000, 100)
	row(2, "a", "big", 1000, 100)
	row(0, "b", "mid", 500, 10)
	row(2, "b", "mid", 500, 10)
	row(1, "c", "sick", 100, 300) // small but terrible
	row(1, "d", "tiny", 4, 50)    // worse, but too small to mean anything
	s, err := buildQualitySeries(res, w, "rebuffers_per_session", 3)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range s.Lines {
		got = append(got, l.Label+"/"+l.Why)
	}
	if want := "overall/overall a · big/busiest b · mid/busiest c · sick/worst"; strings.Join(got, " ") != want {
		t.Fatalf("lines %v, want %s", got, want)
	}
	overall := s.Lines[0]
	if overall.Sessions != 4104 || *overall.Points[1] != float64(100+300+50)/float64(1000+100+4) {
		t.Errorf("overall: %d sessions, minute 1 %v", overall.Sessions, *overall.Points[1])
	}
	if mid := s.Lines[2]; mid.Points[1] != nil || *mid.Points[0] != 0.02 {
		t.Errorf("b · mid has a point where it had no sessions, or a wrong one: %v", mid.Points)
	}
	if len(s.Buckets) != 3 || s.Cells != 4 {
		t.Errorf("%d buckets, %d cells; want 3 and 4", len(s.Buckets), s.Cells)
	}
}
