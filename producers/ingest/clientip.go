package ingest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"net/http"
	"net/netip"
	"strings"
	"sync"
)

// Network prefixes that replace client addresses.
const (
	ipv4PrefixBits = 24
	ipv6PrefixBits = 48
	// ipv6LimitBits is the prefix that IPv6 clients are rate-limited by: a
	// subscriber usually gets a whole /64, so limiting single addresses
	// would limit nothing.
	ipv6LimitBits = 64
	// clientNetHashChars is how many hex characters of the keyed hash are
	// kept: 48 bits tell a network's hosts apart without being reversible
	// (the key is secret).
	clientNetHashChars = 12
)

// ClientNet is what Atlas stores instead of a client address: the network
// prefix (/24 for IPv4, /48 for IPv6), "#", and the first 12 hex characters
// of HMAC-SHA256(ipKey, the address's 4 or 16 bytes). For example
// "203.0.113.0/24#5c1d0e6a3b2f". The prefix keeps what fraud and quality
// analysis need (which network, which ISP); the keyed hash tells addresses
// apart without revealing them to anyone who lacks the key. IPv4-mapped IPv6
// addresses count as IPv4.
func ClientNet(ipKey []byte, addr netip.Addr) string {
	return appendClientNet(nil, hmac.New(sha256.New, ipKey), addr)
}

func appendClientNet(dst []byte, mac hash.Hash, addr netip.Addr) string {
	addr = addr.Unmap().WithZone("")
	bits := ipv6PrefixBits
	if addr.Is4() {
		bits = ipv4PrefixBits
	}
	prefix, err := addr.Prefix(bits)
	if err != nil {
		panic("BUG: ingest: cannot take the prefix of a valid address: " + err.Error())
	}
	mac.Reset()
	raw := addr.AsSlice()
	mac.Write(raw)
	var sum [sha256.Size]byte
	digest := mac.Sum(sum[:0])
	dst = prefix.AppendTo(dst)
	dst = append(dst, '#')
	dst = hex.AppendEncode(dst, digest[:clientNetHashChars/2])
	return string(dst)
}

// ipHasher computes ClientNet with pooled keyed MACs.
type ipHasher struct{ macs sync.Pool }

func newIPHasher(key []byte) *ipHasher {
	k := append([]byte(nil), key...)
	h := &ipHasher{}
	h.macs.New = func() any { return hmac.New(sha256.New, k) }
	return h
}

func (h *ipHasher) clientNet(addr netip.Addr) string {
	mac := h.macs.Get().(hash.Hash)
	var buf [64]byte
	s := appendClientNet(buf[:0], mac, addr)
	h.macs.Put(mac)
	return s
}

// clientAddr returns the address of the client of r: the peer, unless the
// peer is a trusted proxy, in which case X-Forwarded-For is read from the
// right, skipping trusted proxies, and the first address that is not one is
// the client. A malformed entry stops the walk at the last trusted hop, so
// a client cannot choose the address it is limited and hashed as. ok is
// false when RemoteAddr itself is not an address (it always is for a TCP
// listener).
func clientAddr(r *http.Request, trusted []netip.Prefix) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	addr := ap.Addr().Unmap()
	if len(trusted) == 0 || !isTrusted(addr, trusted) {
		return addr, true
	}
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		list := hops[i]
		for list != "" {
			var entry string
			if j := strings.LastIndexByte(list, ','); j >= 0 {
				entry, list = list[j+1:], list[:j]
			} else {
				entry, list = list, ""
			}
			hop, err := netip.ParseAddr(strings.TrimSpace(entry))
			if err != nil {
				return addr, true
			}
			addr = hop.Unmap()
			if !isTrusted(addr, trusted) {
				return addr, true
			}
		}
	}
	return addr, true
}

func isTrusted(addr netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// limitKey is the key an address is rate-limited by: the address for IPv4,
// its /64 for IPv6.
func limitKey(addr netip.Addr) netip.Addr {
	if addr.Is4() {
		return addr
	}
	p, err := addr.Prefix(ipv6LimitBits)
	if err != nil {
		return addr
	}
	return p.Addr()
}
