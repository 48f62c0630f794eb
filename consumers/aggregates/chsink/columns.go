package chsink

import (
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/atlas-stream/atlas/consumers/aggregates"
)

// table is one destination table's pending rows, held column by column so
// that a flush appends whole columns to the insert instead of converting
// row by row.
type table interface {
	// name is the table, insert the INSERT statement with its column list
	// (ClickHouse 18.16 sends no columns for an INSERT without one).
	name() string
	insert() string
	len() int
	// appendTo appends every pending row to b, in the column order of insert.
	appendTo(b driver.Batch) error
	// reset empties the columns, keeping their capacity, and drops the
	// references to the caller's strings.
	reset()
}

// Window starts arrive as milliseconds and are stored as DateTime seconds.
func seconds(ms int64) int64 { return ms / 1000 }

// appendColumns appends each slice to the batch column of the same index.
func appendColumns(b driver.Batch, cols ...any) error {
	for i, c := range cols {
		if err := b.Column(i).Append(c); err != nil {
			return fmt.Errorf("column %d: %w", i, err)
		}
	}
	return nil
}

// appendArrays appends one array per row to the batch column idx: the
// driver's fast path for arrays is per row, with a concrete slice type.
func appendArrays[T any](b driver.Batch, idx int, rows [][]T) error {
	col := b.Column(idx)
	for _, r := range rows {
		if err := col.AppendRow(r); err != nil {
			return fmt.Errorf("column %d: %w", idx, err)
		}
	}
	return nil
}

// arena copies small slices into one growing backing array, so that copying
// a batch's hashes costs amortised appends rather than one allocation per
// row. Slices handed out stay valid when the arena grows (they keep the old
// backing array).
type arena[T any] struct{ buf []T }

func (a *arena[T]) copy(s []T) []T {
	start := len(a.buf)
	a.buf = append(a.buf, s...)
	return a.buf[start:len(a.buf):len(a.buf)]
}

func (a *arena[T]) reset() {
	clear(a.buf)
	a.buf = a.buf[:0]
}

type playbackTable struct {
	windowStart  []int64
	titleID      []string
	country      []string
	deviceType   []string
	srcTopic     []string
	srcPartition []int32
	version      []uint64
	starts       []uint64
	completes    []uint64
	watchMs      []uint64
	viewers      []uint64
	viewerHashes [][]uint64
	dropoff      [][]uint64
	arena        arena[uint64]
}

func (t *playbackTable) name() string { return "playback_minute" }
func (t *playbackTable) insert() string {
	return "INSERT INTO playback_minute (window_start, title_id, country, device_type, src_topic, src_partition, version, " +
		"starts, completes, watch_ms, viewers, viewer_hashes, dropoff)"
}
func (t *playbackTable) len() int { return len(t.titleID) }

func (t *playbackTable) add(rows []aggregates.PlaybackRow) {
	for i := range rows {
		r := &rows[i]
		t.windowStart = append(t.windowStart, seconds(r.WindowStart))
		t.titleID = append(t.titleID, r.TitleID)
		t.country = append(t.country, r.Country)
		t.deviceType = append(t.deviceType, r.DeviceType)
		t.srcTopic = append(t.srcTopic, r.Topic)
		t.srcPartition = append(t.srcPartition, r.Partition)
		t.version = append(t.version, r.Version)
		t.starts = append(t.starts, r.Starts)
		t.completes = append(t.completes, r.Completes)
		t.watchMs = append(t.watchMs, r.WatchMs)
		t.viewers = append(t.viewers, r.Viewers)
		t.viewerHashes = append(t.viewerHashes, t.arena.copy(r.ViewerHashes))
		t.dropoff = append(t.dropoff, t.arena.copy(r.Dropoff[:]))
	}
}

func (t *playbackTable) appendTo(b driver.Batch) error {
	err := appendColumns(b, t.windowStart, t.titleID, t.country, t.deviceType, t.srcTopic, t.srcPartition,
		t.version, t.starts, t.completes, t.watchMs, t.viewers)
	if err != nil {
		return err
	}
	if err := appendArrays(b, 11, t.viewerHashes); err != nil {
		return err
	}
	return appendArrays(b, 12, t.dropoff)
}

func (t *playbackTable) reset() {
	t.windowStart = t.windowStart[:0]
	t.titleID = resetStrings(t.titleID)
	t.country = resetStrings(t.country)
	t.deviceType = resetStrings(t.deviceType)
	t.srcTopic = resetStrings(t.srcTopic)
	t.srcPartition = t.srcPartition[:0]
	t.version = t.version[:0]
	t.starts = t.starts[:0]
	t.completes = t.completes[:0]
	t.watchMs = t.watchMs[:0]
	t.viewers = t.viewers[:0]
	clear(t.viewerHashes)
	t.viewerHashes = t.viewerHashes[:0]
	clear(t.dropoff)
	t.dropoff = t.dropoff[:0]
	t.arena.reset()
}

type qualityTable struct {
	windowStart    []int64
	cdn            []string
	isp            []string
	country        []string
	srcTopic       []string
	srcPartition   []int32
	version        []uint64
	sessions       []uint64
	rebuffers      []uint64
	rebufferMs     []uint64
	startFailures  []uint64
	errors         []uint64
	bitrateSum     []uint64
	bitrateSamples []uint64
}

func (t *qualityTable) name() string { return "quality_minute" }
func (t *qualityTable) insert() string {
	return "INSERT INTO quality_minute (window_start, cdn, isp, country, src_topic, src_partition, version, " +
		"sessions, rebuffers, rebuffer_ms, start_failures, errors, bitrate_sum, bitrate_samples)"
}
func (t *qualityTable) len() int { return len(t.cdn) }

func (t *qualityTable) add(rows []aggregates.QualityRow) {
	for i := range rows {
		r := &rows[i]
		t.windowStart = append(t.windowStart, seconds(r.WindowStart))
		t.cdn = append(t.cdn, r.CDN)
		t.isp = append(t.isp, r.ISP)
		t.country = append(t.country, r.Country)
		t.srcTopic = append(t.srcTopic, r.Topic)
		t.srcPartition = append(t.srcPartition, r.Partition)
		t.version = append(t.version, r.Version)
		t.sessions = append(t.sessions, r.Sessions)
		t.rebuffers = append(t.rebuffers, r.Rebuffers)
		t.rebufferMs = append(t.rebufferMs, r.RebufferMs)
		t.startFailures = append(t.startFailures, r.StartFailures)
		t.errors = append(t.errors, r.Errors)
		t.bitrateSum = append(t.bitrateSum, r.BitrateSum)
		t.bitrateSamples = append(t.bitrateSamples, r.BitrateSamples)
	}
}

func (t *qualityTable) appendTo(b driver.Batch) error {
	return appendColumns(b, t.windowStart, t.cdn, t.isp, t.country, t.srcTopic, t.srcPartition, t.version,
		t.sessions, t.rebuffers, t.rebufferMs, t.startFailures, t.errors, t.bitrateSum, t.bitrateSamples)
}

func (t *qualityTable) reset() {
	t.windowStart = t.windowStart[:0]
	t.cdn = resetStrings(t.cdn)
	t.isp = resetStrings(t.isp)
	t.country = resetStrings(t.country)
	t.srcTopic = resetStrings(t.srcTopic)
	t.srcPartition = t.srcPartition[:0]
	t.version = t.version[:0]
	t.sessions = t.sessions[:0]
	t.rebuffers = t.rebuffers[:0]
	t.rebufferMs = t.rebufferMs[:0]
	t.startFailures = t.startFailures[:0]
	t.errors = t.errors[:0]
	t.bitrateSum = t.bitrateSum[:0]
	t.bitrateSamples = t.bitrateSamples[:0]
}

type funnelTable struct {
	windowStart  []int64
	row          []string
	artworkID    []string
	srcTopic     []string
	srcPartition []int32
	version      []uint64
	impressions  []uint64
	selects      []uint64
	plays        []uint64
}

func (t *funnelTable) name() string { return "funnel_minute" }
func (t *funnelTable) insert() string {
	return "INSERT INTO funnel_minute (window_start, row, artwork_id, src_topic, src_partition, version, " +
		"impressions, selects, plays)"
}
func (t *funnelTable) len() int { return len(t.row) }

func (t *funnelTable) add(rows []aggregates.FunnelRow) {
	for i := range rows {
		r := &rows[i]
		t.windowStart = append(t.windowStart, seconds(r.WindowStart))
		t.row = append(t.row, r.Row)
		t.artworkID = append(t.artworkID, r.ArtworkID)
		t.srcTopic = append(t.srcTopic, r.Topic)
		t.srcPartition = append(t.srcPartition, r.Partition)
		t.version = append(t.version, r.Version)
		t.impressions = append(t.impressions, r.Impressions)
		t.selects = append(t.selects, r.Selects)
		t.plays = append(t.plays, r.Plays)
	}
}

func (t *funnelTable) appendTo(b driver.Batch) error {
	return appendColumns(b, t.windowStart, t.row, t.artworkID, t.srcTopic, t.srcPartition, t.version,
		t.impressions, t.selects, t.plays)
}

func (t *funnelTable) reset() {
	t.windowStart = t.windowStart[:0]
	t.row = resetStrings(t.row)
	t.artworkID = resetStrings(t.artworkID)
	t.srcTopic = resetStrings(t.srcTopic)
	t.srcPartition = t.srcPartition[:0]
	t.version = t.version[:0]
	t.impressions = t.impressions[:0]
	t.selects = t.selects[:0]
	t.plays = t.plays[:0]
}

type lateTable struct {
	windowStart  []int64
	eventID      []string
	srcTopic     []string
	srcPartition []int32
	srcOffset    []int64
	version      []uint64
	eventTimeMs  []int64
	watermarkMs  []int64
	profileID    []string
	kind         []string
	titleID      []string
}

func (t *lateTable) name() string { return "late_events" }
func (t *lateTable) insert() string {
	return "INSERT INTO late_events (window_start, event_id, src_topic, src_partition, src_offset, version, " +
		"event_time_ms, watermark_ms, profile_id, kind, title_id)"
}
func (t *lateTable) len() int { return len(t.eventID) }

func (t *lateTable) add(rows []aggregates.LateEvent) {
	for i := range rows {
		r := &rows[i]
		t.windowStart = append(t.windowStart, seconds(r.WindowStart))
		t.eventID = append(t.eventID, r.EventID)
		t.srcTopic = append(t.srcTopic, r.Topic)
		t.srcPartition = append(t.srcPartition, r.Partition)
		t.srcOffset = append(t.srcOffset, r.Offset)
		// The latest copy of a duplicate event id wins; offsets are never
		// negative, so version 0 only stands for a malformed offset.
		t.version = append(t.version, uint64(max(r.Offset+1, 0)))
		t.eventTimeMs = append(t.eventTimeMs, r.EventTime)
		t.watermarkMs = append(t.watermarkMs, r.Watermark)
		t.profileID = append(t.profileID, r.ProfileID)
		t.kind = append(t.kind, r.Kind)
		t.titleID = append(t.titleID, r.TitleID)
	}
}

func (t *lateTable) appendTo(b driver.Batch) error {
	return appendColumns(b, t.windowStart, t.eventID, t.srcTopic, t.srcPartition, t.srcOffset, t.version,
		t.eventTimeMs, t.watermarkMs, t.profileID, t.kind, t.titleID)
}

func (t *lateTable) reset() {
	t.windowStart = t.windowStart[:0]
	t.eventID = resetStrings(t.eventID)
	t.srcTopic = resetStrings(t.srcTopic)
	t.srcPartition = t.srcPartition[:0]
	t.srcOffset = t.srcOffset[:0]
	t.version = t.version[:0]
	t.eventTimeMs = t.eventTimeMs[:0]
	t.watermarkMs = t.watermarkMs[:0]
	t.profileID = resetStrings(t.profileID)
	t.kind = resetStrings(t.kind)
	t.titleID = resetStrings(t.titleID)
}

type titlesTable struct {
	titleID     []string
	titleName   []string
	genres      [][]string
	country     []string
	releaseDate []string
	durationSec []int64
	typ         []string
	version     []uint64
	arena       arena[string]
}

func (t *titlesTable) name() string { return "titles" }
func (t *titlesTable) insert() string {
	return "INSERT INTO titles (title_id, name, genres, country, release_date, duration_sec, type, version)"
}
func (t *titlesTable) len() int { return len(t.titleID) }

func (t *titlesTable) add(rows []aggregates.TitleRow) {
	for i := range rows {
		r := &rows[i]
		t.titleID = append(t.titleID, r.TitleID)
		t.titleName = append(t.titleName, r.Name)
		t.genres = append(t.genres, t.arena.copy(r.Genres))
		t.country = append(t.country, r.Country)
		t.releaseDate = append(t.releaseDate, r.ReleaseDate)
		t.durationSec = append(t.durationSec, r.DurationSec)
		t.typ = append(t.typ, r.Type)
		t.version = append(t.version, r.Version)
	}
}

func (t *titlesTable) appendTo(b driver.Batch) error {
	if err := appendColumns(b, t.titleID, t.titleName); err != nil {
		return err
	}
	if err := appendArrays(b, 2, t.genres); err != nil {
		return err
	}
	for i, c := range []any{t.country, t.releaseDate, t.durationSec, t.typ, t.version} {
		if err := b.Column(3 + i).Append(c); err != nil {
			return fmt.Errorf("column %d: %w", 3+i, err)
		}
	}
	return nil
}

func (t *titlesTable) reset() {
	t.titleID = resetStrings(t.titleID)
	t.titleName = resetStrings(t.titleName)
	clear(t.genres)
	t.genres = t.genres[:0]
	t.country = resetStrings(t.country)
	t.releaseDate = resetStrings(t.releaseDate)
	t.durationSec = t.durationSec[:0]
	t.typ = resetStrings(t.typ)
	t.version = t.version[:0]
	t.arena.reset()
}

// resetStrings empties s and drops its references to the callers' strings,
// so that a reused buffer does not keep them alive.
func resetStrings(s []string) []string {
	clear(s)
	return s[:0]
}

// block is the rows of one flush: everything accepted since the previous
// flush, and the callers waiting for it.
type block struct {
	playback playbackTable
	quality  qualityTable
	funnel   funnelTable
	late     lateTable
	titles   titlesTable
	rows     int
	waiters  []chan<- error
}

func (b *block) tables() [5]table {
	return [5]table{&b.playback, &b.quality, &b.funnel, &b.late, &b.titles}
}

// add copies the rows of batch into b; after it returns, b holds no
// reference to batch's slices.
func (b *block) add(batch *aggregates.Batch) {
	b.playback.add(batch.Playback)
	b.quality.add(batch.Quality)
	b.funnel.add(batch.Funnel)
	b.late.add(batch.Late)
	b.titles.add(batch.Titles)
	b.rows += batch.Len()
}

func (b *block) reset() {
	for _, t := range b.tables() {
		t.reset()
	}
	b.rows = 0
	clear(b.waiters)
	b.waiters = b.waiters[:0]
}
