// Package schemas owns Atlas's wire format: the event, catalog and alert
// types, their msgpack encoding, the bounded decoder for untrusted bytes and
// the validation rules with their hard limits.
//
// # Wire format
//
// Every record is a msgpack map with short, stable keys (the `msgpack` struct
// tags below). Readers ignore keys they do not know and give missing keys
// their zero value, so fields can be added without a new version. A breaking
// change is a new major version (`playback.v2`) on a new topic, with both
// decoders kept during the migration. The Kafka header [HeaderSchema] names
// the schema of a record's value, [HeaderContentType] its encoding.
//
// Enumerations (event kinds, device types) are strings on the wire, so that a
// device written in any language can produce them, and small integers in
// memory.
//
// # Untrusted input
//
// The decoders in this package never hand untrusted bytes to a reflection
// decoder: they walk the msgpack structure themselves and check every
// declared length against the bytes that remain before allocating, cap the
// nesting depth, and name the offending field in their errors. An 8-byte
// record that declares a 4-billion-element array is an error, not an
// out-of-memory kill. Encoding uses github.com/vmihailenco/msgpack/v5 with
// pooled encoders; golden vectors in testdata/ pin the bytes.
//
// # Bad input
//
// Package schemas/badinput holds the catalogue of broken and hostile
// records, and tests in schemas, consumers/engine and producers/ingest
// hold every reader to it (one test each, over every case; most cases
// allocate under 1 KiB to be refused, the largest, a 6,000-byte chain of
// array headers, 6.6 KiB). No input is clamped: a value outside the rules
// is refused with the field and the reason, because a clamped event time
// would put the event in a minute it did not happen in, and an event time
// a year ahead, if accepted, would move its partition's watermark a year
// forward and make every later event late.
//
//	input                                       stopped by   field   reason says              engine              gateway (atlas ingest)
//	map32 header claiming 4 billion entries     decoder      -       declares … only N remain dead letter         400 for the batch
//	array32 / str32 / bin32 claiming 4 G        decoder      the key declares … only N remain dead letter         400 for the batch
//	2,000 chained array16 headers               decoder      -       expected map, got array  dead letter         400 for the batch
//	a value nested 100 levels deep              decoder      the key nesting deeper than 16   dead letter         400 for the batch
//	a valid event cut at each of its lengths    decoder      the key truncated / remain       dead letter         400 for the batch
//	record over 8 KiB                           decoder      -       over the limit of 8192   dead letter         event rejected
//	unknown schema or major version (header)    decoder      - / s   not a supported version  dead letter         event rejected, field "s"
//	event time as a NaN float                   decoder      t       expected integer         dead letter         event rejected
//	invalid UTF-8 in a string                   validation   the key is not valid UTF-8       dead letter         event rejected
//	NaN, +Inf, -Inf rating                      validation   r       is not a finite number   dead letter         event rejected
//	event time a year or 6 min ahead            validation   t       … ahead of receive   dead letter         event rejected
//	event time 8 days behind                    validation   t       … behind receive     dead letter         event rejected
//	event time zero, negative, MinInt64         validation   t       not a positive Unix time dead letter         event rejected
//
// "Dead letter" is a record on atlas.dlq.v1 with the original key, bytes
// and headers plus atlas-dlq-stage (decode or validate), atlas-dlq-field
// and atlas-dlq-error; the partition goes on with the next record. "400 for
// the batch": a value that is not one complete msgpack value cannot be
// delimited inside a batch, so the gateway refuses the whole request,
// naming what the event declares and at which byte. "Event rejected": the
// answer is 200, the other events of the batch are written, and the
// event's status is "rejected" with the field and the reason. Within the
// skew, an event behind its partition's watermark is not bad input: the
// aggregates role counts it in late_events.
//
// One profile sending 30 % of all traffic (consumers/enginetest,
// hotkey_test.go) is not refused either: its partition keeps at most three
// open one-minute windows, the other partitions do not wait for it, and
// the anomaly detectors cap their state per subject (it costs them about
// 16 KB for 18,000 events) and raise the same alerts about everyone else
// as without it. Alerts wait for the slowest input partition, though, so a
// hot partition whose consumer falls behind delays every alert (see
// consumers/anomaly, "One clock for many sources").
package schemas
