// Package geo is the simulator's small, fixed world map: cities with their
// country, coordinates, time zone and IPv4 networks, and the ISPs of each
// country. The mapping from a city to its networks is deterministic and
// reversible, so that a consumer can place a ClientNet ("203.0.113.0/24#…")
// back in its city with [Locate] — a stand-in for the geo-IP database a
// production fraud detector would use.
//
// Network plan: every city owns the IPv4 /8 whose first octet is
// [City.Octet]. The second octet's top two bits select the ISP slot (0, 1:
// the country's fixed-line ISPs, 2: its mobile ISP, 3: hosting), the low six
// bits and the third octet number the /24 blocks inside it.
package geo

import (
	"math"
	"strconv"
	"strings"
)

// City is one place where subscribers live.
type City struct {
	Name    string
	Country string // ISO 3166-1 alpha-2
	Lat     float64
	Lon     float64
	// UTCOffsetMin is the city's offset from UTC in minutes (standard
	// time; the simulator ignores daylight saving).
	UTCOffsetMin int
	// Weight is the city's share of subscribers, relative to the others.
	Weight float64
	// Octet is the first octet of every network of the city.
	Octet uint8
}

var cities = []City{
	{"New York", "US", 40.71, -74.01, -300, 9, 23},
	{"Chicago", "US", 41.88, -87.63, -360, 5, 24},
	{"Los Angeles", "US", 34.05, -118.24, -480, 7, 31},
	{"Dallas", "US", 32.78, -96.80, -360, 4, 34},
	{"Toronto", "CA", 43.65, -79.38, -300, 4, 38},
	{"Vancouver", "CA", 49.28, -123.12, -480, 2, 39},
	{"Mexico City", "MX", 19.43, -99.13, -360, 5, 41},
	{"São Paulo", "BR", -23.55, -46.63, -180, 7, 45},
	{"Rio de Janeiro", "BR", -22.91, -43.17, -180, 3, 46},
	{"Buenos Aires", "AR", -34.60, -58.38, -180, 3, 47},
	{"London", "GB", 51.51, -0.13, 0, 7, 51},
	{"Manchester", "GB", 53.48, -2.24, 0, 3, 52},
	{"Dublin", "IE", 53.35, -6.26, 0, 1, 53},
	{"Paris", "FR", 48.86, 2.35, 60, 6, 57},
	{"Lyon", "FR", 45.76, 4.84, 60, 2, 58},
	{"Berlin", "DE", 52.52, 13.40, 60, 5, 62},
	{"Munich", "DE", 48.14, 11.58, 60, 3, 63},
	{"Hamburg", "DE", 53.55, 9.99, 60, 2, 64},
	{"Madrid", "ES", 40.42, -3.70, 60, 4, 66},
	{"Rome", "IT", 41.90, 12.50, 60, 4, 67},
	{"Amsterdam", "NL", 52.37, 4.90, 60, 3, 68},
	{"Stockholm", "SE", 59.33, 18.07, 60, 2, 69},
	{"Oslo", "NO", 59.91, 10.75, 60, 1, 70},
	{"Warsaw", "PL", 52.23, 21.01, 60, 3, 71},
	{"Istanbul", "TR", 41.01, 28.98, 180, 4, 73},
	{"Cairo", "EG", 30.04, 31.24, 120, 2, 74},
	{"Lagos", "NG", 6.52, 3.38, 60, 2, 75},
	{"Johannesburg", "ZA", -26.20, 28.05, 120, 2, 76},
	{"Dubai", "AE", 25.20, 55.27, 240, 2, 77},
	{"Mumbai", "IN", 19.08, 72.88, 330, 5, 78},
	{"Delhi", "IN", 28.61, 77.21, 330, 4, 79},
	{"Singapore", "SG", 1.35, 103.82, 480, 2, 80},
	{"Jakarta", "ID", -6.21, 106.85, 420, 3, 81},
	{"Seoul", "KR", 37.57, 126.98, 540, 4, 82},
	{"Tokyo", "JP", 35.68, 139.69, 540, 6, 83},
	{"Osaka", "JP", 34.69, 135.50, 540, 2, 84},
	{"Sydney", "AU", -33.87, 151.21, 600, 3, 85},
	{"Melbourne", "AU", -37.81, 144.96, 600, 2, 86},
	{"Auckland", "NZ", -36.85, 174.76, 720, 1, 87},
}

// Cities returns the city table. The order is fixed: the simulator refers to
// cities by index. The caller must not modify the slice.
func Cities() []City { return cities }

// ISP slots in the second octet of a city's networks.
const (
	SlotFixed1  = 0
	SlotFixed2  = 1
	SlotMobile  = 2
	SlotHosting = 3
)

// ISP returns the name of the ISP in a slot of a country: "de-telco",
// "de-cable", "de-mobile" or "de-hosting".
func ISP(country string, slot int) string {
	cc := strings.ToLower(country)
	switch slot {
	case SlotFixed1:
		return cc + "-telco"
	case SlotFixed2:
		return cc + "-cable"
	case SlotMobile:
		return cc + "-mobile"
	default:
		return cc + "-hosting"
	}
}

// Prefix returns the /24 network "A.B.C.0" number block (0..16383) of an
// ISP slot in a city.
func Prefix(city, slot, block int) string {
	c := cities[city]
	b := slot<<6 | (block>>8)&63
	return strconv.Itoa(int(c.Octet)) + "." + strconv.Itoa(b) + "." + strconv.Itoa(block&255) + ".0"
}

// Locate returns the city and ISP slot of a network prefix ("A.B.C.0") or a
// ClientNet as the ingest gateway writes it ("A.B.C.0/24#hash"). ok is
// false for networks outside the simulator's plan.
func Locate(clientNet string) (city int, slot int, ok bool) {
	a, rest, found := strings.Cut(clientNet, ".")
	if !found {
		return 0, 0, false
	}
	b, _, found := strings.Cut(rest, ".")
	if !found {
		return 0, 0, false
	}
	oa, err1 := strconv.Atoi(a)
	ob, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || ob < 0 || ob > 255 {
		return 0, 0, false
	}
	for i, c := range cities {
		if int(c.Octet) == oa {
			return i, ob >> 6, true
		}
	}
	return 0, 0, false
}

// DistanceKm is the great-circle distance between two cities.
func DistanceKm(a, b City) float64 {
	const r = 6371.0
	rad := math.Pi / 180
	dLat := (b.Lat - a.Lat) * rad
	dLon := (b.Lon - a.Lon) * rad
	h := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(a.Lat*rad)*math.Cos(b.Lat*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * r * math.Asin(math.Min(1, math.Sqrt(h)))
}
