//go:build integration

package e2e

import (
	"math"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/atlas-stream/atlas/consumers/embeddings/api"
	"github.com/atlas-stream/atlas/topology"
)

// embMember is one `atlas run embeddings` process with its addresses.
type embMember struct {
	p        *proc
	ops, api string
}

func (s *stack) startEmbeddings(name string) embMember {
	m := embMember{ops: freeAddr(s.t), api: freeAddr(s.t)}
	m.p = s.embWithEnv([]string{"ATLAS_EMBEDDINGS_ADDR=" + m.api, "ATLAS_EMBEDDINGS_EVAL_PERCENT=100", "ATLAS_EMBEDDINGS_REFRESH=300ms"},
		func() *proc {
			return s.start(name, "run", "embeddings", "--ops-addr", m.ops, "--flush-interval", "300ms", "--session-timeout", "6s")
		})
	return m
}

// prequential runs members over the same simulated input in a fresh
// stack and returns the prequential recall@10 they measured together,
// the judged first plays, and the members' model digest.
func prequential(t *testing.T, members int) (recall, judged float64, digest string, ms []embMember) {
	t.Helper()
	s := newStack(t, 6)
	for i := 0; i < members; i++ {
		ms = append(ms, s.startEmbeddings(string(rune('a'+i))))
	}
	for _, m := range ms {
		s.waitReady(m.p, m.ops, time.Minute)
	}
	// Live traffic, as in production: the members keep up, and each sees
	// the other's title updates a flush and a fetch later. (Draining a
	// backlog instead, a member runs ~10k events ahead of what the other
	// has published, which costs two members ~7% of recall.)
	s.atlas("simulate", "--seed", "2027", "--events", "600000", "--profiles", "400", "--no-incidents", "--rate", "15000")
	s.waitDrained(4*time.Minute, s.topo.GroupID(topology.EmbeddingsGroup), s.topo.Name(topology.Playback), s.topo.Name(topology.Browse))
	hits := 0.0
	for _, m := range ms {
		judged += metric(m.ops, "atlas_embeddings_prequential_judged_total")
		hits += metric(m.ops, "atlas_embeddings_prequential_hits_total")
	}
	var want uint64
	for i, m := range ms {
		var info api.ModelInfo
		if _, err := embGet("http://"+m.api+"/v1/model", &info); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			want = info.Plays
		}
		info = s.embWaitModel(m.p, m.api, want, time.Minute)
		if i > 0 && info.Digest != digest {
			t.Fatalf("members disagree on the model: %s vs %s", info.Digest, digest)
		}
		digest = info.Digest
	}
	return hits / judged, judged, digest, ms
}

func TestTwoEmbeddingsMembersRecommendAsWellAsOne(t *testing.T) {
	one, judged1, digest1, m1 := prequential(t, 1)
	m1[0].p.signal(syscall.SIGTERM) // leave the two cores to the next run
	m1[0].p.wait(30 * time.Second)
	two, judged2, digest2, m2 := prequential(t, 2)
	t.Logf("prequential recall@10 over %.0f first plays: one member %.4f, two members %.4f (%.0f judged)", judged1, one, two, judged2)
	if judged1 != judged2 || judged1 < 1000 {
		t.Fatalf("judged %v first plays with one member and %v with two: the same input must judge the same plays", judged1, judged2)
	}
	t.Logf("difference %+.1f%%", 100*(two-one)/one)
	if math.Abs(two-one) > 0.05*one {
		t.Fatalf("two members' recall@10 %.4f is not within 5%% of one member's %.4f", two, one)
	}
	if digest1 != digest2 {
		t.Fatalf("after the input is drained, one member's model %s differs from two members' %s", digest1, digest2)
	}
	// Each member answers for every profile: its own, and the other's by
	// forwarding.
	var served = map[string]int{}
	for u := 1; u <= 60; u++ {
		id := "pro-" + strconv.Itoa(u) + "-1"
		var r api.Recommendations
		status, err := embGet("http://"+m2[0].api+"/v1/profiles/"+id+"/recommendations", &r)
		if err != nil || (status != 200 && status != 404) {
			t.Fatalf("%s through member a: status %d, %v", id, status, err)
		}
		served[r.ServedBy]++
	}
	if len(served) != 2 {
		t.Fatalf("60 profiles asked of member a were served by %v: want both members", served)
	}
	t.Logf("60 profiles asked of member a, served by %v", served)
}
