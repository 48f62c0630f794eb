package geo

import (
	"math"
	"testing"
)

func TestEveryCityIsLocatedFromItsNetworks(t *testing.T) {
	octets := map[uint8]bool{}
	for i, c := range Cities() {
		if octets[c.Octet] {
			t.Fatalf("octet %d is used twice", c.Octet)
		}
		octets[c.Octet] = true
		for slot := 0; slot < 4; slot++ {
			for _, block := range []int{0, 1, 255, 256, 16383} {
				p := Prefix(i, slot, block)
				city, s, ok := Locate(p + "/24#0123456789ab")
				if !ok || city != i || s != slot {
					t.Fatalf("Locate(%s) = %d, %d, %v; want %d, %d", p, city, s, ok, i, slot)
				}
			}
		}
	}
	for _, bad := range []string{"", "10.0.0.0", "x.y.z.0", "23"} {
		if _, _, ok := Locate(bad); ok {
			t.Fatalf("Locate(%q) succeeded", bad)
		}
	}
}

func TestDistances(t *testing.T) {
	km := func(a, b string) float64 {
		var ca, cb City
		for _, c := range Cities() {
			if c.Name == a {
				ca = c
			}
			if c.Name == b {
				cb = c
			}
		}
		return DistanceKm(ca, cb)
	}
	check := func(a, b string, want float64) {
		t.Helper()
		if got := km(a, b); math.Abs(got-want) > want*0.02 {
			t.Fatalf("%s–%s: %.0f km, want about %.0f", a, b, got, want)
		}
	}
	check("London", "Paris", 344)
	check("New York", "London", 5570)
	check("Tokyo", "Sydney", 7820)
}
