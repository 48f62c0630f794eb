//go:build integration

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/atlas-stream/atlas/producers/ingest"
	"github.com/atlas-stream/atlas/schemas"
	"github.com/atlas-stream/atlas/topology"
)

// What counts as a raw IP address in stored data.
//
// Atlas may store a client's network, never its address: ClientNet is the
// /24 (IPv4) or /48 (IPv6) prefix followed by "#" and a keyed hash, for
// example "203.0.113.0/24#5c1d0e6a3b2f", and alerts name networks the same
// way ("net:203.0.113.0/24"). So an address written in CIDR notation with a
// prefix of at most 24 bits (IPv4) or 48 bits (IPv6) and no host bits set
// is a network and allowed. Any other address is raw: a bare address, or a
// longer prefix or one with host bits set (10.1.2.3/24 still names the
// host). Loopback addresses (127.0.0.0/8, ::1) are allowed: they name
// the machine itself, not a person — the embeddings members advertise
// their API as 127.0.0.1:port in the model topic.
//
// Candidates are dotted quads of decimal octets (0–255, no leading zeros,
// not part of a longer run of digits and dots, so "7.3.1" app versions and
// "1.2.3.4.5" are not addresses) and IPv6 texts with at least three
// non-empty groups (so that "::", times like "12:00:00" and stray colons in
// binary values are not taken for addresses; an IPv6 address with fewer
// groups, such as "::1", is not a client's). An IPv4 address embedded in
// IPv6 ("::ffff:203.0.113.7") is found as the dotted quad. Binary forms
// (4 or 16 raw bytes) are out of scope: every field that can hold an
// address is a string.
var (
	ipv4Candidate = regexp.MustCompile(`[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(/[0-9]{1,3})?`)
	ipv6Candidate = regexp.MustCompile(`[0-9A-Fa-f]{0,4}(:[0-9A-Fa-f]{0,4}){2,7}(/[0-9]{1,3})?`)
)

// rawIPs returns the raw IP addresses in b (see above).
func rawIPs(b []byte) []string {
	var out []string
	isV4Part := func(c byte) bool { return c == '.' || c >= '0' && c <= '9' }
	for _, m := range ipv4Candidate.FindAllIndex(b, -1) {
		if m[0] > 0 && isV4Part(b[m[0]-1]) || m[1] < len(b) && isV4Part(b[m[1]]) {
			continue
		}
		if raw, ok := rawIP(string(b[m[0]:m[1]]), 24); ok {
			out = append(out, raw)
		}
	}
	isHex := func(c byte) bool {
		return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == ':'
	}
	for _, m := range ipv6Candidate.FindAllIndex(b, -1) {
		s := string(b[m[0]:m[1]])
		if m[0] > 0 && isHex(b[m[0]-1]) || m[1] < len(b) && (isHex(b[m[1]]) || b[m[1]] == '.') {
			continue
		}
		addr, _, _ := strings.Cut(s, "/")
		groups := 0
		for _, g := range strings.Split(addr, ":") {
			if g != "" {
				groups++
			}
		}
		if groups < 3 {
			continue
		}
		if raw, ok := rawIP(s, 48); ok {
			out = append(out, raw)
		}
	}
	return out
}

// rawIP says whether s, an address with an optional /bits, is a raw address
// rather than a network of at most maxBits. It returns false for text that
// is not an address at all.
func rawIP(s string, maxBits int) (string, bool) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			_, err := netip.ParseAddr(s[:strings.IndexByte(s, '/')])
			return s, err == nil
		}
		return s, p.Bits() > maxBits || p.Masked() != p
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return "", false
	}
	return s, !a.Unmap().IsLoopback()
}

func TestTheRawIPScannerTellsAddressesFromNetworks(t *testing.T) {
	for _, c := range []struct {
		text string
		raw  []string
	}{
		{"net=203.0.113.0/24#5c1d0e6a3b2f", nil},
		{"net:2001:db8:85a3::/48#0a1b2c3d4e5f", nil},
		{`"subject":"net:198.51.100.0/24"`, nil},
		{"app 7.3.1, window 12:00:00, ratio 0.25, id ev-1.2.3.4.5", nil},
		{"\x00::\x01 a::b", nil},
		{"api 127.0.0.1:45091 and ::1", nil},
		{"client 203.0.113.77 sent", []string{"203.0.113.77"}},
		{"203.0.113.77/24", []string{"203.0.113.77/24"}},
		{"10.1.2.0/25", []string{"10.1.2.0/25"}},
		{"5f2001:db8:85a3:1234:5678:8a2e:370:7334", nil}, // inside a longer hex run: not an address
		{"1203.0.113.77", nil},
		{"from 2001:db8:85a3:1234:5678:8a2e:370:7334 ok", []string{"2001:db8:85a3:1234:5678:8a2e:370:7334"}},
		{"2001:db8:85a3:1234::/64", []string{"2001:db8:85a3:1234::/64"}},
		{"::ffff:203.0.113.7", []string{"203.0.113.7"}},
	} {
		got := rawIPs([]byte(c.text))
		if fmt.Sprint(got) != fmt.Sprint(c.raw) {
			t.Errorf("rawIPs(%q) = %q, want %q", c.text, got, c.raw)
		}
	}
}

// The gateway's clients in the PII scenario, one per address family, and
// an address a device writes into the event's own network field.
const (
	piiClientV4    = "203.0.113.77"
	piiClientV6    = "2001:db8:85a3:1234:5678:8a2e:370:7334"
	piiDeviceNet   = "198.51.100.23"
	piiGatewayHits = 40 // signed requests per client address
)

// TestNoTopicOrTableHoldsARawIPAddressAfterARun runs the simulator and the
// ingest gateway (clients behind a trusted proxy, IPv4 and IPv6, with a
// device that writes its own address into the event) into every role, then
// reads every record of every topic of the run — keys, values, headers —
// and every row of every table and view of its database, and fails on any
// raw IP address (see rawIPs for what counts).
func TestNoTopicOrTableHoldsARawIPAddressAfterARun(t *testing.T) {
	s := newStack(t, 6)
	t.Cleanup(s.deleteRekeyTopic)

	ops, api := freeAddr(t), freeAddr(t)
	roles := s.startEnv("all", []string{"ATLAS_EMBEDDINGS_ADDR=" + api},
		"run", "all", "--ops-addr", ops, "--flush-interval", "300ms", "--session-timeout", "6s")
	s.waitReady(roles, ops, time.Minute)
	s.atlas("simulate", "--seed", "4711", "--events", "40000")

	secret := "pii-scenario-secret-of-at-least-32-bytes"
	gw := freeAddr(t)
	gateway := s.startEnv("ingest", []string{"ATLAS_INGEST_SECRET=" + secret, "ATLAS_INGEST_IP_KEY=pii-scenario-ip-key"},
		"ingest", "--listen", gw, "--trusted-proxies", "127.0.0.0/8", "--session-rate", "0", "--ip-rate", "0")
	s.waitReady(gateway, gw, time.Minute)
	accepted := 0
	for c, client := range []string{piiClientV4, piiClientV6} {
		for i := 0; i < piiGatewayHits; i++ {
			accepted += s.sendSigned(gw, []byte(secret), client, fmt.Sprintf("pii-%d-%d", c, i))
		}
	}
	gateway.signal(syscall.SIGTERM)
	if err := gateway.wait(30 * time.Second); err != nil {
		t.Fatalf("gateway: %v\n%s", err, lastLines(gateway.output(), 20))
	}
	for _, g := range []topology.Group{topology.AggregatesGroup, topology.EmbeddingsGroup} {
		s.waitDrained(2*time.Minute, s.topo.GroupID(g), s.topo.Name(topology.Playback), s.topo.Name(topology.Browse))
	}
	s.waitDrained(2*time.Minute, s.topo.GroupID(topology.AnomalyGroup), s.topo.Name(topology.Playback), s.topo.Name(topology.Browse), s.prefix+rekeyTopic)
	roles.signal(syscall.SIGTERM)
	if err := roles.wait(30 * time.Second); err != nil {
		t.Fatalf("atlas run all: %v\n%s", err, lastLines(roles.output(), 20))
	}

	var found []string
	report := func(where string, b []byte) {
		for _, ip := range rawIPs(b) {
			if len(found) < 20 {
				found = append(found, fmt.Sprintf("%s: %s in %q", where, ip, clip(b, ip)))
			}
		}
	}
	// Every topic of the run, whether the topology declares it or a role
	// made it (the anomaly role's re-key topic).
	client, err := s.kafka.Client()
	if err != nil {
		t.Fatal(err)
	}
	md, err := client.Metadata(context.Background(), &kafka.MetadataRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var topics, figures []string
	for _, tp := range md.Topics {
		if strings.HasPrefix(tp.Name, s.prefix) {
			topics = append(topics, tp.Name)
		}
	}
	records, gatewayNets := 0, map[string]int{}
	for _, topic := range topics {
		msgs, _ := s.readAll(topic)
		records += len(msgs)
		figures = append(figures, fmt.Sprintf("%s %d", strings.TrimPrefix(topic, s.prefix), len(msgs)))
		for _, m := range msgs {
			where := fmt.Sprintf("%s/%d@%d", topic, m.Partition, m.Offset)
			report(where+" key", m.Key)
			report(where+" value", m.Value)
			for _, h := range m.Headers {
				report(where+" header "+h.Key, h.Value)
			}
			if topic == s.topo.Name(topology.Playback) || topic == s.topo.Name(topology.Browse) {
				for _, p := range []string{"203.0.113.0/24#", "2001:db8:85a3::/48#"} {
					if bytes.Contains(m.Value, []byte(p)) {
						gatewayNets[p]++
					}
				}
			}
		}
	}
	// Every table and view of the run's database, every column.
	rows := 0
	for _, tb := range s.tables() {
		body, err := chHTTP(fmt.Sprintf("SELECT * FROM `%s`.`%s` FORMAT TabSeparated", s.database, tb.name))
		if err != nil {
			t.Fatal(err)
		}
		n := bytes.Count(body, []byte("\n"))
		rows += n
		figures = append(figures, fmt.Sprintf("%s %d", tb.name, n))
		for i, line := range bytes.Split(body, []byte("\n")) {
			report(fmt.Sprintf("%s.%s row %d", s.database, tb.name, i+1), line)
		}
	}
	if len(found) > 0 {
		t.Fatalf("raw IP addresses in the run's data (first %d):\n%s", len(found), strings.Join(found, "\n"))
	}
	// The scan saw the gateway's anonymised networks, so it looked where
	// raw addresses would have been.
	if accepted != 2*piiGatewayHits*2 || gatewayNets["203.0.113.0/24#"] == 0 || gatewayNets["2001:db8:85a3::/48#"] == 0 {
		t.Fatalf("the gateway accepted %d events, and the topics hold %v events with its networks: the scan did not cover the gateway's output", accepted, gatewayNets)
	}
	t.Logf("no raw IP address in %d records of %d topics and %d rows of %d tables and views (%s); the gateway's %d events from %s and %s carry only %v",
		records, len(topics), rows, len(s.tables()), strings.Join(figures, ", "), accepted, piiClientV4, piiClientV6, gatewayNets)
}

// sendSigned posts one signed batch of two events (a playback start and an
// impression) to the gateway as a client behind the local proxy, with the
// device's own address in the events' network field, and returns how many
// the gateway accepted.
func (s *stack) sendSigned(gw string, secret []byte, client, session string) int {
	s.t.Helper()
	now := time.Now()
	env := schemas.Envelope{EventID: session + "-p", EventTime: now.Add(-time.Second).UnixMilli(), AccountID: "acc-" + session,
		ProfileID: "pro-" + session, DeviceID: "dev-" + session, SessionID: session, ClientNet: piiDeviceNet,
		Country: "DE", DeviceType: schemas.DeviceTV, AppVersion: "7.3.1"}
	pb := &schemas.Playback{Envelope: env, Kind: schemas.PlayStart, TitleID: "tt-pii", DurationMs: 3_600_000, CDN: "cdn-a", ISP: "isp-b"}
	env.EventID = session + "-b"
	bw := &schemas.Browse{Envelope: env, Kind: schemas.BrowseImpression, TitleID: "tt-pii", Row: "trending", Rank: 1}
	body, err := ingest.EncodeBatch(nil, []schemas.Record{pb, bw})
	if err != nil {
		s.t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, "http://"+gw+"/v1/events", bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/msgpack")
	req.Header.Set("X-Forwarded-For", client)
	ingest.Sign(req, body, session, ingest.SessionKey(secret, session), now, "n-"+session)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	var r ingest.Response
	if err := json.NewDecoder(res.Body).Decode(&r); err != nil || res.StatusCode != http.StatusOK {
		s.t.Fatalf("the gateway answered %s (%v) to a signed batch", res.Status, err)
	}
	if r.Rejected > 0 {
		s.t.Fatalf("the gateway rejected events of a valid batch: %+v", r.Events)
	}
	return r.Accepted
}

// clip returns the text around the first occurrence of sub in b, for a
// readable failure.
func clip(b []byte, sub string) string {
	i := bytes.Index(b, []byte(sub))
	if i < 0 {
		return ""
	}
	return string(b[max(0, i-40):min(len(b), i+len(sub)+40)])
}
