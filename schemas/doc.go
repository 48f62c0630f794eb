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
package schemas
