package ingest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/atlas-stream/atlas/schemas"
)

// TestSignedRequestChecksHoldUnderConcurrentLoad is issue 9's "the
// signed-request checks hold under load": 16 sessions send at once, each
// mixing valid batches with the attacks the checks exist for — the same
// signed request sent twice at the same moment (a replay racing its
// original), a body changed after signing, a timestamp outside the window,
// and a signature made with another session's key. Every valid batch must
// be accepted whole, every attack refused with 401, exactly one of each
// racing pair accepted, and the sender must get exactly the events of the
// accepted batches.
func TestSignedRequestChecksHoldUnderConcurrentLoad(t *testing.T) {
	sender := &fakeSender{}
	_, url := serve(t, testConfig(), sender)
	const sessions, rounds, perBatch = 16, 25, 5
	httpc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

	type result struct {
		kind   string
		status int
		body   string
	}
	post := func(body []byte, header http.Header) (int, string, error) {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url+"/v1/events", bytes.NewReader(body))
		if err != nil {
			return 0, "", err
		}
		req.Header = header.Clone()
		req.Header.Set("Content-Type", "application/msgpack")
		res, err := httpc.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return res.StatusCode, string(b), err
	}
	signed := func(session string, key []byte, body []byte, at time.Time) http.Header {
		req, _ := http.NewRequest(http.MethodPost, url, nil)
		Sign(req, body, session, key, at, "")
		return req.Header
	}

	var (
		mu       sync.Mutex
		results  []result
		accepted = map[string]bool{} // event ids of batches answered 200
		errs     []error
		wg       sync.WaitGroup
	)
	record := func(kind string, status int, body string, ids []string, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", kind, err))
			return
		}
		results = append(results, result{kind, status, body})
		if status == http.StatusOK {
			for _, id := range ids {
				accepted[id] = true
			}
		}
	}
	ids := func(recs []schemas.Record) []string {
		var out []string
		for _, r := range recs {
			out = append(out, eventID(r))
		}
		return out
	}
	encode := func(recs []schemas.Record) []byte {
		b, err := EncodeBatch(nil, recs)
		if err != nil {
			panic(err)
		}
		return b
	}

	for s := 0; s < sessions; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			session := fmt.Sprintf("load-%d", s)
			key := SessionKey(testSecret, session)
			otherKey := SessionKey(testSecret, fmt.Sprintf("load-%d", (s+1)%sessions))
			for r := 0; r < rounds; r++ {
				now := time.Now()
				prefix := fmt.Sprintf("%s-%d", session, r)

				valid := events(prefix+"-ok", session, perBatch, now)
				body := encode(valid)
				st, b, err := post(body, signed(session, key, body, now))
				record("valid", st, b, ids(valid), err)

				// The same signed request twice at once.
				raced := events(prefix+"-race", session, perBatch, now)
				body = encode(raced)
				h := signed(session, key, body, now)
				var pair sync.WaitGroup
				pairStatus := make([]int, 2)
				for i := range 2 {
					pair.Add(1)
					go func() {
						defer pair.Done()
						st, b, err := post(body, h)
						pairStatus[i] = st
						record("replay", st, b, ids(raced), err)
					}()
				}
				pair.Wait()
				mu.Lock()
				results = append(results, result{kind: "pair", status: pairStatus[0] + pairStatus[1]})
				mu.Unlock()

				tampered := events(prefix+"-tampered", session, perBatch, now)
				body = encode(tampered)
				h = signed(session, key, body, now)
				changed := append([]byte(nil), body...)
				changed[len(changed)-1] ^= 1
				st, b, err = post(changed, h)
				record("tampered", st, b, ids(tampered), err)

				stale := events(prefix+"-stale", session, perBatch, now)
				body = encode(stale)
				st, b, err = post(body, signed(session, key, body, now.Add(-301*time.Second)))
				record("stale", st, b, ids(stale), err)

				foreign := events(prefix+"-foreign", session, perBatch, now)
				body = encode(foreign)
				st, b, err = post(body, signed(session, otherKey, body, now))
				record("foreign key", st, b, ids(foreign), err)
			}
		}(s)
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}

	count := map[string]int{}
	for _, r := range results {
		switch {
		case r.kind == "valid" && r.status != http.StatusOK:
			t.Errorf("a valid batch got %d: %s", r.status, r.body)
		case r.kind == "pair" && r.status != http.StatusOK+http.StatusUnauthorized:
			t.Errorf("a request sent twice at once got statuses summing to %d, want one 200 and one 401", r.status)
		case (r.kind == "tampered" || r.kind == "stale" || r.kind == "foreign key") && r.status != http.StatusUnauthorized:
			t.Errorf("a %s request got %d, want 401: %s", r.kind, r.status, r.body)
		}
		count[fmt.Sprintf("%s %d", r.kind, r.status)]++
	}
	got := map[string]bool{}
	for _, rec := range sender.received() {
		id := eventID(rec)
		if got[id] {
			t.Errorf("event %s reached the sender twice", id)
		}
		got[id] = true
		if !accepted[id] {
			t.Errorf("event %s reached the sender but its batch was not answered 200", id)
		}
	}
	want := sessions * rounds * 2 * perBatch // the valid batches and one of each racing pair
	if len(got) != want || len(accepted) != want {
		t.Errorf("%d events reached the sender and %d were in batches answered 200, want %d", len(got), len(accepted), want)
	}
	t.Logf("%d requests from %d sessions at once: %v; %d events sent, each of an accepted batch", len(results)-sessions*rounds, sessions, count, len(got))
}

func eventID(r schemas.Record) string {
	switch v := r.(type) {
	case *schemas.Playback:
		return v.EventID
	case *schemas.Browse:
		return v.EventID
	}
	panic(fmt.Sprintf("not an event: %T", r))
}
