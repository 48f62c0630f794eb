-- Alerts raised by the anomaly role (DESIGN.md, "anomaly"): one row per
-- state of an incident. An alert's id is derived from its kind, subject and
-- window, so a replay after a crash writes the same rows again; they share
-- the sorting key with the rows written the first time and
-- ReplacingMergeTree keeps one of each. Read with FINAL (or GROUP BY the
-- key) to see every (id, status, severity) once.
--
--   status       firing | escalated | resolved
--   severity     1 (lowest) .. 255; an escalation writes a new row
--   evidence     JSON object, as the detector produced it
--   first_seen   event time of the first event of the incident (UTC)
--   detected_at  when the detector raised this state (UTC); the version
--                column, so of two rows with the same key the later wins
--
-- Runs on ClickHouse 18.16 (tests) and current releases; LowCardinality is
-- used only where the server has it by default.
CREATE TABLE IF NOT EXISTS {{.Database}}.alerts
(
    id String,
    kind {{if atLeast "20.1"}}LowCardinality(String){{else}}String{{end}},
    status {{if atLeast "20.1"}}LowCardinality(String){{else}}String{{end}},
    severity UInt8,
    subject String,
    score Float64,
    evidence String,
    window_start DateTime,
    window_end DateTime,
    first_seen DateTime,
    detected_at DateTime
)
ENGINE = ReplacingMergeTree(detected_at)
PARTITION BY toDate(first_seen)
ORDER BY (kind, subject, id, status, severity);
