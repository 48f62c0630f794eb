package embeddings

import (
	"context"
	"slices"
	"sync"
)

// MemStore is an in-memory [Store]: an append-only log per changelog
// partition and one for the model topic, as Kafka would keep them before
// compaction. Tests use one MemStore for several Nodes (members) and for
// crashes (a new Node over the same MemStore). It is safe for concurrent
// use.
type MemStore struct {
	mu        sync.Mutex
	profiles  map[int][]KV
	model     []KV
	followers map[*Node]int // next model record to deliver
	// Fail, when set, is called before every write ("profiles" or
	// "model"); an error fails it. LoseAck is called after the records
	// were appended; an error fails the write although the records stay
	// (an acknowledgement lost on the way back).
	Fail, LoseAck func(op string) error
}

// NewMemStore returns an empty store.
func NewMemStore() *MemStore {
	return &MemStore{profiles: map[int][]KV{}, followers: map[*Node]int{}}
}

// Follow makes SyncModel deliver the model topic to n, from its start.
func (s *MemStore) Follow(n *Node) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.followers[n] = 0
}

// Unfollow stops delivering to n (a member that crashed).
func (s *MemStore) Unfollow(n *Node) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.followers, n)
}

// RestoreProfiles implements Store.
func (s *MemStore) RestoreProfiles(ctx context.Context, partition int, fn func(key, value []byte) error) error {
	s.mu.Lock()
	recs := slices.Clone(s.profiles[partition])
	s.mu.Unlock()
	for _, r := range recs {
		if err := fn(r.Key, r.Value); err != nil {
			return err
		}
	}
	return nil
}

// WriteProfiles implements Store.
func (s *MemStore) WriteProfiles(ctx context.Context, partition int, recs []KV) error {
	if err := s.fail("profiles"); err != nil {
		return err
	}
	s.mu.Lock()
	for _, r := range recs {
		s.profiles[partition] = append(s.profiles[partition], KV{slices.Clone(r.Key), slices.Clone(r.Value)})
	}
	s.mu.Unlock()
	return s.lost("profiles")
}

// WriteModel implements Store.
func (s *MemStore) WriteModel(ctx context.Context, recs []KV) error {
	if err := s.fail("model"); err != nil {
		return err
	}
	s.mu.Lock()
	for _, r := range recs {
		s.model = append(s.model, KV{slices.Clone(r.Key), slices.Clone(r.Value)})
	}
	s.mu.Unlock()
	return s.lost("model")
}

func (s *MemStore) lost(op string) error {
	if s.LoseAck != nil {
		return s.LoseAck(op)
	}
	return nil
}

func (s *MemStore) fail(op string) error {
	if s.Fail != nil {
		return s.Fail(op)
	}
	return nil
}

// SyncModel implements Store: it delivers every model record not yet
// delivered to every follower.
func (s *MemStore) SyncModel(ctx context.Context) error {
	for {
		s.mu.Lock()
		var n *Node
		var r KV
		for f, next := range s.followers {
			if next < len(s.model) {
				n, r = f, s.model[next]
				s.followers[f] = next + 1
				break
			}
		}
		s.mu.Unlock()
		if n == nil {
			return nil
		}
		if err := n.ApplyModel(r.Key, r.Value); err != nil {
			return err
		}
	}
}

// Latest returns the newest value of every key of a changelog partition,
// as compaction would leave them.
func (s *MemStore) Latest(partition int) map[string][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]byte{}
	for _, r := range s.profiles[partition] {
		if r.Value == nil {
			delete(out, string(r.Key))
		} else {
			out[string(r.Key)] = r.Value
		}
	}
	return out
}

// ModelRecords returns how many records the model topic holds.
func (s *MemStore) ModelRecords() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.model)
}
