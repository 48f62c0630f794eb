package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/atlas-stream/atlas/consumers/embeddings"
	"github.com/atlas-stream/atlas/consumers/enginetest"
	"github.com/atlas-stream/atlas/schemas"
)

func del(t *testing.T, url string) (int, Erased) {
	t.Helper()
	req, err := http.NewRequest(http.MethodDelete, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var e Erased
	if err := json.NewDecoder(res.Body).Decode(&e); err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, e
}

// DELETE /v1/profiles/{id}, sent to a member that does not own the
// profile, is forwarded to the owner, which drops the profile and writes
// its tombstone: its recommendations turn cold-start, a second DELETE finds
// nothing, and another profile is untouched.
func TestDeletingAProfileForgetsItAtItsOwnerAndInTheChangelog(t *testing.T) {
	tm := start(t, true)
	if _, found, _ := tm.nb.Lookup(1, "b-u1"); !found {
		t.Fatal("b-u1 is not there to begin with")
	}
	status, e := del(t, tm.a.URL+"/v1/profiles/b-u1")
	if status != 200 || !e.Found || !e.Erased || e.ServedBy != tm.b.Listener.Addr().String() || e.Partition != 1 {
		t.Fatalf("DELETE through the other member: status %d, %+v", status, e)
	}
	var r Recommendations
	if status, _ := get(t, tm.a.URL+"/v1/profiles/b-u1/recommendations", &r); status != 404 || !r.ColdStart {
		t.Fatalf("recommendations after the DELETE: status %d, %+v", status, r)
	}
	if status, _ := get(t, tm.a.URL+"/v1/profiles/b-u2/recommendations", &r); status != 200 || r.ColdStart {
		t.Fatalf("another profile after the DELETE: status %d, %+v", status, r)
	}
	if status, e := del(t, tm.b.URL+"/v1/profiles/b-u1"); status != 200 || e.Found || !e.Erased {
		t.Fatalf("a second DELETE: status %d, %+v", status, e)
	}
}

// A member that restores the partition from the changelog after a DELETE
// does not have the profile: the tombstone follows its last state.
func TestAnErasedProfileIsNotRestoredFromTheChangelog(t *testing.T) {
	store := embeddings.NewMemStore()
	member := func() *embeddings.Node {
		n, err := embeddings.NewNode(embeddings.NodeConfig{Learner: embeddings.Config{Dim: 8}, Store: store, PlaybackTopic: "pb",
			BrowseTopic: "br", FlushEvery: time.Nanosecond})
		if err != nil {
			t.Fatal(err)
		}
		store.Follow(n)
		return n
	}
	n := member()
	h := enginetest.New(n.Factory)
	for i, p := range []string{"gone", "kept", "gone"} {
		if err := h.Feed("pb", 0, &schemas.Playback{Envelope: schemas.Envelope{EventID: p + string(rune('0'+i)), ProfileID: p, Country: "DE"},
			Kind: schemas.PlayStart, TitleID: "x" + string(rune('0'+i))}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.Checkpoint("pb", 0); err != nil {
		t.Fatal(err)
	}
	handler, err := Handler(Config{Node: n, PartitionOf: func(string) int { return 0 }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(handler)
	defer srv.Close()
	if status, e := del(t, srv.URL+"/v1/profiles/gone"); status != 200 || !e.Found {
		t.Fatalf("DELETE: status %d, %+v", status, e)
	}
	// The next member restores partition 0 from the changelog.
	next := member()
	if _, err := enginetest.New(next.Factory).Checkpoint("pb", 0); err != nil {
		t.Fatal(err)
	}
	if ids := next.ProfileIDs(0); !slices.Equal(ids, []string{"kept"}) {
		t.Fatalf("restored profiles %v, want only [kept]", ids)
	}
}
