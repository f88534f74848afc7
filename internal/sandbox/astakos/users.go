package astakos

import (
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/imagesync/imagesync/internal/sandbox/wire"
)

// User is one Astakos account: a display name, a uuid (the Pithos account)
// and a token.
type User struct {
	Name  string
	UUID  string
	Token string
}

// ParseUser parses the --user flag form NAME:UUID:TOKEN.
func ParseUser(s string) (User, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return User{}, fmt.Errorf("user %q: want NAME:UUID:TOKEN", s)
	}
	return User{Name: parts[0], UUID: parts[1], Token: parts[2]}, nil
}

// Directory is Astakos' user table: the users, their tokens, and the tokens
// revoked at run time (401 tests). Pithos and Plankton consult it the way
// the real services ask Astakos to authenticate every call.
type Directory struct {
	users   []User
	mu      sync.RWMutex
	revoked map[string]bool
}

// NewDirectory checks that tokens and uuids are unique.
func NewDirectory(users []User) (*Directory, error) {
	seen := map[string]bool{}
	for _, u := range users {
		if seen["t:"+u.Token] || seen["u:"+u.UUID] {
			return nil, fmt.Errorf("duplicate user token or uuid for %q", u.Name)
		}
		seen["t:"+u.Token], seen["u:"+u.UUID] = true, true
	}
	return &Directory{users: append([]User(nil), users...), revoked: map[string]bool{}}, nil
}

// Users returns every user.
func (d *Directory) Users() []User { return append([]User(nil), d.users...) }

// Revoke makes a token invalid from now on, as if it expired.
func (d *Directory) Revoke(token string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.revoked[token] = true
}

// Restore makes a revoked token valid again, as if its user had renewed it.
func (d *Directory) Restore(token string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.revoked, token)
}

// TokenStatus is what Astakos knows of a token.
type TokenStatus int

// Token states: a revoked token belongs to a user whose token has expired,
// which Astakos reports differently from a token it has never seen.
const (
	TokenValid TokenStatus = iota
	TokenUnknown
	TokenRevoked
)

// Lookup resolves a token as Astakos itself does.
func (d *Directory) Lookup(token string) (User, TokenStatus) {
	if token == "" {
		return User{}, TokenUnknown
	}
	for _, u := range d.users {
		if u.Token != token {
			continue
		}
		d.mu.RLock()
		revoked := d.revoked[token]
		d.mu.RUnlock()
		if revoked {
			return u, TokenRevoked
		}
		return u, TokenValid
	}
	return User{}, TokenUnknown
}

// ByUUID finds a user by uuid.
func (d *Directory) ByUUID(uuid string) (User, bool) {
	for _, u := range d.users {
		if u.UUID == uuid {
			return u, true
		}
	}
	return User{}, false
}

// Authenticate resolves the request's token (the X-Auth-Token query
// parameter first, then the header) as Pithos and Cyclades do through
// astakosclient, answering 401 itself when it fails.
func (d *Directory) Authenticate(w http.ResponseWriter, r *http.Request) (User, bool) {
	token := r.URL.Query().Get("X-Auth-Token")
	if token == "" {
		token = r.Header.Get("X-Auth-Token")
	}
	if token == "" {
		wire.WriteFault(w, r, http.StatusUnauthorized, wire.FaultUnauthorized, "Access denied. No authentication token", "")
		return User{}, false
	}
	u, status := d.Lookup(token)
	if status != TokenValid {
		// The service relays Astakos' 401 as a generic fault: the reason
		// phrase as message and Astakos' own body as details.
		details := string(wire.PyJSON(wire.Ordered{{wire.FaultUnauthorized, wire.Ordered{{"code", 401}, {"message", "Invalid token"}, {"details", ""}}}}))
		wire.WriteFault(w, r, http.StatusUnauthorized, wire.FaultGeneric, "UNAUTHORIZED", details)
		return User{}, false
	}
	return u, true
}
