package anomaly

import (
	"bytes"
	"errors"
	"math"
	"strconv"
	"strings"

	"github.com/atlas-stream/atlas/internal/intern"
	"github.com/atlas-stream/atlas/schemas"
)

// View is a re-keying of the input: which subject a detector's state is
// kept per. The input topics are keyed by profile; the detectors need all
// events of an account, of a network, or of a CDN × ISP × country cell, so
// stage one re-keys every event into the views that want it (see the
// package doc).
type View uint8

// Views.
const (
	// ViewAccount keys events by "account:<account id>".
	ViewAccount View = iota
	// ViewNetwork keys events by "net:<a.b.c.0>/24", the client network
	// prefix without the gateway's host hash.
	ViewNetwork
	// ViewCell keys playback events by "cdn:<cdn>|isp:<isp>|cc:<country>".
	ViewCell
	numViews
)

func (v View) String() string {
	switch v {
	case ViewAccount:
		return "account"
	case ViewNetwork:
		return "network"
	case ViewCell:
		return "cell"
	}
	return "view(" + strconv.Itoa(int(v)) + ")"
}

// Subject returns the subject of rec in view v, and false when rec has no
// subject there (no account, no network, no CDN).
func (v View) Subject(rec schemas.Record) (string, bool) {
	b, ok := v.AppendSubject(nil, rec)
	return string(b), ok
}

// AppendSubject appends rec's subject in view v to dst, as Subject returns
// it. Stage one builds the re-key key this way, without a string per view
// (two allocations per event in bench/perevent BenchmarkAnomaly).
func (v View) AppendSubject(dst []byte, rec schemas.Record) ([]byte, bool) {
	env := envelope(rec)
	if env == nil {
		return dst, false
	}
	switch v {
	case ViewAccount:
		if env.AccountID == "" {
			return dst, false
		}
		return append(append(dst, "account:"...), env.AccountID...), true
	case ViewNetwork:
		p := NetworkPrefix(env.ClientNet)
		if p == "" {
			return dst, false
		}
		return append(append(dst, "net:"...), p...), true
	case ViewCell:
		pb, ok := rec.(*schemas.Playback)
		if !ok || pb.CDN == "" || pb.ISP == "" || pb.Country == "" {
			return dst, false
		}
		return appendCellSubject(dst, pb.CDN, pb.ISP, pb.Country), true
	}
	return dst, false
}

// CellSubject is the subject of a CDN × ISP × country cell, as quality
// alerts carry it: "cdn:cdn-b|isp:us-cable|cc:US".
func CellSubject(cdn, isp, country string) string {
	return string(appendCellSubject(nil, cdn, isp, country))
}

func appendCellSubject(dst []byte, cdn, isp, country string) []byte {
	dst = append(append(dst, "cdn:"...), cdn...)
	dst = append(append(dst, "|isp:"...), isp...)
	return append(append(dst, "|cc:"...), country...)
}

// viewOf returns the view a subject belongs to, from its prefix.
func viewOf(subject string) (View, bool) {
	switch {
	case strings.HasPrefix(subject, "account:"):
		return ViewAccount, true
	case strings.HasPrefix(subject, "net:"):
		return ViewNetwork, true
	case strings.HasPrefix(subject, "cdn:"):
		return ViewCell, true
	}
	return 0, false
}

// NetworkPrefix returns the network part of a ClientNet as the gateway
// writes it ("203.0.113.0/24#1f2e…" → "203.0.113.0/24"), or "" when s
// carries none.
func NetworkPrefix(clientNet string) string {
	p, _, _ := strings.Cut(clientNet, "#")
	if !strings.Contains(p, "/") {
		return ""
	}
	return p
}

func envelope(rec schemas.Record) *schemas.Envelope {
	switch v := rec.(type) {
	case *schemas.Playback:
		return &v.Envelope
	case *schemas.Browse:
		return &v.Envelope
	}
	return nil
}

// Place is where a client network is: the stand-in for a geo-IP lookup.
type Place struct {
	City    string
	Country string
	Lat     float64
	Lon     float64
	// Hosting marks a data-centre or VPN network: its place is the
	// server's, not the person's (geo-IP databases flag them).
	Hosting bool
}

// Known reports whether the place was located.
func (p Place) Known() bool { return p.City != "" }

// DistanceKm is the great-circle distance between two places.
func DistanceKm(a, b Place) float64 {
	const r = 6371.0
	rad := math.Pi / 180
	dLat := (b.Lat - a.Lat) * rad
	dLon := (b.Lon - a.Lon) * rad
	h := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(a.Lat*rad)*math.Cos(b.Lat*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * r * math.Asin(math.Min(1, math.Sqrt(h)))
}

// Locator places a ClientNet. It must be deterministic and safe for
// concurrent use; it returns false for networks it cannot place.
type Locator func(clientNet string) (Place, bool)

// Event is one input event as a detector sees it: the record, its subject
// in the detector's view and its place. Detectors get a view's events in
// event-time order (ties by event id); they must not retain e or the record.
type Event struct {
	Time    int64
	Subject string
	Env     *schemas.Envelope
	// Play is set for playback events, Browse for browse events.
	Play   *schemas.Playback
	Browse *schemas.Browse
	Place  Place
}

// NewEvent builds the event a detector of subject's view gets for rec.
func NewEvent(subject string, rec schemas.Record, locate Locator) Event {
	return newEvent(subject, rec, locate)
}

func newEvent(subject string, rec schemas.Record, locate Locator) Event {
	e := Event{Subject: subject}
	switch v := rec.(type) {
	case *schemas.Playback:
		e.Play, e.Env = v, &v.Envelope
	case *schemas.Browse:
		e.Browse, e.Env = v, &v.Envelope
	}
	if e.Env != nil {
		e.Time = e.Env.EventTime
		if locate != nil && e.Env.ClientNet != "" {
			e.Place, _ = locate(e.Env.ClientNet)
		}
	}
	return e
}

// Source codes of the re-keyed records: which input topic a record was
// forwarded from ("p" playback, "b" browse) and its partition.
const (
	srcPlayback = 0
	srcBrowse   = 1
	numSrcTopic = 2
)

// source identifies one input partition: topic code × partitions + partition.
type source uint16

func (s source) String(partitions int) string {
	code := "p"
	if int(s)/partitions == srcBrowse {
		code = "b"
	}
	return code + strconv.Itoa(int(s)%partitions)
}

// rekeyKey is the Kafka key of a re-keyed record:
//
//	<subject>#<source>.<source offset>.<source watermark>
//
// The re-key topic is partitioned by the subject alone (see [SubjectOf]);
// the suffix tells stage two where the record came from (to drop the
// copies a stage-one restart sends again) and how far its source has got
// (every later record of that source has an event time at or above the
// watermark), which aligns the sources.
type rekeyKey struct {
	subject string
	src     source
	offset  int64
	mark    int64
}

func appendRekeyKey(dst []byte, subject string, src source, partitions int, offset, mark int64) []byte {
	return appendRekeySuffix(append(dst, subject...), src, partitions, offset, mark)
}

// appendRekeySuffix appends the part of a re-key key after the subject.
func appendRekeySuffix(dst []byte, src source, partitions int, offset, mark int64) []byte {
	dst = append(dst, '#')
	if int(src)/partitions == srcBrowse {
		dst = append(dst, 'b')
	} else {
		dst = append(dst, 'p')
	}
	dst = strconv.AppendInt(dst, int64(int(src)%partitions), 10)
	dst = append(dst, '.')
	dst = strconv.AppendInt(dst, offset, 10)
	dst = append(dst, '.')
	dst = strconv.AppendInt(dst, mark, 10)
	return dst
}

var errBadKey = errors.New("not a re-key key")

func parseRekeyKey(b []byte, partitions int, subjects *intern.Recent) (rekeyKey, error) {
	i := bytes.LastIndexByte(b, '#')
	if i <= 0 || i+2 >= len(b) {
		return rekeyKey{}, errBadKey
	}
	// The subject is kept (buffered records hold it): its own string, the
	// one of the last record of the same subject when subjects still has
	// it. The rest is parsed in place; a string of the whole key was one
	// more allocation per re-keyed record.
	k := rekeyKey{subject: subjects.String(b[:i])}
	rest := b[i+1:]
	var code int
	switch rest[0] {
	case 'p':
		code = srcPlayback
	case 'b':
		code = srcBrowse
	default:
		return rekeyKey{}, errBadKey
	}
	// Cut, not SplitN: SplitN's slice was an allocation per re-keyed
	// record, two per event (bench/perevent BenchmarkAnomaly).
	f0, tail, ok1 := bytes.Cut(rest[1:], []byte("."))
	f1, f2, ok2 := bytes.Cut(tail, []byte("."))
	if !ok1 || !ok2 {
		return rekeyKey{}, errBadKey
	}
	// string(f) does not allocate here: the conversion does not escape.
	part, err1 := strconv.Atoi(string(f0))
	off, err2 := strconv.ParseInt(string(f1), 10, 64)
	mark, err3 := strconv.ParseInt(string(f2), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || part < 0 || part >= partitions {
		return rekeyKey{}, errBadKey
	}
	k.src, k.offset, k.mark = source(code*partitions+part), off, mark
	return k, nil
}

// SubjectOf returns the subject part of a re-key topic key: the bytes
// that choose its partition. It returns key unchanged when key has no
// suffix.
func SubjectOf(key []byte) []byte {
	for i := len(key) - 1; i >= 0; i-- {
		if key[i] == '#' {
			return key[:i]
		}
	}
	return key
}

// PartitionOf is the re-key topic partition of a subject: FNV-1a 64 of its
// bytes modulo n, except for a mark ("mark:<q>"), which goes to partition
// q. The in-memory [Pipeline] and the Kafka writer use the same function,
// so that a subject's records meet in one partition.
func PartitionOf(subject []byte, n int) int {
	if q, ok := markPartition(subject); ok {
		return q % n
	}
	return int(fnv64(subject) % uint64(n))
}

// markPrefix starts the subject of a mark: a re-keyed record that only
// says how far its source has got (see [Forwarder]).
const markPrefix = "mark:"

func appendMarkSubject(dst []byte, q int) []byte {
	return strconv.AppendInt(append(dst, markPrefix...), int64(q), 10)
}

func markPartition(subject []byte) (int, bool) {
	if len(subject) <= len(markPrefix) || string(subject[:len(markPrefix)]) != markPrefix {
		return 0, false
	}
	q, err := strconv.Atoi(string(subject[len(markPrefix):]))
	return q, err == nil && q >= 0
}

func fnv64(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

func fnv64s(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
