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
//   - Catalog: Config.Titles titles ("tt-00001"…) with 1–3 genres, a
//     country of origin, a release date, a duration, film or series, 1–3
//     artworks ("art-00001-a"…), a Zipf popularity (exponent 1 over a
//     random rank; titles released in the last 60 days ×4) and a unit
//     latent vector of [Dim] floats near its genres' centroids. Run
//     publishes it to the catalog topic first.
//   - Accounts ("acc-N") with a plan (basic 1 stream, standard 2, premium
//     4), a home city (package geo: cities map to countries, time zones and
//     IPv4 networks), a home network, 1–4 devices ("dev-N-k", a device type,
//     an app version, some phones on a mobile network) and 1–5 profiles
//     ("pro-N-k") up to Config.Profiles, each with a unit taste vector.
//     ClientNet is "<a.b.c.0>/24#<12 hex>", as the ingest gateway writes it.
//   - Sessions arrive as a Poisson process of 2 sessions per profile and
//     day, shaped by a diurnal curve in each profile's local time (low at
//     4–5 am, peak at 7–9 pm), skipped when the profile is already watching
//     or the account is at its plan's stream limit.
//   - Browse: rows ("continue-watching", "trending", "top-10",
//     "new-releases", "top-picks", "because-you-watched", "award-winning",
//     and "search" for search results) of 6–10 impressions with rank,
//     artwork (a stable per-profile A/B choice) and dwell; hovers, trailers,
//     add-to-list; searches. A select depends on taste (the dot product of
//     taste and title vectors), rank and artwork appeal, and starts a
//     playback whose start carries SourceRow and SourceArtworkID. Some
//     sessions resume a half-watched title directly; autoplay of the next
//     episode starts without a source row.
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
// duplicate send), incidents, profiles (id, account, taste) and titles (id,
// vector, popularity).
package sim
