package sandbox

import (
	"net/http"
	"strings"
)

// ---- public URLs ----

// servePublic serves /public/<token>: an unauthenticated, restricted view of
// a published object (pithos/api/public.py).
func (s *Server) servePublic(w http.ResponseWriter, r *http.Request, token string) {
	if r.Method != http.MethodHead && r.Method != http.MethodGet {
		notAllowed(w, r, "HEAD", "GET")
		return
	}
	ser := "json"
	if r.Method == http.MethodGet {
		ser = serialization(r, false, serDefault)
	}
	notFound := &ErrNotFound{Msg: "Object does not exist"}
	acct, cont, name, err := s.store.objectByPublic(strings.TrimSuffix(token, "/"))
	if err != nil {
		s.fail(w, r, ser, notFound)
		return
	}
	ov, err := s.store.getObject(acct, acct, cont, name, "", true)
	if err != nil || ov.publicToken == "" {
		s.fail(w, r, ser, notFound)
		return
	}
	if r.Method == http.MethodHead {
		h := w.Header()
		setCommonHeaders(h)
		putObjectHeaders(h, r, ov, "", segmentsSize(ov.segments), true, false)
		w.WriteHeader(http.StatusOK)
		return
	}
	if objectPreconditions(w, r, ser, ov) {
		return
	}
	s.objectData(w, r, "", ov, true)
}
