// Package sim is Atlas's traffic simulator: a seeded, deterministic
// streaming service whose events go to the same topics as real traffic, and
// whose ground truth ([Truth]) says exactly what a correct Atlas must
// compute from them. Later tests compare ClickHouse totals, alerts and
// recommendations with it: equal, not approximately equal.
//
// # Determinism
//
// A [Config] (seed included) fixes everything: the same Config gives the
// same records, byte for byte, in the same order, and the same truth. The
// simulation never reads the wall clock; simulated time starts at
// Config.Epoch (default [DefaultEpoch], 2026-11-02T00:00:00Z) and advances
// with the simulation. Pacing (the [Paced] sink, `atlas simulate --rate`)
// only changes when records leave, never which. Separate random streams
// drive the world (catalog and population), the traffic, the delivery
// (delays, duplicates) and the incidents, so that changing, say, the late
// rate changes nothing but the delivery.
//
// # The world
//
//   - Catalog: Config.Titles titles ("tt-00001"…), each in a taste
//     community (see Taste), with 1–3 genres (the first its community's),
//     a country of origin (its community's language, if it has one), a
//     release date, a duration, film or series, 1–3 artworks
//     ("art-00001-a"…), an appeal within its community, a popularity and
//     a unit latent vector of [Dim] floats near its community's centroid.
//     Run publishes it to the catalog topic first.
//   - Accounts ("acc-N") with a plan (basic 1 stream, standard 2, premium
//     4), a home city (package geo: cities map to countries, time zones and
//     IPv4 networks), a home network, 1–4 devices ("dev-N-k", a device type,
//     an app version, some phones on a mobile network) and 1–5 profiles
//     ("pro-N-k") up to Config.Profiles, each with a planted taste (see
//     Taste).
//     ClientNet is "<a.b.c.0>/24#<12 hex>", as the ingest gateway writes it.
//   - Sessions arrive as a Poisson process of 2 sessions per profile and
//     day, shaped by a diurnal curve in each profile's local time (low at
//     4–5 am, peak at 7–9 pm), skipped when the profile is already watching
//     or the account is at its plan's stream limit.
//   - Browse: rows ("continue-watching", "trending", "top-10",
//     "new-releases", "top-picks", "because-you-watched", "award-winning",
//     and "search" for search results) of 6–10 impressions with rank,
//     artwork (a stable per-profile A/B choice) and dwell; hovers, trailers,
//     add-to-list; searches. A select depends on taste (see Taste), rank
//     and artwork appeal, and starts a playback whose start carries
//     SourceRow and SourceArtworkID. Some sessions resume a half-watched
//     title or the next episode of a series directly; autoplay of the
//     next episode starts without a source row.
//   - Playback: start (or a start failure: an error event at position 0,
//     maybe retried), then a heartbeat every 30 s of playback with position,
//     bitrate, buffer and watched time, and in between pauses and resumes,
//     seeks, rebuffers and bitrate changes; the session ends with complete
//     (at the end of the title) or stop (abandonment). Taste decides how far
//     a viewer means to watch; every stall may make them leave. Stall and
//     switch rates and stall lengths are drawn from distributions measured
//     on the youtube-qoe data set (see qoe.go), scaled by network class.
//     Every playback event carries CDN and ISP; every event its Country and
//     DeviceType.
//
// # Taste
//
// Viewers have strong, persistent tastes, planted so that a recommender
// has something to find (taste.go holds the parameters):
//
//   - Taste communities: the catalog is cut into max(14, Titles/30)
//     communities (66 for 2,000 titles), groups of titles that the same
//     viewers watch. Each has a main genre, the genres' audiences (drama
//     and comedy 14 %, … anime 4 %) deciding how many each gets, and one
//     in four (an anime one four in five) a language of origin:
//     "drama-3", "drama-ko-1", "anime-ja-1" (14 of the 66). A title
//     belongs to one community; its appeal within it follows a Zipf law
//     (exponent 1) over a random rank, ×4 for a release of the last 60
//     days, so that the first 10 of a community's ~30 titles hold about
//     three quarters of its appeal.
//   - Favourites: a profile follows one, two or three international
//     communities (20/50/30 %), drawn by the communities' shares, the
//     second and third half the time in the main genre of one it has, the
//     first liked most. Half of the viewers in a country with titles of its
//     own language (es, pt, fr, de, it, nordic, tr, hi, ko, ja) and a tenth
//     of the others (fans of Korean or Japanese titles) also follow a
//     community of that language, with 30 % of their intents (22 % of
//     the profiles). In an account of two or more profiles the last is a
//     child's 35 % of the time: two animation or family communities. So a
//     household's profiles differ.
//   - Intent: each session the viewer is in the mood for one favourite,
//     drawn by its weight, or, in 3–12 % of sessions (fixed per profile),
//     for anything popular. "trending" and "top-10" show popular titles;
//     "top-picks" draws three in four candidates from the profile's
//     favourites and sorts by affinity; "because-you-watched" shows the
//     community of the latest title played; search results come from the
//     intent. A select happens with probability 0.15 × artwork appeal ×
//     fit / (1 + rank/4), ×4 in search, capped at 0.7; fit is 0.04 +
//     0.3·affinity, +0.66 for a title of the intended community, 0.25 +
//     0.35·affinity without an intent, at least 0.6 in continue-watching.
//   - Affinity, 0..1: 0.6 to 1 for a title of a favourite community (by
//     the favourite's weight), 0.3 for another community of a favourite's
//     genre, else 0. It decides how far a viewer means to watch (to the end
//     with probability 0.92/(1+e^(−6(affinity−0.3)))), hovers, and the
//     stars of a rating.
//   - Popularity follows taste: a title's is its community's share of the
//     population's intents (plus 2 % spread by community share, so every
//     community has some audience) times its share of the community's
//     appeal. It orders "top-10" and "trending" and draws exploration;
//     the ten most popular of 2,000 titles hold about 9 %.
//   - Series and sampling: a completed episode leaves its series in
//     continue-watching for the next one (80 %) unless autoplay goes on
//     (50 %, at most 3 in a row); a viewer who stops a title within 10
//     minutes of starting it, by choice rather than after stalls, goes
//     back to the rows 60 % of the time (at most 3 times a session).
//
// What it gives, with the default rates: TestPlantedTasteIsMeasurable (400 profiles, 1,200 titles, 600,000
// events) finds 88 % of a profile's plays in the main genres of its
// favourite communities, which get 16 % of everyone's plays (lift 5.5;
// 5.0–5.6 over seeds 1–7). On 2,000 profiles and 6,000,000 events (15
// simulated days, 17,587 first plays), 80 % of first plays are in a
// favourite community, and
//
//	atlas simulate --no-kafka --out sim.rec.gz --events 6000000 --profiles 2000 --no-incidents
//	atlas eval recs --input sim.rec.gz
//
// prints recall@10 (NDCG@10) of 0.1056 (0.0614) for popularity, 0.2393
// (0.1271) for item-kNN and 0.2565 (0.1372) for the embeddings learner:
// 2.43× popularity (2.51× with --seed 2 and with --seed 3). An oracle that ranks by the
// planted weights (BenchmarkTasteOracle) reaches 0.4151, 3.93×. Half the
// history (3,000,000 events, about 5 first plays per profile) gives the
// learner 0.2052 against 0.1144, 1.79×: it needs a few plays of each
// profile. The taste model before this one (a profile's 8-dimensional
// vector near one or two genres, selects by its dot product with the
// title's, a global Zipf popularity) gave 0.2185 for popularity and
// 0.2086 for the learner on the same command (0.95×), and an oracle of
// the planted vectors about 1.4×.
//
// # Planted incidents
//
// Unless Config.NoIncidents, ten incidents are planted at fixed points of
// the run's progress (events sent, or simulated time with only a Span),
// each starting on a window boundary two windows after it is planted:
//
//   - quality_degradation, subject "cdn:<cdn>|isp:<isp>|cc:<CC>" (the
//     busiest triple, then the second busiest): for 15 minutes stalls are
//     10× as frequent (+0.4/min), 3× as long, start failures 50% instead of
//     0.6%, bitrates drop. Start/End is that range.
//   - account_sharing, "account:<id>": six new devices in four cities of
//     four countries other than home, each playing 12–20 minutes, starting
//     7 minutes apart.
//   - impossible_travel, "account:<id>": a profile plays 8–12 minutes at
//     home, then 25–35 minutes after the start plays from a city at least
//     5,000 km away (evidence: km, gap, km/h).
//   - bot, "account:<id>" (an account outside the population): impressions
//     every 197–203 ms with no dwell for 10 minutes from a hosting network.
//   - credential_stuffing, "net:<a.b.c.0>/24": 40 accounts each browse 1–3
//     impressions from one hosting /24 within 4 minutes.
//
// For the event-based kinds Start is the first planted event's time and
// End the last one's plus 1 ms. Truncated marks an incident the run ended
// in; an incident planted too late to begin (no planted event, or a quality
// range after the end of the run) is not listed.
//
// # Delivery: partitions, lateness, duplicates
//
// An event's partition is that of its key, the profile id: kafka-go's
// Murmur2Balancer over partitions 0..Config.Partitions−1, for the playback
// and the browse topic alike. ReceiveTime is the simulated send time.
//
// Events are sent in send-time order. For each (topic, partition) the
// simulator keeps an [eventtime.Watermark] with Config.Rules over the events
// in the exact order it sends them; an event is LATE iff IsLate(EventTime)
// when it is sent (check, then Observe; every send is observed, duplicates
// too).
//
//   - Out of order: with probability OutOfOrderRate per event a delay is
//     owed and paid by the next heartbeat, which is held back by 1 ms to
//     lateness+grace. Such an event can never be late: every event sent
//     before it has an event time ≤ its send time.
//   - Late: likewise with LateRate, held back by window + lateness + grace +
//     1 s to 2 min. It is late only if the rule says so; the truth follows
//     the rule, never the intention.
//   - Duplicates: with probability DuplicateRate per send a duplicate is
//     owed and paid by the next event sent without an injected delay: the
//     very same record (same id, same bytes) is sent again after 1–4 more
//     sends, and before any send more than min(1 s, (lateness+grace)/2)
//     later — so to the same partition, shortly after, and never late
//     (Totals.LateDuplicateCopies counts copies that were; it is 0).
//     Consumers deduplicate by event id within a window: the first copy
//     counts, later copies do not.
//
// # Expected aggregates
//
// Over on-time events, each event id once (the first copy), by 1-minute
// window (Rules.WindowStart of EventTime; windows are epoch ms):
//
//   - Playback per (window, title, country, device type): starts = events
//     of kind start; completes = kind complete; watch_ms = sum of WatchedMs
//     over all playback events; viewers = distinct ProfileIDs with any
//     playback event; dropoff[d] = stop events (abandonment; complete is
//     not a stop) with d = floor(10·PositionMs/DurationMs) clamped to 0..9
//     (0 if DurationMs is 0). A row exists for every key with an on-time
//     playback event.
//   - Quality per (window, CDN, ISP, country): sessions = start events;
//     rebuffers = rebuffer events; rebuffer_ms = sum of RebufferMs;
//     start_failures = error events with PositionMs 0; errors = error
//     events; bitrate_sum = sum of BitrateKbps over heartbeats;
//     bitrate_samples = heartbeats. Rows whose counters are all 0 are
//     omitted.
//   - Funnel per (window, row, artwork): impressions = impression events
//     (Browse.Row, Browse.ArtworkID); selects = select events; plays =
//     playback starts with SourceRow = row and SourceArtworkID = artwork.
//     Events without a row are not in the funnel. Rows whose counters are
//     all 0 are omitted.
//
// Tables are sorted by window, then by their dimensions as strings.
//
// # The truth file
//
// [Truth.WriteFile] writes JSON (gzip when the name ends in .gz);
// [LoadTruth] reads it back. Top-level keys: version, params (seed, epoch,
// counts, rates, partitions, window/lateness/grace), totals (sent incl.
// duplicates, unique, duplicates, late, out_of_order, the injected delays,
// per-topic counts, first/last event time), partitions (per topic and
// partition: sent, late, max event time), playback, quality, funnel, late
// (event id, window, topic, partition), duplicates (event ids, one per
// duplicate send), incidents, profiles (id, account, taste vector,
// favourite communities with their shares, exploration share) and titles
// (id, vector, community, popularity).
package sim
