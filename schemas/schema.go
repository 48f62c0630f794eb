package schemas

import (
	"errors"
	"fmt"
	"strings"
)

// Schema names the type and major version of a record's value, as carried in
// the [HeaderSchema] Kafka header.
type Schema string

// The schemas Atlas reads and writes. A new major version gets a new
// constant, a new topic and its own decoder; the old one stays until every
// producer has moved.
const (
	SchemaPlayback Schema = "playback.v1"
	SchemaBrowse   Schema = "browse.v1"
	SchemaCatalog  Schema = "catalog.v1"
	SchemaAlert    Schema = "alert.v1"
)

// Kafka header names and the content type of every Atlas record.
const (
	HeaderSchema      = "atlas-schema"
	HeaderContentType = "content-type"
	ContentType       = "application/msgpack"
)

// ErrUnknownSchema is returned by [ParseSchema] and the decoders when a
// record declares a schema name or major version this build does not know.
var ErrUnknownSchema = errors.New("unknown schema")

var knownSchemas = []Schema{SchemaPlayback, SchemaBrowse, SchemaCatalog, SchemaAlert}

// Schemas returns every schema this build can decode.
func Schemas() []Schema { return append([]Schema(nil), knownSchemas...) }

// ParseSchema checks a header value. The error names the value and, when
// only the version is unknown, the versions that are supported.
func ParseSchema(s string) (Schema, error) {
	for _, k := range knownSchemas {
		if s == string(k) {
			return k, nil
		}
	}
	if s == "" {
		return "", fmt.Errorf("%w: the %s header is missing or empty", ErrUnknownSchema, HeaderSchema)
	}
	name, _, _ := strings.Cut(s, ".")
	for _, k := range knownSchemas {
		if kn, _, _ := strings.Cut(string(k), "."); kn == name {
			return "", fmt.Errorf("%w: %q is not a supported version of %s (this build reads %s)", ErrUnknownSchema, truncateForError(s), name, k)
		}
	}
	return "", fmt.Errorf("%w: %q", ErrUnknownSchema, truncateForError(s))
}

// truncateForError keeps error messages bounded when they quote input.
func truncateForError(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
