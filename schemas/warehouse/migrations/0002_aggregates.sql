-- Tables of the aggregates role (DESIGN.md, "Exactly-once effect into
-- ClickHouse"), written by consumers/aggregates/chsink from the row types
-- of consumers/aggregates (rows.go). One row per one-minute window ×
-- dimensions × source partition.
--
-- Idempotence. Every row carries its source (src_topic, src_partition) and a
-- version (the offset after the last record folded into it). The sorting
-- key is (window_start, dimensions, src_topic, src_partition), so a replay
-- rewrites a row with the same key, and ReplacingMergeTree(version) keeps
-- only the highest version of each key: a replayed row replaces the
-- original, and a provisional row (lower version) written after a complete
-- one loses. Merges happen in the background and may never have run when a
-- query reads, so readers never trust the raw tables: they go through the
-- views of 0003 (FINAL, then a sum over sources) or apply FINAL themselves.
-- Under FINAL, filter only on sorting-key columns (window_start and the
-- dimensions): ClickHouse may move WHERE to PREWHERE, which runs before the
-- versions of a key are collapsed, so a filter on a value column could
-- keep an old version. Key columns are equal in every version of a row.
--
-- Types. window_start is the window's start (DateTime, UTC, from the row's
-- milliseconds); viewer_hashes are the sorted 64-bit hashes of the distinct
-- profiles of the row, so that roll-ups count distinct viewers exactly
-- (uniqExactArray) across minutes and sources; dropoff has 10 elements,
-- stops by decile of the title's duration. written_at is when the row
-- reached ClickHouse, for debugging only.
--
-- Drop policy. The minute tables and late_events are partitioned by day
-- (toYYYYMMDD(window_start), e.g. partition 20260314). Nothing expires by
-- itself: 18.16 has no TTL. To drop old days, as the admin user (the
-- writer has allow_ddl = 0):
--
--   SELECT DISTINCT table, partition FROM system.parts
--   WHERE database = 'atlas' AND active AND partition < '20260301';
--   ALTER TABLE atlas.playback_minute DROP PARTITION 20260228;
--
-- Drop only days older than the input topics' retention (7 days) plus a
-- margin: a replay from Kafka of a dropped day would write part of it
-- again. titles is small and is never dropped.
--
-- Runs on ClickHouse 18.16 (tests) and current releases; LowCardinality is
-- used only where the server has it by default.
{{define "dim"}}{{if atLeast "20.1"}}LowCardinality(String){{else}}String{{end}}{{end}}
CREATE TABLE IF NOT EXISTS {{.Database}}.playback_minute
(
    window_start DateTime,
    title_id String,
    country {{template "dim" .}},
    device_type {{template "dim" .}},
    src_topic {{template "dim" .}},
    src_partition Int32,
    version UInt64,
    starts UInt64,
    completes UInt64,
    watch_ms UInt64,
    viewers UInt64,
    viewer_hashes Array(UInt64),
    dropoff Array(UInt64),
    written_at DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (window_start, title_id, country, device_type, src_topic, src_partition);

CREATE TABLE IF NOT EXISTS {{.Database}}.quality_minute
(
    window_start DateTime,
    cdn {{template "dim" .}},
    isp {{template "dim" .}},
    country {{template "dim" .}},
    src_topic {{template "dim" .}},
    src_partition Int32,
    version UInt64,
    sessions UInt64,
    rebuffers UInt64,
    rebuffer_ms UInt64,
    start_failures UInt64,
    errors UInt64,
    bitrate_sum UInt64,
    bitrate_samples UInt64,
    written_at DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (window_start, cdn, isp, country, src_topic, src_partition);

-- Impressions and selects come from browse partitions, plays from playback
-- partitions: a (window, row, artwork) has rows from both topics, and the
-- views sum them.
CREATE TABLE IF NOT EXISTS {{.Database}}.funnel_minute
(
    window_start DateTime,
    row String,
    artwork_id String,
    src_topic {{template "dim" .}},
    src_partition Int32,
    version UInt64,
    impressions UInt64,
    selects UInt64,
    plays UInt64,
    written_at DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (window_start, row, artwork_id, src_topic, src_partition);

-- Events that arrived after their window closed: counted here, never
-- merged into the window. An event id is unique and its duplicates share
-- its key (profile) and partition, so the key (src_topic, event_id)
-- collapses a late event written twice (a replay, or a duplicate send) to
-- one row; version is the source offset + 1, the latest copy wins. Times
-- are milliseconds since the epoch, as in the row type.
CREATE TABLE IF NOT EXISTS {{.Database}}.late_events
(
    window_start DateTime,
    event_id String,
    src_topic {{template "dim" .}},
    src_partition Int32,
    src_offset Int64,
    version UInt64,
    event_time_ms Int64,
    watermark_ms Int64,
    profile_id String,
    kind {{template "dim" .}},
    title_id String,
    written_at DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (src_topic, event_id);

-- The latest catalog entry per title (version = catalog offset + 1), for
-- queries that join demand with supply. release_date is 'YYYY-MM-DD' or ''
-- as a String, because Date on 18.16 starts in 1970 and catalogs hold older
-- films.
CREATE TABLE IF NOT EXISTS {{.Database}}.titles
(
    title_id String,
    name String,
    genres Array(String),
    country String,
    release_date String,
    duration_sec Int64,
    type String,
    version UInt64,
    written_at DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree(version)
ORDER BY title_id;
