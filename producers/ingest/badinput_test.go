package ingest

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/atlas-stream/atlas/schemas"
	"github.com/atlas-stream/atlas/schemas/badinput"
)

// appendEntry appends one batch entry {"s": schema, "e": raw} with raw as
// it is, so that tests can embed bytes that no encoder would write.
func appendEntry(b []byte, schema string, raw []byte) []byte {
	b = append(b, 0x82, 0xa1, 's')
	b = append(b, 0xd9, byte(len(schema)))
	b = append(b, schema...)
	b = append(b, 0xa1, 'e')
	return append(b, raw...)
}

// The gateway answers every entry of the bad-input catalogue with a 4xx or
// a per-event rejection, each with a reason, and never sends it:
//   - a value that is one complete msgpack value is delimited inside the
//     batch: 200, the bad event rejected with its field and reason, its
//     valid neighbours accepted;
//   - a value that is not (an allocation bomb, a truncation) cannot be
//     delimited: the whole batch gets 400 with what is wrong and where.
func TestTheGatewayRefusesEveryCatalogueEntryWithAReason(t *testing.T) {
	now := time.Now()
	cfg := testConfig()
	cfg.Now = func() time.Time { return now }
	sender := &fakeSender{}
	_, url := serve(t, cfg, sender)
	c := newClient(url, badinput.Session)

	validRaw := func(id string) []byte {
		b, err := schemas.Marshal(badinput.Valid(now, id))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pb := string(schemas.SchemaPlayback)
	batchError := regexp.MustCompile(`^cannot decode msgpack batch: event \d: .*(declares|truncated|remain|nesting deeper).* at byte \d+$`)
	counts := map[string]int{}
	sent := 0
	for i, bc := range badinput.Cases(now) {
		n := strings.Repeat("x", i%3) // distinct ids per request
		body := []byte{0x81, 0xa6}
		body = append(body, "events"...)
		if bc.Delimited() {
			body = append(body, 0x93)
			body = appendEntry(body, pb, validRaw("pro-before"+n))
			body = appendEntry(body, bc.Schema, bc.Value)
			body = appendEntry(body, pb, validRaw("pro-after"+n))
		} else {
			body = append(body, 0x92)
			body = appendEntry(body, pb, validRaw("pro-before"+n))
			body = appendEntry(body, bc.Schema, bc.Value)
		}
		if len(body) > DefaultMaxBodyBytes {
			t.Fatalf("%s: the test batch is over the body limit", bc.Name)
		}
		a := c.do(t, c.request(t, "application/msgpack", body, c.signNow))
		if !bc.Delimited() {
			if a.status != http.StatusBadRequest || a.err.Error != CodeMalformed || !batchError.MatchString(a.err.Reason) {
				t.Errorf("%s: answer %s; want 400 malformed naming what the event declares or lacks and where", bc.Name, a)
			}
			if bc.Field != badinput.AnyField {
				t.Logf("%-66s 400: %s", bc.Name, a.err.Reason)
			}
			counts["400"]++
			continue
		}
		if a.status != http.StatusOK || a.resp.Accepted != 2 || a.resp.Rejected != 1 || len(a.resp.Events) != 3 {
			t.Errorf("%s: answer %s; want 200 with the neighbours accepted and the event rejected", bc.Name, a)
			continue
		}
		st := a.resp.Events[1]
		wantField := bc.Field
		if _, err := schemas.ParseSchema(bc.Schema); err != nil {
			wantField = keySchema // the gateway blames the entry's schema key
		}
		if st.Status != StatusRejected || (st.Field != wantField && wantField != badinput.AnyField) || !bc.Match(st.Reason) {
			t.Errorf("%s: event status %+v; want rejected, field %q, a reason matching %q", bc.Name, st, wantField, bc.Reason)
		}
		if bc.Field != badinput.AnyField {
			t.Logf("%-66s 200, rejected field=%q: %s", bc.Name, st.Field, st.Reason)
		}
		counts["200, rejected"]++
		sent += 2
	}
	if got := len(sender.received()); got != sent {
		t.Fatalf("the sender got %d records, want only the %d valid neighbours", got, sent)
	}
	for _, r := range sender.received() {
		if !strings.HasPrefix(r.Key(), "pro-before") && !strings.HasPrefix(r.Key(), "pro-after") {
			t.Fatalf("a catalogue record reached the sender: %+v", r)
		}
	}
	t.Logf("answers: %v; %d valid neighbours sent, no catalogue record", counts, sent)
}
