// Package store is the sandbox's Pithos+ backend (snf-pithos-backend
// modular.py): accounts, containers and object versions with their
// history, sharing and public URLs in a bbolt database, and blocks as
// content-addressed files. The Pithos+ handlers use all of it; Plankton
// and Astakos use the small part real Plankton and Astakos see.
package store

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/imagesync/imagesync/internal/hashmap"
)

// Store is the Pithos+ storage: metadata in bbolt (DATA/meta.db), blocks as
// content-addressed files (DATA/blocks). Every method is safe for concurrent
// use; metadata changes are bbolt transactions, block writes run in parallel
// outside them.
//
// Layout (all keys are byte strings; "\x00" separates path components, which
// is why names containing NUL are refused):
//
//	accounts   acct                     → accountRec
//	containers acct\0cont               → containerRec
//	objects    acct\0cont\0name         → serial of the current version (live objects only)
//	versions   acct\0cont\0name\0serial → versionRec (current and history)
//	maps       serial                   → the version's raw 32-byte block hashes
//	uuids      uuid                     → acct\0cont\0name of the live object
//	perms      acct\0cont\0name         → Permissions (keyed by path)
//	public     acct\0cont\0name         → public token; publicTokens token → path
type Store struct {
	// commits counts metadata write transactions (each one an fsync), so
	// tests and benchmarks can see which requests pay for one.
	commits   atomic.Int64
	db        *bolt.DB
	blocks    *blockStore
	blockSize int
	quota     int64
	clock     func() time.Time
}

// Options configure a store.
type Options struct {
	// BlockSize of new containers (default 4 MiB).
	BlockSize int
	// Quota is each account's pithos.diskspace limit in bytes; 0 is unlimited.
	Quota int64
	// Clock stamps versions (default time.Now); tests of ?until set it.
	Clock func() time.Time
}

var (
	bAccounts     = []byte("accounts")
	bContainers   = []byte("containers")
	bObjects      = []byte("objects")
	bVersions     = []byte("versions")
	bMaps         = []byte("maps")
	bUUIDs        = []byte("uuids")
	bPerms        = []byte("perms")
	bPublic       = []byte("public")
	bPublicTokens = []byte("public_tokens")
)

// Limits of the real deployment (pithos/api/settings.py).
const (
	maxMetadata       = 32 // PITHOS_RESOURCE_MAX_METADATA per domain
	maxGroups         = 32
	maxGroupMembers   = 32
	ListLimit         = 10000 // API_LIST_LIMIT
	publicURLSecurity = 16
	publicURLAlphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)

// Open opens (or creates) the store in dir: DIR/meta.db and DIR/blocks.
func Open(dir string, o Options) (*Store, error) {
	if o.BlockSize <= 0 {
		o.BlockSize = hashmap.DefaultBlockSize
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("sandbox: data dir: %w", err)
	}
	blocks, err := openBlockStore(filepath.Join(dir, "blocks"))
	if err != nil {
		return nil, err
	}
	db, err := bolt.Open(filepath.Join(dir, "meta.db"), 0o644, &bolt.Options{Timeout: 5 * time.Second})
	if errors.Is(err, berrors.ErrTimeout) {
		// The lock bbolt waited for is another process's.
		return nil, fmt.Errorf("sandbox: data dir %s is in use by another process (a running snf-sandbox, or syncd --dev with this state dir?): %w", dir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox: open metadata db: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bAccounts, bContainers, bObjects, bVersions, bMaps, bUUIDs, bPerms, bPublic, bPublicTokens} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("sandbox: init metadata db: %w", err)
	}
	return &Store{db: db, blocks: blocks, blockSize: o.BlockSize, quota: o.Quota, clock: o.Clock}, nil
}

// OnBlockWritten sets a function that runs after each block's bytes are
// on disk and before the block is renamed into place. Tests use it to see
// block writes overlap; set it before serving requests.
func (st *Store) OnBlockWritten(fn func()) { st.blocks.written = fn }

// PutBlock stores one block (the bytes of a block-size chunk) and returns
// its hash; the metadata is not touched.
func (st *Store) PutBlock(data []byte) (string, error) { return st.blocks.put(data) }

// ReadBlock fills buf (one block's worth) with the block, NUL-padded.
func (st *Store) ReadBlock(hash string, buf []byte) error { return st.blocks.read(hash, buf) }

// MetaCommits is the number of metadata write transactions so far.
func (st *Store) MetaCommits() int64 { return st.commits.Load() }

// Close closes the metadata database.
func (st *Store) Close() error { return st.db.Close() }

// Errors that only the Pithos handlers see (the ones Plankton sees too live
// in backend.go).

// ErrBadRequest is a request the backend refuses (400).
type ErrBadRequest struct{ Msg string }

func (e *ErrBadRequest) Error() string { return e.Msg }

// ErrConflict is a state conflict such as a non-empty container (409).
type ErrConflict struct{ Msg string }

func (e *ErrConflict) Error() string { return e.Msg }

// ErrMissingBlocks is a hashmap that names blocks the store lacks (409).
type ErrMissingBlocks struct{ Hashes []string }

func (e *ErrMissingBlocks) Error() string {
	return fmt.Sprintf("%d blocks missing", len(e.Hashes))
}

// ErrAccountQuota is the Astakos commission refusal for pithos.diskspace.
type ErrAccountQuota struct{ available, requested int64 }

func (e *ErrAccountQuota) Error() string {
	return fmt.Sprintf("Limit for resource 'Storage space' exceeded for your account. Available: %d, Requested: %d", e.available, e.requested)
}

// ---- records ----

// accountRec is an account node. Its own metadata is versioned (each meta
// update is a new version of the node, the earlier ones kept for ?until);
// its groups are not.
type accountRec struct {
	Mtime int64             `json:"mtime"`
	Meta  map[string]string `json:"meta,omitempty"`
	props
	Groups map[string][]string `json:"groups,omitempty"`
}

// props is the version history of an account's or container's own
// metadata: when the current version was made (0 in records from before
// history was kept: there since forever) and the earlier versions.
type props struct {
	MetaMtime int64         `json:"meta_mtime,omitempty"`
	History   []propVersion `json:"history,omitempty"`
}

// propVersion is one earlier version of an account's or container's meta.
type propVersion struct {
	Mtime int64             `json:"mtime"`
	Meta  map[string]string `json:"meta,omitempty"`
}

type containerRec struct {
	Mtime      int64             `json:"mtime"`
	BlockSize  int               `json:"block_size"`
	Quota      int64             `json:"quota"`
	Versioning string            `json:"versioning"`
	Project    string            `json:"project"`
	Meta       map[string]string `json:"meta,omitempty"`
	props
	Count int64 `json:"count"`
	Bytes int64 `json:"bytes"`
}

// Version is one object version. Mtime is in microseconds, the precision
// of the real DECIMAL(16,6) column.
type Version struct {
	Serial     int64                        `json:"serial"`
	UUID       string                       `json:"uuid"`
	Mtime      int64                        `json:"mtime"`
	Bytes      int64                        `json:"bytes"`
	Hash       string                       `json:"hash"`
	Type       string                       `json:"type"`
	Checksum   string                       `json:"checksum"`
	ModifiedBy string                       `json:"modified_by"`
	Available  int                          `json:"available"`
	BlockSize  int                          `json:"block_size"`
	Meta       map[string]map[string]string `json:"meta,omitempty"`
	// Deleted marks the version a delete leaves behind (the real backend's
	// CLUSTER_DELETED): size 0, never listed, never current. The current
	// version is the one objects points to; any other is history.
	Deleted bool `json:"deleted,omitempty"`
}

// ---- keys ----

const sep = "\x00"

func ckey(acct, cont string) []byte { return []byte(acct + sep + cont) }

func okey(acct, cont, name string) []byte { return []byte(acct + sep + cont + sep + name) }

func vprefix(ok []byte) []byte { return append(append([]byte{}, ok...), 0) }

func vkey(ok []byte, serial int64) []byte {
	k := vprefix(ok)
	return binary.BigEndian.AppendUint64(k, uint64(serial))
}

func serialKey(serial int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(serial)) }

func splitOkey(k []byte) (acct, cont, name string) {
	parts := strings.SplitN(string(k), sep, 3)
	if len(parts) != 3 {
		return "", "", ""
	}
	return parts[0], parts[1], parts[2]
}

// ---- small helpers ----

// now is the time a change is stamped with, in microseconds (the
// precision of the real DECIMAL(16,6) mtime column).
func (st *Store) now() int64 { return st.clock().UnixMicro() }

// FormatTimestamp renders a version timestamp as Python's str(Decimal) of the
// DECIMAL(16,6) column: always six decimals.
func FormatTimestamp(us int64) string {
	return fmt.Sprintf("%d.%06d", us/1e6, us%1e6)
}

// NewUUID returns a random (version 4) UUID in the canonical form.
func NewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// canonicalUUID accepts what Python's uuid.UUID accepts (braces, urn:uuid:,
// upper case, no dashes) and returns the lowercase dashed form.
func canonicalUUID(s string) (string, bool) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(strings.TrimPrefix(s, "urn:"), "uuid:")
	s = strings.Trim(s, "{}")
	s = strings.ReplaceAll(s, "-", "")
	if len(s) != 32 {
		return "", false
	}
	if _, err := hex.DecodeString(s); err != nil {
		return "", false
	}
	s = strings.ToLower(s)
	return s[:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:], true
}

func publicToken() string {
	b := make([]byte, publicURLSecurity)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = publicURLAlphabet[int(b[i])%len(publicURLAlphabet)]
	}
	return string(b)
}

func getJSON(b *bolt.Bucket, k []byte, v any) (bool, error) {
	data := b.Get(k)
	if data == nil {
		return false, nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("sandbox: corrupt record %q: %w", k, err)
	}
	return true, nil
}

func putJSON(b *bolt.Bucket, k []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(k, data)
}

func copyMeta(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// mergeMeta applies Pithos' _put_metadata_duplicate: with replace the new
// map is taken as given; otherwise it is merged and an empty value deletes.
func mergeMeta(existing, meta map[string]string, replace bool) (map[string]string, error) {
	var out map[string]string
	if replace {
		out = copyMeta(meta)
	} else {
		out = copyMeta(existing)
		for k, v := range meta {
			if v == "" {
				delete(out, k)
			} else {
				out[k] = v
			}
		}
	}
	if len(out) > maxMetadata {
		return nil, &ErrLimitExceeded{Msg: fmt.Sprintf("Pithos+ resources cannot have more than %d metadata items per domain", maxMetadata)}
	}
	return out, nil
}

func encodeHashes(hashes []string) ([]byte, error) {
	out := make([]byte, 0, 32*len(hashes))
	for _, h := range hashes {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != 32 {
			return nil, fmt.Errorf("sandbox: bad stored hash %q", h)
		}
		out = append(out, b...)
	}
	return out, nil
}

func decodeHashes(raw []byte) []string {
	out := make([]string, 0, len(raw)/32)
	for i := 0; i+32 <= len(raw); i += 32 {
		out = append(out, hex.EncodeToString(raw[i:i+32]))
	}
	return out
}

// ---- transactions ----

// txn wraps a bbolt transaction with the buckets and the Pithos backend's
// lookups and permission checks.
type txn struct {
	st                                            *Store
	tx                                            *bolt.Tx
	accounts, containers, objects, versions, maps *bolt.Bucket
	uuids, perms, public, publicTokens            *bolt.Bucket
}

func (st *Store) wrap(tx *bolt.Tx) *txn {
	return &txn{
		st: st, tx: tx,
		accounts: tx.Bucket(bAccounts), containers: tx.Bucket(bContainers),
		objects: tx.Bucket(bObjects), versions: tx.Bucket(bVersions), maps: tx.Bucket(bMaps),
		uuids: tx.Bucket(bUUIDs), perms: tx.Bucket(bPerms), public: tx.Bucket(bPublic),
		publicTokens: tx.Bucket(bPublicTokens),
	}
}

func (st *Store) view(fn func(t *txn) error) error {
	return st.db.View(func(tx *bolt.Tx) error { return fn(st.wrap(tx)) })
}

func (st *Store) update(fn func(t *txn) error) error {
	st.commits.Add(1)
	return st.db.Update(func(tx *bolt.Tx) error { return fn(st.wrap(tx)) })
}

func (t *txn) account(acct string) (*accountRec, bool, error) {
	var a accountRec
	ok, err := getJSON(t.accounts, []byte(acct), &a)
	return &a, ok, err
}

// touchAccount creates the account node on first use (as _lookup_account
// does) and records a modification.
func (t *txn) touchAccount(acct string, now int64) (*accountRec, error) {
	a, found, err := t.account(acct)
	if err != nil {
		return nil, err
	}
	if !found {
		a.MetaMtime = now
	}
	a.Mtime = max(a.Mtime, now)
	return a, putJSON(t.accounts, []byte(acct), a)
}

func (t *txn) container(acct, cont string) (*containerRec, error) {
	var c containerRec
	ok, err := getJSON(t.containers, ckey(acct, cont), &c)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &ErrNotFound{Msg: "Container does not exist"}
	}
	return &c, nil
}

func (t *txn) putContainer(acct, cont string, c *containerRec) error {
	return putJSON(t.containers, ckey(acct, cont), c)
}

// current returns the live version of an object, or nil.
func (t *txn) current(ok []byte) (*Version, error) {
	s := t.objects.Get(ok)
	if s == nil {
		return nil, nil
	}
	var v Version
	found, err := getJSON(t.versions, vkey(ok, int64(binary.BigEndian.Uint64(s))), &v)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("sandbox: object %q points to a missing version", ok)
	}
	return &v, nil
}

// version returns a specific version of the object at ok.
func (t *txn) version(ok []byte, serial int64) (*Version, error) {
	var v Version
	found, err := getJSON(t.versions, vkey(ok, serial), &v)
	if err != nil {
		return nil, err
	}
	if !found || v.Deleted {
		return nil, &ErrNotFound{Msg: "Version does not exist"}
	}
	return &v, nil
}

// hasHistory reports whether any version was ever stored at ok (the node
// exists in Pithos terms).
func (t *txn) hasHistory(ok []byte) bool {
	p := vprefix(ok)
	k, _ := t.versions.Cursor().Seek(p)
	return k != nil && bytes.HasPrefix(k, p) && len(k) == len(p)+8
}

func (t *txn) versionsOf(ok []byte) ([]*Version, error) {
	p := vprefix(ok)
	var out []*Version
	c := t.versions.Cursor()
	for k, data := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, data = c.Next() {
		if len(k) != len(p)+8 {
			continue
		}
		var v Version
		if err := json.Unmarshal(data, &v); err != nil {
			return nil, fmt.Errorf("sandbox: corrupt version %q: %w", k, err)
		}
		out = append(out, &v)
	}
	return out, nil
}

func (t *txn) hashes(v *Version) []string {
	if v.Bytes == 0 {
		return []string{hashmap.EmptyHash}
	}
	return decodeHashes(t.maps.Get(serialKey(v.Serial)))
}

func (t *txn) nextSerial() (int64, error) {
	n, err := t.versions.NextSequence()
	return int64(n), err
}

// putVersion stores a new version and makes it the current one.
func (t *txn) putVersion(ok []byte, v *Version, hashes []string) error {
	if v.Bytes > 0 {
		raw, err := encodeHashes(hashes)
		if err != nil {
			return err
		}
		if err := t.maps.Put(serialKey(v.Serial), raw); err != nil {
			return err
		}
	}
	if err := putJSON(t.versions, vkey(ok, v.Serial), v); err != nil {
		return err
	}
	if err := t.objects.Put(ok, serialKey(v.Serial)); err != nil {
		return err
	}
	return t.uuids.Put([]byte(v.UUID), ok)
}

// removeVersion drops a version record and its map (versioning "none").
func (t *txn) removeVersion(ok []byte, serial int64) error {
	if err := t.maps.Delete(serialKey(serial)); err != nil {
		return err
	}
	return t.versions.Delete(vkey(ok, serial))
}

// dropUUID forgets a uuid mapping if it still points to ok.
func (t *txn) dropUUID(uuid string, ok []byte) error {
	if bytes.Equal(t.uuids.Get([]byte(uuid)), ok) {
		return t.uuids.Delete([]byte(uuid))
	}
	return nil
}

func (t *txn) permissions(ok []byte) (*Permissions, error) {
	var p Permissions
	found, err := getJSON(t.perms, ok, &p)
	if err != nil || !found {
		return nil, err
	}
	return &p, nil
}

func (t *txn) setPermissions(ok []byte, p *Permissions) error {
	if p == nil || (len(p.Read) == 0 && len(p.Write) == 0) {
		return t.perms.Delete(ok)
	}
	q := Permissions{Read: append([]string(nil), p.Read...), Write: append([]string(nil), p.Write...)}
	return putJSON(t.perms, ok, &q)
}

func (t *txn) publicToken(ok []byte) string { return string(t.public.Get(ok)) }

func (t *txn) setPublic(ok []byte, public bool) error {
	old := t.public.Get(ok)
	if !public {
		if old == nil {
			return nil
		}
		if err := t.publicTokens.Delete(old); err != nil {
			return err
		}
		return t.public.Delete(ok)
	}
	if old != nil {
		return nil
	}
	tok := []byte(publicToken())
	for t.publicTokens.Get(tok) != nil {
		tok = []byte(publicToken())
	}
	if err := t.publicTokens.Put(tok, ok); err != nil {
		return err
	}
	return t.public.Put(ok, tok)
}

// clearAccess revokes sharing and public state of a path (object delete).
func (t *txn) clearAccess(ok []byte) error {
	if err := t.perms.Delete(ok); err != nil {
		return err
	}
	return t.setPublic(ok, false)
}
