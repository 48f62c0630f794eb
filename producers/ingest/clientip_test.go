package ingest

import (
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"testing"
)

func TestClientNetKeepsTheNetworkAndHashesTheAddress(t *testing.T) {
	key := []byte("ip-hash-key-0123456789")
	shape := regexp.MustCompile(`^(.+/\d+)#([0-9a-f]{12})$`)
	check := func(addr, wantPrefix string) string {
		t.Helper()
		got := ClientNet(key, netip.MustParseAddr(addr))
		m := shape.FindStringSubmatch(got)
		if m == nil || m[1] != wantPrefix {
			t.Fatalf("ClientNet(%s) = %q, want %s#<12 hex>", addr, got, wantPrefix)
		}
		if strings.Contains(got, addr) {
			t.Fatalf("ClientNet(%s) = %q contains the raw address", addr, got)
		}
		return m[2]
	}
	a := check("203.0.113.77", "203.0.113.0/24")
	b := check("203.0.113.78", "203.0.113.0/24")
	check("2001:db8:1234:5678::9", "2001:db8:1234::/48")
	mapped := check("::ffff:203.0.113.77", "203.0.113.0/24")
	if a == b {
		t.Fatal("two hosts of one network got the same hash")
	}
	if a != mapped {
		t.Fatal("an IPv4-mapped IPv6 address hashed differently from the IPv4 address")
	}
	if other := ClientNet([]byte("another-key-0123456789"), netip.MustParseAddr("203.0.113.77")); strings.HasSuffix(other, a) {
		t.Fatal("the hash does not depend on the key")
	}
	if got, want := newIPHasher(key).clientNet(netip.MustParseAddr("203.0.113.77")), ClientNet(key, netip.MustParseAddr("203.0.113.77")); got != want {
		t.Fatalf("pooled hasher %q, ClientNet %q", got, want)
	}
}

func TestClientAddrBelievesXForwardedForOnlyFromTrustedProxies(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	check := func(remote string, xff []string, trust []netip.Prefix, want string) {
		t.Helper()
		r := &http.Request{RemoteAddr: remote, Header: http.Header{}}
		for _, v := range xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		got, ok := clientAddr(r, trust)
		if !ok || got.String() != want {
			t.Fatalf("clientAddr(%s, XFF %q) = %v, %v; want %s", remote, xff, got, ok, want)
		}
	}
	check("198.51.100.1:5000", nil, trusted, "198.51.100.1")
	check("198.51.100.1:5000", []string{"203.0.113.7"}, trusted, "198.51.100.1") // untrusted peer: XFF ignored
	check("198.51.100.1:5000", []string{"203.0.113.7"}, nil, "198.51.100.1")
	check("10.1.2.3:5000", []string{"203.0.113.7"}, trusted, "203.0.113.7")
	check("10.1.2.3:5000", []string{"203.0.113.7, 10.9.9.9"}, trusted, "203.0.113.7")            // proxy chain
	check("10.1.2.3:5000", []string{"1.1.1.1, 203.0.113.7"}, trusted, "203.0.113.7")             // the client cannot prepend itself an address
	check("10.1.2.3:5000", []string{"1.1.1.1", "203.0.113.7, 10.0.0.9"}, trusted, "203.0.113.7") // several headers
	check("10.1.2.3:5000", []string{"garbage, 10.0.0.9"}, trusted, "10.0.0.9")                   // malformed: stop at the last proxy
	check("10.1.2.3:5000", []string{"10.0.0.9"}, trusted, "10.0.0.9")                            // only proxies
	check("10.1.2.3:5000", nil, trusted, "10.1.2.3")
	check("[fd00::1]:5000", []string{"2001:db8::7"}, trusted, "2001:db8::7")
	check("[::ffff:10.1.2.3]:5000", []string{"203.0.113.7"}, trusted, "203.0.113.7")
	if _, ok := clientAddr(&http.Request{RemoteAddr: "@unix"}, trusted); ok {
		t.Fatal("a RemoteAddr that is not an address was accepted")
	}
}

func TestIPv6ClientsAreRateLimitedByTheirSlash64(t *testing.T) {
	a := limitKey(netip.MustParseAddr("2001:db8:1:2:aaaa::1"))
	b := limitKey(netip.MustParseAddr("2001:db8:1:2:bbbb::2"))
	c := limitKey(netip.MustParseAddr("2001:db8:1:3::1"))
	if a != b || a == c {
		t.Fatalf("limit keys %v %v %v: want the first two equal and the third different", a, b, c)
	}
	if v4 := limitKey(netip.MustParseAddr("203.0.113.7")); v4.String() != "203.0.113.7" {
		t.Fatalf("IPv4 limit key %v", v4)
	}
}
