package embeddings

import (
	"fmt"
	"math/rand/v2"

	"github.com/atlas-stream/atlas/schemas"
)

const (
	pbTopic = "pb"
	brTopic = "br"
)

// logs is synthetic traffic per partition: playback and browse records in
// offset order.
type logs map[int]*[2][]schemas.Record

// traffic makes n sessions of profiles with planted tastes over parts
// partitions: a profile of genre g mostly watches titles of g, sometimes
// selects in the browse UI first, sometimes replays, and its events are
// now and then sent twice.
func traffic(seed uint64, n, parts int) logs {
	rng := rand.New(rand.NewPCG(seed, 99))
	out := logs{}
	for p := 0; p < parts; p++ {
		out[p] = &[2][]schemas.Record{}
	}
	const profiles, titles, genres = 60, 80, 4
	countries := []string{"DE", "FR", "US"}
	for i := 0; i < n; i++ {
		u := rng.IntN(profiles)
		pid := fmt.Sprintf("p%02d", u)
		part := u % parts
		g := u % genres
		ti := rng.IntN(titles/genres)*genres + g
		if rng.IntN(4) == 0 {
			ti = rng.IntN(titles)
		}
		title := fmt.Sprintf("t%02d", ti)
		env := schemas.Envelope{EventID: fmt.Sprintf("e%d", i), EventTime: int64(1e12 + i*1000), AccountID: "a" + pid,
			ProfileID: pid, DeviceID: "d", SessionID: fmt.Sprintf("s%d", i), Country: countries[u%3], DeviceType: schemas.DeviceTV}
		l := out[part]
		if rng.IntN(3) == 0 {
			l[1] = append(l[1], &schemas.Browse{Envelope: env, Kind: schemas.BrowseSelect, TitleID: title})
		}
		if rng.IntN(5) == 0 {
			l[1] = append(l[1], &schemas.Browse{Envelope: env, Kind: schemas.BrowseImpression, TitleID: title})
		}
		start := &schemas.Playback{Envelope: env, Kind: schemas.PlayStart, TitleID: title, DurationMs: 100_000}
		l[0] = append(l[0], start)
		if rng.IntN(10) == 0 {
			l[0] = append(l[0], start) // a duplicate send
		}
		for h := 0; h < rng.IntN(3); h++ {
			l[0] = append(l[0], &schemas.Playback{Envelope: env, Kind: schemas.PlayHeartbeat, TitleID: title, PositionMs: int64(h) * 30_000, DurationMs: 100_000})
		}
		end := schemas.PlayComplete
		pos := int64(100_000)
		if rng.IntN(3) == 0 {
			end, pos = schemas.PlayStop, rng.Int64N(100_000)
		}
		l[0] = append(l[0], &schemas.Playback{Envelope: env, Kind: end, TitleID: title, PositionMs: pos, DurationMs: 100_000})
	}
	return out
}

func playback(r schemas.Record) *schemas.Playback {
	e, _ := r.(*schemas.Playback)
	return e
}
