package embeddings

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/atlas-stream/atlas/consumers/stream"
	"github.com/atlas-stream/atlas/schemas"
)

// Store makes a Node's state durable. Package changelog implements it on
// Kafka; [MemStore] in memory. Methods are called concurrently for
// different partitions.
type Store interface {
	// RestoreProfiles calls fn with every record of the state changelog's
	// partition, in log order, up to its end as of the call.
	RestoreProfiles(ctx context.Context, partition int, fn func(key, value []byte) error) error
	// WriteProfiles appends records to the changelog's partition and
	// returns once every one is acknowledged (in order).
	WriteProfiles(ctx context.Context, partition int, recs []KV) error
	// WriteModel appends records to the model topic and returns once every
	// one is acknowledged (in order).
	WriteModel(ctx context.Context, recs []KV) error
	// SyncModel returns once every model record acknowledged before the
	// call has been passed to the node's ApplyModel.
	SyncModel(ctx context.Context) error
}

// NodeConfig configures a Node: one member of the embeddings role.
type NodeConfig struct {
	Learner Config
	// Store is where state becomes durable. Required.
	Store Store
	// PlaybackTopic and BrowseTopic are the input topics' names as the
	// engine reports them (with any prefix). Required.
	PlaybackTopic, BrowseTopic string
	// FlushEvery is the least time between two writes of a partition's
	// state: checkpoints in between write nothing and return the last
	// durable offset, so the engine commits no further. Default 0: every
	// checkpoint writes what changed (the engine checkpoints every
	// second). A longer interval batches more per write, but the engine
	// checkpoints only when records arrive, so the commit of an idle
	// partition stays behind until its next record (state is never lost).
	FlushEvery time.Duration
	// Advertise is this member's API address, published as the owner of
	// the partitions it claims so that other members can forward to it.
	// Empty: none is published.
	Advertise string
	// EvalPercent judges that percentage of first plays prequentially
	// (was the title in the profile's top 10 before the play?), chosen by a
	// hash of the event id, and counts hits in
	// atlas_embeddings_prequential_*. Default 0 (off).
	EvalPercent int
	// Registerer receives the role's metrics; nil exports none.
	Registerer prometheus.Registerer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
}

func (c *NodeConfig) defaults() {
	c.Learner = c.Learner.Defaults()
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports a configuration that cannot work.
func (c NodeConfig) Validate() error {
	switch {
	case c.Store == nil:
		return errors.New("embeddings: Store is required")
	case c.PlaybackTopic == "" || c.BrowseTopic == "":
		return errors.New("embeddings: PlaybackTopic and BrowseTopic are required")
	case c.FlushEvery < 0:
		return errors.New("embeddings: FlushEvery must not be negative")
	case c.EvalPercent < 0 || c.EvalPercent > 100:
		return errors.New("embeddings: EvalPercent must be between 0 and 100")
	}
	return c.Learner.Validate()
}

// Node is one member of the embeddings role: the title model (a full copy,
// merged from every partition's increments), the profiles of the
// partitions it owns, and the engine Factory that feeds them. Its methods
// are safe for concurrent use.
type Node struct {
	cfg   NodeConfig
	model *Model
	m     *nodeMetrics

	mu     sync.Mutex
	parts  map[int]*partition
	owners map[int]Owner
}

// NewNode returns a Node with an empty model. Feed it the model topic
// through ApplyModel before (and while) it serves partitions.
func NewNode(cfg NodeConfig) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	return &Node{cfg: cfg, model: NewModel(cfg.Learner), m: newNodeMetrics(cfg.Registerer),
		parts: map[int]*partition{}, owners: map[int]Owner{}}, nil
}

// Model returns the node's title model.
func (n *Node) Model() *Model { return n.model }

// partition is the state of one partition number, shared by the claims of
// its playback and browse partitions (co-partitioned: same key, same
// number), and restored once for both.
type partition struct {
	id       int
	restored chan struct{}
	err      error // restore failure, set before restored is closed
	refs     int   // claims holding it; guarded by Node.mu

	flushMu sync.Mutex // one flush at a time, so writes land in order

	mu        sync.Mutex
	profiles  map[string]*Profile
	dirty     map[*Profile]struct{}
	pending   []increment // learned, not yet published
	next      [2]int64    // offset after the last record handed over, per topic (-1: none)
	durable   [2]int64    // restart offset per topic: below it, all is durable (-1: unknown)
	lastFlush time.Time
	flushing  bool // a flush took a snapshot and has not finished writing it
}

const (
	topicPlayback = 0
	topicBrowse   = 1
)

// Factory is the engine factory of the role: it restores the claim's
// partition (once for its playback and browse claims) and returns its
// processor. Restore first catches the model up with its topic, then reads
// the partition's changelog to its end.
func (n *Node) Factory(ctx context.Context, c stream.Claim) (stream.Processor, error) {
	kind := -1
	switch c.Topic {
	case n.cfg.PlaybackTopic:
		kind = topicPlayback
	case n.cfg.BrowseTopic:
		kind = topicBrowse
	default:
		return nil, fmt.Errorf("embeddings: cannot process topic %q: want %s or %s", c.Topic, n.cfg.PlaybackTopic, n.cfg.BrowseTopic)
	}
	n.mu.Lock()
	pt := n.parts[c.Partition]
	first := pt == nil
	if first {
		pt = &partition{id: c.Partition, restored: make(chan struct{}), profiles: map[string]*Profile{},
			dirty: map[*Profile]struct{}{}, next: [2]int64{-1, -1}, durable: [2]int64{-1, -1}}
		n.parts[c.Partition] = pt
	}
	pt.refs++
	n.mu.Unlock()

	if first {
		pt.err = n.restore(ctx, pt)
		close(pt.restored)
	} else {
		select {
		case <-pt.restored:
		case <-ctx.Done():
			n.release(pt)
			return nil, ctx.Err()
		}
	}
	if pt.err != nil {
		n.release(pt)
		return nil, pt.err
	}
	pt.mu.Lock()
	if c.Committed >= 0 && pt.durable[kind] < 0 {
		pt.durable[kind] = c.Committed
	}
	pt.mu.Unlock()
	return &processor{n: n, pt: pt, kind: kind, gen: ctx, topic: c.Topic}, nil
}

// restore catches the model up, then loads the partition's profiles.
func (n *Node) restore(ctx context.Context, pt *partition) error {
	start := n.cfg.Now()
	if err := n.cfg.Store.SyncModel(ctx); err != nil {
		return fmt.Errorf("cannot catch up with the title model before restoring partition %d: %w", pt.id, err)
	}
	records, bytes := 0, 0
	err := n.cfg.Store.RestoreProfiles(ctx, pt.id, func(key, value []byte) error {
		records++
		bytes += len(value)
		id := string(key)
		if value == nil {
			delete(pt.profiles, id)
			return nil
		}
		// Only the offsets are read now; the rest is decoded when the
		// profile is first used (Partition.get), which makes a restore
		// of a million profiles take a second instead of several.
		play, browse, err := decodeNext(value)
		if err != nil {
			return fmt.Errorf("cannot restore profile %q of partition %d: %w", id, pt.id, err)
		}
		if old := pt.profiles[id]; old != nil && play < old.PlayNext && browse < old.BrowseNext {
			return nil // an older state written late (see the package doc): keep the newer
		}
		pt.profiles[id] = &Profile{ID: id, PlayNext: play, BrowseNext: browse, raw: value}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cannot restore partition %d: %w", pt.id, err)
	}
	if n.cfg.Advertise != "" {
		o := Owner{Partition: pt.id, Addr: n.cfg.Advertise, Since: n.cfg.Now().UnixMilli()}
		if err := n.cfg.Store.WriteModel(ctx, []KV{{Key: ownerKey(pt.id), Value: appendOwner(nil, o)}}); err != nil {
			return fmt.Errorf("cannot announce the owner of partition %d: %w", pt.id, err)
		}
	}
	pt.lastFlush = n.cfg.Now()
	n.m.restoredProfiles.Add(float64(len(pt.profiles)))
	n.m.profiles.Add(float64(len(pt.profiles)))
	n.cfg.Logger.Info("embeddings partition restored", "partition", pt.id, "profiles", len(pt.profiles),
		"records", records, "bytes", bytes, "took", n.cfg.Now().Sub(start).Round(time.Millisecond))
	return nil
}

// release drops a claim's hold on its partition; the last one forgets the
// profiles (the model keeps what they taught it).
func (n *Node) release(pt *partition) {
	n.mu.Lock()
	defer n.mu.Unlock()
	pt.refs--
	if pt.refs == 0 && n.parts[pt.id] == pt {
		delete(n.parts, pt.id)
		pt.mu.Lock()
		n.m.profiles.Sub(float64(len(pt.profiles)))
		pt.mu.Unlock()
	}
}

// ApplyModel applies one record of the model topic: an increment (applied
// to the rows that do not hold it yet) or an owner announcement. Records
// it does not know are ignored, so that newer members can add kinds.
func (n *Node) ApplyModel(key, value []byte) error {
	if len(value) == 0 {
		return nil
	}
	switch value[0] {
	case recIncrement:
		var inc increment
		if err := n.model.decodeIncrement(value, &inc); err != nil {
			return fmt.Errorf("cannot apply model record %q: %w", key, err)
		}
		if n.model.apply(&inc) {
			n.m.remoteIncrements.Inc()
		}
	case recOwner:
		o, err := decodeOwner(value)
		if err != nil {
			return fmt.Errorf("cannot apply model record %q: %w", key, err)
		}
		n.mu.Lock()
		n.owners[o.Partition] = o
		n.mu.Unlock()
	}
	return nil
}

// Lookup returns a copy of a profile's state if this member owns its
// partition: found says whether the profile exists, owned whether the
// partition is restored here.
func (n *Node) Lookup(partition int, id string) (p *Profile, found, owned bool) {
	n.mu.Lock()
	pt := n.parts[partition]
	n.mu.Unlock()
	if pt == nil {
		return nil, false, false
	}
	select {
	case <-pt.restored:
	default:
		return nil, false, false
	}
	if pt.err != nil {
		return nil, false, false
	}
	pt.mu.Lock()
	defer pt.mu.Unlock()
	q := n.get(pt, id)
	if q == nil {
		return nil, false, true
	}
	c := *q
	c.ring, c.seen, c.intents = slices.Clone(q.ring), slices.Clone(q.seen), slices.Clone(q.intents)
	return &c, true, true
}

// Owner returns the last announced owner of a partition.
func (n *Node) Owner(partition int) (Owner, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	o, ok := n.owners[partition]
	return o, ok
}

// Owned returns the partitions restored in this member, sorted.
func (n *Node) Owned() []int {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []int
	for id, pt := range n.parts {
		select {
		case <-pt.restored:
			if pt.err == nil {
				out = append(out, id)
			}
		default:
		}
	}
	slices.Sort(out)
	return out
}

// Refresh recomputes the dense vectors when the model changed; see
// Model.Refresh.
func (n *Node) Refresh() bool {
	start := n.cfg.Now()
	if !n.model.Refresh() {
		return false
	}
	n.m.refresh.Observe(n.cfg.Now().Sub(start).Seconds())
	st := n.model.Stats()
	n.m.titles.Set(float64(st.Titles))
	n.m.pairs.Set(float64(st.Pairs))
	return true
}

// RunRefresh refreshes the dense vectors every interval (when the model
// changed) until ctx ends.
func (n *Node) RunRefresh(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			n.Refresh()
		}
	}
}

// processor is one claim: the playback or browse partition of a
// partition state.
type processor struct {
	n     *Node
	pt    *partition
	kind  int
	topic string
	gen   context.Context // the claim's generation; done: another member may own it
	inc   increment
	seen  bool // a record was handed over since the claim started
}

// Process applies one record. Records of a profile at or above its
// PlayNext (BrowseNext) change it; a replayed record below is skipped.
func (pr *processor) Process(_ context.Context, r *stream.Record) error {
	pt, n := pr.pt, pr.n
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if !pr.seen {
		pr.seen = true
		if pt.durable[pr.kind] < 0 {
			pt.durable[pr.kind] = r.Offset
		}
	}
	pt.next[pr.kind] = r.Offset + 1
	switch e := r.Value.(type) {
	case *schemas.Playback:
		pr.playback(r, e)
	case *schemas.Browse:
		pr.browse(r, e)
	}
	if len(pt.dirty) > 0 {
		n.m.dirty.Set(float64(len(pt.dirty)))
	}
	return nil
}

func (pr *processor) profile(id string, create bool) *Profile {
	p := pr.n.get(pr.pt, id)
	if p == nil && create {
		p = &Profile{ID: id}
		pr.pt.profiles[id] = p
		pr.n.m.profiles.Inc()
	}
	return p
}

func (pr *processor) playback(r *stream.Record, e *schemas.Playback) {
	n, pt := pr.n, pr.pt
	var p *Profile
	switch e.Kind {
	case schemas.PlayStart, schemas.PlayStop, schemas.PlayComplete:
		p = pr.profile(e.ProfileID, e.Kind == schemas.PlayStart)
	}
	if p == nil {
		return
	}
	if r.Offset < p.PlayNext {
		n.m.skipped.Inc()
		return
	}
	t := n.model.Title(e.TitleID)
	changed := false
	switch e.Kind {
	case schemas.PlayStart:
		if n.cfg.EvalPercent > 0 && !r.Replay && !p.hasSeen(t) && sampled(e.EventID, n.cfg.EvalPercent) {
			pr.judge(p, t)
		}
		if n.model.Play(p, t, e.Country, int32(pt.id), r.Offset, &pr.inc) {
			pt.pending = append(pt.pending, cloneIncrement(&pr.inc))
			n.m.plays.Inc()
		}
		changed = true
	default:
		frac := 1.0
		if e.DurationMs > 0 {
			frac = float64(e.PositionMs) / float64(e.DurationMs)
		}
		changed = n.model.Finish(p, t, frac)
	}
	if changed {
		p.PlayNext = r.Offset + 1
		pt.dirty[p] = struct{}{}
	}
}

func (pr *processor) browse(r *stream.Record, e *schemas.Browse) {
	if (e.Kind != schemas.BrowseSelect && e.Kind != schemas.BrowseAddToList) || e.TitleID == "" {
		return
	}
	p := pr.profile(e.ProfileID, true)
	if r.Offset < p.BrowseNext {
		pr.n.m.skipped.Inc()
		return
	}
	pr.n.model.Intent(p, pr.n.model.Title(e.TitleID), e.Country)
	p.BrowseNext = r.Offset + 1
	pr.pt.dirty[p] = struct{}{}
}

// judge counts whether t is in p's top 10 before p plays it.
func (pr *processor) judge(p *Profile, t int32) {
	m := pr.n.model
	m.mu.RLock()
	known := int(t) < len(m.count) && m.count[t] > 0
	m.mu.RUnlock()
	pr.n.m.judged.Inc()
	if !known {
		return
	}
	id := m.ID(t)
	for _, s := range m.Recommend(p, p.Country(), 10, nil) {
		if s.Title == id {
			pr.n.m.hits.Inc()
			return
		}
	}
}

func sampled(eventID string, percent int) bool {
	h := fnv.New32a()
	h.Write([]byte(eventID))
	return int(h.Sum32()%100) < percent
}

func cloneIncrement(inc *increment) increment {
	c := *inc
	c.pairs = slices.Clone(inc.pairs)
	return c
}

// Checkpoint makes the partition's state durable when FlushEvery has
// passed since the last write (first the model increments, then the
// changed profiles, each acknowledged), and returns the restart offset of
// this claim: every record below it is reflected in durable state.
//
// A claim whose generation has ended does not write: the member may be a
// zombie whose partition another member already owns, and on a compacted
// topic an older state written late would replace a newer one.
func (pr *processor) Checkpoint(ctx context.Context) (stream.Checkpoint, error) {
	pt := pr.pt
	pt.mu.Lock()
	due := pr.n.cfg.Now().Sub(pt.lastFlush) >= pr.n.cfg.FlushEvery && (len(pt.dirty) > 0 || len(pt.pending) > 0)
	pt.mu.Unlock()
	if due && pr.gen.Err() == nil {
		if err := pr.n.flush(ctx, pt); err != nil {
			return stream.Checkpoint{}, err
		}
	}
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if !pt.flushing && len(pt.dirty) == 0 && len(pt.pending) == 0 {
		// Nothing waits to be written: everything handed over is durable.
		for k := range pt.durable {
			if pt.next[k] >= 0 {
				pt.durable[k] = pt.next[k]
			}
		}
	}
	return stream.Checkpoint{Offset: pt.durable[pr.kind]}, nil
}

// flush writes what the partition learned since the last flush.
func (n *Node) flush(ctx context.Context, pt *partition) error {
	pt.flushMu.Lock()
	defer pt.flushMu.Unlock()
	start := n.cfg.Now()

	pt.mu.Lock()
	incs := pt.pending
	pt.pending = nil
	dirty := make([]*Profile, 0, len(pt.dirty))
	for p := range pt.dirty {
		dirty = append(dirty, p)
	}
	clear(pt.dirty)
	next := pt.next
	pt.flushing = true
	slices.SortFunc(dirty, func(a, b *Profile) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	model := make([]KV, 0, len(incs))
	profiles := make([]KV, 0, len(dirty))
	bytes := 0
	n.model.mu.RLock()
	for i := range incs {
		v := n.model.appendIncrementLocked(nil, &incs[i])
		model = append(model, KV{Key: incrementKey(incs[i].source, incs[i].offset), Value: v})
	}
	for _, p := range dirty {
		v := n.model.appendProfileLocked(nil, p, true)
		bytes += len(v)
		profiles = append(profiles, KV{Key: []byte(p.ID), Value: v})
	}
	n.model.mu.RUnlock()
	pt.mu.Unlock()

	retry := func(err error, what string) error {
		pt.mu.Lock()
		pt.flushing = false
		pt.pending = append(incs, pt.pending...)
		for _, p := range dirty {
			pt.dirty[p] = struct{}{}
		}
		pt.mu.Unlock()
		return fmt.Errorf("cannot write %s of partition %d: %w", what, pt.id, err)
	}
	if len(model) > 0 {
		if err := n.cfg.Store.WriteModel(ctx, model); err != nil {
			return retry(err, "title model increments")
		}
		incs = nil // published: a failure below must not publish them again
	}
	if len(profiles) > 0 {
		if err := n.cfg.Store.WriteProfiles(ctx, pt.id, profiles); err != nil {
			return retry(err, "profiles")
		}
	}
	pt.mu.Lock()
	for k := range pt.durable {
		if next[k] >= 0 {
			pt.durable[k] = next[k]
		}
	}
	pt.lastFlush = n.cfg.Now()
	pt.flushing = false
	pt.mu.Unlock()
	n.m.flush.Observe(n.cfg.Now().Sub(start).Seconds())
	n.m.written.WithLabelValues("profiles").Add(float64(len(profiles)))
	n.m.written.WithLabelValues("increments").Add(float64(len(model)))
	if len(profiles) > 0 {
		n.m.profileBytes.Set(float64(bytes) / float64(len(profiles)))
	}
	return nil
}

// Close releases the claim. The partition's profiles are forgotten when
// its last claim closes.
func (pr *processor) Close() error {
	pr.n.release(pr.pt)
	return nil
}

type nodeMetrics struct {
	profiles, restoredProfiles, dirty, titles, pairs, profileBytes prometheus.Gauge
	plays, skipped, remoteIncrements, judged, hits, corrupt        prometheus.Counter
	flush, refresh                                                 prometheus.Histogram
	written                                                        *prometheus.CounterVec
}

func newNodeMetrics(reg prometheus.Registerer) *nodeMetrics {
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	}
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	m := &nodeMetrics{
		profiles:         g("atlas_embeddings_profiles", "Profiles held by this member."),
		restoredProfiles: g("atlas_embeddings_restored_profiles", "Profiles loaded from the changelog since start."),
		dirty:            g("atlas_embeddings_dirty_profiles", "Profiles changed since the last flush of their partition."),
		titles:           g("atlas_embeddings_titles", "Titles in the model."),
		pairs:            g("atlas_embeddings_pairs", "Non-zero co-occurrence cells in the model."),
		profileBytes:     g("atlas_embeddings_profile_bytes", "Mean bytes of a changelog value at the last flush."),
		plays:            c("atlas_embeddings_first_plays_total", "First plays learned by this member."),
		skipped:          c("atlas_embeddings_replayed_total", "Replayed records skipped: already in the restored state."),
		remoteIncrements: c("atlas_embeddings_model_increments_applied_total", "Increments applied from the model topic."),
		judged:           c("atlas_embeddings_prequential_judged_total", "Sampled first plays judged before learning."),
		hits:             c("atlas_embeddings_prequential_hits_total", "Judged first plays whose title was in the top 10."),
		corrupt:          c("atlas_embeddings_corrupt_profiles_total", "Restored profiles whose value did not decode (started afresh)."),
		flush: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "atlas_embeddings_flush_seconds",
			Help: "Time to write a partition's increments and profiles."}),
		refresh: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "atlas_embeddings_refresh_seconds",
			Help: "Time to recompute the dense vectors.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}),
		written: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "atlas_embeddings_written_total",
			Help: "Records written, by kind (profiles, increments)."}, []string{"kind"}),
	}
	if reg != nil {
		reg.MustRegister(m.profiles, m.restoredProfiles, m.dirty, m.titles, m.pairs, m.profileBytes,
			m.plays, m.skipped, m.remoteIncrements, m.judged, m.hits, m.corrupt, m.flush, m.refresh, m.written)
	}
	return m
}

// Owners returns the last announced owner of every partition.
func (n *Node) Owners() map[int]Owner {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[int]Owner, len(n.owners))
	for p, o := range n.owners {
		out[p] = o
	}
	return out
}

// get returns a profile of pt, decoding it on first use after a restore.
// A value that does not decode is logged and the profile starts afresh:
// the changelog is written by this package, so it means a bug or a
// corrupt topic, and one profile must not stop its partition. The caller
// holds pt.mu.
func (n *Node) get(pt *partition, id string) *Profile {
	p := pt.profiles[id]
	if p == nil || p.raw == nil {
		return p
	}
	raw := p.raw
	p.raw = nil
	if err := n.model.DecodeProfile(raw, p); err != nil {
		n.cfg.Logger.Error("cannot decode a restored profile; starting it afresh", "profile", id, "partition", pt.id, "err", err)
		n.m.corrupt.Inc()
		*p = Profile{ID: id}
	}
	return p
}

// ProfileIDs returns the ids of a partition's profiles held here, sorted.
func (n *Node) ProfileIDs(partition int) []string {
	n.mu.Lock()
	pt := n.parts[partition]
	n.mu.Unlock()
	if pt == nil {
		return nil
	}
	pt.mu.Lock()
	defer pt.mu.Unlock()
	out := make([]string, 0, len(pt.profiles))
	for id := range pt.profiles {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}
