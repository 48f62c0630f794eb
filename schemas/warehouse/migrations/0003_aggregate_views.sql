-- Views that dashboards read over the tables of 0002. Each reads its table
-- with FINAL, so that of the rows sharing a key (window, dimensions,
-- source) only the highest version counts: a replayed row is counted once
-- and a provisional row never beside or instead of a complete one. Then it
-- sums over sources (src_topic, src_partition): every partition of a topic
-- contributes its own row to a window.
--
--   …_by_minute   one row per one-minute window × dimensions
--   …_by_hour     window_start = toStartOfHour, summed over the minutes
--   …_by_day      window_start = toStartOfDay (a DateTime at 00:00 UTC)
--
-- All views have the same columns at every granularity, so a dashboard
-- switches granularity by switching the view's name.
--
-- Distinct viewers are counted from the rows' profile hashes
-- (uniqExactArray), exactly, across sources, minutes, hours and days; the
-- rows' own viewers column is each partition's count and is not summed.
-- dropoff is summed element-wise (sumForEach).
--
-- The roll-ups are plain views, computed when read, on purpose: a
-- materialized view fires on every INSERT, replays included, and would add
-- a replayed minute twice. Plain views inherit FINAL's deduplication.
--
-- Cost. 18.16 does not push a WHERE on a view into the view's query
-- (measured: a filter on window_start reads every row of the table), so a
-- view reads its whole table each time. The named queries (queries/*.sql)
-- therefore read the tables with FINAL and filter on the sorting key
-- themselves; dashboards over long histories should do the same, or use
-- a server that pushes predicates into views.
--
-- Ratios are 0 when their denominator is 0. The inner queries rename the
-- value columns so that no output alias shadows a column it is computed
-- from: servers resolve such names differently across versions.
CREATE VIEW IF NOT EXISTS {{.Database}}.playback_by_minute AS
SELECT
    ws AS window_start,
    title_id,
    country,
    device_type,
    sum(s) AS starts,
    sum(c) AS completes,
    sum(w) AS watch_ms,
    length(viewer_hashes) AS viewers,
    groupUniqArrayArray(h) AS viewer_hashes,
    sumForEach(d) AS dropoff
FROM
(
    SELECT window_start AS ws, title_id, country, device_type,
           starts AS s, completes AS c, watch_ms AS w, viewer_hashes AS h, dropoff AS d
    FROM {{.Database}}.playback_minute FINAL
)
GROUP BY window_start, title_id, country, device_type;

CREATE VIEW IF NOT EXISTS {{.Database}}.playback_by_hour AS
SELECT
    toStartOfHour(ws) AS window_start,
    title_id,
    country,
    device_type,
    sum(s) AS starts,
    sum(c) AS completes,
    sum(w) AS watch_ms,
    uniqExactArray(h) AS viewers,
    sumForEach(d) AS dropoff
FROM
(
    SELECT window_start AS ws, title_id, country, device_type,
           starts AS s, completes AS c, watch_ms AS w, viewer_hashes AS h, dropoff AS d
    FROM {{.Database}}.playback_minute FINAL
)
GROUP BY window_start, title_id, country, device_type;

CREATE VIEW IF NOT EXISTS {{.Database}}.playback_by_day AS
SELECT
    toStartOfDay(ws) AS window_start,
    title_id,
    country,
    device_type,
    sum(s) AS starts,
    sum(c) AS completes,
    sum(w) AS watch_ms,
    uniqExactArray(h) AS viewers,
    sumForEach(d) AS dropoff
FROM
(
    SELECT window_start AS ws, title_id, country, device_type,
           starts AS s, completes AS c, watch_ms AS w, viewer_hashes AS h, dropoff AS d
    FROM {{.Database}}.playback_minute FINAL
)
GROUP BY window_start, title_id, country, device_type;

-- Quality: sessions are the playback sessions the processor counted for a
-- CDN × ISP × country; start_failure_rate and error_rate are per session;
-- mean_bitrate_kbps is the mean of the bitrate samples.
CREATE VIEW IF NOT EXISTS {{.Database}}.quality_by_minute AS
SELECT
    ws AS window_start,
    cdn,
    isp,
    country,
    sum(se) AS sessions,
    sum(rb) AS rebuffers,
    sum(rbms) AS rebuffer_ms,
    sum(sf) AS start_failures,
    sum(er) AS errors,
    sum(bs) AS bitrate_sum,
    sum(bn) AS bitrate_samples,
    if(sessions = 0, 0, rebuffers / sessions) AS rebuffers_per_session,
    if(sessions = 0, 0, start_failures / sessions) AS start_failure_rate,
    if(sessions = 0, 0, errors / sessions) AS error_rate,
    if(bitrate_samples = 0, 0, bitrate_sum / bitrate_samples) AS mean_bitrate_kbps
FROM
(
    SELECT window_start AS ws, cdn, isp, country, sessions AS se, rebuffers AS rb, rebuffer_ms AS rbms,
           start_failures AS sf, errors AS er, bitrate_sum AS bs, bitrate_samples AS bn
    FROM {{.Database}}.quality_minute FINAL
)
GROUP BY window_start, cdn, isp, country;

CREATE VIEW IF NOT EXISTS {{.Database}}.quality_by_hour AS
SELECT
    toStartOfHour(ws) AS window_start,
    cdn,
    isp,
    country,
    sum(se) AS sessions,
    sum(rb) AS rebuffers,
    sum(rbms) AS rebuffer_ms,
    sum(sf) AS start_failures,
    sum(er) AS errors,
    sum(bs) AS bitrate_sum,
    sum(bn) AS bitrate_samples,
    if(sessions = 0, 0, rebuffers / sessions) AS rebuffers_per_session,
    if(sessions = 0, 0, start_failures / sessions) AS start_failure_rate,
    if(sessions = 0, 0, errors / sessions) AS error_rate,
    if(bitrate_samples = 0, 0, bitrate_sum / bitrate_samples) AS mean_bitrate_kbps
FROM
(
    SELECT window_start AS ws, cdn, isp, country, sessions AS se, rebuffers AS rb, rebuffer_ms AS rbms,
           start_failures AS sf, errors AS er, bitrate_sum AS bs, bitrate_samples AS bn
    FROM {{.Database}}.quality_minute FINAL
)
GROUP BY window_start, cdn, isp, country;

CREATE VIEW IF NOT EXISTS {{.Database}}.quality_by_day AS
SELECT
    toStartOfDay(ws) AS window_start,
    cdn,
    isp,
    country,
    sum(se) AS sessions,
    sum(rb) AS rebuffers,
    sum(rbms) AS rebuffer_ms,
    sum(sf) AS start_failures,
    sum(er) AS errors,
    sum(bs) AS bitrate_sum,
    sum(bn) AS bitrate_samples,
    if(sessions = 0, 0, rebuffers / sessions) AS rebuffers_per_session,
    if(sessions = 0, 0, start_failures / sessions) AS start_failure_rate,
    if(sessions = 0, 0, errors / sessions) AS error_rate,
    if(bitrate_samples = 0, 0, bitrate_sum / bitrate_samples) AS mean_bitrate_kbps
FROM
(
    SELECT window_start AS ws, cdn, isp, country, sessions AS se, rebuffers AS rb, rebuffer_ms AS rbms,
           start_failures AS sf, errors AS er, bitrate_sum AS bs, bitrate_samples AS bn
    FROM {{.Database}}.quality_minute FINAL
)
GROUP BY window_start, cdn, isp, country;

-- Funnel: select_rate = selects / impressions, play_rate = plays / selects,
-- conversion = plays / impressions.
CREATE VIEW IF NOT EXISTS {{.Database}}.funnel_by_minute AS
SELECT
    ws AS window_start,
    row,
    artwork_id,
    sum(i) AS impressions,
    sum(s) AS selects,
    sum(p) AS plays,
    if(impressions = 0, 0, selects / impressions) AS select_rate,
    if(selects = 0, 0, plays / selects) AS play_rate,
    if(impressions = 0, 0, plays / impressions) AS conversion
FROM
(
    SELECT window_start AS ws, row, artwork_id, impressions AS i, selects AS s, plays AS p
    FROM {{.Database}}.funnel_minute FINAL
)
GROUP BY window_start, row, artwork_id;

CREATE VIEW IF NOT EXISTS {{.Database}}.funnel_by_hour AS
SELECT
    toStartOfHour(ws) AS window_start,
    row,
    artwork_id,
    sum(i) AS impressions,
    sum(s) AS selects,
    sum(p) AS plays,
    if(impressions = 0, 0, selects / impressions) AS select_rate,
    if(selects = 0, 0, plays / selects) AS play_rate,
    if(impressions = 0, 0, plays / impressions) AS conversion
FROM
(
    SELECT window_start AS ws, row, artwork_id, impressions AS i, selects AS s, plays AS p
    FROM {{.Database}}.funnel_minute FINAL
)
GROUP BY window_start, row, artwork_id;

CREATE VIEW IF NOT EXISTS {{.Database}}.funnel_by_day AS
SELECT
    toStartOfDay(ws) AS window_start,
    row,
    artwork_id,
    sum(i) AS impressions,
    sum(s) AS selects,
    sum(p) AS plays,
    if(impressions = 0, 0, selects / impressions) AS select_rate,
    if(selects = 0, 0, plays / selects) AS play_rate,
    if(impressions = 0, 0, plays / impressions) AS conversion
FROM
(
    SELECT window_start AS ws, row, artwork_id, impressions AS i, selects AS s, plays AS p
    FROM {{.Database}}.funnel_minute FINAL
)
GROUP BY window_start, row, artwork_id;

-- Late events per window, source topic and kind; lateness is how far the
-- partition's watermark was past the event when it arrived.
CREATE VIEW IF NOT EXISTS {{.Database}}.late_events_by_minute AS
SELECT
    ws AS window_start,
    src_topic,
    kind,
    count() AS late_events,
    max(watermark_ms - event_time_ms) AS max_lateness_ms
FROM
(
    SELECT window_start AS ws, src_topic, kind, watermark_ms, event_time_ms
    FROM {{.Database}}.late_events FINAL
)
GROUP BY window_start, src_topic, kind;

-- The catalog as it is now: one row per title, its latest version.
CREATE VIEW IF NOT EXISTS {{.Database}}.titles_latest AS
SELECT title_id, name, genres, country, release_date, duration_sec, type, version
FROM {{.Database}}.titles FINAL;
