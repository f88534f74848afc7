package sandbox

import (
	"errors"
	"fmt"
)

// Domains of object metadata. Pithos user metadata (X-Object-Meta-*) lives in
// DomainPithos; Plankton keeps image metadata in DomainPlankton under keys
// "plankton:<field>" and "plankton:property:<key>", invisible to Pithos.
const (
	DomainPithos   = "pithos"
	DomainPlankton = "plankton"
)

// Permissions is an object's sharing: the X-Object-Sharing read and write
// lists ("*" means everyone). Keyed by path: it survives overwrites and moves
// are not special; it is cleared when the object is deleted.
type Permissions struct {
	Read  []string
	Write []string
}

// ObjectInfo is a snapshot of the latest version of an object.
type ObjectInfo struct {
	Account     string
	Container   string
	Name        string
	UUID        string
	Serial      int64   // X-Object-Version: a global, increasing integer
	Mtime       float64 // version timestamp, Unix seconds with microseconds
	Bytes       int64
	Hashes      []string // hex block hashes; [EmptyHash] for a zero-byte object
	Hash        string   // Merkle root (X-Object-Hash, ETag)
	ContentType string
	Checksum    string // "" unless a data PUT carried a verified ETag (MD5)
	ModifiedBy  string
	Available   int // 1 for normal objects
	// Meta maps domain → key → value. The pithos domain holds user meta keys
	// as given (e.g. "foo_bar", "Content-Encoding"); plankton holds prefixed keys.
	Meta        map[string]map[string]string
	Permissions Permissions
	PublicURL   string // non-empty when X-Object-Public is set
}

// objectStore is what the Plankton and Astakos handlers need from the Pithos
// storage layer. *Store implements it; every method is safe for concurrent use
// and checks permissions exactly as the Pithos backend does.
type objectStore interface {
	// ObjectByPath returns the latest version. Errors: *ErrNotFound (object or
	// container), *ErrForbidden when user may not read it.
	ObjectByPath(user, account, container, name string) (*ObjectInfo, error)
	// ObjectByUUID resolves a live object by its UUID (deleted → *ErrNotFound),
	// then checks read access as ObjectByPath does.
	ObjectByUUID(user, uuid string) (*ObjectInfo, error)
	// UpdateObjectMeta writes meta into one domain and creates a new version.
	// With replace the domain is cleared first; otherwise keys are merged and an
	// empty value deletes a key. Needs write access (owner or write share):
	// *ErrForbidden. More than 32 keys in the domain: *ErrLimitExceeded.
	UpdateObjectMeta(user, account, container, name, domain string, meta map[string]string, replace bool) error
	// SetPermissions replaces the object's sharing. Owner only (*ErrForbidden).
	SetPermissions(user, account, container, name string, p Permissions) error
	// DomainObjects lists the latest versions of objects with any metadata in
	// domain that user may read: in user's own containers, or shared with the
	// user or with "*".
	DomainObjects(user, domain string) ([]*ObjectInfo, error)
	// Usage returns the bytes the account's objects occupy (pithos.diskspace).
	Usage(account string) (int64, error)
}

// ErrNotFound is a missing account, container, object or version.
type ErrNotFound struct{ Msg string }

func (e *ErrNotFound) Error() string { return e.Msg }

// ErrForbidden is a permission failure (403).
type ErrForbidden struct{ Msg string }

func (e *ErrForbidden) Error() string { return e.Msg }

// ErrLimitExceeded is a metadata or group limit (400 in Pithos and Plankton).
type ErrLimitExceeded struct{ Msg string }

func (e *ErrLimitExceeded) Error() string { return e.Msg }

// ErrQuota is a quota failure (413).
type ErrQuota struct {
	Limit, Usage int64
	Container    bool // container quota (local) vs account quota
}

func (e *ErrQuota) Error() string {
	if e.Container {
		return fmt.Sprintf("Container quota exceeded: limit: %d, usage: %d", e.Limit, e.Usage)
	}
	return fmt.Sprintf("Limit for resource 'Storage space' exceeded for your account. Available: %d, Requested: %d", max(e.Limit-e.Usage, 0), e.Usage)
}

func isNotFound(err error) bool {
	var e *ErrNotFound
	return errors.As(err, &e)
}

func isForbidden(err error) bool {
	var e *ErrForbidden
	return errors.As(err, &e)
}
