//go:build integration

package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/atlas-stream/atlas/consumers/embeddings"
	"github.com/atlas-stream/atlas/consumers/embeddings/api"
	"github.com/atlas-stream/atlas/consumers/enginetest"
	"github.com/atlas-stream/atlas/schemas"
	"github.com/atlas-stream/atlas/topology"
)

// withEnv runs start with extra environment variables for one process.
func (s *stack) embWithEnv(extra []string, start func() *proc) *proc {
	saved := s.env
	s.env = append(append([]string(nil), s.env...), extra...)
	defer func() { s.env = saved }()
	return start()
}

// offlineEmbeddings runs the pure learner over what the playback and
// browse topics hold, partition by partition, as one uninterrupted member
// would: the oracle of the embeddings end-to-end tests.
func (s *stack) offlineEmbeddings(partitions int) *embeddings.Node {
	s.t.Helper()
	store := embeddings.NewMemStore()
	node, err := embeddings.NewNode(embeddings.NodeConfig{Store: store, PlaybackTopic: "pb", BrowseTopic: "br"})
	if err != nil {
		s.t.Fatal(err)
	}
	store.Follow(node)
	h := enginetest.New(node.Factory)
	dec := schemas.NewDecoder(schemas.DefaultLimits())
	for _, tp := range []struct{ name, as string }{{s.topo.Name(topology.Playback), "pb"}, {s.topo.Name(topology.Browse), "br"}} {
		logs := make([][]schemas.Record, partitions)
		for _, m := range s.readTopic(tp.name) {
			if int64(len(logs[m.Partition])) != m.Offset {
				s.t.Fatalf("%s/%d: offset %d after %d records: the oracle needs contiguous offsets", tp.name, m.Partition, m.Offset, len(logs[m.Partition]))
			}
			schema := ""
			for _, h := range m.Headers {
				if h.Key == schemas.HeaderSchema {
					schema = string(h.Value)
				}
			}
			rec, err := dec.Decode(schema, m.Value)
			if err == nil {
				err = schemas.Validate(rec, schemas.DefaultLimits(), m.Time)
			}
			if err != nil {
				rec = &schemas.Title{} // a dead letter: its offset passes, nothing is learned
			}
			logs[m.Partition] = append(logs[m.Partition], rec)
		}
		for p, l := range logs {
			if err := h.Feed(tp.as, p, l...); err != nil {
				s.t.Fatal(err)
			}
		}
	}
	for p := 0; p < partitions; p++ {
		h.Checkpoint("pb", p)
		h.Checkpoint("br", p)
	}
	store.SyncModel(context.Background())
	node.Refresh()
	return node
}

func embGet(url string, v any) (int, error) {
	c := http.Client{Timeout: 5 * time.Second}
	res, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	return res.StatusCode, json.NewDecoder(res.Body).Decode(v)
}

// waitModel waits until a member's model holds want first plays and its
// dense vectors are current.
func (s *stack) embWaitModel(p *proc, addr string, wantPlays uint64, d time.Duration) api.ModelInfo {
	s.t.Helper()
	deadline := time.Now().Add(d)
	var info api.ModelInfo
	for {
		_, err := embGet("http://"+addr+"/v1/model", &info)
		if err == nil && info.Plays == wantPlays && info.DenseAt == info.Changes {
			return info
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("model of %s: %+v (err %v), want %d plays and current dense vectors\n%s", addr, info, err, wantPlays, lastLines(p.output(), 20))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestEmbeddingsStateAfterRepeatedKillsEqualsAnUninterruptedRun(t *testing.T) {
	const partitions = 3
	s := newStack(t, partitions)
	// Traffic arrives while the consumer is killed: 60 s at 5k events/s,
	// longer than the five runs take even when each restart waits out the
	// broker's 6 s minimum session timeout on a loaded machine.
	simulate := s.start("simulate", "simulate", "--seed", "515", "--events", "300000", "--rate", "5000",
		"--profiles", "300", "--no-incidents")

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	args := []string{"run", "embeddings", "--flush-interval", "300ms", "--session-timeout", "6s"}
	// Some kills land inside a checkpoint: after the state is written and
	// before the commit, so that a restart restores state ahead of the
	// committed offset and must skip what it holds.
	failpoints := []string{"", "before-commit:3", "", "after-commit:2", "before-commit:5"}
	replays := 0.0
	for i, fp := range failpoints {
		ops, apiAddr := freeAddr(t), freeAddr(t)
		extra := []string{"ATLAS_EMBEDDINGS_ADDR=" + apiAddr, "ATLAS_EMBEDDINGS_REFRESH=500ms"}
		if fp != "" {
			extra = append(extra, "ATLAS_FAILPOINT="+fp)
		}
		c := s.embWithEnv(extra, func() *proc { return s.start("embeddings", append(args, "--ops-addr", ops)...) })
		s.waitMetric(c, ops, "atlas_engine_events_total", 1, 60*time.Second)
		killAt := time.Now().Add(time.Duration(300+rng.IntN(1500)) * time.Millisecond)
		var events, restored, skipped float64
		for {
			// Read the metrics until the process dies (a failpoint kills
			// it from inside), so the log says what each run did.
			if v := metric(ops, "atlas_engine_events_total"); v >= 0 {
				events = v
				restored = metric(ops, "atlas_embeddings_restored_profiles")
				skipped = metric(ops, "atlas_embeddings_replayed_total")
			}
			if fp == "" && time.Now().After(killAt) {
				c.signal(syscall.SIGKILL)
			}
			if err := c.wait(50 * time.Millisecond); !strings.Contains(fmt.Sprint(err), "still running") {
				if err == nil || !strings.Contains(err.Error(), "killed") {
					t.Fatalf("run %d (failpoint %q): the consumer did not die of SIGKILL: %v\n%s", i, fp, err, lastLines(c.output(), 20))
				}
				break
			}
			if fp != "" && time.Since(killAt) > time.Minute {
				// The input ran dry before the failpoint's Nth checkpoint:
				// a plain SIGKILL still tests the restart.
				t.Logf("run %d: failpoint %q not reached within a minute (no more input?); SIGKILL instead", i, fp)
				fp = ""
				c.signal(syscall.SIGKILL)
			}
		}
		replays += skipped
		t.Logf("kill %d (%s): %.0f profiles restored at start, %.0f replayed records skipped, %.0f records processed",
			i+1, map[bool]string{true: "SIGKILL", false: fp}[fp == ""], restored, skipped, events)
	}
	if err := simulate.wait(2 * time.Minute); err != nil {
		t.Fatalf("simulate: %v\n%s", err, simulate.output())
	}

	ops, apiAddr := freeAddr(t), freeAddr(t)
	final := s.embWithEnv([]string{"ATLAS_EMBEDDINGS_ADDR=" + apiAddr, "ATLAS_EMBEDDINGS_REFRESH=300ms"},
		func() *proc { return s.start("embeddings", append(args, "--ops-addr", ops)...) })
	group := s.topo.GroupID(topology.EmbeddingsGroup)
	s.waitDrained(3*time.Minute, group, s.topo.Name(topology.Playback), s.topo.Name(topology.Browse))

	want := s.offlineEmbeddings(partitions)
	wantStats := want.Model().Stats()
	info := s.embWaitModel(final, apiAddr, wantStats.Plays, time.Minute)
	if info.Digest != fmt.Sprintf("%016x", want.Model().Digest()) {
		t.Fatalf("model digest %s, the uninterrupted run's %016x (%+v vs %+v)", info.Digest, want.Model().Digest(), info.Stats, wantStats)
	}
	t.Logf("model after the kills: %d titles, %d first plays, %d pairs, digest %s: equal to the uninterrupted run",
		info.Titles, info.Plays, info.Pairs, info.Digest)

	profiles, vectors := 0, 0
	for p := 0; p < partitions; p++ {
		for _, id := range want.ProfileIDs(p) {
			wp, _, _ := want.Lookup(p, id)
			var e api.Embedding
			if status, err := embGet("http://"+apiAddr+"/v1/profiles/"+id+"/embedding", &e); err != nil || status != 200 {
				t.Fatalf("embedding of %s: status %d, %v", id, status, err)
			}
			if ws := want.Model().AppendState(nil, wp); e.State != base64.StdEncoding.EncodeToString(ws) {
				t.Fatalf("profile %s: state %s, the uninterrupted run's %s", id, e.State, base64.StdEncoding.EncodeToString(ws))
			}
			if wv := want.Model().Taste(wp); !slices.Equal(e.Vector, wv) {
				t.Fatalf("profile %s: taste vector %v, the uninterrupted run's %v", id, e.Vector, wv)
			} else if wv != nil {
				vectors++
			}
			var r api.Recommendations
			if status, err := embGet("http://"+apiAddr+"/v1/profiles/"+id+"/recommendations?k=10", &r); err != nil || status != 200 {
				t.Fatalf("recommendations of %s: status %d, %v", id, status, err)
			}
			wr := want.Model().Recommend(wp, wp.Country(), 10, nil)
			if len(wr) != len(r.Recommendations) {
				t.Fatalf("profile %s: %d recommendations, want %d", id, len(r.Recommendations), len(wr))
			}
			for i := range wr {
				if wr[i].Title != r.Recommendations[i].Title || wr[i].Score != r.Recommendations[i].Score {
					t.Fatalf("profile %s: recommendation %d is %+v, the uninterrupted run's %+v", id, i, r.Recommendations[i], wr[i])
				}
			}
			profiles++
		}
	}
	if profiles < 200 || vectors < profiles/2 {
		t.Fatalf("only %d profiles (%d with a taste vector) to compare", profiles, vectors)
	}
	final.signal(syscall.SIGTERM)
	if err := final.wait(30 * time.Second); err != nil {
		t.Fatalf("the consumer did not stop cleanly on SIGTERM: %v\n%s", err, lastLines(final.output(), 20))
	}
	if replays == 0 {
		t.Fatal("no restart skipped a replayed record: the kills never left state ahead of the commit")
	}
	t.Logf("%d kills; all %d profiles' state, taste vectors and top-10 equal the uninterrupted run's", len(failpoints), profiles)
}
