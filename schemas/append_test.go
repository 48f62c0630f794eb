package schemas

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// randomEvent fills every field with values that exercise each length
// class of msgpack's strings and integers, and leaves some zero.
func randomEvent(rng *rand.Rand) Record {
	str := func() string {
		switch rng.IntN(6) {
		case 0:
			return ""
		case 1:
			return strings.Repeat("x", 31)
		case 2:
			return strings.Repeat("y", 32+rng.IntN(224))
		case 3:
			return strings.Repeat("z", 256+rng.IntN(300))
		default:
			return "v" + string(rune('a'+rng.IntN(26)))
		}
	}
	num := func() int64 {
		switch rng.IntN(9) {
		case 0:
			return 0
		case 1:
			return int64(rng.IntN(128))
		case 2:
			return 128 + int64(rng.IntN(128))
		case 3:
			return 256 + int64(rng.IntN(65_000))
		case 4:
			return 70_000 + int64(rng.IntN(1<<30))
		case 5:
			return 1 << 40
		case 6:
			return -1 - int64(rng.IntN(32))
		case 7:
			return -33 - int64(rng.IntN(100_000))
		default:
			return math.MinInt64 + int64(rng.IntN(10))
		}
	}
	env := Envelope{EventID: str(), EventTime: num(), ReceiveTime: num(), AccountID: str(), ProfileID: str(),
		DeviceID: str(), SessionID: str(), ClientNet: str(), Country: str(), DeviceType: DeviceType(str()), AppVersion: str()}
	if rng.IntN(2) == 0 {
		return &Playback{Envelope: env, Kind: PlaybackKind(str()), TitleID: str(), PositionMs: num(), DurationMs: num(),
			BitrateKbps: num(), BufferMs: num(), RebufferMs: num(), SeekFromMs: num(), WatchedMs: num(),
			SourceRow: str(), SourceArtworkID: str(), ErrorCode: str(), CDN: str(), ISP: str()}
	}
	ratings := []float64{0, 4.5, math.NaN(), math.Inf(-1), math.Copysign(0, -1), 1e-300}
	return &Browse{Envelope: env, Kind: BrowseKind(str()), TitleID: str(), Row: str(), Rank: num(), ArtworkID: str(),
		Query: str(), Rating: ratings[rng.IntN(len(ratings))], DwellMs: num()}
}

func TestHandWrittenEncodersWriteTheLibrarysBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20_000; i++ {
		rec := randomEvent(rng)
		want, err := appendReflect(nil, rec)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Append([]byte("prefix"), rec)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[len("prefix"):], want) || string(got[:len("prefix")]) != "prefix" {
			t.Fatalf("record %d (%T): hand-written encoding differs from the library's\n want % x\n got  % x", i, rec, want, got[len("prefix"):])
		}
	}
}

func TestEveryPlaybackFieldSetGivesAMap16(t *testing.T) {
	// 25 fields: more than a fixmap holds.
	e := &Playback{Envelope: base, Kind: PlayHeartbeat, TitleID: "t", PositionMs: 1, DurationMs: 2, BitrateKbps: 3,
		BufferMs: 4, RebufferMs: 5, SeekFromMs: 6, WatchedMs: 7, SourceRow: "r", SourceArtworkID: "a", ErrorCode: "e", CDN: "c", ISP: "i"}
	got, _ := Append(nil, e)
	want, _ := appendReflect(nil, e)
	if !bytes.Equal(got, want) || got[0] != 0xde {
		t.Fatalf("got % x\nwant % x", got[:3], want[:3])
	}
	var back Playback
	if err := DecodePlayback(got, &back); err != nil || back != *e {
		t.Fatalf("round trip: %v\n%+v", err, back)
	}
}
