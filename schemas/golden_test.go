package schemas

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden vectors in testdata/ from the samples")

// base is a fixed envelope: the golden files must not depend on the clock.
var base = Envelope{
	EventID: "01JD6Q7Z8X0000000000000001", EventTime: 1732600000123, ReceiveTime: 1732600000456,
	AccountID: "acc-42", ProfileID: "pro-42-1", DeviceID: "dev-9f3", SessionID: "ses-77",
	ClientNet: "203.0.113.0/24#3fa2c1", Country: "DE", DeviceType: DeviceTV, AppVersion: "7.3.1",
}

// goldenSamples are the records pinned in testdata/<name>.msgpack.
func goldenSamples() map[string]Record {
	return map[string]Record{
		"playback_start": &Playback{Envelope: base, Kind: PlayStart, TitleID: "tt-1001", DurationMs: 5_400_000,
			BitrateKbps: 4300, BufferMs: 2000, CDN: "cdn-a", ISP: "isp-telekom"},
		"playback_heartbeat": &Playback{Envelope: base, Kind: PlayHeartbeat, TitleID: "tt-1001", PositionMs: 630_000,
			DurationMs: 5_400_000, BitrateKbps: 4300, BufferMs: 12000, WatchedMs: 30_000, CDN: "cdn-a", ISP: "isp-telekom"},
		"playback_start_from_row": &Playback{Envelope: base, Kind: PlayStart, TitleID: "tt-2002", DurationMs: 2_700_000,
			BitrateKbps: 2500, SourceRow: "trending", SourceArtworkID: "art-2002-b", CDN: "cdn-b", ISP: "isp-vodafone"},
		"playback_rebuffer": &Playback{Envelope: base, Kind: PlayRebuffer, TitleID: "tt-1001", PositionMs: 600_000,
			DurationMs: 5_400_000, BitrateKbps: 1200, RebufferMs: 2300, CDN: "cdn-a", ISP: "isp-telekom"},
		"playback_error": &Playback{Envelope: base, Kind: PlayError, TitleID: "tt-1001", ErrorCode: "DRM_LICENSE_EXPIRED"},
		"browse_impression": &Browse{Envelope: base, Kind: BrowseImpression, TitleID: "tt-2002", Row: "trending",
			Rank: 3, ArtworkID: "art-2002-b", DwellMs: 850},
		"browse_search": &Browse{Envelope: base, Kind: BrowseSearch, Query: "Nordic noir — série"},
		"browse_rating": &Browse{Envelope: base, Kind: BrowseRating, TitleID: "tt-2002", Rating: 4.5},
		"catalog_title": &Title{TitleID: "tt-1001", Name: "The Long Winter", Genres: []string{"drama", "thriller"},
			Country: "NO", ReleaseDate: "2024-10-01", DurationSec: 5400, Type: TitleFilm},
		"alert_firing": &Alert{ID: "a1b2c3d4e5f60718", Kind: "account_sharing", Status: AlertFiring, Severity: SeverityHigh,
			Subject: "account:acc-42", Score: 7.25, Evidence: map[string]string{"countries": "DE,BR", "devices": "5"},
			WindowStart: 1732600000000, WindowEnd: 1732603600000, FirstSeen: 1732600012000, DetectedAt: 1732600020000},
	}
}

func TestGoldenVectorsDecodeAndReencodeByteForByte(t *testing.T) {
	for name, want := range goldenSamples() {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata", name+".msgpack")
			if *update {
				b, err := Marshal(want)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			golden, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("cannot read golden vector (run go test ./schemas -run Golden -update to create it): %v", err)
			}
			got, err := NewDecoder(Limits{}).Decode(string(want.Schema()), golden)
			if err != nil {
				t.Fatalf("golden vector does not decode: %v", err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("decoded golden vector differs from the sample (-want +got):\n%s", diff)
			}
			again, err := Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, golden) {
				t.Fatalf("re-encoding changed the bytes:\n golden %x\n now    %x", golden, again)
			}
			if err := Validate(got, Limits{MaxPastSkew: 100 * 365 * day}, timeOf(base.ReceiveTime)); err != nil {
				t.Fatalf("golden sample is not valid: %v", err)
			}
		})
	}
}
