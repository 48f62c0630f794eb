// Package anomaly is the anomaly role's processor: five detectors — account
// sharing, impossible travel, bot-like browsing, credential stuffing and
// streaming-quality incidents — whose incidents become alerts with a
// lifecycle (firing, escalated, resolved) and a deterministic id, with
// exactly-once effect across crashes and rebalances.
//
// # Two stages: re-keying, then judging
//
// The input topics are keyed by profile, so one profile's events are in
// one partition. Most detectors need more: account sharing and impossible
// travel need every event of an account (an account's profiles hash to
// different partitions, and the simulator plants sharing across several
// profiles); credential stuffing needs every event of a client network
// (forty accounts, forty profiles, all partitions); a quality cell (CDN ×
// ISP × country) gets sessions in every partition. A detector that saw a
// partition's share would see a sixth of an incident and could not tell
// sharing from travel.
//
// So the role runs in two stages inside one consumer group, as Kafka
// Streams re-partitions before an aggregation by a new key:
//
//   - Stage one, a [Forwarder] per claimed playback or browse partition,
//     sends each event that some detector wants to the re-key topic once
//     per view (account, network, cell), keyed by the view's subject:
//     "account:acc-17", "net:203.0.113.0/24", "cdn:c|isp:i|cc:DE". It drops
//     duplicate sends (an id seen among the partition's last 64 records).
//   - Stage two, a [Judge] per claimed re-key partition, runs the
//     detectors of each view over the subjects that hash to it.
//
// A detector whose verdicts depend on one profile's events alone
// ([OnArrival]: the bot detector) needs neither: one input partition holds
// all of them, in the order the profile sent them. Stage one judges it as
// each event arrives, with no re-key hop and no wait for other partitions
// (event → bot alert p99 27–53 ms at "half load", which until
// 2026-11-27 was about 28 % of make bench's (b): its generator fell
// short; see the README's Performance). Its time is the
// partition's newest event time: a late event counts as if it had come
// then, whatever the lateness. Stage one's checkpoint then resumes at the
// first record of the oldest minute still in that detector's look-back
// (plus a minute), with the open incidents and that record's predecessor
// state in the metadata, and a restart re-judges the replayed records
// silently, as stage two does.
//
// The re-key topic has as many partitions as the inputs and is read by the
// same group (co-partitioned), so scaling the group scales both stages.
//
// # One clock for many sources
//
// A re-key partition interleaves records of every input partition in
// whatever order they were fetched and written; a restart, a rebalance or
// a slow broker changes that order. Detectors must not see the
// difference, or ids and alerts would change after a crash. Each re-keyed
// record's key therefore carries its source (input topic and partition),
// its source offset and the source's mark: the newest event time of the
// source minus Config.Lateness. A record's time in stage two is its event
// time or, if that is below the mark (a late event), the mark: every later
// record of the source has a time at or above the mark. Stage two holds
// records back until every source's mark has passed their time, then
// hands them to the detectors in that order, ties broken by event id: the
// order is a function of the records alone. A late event counts as if it
// had come at the mark; only one more than Config.Horizon (a minute)
// behind is dropped, as too old to say anything about now. The price
// is latency: an alert waits for the slowest input partition and for the
// lateness. The default lateness is none, so stage two judges each
// source in its partition's order and alerts wait only for the slowest
// partition: at "half load" (the same ≈ 28 %) a plain reader of the inputs sees every input
// partition hold an event past a given one after p99 107–125 ms, and
// stuffing alerts judged by the clock took p99 131–199 ms end to end (a
// 2 s lateness, the default before, gave 2.2–2.4 s). A lateness of a few
// seconds gives exact event-time order to events that arrive that much
// out of order, for that much more latency.
//
// # Firing ahead of the clock
//
// Most of that wait buys nothing for credential stuffing: once the
// accounts a network has shown reach the threshold, more records can
// only add accounts. A detector that knows this implements [Ahead]
// ([Stuffing]). Stage two hands it each record as it buffers it; the
// detector counts the accounts observed within the window plus those
// buffered ahead up to the record's time, and if they reach the
// threshold, Observe's verdict will be active by that time, when the
// clock gets there. The incident's first active verdict therefore lies
// between the clock and the record. Stuffing incidents start (and take
// their id from) the minute of their first active verdict, so when the
// clock and the record are in the same minute, the id is known, and stage
// two fires the incident at once and opens it; when the clock arrives,
// the verdict only keeps it open. Its severity is that of any first
// verdict (high: the count grows one account at a time), so the
// lifecycle, escalation included, is that of the run by the clock.
// What differs is the firing alert's detection time, score, window and
// evidence: they say what was certain when it fired (the evidence has
// "ahead_of_clock_ms"), and a restart that fires it again may say
// something else under the same id ([Settled] clears them for
// comparisons). When the clock is in an earlier minute (lateness L makes
// that about L / 1 min of incidents), or an incident of the network is
// still open, or its observed accounts alone are at the threshold
// already (the first verdict could then be critical), it waits for the
// clock. Event → stuffing alert at "half
// load" (load delivered unmeasured), the anomaly role alone: p50 14–23 ms, p99 37–60 ms in four runs
// of five, 128 ms in one with a heavier background.
// Config.ByClock turns it off.
//
// Stage one also sends marks — records keyed "mark:<partition>" that only
// carry the source's mark — every second of event time (live, every 20 ms
// of event and wall time) to the re-key partitions whose newest mark from
// it is more than half a round old, so that a source with few subjects in
// a partition does not hold its clock back. An input
// partition that stage two hears nothing from for Config.IdleAfter of wall
// time (2 min; an input partition without any traffic) is no longer
// waited for; results are exact only while that does not happen.
//
// # Exactly-once effect
//
// (What follows is about stage two; stage one does the same for the
// detectors it judges, over its own partition.)
//
// Alert ids are derived from kind, subject and the incident's start (the
// event time of its first event, never older than the detector's
// look-back; for stuffing, the minute of its first active verdict), so a
// replay publishes the same alerts again. The alert topic is
// at-least-once: a consumer keeps one alert per (id, status, severity). The
// ClickHouse table collapses the copies (ReplacingMergeTree, key (kind,
// subject, id, status, severity)).
//
// Detectors keep state only for their look-back: what they decide depends
// on the events of the last LookBack of event time and nothing older. A
// stage-two checkpoint waits until the published alerts are durable, then
// commits as restart offset the first re-key offset holding an event of a
// minute still within the longest look-back (1 h 10 min with the default
// detectors) plus a minute, and as metadata the clock, the sources' marks
// and the open incidents (kind, subject, start, severity, last activity;
// a few kilobytes at most). A restart replays from there: the records
// judged before the commit are re-judged in event-time order to rebuild
// the detectors, silently (their alerts were published before the commit;
// the open incidents come from the metadata); the ones still held back go
// back into the buffer; everything after the commit is processed as it
// was the first time. Stage one resumes at least 64 records back, to
// rebuild its duplicate ring, and stores the partition's newest event
// time; it does
// not send again what it sent before its commit, and stage two drops the
// copies of what it sent after (same source, offset and view).
//
// All of this needs each re-key partition to hold a source's records in
// the order it sent them: stage two drops a record that comes after a
// later mark of its source. The re-key writer (alertsink.Rekey) therefore
// retries a failed write in place, holding back what is queued behind it
// (a stage-one checkpoint waits meanwhile), and never sends a failed record
// again behind later ones; each request stays under the broker's size
// limit, since the broker refuses an oversized one whole.
//
// Deterministic given the input order per partition also means bounded:
// each detector caps its subjects (least recently seen evicted) and its
// history per subject. Exactness holds while no cap is reached.
//
// # Lifecycle
//
// Per kind and subject there is at most one open incident. Its first
// active verdict publishes a firing alert; a verdict of higher severity
// an escalated one; further active verdicts only keep it open (the
// suppression that makes an ongoing incident one alert). A detector may
// also say that the evidence is weaker but the incident not over (the
// quality detector while viewers leave a degraded cell): such a verdict
// keeps an open incident open and never opens one. When the detector's
// quiet period passes without an active verdict, a resolved alert is
// published, with the event time the quiet period ended as its detection
// time. Every time in an alert is event time.
//
// # The detectors
//
//   - [Sharing] (account view): playback from three countries within an
//     hour, streams live from three cities at once, or more concurrent
//     streams than the largest plan allows.
//   - [Travel] (account view): one profile's consecutive activity from
//     places farther apart than 1000 km/h allows, held ten minutes and
//     dropped if the account shows a third place (sharing).
//   - [Bot] (account view, judged on arrival): fifty impressions of a
//     profile faster than two a second, at regular intervals, without
//     dwell.
//   - [Stuffing] (network view, fired ahead of the clock): ten accounts
//     or more from one /24 within five minutes.
//   - [Quality] (cell view): a two-minute rebuffer ratio far above the
//     cell's median of the last hour (robust: median and MAD of 5-minute
//     blocks), significant as a count, with a minimum volume; or a burst
//     of start failures.
//
// `atlas eval anomaly` measures them against the simulator's planted
// incidents, and the quality baseline on the NAB series.
package anomaly
