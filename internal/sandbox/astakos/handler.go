// Package astakos is the sandbox's Astakos: the identity API (tokens and
// the service catalog, astakos/api/tokens.py) and the account API the
// clients use (quotas, resources, user_catalogs; astakos/api/quotas.py and
// user.py), over the Directory of users that Pithos+ and Plankton also
// consult to authenticate calls.
package astakos

import "net/http"

// Usage is where pithos.diskspace usage comes from: the Pithos+ store.
type Usage interface {
	Usage(account string) (int64, error)
}

// Handler serves the identity API (below /identity/v2.0) and the account
// API (below /account/v1.0).
type Handler struct {
	users *Directory
	store Usage
	quota int64 // each user's pithos.diskspace limit; 0 is unlimited
}

// New returns the Astakos handlers over users; quota is each user's
// pithos.diskspace limit in bytes (0: unlimited).
func New(users *Directory, usage Usage, quota int64) *Handler {
	return &Handler{users: users, store: usage, quota: quota}
}

// Identity serves the identity API; rest is the path after /identity/v2.0.
func (s *Handler) Identity(w http.ResponseWriter, r *http.Request, rest string) {
	s.serveIdentity(w, r, rest)
}

// Account serves the account API; rest is the path after /account/v1.0.
func (s *Handler) Account(w http.ResponseWriter, r *http.Request, rest string) {
	s.serveAccount(w, r, rest)
}
