// Package badinput is the catalogue of broken and hostile records that
// every reader of untrusted bytes in Atlas must survive, with the handling
// each one must get. It is test data, shared so that the decoder
// (package schemas), the consumer engine (a dead letter with the stage, the
// field and the reason as headers) and the ingest gateway (a 400 for the
// batch, or a per-event rejection with the field and the reason) are held
// to the same list; the table of the catalogue is in the doc of package
// schemas, under "Bad input".
//
// Every case is one record value with its atlas-schema header. Cases whose
// value is not one complete msgpack value (allocation bombs, truncations)
// cannot even be delimited inside an ingest batch, so the gateway refuses
// the batch with 400; [Case.Delimited] says which these are.
//
// Events in the catalogue carry no receive time ("rt"), so that every
// reader judges their event time against its own reference: the receive
// time the gateway stamps, the Kafka timestamp in the engine, the now that
// a test passes to schemas.Validate.
package badinput

import (
	"bytes"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"

	"github.com/atlas-stream/atlas/schemas"
)

// Stage is where a case must be stopped.
type Stage string

// Stages, named as the engine's atlas-dlq-stage header names them.
const (
	StageDecode   Stage = "decode"
	StageValidate Stage = "validate"
)

// AnyField in [Case.Field] accepts whichever field was being read when
// the input ended (truncations).
const AnyField = "*"

// Session is the session id of the catalogue's events: a gateway test signs
// its requests with it, so that only the catalogued problem is wrong.
const Session = "ses-catalogue"

// Case is one entry of the catalogue.
type Case struct {
	// Name is a sentence saying what the input is.
	Name string
	// Schema is the value of the atlas-schema header.
	Schema string
	// Key is the Kafka key (the profile id the record claims).
	Key string
	// Value is the record.
	Value []byte
	// Stage is where the record must be stopped.
	Stage Stage
	// Field is the wire key the error must name ("" for the record itself,
	// AnyField for any).
	Field string
	// Reason is a regular expression that the reason must match: the words
	// that name the problem.
	Reason string
}

// Match reports whether a reason names the case's problem.
func (c Case) Match(reason string) bool { return regexp.MustCompile(c.Reason).MatchString(reason) }

// MatchField reports whether field is the one the case blames.
func (c Case) MatchField(field string) bool { return c.Field == AnyField || c.Field == field }

// Delimited reports whether the value is one complete msgpack value within
// the nesting cap, so that a batch that embeds it can still be walked.
func (c Case) Delimited() bool {
	w := schemas.NewWire(c.Value)
	return len(c.Value) > 0 && w.Skip() == nil && w.Remaining() == 0
}

// Valid returns a valid playback event of profile id at event time now − 1 s.
func Valid(now time.Time, id string) *schemas.Playback {
	return &schemas.Playback{
		Envelope: schemas.Envelope{
			EventID: "ev-" + id + "-" + fmt.Sprint(now.UnixNano()), EventTime: now.Add(-time.Second).UnixMilli(),
			AccountID: "acc-" + id, ProfileID: id, DeviceID: "dev-1", SessionID: Session,
			Country: "DE", DeviceType: schemas.DeviceTV, AppVersion: "7.3.1",
		},
		Kind: schemas.PlayStart, TitleID: "tt-1001", DurationMs: 5_400_000, BitrateKbps: 4300, CDN: "cdn-a", ISP: "isp-b",
	}
}

func validBrowse(now time.Time, id string) *schemas.Browse {
	return &schemas.Browse{
		Envelope: schemas.Envelope{
			EventID: "ev-" + id, EventTime: now.Add(-time.Second).UnixMilli(),
			AccountID: "acc-" + id, ProfileID: id, DeviceID: "dev-1", SessionID: Session,
			Country: "DE", DeviceType: schemas.DeviceWeb,
		},
		Kind: schemas.BrowseRating, TitleID: "tt-1001", Rating: 4,
	}
}

func marshal(rec schemas.Record) []byte {
	b, err := schemas.Marshal(rec)
	if err != nil {
		panic("BUG: badinput: cannot encode a catalogue event: " + err.Error())
	}
	return b
}

// Cases returns the catalogue, with event times relative to now (the
// receive time the reader judges against). The cases are built afresh on
// each call; callers may modify them.
func Cases(now time.Time) []Case {
	pb := string(schemas.SchemaPlayback)
	br := string(schemas.SchemaBrowse)
	// Allocation bombs: headers that declare far more than the input
	// holds. A reader that trusted them would allocate gigabytes
	// (STYLE.md, "Known facts about our libraries").
	bomb := func(name string, field string, value []byte, reason string) Case {
		return Case{Name: name, Schema: pb, Key: "pro-bomb", Value: value, Stage: StageDecode, Field: field, Reason: reason}
	}
	cases := []Case{
		bomb("a map32 header claiming 4 billion entries", "", []byte{0xdf, 0xff, 0xff, 0xff, 0xff},
			`map declares 4294967295 entries but only 0 bytes remain`),
		bomb("an array32 header claiming 4 billion elements in an unknown field", "e", []byte{0x81, 0xa1, 'e', 0xdd, 0xff, 0xff, 0xff, 0xff},
			`array declares 4294967295 entries but only 0 bytes remain`),
		bomb("a str32 header claiming 4 GB in the profile id", "pro", []byte{0x81, 0xa3, 'p', 'r', 'o', 0xdb, 0xff, 0xff, 0xff, 0xff},
			`string declares 4294967295 bytes but only 0 remain`),
		bomb("a bin32 header claiming 4 GB in an unknown field", "x", []byte{0x81, 0xa1, 'x', 0xc6, 0xff, 0xff, 0xff, 0xff},
			`binary declares 4294967295 bytes but only 0 remain`),
		bomb("a chain of 2,000 array16 headers", "", bytes.Repeat([]byte{0xdc, 0xff, 0xff}, 2000),
			`expected map, got array`),
		bomb("a value nested 100 levels deep", "x", append(append([]byte{0x81, 0xa1, 'x'}, bytes.Repeat([]byte{0x91}, 100)...), 0xc0),
			`nesting deeper than 16 levels`),
	}

	// A valid event cut short at every length.
	full := marshal(Valid(now, "pro-trunc"))
	for n := range len(full) {
		cases = append(cases, Case{
			Name:   fmt.Sprintf("a valid playback event truncated to %d of its %d bytes", n, len(full)),
			Schema: pb, Key: "pro-trunc", Value: full[:n:n], Stage: StageDecode, Field: AnyField,
			Reason: `empty record|truncated|remain`,
		})
	}

	// Values that decode but break a rule.
	event := func(name string, mutate func(e *schemas.Playback), field, reason string) Case {
		e := Valid(now, "pro-invalid")
		mutate(e)
		return Case{Name: name, Schema: pb, Key: e.ProfileID, Value: marshal(e), Stage: StageValidate, Field: field, Reason: reason}
	}
	rating := func(name string, r float64, reason string) Case {
		e := validBrowse(now, "pro-rating")
		e.Rating = r
		return Case{Name: name, Schema: br, Key: e.ProfileID, Value: marshal(e), Stage: StageValidate, Field: "r", Reason: reason}
	}
	year := 365 * 24 * time.Hour
	cases = append(cases,
		event("invalid UTF-8 in the device id", func(e *schemas.Playback) { e.DeviceID = "dev-\xff\xfe" }, "dev", `is not valid UTF-8`),
		event("invalid UTF-8 in the title id", func(e *schemas.Playback) { e.TitleID = "tt-\xc3\x28" }, "ti", `is not valid UTF-8`),
		rating("a NaN rating", math.NaN(), `NaN is not a finite number`),
		rating("a +Inf rating", math.Inf(1), `\+Inf is not a finite number`),
		rating("a -Inf rating", math.Inf(-1), `-Inf is not a finite number`),
		event("an event time a year ahead of the receive time",
			func(e *schemas.Playback) { e.EventTime = now.Add(year).UnixMilli() }, "t", `is 8760h0m0s ahead of the receive time`),
		event("an event time six minutes ahead (one over the allowed skew)",
			func(e *schemas.Playback) { e.EventTime = now.Add(6 * time.Minute).UnixMilli() }, "t", `ahead of the receive time, over the allowed skew of 5m0s`),
		event("an event time 8 days behind the receive time",
			func(e *schemas.Playback) { e.EventTime = now.Add(-8 * 24 * time.Hour).UnixMilli() }, "t", `is 192h0m0s behind the receive time, over the allowed skew of 168h0m0s`),
		event("an event time of zero", func(e *schemas.Playback) { e.EventTime = 0 }, "t", `event time 0 is not a positive Unix time`),
		event("a negative event time", func(e *schemas.Playback) { e.EventTime = -1 }, "t", `event time -1 is not a positive Unix time`),
		event("an event time of the minimum int64",
			func(e *schemas.Playback) { e.EventTime = math.MinInt64 }, "t", `not a positive Unix time`),
	)

	// Wrong types and versions: stopped by the decoder.
	valid := marshal(Valid(now, "pro-version"))
	nanTime := marshal(Valid(now, "pro-nan-time"))
	// Replace the event time (an int64 after the key "t") by a NaN float64.
	at := bytes.Index(nanTime, []byte{0xa1, 't', 0xcf})
	if at < 0 {
		at = bytes.Index(nanTime, []byte{0xa1, 't', 0xd3})
	}
	if at < 0 {
		panic("BUG: badinput: the encoder no longer writes the event time as a 64-bit integer")
	}
	nanTime = append(append(nanTime[:at+2:at+2], 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 1), nanTime[at+11:]...)
	cases = append(cases,
		Case{Name: "an unknown major version of a known schema", Schema: "playback.v2", Key: "pro-version", Value: valid,
			Stage: StageDecode, Field: "", Reason: `"playback\.v2" is not a supported version of playback`},
		Case{Name: "an unknown schema", Schema: "telemetry.v1", Key: "pro-version", Value: valid,
			Stage: StageDecode, Field: "", Reason: `unknown schema: "telemetry\.v1"`},
		Case{Name: "an event time sent as a NaN float", Schema: pb, Key: "pro-nan-time", Value: nanTime,
			Stage: StageDecode, Field: "t", Reason: `expected integer, got float`},
		Case{Name: "a record over the 8 KiB limit", Schema: pb, Key: "pro-huge",
			Value: marshal(func() *schemas.Playback {
				e := Valid(now, "pro-huge")
				e.AppVersion = strings.Repeat("v", 10<<10)
				return e
			}()),
			Stage: StageDecode, Field: "", Reason: `record is \d+ bytes, over the limit of 8192`},
	)
	return cases
}
