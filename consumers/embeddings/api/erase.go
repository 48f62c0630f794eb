package api

import (
	"net/http"
)

// Erased is the answer of DELETE /v1/profiles/{id}: the member that owns
// the profile's partition dropped the profile from memory and wrote its
// tombstone to the state changelog (acknowledged) before answering 200.
// Found says whether it held the profile. After it, recommendations for
// the profile are the cold-start ones (404 unknown profile) until new
// events of the profile arrive.
//
// Like the GET requests, a DELETE for a partition this member does not
// own is forwarded once to the owner; without a reachable owner the
// answer is 503 and nothing was erased.
type Erased struct {
	Profile   string `json:"profile"`
	Partition int    `json:"partition"`
	ServedBy  string `json:"served_by,omitempty"`
	Found     bool   `json:"found"`
	Erased    bool   `json:"erased"`
	Error     string `json:"error,omitempty"`
}

func (s *server) erase(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	part := s.cfg.PartitionOf(id)
	found, owned, err := s.cfg.Node.Forget(r.Context(), part, id)
	if !owned {
		s.elsewhere(w, r, part)
		return
	}
	w.Header().Set(HeaderServedBy, s.cfg.Self)
	out := Erased{Profile: id, Partition: part, ServedBy: s.cfg.Self, Found: found, Erased: err == nil}
	if err != nil {
		// The profile may be gone from memory but its tombstone is not
		// acknowledged: the caller must retry (erasure is idempotent).
		out.Error = err.Error()
		writeJSON(w, http.StatusServiceUnavailable, out)
		return
	}
	writeJSON(w, http.StatusOK, out)
}
