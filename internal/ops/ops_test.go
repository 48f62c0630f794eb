package ops

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestHandlerServesHealthReadinessMetricsAndProfiles(t *testing.T) {
	ready := false
	h := Handler(prometheus.NewRegistry(), []Check{{Name: "engine", Ready: func() bool { return ready }}})
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	for _, c := range []struct {
		path, want string
		code       int
	}{
		{"/healthz", "ok", 200},
		{"/readyz", "not ready: engine", 503},
		{"/metrics", "", 200},
		{"/debug/pprof/", "goroutine", 200},
		{"/debug/pprof/cmdline", "", 200},
	} {
		code, body := get(c.path)
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("GET %s: %d %q; want %d containing %q", c.path, code, body, c.code, c.want)
		}
	}
	ready = true
	if code, body := get("/readyz"); code != 200 || !strings.Contains(body, "ready") {
		t.Errorf("GET /readyz when ready: %d %q", code, body)
	}
}
