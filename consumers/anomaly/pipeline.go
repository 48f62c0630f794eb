package anomaly

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/atlas-stream/atlas/consumers/stream"
	"github.com/atlas-stream/atlas/internal/slab"
	"github.com/atlas-stream/atlas/schemas"
)

// Pipeline runs the anomaly role in memory, the way the engine runs it
// against Kafka: one log per topic-partition (inputs and re-key topic),
// records handed to each partition's processor in offset order, re-keyed
// records appended to the re-key log as stage one sends them, checkpoints
// that commit an offset with metadata, and crashes that rebuild a
// processor from its last commit and replay the log from there. `atlas eval
// anomaly` runs the detectors through it; tests crash it at random.
// It is not safe for concurrent use.
type Pipeline struct {
	cfg     Config
	factory stream.Factory
	parts   map[pipeKey]*pipePart
	order   []pipeKey
	alerts  []schemas.Alert
	keys    slab.Slab // of the logged records: Kafka keeps them, not the processors
}

type pipeKey struct {
	topic     string
	partition int
}

type pipePart struct {
	log       []pipeRec // offsets base … base+len(log)-1
	base      int64
	proc      stream.Processor
	next      int64
	committed stream.Claim
	// rec is handed to proc for every record, as the engine hands one
	// Record per claim: processors must not keep it (they keep its Value).
	rec stream.Record
}

type pipeRec struct {
	key []byte
	rec schemas.Record
}

// NewPipeline builds an in-memory anomaly role. cfg's Rekeyer and Outbox
// are replaced by the pipeline's own; the rest is used as given.
func NewPipeline(cfg Config) (*Pipeline, error) {
	p := &Pipeline{parts: map[pipeKey]*pipePart{}}
	cfg.Rekeyer = func(stream.Claim) (Rekeyer, error) { return memRekeyer{p}, nil }
	// Offline, every input is there: no input partition is ever idle.
	frozen := time.Unix(0, 0)
	cfg.Now = func() time.Time { return frozen }
	cfg.Outbox = func(stream.Claim) (Outbox, error) { return memOutbox{p}, nil }
	f, err := NewFactory(cfg)
	if err != nil {
		return nil, err
	}
	p.cfg, p.factory = cfg, f
	for _, t := range []string{cfg.PlaybackTopic, cfg.BrowseTopic, cfg.RekeyTopic} {
		for i := 0; i < cfg.Partitions; i++ {
			k := pipeKey{t, i}
			p.order = append(p.order, k)
			pt := &pipePart{committed: stream.Claim{Topic: t, Partition: i, Committed: -1, Processed: -1}}
			if pt.proc, err = f(context.Background(), pt.committed); err != nil {
				return nil, err
			}
			p.parts[k] = pt
		}
	}
	return p, nil
}

// Add appends an input event (playback or browse) to the log of its
// topic's partition, partition being the one a Kafka producer chose for
// its key (see [Murmur2Partition]). Other records are ignored.
func (p *Pipeline) Add(partition int, rec schemas.Record) error {
	var topic string
	switch rec.(type) {
	case *schemas.Playback:
		topic = p.cfg.PlaybackTopic
	case *schemas.Browse:
		topic = p.cfg.BrowseTopic
	default:
		return nil
	}
	pt := p.parts[pipeKey{topic, partition}]
	if pt == nil {
		return fmt.Errorf("cannot add to %s/%d: the pipeline has %d partitions", topic, partition, p.cfg.Partitions)
	}
	pt.log = append(pt.log, pipeRec{key: p.keys.Copy([]byte(rec.Key())), rec: rec})
	return nil
}

// Topics returns the names of the pipeline's topics: playback, browse and
// re-key.
func (p *Pipeline) Topics() [3]string {
	return [3]string{p.cfg.PlaybackTopic, p.cfg.BrowseTopic, p.cfg.RekeyTopic}
}

// Step hands up to n unprocessed records (all when n < 0) of one
// partition to its processor; it returns how many it handed.
func (p *Pipeline) Step(topic string, partition, n int) (int, error) {
	pt := p.parts[pipeKey{topic, partition}]
	if pt == nil {
		return 0, fmt.Errorf("no partition %s/%d", topic, partition)
	}
	done := 0
	for ; pt.next < pt.base+int64(len(pt.log)) && n != 0; n-- {
		off := pt.next
		lr := pt.log[off-pt.base]
		pt.rec = stream.Record{Topic: topic, Partition: partition, Offset: off, Key: lr.key,
			Value: lr.rec, Replay: pt.committed.Processed >= 0 && off < pt.committed.Processed}
		r := &pt.rec
		pt.next++
		done++
		if err := pt.proc.Process(context.Background(), r); err != nil {
			return done, fmt.Errorf("process %s/%d@%d: %w", topic, partition, off, err)
		}
	}
	return done, nil
}

// Pending reports the records of a partition not processed yet.
func (p *Pipeline) Pending(topic string, partition int) int {
	if pt := p.parts[pipeKey{topic, partition}]; pt != nil {
		return int(pt.base + int64(len(pt.log)) - pt.next)
	}
	return 0
}

// Compact drops the records no processor can need again: below the
// committed offset of each partition, or below the next offset to process
// when crashes is false (no Crash will follow). Long offline runs call it
// to keep memory flat.
func (p *Pipeline) Compact(crashes bool) {
	for _, pt := range p.parts {
		upTo := pt.next
		if crashes {
			upTo = min(upTo, max(pt.committed.Committed, 0))
		}
		if n := int(upTo - pt.base); n > 0 {
			clear(pt.log[:n])
			pt.log = slices.Clone(pt.log[n:])
			pt.base = upTo
		}
	}
}

// Drain processes every partition until nothing is pending: inputs first,
// then the re-key partitions they filled.
func (p *Pipeline) Drain() error {
	for {
		moved := 0
		for _, k := range p.order {
			n, err := p.Step(k.topic, k.partition, -1)
			if err != nil {
				return err
			}
			moved += n
		}
		if moved == 0 {
			return nil
		}
	}
}

// Checkpoint checkpoints one partition's processor and commits what it
// returns, as the engine does.
func (p *Pipeline) Checkpoint(topic string, partition int) error {
	pt := p.parts[pipeKey{topic, partition}]
	if pt == nil {
		return fmt.Errorf("no partition %s/%d", topic, partition)
	}
	cp, err := pt.proc.Checkpoint(context.Background())
	if err != nil {
		return err
	}
	off := cp.Offset
	if off < 0 || off > pt.next {
		off = pt.next
	}
	pt.committed.Committed, pt.committed.Processed, pt.committed.Metadata = off, max(pt.next, pt.committed.Processed), cp.Metadata
	if len(cp.Metadata) > 4000 {
		return fmt.Errorf("checkpoint of %s/%d: %d bytes of metadata, over what a broker accepts", topic, partition, len(cp.Metadata))
	}
	return nil
}

// Crash drops one partition's processor without a checkpoint and builds a
// new one from the last commit; the log is replayed from the committed
// offset on the next Step.
func (p *Pipeline) Crash(topic string, partition int) error {
	pt := p.parts[pipeKey{topic, partition}]
	if pt == nil {
		return fmt.Errorf("no partition %s/%d", topic, partition)
	}
	proc, err := p.factory(context.Background(), pt.committed)
	if err != nil {
		return fmt.Errorf("cannot restore %s/%d: %w", topic, partition, err)
	}
	pt.proc = proc
	pt.next = max(pt.committed.Committed, 0)
	if pt.next < pt.base {
		return fmt.Errorf("cannot restore %s/%d: offset %d was compacted away (base %d)", topic, partition, pt.next, pt.base)
	}
	return nil
}

// Alerts returns every alert published so far, in order, copies published
// again after a crash included.
func (p *Pipeline) Alerts() []schemas.Alert { return p.alerts }

// StateSize sums, over the partitions, the subjects and estimated bytes
// each detector holds.
func (p *Pipeline) StateSize() map[string][2]int {
	out := map[string][2]int{}
	for _, k := range p.order {
		s, ok := p.parts[k].proc.(interface{ StateSize() map[string][2]int })
		if !ok {
			continue
		}
		for kind, v := range s.StateSize() {
			o := out[kind]
			out[kind] = [2]int{o[0] + v[0], o[1] + v[1]}
		}
	}
	return out
}

// Dedup returns the distinct lifecycle steps of alerts, (id, status,
// severity) once each, in the order first published: what a consumer
// that deduplicates by id and status sees.
func Dedup(alerts []schemas.Alert) []schemas.Alert {
	type k struct {
		id  string
		st  schemas.AlertStatus
		sev schemas.Severity
	}
	seen := map[k]bool{}
	var out []schemas.Alert
	for _, a := range alerts {
		key := k{a.ID, a.Status, a.Severity}
		if !seen[key] {
			seen[key] = true
			out = append(out, a)
		}
	}
	return out
}

// Settled returns a without what depends on when its records arrived
// rather than on the records: for a firing alert that stage two may fire
// ahead of its clock (credential stuffing, see [Ahead]), the detection
// time, score, window and evidence, which describe what was certain when
// it fired. Id, kind, subject, severity and start stay. Two runs over the
// same input publish the same settled alerts, whatever their timing.
func Settled(a schemas.Alert) schemas.Alert {
	if a.Kind == KindCredentialStuffing && a.Status == schemas.AlertFiring {
		a.DetectedAt, a.Score, a.WindowStart, a.WindowEnd, a.Evidence = 0, 0, 0, 0, nil
	}
	return a
}

type memRekeyer struct{ p *Pipeline }

func (m memRekeyer) Send(_ context.Context, key []byte, rec schemas.Record) {
	pt := m.p.parts[pipeKey{m.p.cfg.RekeyTopic, PartitionOf(SubjectOf(key), m.p.cfg.Partitions)}]
	pt.log = append(pt.log, pipeRec{key: m.p.keys.Copy(key), rec: rec})
}
func (memRekeyer) Flush(context.Context) error { return nil }
func (memRekeyer) Close() error                { return nil }

type memOutbox struct{ p *Pipeline }

func (m memOutbox) Publish(a *schemas.Alert) {
	c := *a
	m.p.alerts = append(m.p.alerts, c)
}
func (memOutbox) Flush(context.Context) error { return nil }
func (memOutbox) Close() error                { return nil }

// Murmur2Partition is the partition that kafka-go's Murmur2Balancer (the
// Java client's default partitioner) picks for key among n partitions:
// the one Atlas's producers pick for a profile id.
func Murmur2Partition(key []byte, n int) int {
	const (
		seed = uint32(0x9747b28c)
		m    = uint32(0x5bd1e995)
		r    = 24
	)
	length := uint32(len(key))
	h := seed ^ length
	i := 0
	for ; i+4 <= len(key); i += 4 {
		k := uint32(key[i]) | uint32(key[i+1])<<8 | uint32(key[i+2])<<16 | uint32(key[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch len(key) - i {
	case 3:
		h ^= uint32(key[i+2]) << 16
		fallthrough
	case 2:
		h ^= uint32(key[i+1]) << 8
		fallthrough
	case 1:
		h ^= uint32(key[i])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int((h & 0x7fffffff) % uint32(n))
}
