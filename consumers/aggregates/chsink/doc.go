// Package chsink is the aggregates role's ClickHouse sink: a [Writer] that
// implements aggregates.Sink over clickhouse-go v2 and inserts the rows of
// consumers/aggregates into the tables of schemas/warehouse (migration
// 0002: playback_minute, quality_minute, funnel_minute, late_events,
// titles).
//
// # Idempotence
//
// The Writer adds nothing to make writes idempotent: the tables do. Every
// row carries its source partition and version, the tables are
// ReplacingMergeTree(version) keyed by (window, dimensions, source), and
// every reader goes through FINAL (the views of migration 0003 and the
// named queries), so writing a batch twice, or a provisional row after a
// complete one, changes no total. That is what lets the engine simply call
// Write again after an error.
//
// # Group commit
//
// Partition workers call [Writer.Write] concurrently, each at its own
// checkpoint. Write copies the batch into the pending insert and blocks
// until the flush that holds it is inserted; one goroutine ([Writer.Run])
// flushes at most once per FlushInterval, or as soon as MaxRows rows are
// pending, with one INSERT per table (column lists written out, as
// ClickHouse 18.16 needs). Many small checkpoints thus become a few large
// inserts, which is what MergeTree tables want, and every caller still
// learns whether its own rows are durable. A failed flush fails every Write
// it holds with the same error; nothing is retried inside the Writer.
//
// Memory is bounded: rows accepted but not yet inserted never exceed
// MaxPendingRows (a larger batch is accepted alone), so a slow ClickHouse
// slows the callers instead of growing a queue.
//
// # Metrics
//
// With a Registerer: atlas_chsink_rows_total{table},
// atlas_chsink_inserts_total{table}, atlas_chsink_flushes_total{result},
// atlas_chsink_flush_seconds and atlas_chsink_pending_rows.
package chsink
