// Package api serves the embeddings role over HTTP:
//
//	GET /v1/profiles/{id}/recommendations?k=10&country=DE
//	GET /v1/profiles/{id}/embedding
//	GET /v1/model
//	DELETE /v1/profiles/{id}   erase the profile (see [Erased])
//
// A profile lives in the member that owns its partition. A request for a
// profile of a partition this member does not own is forwarded, once, to
// the owner that the model topic announced (header X-Atlas-Forwarded
// marks the hop); when no owner is known or the owner does not answer,
// the reply is 503 with the owner's address, if any, in the body and in
// an X-Atlas-Owner header, so that a client can ask there itself. An
// unknown profile of an owned partition gets 404 with cold-start
// recommendations: the most played titles of the country given in
// ?country= (all countries without it).
package api

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/atlas-stream/atlas/consumers/embeddings"
	"github.com/atlas-stream/atlas/schemas"
)

// Headers of forwarding.
const (
	HeaderForwarded = "X-Atlas-Forwarded"
	HeaderOwner     = "X-Atlas-Owner"
	HeaderServedBy  = "X-Atlas-Served-By"
)

// Config configures the handler.
type Config struct {
	// Node is this member. Required.
	Node *embeddings.Node
	// PartitionOf maps a profile id to its partition, as the producers
	// partition keys (Murmur2 over the playback topic's partitions).
	// Required.
	PartitionOf func(profileID string) int
	// Self is this member's advertised address; a request is never
	// forwarded to it.
	Self string
	// Catalog names titles in answers; nil: ids only.
	Catalog *Catalog
	// Client forwards requests. Default: a client with a 2 s timeout.
	Client *http.Client
	// MaxK bounds ?k=. Default 100.
	MaxK int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

type server struct {
	cfg     Config
	scratch sync.Pool
}

// Handler returns the API's handler.
func Handler(cfg Config) (http.Handler, error) {
	if cfg.Node == nil || cfg.PartitionOf == nil {
		return nil, fmt.Errorf("api: Node and PartitionOf are required")
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 2 * time.Second}
	}
	if cfg.MaxK == 0 {
		cfg.MaxK = 100
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &server{cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/profiles/{id}/recommendations", s.recommendations)
	mux.HandleFunc("GET /v1/profiles/{id}/embedding", s.embedding)
	mux.HandleFunc("GET /v1/model", s.model)
	mux.HandleFunc("DELETE /v1/profiles/{id}", s.erase)
	return mux, nil
}

// Recommendation is one title of an answer.
type Recommendation struct {
	Title string  `json:"title"`
	Name  string  `json:"name,omitempty"`
	Score float64 `json:"score"`
}

// Recommendations is the answer of /recommendations.
type Recommendations struct {
	Profile   string `json:"profile"`
	Partition int    `json:"partition"`
	ServedBy  string `json:"served_by,omitempty"`
	// ColdStart is true for an unknown profile (status 404) or a profile
	// without plays: the titles are the country's most played.
	ColdStart       bool             `json:"cold_start"`
	Country         string           `json:"country,omitempty"`
	Recommendations []Recommendation `json:"recommendations"`
	Error           string           `json:"error,omitempty"`
}

// Embedding is the answer of /embedding.
type Embedding struct {
	Profile   string `json:"profile"`
	Partition int    `json:"partition"`
	ServedBy  string `json:"served_by,omitempty"`
	// Vector is the taste vector (nil before the first dense refresh),
	// Dim its length.
	Dim    int       `json:"dim"`
	Vector []float32 `json:"vector"`
	// Context is the profile's recent titles, most recent first, with
	// their weights.
	Context    []embeddings.Scored `json:"context"`
	Watched    int                 `json:"watched"`
	Plays      uint32              `json:"plays"`
	Country    string              `json:"country,omitempty"`
	PlayNext   int64               `json:"play_next"`
	BrowseNext int64               `json:"browse_next"`
	// State is the profile's changelog value without the taste vector,
	// base64: it depends only on the profile's own events.
	State string `json:"state"`
	Error string `json:"error,omitempty"`
}

// ModelInfo is the answer of /v1/model.
type ModelInfo struct {
	embeddings.Stats
	Digest string           `json:"digest"`
	Owned  []int            `json:"owned"`
	Owners map[string]Owner `json:"owners"`
	Self   string           `json:"self,omitempty"`
}

// Owner is a partition's announced owner.
type Owner struct {
	Addr  string `json:"addr"`
	Since int64  `json:"since"`
}

// Error is the body of an error answer.
type Error struct {
	Error     string `json:"error"`
	Partition int    `json:"partition"`
	Owner     string `json:"owner,omitempty"`
}

func (s *server) recommendations(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	k := 10
	if v := r.URL.Query().Get("k"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > s.cfg.MaxK {
			writeJSON(w, http.StatusBadRequest, Error{Error: fmt.Sprintf("k must be an integer between 1 and %d", s.cfg.MaxK)})
			return
		}
		k = n
	}
	part := s.cfg.PartitionOf(id)
	p, found, owned := s.cfg.Node.Lookup(part, id)
	if !owned {
		s.elsewhere(w, r, part)
		return
	}
	country := r.URL.Query().Get("country")
	if found && country == "" {
		country = p.Country()
	}
	scratch, _ := s.scratch.Get().(*[]float64)
	if scratch == nil {
		scratch = new([]float64)
	}
	top := s.cfg.Node.Model().Recommend(p, country, k, *scratch)
	s.scratch.Put(scratch)
	out := Recommendations{Profile: id, Partition: part, ServedBy: s.cfg.Self, Country: country,
		ColdStart: !found || p.Watched() == 0, Recommendations: make([]Recommendation, len(top))}
	for i, t := range top {
		out.Recommendations[i] = Recommendation{Title: t.Title, Score: t.Score, Name: s.cfg.Catalog.Name(t.Title)}
	}
	status := http.StatusOK
	if !found {
		status, out.Error = http.StatusNotFound, "unknown profile: cold-start recommendations"
	}
	w.Header().Set(HeaderServedBy, s.cfg.Self)
	writeJSON(w, status, out)
}

func (s *server) embedding(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	part := s.cfg.PartitionOf(id)
	p, found, owned := s.cfg.Node.Lookup(part, id)
	if !owned {
		s.elsewhere(w, r, part)
		return
	}
	if !found {
		writeJSON(w, http.StatusNotFound, Error{Error: "unknown profile", Partition: part})
		return
	}
	m := s.cfg.Node.Model()
	v := m.Taste(p)
	out := Embedding{Profile: id, Partition: part, ServedBy: s.cfg.Self, Dim: len(v), Vector: v, Context: m.Context(p),
		Watched: p.Watched(), Plays: p.Plays, Country: p.Country(), PlayNext: p.PlayNext, BrowseNext: p.BrowseNext,
		State: base64.StdEncoding.EncodeToString(m.AppendState(nil, p))}
	w.Header().Set(HeaderServedBy, s.cfg.Self)
	writeJSON(w, http.StatusOK, out)
}

func (s *server) model(w http.ResponseWriter, _ *http.Request) {
	n := s.cfg.Node
	info := ModelInfo{Stats: n.Model().Stats(), Digest: fmt.Sprintf("%016x", n.Model().Digest()), Owned: n.Owned(),
		Owners: map[string]Owner{}, Self: s.cfg.Self}
	if info.Owned == nil {
		info.Owned = []int{}
	}
	for p, o := range n.Owners() {
		info.Owners[strconv.Itoa(p)] = Owner{Addr: o.Addr, Since: o.Since}
	}
	writeJSON(w, http.StatusOK, info)
}

// elsewhere forwards a request for a partition this member does not own,
// or says where to ask.
func (s *server) elsewhere(w http.ResponseWriter, r *http.Request, part int) {
	o, ok := s.cfg.Node.Owner(part)
	body := Error{Error: fmt.Sprintf("partition %d is not served by this member", part), Partition: part}
	if ok && o.Addr != s.cfg.Self {
		body.Owner = o.Addr
		w.Header().Set(HeaderOwner, o.Addr)
		if r.Header.Get(HeaderForwarded) == "" {
			if s.forward(w, r, o.Addr) {
				return
			}
			body.Error += "; its owner did not answer"
		}
	} else {
		body.Error += "; no other owner is known (a rebalance may be in progress)"
	}
	writeJSON(w, http.StatusServiceUnavailable, body)
}

func (s *server) forward(w http.ResponseWriter, r *http.Request, addr string) bool {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+addr+r.URL.RequestURI(), nil)
	if err != nil {
		return false
	}
	req.Header.Set(HeaderForwarded, s.cfg.Self)
	res, err := s.cfg.Client.Do(req)
	if err != nil {
		s.cfg.Logger.Debug("cannot forward to the owner", "owner", addr, "err", err)
		return false
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusServiceUnavailable {
		return false // the owner moved on; say what we know
	}
	for _, h := range []string{"Content-Type", HeaderServedBy} {
		if v := res.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(res.StatusCode)
	io.Copy(w, res.Body)
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// Catalog holds title names from the catalog topic, read as a table. It is
// safe for concurrent use; a nil Catalog names nothing.
type Catalog struct {
	mu    sync.RWMutex
	names map[string]string
	dec   *schemas.Decoder
}

// NewCatalog returns an empty catalog.
func NewCatalog() *Catalog {
	return &Catalog{names: map[string]string{}, dec: schemas.NewDecoder(schemas.DefaultLimits())}
}

// Apply takes one record of the catalog topic (a tombstone removes the
// title).
func (c *Catalog) Apply(key, value []byte) error {
	if value == nil {
		c.mu.Lock()
		delete(c.names, string(key))
		c.mu.Unlock()
		return nil
	}
	var t schemas.Title
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.dec.Title(value, &t); err != nil {
		return fmt.Errorf("cannot decode catalog record %q: %w", key, err)
	}
	c.names[t.TitleID] = t.Name
	return nil
}

// Name returns a title's name, "" when unknown.
func (c *Catalog) Name(id string) string {
	if c == nil {
		return ""
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.names[id]
}

// Len returns how many titles the catalog names.
func (c *Catalog) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.names)
}
