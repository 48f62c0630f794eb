package schemas

import "testing"

func BenchmarkDecodePlayback(b *testing.B) {
	raw := mustGolden(b, "playback_start")
	d := NewDecoder(Limits{})
	var e Playback
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if err := d.Playback(raw, &e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeBrowse(b *testing.B) {
	raw := mustGolden(b, "browse_impression")
	d := NewDecoder(Limits{})
	var e Browse
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if err := d.Browse(raw, &e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodePlayback(b *testing.B) {
	e := goldenSamples()["playback_start"]
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = Append(buf[:0], e); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkValidatePlayback(b *testing.B) {
	e := goldenSamples()["playback_start"]
	now := timeOf(base.ReceiveTime)
	b.ReportAllocs()
	for b.Loop() {
		if err := Validate(e, Limits{}, now); err != nil {
			b.Fatal(err)
		}
	}
}
