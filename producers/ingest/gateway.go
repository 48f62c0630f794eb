package ingest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"github.com/atlas-stream/atlas/schemas"
)

// Sender writes records to Kafka and waits for the acknowledgements, with
// one error per record: nil when acknowledged, a *schemas.ValidationError
// when the record breaks a rule, anything else when Kafka did not take it.
// *player.Producer is the Sender of `atlas ingest`; the gateway never hands
// it a record that failed its own validation.
//
// recs and the records they point to belong to the gateway, which reuses
// them for later requests once SendSync returned: a Sender must not retain
// them (one that keeps records must copy them).
type Sender interface {
	SendSync(ctx context.Context, recs []schemas.Record) []error
}

// validatedSender is implemented by senders that can skip validating
// records the gateway has just validated against limits
// (*player.Producer does).
type validatedSender interface {
	SendSyncValidated(ctx context.Context, recs []schemas.Record, limits schemas.Limits) []error
}

// readier is implemented by senders that can tell whether Kafka takes
// writes now (*player.Producer does); /readyz asks it.
type readier interface {
	Ready(ctx context.Context) error
}

// Defaults of [Config].
const (
	DefaultAddr          = "127.0.0.1:8088"
	DefaultMaxBodyBytes  = 1 << 20
	DefaultMaxEvents     = 500
	DefaultClockSkew     = 300 * time.Second
	DefaultNonceCapacity = 1 << 20
	DefaultSessionRate   = 5
	DefaultSessionBurst  = 20
	DefaultIPRate        = 100
	DefaultIPBurst       = 200
	DefaultMaxInFlight   = 128
	DefaultKafkaTimeout  = 10 * time.Second
	DefaultDrainTimeout  = 30 * time.Second
)

// maxTrackedClients bounds the token buckets kept per sessions and per
// networks.
const maxTrackedClients = 1 << 17

// Config configures a [Gateway]. Zero fields take the defaults that their
// documentation states, except Secret, which is required.
type Config struct {
	// Addr is the listen address of [Gateway.Run]. Default 127.0.0.1:8088.
	Addr string
	// Secret is the server secret that session keys derive from (see
	// [SessionKey]); at least 32 bytes. Required.
	Secret []byte
	// IPHashKey keys the hash in [ClientNet]. Default: derived from Secret
	// (HMAC-SHA256(Secret, "atlas-ip-v1")). Set it on its own to rotate
	// the session secret without changing every network's hash.
	IPHashKey []byte
	// MaxBodyBytes bounds a request body. Default 1 MiB.
	MaxBodyBytes int64
	// MaxEvents bounds the events of one batch. Default 500.
	MaxEvents int
	// Limits are the per-event validation limits. Zero fields take the
	// defaults of [schemas.Limits].
	Limits schemas.Limits
	// ClockSkew is how far a request's timestamp may be from the server
	// clock, either way; nonces are remembered for as long. Default 300 s.
	ClockSkew time.Duration
	// NonceCapacity bounds the remembered nonces (about 60 bytes each);
	// when it is reached, requests get 503 until old nonces expire.
	// Default 1,048,576.
	NonceCapacity int
	// SessionRate and SessionBurst are the token bucket of each session,
	// in requests per second. Default 5/s, burst 20. rate.Inf disables it.
	SessionRate  rate.Limit
	SessionBurst int
	// IPRate and IPBurst are the token bucket of each client address (an
	// IPv6 client's /64), checked before the body is read. Default
	// 100/s, burst 200. rate.Inf disables it.
	IPRate  rate.Limit
	IPBurst int
	// MaxInFlight caps the requests being handled at once; more get 503.
	// With MaxBodyBytes it bounds the gateway's memory (about 3 ×
	// MaxInFlight × MaxBodyBytes at worst). Default 128.
	MaxInFlight int
	// TrustedProxies are the networks whose X-Forwarded-For is believed.
	// Default none: the client is the TCP peer.
	TrustedProxies []netip.Prefix
	// KafkaTimeout bounds the wait for Kafka's acknowledgements; past it
	// the request gets 503. Default 10 s.
	KafkaTimeout time.Duration
	// DrainTimeout bounds how long Run waits for requests in flight when
	// its context ends. Default 30 s.
	DrainTimeout time.Duration
	// Registerer and Gatherer hold the gateway's metrics and serve
	// /metrics. Default prometheus.DefaultRegisterer and DefaultGatherer.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// Logger receives the gateway's log lines; they never contain client
	// addresses. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock; default time.Now. Tests move it.
	Now func() time.Time
}

const ipKeyLabel = "atlas-ip-v1"

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if len(c.IPHashKey) == 0 && len(c.Secret) > 0 {
		mac := hmac.New(sha256.New, c.Secret)
		mac.Write([]byte(ipKeyLabel))
		c.IPHashKey = mac.Sum(nil)
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxEvents == 0 {
		c.MaxEvents = DefaultMaxEvents
	}
	if c.ClockSkew == 0 {
		c.ClockSkew = DefaultClockSkew
	}
	if c.NonceCapacity == 0 {
		c.NonceCapacity = DefaultNonceCapacity
	}
	if c.SessionRate == 0 {
		c.SessionRate = DefaultSessionRate
	}
	if c.SessionBurst == 0 {
		c.SessionBurst = DefaultSessionBurst
	}
	if c.IPRate == 0 {
		c.IPRate = DefaultIPRate
	}
	if c.IPBurst == 0 {
		c.IPBurst = DefaultIPBurst
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.KafkaTimeout == 0 {
		c.KafkaTimeout = DefaultKafkaTimeout
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.DefaultRegisterer
	}
	if c.Gatherer == nil {
		c.Gatherer = prometheus.DefaultGatherer
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// MinSecretBytes is the shortest server secret accepted.
const MinSecretBytes = 32

// Validate reports settings that cannot work, naming the setting.
func (c Config) Validate() error {
	switch {
	case len(c.Secret) == 0:
		return errors.New("invalid ingest config: the server secret is missing")
	case len(c.Secret) < MinSecretBytes:
		return fmt.Errorf("invalid ingest config: the server secret is %d bytes; it must be at least %d", len(c.Secret), MinSecretBytes)
	case c.IPHashKey != nil && len(c.IPHashKey) < 16:
		return fmt.Errorf("invalid ingest config: the IP hash key is %d bytes; it must be at least 16", len(c.IPHashKey))
	case c.MaxBodyBytes < 0:
		return fmt.Errorf("invalid ingest config: MaxBodyBytes %d is negative", c.MaxBodyBytes)
	case c.MaxEvents < 0:
		return fmt.Errorf("invalid ingest config: MaxEvents %d is negative", c.MaxEvents)
	case c.ClockSkew < 0 || c.ClockSkew%time.Second != 0:
		return fmt.Errorf("invalid ingest config: ClockSkew %s must be whole seconds, not negative", c.ClockSkew)
	case c.NonceCapacity < 0:
		return fmt.Errorf("invalid ingest config: NonceCapacity %d is negative", c.NonceCapacity)
	case c.SessionRate < 0 || c.IPRate < 0:
		return errors.New("invalid ingest config: rates must not be negative")
	case c.SessionBurst < 0 || c.IPBurst < 0:
		return errors.New("invalid ingest config: bursts must not be negative")
	case c.MaxInFlight < 0:
		return fmt.Errorf("invalid ingest config: MaxInFlight %d is negative", c.MaxInFlight)
	case c.KafkaTimeout < 0 || c.DrainTimeout < 0:
		return errors.New("invalid ingest config: timeouts must not be negative")
	}
	if _, _, err := net.SplitHostPort(c.withDefaults().Addr); err != nil {
		return fmt.Errorf("invalid ingest config: listen address %q: want host:port", c.Addr)
	}
	return c.Limits.Validate()
}

// Gateway is the HTTP ingest gateway. It is an http.Handler, safe for
// concurrent use; [Gateway.Run] serves it.
type Gateway struct {
	cfg      Config
	sender   Sender
	verifier *verifier
	nonces   *nonceStore
	ips      *limiterSet[netip.Addr]
	sessions *limiterSet[string]
	ipHash   *ipHasher
	inFlight chan struct{}
	m        *gatewayMetrics
	mux      *http.ServeMux
	decoders sync.Pool // of *schemas.Decoder
	bodies   sync.Pool // of *bytes.Buffer
	scratch  sync.Pool // of *scratch
	draining atomic.Bool

	readyMu   sync.Mutex
	readyAt   time.Time
	readyErr  error
	readyTTL  time.Duration
	readyWait time.Duration
}

// New returns a Gateway that hands accepted events to sender. The caller
// owns sender: close it after [Gateway.Run] returns, so that it flushes.
func New(cfg Config, sender Sender) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if sender == nil {
		return nil, errors.New("invalid ingest config: no sender")
	}
	cfg = cfg.withDefaults()
	m, err := newGatewayMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	g := &Gateway{
		cfg:       cfg,
		sender:    sender,
		verifier:  newVerifier(cfg.Secret, cfg.ClockSkew),
		nonces:    newNonceStore(cfg.NonceCapacity),
		ips:       newLimiterSet[netip.Addr](cfg.IPRate, cfg.IPBurst, maxTrackedClients),
		sessions:  newLimiterSet[string](cfg.SessionRate, cfg.SessionBurst, maxTrackedClients),
		ipHash:    newIPHasher(cfg.IPHashKey),
		inFlight:  make(chan struct{}, cfg.MaxInFlight),
		m:         m,
		readyTTL:  time.Second,
		readyWait: 2 * time.Second,
	}
	g.decoders.New = func() any { return schemas.NewDecoder(cfg.Limits) }
	g.bodies.New = func() any { return new(bytes.Buffer) }
	g.scratch.New = func() any { return &scratch{ids: make(map[string]int)} }
	g.mux = http.NewServeMux()
	g.mux.HandleFunc("POST /v1/events", g.events)
	g.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	g.mux.HandleFunc("GET /readyz", g.ready)
	g.mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
	return g, nil
}

// ServeHTTP serves POST /v1/events, GET /healthz, /readyz and /metrics.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) { g.mux.ServeHTTP(w, r) }

// Run listens on [Config.Addr] and serves until ctx ends, then drains: see
// [Gateway.Serve].
func (g *Gateway) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", g.cfg.Addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", g.cfg.Addr, err)
	}
	return g.Serve(ctx, ln)
}

// Serve serves on ln (and closes it) until ctx ends. Then /readyz turns
// 503, the listener closes, and Serve waits up to [Config.DrainTimeout] for
// the requests in flight, each of which waits for Kafka's answer about its
// events. It returns nil after a clean drain, or an error if serving failed
// or the drain timed out (the remaining connections are then closed).
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           g,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      g.cfg.KafkaTimeout + 40*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          log.New(&redactingWriter{logger: g.cfg.Logger}, "", 0),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	g.cfg.Logger.Info("ingest gateway listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("cannot serve HTTP on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	g.draining.Store(true)
	start := time.Now()
	g.cfg.Logger.Info("ingest gateway draining", "in_flight", len(g.inFlight))
	dctx, cancel := context.WithTimeout(context.Background(), g.cfg.DrainTimeout)
	defer cancel()
	err := srv.Shutdown(dctx)
	<-errc
	if err != nil {
		srv.Close()
		return fmt.Errorf("cannot drain the ingest gateway within %s: %w", g.cfg.DrainTimeout, err)
	}
	g.cfg.Logger.Info("ingest gateway drained", "took", time.Since(start).Round(time.Millisecond).String())
	return nil
}

// ready answers /readyz: 503 while draining or when the sender says that
// Kafka does not take writes. The answer is cached for a second, so that
// probes cannot make the gateway hammer Kafka, and the cause goes to the
// log rather than to the (possibly public) answer, which would name
// internal brokers.
func (g *Gateway) ready(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if g.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "draining\n")
		return
	}
	if err := g.readiness(r.Context()); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "not ready: Kafka does not take writes (the gateway's log says why)\n")
		return
	}
	io.WriteString(w, "ready\n")
}

func (g *Gateway) readiness(ctx context.Context) error {
	rd, ok := g.sender.(readier)
	if !ok {
		return nil
	}
	g.readyMu.Lock()
	defer g.readyMu.Unlock()
	if now := time.Now(); now.Sub(g.readyAt) >= g.readyTTL {
		ctx, cancel := context.WithTimeout(ctx, g.readyWait)
		err := rd.Ready(ctx)
		cancel()
		if err != nil && (g.readyErr == nil || err.Error() != g.readyErr.Error()) {
			g.cfg.Logger.Warn("not ready: Kafka does not take writes", "err", err)
		} else if err == nil && g.readyErr != nil {
			g.cfg.Logger.Info("ready: Kafka takes writes again")
		}
		g.readyErr, g.readyAt = err, time.Now()
	}
	return g.readyErr
}

// Response is the body of a 200 answer to POST /v1/events: one status per
// event of the batch, in order.
type Response struct {
	Accepted int           `json:"accepted"`
	Rejected int           `json:"rejected"`
	Events   []EventStatus `json:"events"`
}

// Event statuses.
const (
	StatusAccepted = "accepted"
	StatusRejected = "rejected"
)

// EventStatus is the outcome of one event. An accepted event is
// acknowledged by Kafka; a rejected one was not sent, and Field (the wire
// key, when one is to blame) and Reason say why. Resending a rejected event
// unchanged gets the same answer.
type EventStatus struct {
	Index  int    `json:"index"`
	ID     string `json:"id,omitempty"`
	Status string `json:"status"`
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// ErrorResponse is the body of every answer other than 200: a short code
// and a sentence for the developer of the client.
type ErrorResponse struct {
	Error  string `json:"error"`
	Reason string `json:"reason"`
}

// Error codes of ErrorResponse, with their HTTP statuses.
const (
	CodeUnauthorized     = "unauthorized"      // 401
	CodeTooLarge         = "too_large"         // 413
	CodeMalformed        = "malformed"         // 400
	CodeUnsupportedMedia = "unsupported_media" // 415
	CodeRateLimited      = "rate_limited"      // 429
	CodeBusy             = "busy"              // 503
	CodeUnavailable      = "unavailable"       // 503
)

// kafkaRetryAfter is what a 503 for Kafka asks clients to wait.
const kafkaRetryAfter = 5 * time.Second

func (g *Gateway) events(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	g.m.inFlight.Inc()
	defer g.m.inFlight.Dec()
	code, reason := g.handleEvents(w, r)
	g.m.request(code, reason).Inc()
	g.m.duration.Observe(time.Since(start).Seconds())
}

// fail writes an error answer and returns what events records in metrics.
func (g *Gateway) fail(w http.ResponseWriter, status int, code, reason string, retryAfter time.Duration) (int, string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	if retryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(int64((retryAfter+time.Second-1)/time.Second), 10))
	}
	if status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Atlas-HMAC-SHA256 realm="atlas-ingest"`)
	}
	w.WriteHeader(status)
	b, _ := json.Marshal(ErrorResponse{Error: code, Reason: reason})
	w.Write(append(b, '\n'))
	return status, code
}

func (g *Gateway) handleEvents(w http.ResponseWriter, r *http.Request) (int, string) {
	now := g.cfg.Now()
	addr, addrOK := clientAddr(r, g.cfg.TrustedProxies)
	if addrOK {
		if ok, wait := g.ips.allow(limitKey(addr), now); !ok {
			return g.fail(w, http.StatusTooManyRequests, CodeRateLimited, fmt.Sprintf("too many requests from your network; retry after %s", ceilSeconds(wait)), wait)
		}
	}
	select {
	case g.inFlight <- struct{}{}:
		defer func() { <-g.inFlight }()
	default:
		return g.fail(w, http.StatusServiceUnavailable, CodeBusy, fmt.Sprintf("the gateway is handling %d requests, its limit; retry shortly", cap(g.inFlight)), time.Second)
	}

	isJSON, err := bodyFormat(r.Header.Get("Content-Type"))
	if err != nil {
		return g.fail(w, http.StatusUnsupportedMediaType, CodeUnsupportedMedia, err.Error(), 0)
	}

	buf := g.bodies.Get().(*bytes.Buffer)
	defer g.putBody(buf)
	if status, reason := g.readBody(w, r, buf); status != 0 {
		code := CodeMalformed
		if status == http.StatusRequestEntityTooLarge {
			code = CodeTooLarge
		}
		return g.fail(w, status, code, reason, 0)
	}
	body := buf.Bytes()

	creds, err := g.verifier.verify(r.Header, body, now)
	if err != nil {
		return g.fail(w, http.StatusUnauthorized, CodeUnauthorized, err.Error(), 0)
	}
	switch g.nonces.use(creds.session, creds.nonce, creds.ts+int64(g.cfg.ClockSkew/time.Second), now.Unix()) {
	case nonceReplayed:
		return g.fail(w, http.StatusUnauthorized, CodeUnauthorized, fmt.Sprintf("the nonce was already used by this session within the last %d s: a replayed request (sign every request, retries too, with a new nonce)", int64(g.cfg.ClockSkew/time.Second)), 0)
	case nonceStoreFull:
		g.cfg.Logger.Warn("replay protection is at capacity; refusing requests until nonces expire", "capacity", g.cfg.NonceCapacity)
		return g.fail(w, http.StatusServiceUnavailable, CodeBusy, "the gateway cannot remember more nonces right now; retry shortly", 10*time.Second)
	}
	if ok, wait := g.sessions.allow(creds.session, now); !ok {
		return g.fail(w, http.StatusTooManyRequests, CodeRateLimited, fmt.Sprintf("too many requests in this session; retry after %s", ceilSeconds(wait)), wait)
	}

	sc := g.scratch.Get().(*scratch)
	defer g.putScratch(sc)
	var items []item
	if isJSON {
		items, err = splitJSON(body, g.cfg.MaxEvents, sc.items[:0])
	} else {
		items, err = splitMsgpack(body, g.cfg.MaxEvents, sc.items[:0])
	}
	sc.items = items
	var re *requestError
	if errors.As(err, &re) {
		code := CodeMalformed
		if re.status == http.StatusRequestEntityTooLarge {
			code = CodeTooLarge
		}
		return g.fail(w, re.status, code, re.reason, 0)
	} else if err != nil {
		panic("BUG: ingest: batch splitting returned " + err.Error())
	}
	if len(items) == 0 {
		return g.fail(w, http.StatusBadRequest, CodeMalformed, "the batch has no events", 0)
	}

	clientNet := ""
	if addrOK {
		clientNet = g.ipHash.clientNet(addr)
	}
	sc.statuses = slices.Grow(sc.statuses[:0], len(items))[:len(items)]
	resp := Response{Events: sc.statuses}
	recs, positions := g.prepare(sc, isJSON, creds.session, clientNet, now)

	if len(recs) > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), g.cfg.KafkaTimeout)
		var errs []error
		if vs, ok := g.sender.(validatedSender); ok {
			errs = vs.SendSyncValidated(ctx, recs, g.cfg.Limits) // prepare validated them
		} else {
			errs = g.sender.SendSync(ctx, recs)
		}
		cancel()
		var unavailable error
		for j, err := range errs {
			st := &resp.Events[positions[j]]
			if err == nil {
				st.Status = StatusAccepted
			} else if ve := asValidationError(err); ve != nil {
				reject(st, ve.Field, ve.Reason)
			} else {
				unavailable = err
			}
		}
		if unavailable != nil {
			if r.Context().Err() != nil {
				// The client went away; its events may still be written.
				g.cfg.Logger.Info("client disconnected before Kafka acknowledged its events", "events", len(recs))
			} else {
				g.cfg.Logger.Warn("events not acknowledged by Kafka; answering 503", "events", len(recs), "err", unavailable)
			}
			return g.fail(w, http.StatusServiceUnavailable, CodeUnavailable, "Kafka did not acknowledge every event of the batch; retry the whole batch later, signed again (events that were written twice are deduplicated by id)", kafkaRetryAfter)
		}
	}
	for i := range resp.Events {
		if resp.Events[i].Status == StatusAccepted {
			resp.Accepted++
		} else {
			resp.Rejected++
		}
	}
	g.m.accepted.Add(float64(resp.Accepted))
	g.m.rejected.Add(float64(resp.Rejected))

	out := g.bodies.Get().(*bytes.Buffer)
	defer g.putBody(out)
	out.Reset()
	appendResponse(out, &resp)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(out.Len()))
	w.WriteHeader(http.StatusOK)
	w.Write(out.Bytes())
	return http.StatusOK, "ok"
}

// asValidationError returns err's *schemas.ValidationError, or nil. (Out
// of the loop over results, so that the target does not escape to the heap
// for every acknowledged event.)
func asValidationError(err error) *schemas.ValidationError {
	var ve *schemas.ValidationError
	if errors.As(err, &ve) {
		return ve
	}
	return nil
}

// maxPooledBody keeps one huge request from pinning its buffer in the pool.
const maxPooledBody = 256 << 10

func (g *Gateway) putBody(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBody {
		b.Reset()
		g.bodies.Put(b)
	}
}

// readBody reads at most MaxBodyBytes into buf; a non-zero status refuses
// the request.
func (g *Gateway) readBody(w http.ResponseWriter, r *http.Request, buf *bytes.Buffer) (int, string) {
	limit := g.cfg.MaxBodyBytes
	tooLarge := func() string {
		return fmt.Sprintf("the body is over the limit of %d bytes; send smaller batches", limit)
	}
	if r.ContentLength > limit {
		return http.StatusRequestEntityTooLarge, tooLarge()
	}
	buf.Reset()
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, tooLarge()
	case err != nil:
		return http.StatusBadRequest, fmt.Sprintf("cannot read the body: %v", err)
	}
	return 0, ""
}

// bodyFormat reads the Content-Type: JSON or msgpack.
func bodyFormat(contentType string) (isJSON bool, err error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err == nil {
		switch mt {
		case "application/msgpack", "application/x-msgpack", "application/vnd.msgpack":
			return false, nil
		case "application/json":
			return true, nil
		}
	}
	return false, fmt.Errorf("the Content-Type %q is not supported; send application/msgpack or application/json", truncate(contentType))
}

// scratch is the working memory of one request, pooled: the batch's
// items, its records (in two arrays, so that a batch costs no allocation
// per event), the records to send with their positions, the statuses of
// the answer and the ids seen. Pooling it took the gateway's own
// allocations from 72 to 29 kB per request of 100 events
// (BenchmarkGatewayBatchOf100); the records alone were 30 kB a request,
// 14 % of the bytes the whole process allocated per gateway event, and
// gateway CPU per event at 64 clients went 4.05 -> 3.81 us (bench).
type scratch struct {
	items     []item
	recs      []schemas.Record
	positions []int
	statuses  []EventStatus
	playback  []schemas.Playback
	browse    []schemas.Browse
	ids       map[string]int
}

// maxPooledEvents keeps the scratch of a batch larger than the default
// limit out of the pool, so that a gateway configured for huge batches
// does not pin their records.
const maxPooledEvents = DefaultMaxEvents

// putScratch returns sc to the pool, without the references it holds into
// the request's body. The records and statuses are not cleared: whoever
// takes one overwrites all of it (the decoders do, decodeEvent zeroes a
// record before JSON fills it, prepare sets each status), and clearing
// them cost 1.7 % of the process's CPU at 64 clients.
func (g *Gateway) putScratch(sc *scratch) {
	if cap(sc.items) > maxPooledEvents || cap(sc.playback) > maxPooledEvents || cap(sc.browse) > maxPooledEvents {
		return
	}
	clear(sc.items[:cap(sc.items)])
	clear(sc.recs[:cap(sc.recs)])
	clear(sc.ids)
	sc.items, sc.recs, sc.positions, sc.statuses = sc.items[:0], sc.recs[:0], sc.positions[:0], sc.statuses[:0]
	sc.playback, sc.browse = sc.playback[:0], sc.browse[:0]
	g.scratch.Put(sc)
}

// prepare decodes, stamps and validates each item of sc, fills sc's
// statuses, and returns the records to send with their positions in the
// batch (both in sc).
func (g *Gateway) prepare(sc *scratch, isJSON bool, session, clientNet string, now time.Time) ([]schemas.Record, []int) {
	dec := g.decoders.Get().(*schemas.Decoder)
	defer g.decoders.Put(dec)
	items, statuses := sc.items, sc.statuses
	recs := slices.Grow(sc.recs[:0], len(items))
	positions := slices.Grow(sc.positions[:0], len(items))
	defer func() { sc.recs, sc.positions = recs, positions }()
	var ids map[string]int
	if len(items) > 1 {
		ids = sc.ids
	}
	sc.sizeRecords()
	receive := now.UnixMilli()
	for i := range items {
		it := &items[i]
		st := &statuses[i]
		*st = EventStatus{Index: i}
		if it.bad {
			reject(st, it.field, it.reason)
			continue
		}
		rec, env, field, reason := decodeEvent(dec, it, isJSON, sc)
		if rec == nil {
			reject(st, field, reason)
			continue
		}
		st.ID = env.EventID
		if len(st.ID) > maxEchoedID {
			st.ID = truncate(st.ID) // invalid anyway; validation says why
		}
		if env.SessionID != session {
			reject(st, "ses", fmt.Sprintf("the event's session %q is not the session %q that signed the request", truncate(env.SessionID), session))
			continue
		}
		env.ReceiveTime = receive
		env.ClientNet = clientNet
		if err := schemas.Validate(rec, g.cfg.Limits, now); err != nil {
			var ve *schemas.ValidationError
			if errors.As(err, &ve) {
				reject(st, ve.Field, ve.Reason)
			} else {
				reject(st, "", err.Error())
			}
			continue
		}
		if ids != nil {
			if prev, dup := ids[env.EventID]; dup {
				reject(st, "id", fmt.Sprintf("the id is also the id of event %d of this batch", prev))
				continue
			}
			ids[env.EventID] = i
		}
		st.Status = StatusAccepted // until Kafka says otherwise
		recs = append(recs, rec)
		positions = append(positions, i)
	}
	return recs, positions
}

// maxEchoedID bounds the ids copied into answers; longer ones are invalid
// and are echoed shortened.
const maxEchoedID = 256

func reject(st *EventStatus, field, reason string) {
	st.Status, st.Field, st.Reason = StatusRejected, field, reason
}

// sizeRecords makes room in sc's record arrays for its items before the
// first record is taken, so that the arrays never move while records point
// into them.
func (sc *scratch) sizeRecords() {
	var np, nb int
	for i := range sc.items {
		switch schemas.Schema(sc.items[i].schema) {
		case schemas.SchemaPlayback:
			np++
		case schemas.SchemaBrowse:
			nb++
		}
	}
	sc.playback = slices.Grow(sc.playback[:0], np)
	sc.browse = slices.Grow(sc.browse[:0], nb)
}

// newPlayback takes a record from sc, or allocates one when sc is nil or
// full. A record from sc holds an earlier request's event: the caller
// overwrites all of it.
func (sc *scratch) newPlayback() *schemas.Playback {
	if sc == nil || len(sc.playback) == cap(sc.playback) {
		return new(schemas.Playback)
	}
	sc.playback = sc.playback[:len(sc.playback)+1]
	return &sc.playback[len(sc.playback)-1]
}

// newBrowse is newPlayback for browse records.
func (sc *scratch) newBrowse() *schemas.Browse {
	if sc == nil || len(sc.browse) == cap(sc.browse) {
		return new(schemas.Browse)
	}
	sc.browse = sc.browse[:len(sc.browse)+1]
	return &sc.browse[len(sc.browse)-1]
}

// decodeEvent decodes one event of a schema devices may send, into a
// record from records (nil: a new one). On failure rec is nil and field
// and reason say why.
func decodeEvent(dec *schemas.Decoder, it *item, isJSON bool, records *scratch) (rec schemas.Record, env *schemas.Envelope, field, reason string) {
	s, err := schemas.ParseSchema(it.schema)
	if err != nil {
		return nil, nil, keySchema, err.Error()
	}
	var e *schemas.Envelope
	switch s {
	case schemas.SchemaPlayback:
		p := records.newPlayback()
		rec, e = p, &p.Envelope
		if isJSON {
			*p = schemas.Playback{} // JSON fills only the keys present
			err = json.Unmarshal(it.raw, p)
		} else {
			err = dec.Playback(it.raw, p)
		}
	case schemas.SchemaBrowse:
		b := records.newBrowse()
		rec, e = b, &b.Envelope
		if isJSON {
			*b = schemas.Browse{}
			err = json.Unmarshal(it.raw, b)
		} else {
			err = dec.Browse(it.raw, b)
		}
	default:
		return nil, nil, keySchema, fmt.Sprintf("schema %s is not accepted from devices; send %s or %s", s, schemas.SchemaPlayback, schemas.SchemaBrowse)
	}
	if err == nil {
		return rec, e, "", ""
	}
	var de *schemas.DecodeError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &de):
		return nil, nil, de.Field, de.Reason
	case errors.As(err, &te):
		return nil, nil, jsonField(te.Field), fmt.Sprintf("cannot decode %s event: %s is a JSON %s, want %s", s, jsonField(te.Field), te.Value, te.Type)
	default:
		return nil, nil, "", fmt.Sprintf("cannot decode %s event: %v", s, err)
	}
}

// ceilSeconds formats a wait as whole seconds, rounded up, at least 1.
func ceilSeconds(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10) + " s"
}

// redactingWriter is net/http's error log: its lines can name the peer
// ("http: panic serving 203.0.113.7:5000"), and no raw client address may
// be written anywhere, so addresses are masked before logging.
type redactingWriter struct{ logger *slog.Logger }

var addrPattern = regexp.MustCompile(`\[[0-9A-Fa-f:.%a-zA-Z]*\](:\d+)?|\b\d{1,3}(\.\d{1,3}){3}(:\d+)?\b`)

func (w *redactingWriter) Write(p []byte) (int, error) {
	msg := addrPattern.ReplaceAllLiteral(bytes.TrimRight(p, "\n"), []byte("[address redacted]"))
	w.logger.Warn(string(msg), "source", "net/http")
	return len(p), nil
}
