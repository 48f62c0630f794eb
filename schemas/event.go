package schemas

// Envelope holds the fields every playback and browse event carries.
//
// Times are milliseconds since the Unix epoch. EventTime comes from the
// device clock and drives every window; ReceiveTime is stamped by the ingest
// gateway (or the producing backend) and bounds how far EventTime may skew.
type Envelope struct {
	// EventID is unique per event; consumers deduplicate on it.
	EventID string `msgpack:"id" json:"id"`
	// EventTime is the device's clock when the event happened (ms).
	EventTime int64 `msgpack:"t" json:"t"`
	// ReceiveTime is when Atlas received the event (ms); zero until stamped.
	ReceiveTime int64  `msgpack:"rt,omitempty" json:"rt,omitempty"`
	AccountID   string `msgpack:"acc" json:"acc"`
	// ProfileID is the Kafka key: one profile's events stay in order in one
	// partition, next to that profile's state.
	ProfileID string `msgpack:"pro" json:"pro"`
	DeviceID  string `msgpack:"dev" json:"dev"`
	SessionID string `msgpack:"ses" json:"ses"`
	// ClientNet is the client's network after ingest: a keyed hash and the
	// /24 (IPv4) or /48 (IPv6) prefix, never a raw address.
	ClientNet string `msgpack:"net,omitempty" json:"net,omitempty"`
	// Country is an ISO 3166-1 alpha-2 code, upper case.
	Country    string     `msgpack:"cc" json:"cc"`
	DeviceType DeviceType `msgpack:"dt" json:"dt"`
	AppVersion string     `msgpack:"av,omitempty" json:"av,omitempty"`
}

// DeviceType is the class of device an event came from.
type DeviceType string

// Device types accepted by validation.
const (
	DeviceTV      DeviceType = "tv"
	DeviceMobile  DeviceType = "mobile"
	DeviceTablet  DeviceType = "tablet"
	DeviceDesktop DeviceType = "desktop"
	DeviceWeb     DeviceType = "web"
	DeviceConsole DeviceType = "console"
)

// DeviceTypes lists every valid DeviceType.
var DeviceTypes = []DeviceType{DeviceTV, DeviceMobile, DeviceTablet, DeviceDesktop, DeviceWeb, DeviceConsole}

// PlaybackKind says what happened in a playback session.
type PlaybackKind string

// Playback event kinds.
const (
	PlayStart     PlaybackKind = "start"
	PlayHeartbeat PlaybackKind = "heartbeat"
	PlayPause     PlaybackKind = "pause"
	PlayResume    PlaybackKind = "resume"
	PlaySeek      PlaybackKind = "seek"
	PlayRebuffer  PlaybackKind = "rebuffer"
	PlayBitrate   PlaybackKind = "bitrate"
	PlayError     PlaybackKind = "error"
	PlayStop      PlaybackKind = "stop"
	PlayComplete  PlaybackKind = "complete"
)

// PlaybackKinds lists every valid PlaybackKind.
var PlaybackKinds = []PlaybackKind{PlayStart, PlayHeartbeat, PlayPause, PlayResume, PlaySeek, PlayRebuffer, PlayBitrate, PlayError, PlayStop, PlayComplete}

// Playback is one event of a playback session (schema playback.v1).
type Playback struct {
	Envelope `msgpack:",inline"`
	Kind     PlaybackKind `msgpack:"k" json:"k"`
	TitleID  string       `msgpack:"ti" json:"ti"`
	// PositionMs is the play head; DurationMs the title's length.
	PositionMs int64 `msgpack:"pos,omitempty" json:"pos,omitempty"`
	DurationMs int64 `msgpack:"dur,omitempty" json:"dur,omitempty"`
	// BitrateKbps and BufferMs are the player's state at the event.
	BitrateKbps int64 `msgpack:"br,omitempty" json:"br,omitempty"`
	BufferMs    int64 `msgpack:"buf,omitempty" json:"buf,omitempty"`
	// RebufferMs is the stall duration of a rebuffer event.
	RebufferMs int64 `msgpack:"rb,omitempty" json:"rb,omitempty"`
	// SeekFromMs is where a seek started (PositionMs is where it landed).
	SeekFromMs int64 `msgpack:"from,omitempty" json:"from,omitempty"`
	// WatchedMs is the content played since the previous event of the
	// session, so watch time adds up per event without session state.
	WatchedMs int64 `msgpack:"wm,omitempty" json:"wm,omitempty"`
	// SourceRow and SourceArtworkID say where in the browse UI a start was
	// launched from (empty for autoplay, deep links): the browse funnel
	// attributes plays to them without joining sessions.
	SourceRow       string `msgpack:"row,omitempty" json:"row,omitempty"`
	SourceArtworkID string `msgpack:"art,omitempty" json:"art,omitempty"`
	// ErrorCode is set on error events; a start failure is an error event
	// before any start of the same session.
	ErrorCode string `msgpack:"err,omitempty" json:"err,omitempty"`
	CDN       string `msgpack:"cdn,omitempty" json:"cdn,omitempty"`
	ISP       string `msgpack:"isp,omitempty" json:"isp,omitempty"`
}

// BrowseKind says what happened in the browse UI.
type BrowseKind string

// Browse event kinds.
const (
	BrowseImpression BrowseKind = "impression"
	BrowseHover      BrowseKind = "hover"
	BrowseSelect     BrowseKind = "select"
	BrowseSearch     BrowseKind = "search"
	BrowseTrailer    BrowseKind = "trailer"
	BrowseAddToList  BrowseKind = "add_to_list"
	BrowseRating     BrowseKind = "rating"
)

// BrowseKinds lists every valid BrowseKind.
var BrowseKinds = []BrowseKind{BrowseImpression, BrowseHover, BrowseSelect, BrowseSearch, BrowseTrailer, BrowseAddToList, BrowseRating}

// Browse is one browse-UI event (schema browse.v1).
type Browse struct {
	Envelope `msgpack:",inline"`
	Kind     BrowseKind `msgpack:"k" json:"k"`
	TitleID  string     `msgpack:"ti,omitempty" json:"ti,omitempty"`
	// Row names the UI row ("trending", "because-you-watched"); Rank is the
	// 0-based position of the title in it.
	Row       string `msgpack:"row,omitempty" json:"row,omitempty"`
	Rank      int64  `msgpack:"rk,omitempty" json:"rk,omitempty"`
	ArtworkID string `msgpack:"art,omitempty" json:"art,omitempty"`
	// Query is the search text of a search event.
	Query string `msgpack:"q,omitempty" json:"q,omitempty"`
	// Rating is the stars of a rating event, 0.5 to 5.
	Rating float64 `msgpack:"r,omitempty" json:"r,omitempty"`
	// DwellMs is how long the title was in view or hovered.
	DwellMs int64 `msgpack:"dw,omitempty" json:"dw,omitempty"`
}

// TitleType says whether a title is a film or a series.
type TitleType string

// Title types.
const (
	TitleFilm   TitleType = "film"
	TitleSeries TitleType = "series"
)

// Title is one catalog entry (schema catalog.v1), keyed by TitleID on a
// compacted topic.
type Title struct {
	TitleID string   `msgpack:"ti" json:"ti"`
	Name    string   `msgpack:"n" json:"n"`
	Genres  []string `msgpack:"g" json:"g"`
	// Country is the ISO 3166-1 alpha-2 country of origin.
	Country string `msgpack:"cc" json:"cc"`
	// ReleaseDate is YYYY-MM-DD.
	ReleaseDate string    `msgpack:"rd" json:"rd"`
	DurationSec int64     `msgpack:"dur" json:"dur"`
	Type        TitleType `msgpack:"ty" json:"ty"`
}

// AlertStatus is where an alert is in its lifecycle. One incident produces
// one firing alert, an escalated one each time its severity rises, and one
// resolved alert.
type AlertStatus string

// Alert statuses.
const (
	AlertFiring    AlertStatus = "firing"
	AlertEscalated AlertStatus = "escalated"
	AlertResolved  AlertStatus = "resolved"
)

// Severity ranks alerts; higher is worse.
type Severity uint8

// Severities.
const (
	SeverityInfo     Severity = 1
	SeverityWarning  Severity = 2
	SeverityHigh     Severity = 3
	SeverityCritical Severity = 4
)

// Alert is one lifecycle step of one incident (schema alert.v1), keyed by
// Subject on the alert topic.
type Alert struct {
	// ID is deterministic from kind, subject and incident start, so a replay
	// reproduces it.
	ID       string      `msgpack:"id" json:"id"`
	Kind     string      `msgpack:"k" json:"k"`
	Status   AlertStatus `msgpack:"st" json:"st"`
	Severity Severity    `msgpack:"sev" json:"sev"`
	// Subject is what the alert is about: "account:a17", "net:…",
	// "cdn:c1|isp:i3|cc:DE".
	Subject string  `msgpack:"sub" json:"sub"`
	Score   float64 `msgpack:"sc" json:"sc"`
	// Evidence holds the numbers that triggered the alert (devices,
	// countries, rates), encoded with sorted keys.
	Evidence    map[string]string `msgpack:"ev,omitempty" json:"ev,omitempty"`
	WindowStart int64             `msgpack:"ws" json:"ws"`
	WindowEnd   int64             `msgpack:"we" json:"we"`
	FirstSeen   int64             `msgpack:"fs" json:"fs"`
	DetectedAt  int64             `msgpack:"da" json:"da"`
}
