// Package plankton is the sandbox's Plankton, the Cyclades image service
// (synnefo/plankton: views.py, backend.py, urls.py). An image is a Pithos+
// object with metadata in the plankton domain; its id is the object's UUID.
package plankton

import (
	"sync/atomic"

	"github.com/imagesync/imagesync/internal/sandbox/astakos"
	"github.com/imagesync/imagesync/internal/sandbox/store"
)

// Objects is what Plankton needs from the Pithos+ store (a Pithos backend
// in the real deployment). *store.Store implements it; every method is safe for concurrent use
// and checks permissions exactly as the Pithos backend does.
type Objects interface {
	// ObjectByPath returns the latest version. Errors: *store.ErrNotFound (object or
	// container), *store.ErrForbidden when user may not read it.
	ObjectByPath(user, account, container, name string) (*store.ObjectInfo, error)
	// ObjectByUUID resolves a live object by its UUID (deleted → *store.ErrNotFound),
	// then checks read access as ObjectByPath does.
	ObjectByUUID(user, uuid string) (*store.ObjectInfo, error)
	// UpdateObjectMeta writes meta into one domain and creates a new version.
	// With replace the domain is cleared first; otherwise keys are merged and an
	// empty value deletes a key. Needs write access (owner or write share):
	// *store.ErrForbidden. More than 32 keys in the domain: *store.ErrLimitExceeded.
	UpdateObjectMeta(user, account, container, name, domain string, meta map[string]string, replace bool) error
	// SetPermissions replaces the object's sharing. Owner only (*store.ErrForbidden).
	SetPermissions(user, account, container, name string, p store.Permissions) error
	// DomainObjects lists the latest versions of objects with any metadata in
	// domain that user may read: in user's own containers, or shared with the
	// user or with "*".
	DomainObjects(user, domain string) ([]*store.ObjectInfo, error)
}

var _ Objects = (*store.Store)(nil)

// Handler serves the image API (below /image).
type Handler struct {
	store Objects
	users *astakos.Directory
	stats counters
}

// New returns the Plankton handlers over the objects of st.
func New(st Objects, users *astakos.Directory) *Handler {
	return &Handler{store: st, users: users}
}

type counters struct {
	imageRegisters atomic.Int64
	imageUpdates   atomic.Int64
}

// Stats are the Plankton counters of /_sandbox/stats.
type Stats struct {
	ImageRegisters int64
	ImageUpdates   int64
}

// Stats returns the counters so far.
func (s *Handler) Stats() Stats {
	return Stats{ImageRegisters: s.stats.imageRegisters.Load(), ImageUpdates: s.stats.imageUpdates.Load()}
}
