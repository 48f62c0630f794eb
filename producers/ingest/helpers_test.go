package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atlas-stream/atlas/schemas"
)

// testSecret is the server secret of the tests' gateways.
var testSecret = []byte("test-secret-of-at-least-32-bytes-0123456789")

// playback returns a valid playback event of a session.
func playback(id, session string, now time.Time) *schemas.Playback {
	return &schemas.Playback{
		Envelope: schemas.Envelope{
			EventID: id, EventTime: now.Add(-time.Second).UnixMilli(),
			AccountID: "acc-1", ProfileID: "pro-" + id, DeviceID: "dev-1", SessionID: session,
			Country: "DE", DeviceType: schemas.DeviceTV, AppVersion: "1.2.3",
		},
		Kind: schemas.PlayStart, TitleID: "title-1", DurationMs: 3_600_000, CDN: "cdn-a", ISP: "isp-b",
	}
}

// browse returns a valid browse event of a session.
func browse(id, session string, now time.Time) *schemas.Browse {
	return &schemas.Browse{
		Envelope: schemas.Envelope{
			EventID: id, EventTime: now.Add(-time.Second).UnixMilli(),
			AccountID: "acc-1", ProfileID: "pro-" + id, DeviceID: "dev-1", SessionID: session,
			Country: "DE", DeviceType: schemas.DeviceWeb,
		},
		Kind: schemas.BrowseImpression, TitleID: "title-2", Row: "trending", Rank: 3,
	}
}

// events returns n valid events of a session with ids prefix-0…, playback
// and browse alternating.
func events(prefix, session string, n int, now time.Time) []schemas.Record {
	recs := make([]schemas.Record, n)
	for i := range recs {
		id := fmt.Sprintf("%s-%d", prefix, i)
		if i%2 == 0 {
			recs[i] = playback(id, session, now)
		} else {
			recs[i] = browse(id, session, now)
		}
	}
	return recs
}

func mustBatch(t testing.TB, recs []schemas.Record) []byte {
	t.Helper()
	b, err := EncodeBatch(nil, recs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustBatchJSON(t testing.TB, recs []schemas.Record) []byte {
	t.Helper()
	b, err := EncodeBatchJSON(recs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// client sends signed batches to a gateway, as a device would.
type client struct {
	url     string
	session string
	key     []byte
	http    *http.Client
	// forwardedFor, when set, is sent as X-Forwarded-For.
	forwardedFor string
}

func newClient(url, session string) *client {
	return &client{url: url, session: session, key: SessionKey(testSecret, session), http: &http.Client{Timeout: 60 * time.Second}}
}

// answer is what the gateway said.
type answer struct {
	status     int
	retryAfter string
	body       []byte
	resp       Response
	err        ErrorResponse
}

func (a answer) String() string {
	return fmt.Sprintf("%d %s", a.status, strings.TrimSpace(string(a.body)))
}

// request builds a request; sign, when not nil, signs it.
func (c *client) request(t testing.TB, contentType string, body []byte, sign func(*http.Request, []byte)) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, c.url+"/v1/events", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if c.forwardedFor != "" {
		req.Header.Set("X-Forwarded-For", c.forwardedFor)
	}
	if sign != nil {
		sign(req, body)
	}
	return req
}

// signNow signs with the client's session key, now and a fresh nonce.
func (c *client) signNow(req *http.Request, body []byte) {
	Sign(req, body, c.session, c.key, time.Now(), "")
}

func (c *client) do(t testing.TB, req *http.Request) answer {
	t.Helper()
	res, err := c.http.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", req.URL, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := answer{status: res.StatusCode, retryAfter: res.Header.Get("Retry-After"), body: body}
	if res.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &a.resp); err != nil {
			t.Fatalf("200 with a body that is not a Response: %v\n%s", err, body)
		}
	} else if err := json.Unmarshal(body, &a.err); err != nil {
		t.Fatalf("%d with a body that is not an ErrorResponse: %v\n%s", res.StatusCode, err, body)
	}
	return a
}

// send posts recs as a signed msgpack batch.
func (c *client) send(t testing.TB, recs []schemas.Record) answer {
	t.Helper()
	return c.do(t, c.request(t, "application/msgpack", mustBatch(t, recs), c.signNow))
}

// fakeSender records what the gateway hands over and answers with err for
// every record (nil: acknowledged). block, when not nil, holds each call
// until it is closed.
type fakeSender struct {
	mu    sync.Mutex
	recs  []schemas.Record
	err   error
	block chan struct{}
	calls chan struct{}
}

func (f *fakeSender) SendSync(ctx context.Context, recs []schemas.Record) []error {
	if f.calls != nil {
		f.calls <- struct{}{}
	}
	if f.block != nil {
		<-f.block
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	errs := make([]error, len(recs))
	for i := range recs {
		errs[i] = f.err
	}
	if f.err == nil {
		// The gateway reuses its records after SendSync returns.
		for _, rec := range recs {
			switch r := rec.(type) {
			case *schemas.Playback:
				c := *r
				rec = &c
			case *schemas.Browse:
				c := *r
				rec = &c
			}
			f.recs = append(f.recs, rec)
		}
	}
	return errs
}

func (f *fakeSender) received() []schemas.Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]schemas.Record(nil), f.recs...)
}

func newTestLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, nil))
}
