package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/atlas-stream/atlas/consumers/embeddings"
	"github.com/atlas-stream/atlas/consumers/enginetest"
	"github.com/atlas-stream/atlas/schemas"
)

// twoMembers runs members a (partition 0) and b (partition 1) over one
// in-memory store, each behind a real HTTP server.
type twoMembers struct {
	a, b   *httptest.Server
	na, nb *embeddings.Node
}

func partitionOf(id string) int {
	if strings.HasPrefix(id, "b-") {
		return 1
	}
	return 0
}

func start(t *testing.T, withB bool) *twoMembers {
	t.Helper()
	store := embeddings.NewMemStore()
	catalog := NewCatalog()
	for _, title := range []schemas.Title{{TitleID: "x1", Name: "Ex One"}, {TitleID: "x2", Name: "Ex Two"}} {
		b, err := schemas.Marshal(&title)
		if err != nil {
			t.Fatal(err)
		}
		if err := catalog.Apply([]byte(title.TitleID), b); err != nil {
			t.Fatal(err)
		}
	}
	tm := &twoMembers{}
	var ha, hb http.Handler
	tm.a = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ha.ServeHTTP(w, r) }))
	tm.b = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hb.ServeHTTP(w, r) }))
	t.Cleanup(tm.a.Close)
	t.Cleanup(tm.b.Close)
	node := func(srv *httptest.Server) *embeddings.Node {
		n, err := embeddings.NewNode(embeddings.NodeConfig{Learner: embeddings.Config{Dim: 8}, Store: store, PlaybackTopic: "pb",
			BrowseTopic: "br", FlushEvery: time.Nanosecond, Advertise: srv.Listener.Addr().String()})
		if err != nil {
			t.Fatal(err)
		}
		store.Follow(n)
		return n
	}
	tm.na, tm.nb = node(tm.a), node(tm.b)
	var err error
	if ha, err = Handler(Config{Node: tm.na, PartitionOf: partitionOf, Self: tm.a.Listener.Addr().String(), Catalog: catalog}); err != nil {
		t.Fatal(err)
	}
	if hb, err = Handler(Config{Node: tm.nb, PartitionOf: partitionOf, Self: tm.b.Listener.Addr().String(), Catalog: catalog}); err != nil {
		t.Fatal(err)
	}
	feed := func(n *embeddings.Node, part int, prefix string) {
		h := enginetest.New(n.Factory)
		var log []schemas.Record
		for i, s := range []string{"u1:x1", "u1:x2", "u2:x1", "u2:x2", "u3:x1", "u4:y1"} {
			u, title, _ := strings.Cut(s, ":")
			log = append(log, &schemas.Playback{Envelope: schemas.Envelope{EventID: fmt.Sprint(i), ProfileID: prefix + u, Country: "DE"},
				Kind: schemas.PlayStart, TitleID: title})
		}
		if err := h.Feed("pb", part, log...); err != nil {
			t.Fatal(err)
		}
		if _, err := h.Checkpoint("pb", part); err != nil {
			t.Fatal(err)
		}
	}
	feed(tm.na, 0, "a-")
	if withB {
		feed(tm.nb, 1, "b-")
	}
	store.SyncModel(context.Background())
	tm.na.Refresh()
	tm.nb.Refresh()
	return tm
}

func get(t *testing.T, url string, v any) (int, http.Header) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return res.StatusCode, res.Header
}

func TestRecommendationsOfAnOwnedProfileExcludeWatchedAndAreNamed(t *testing.T) {
	tm := start(t, true)
	var r Recommendations
	status, _ := get(t, tm.a.URL+"/v1/profiles/a-u3/recommendations?k=1", &r)
	if status != 200 || len(r.Recommendations) != 1 || r.Recommendations[0].Title != "x2" || r.Recommendations[0].Name != "Ex Two" || r.ColdStart {
		t.Fatalf("status %d, %+v", status, r)
	}
}

func TestAnUnknownProfileGets404WithColdStartRecommendations(t *testing.T) {
	tm := start(t, true)
	var r Recommendations
	status, _ := get(t, tm.a.URL+"/v1/profiles/a-nobody/recommendations?k=2&country=DE", &r)
	if status != 404 || !r.ColdStart || len(r.Recommendations) != 2 || r.Recommendations[0].Title != "x1" {
		t.Fatalf("status %d, %+v", status, r)
	}
	var e Error
	if status, _ := get(t, tm.a.URL+"/v1/profiles/a-nobody/embedding", &e); status != 404 {
		t.Fatalf("embedding of an unknown profile: status %d", status)
	}
}

func TestARequestForAnotherMembersProfileIsForwardedToIt(t *testing.T) {
	tm := start(t, true)
	var r Recommendations
	status, h := get(t, tm.a.URL+"/v1/profiles/b-u3/recommendations?k=1", &r)
	if status != 200 || r.ServedBy != tm.b.Listener.Addr().String() || h.Get(HeaderServedBy) != r.ServedBy || r.Recommendations[0].Title != "x2" {
		t.Fatalf("status %d, served by %q, %+v", status, r.ServedBy, r)
	}
	var e Embedding
	if status, _ := get(t, tm.a.URL+"/v1/profiles/b-u1/embedding", &e); status != 200 || e.Dim != 8 || e.Watched != 2 || e.Context[0].Title != "x2" {
		t.Fatalf("forwarded embedding: status %d, %+v", status, e)
	}
}

func TestWithoutAnOwnerTheAnswerSaysSo(t *testing.T) {
	tm := start(t, false)
	var e Error
	status, _ := get(t, tm.a.URL+"/v1/profiles/b-u3/recommendations", &e)
	if status != 503 || e.Partition != 1 || !strings.Contains(e.Error, "no other owner") {
		t.Fatalf("status %d, %+v", status, e)
	}
	// A forwarded request is never forwarded again.
	req, _ := http.NewRequest("GET", tm.b.URL+"/v1/profiles/a-u1/recommendations", nil)
	req.Header.Set(HeaderForwarded, "somebody")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 503 || res.Header.Get(HeaderOwner) != tm.a.Listener.Addr().String() {
		t.Fatalf("a forwarded request to a non-owner: status %d, owner header %q", res.StatusCode, res.Header.Get(HeaderOwner))
	}
}

func TestBadKIsABadRequest(t *testing.T) {
	tm := start(t, false)
	var e Error
	if status, _ := get(t, tm.a.URL+"/v1/profiles/a-u1/recommendations?k=0", &e); status != 400 {
		t.Fatalf("status %d", status)
	}
	var m ModelInfo
	if status, _ := get(t, tm.a.URL+"/v1/model", &m); status != 200 || m.Titles != 3 || len(m.Owned) != 1 || m.Owners["0"].Addr == "" {
		t.Fatalf("model: status %d, %+v", status, m)
	}
}
