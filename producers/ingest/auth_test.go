package ingest

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestSessionKeysAreDerivedPerSessionFromTheSecret(t *testing.T) {
	a := SessionKey(testSecret, "session-a")
	if !bytes.Equal(a, SessionKey(testSecret, "session-a")) {
		t.Fatal("SessionKey is not deterministic")
	}
	if bytes.Equal(a, SessionKey(testSecret, "session-b")) {
		t.Fatal("two sessions got the same key")
	}
	if bytes.Equal(a, SessionKey([]byte("another-secret-of-at-least-32-bytes!!"), "session-a")) {
		t.Fatal("two secrets gave the same session key")
	}
	if len(a) != 32 {
		t.Fatalf("session key is %d bytes, want 32", len(a))
	}
}

func TestVerify(t *testing.T) {
	v := newVerifier(testSecret, 300*time.Second)
	now := time.Unix(1_750_000_000, 0)
	body := []byte("the body")
	key := SessionKey(testSecret, "s1")
	signed := func(mutate func(h http.Header)) http.Header {
		req, _ := http.NewRequest(http.MethodPost, "/", nil)
		Sign(req, body, "s1", key, now, "nonce-1")
		if mutate != nil {
			mutate(req.Header)
		}
		return req.Header
	}
	at := func(ts time.Time) http.Header {
		req, _ := http.NewRequest(http.MethodPost, "/", nil)
		Sign(req, body, "s1", key, ts, "nonce-1")
		return req.Header
	}
	check := func(h http.Header, b []byte, wantReason string) {
		t.Helper()
		c, err := v.verify(h, b, now)
		if wantReason == "" {
			if err != nil {
				t.Fatalf("verify: %v, want success", err)
			}
			if c.session != "s1" || c.nonce != "nonce-1" {
				t.Fatalf("credentials %+v", c)
			}
			return
		}
		var ae *authError
		if !errors.As(err, &ae) {
			t.Fatalf("verify: %v, want an authError containing %q", err, wantReason)
		}
		if !strings.Contains(err.Error(), wantReason) {
			t.Fatalf("verify: %q, want it to contain %q", err, wantReason)
		}
	}
	check(signed(nil), body, "")
	check(at(now.Add(-300*time.Second)), body, "")
	check(at(now.Add(300*time.Second)), body, "")
	check(http.Header{}, body, "not signed")
	check(signed(nil), []byte("the body!"), "signature does not match")
	check(signed(func(h http.Header) { h.Set(HeaderSession, "s2") }), body, "signature does not match")
	check(signed(func(h http.Header) { h.Set(HeaderNonce, "nonce-2") }), body, "signature does not match")
	check(signed(func(h http.Header) { h.Set(HeaderTimestamp, strconv.FormatInt(now.Unix()-1, 10)) }), body, "signature does not match")
	check(signed(func(h http.Header) { h.Del(HeaderSignature) }), body, HeaderSignature+" header is missing")
	check(signed(func(h http.Header) { h.Del(HeaderSession) }), body, HeaderSession+" header is missing")
	check(signed(func(h http.Header) { h.Del(HeaderTimestamp) }), body, HeaderTimestamp+" header is missing")
	check(signed(func(h http.Header) { h.Del(HeaderNonce) }), body, HeaderNonce+" header is missing")
	check(signed(func(h http.Header) { h.Set(HeaderTimestamp, "yesterday") }), body, "not Unix seconds")
	check(signed(func(h http.Header) { h.Set(HeaderTimestamp, "-9223372036854775808") }), body, "behind the server clock")
	check(signed(func(h http.Header) { h.Set(HeaderTimestamp, "9223372036854775807") }), body, "ahead of the server clock")
	check(signed(func(h http.Header) { h.Set(HeaderSignature, "zz") }), body, "must be 64 hex characters")
	check(signed(func(h http.Header) { h.Set(HeaderSignature, strings.Repeat("zz", 32)) }), body, "not hex")
	check(signed(func(h http.Header) { h.Set(HeaderNonce, "has space") }), body, "printable ASCII")
	check(signed(func(h http.Header) { h.Set(HeaderSession, strings.Repeat("s", 129)) }), body, "printable ASCII")
	check(at(now.Add(-301*time.Second)), body, "301 s behind the server clock, outside the allowed ±300 s")
	check(at(now.Add(301*time.Second)), body, "301 s ahead of the server clock")
	// A key extracted from one session does not sign for another.
	req, _ := http.NewRequest(http.MethodPost, "/", nil)
	Sign(req, body, "s2", key, now, "n")
	check(req.Header, body, "signature does not match")
}

func TestSignPicksAFreshNonceWhenNoneIsGiven(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		req, _ := http.NewRequest(http.MethodPost, "/", nil)
		Sign(req, nil, "s", []byte("k"), time.Now(), "")
		n := req.Header.Get(HeaderNonce)
		if len(n) != 32 || seen[n] {
			t.Fatalf("nonce %q: want 32 hex characters, never repeated", n)
		}
		seen[n] = true
	}
}

func TestNonceStore(t *testing.T) {
	s := newNonceStore(3)
	check := func(session, nonce string, expires, now int64, want nonceResult) {
		t.Helper()
		if got := s.use(session, nonce, expires, now); got != want {
			t.Fatalf("use(%q, %q, expires %d, now %d) = %d, want %d", session, nonce, expires, now, got, want)
		}
	}
	check("s1", "n1", 400, 100, nonceFresh)
	check("s1", "n1", 400, 100, nonceReplayed)
	check("s1", "n1", 400, 400, nonceReplayed) // still inside the window at its last second
	check("s2", "n1", 400, 100, nonceFresh)    // nonces are per session
	check("s1", "n2", 500, 100, nonceFresh)
	check("s1", "n3", 500, 100, nonceStoreFull) // capacity 3: refuse rather than forget
	check("s1", "n1", 900, 401, nonceFresh)     // s1/n1 and s2/n1 expired at 400
	check("s1", "n3", 900, 401, nonceFresh)
	if got := s.size(); got != 3 {
		t.Fatalf("size %d after expiry, want 3", got)
	}
	check("s1", "n4", 900, 401, nonceStoreFull)
	check("s1", "n4", 1000, 501, nonceFresh) // s1/n2 expired at 500
}
