package store

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

// IsNotFound reports whether err is (or wraps) an *ErrNotFound.
func IsNotFound(err error) bool {
	var e *ErrNotFound
	return errors.As(err, &e)
}

// IsForbidden reports whether err is (or wraps) an *ErrForbidden.
func IsForbidden(err error) bool {
	var e *ErrForbidden
	return errors.As(err, &e)
}
