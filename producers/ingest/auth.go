package ingest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Request headers of the signature scheme.
const (
	HeaderSession   = "X-Atlas-Session"
	HeaderTimestamp = "X-Atlas-Timestamp"
	HeaderNonce     = "X-Atlas-Nonce"
	HeaderSignature = "X-Atlas-Signature"
)

// sessionKeyLabel separates session keys from every other use of the
// server secret.
const sessionKeyLabel = "atlas-session-v1\x00"

// Limits of the authentication headers.
const (
	maxSessionIDBytes = 128
	maxNonceBytes     = 64
)

// SessionKey derives the signing key of one session from the server secret:
// HMAC-SHA256(secret, "atlas-session-v1\x00" + sessionID). The login service
// computes it when it opens a session and hands it to the device; the
// gateway recomputes it for every request, so it stores no keys. A key
// extracted from one device signs for that session only.
func SessionKey(secret []byte, sessionID string) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(sessionKeyLabel))
	mac.Write([]byte(sessionID))
	return mac.Sum(nil)
}

// Sign sets the four authentication headers on req for body, the exact
// bytes req will send: the session id, now as Unix seconds, the nonce (16
// random bytes in hex when nonce is empty), and the hex HMAC-SHA256 under
// key of timestamp + "\n" + nonce + "\n" + body. It does not touch req.Body.
// A nonce must not repeat within the session while its timestamp is in the
// gateway's window (±300 s by default).
func Sign(req *http.Request, body []byte, sessionID string, key []byte, now time.Time, nonce string) {
	if nonce == "" {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			panic("BUG: crypto/rand failed: " + err.Error())
		}
		nonce = hex.EncodeToString(b[:])
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	req.Header.Set(HeaderSession, sessionID)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderNonce, nonce)
	req.Header.Set(HeaderSignature, hex.EncodeToString(signature(hmac.New(sha256.New, key), ts, nonce, body)))
}

// signature computes the MAC of a request with mac, which is keyed and
// reset.
func signature(mac hash.Hash, ts, nonce string, body []byte) []byte {
	mac.Write([]byte(ts))
	mac.Write([]byte{'\n'})
	mac.Write([]byte(nonce))
	mac.Write([]byte{'\n'})
	mac.Write(body)
	return mac.Sum(nil)
}

// authError is a 401 with the reason the client reads.
type authError struct{ reason string }

func (e *authError) Error() string { return e.reason }

func unauthorized(format string, args ...any) error {
	return &authError{reason: fmt.Sprintf(format, args...)}
}

// verifier checks signatures. It keeps an HMAC of the server secret in a
// pool, so deriving a session key costs one HMAC, not a key schedule.
type verifier struct {
	secret []byte
	skew   time.Duration
	macs   sync.Pool // of hash.Hash keyed with secret
}

func newVerifier(secret []byte, skew time.Duration) *verifier {
	v := &verifier{secret: secret, skew: skew}
	v.macs.New = func() any { return hmac.New(sha256.New, v.secret) }
	return v
}

// credentials are the parsed authentication headers of a request.
type credentials struct {
	session string
	ts      int64
	nonce   string
}

// verify checks the headers and the signature of body at now. Errors are
// *authError.
func (v *verifier) verify(h http.Header, body []byte, now time.Time) (credentials, error) {
	var c credentials
	sig := h.Get(HeaderSignature)
	c.session = h.Get(HeaderSession)
	tsText := h.Get(HeaderTimestamp)
	c.nonce = h.Get(HeaderNonce)
	switch {
	case sig == "" && c.session == "" && tsText == "" && c.nonce == "":
		return c, unauthorized("the request is not signed: it needs the headers %s, %s, %s and %s", HeaderSession, HeaderTimestamp, HeaderNonce, HeaderSignature)
	case sig == "":
		return c, unauthorized("the %s header is missing", HeaderSignature)
	case c.session == "":
		return c, unauthorized("the %s header is missing", HeaderSession)
	case tsText == "":
		return c, unauthorized("the %s header is missing", HeaderTimestamp)
	case c.nonce == "":
		return c, unauthorized("the %s header is missing", HeaderNonce)
	}
	if len(c.session) > maxSessionIDBytes || !printable(c.session) {
		return c, unauthorized("the %s header must be 1 to %d printable ASCII characters", HeaderSession, maxSessionIDBytes)
	}
	if len(c.nonce) > maxNonceBytes || !printable(c.nonce) {
		return c, unauthorized("the %s header must be 1 to %d printable ASCII characters", HeaderNonce, maxNonceBytes)
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return c, unauthorized("the %s header is not Unix seconds", HeaderTimestamp)
	}
	c.ts = ts
	// Clamped, so that the difference cannot overflow whatever the header
	// says.
	nowS, win := now.Unix(), int64(v.skew/time.Second)
	clamped := min(max(ts, nowS-1e12), nowS+1e12)
	if d := nowS - clamped; d > win {
		return c, unauthorized("the timestamp is %d s behind the server clock, outside the allowed ±%d s", d, win)
	} else if -d > win {
		return c, unauthorized("the timestamp is %d s ahead of the server clock, outside the allowed ±%d s", -d, win)
	}
	var got [sha256.Size]byte
	if len(sig) != 2*sha256.Size {
		return c, unauthorized("the %s header must be %d hex characters", HeaderSignature, 2*sha256.Size)
	}
	if _, err := hex.Decode(got[:], []byte(sig)); err != nil {
		return c, unauthorized("the %s header is not hex", HeaderSignature)
	}
	master := v.macs.Get().(hash.Hash)
	master.Reset()
	master.Write([]byte(sessionKeyLabel))
	master.Write([]byte(c.session))
	var key [sha256.Size]byte
	master.Sum(key[:0])
	v.macs.Put(master)
	want := signature(hmac.New(sha256.New, key[:]), tsText, c.nonce, body)
	if !hmac.Equal(got[:], want) {
		return c, unauthorized("the signature does not match the session, timestamp, nonce and body")
	}
	return c, nil
}

// printable reports whether s is non-empty printable ASCII without spaces.
func printable(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
