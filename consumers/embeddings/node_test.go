package embeddings

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/atlas-stream/atlas/consumers/enginetest"
	"github.com/atlas-stream/atlas/consumers/stream"
)

// clock is a fake time source that tests move by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestNode(t *testing.T, s *MemStore, c *clock) *Node {
	t.Helper()
	n, err := NewNode(NodeConfig{Learner: Config{Dim: 8}, Store: s, PlaybackTopic: pbTopic, BrowseTopic: brTopic,
		FlushEvery: 5 * time.Second, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	s.Follow(n)
	return n
}

// snapshot is everything a run must agree on: the model's digest, each
// profile's changelog value without the taste vector, and each profile's
// top 10.
type snapshot struct {
	digest   uint64
	profiles map[string]string
	recs     map[string][]string
}

func (n *Node) snapshot(t *testing.T, parts int) snapshot {
	t.Helper()
	n.Refresh()
	s := snapshot{digest: n.model.Digest(), profiles: map[string]string{}, recs: map[string][]string{}}
	for p := 0; p < parts; p++ {
		n.mu.Lock()
		pt := n.parts[p]
		n.mu.Unlock()
		if pt == nil {
			continue
		}
		pt.mu.Lock()
		for id := range pt.profiles {
			pr := n.get(pt, id)
			n.model.mu.RLock()
			s.profiles[id] = string(n.model.appendProfileLocked(nil, pr, false))
			n.model.mu.RUnlock()
			s.recs[id] = ids(n.model.Recommend(pr, pr.Country(), 10, nil))
		}
		pt.mu.Unlock()
	}
	return s
}

func (s snapshot) diff(o snapshot) string {
	if s.digest != o.digest {
		return fmt.Sprintf("model digest %x, want %x", o.digest, s.digest)
	}
	if len(s.profiles) != len(o.profiles) {
		return fmt.Sprintf("%d profiles, want %d", len(o.profiles), len(s.profiles))
	}
	for id, v := range s.profiles {
		if o.profiles[id] != v {
			return fmt.Sprintf("profile %s: state %x, want %x", id, o.profiles[id], v)
		}
		if !slices.Equal(s.recs[id], o.recs[id]) {
			return fmt.Sprintf("profile %s: recommendations %v, want %v", id, o.recs[id], s.recs[id])
		}
	}
	return ""
}

func checkpointAll(t *testing.T, h *enginetest.Harness, parts int) {
	t.Helper()
	for p := 0; p < parts; p++ {
		for _, topic := range []string{pbTopic, brTopic} {
			if _, err := h.Checkpoint(topic, p); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// cleanRun processes every log without a crash.
func cleanRun(t *testing.T, lg logs) snapshot {
	c := &clock{t: time.Unix(1e9, 0)}
	s := NewMemStore()
	n := newTestNode(t, s, c)
	h := enginetest.New(n.Factory)
	for p, l := range lg {
		if err := h.Feed(pbTopic, p, l[0]...); err != nil {
			t.Fatal(err)
		}
		if err := h.Feed(brTopic, p, l[1]...); err != nil {
			t.Fatal(err)
		}
	}
	c.t = c.t.Add(time.Hour)
	checkpointAll(t, h, len(lg))
	return n.snapshot(t, len(lg))
}

func TestCrashesAtAnyPointGiveTheStateOfARunWithout(t *testing.T) {
	const parts = 3
	lg := traffic(17, 1500, parts)
	want := cleanRun(t, lg)
	if len(want.profiles) < 50 {
		t.Fatalf("traffic too thin: %d profiles", len(want.profiles))
	}
	for seed := uint64(0); seed < 25; seed++ {
		rng := rand.New(rand.NewPCG(seed, 3))
		c := &clock{t: time.Unix(1e9, 0)}
		store := NewMemStore()
		var node *Node
		factory := func(ctx context.Context, cl stream.Claim) (stream.Processor, error) { return node.Factory(ctx, cl) }
		node = newTestNode(t, store, c)
		h := enginetest.New(factory)
		for p, l := range lg {
			if err := h.Append(pbTopic, p, l[0]...); err != nil {
				t.Fatal(err)
			}
			if err := h.Append(brTopic, p, l[1]...); err != nil {
				t.Fatal(err)
			}
		}
		crashes, flushes := 0, 0
		for {
			var open [][2]any
			for p := 0; p < parts; p++ {
				for _, topic := range []string{pbTopic, brTopic} {
					if h.Pending(topic, p) > 0 {
						open = append(open, [2]any{topic, p})
					}
				}
			}
			if len(open) == 0 {
				break
			}
			pick := open[rng.IntN(len(open))]
			topic, p := pick[0].(string), pick[1].(int)
			if err := h.Process(topic, p, 1+rng.IntN(150)); err != nil {
				t.Fatal(err)
			}
			c.t = c.t.Add(time.Duration(rng.IntN(4000)) * time.Millisecond)
			switch rng.IntN(5) {
			case 3:
				// The state is written but the member dies before the
				// commit: the next one restores state ahead of the
				// committed offset and must skip what it already holds.
				c.t = c.t.Add(10 * time.Second)
				op := []string{"model", "profiles"}[rng.IntN(2)]
				store.LoseAck = func(got string) error {
					if got == op {
						return errors.New("killed before the acknowledgement")
					}
					return nil
				}
				if _, err := h.Checkpoint(topic, p); err == nil && (len(node.parts[p].pending) > 0) {
					t.Fatal("a lost acknowledgement did not fail the checkpoint")
				}
				store.LoseAck = nil
				fallthrough
			case 2:
				// The whole member dies: a new one restores every claim.
				store.Unfollow(node)
				node = newTestNode(t, store, c)
				for q := 0; q < parts; q++ {
					for _, tp := range []string{pbTopic, brTopic} {
						if err := h.Crash(tp, q); err != nil {
							t.Fatal(err)
						}
					}
				}
				crashes++
			case 0, 1:
				if _, err := h.Checkpoint(topic, p); err != nil {
					t.Fatal(err)
				}
				flushes++
			}
		}
		c.t = c.t.Add(time.Hour)
		checkpointAll(t, h, parts)
		if err := store.SyncModel(context.Background()); err != nil {
			t.Fatal(err)
		}
		if d := want.diff(node.snapshot(t, parts)); d != "" {
			t.Fatalf("seed %d, %d crashes, %d checkpoints: the live member differs from a run without crashes: %s", seed, crashes, flushes, d)
		}
		// And what a new member restores from the store is the same.
		store.Unfollow(node)
		node = newTestNode(t, store, c)
		h2 := enginetest.New(node.Factory)
		for p := 0; p < parts; p++ {
			if err := h2.Feed(pbTopic, p); err != nil {
				t.Fatal(err)
			}
		}
		if d := want.diff(node.snapshot(t, parts)); d != "" {
			t.Fatalf("seed %d: the state restored from the store differs from a run without crashes: %s", seed, d)
		}
	}
}

func TestTwoMembersMergeTheirIncrementsIntoTheSameModel(t *testing.T) {
	const parts = 3
	lg := traffic(23, 1500, parts)
	want := cleanRun(t, lg)
	c := &clock{t: time.Unix(1e9, 0)}
	store := NewMemStore()
	a, b := newTestNode(t, store, c), newTestNode(t, store, c)
	ha, hb := enginetest.New(a.Factory), enginetest.New(b.Factory)
	owner := func(p int) *enginetest.Harness {
		if p == 2 {
			return hb
		}
		return ha
	}
	rng := rand.New(rand.NewPCG(1, 1))
	for p, l := range lg {
		owner(p).Append(pbTopic, p, l[0]...)
		owner(p).Append(brTopic, p, l[1]...)
	}
	for busy := true; busy; {
		busy = false
		for p := 0; p < parts; p++ {
			for _, topic := range []string{pbTopic, brTopic} {
				h := owner(p)
				if h.Pending(topic, p) == 0 {
					continue
				}
				busy = true
				if err := h.Process(topic, p, 1+rng.IntN(50)); err != nil {
					t.Fatal(err)
				}
				c.t = c.t.Add(time.Second)
				if _, err := h.Checkpoint(topic, p); err != nil {
					t.Fatal(err)
				}
				if rng.IntN(3) == 0 {
					store.SyncModel(context.Background())
				}
			}
		}
	}
	c.t = c.t.Add(time.Hour)
	checkpointAll(t, ha, 2)
	for _, topic := range []string{pbTopic, brTopic} {
		hb.Checkpoint(topic, 2)
	}
	store.SyncModel(context.Background())
	sa, sb := a.snapshot(t, parts), b.snapshot(t, parts)
	if sa.digest != want.digest || sb.digest != want.digest {
		t.Fatalf("model digests: member a %x, member b %x, single member %x", sa.digest, sb.digest, want.digest)
	}
	for id, v := range sb.profiles {
		sa.profiles[id], sa.recs[id] = v, sb.recs[id]
	}
	if d := want.diff(sa); d != "" {
		t.Fatalf("two members differ from one: %s", d)
	}
	if o, ok := a.Owner(2); ok {
		t.Fatalf("no advertised address, yet partition 2 has an owner %+v", o)
	}
}

func TestAFailedWriteCommitsNothingAndIsRetried(t *testing.T) {
	lg := traffic(5, 300, 1)
	want := cleanRun(t, lg)
	c := &clock{t: time.Unix(1e9, 0)}
	store := NewMemStore()
	n := newTestNode(t, store, c)
	h := enginetest.New(n.Factory)
	if err := h.Feed(pbTopic, 0, lg[0][0]...); err != nil {
		t.Fatal(err)
	}
	if err := h.Feed(brTopic, 0, lg[0][1]...); err != nil {
		t.Fatal(err)
	}
	c.t = c.t.Add(time.Minute)
	for _, op := range []string{"model", "profiles"} {
		store.Fail = func(got string) error {
			if got == op {
				return errors.New("broker down")
			}
			return nil
		}
		if _, err := h.Checkpoint(pbTopic, 0); err == nil {
			t.Fatalf("a failed %s write did not fail the checkpoint", op)
		}
		if cm := h.Committed(pbTopic, 0); cm.Committed > 0 {
			t.Fatalf("after a failed %s write the harness committed %d", op, cm.Committed)
		}
	}
	store.Fail = nil
	checkpointAll(t, h, 1)
	if got := h.Committed(pbTopic, 0).Committed; got != int64(len(lg[0][0])) {
		t.Fatalf("committed %d, want the whole log (%d)", got, len(lg[0][0]))
	}
	// A new member restores exactly the state of the run.
	store.Unfollow(n)
	n = newTestNode(t, store, c)
	h = enginetest.New(n.Factory)
	h.Feed(pbTopic, 0)
	if d := want.diff(n.snapshot(t, 1)); d != "" {
		t.Fatal(d)
	}
}

func TestCheckpointsBetweenFlushesDoNotMoveTheRestartOffset(t *testing.T) {
	lg := traffic(9, 200, 1)
	c := &clock{t: time.Unix(1e9, 0)}
	n := newTestNode(t, NewMemStore(), c)
	h := enginetest.New(n.Factory)
	h.Feed(pbTopic, 0, lg[0][0][:50]...)
	cp, err := h.Checkpoint(pbTopic, 0)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Offset != 0 {
		t.Fatalf("restart offset %d before the first flush, want 0", cp.Offset)
	}
	c.t = c.t.Add(6 * time.Second)
	if cp, _ = h.Checkpoint(pbTopic, 0); cp.Offset != 50 {
		t.Fatalf("restart offset %d after a flush, want 50", cp.Offset)
	}
}
