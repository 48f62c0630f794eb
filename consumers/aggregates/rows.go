package aggregates

import "context"

// Rows are what the aggregates role writes. Every row carries the source
// topic and partition and a Version: rows of one (window, dimensions,
// source) replace each other, and the highest Version wins, so a replay
// rewrites identical rows and a provisional row never overwrites a more
// complete one.
//
// Window starts and event times are milliseconds since the Unix epoch.

// Source identifies where a row's events came from.
type Source struct {
	Topic     string
	Partition int32
	// Version is the offset after the last record folded into the row; it
	// only grows as a window gains events.
	Version uint64
}

// PlaybackRow aggregates playback per window × title × country × device.
type PlaybackRow struct {
	WindowStart int64
	TitleID     string
	Country     string
	DeviceType  string
	Source
	Starts    uint64
	Completes uint64
	WatchMs   uint64
	// Viewers is the number of distinct profiles; ViewerHashes holds their
	// 64-bit hashes (sorted) so that roll-ups over longer periods can count
	// distinct viewers exactly. Profiles are partitioned, so summing Viewers
	// across partitions is exact for one window.
	Viewers      uint64
	ViewerHashes []uint64
	// Dropoff counts stops (abandonment) by decile of the title's duration.
	Dropoff [10]uint64
}

// QualityRow aggregates streaming quality per window × CDN × ISP × country.
type QualityRow struct {
	WindowStart int64
	CDN         string
	ISP         string
	Country     string
	Source
	Sessions       uint64
	Rebuffers      uint64
	RebufferMs     uint64
	StartFailures  uint64
	Errors         uint64
	BitrateSum     uint64
	BitrateSamples uint64
}

// FunnelRow aggregates the browse funnel per window × row × artwork.
// Impressions and selects come from browse partitions, plays from playback
// partitions; a view sums the sources.
type FunnelRow struct {
	WindowStart int64
	Row         string
	ArtworkID   string
	Source
	Impressions uint64
	Selects     uint64
	Plays       uint64
}

// LateEvent is an event that arrived after its window closed: counted
// here, never merged into the window.
type LateEvent struct {
	EventID     string
	Topic       string
	Partition   int32
	Offset      int64
	WindowStart int64
	EventTime   int64
	// Watermark is the partition's watermark when the event arrived.
	Watermark int64
	ProfileID string
	Kind      string
	TitleID   string
}

// TitleRow is the latest catalog entry of a title, for queries that join
// demand with supply. Version is the catalog offset + 1.
type TitleRow struct {
	TitleID     string
	Name        string
	Genres      []string
	Country     string
	ReleaseDate string // YYYY-MM-DD or ""
	DurationSec int64
	Type        string
	Version     uint64
}

// Batch is one checkpoint's output of one partition.
type Batch struct {
	Playback []PlaybackRow
	Quality  []QualityRow
	Funnel   []FunnelRow
	Late     []LateEvent
	Titles   []TitleRow
}

// Len counts the rows of b.
func (b *Batch) Len() int {
	return len(b.Playback) + len(b.Quality) + len(b.Funnel) + len(b.Late) + len(b.Titles)
}

// Sink makes batches durable. Write returns nil only once every row of b is
// stored; it may block to group several partitions' batches into one
// insert. It is called concurrently by the partitions' workers and must not
// retain b after it returns.
type Sink interface {
	Write(ctx context.Context, b *Batch) error
}
