package dashboard

import (
	"bytes"
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/atlas-stream/atlas/schemas/warehouse"
)

//go:embed assets
var assetFiles embed.FS

// shutdownTimeout bounds how long Run waits for requests in flight once
// its context ends.
const shutdownTimeout = 5 * time.Second

// Server serves the dashboard: the page, its assets and its JSON API. It
// is safe for concurrent use.
type Server struct {
	cfg   Config
	src   *source
	index []byte
	mux   *http.ServeMux
}

// New validates cfg and builds the server. It does not contact ClickHouse:
// the connection opens on the first API request and reopens after a failed
// one, so the page loads, and says what is wrong, while ClickHouse is down.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cannot configure the dashboard: %w", err)
	}
	s := &Server{cfg: cfg, src: &source{cfg: cfg.ClickHouse}}
	tmpl, err := template.ParseFS(assetFiles, "assets/index.html")
	if err != nil {
		return nil, fmt.Errorf("BUG: cannot parse the dashboard page: %w", err)
	}
	var b bytes.Buffer
	err = tmpl.Execute(&b, map[string]any{
		"RefreshMs": cfg.refresh().Milliseconds(),
		"Period":    formatPeriod(cfg.period()),
	})
	if err != nil {
		return nil, fmt.Errorf("BUG: cannot render the dashboard page: %w", err)
	}
	s.index = b.Bytes()
	s.routes()
	return s, nil
}

func formatPeriod(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return fmt.Sprintf("%dm", d/time.Minute)
}

func (s *Server) routes() {
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /{$}", s.serveIndex)
	static, err := fs.Sub(assetFiles, "assets")
	if err != nil {
		panic("BUG: no embedded assets: " + err.Error())
	}
	files := http.StripPrefix("/assets/", http.FileServerFS(static))
	s.mux.Handle("GET /assets/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Embedded files carry no modification time, so the browser
		// cannot revalidate: it asks again, and they are small.
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	}))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	// Ready as soon as it serves: the page works, and says what is wrong,
	// without ClickHouse, so ClickHouse's health is /api/health's business.
	s.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ready")
	})
	s.mux.HandleFunc("GET /api/health", s.serveHealth)
	for _, p := range panels {
		s.mux.HandleFunc("GET /api/"+p.name, s.servePanel(p))
	}
	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, apiError{Error: "no such endpoint: " + r.Method + " " + r.URL.Path})
	})
}

// Handler returns the dashboard's handler: / (the page), /assets/…,
// /api/… (JSON), /healthz and /readyz.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// Everything the page needs comes from this server.
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		s.mux.ServeHTTP(w, r)
	})
}

func (s *Server) serveIndex(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(s.index)
}

// health is the body of /api/health.
type health struct {
	Status     string     `json:"status"` // ok or unavailable
	Error      string     `json:"error,omitempty"`
	ClickHouse chInfo     `json:"clickhouse"`
	RefreshMs  int64      `json:"refresh_ms"`
	LatestData *time.Time `json:"latest_window,omitempty"` // newest playback window; absent without data
}

type chInfo struct {
	Addr     string `json:"addr"`
	Database string `json:"database"`
	User     string `json:"user"`
	serverInfo
}

// serveHealth answers 200 when ClickHouse answers as the dashboard's user
// and the database is migrated, 503 with the reason otherwise.
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	ch := s.cfg.ClickHouse
	h := health{Status: "ok", RefreshMs: s.cfg.refresh().Milliseconds(), ClickHouse: chInfo{
		Addr:     cmp.Or(ch.Addr, warehouse.DefaultAddr),
		Database: cmp.Or(ch.Database, warehouse.DefaultDatabase),
		User:     cmp.Or(ch.User, warehouse.DefaultUser),
	}}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.queryTimeout())
	defer cancel()
	conn, info, err := s.src.get(ctx)
	if err == nil {
		h.ClickHouse.serverInfo = info
		var latest time.Time
		err = conn.QueryRow(ctx, "SELECT max(window_start) FROM playback_minute").Scan(&latest)
		if err == nil && latest.Unix() > 0 {
			latest = latest.UTC()
			h.LatestData = &latest
		}
	}
	if err != nil {
		err = classify(err, ch)
		h.Status, h.Error = "unavailable", err.Error()
		w.Header().Set("Retry-After", fmt.Sprint(int(s.cfg.refresh().Seconds())))
		status := http.StatusServiceUnavailable
		if !errors.Is(err, ErrUnavailable) {
			status = http.StatusInternalServerError
		}
		writeJSON(w, status, h)
		return
	}
	writeJSON(w, http.StatusOK, h)
}

// Run serves the dashboard on the configured address until ctx ends, then
// stops accepting connections, waits up to 5 s for requests in flight
// (then cuts them) and closes the ClickHouse connection. It returns an error when it cannot
// listen or serving fails, nil after a shutdown.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.addr())
	if err != nil {
		return fmt.Errorf("cannot listen for the dashboard on %s: %w", s.cfg.addr(), err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on a listener of the caller's, which it closes.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      s.cfg.queryTimeout() + 10*time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	slog.Info("serving the dashboard", "url", "http://"+ln.Addr().String()+"/", "refresh", s.cfg.refresh(),
		"clickhouse", cmp.Or(s.cfg.ClickHouse.Addr, warehouse.DefaultAddr), "user", cmp.Or(s.cfg.ClickHouse.User, warehouse.DefaultUser))
	// Connect now, so that the log says at once whether ClickHouse is
	// there; the page works either way.
	var wg sync.WaitGroup
	wg.Go(func() {
		cctx, cancel := context.WithTimeout(ctx, s.cfg.queryTimeout())
		defer cancel()
		if _, _, err := s.src.get(cctx); err != nil && ctx.Err() == nil {
			slog.Warn("ClickHouse is not available yet; the page shows why and retries", "err", err)
		}
	})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		start := time.Now()
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		if err = srv.Shutdown(sctx); errors.Is(err, context.DeadlineExceeded) {
			// A panel's query outlived the grace period: a dashboard
			// request is safe to cut, and the page retries it.
			slog.Warn("cutting requests still running after the shutdown grace period", "grace", shutdownTimeout)
			err = srv.Close()
		}
		cancel()
		<-done
		slog.Info("dashboard stopped", "took", time.Since(start).Round(time.Millisecond))
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	wg.Wait()
	return errors.Join(err, s.src.close())
}
