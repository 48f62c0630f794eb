package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/atlas-stream/atlas/schemas"
)

// testConfig is a gateway config without rate limits and with a registry
// of its own.
func testConfig() Config {
	reg := prometheus.NewRegistry()
	return Config{
		Secret: testSecret, IPHashKey: []byte("ip-hash-key-for-tests"),
		SessionRate: rate.Inf, IPRate: rate.Inf,
		Registerer: reg, Gatherer: reg,
	}
}

// serve starts a gateway over sender on httptest and returns its URL.
func serve(t *testing.T, cfg Config, sender Sender) (*Gateway, string) {
	t.Helper()
	g, err := New(cfg, sender)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return g, srv.URL
}

func TestConfigValidateNamesTheProblem(t *testing.T) {
	check := func(c Config, want string) {
		t.Helper()
		err := c.Validate()
		if want == "" {
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			return
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Validate: %v, want an error containing %q", err, want)
		}
	}
	check(Config{Secret: testSecret}, "")
	check(Config{}, "secret is missing")
	check(Config{Secret: []byte("short")}, "at least 32")
	check(Config{Secret: testSecret, IPHashKey: []byte("short")}, "IP hash key")
	check(Config{Secret: testSecret, Addr: "nonsense"}, "listen address")
	check(Config{Secret: testSecret, ClockSkew: 1500 * time.Millisecond}, "whole seconds")
	check(Config{Secret: testSecret, MaxEvents: -1}, "MaxEvents")
	if _, err := New(Config{Secret: testSecret}, nil); err == nil {
		t.Fatal("New without a sender succeeded")
	}
}

func TestRateLimitsAnswer429WithRetryAfter(t *testing.T) {
	t.Run("a network over its rate gets 429 before its body is read", func(t *testing.T) {
		cfg := testConfig()
		cfg.IPRate, cfg.IPBurst = 1, 1
		sender := &fakeSender{}
		_, url := serve(t, cfg, sender)
		now := time.Now()
		c := newClient(url, "s1")
		if a := c.send(t, events("a", "s1", 2, now)); a.status != 200 {
			t.Fatalf("first request: %s", a)
		}
		other := newClient(url, "s2") // another session, same address
		a := other.send(t, events("b", "s2", 2, now))
		if a.status != http.StatusTooManyRequests || a.retryAfter != "1" || a.err.Error != CodeRateLimited || !strings.Contains(a.err.Reason, "your network") {
			t.Fatalf("second request: %s, Retry-After %q; want 429 with Retry-After 1", a, a.retryAfter)
		}
		if n := len(sender.received()); n != 2 {
			t.Fatalf("%d events sent, want the first request's 2", n)
		}
	})
	t.Run("a session over its rate gets 429, other sessions go on", func(t *testing.T) {
		cfg := testConfig()
		cfg.SessionRate, cfg.SessionBurst = 0.5, 1
		_, url := serve(t, cfg, &fakeSender{})
		now := time.Now()
		c := newClient(url, "s1")
		if a := c.send(t, events("a", "s1", 1, now)); a.status != 200 {
			t.Fatalf("first request: %s", a)
		}
		a := c.send(t, events("b", "s1", 1, now))
		if a.status != http.StatusTooManyRequests || a.retryAfter != "2" || !strings.Contains(a.err.Reason, "this session") {
			t.Fatalf("second request: %s, Retry-After %q; want 429 with Retry-After 2", a, a.retryAfter)
		}
		if a := newClient(url, "s2").send(t, events("c", "s2", 1, now)); a.status != 200 {
			t.Fatalf("another session: %s", a)
		}
	})
	t.Run("unsigned requests do not spend a session's tokens", func(t *testing.T) {
		cfg := testConfig()
		cfg.SessionRate, cfg.SessionBurst = 0.001, 1
		_, url := serve(t, cfg, &fakeSender{})
		c := newClient(url, "s1")
		forged := c.request(t, "application/msgpack", mustBatch(t, events("x", "s1", 1, time.Now())), func(r *http.Request, b []byte) {
			Sign(r, b, "s1", []byte("not the key"), time.Now(), "")
		})
		if a := c.do(t, forged); a.status != http.StatusUnauthorized {
			t.Fatalf("forged request: %s", a)
		}
		if a := c.send(t, events("a", "s1", 1, time.Now())); a.status != 200 {
			t.Fatalf("the session's own request after a forged one: %s", a)
		}
	})
}

func TestTheGatewayStampsEventsAndNeverPassesOnTheRawAddress(t *testing.T) {
	cfg := testConfig()
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	sender := &fakeSender{}
	_, url := serve(t, cfg, sender)
	c := newClient(url, "s1")
	c.forwardedFor = "203.0.113.77"
	now := time.Now()
	recs := events("a", "s1", 2, now)
	recs[0].(*schemas.Playback).ClientNet = "203.0.113.77" // a device cannot choose its network
	recs[0].(*schemas.Playback).ReceiveTime = 1            // nor its receive time
	if a := c.send(t, recs); a.status != 200 || a.resp.Accepted != 2 {
		t.Fatalf("%s", a)
	}
	want := ClientNet(cfg.IPHashKey, netip.MustParseAddr("203.0.113.77"))
	for _, rec := range sender.received() {
		var env schemas.Envelope
		switch r := rec.(type) {
		case *schemas.Playback:
			env = r.Envelope
		case *schemas.Browse:
			env = r.Envelope
		}
		if env.ClientNet != want || !strings.HasPrefix(want, "203.0.113.0/24#") {
			t.Errorf("event %s: net %q, want %q", env.EventID, env.ClientNet, want)
		}
		if env.ReceiveTime < now.UnixMilli() || env.ReceiveTime > time.Now().UnixMilli() {
			t.Errorf("event %s: receive time %d not stamped by the gateway", env.EventID, env.ReceiveTime)
		}
		b, _ := schemas.Marshal(rec)
		if strings.Contains(string(b), "203.0.113.77") {
			t.Errorf("event %s carries the raw address", env.EventID)
		}
	}
}

func TestARequestsRecordsCarryNothingOverFromAnEarlierRequest(t *testing.T) {
	// The gateway reuses the records of finished requests; a field that a
	// later event leaves out must reach Kafka empty, not with an earlier
	// event's value (JSON decoding fills only the keys present). Requests
	// go to ServeHTTP one after the other on this goroutine, so that they
	// reuse each other's records.
	for _, format := range []string{"application/msgpack", "application/json"} {
		t.Run(format, func(t *testing.T) {
			sender := &fakeSender{}
			g, err := New(testConfig(), sender)
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			key := SessionKey(testSecret, "s1")
			post := func(recs []schemas.Record) {
				t.Helper()
				body := mustBatch(t, recs)
				if format == "application/json" {
					body = mustBatchJSON(t, recs)
				}
				req := httptest.NewRequest(http.MethodPost, "/v1/events", bytes.NewReader(body))
				req.Header.Set("Content-Type", format)
				Sign(req, body, "s1", key, now, "")
				w := httptest.NewRecorder()
				g.ServeHTTP(w, req)
				if w.Code != 200 || !strings.HasPrefix(w.Body.String(), fmt.Sprintf(`{"accepted":%d,`, len(recs))) {
					t.Fatalf("%d %s", w.Code, w.Body)
				}
			}
			for round := range 10 {
				full := events(fmt.Sprint("full", round), "s1", 4, now)
				full[0].(*schemas.Playback).ErrorCode = "E42"
				full[1].(*schemas.Browse).Query = "secret query"
				bare := events(fmt.Sprint("bare", round), "s1", 4, now)
				bare[0].(*schemas.Playback).AppVersion, bare[0].(*schemas.Playback).CDN, bare[0].(*schemas.Playback).ISP = "", "", ""
				bare[1].(*schemas.Browse).Row, bare[1].(*schemas.Browse).Rank = "", 0
				post(full)
				post(bare)
				got := sender.received()
				got = got[len(got)-len(bare):]
				for i, rec := range got {
					want := bare[i]
					switch w := want.(type) {
					case *schemas.Playback:
						w.ReceiveTime, w.ClientNet = rec.(*schemas.Playback).ReceiveTime, rec.(*schemas.Playback).ClientNet
					case *schemas.Browse:
						w.ReceiveTime, w.ClientNet = rec.(*schemas.Browse).ReceiveTime, rec.(*schemas.Browse).ClientNet
					}
					gb, _ := schemas.Marshal(rec)
					wb, _ := schemas.Marshal(want)
					if string(gb) != string(wb) {
						t.Fatalf("round %d, event %d of the bare request:\n got %+v\nwant %+v", round, i, rec, want)
					}
				}
			}
		})
	}
}

func TestGatewayAnswers(t *testing.T) {
	now := time.Now()
	type want struct {
		status   int
		code     string // ErrorResponse.Error, for non-200
		reason   string // part of ErrorResponse.Reason, or of the first rejected event's reason
		field    string // field of the first rejected event
		accepted int
		rejected int
		sent     int // records the sender got
	}
	cases := []struct {
		name   string
		config func(*Config)
		sender *fakeSender
		send   func(t *testing.T, c *client) answer
		want   want
	}{
		{
			name: "a signed msgpack batch of valid events is accepted",
			send: func(t *testing.T, c *client) answer { return c.send(t, events("a", c.session, 10, now)) },
			want: want{status: 200, accepted: 10, sent: 10},
		},
		{
			name: "a signed JSON batch is accepted like a msgpack one",
			send: func(t *testing.T, c *client) answer {
				return c.do(t, c.request(t, "application/json; charset=utf-8", mustBatchJSON(t, events("a", c.session, 4, now)), c.signNow))
			},
			want: want{status: 200, accepted: 4, sent: 4},
		},
		{
			name: "a body that is neither msgpack nor JSON gets 415",
			send: func(t *testing.T, c *client) answer {
				return c.do(t, c.request(t, "text/plain", []byte("hello"), c.signNow))
			},
			want: want{status: 415, code: CodeUnsupportedMedia, reason: "application/msgpack or application/json"},
		},
		{
			name: "an event of another session is rejected, naming ses",
			send: func(t *testing.T, c *client) answer {
				recs := events("a", c.session, 3, now)
				recs[1].(*schemas.Browse).SessionID = "someone-else"
				return c.send(t, recs)
			},
			want: want{status: 200, accepted: 2, rejected: 1, field: "ses", reason: "not the session", sent: 2},
		},
		{
			name: "an id used twice in a batch is rejected the second time",
			send: func(t *testing.T, c *client) answer {
				recs := events("a", c.session, 3, now)
				recs[2].(*schemas.Playback).EventID = "a-0"
				return c.send(t, recs)
			},
			want: want{status: 200, accepted: 2, rejected: 1, field: "id", reason: "also the id of event 0", sent: 2},
		},
		{
			name: "a batch of invalid events gets 200 with every event rejected and nothing sent",
			send: func(t *testing.T, c *client) answer {
				recs := events("a", c.session, 2, now)
				recs[0].(*schemas.Playback).Country = "Germany"
				recs[1].(*schemas.Browse).EventTime = now.Add(time.Hour).UnixMilli()
				return c.send(t, recs)
			},
			want: want{status: 200, rejected: 2, field: "cc", reason: "not an ISO 3166-1 alpha-2 country code"},
		},
		{
			name: "a catalog record is not accepted from a device",
			send: func(t *testing.T, c *client) answer {
				return c.send(t, []schemas.Record{&schemas.Title{TitleID: "t1", Name: "x", Type: schemas.TitleFilm}})
			},
			want: want{status: 200, rejected: 1, field: "s", reason: "not accepted from devices"},
		},
		{
			name: "an empty batch gets 400",
			send: func(t *testing.T, c *client) answer { return c.send(t, nil) },
			want: want{status: 400, code: CodeMalformed, reason: "no events"},
		},
		{
			name:   "a batch that Kafka does not acknowledge gets 503 with Retry-After",
			sender: &fakeSender{err: errors.New("cannot write: broker down")},
			send:   func(t *testing.T, c *client) answer { return c.send(t, events("a", c.session, 3, now)) },
			want:   want{status: 503, code: CodeUnavailable, reason: "retry the whole batch"},
		},
		{
			name:   "an event the sender finds invalid is rejected with the sender's reason",
			sender: &fakeSender{err: &schemas.ValidationError{Field: "", Reason: "record is 9000 bytes encoded"}},
			send:   func(t *testing.T, c *client) answer { return c.send(t, events("a", c.session, 1, now)) },
			want:   want{status: 200, rejected: 1, reason: "9000 bytes"},
		},
		{
			name:   "the event limit is a Config field",
			config: func(c *Config) { c.MaxEvents = 3 },
			send:   func(t *testing.T, c *client) answer { return c.send(t, events("a", c.session, 4, now)) },
			want:   want{status: 413, code: CodeTooLarge, reason: "4 events, over the limit of 3"},
		},
		{
			name:   "the body limit is a Config field, checked before the signature",
			config: func(c *Config) { c.MaxBodyBytes = 100 },
			send: func(t *testing.T, c *client) answer {
				return c.do(t, c.request(t, "application/msgpack", make([]byte, 101), nil))
			},
			want: want{status: 413, code: CodeTooLarge, reason: "over the limit of 100 bytes"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			if tc.config != nil {
				tc.config(&cfg)
			}
			sender := tc.sender
			if sender == nil {
				sender = &fakeSender{}
			}
			_, url := serve(t, cfg, sender)
			a := tc.send(t, newClient(url, "session-1"))
			w := tc.want
			if a.status != w.status {
				t.Fatalf("answer %s, want status %d", a, w.status)
			}
			if w.status != 200 {
				if a.err.Error != w.code || !strings.Contains(a.err.Reason, w.reason) {
					t.Fatalf("answer %s, want error %q with a reason containing %q", a, w.code, w.reason)
				}
				if w.status == 503 && a.retryAfter == "" {
					t.Fatalf("503 without Retry-After")
				}
			} else {
				if a.resp.Accepted != w.accepted || a.resp.Rejected != w.rejected || len(a.resp.Events) != w.accepted+w.rejected {
					t.Fatalf("answer %s, want %d accepted and %d rejected", a, w.accepted, w.rejected)
				}
				for i, st := range a.resp.Events {
					if st.Index != i {
						t.Fatalf("status %d has index %d", i, st.Index)
					}
				}
				if w.rejected > 0 {
					var first *EventStatus
					for i := range a.resp.Events {
						if a.resp.Events[i].Status == StatusRejected {
							first = &a.resp.Events[i]
							break
						}
					}
					if first.Field != w.field || !strings.Contains(first.Reason, w.reason) {
						t.Fatalf("first rejected event %+v, want field %q and a reason containing %q", *first, w.field, w.reason)
					}
				}
			}
			if got := len(sender.received()); got != w.sent {
				t.Fatalf("the sender got %d records, want %d", got, w.sent)
			}
		})
	}
}

func TestRequestsOverTheConcurrencyCapGet503(t *testing.T) {
	cfg := testConfig()
	cfg.MaxInFlight = 1
	sender := &fakeSender{block: make(chan struct{}), calls: make(chan struct{}, 1)}
	_, url := serve(t, cfg, sender)
	c := newClient(url, "s1")
	first := make(chan answer, 1)
	go func() { first <- c.send(t, events("a", "s1", 1, time.Now())) }()
	<-sender.calls // the first request is inside the gateway
	a := c.send(t, events("b", "s1", 1, time.Now()))
	if a.status != http.StatusServiceUnavailable || a.err.Error != CodeBusy || a.retryAfter != "1" {
		t.Fatalf("second request: %s, want 503 busy with Retry-After 1", a)
	}
	close(sender.block)
	if a := <-first; a.status != 200 {
		t.Fatalf("first request: %s", a)
	}
}

// readySender is a sender whose readiness a test sets.
type readySender struct {
	fakeSender
	err error
}

func (s *readySender) Ready(context.Context) error { return s.err }

func TestHealthReadinessAndMetrics(t *testing.T) {
	sender := &readySender{}
	var logged strings.Builder
	cfg := testConfig()
	cfg.Logger = newTestLogger(&logged)
	g, url := serve(t, cfg, sender)
	g.readyTTL = 0
	get := func(path string) (int, string) {
		t.Helper()
		res, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz %d", code)
	}
	if code, body := get("/readyz"); code != 200 {
		t.Fatalf("/readyz %d %s", code, body)
	}
	sender.err = errors.New("topic atlas.playback.v1 has no leader")
	if code, body := get("/readyz"); code != 503 || strings.Contains(body, "no leader") {
		t.Fatalf("/readyz with Kafka down: %d %q, want 503 without the internal cause", code, body)
	}
	if !strings.Contains(logged.String(), "no leader") {
		t.Fatalf("the cause of unreadiness is not in the log: %s", logged.String())
	}
	newClient(url, "s1").send(t, events("a", "s1", 3, time.Now()))
	code, body := get("/metrics")
	for _, want := range []string{`atlas_ingest_requests_total{code="200",error="ok"} 1`, `atlas_ingest_events_total{status="accepted"} 3`, "atlas_ingest_request_duration_seconds_bucket"} {
		if code != 200 || !strings.Contains(body, want) {
			t.Fatalf("/metrics %d lacks %q:\n%s", code, want, body)
		}
	}
	res, err := http.Get(url + "/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET /v1/events: %d, want 405", res.StatusCode)
	}
}

func TestServeDrainsRequestsInFlightWhenItsContextEnds(t *testing.T) {
	sender := &fakeSender{block: make(chan struct{}), calls: make(chan struct{}, 1)}
	g, err := New(testConfig(), sender)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- g.Serve(ctx, ln) }()

	c := newClient("http://"+ln.Addr().String(), "s1")
	answered := make(chan answer, 1)
	go func() { answered <- c.send(t, events("a", "s1", 2, time.Now())) }()
	<-sender.calls
	cancel() // SIGTERM: the request is waiting for Kafka
	time.Sleep(100 * time.Millisecond)
	if !g.draining.Load() {
		t.Fatal("the gateway does not say it is draining")
	}
	select {
	case err := <-served:
		t.Fatalf("Serve returned %v with a request in flight", err)
	default:
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Fatal("the listener still accepts connections while draining")
	}
	close(sender.block) // Kafka acknowledges
	if a := <-answered; a.status != 200 || a.resp.Accepted != 2 {
		t.Fatalf("the request in flight got %s, want 200", a)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

func TestTheServerErrorLogNeverWritesAddresses(t *testing.T) {
	var out strings.Builder
	w := &redactingWriter{logger: newTestLogger(&out)}
	w.Write([]byte("http: panic serving 203.0.113.7:51234: boom\n"))
	w.Write([]byte("http: TLS handshake error from [2001:db8::7]:443: EOF\n"))
	if s := out.String(); strings.Contains(s, "203.0.113.7") || strings.Contains(s, "2001:db8::7") || !strings.Contains(s, "boom") {
		t.Fatalf("log: %s", s)
	}
}
