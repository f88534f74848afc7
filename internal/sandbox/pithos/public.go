package pithos

import (
	"net/http"
	"strings"

	"github.com/imagesync/imagesync/internal/sandbox/store"
	"github.com/imagesync/imagesync/internal/sandbox/wire"
)

// ---- public URLs ----

// Public serves /public/<token>: an unauthenticated, restricted view of
// a published object (pithos/api/public.py).
func (s *Handler) Public(w http.ResponseWriter, r *http.Request, token string) {
	if r.Method != http.MethodHead && r.Method != http.MethodGet {
		wire.NotAllowed(w, r, "HEAD", "GET")
		return
	}
	ser := "json"
	if r.Method == http.MethodGet {
		ser = serialization(r, false, serDefault)
	}
	notFound := &store.ErrNotFound{Msg: "Object does not exist"}
	acct, cont, name, err := s.store.ObjectByPublicToken(strings.TrimSuffix(token, "/"))
	if err != nil {
		s.fail(w, r, ser, notFound)
		return
	}
	ov, err := s.store.GetObject(acct, acct, cont, name, "", true)
	if err != nil || ov.PublicToken == "" {
		s.fail(w, r, ser, notFound)
		return
	}
	if r.Method == http.MethodHead {
		h := w.Header()
		wire.SetCommonHeaders(h)
		putObjectHeaders(h, r, ov, "", segmentsSize(ov.Segments), true, false)
		w.WriteHeader(http.StatusOK)
		return
	}
	if objectPreconditions(w, r, ser, ov) {
		return
	}
	s.objectData(w, r, "", ov, true)
}
