// Package aggregates is the aggregates role's processor: one-minute
// tumbling windows on event time, per partition, over playback and browse
// events, written to a [Sink] with exactly-once effect.
//
// # Exactly once without transactions
//
// Each partition keeps its open windows and a watermark (internal/eventtime:
// the largest event time seen minus the allowed lateness). A window closes
// when the watermark passes its end plus grace; its rows then depend only on
// that partition's log. At each checkpoint the processor writes the rows of
// closed windows (final) and of open windows that changed (provisional, so
// that dashboards see a minute while it is still open), plus the late
// events, and returns:
//
//   - the restart offset: the first offset of the oldest open window, so a
//     restart rebuilds every open window from its first event;
//   - the largest event time seen, so a restart restores the watermark.
//
// After a restart, an event whose window is closed under the restored
// watermark was either folded into a row that is already written or
// recorded as late: it is skipped. Every row carries Version = the offset
// after the last record in it, and the sink's tables keep the highest
// version per (window, dimensions, source), so replays, provisional rows and
// a zombie's writes can never replace a row with a less complete one.
//
// Duplicate sends (the same event id) are counted once per window.
package aggregates
