package store

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/imagesync/imagesync/internal/hashmap"
)

// ObjectWrite describes a new object version (modular.py _update_object_hash).
type ObjectWrite struct {
	User, Account, Container, Name string
	Size                           int64
	Hashes                         []string // canonical hex; [EmptyHash] for size 0
	Hash                           string   // Merkle root
	Type                           *string  // nil: keep the source's type
	Checksum                       *string  // nil: keep the source's checksum
	Domain                         string   // "" with a copy: all domains copied as is
	Meta                           map[string]string
	ReplaceMeta                    bool
	Perms                          *Permissions // nil: sharing untouched
	// Copy and move: the source version (its meta is carried over), and
	// whether the destination gets a new uuid.
	src              *Version
	isCopy           bool
	skipAccountQuota bool
}

// writeVersion creates the destination version, in the order of checks of
// _update_object_hash: sharing by non-owner, write permission, container,
// metadata limit, container quota, account quota.
func (t *txn) writeVersion(w *ObjectWrite, now int64) (*Version, error) {
	if w.Perms != nil && w.User != w.Account {
		return nil, &ErrForbidden{Msg: "Modifying other account's object content is not allowed"}
	}
	if err := t.canWriteObject(w.User, w.Account, w.Container, w.Name); err != nil {
		return nil, err
	}
	if _, err := t.touchAccount(w.Account, now); err != nil {
		return nil, err
	}
	c, err := t.container(w.Account, w.Container)
	if err != nil {
		return nil, err
	}
	ok := okey(w.Account, w.Container, w.Name)
	prev, err := t.current(ok)
	if err != nil {
		return nil, err
	}
	src := w.src
	if src == nil {
		src = prev
	}
	serial, err := t.nextSerial()
	if err != nil {
		return nil, err
	}
	v := &Version{
		Serial: serial, Mtime: now, Bytes: w.Size, Hash: w.Hash, ModifiedBy: w.User,
		Available: 1, BlockSize: c.BlockSize, Meta: map[string]map[string]string{},
	}
	if src != nil {
		v.Type, v.Checksum, v.Available = src.Type, src.Checksum, src.Available
		if w.src != nil {
			v.BlockSize = src.BlockSize
		}
	}
	if w.Type != nil {
		v.Type = *w.Type
	}
	if w.Checksum != nil {
		v.Checksum = *w.Checksum
	}
	if w.isCopy || src == nil {
		v.UUID = NewUUID()
	} else {
		v.UUID = src.UUID
	}
	// Other domains (plankton) are carried forward; the written domain is
	// replaced or merged.
	if src != nil {
		for d, m := range src.Meta {
			if d != w.Domain {
				v.Meta[d] = copyMeta(m)
			}
		}
	}
	if w.Domain != "" {
		var existing map[string]string
		if src != nil {
			existing = src.Meta[w.Domain]
		}
		m, err := mergeMeta(existing, w.Meta, w.ReplaceMeta)
		if err != nil {
			return nil, err
		}
		if len(m) > 0 {
			v.Meta[w.Domain] = m
		}
	}
	var delSize int64
	if prev != nil {
		delSize = prev.Bytes
		if c.Versioning != "auto" {
			if err := t.removeVersion(ok, prev.Serial); err != nil {
				return nil, err
			}
		}
		if prev.UUID != v.UUID {
			if err := t.dropUUID(prev.UUID, ok); err != nil {
				return nil, err
			}
		}
	} else {
		c.Count++
	}
	c.Bytes += w.Size - delSize
	c.Mtime = max(c.Mtime, now)
	delta := w.Size - delSize
	if delta > 0 {
		if c.Quota > 0 && c.Bytes > c.Quota {
			return nil, &ErrQuota{Container: true, Limit: c.Quota, Usage: c.Bytes}
		}
		if t.st.quota > 0 && !w.skipAccountQuota {
			_, used, err := t.accountUsage(w.Account)
			if err != nil {
				return nil, err
			}
			if used+delta > t.st.quota {
				return nil, &ErrAccountQuota{available: t.st.quota - used, requested: delta}
			}
		}
	}
	if err := t.putContainer(w.Account, w.Container, c); err != nil {
		return nil, err
	}
	if err := t.putVersion(ok, v, w.Hashes); err != nil {
		return nil, err
	}
	if w.Perms != nil {
		if err := t.setPermissions(ok, w.Perms); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// deleteOne removes the live version of one object (modular.py _delete_object
// without the delimiter walk): the version becomes history (or goes, with
// versioning "none") and a deletion marker records when the object went.
func (t *txn) deleteOne(user, acct, cont, name string, now int64) error {
	if user != acct {
		return &ErrForbidden{Msg: ""}
	}
	c, err := t.container(acct, cont)
	if err != nil {
		return err
	}
	ok := okey(acct, cont, name)
	v, err := t.current(ok)
	if err != nil {
		return err
	}
	if v == nil {
		if t.hasHistory(ok) {
			return &ErrNotFound{Msg: "Object is deleted."}
		}
		return &ErrNotFound{Msg: "Object does not exist"}
	}
	if err := t.objects.Delete(ok); err != nil {
		return err
	}
	serial, err := t.nextSerial()
	if err != nil {
		return err
	}
	marker := &Version{
		Serial: serial, UUID: v.UUID, Mtime: now, ModifiedBy: user,
		Available: v.Available, BlockSize: v.BlockSize, Deleted: true,
	}
	if err := putJSON(t.versions, vkey(ok, serial), marker); err != nil {
		return err
	}
	if c.Versioning != "auto" {
		if err := t.removeVersion(ok, v.Serial); err != nil {
			return err
		}
	}
	if err := t.dropUUID(v.UUID, ok); err != nil {
		return err
	}
	if err := t.clearAccess(ok); err != nil {
		return err
	}
	c.Count--
	c.Bytes -= v.Bytes
	c.Mtime = max(c.Mtime, now)
	if _, err := t.touchAccount(acct, now); err != nil {
		return err
	}
	return t.putContainer(acct, cont, c)
}

// liveNames lists the live object names of a container starting with prefix.
func (t *txn) liveNames(acct, cont, prefix string) []string {
	p := okey(acct, cont, prefix)
	base := len(okey(acct, cont, ""))
	var out []string
	c := t.objects.Cursor()
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		out = append(out, string(k[base:]))
	}
	return out
}

// subtreePrefix is the prefix a ?delimiter operation walks below name.
func subtreePrefix(name, delimiter string) string {
	if strings.HasSuffix(name, delimiter) {
		return name
	}
	return name + delimiter
}

// DeleteObject is object DELETE, optionally with the ?delimiter subtree.
func (st *Store) DeleteObject(user, acct, cont, name, delimiter string) error {
	return st.update(func(t *txn) error {
		now := st.now()
		if err := t.deleteOne(user, acct, cont, name, now); err != nil {
			return err
		}
		if delimiter == "" {
			return nil
		}
		for _, n := range t.liveNames(acct, cont, subtreePrefix(name, delimiter)) {
			if err := t.deleteOne(user, acct, cont, n, now); err != nil {
				return err
			}
		}
		return nil
	})
}

// ContainerBlockSize is the block size hashmaps of cont are split by; a
// missing container answers with the store default (its error comes later).
func (st *Store) ContainerBlockSize(acct, cont string) int {
	bs := st.blockSize
	_ = st.view(func(t *txn) error {
		if c, err := t.container(acct, cont); err == nil && c.BlockSize > 0 {
			bs = c.BlockSize
		}
		return nil
	})
	return bs
}

// SizeConsistent is modular.py _size_is_consistent.
func SizeConsistent(size int64, n int, emptyOnly bool, blockSize int) bool {
	switch {
	case size < 0:
		return false
	case size == 0:
		return n == 0 || emptyOnly
	default:
		return hashmap.NumBlocks(size, int64(blockSize)) == int64(n)
	}
}

// CanonicalHashes unhexlifies and re-hexlifies every hash (lowercase), as the
// backend does; a bad one is 400 "Invalid hash: …".
func CanonicalHashes(raw []string) ([]string, error) {
	out := make([]string, len(raw))
	for i, h := range raw {
		b, err := hex.DecodeString(h)
		if err != nil {
			return nil, &ErrBadRequest{Msg: "Invalid hash: " + h}
		}
		out[i] = hex.EncodeToString(b)
	}
	return out, nil
}

// PutObject is update_object_hashmap: size check, missing blocks (409 before
// any permission or container check), then the new version.
func (st *Store) PutObject(w *ObjectWrite) (*Version, error) {
	if w.Size == 0 {
		h, err := st.blocks.put(nil)
		if err != nil {
			return nil, err
		}
		w.Hashes = []string{h}
	}
	if miss := st.blocks.missing(w.Hashes); len(miss) > 0 {
		return nil, &ErrMissingBlocks{Hashes: miss}
	}
	root, err := hashmap.MerkleRoot(w.Hashes)
	if err != nil {
		return nil, &ErrBadRequest{Msg: err.Error()}
	}
	w.Hash = root
	if w.Domain == "" {
		w.Domain = DomainPithos
	}
	var v *Version
	err = st.update(func(t *txn) error {
		var err error
		v, err = t.writeVersion(w, st.now())
		return err
	})
	return v, err
}

// CopyRequest is a copy or move (PUT with X-Copy-From/X-Move-From, COPY, MOVE).
type CopyRequest struct {
	User                              string
	SrcAccount, SrcContainer, SrcName string
	DstAccount, DstContainer, DstName string
	SrcVersion                        string
	Type                              *string
	Meta                              map[string]string
	Perms                             *Permissions
	Move                              bool
	Delimiter                         string
}

// CopyObject is modular.py _copy_object; it returns the first new version.
func (st *Store) CopyObject(r *CopyRequest) (*Version, error) {
	if r.Move && r.User != r.SrcAccount {
		return nil, &ErrForbidden{Msg: ""}
	}
	var first *Version
	err := st.update(func(t *txn) error {
		var err error
		first, err = t.copyOne(r, r.SrcName, r.DstName, r.SrcVersion, r.Type, r.Meta, true)
		if err != nil || r.Delimiter == "" {
			return err
		}
		prefix := subtreePrefix(r.SrcName, r.Delimiter)
		dstPrefix := subtreePrefix(r.DstName, r.Delimiter)
		for _, n := range t.liveNames(r.SrcAccount, r.SrcContainer, prefix) {
			dst := dstPrefix + strings.TrimPrefix(n, prefix)
			if _, err := t.copyOne(r, n, dst, "", nil, nil, false); err != nil {
				return err
			}
		}
		return nil
	})
	return first, err
}

func (t *txn) copyOne(r *CopyRequest, srcName, dstName, srcVersion string, typ *string, meta map[string]string, top bool) (*Version, error) {
	now := t.st.now()
	if err := t.canReadObject(r.User, r.SrcAccount, r.SrcContainer, srcName); err != nil {
		return nil, err
	}
	if _, err := t.container(r.SrcAccount, r.SrcContainer); err != nil {
		return nil, err
	}
	if _, err := t.container(r.DstAccount, r.DstContainer); err != nil {
		return nil, err
	}
	sok := okey(r.SrcAccount, r.SrcContainer, srcName)
	if !t.hasHistory(sok) {
		return nil, &ErrNotFound{Msg: "Object does not exist"}
	}
	var src *Version
	var err error
	if srcVersion != "" {
		n, perr := strconv.ParseInt(srcVersion, 10, 64)
		if perr != nil {
			return nil, &ErrNotFound{Msg: "Version does not exist"}
		}
		if src, err = t.version(sok, n); err != nil {
			return nil, err
		}
	} else {
		if src, err = t.current(sok); err != nil {
			return nil, err
		}
		if src == nil {
			return nil, &ErrNotFound{Msg: "Object does not exist"}
		}
	}
	same := r.SrcAccount == r.DstAccount && r.SrcContainer == r.DstContainer && srcName == dstName
	w := &ObjectWrite{
		User: r.User, Account: r.DstAccount, Container: r.DstContainer, Name: dstName,
		Size: src.Bytes, Hashes: t.hashes(src), Hash: src.Hash, Type: typ,
		src: src, isCopy: !r.Move && !same,
		skipAccountQuota: r.Move && r.SrcAccount == r.DstAccount,
	}
	if top {
		w.Domain, w.Meta, w.Perms = DomainPithos, meta, r.Perms
	}
	v, err := t.writeVersion(w, now)
	if err != nil {
		return nil, err
	}
	if r.Move && !same {
		if err := t.deleteOne(r.User, r.SrcAccount, r.SrcContainer, srcName, now); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// UpdateMeta is update_object_meta: a new version with one domain's meta
// replaced or merged (empty values delete), other domains carried over.
func (st *Store) UpdateMeta(user, acct, cont, name, domain string, meta map[string]string, replace bool) (*Version, error) {
	var v *Version
	err := st.update(func(t *txn) error {
		if err := t.canWriteObject(user, acct, cont, name); err != nil {
			return err
		}
		c, err := t.container(acct, cont)
		if err != nil {
			return err
		}
		ok := okey(acct, cont, name)
		cur, err := t.current(ok)
		if err != nil {
			return err
		}
		if cur == nil {
			return &ErrNotFound{Msg: "Object does not exist"}
		}
		serial, err := t.nextSerial()
		if err != nil {
			return err
		}
		nv := *cur
		nv.Serial, nv.Mtime, nv.ModifiedBy = serial, st.now(), user
		nv.Meta = map[string]map[string]string{}
		for d, m := range cur.Meta {
			if d != domain {
				nv.Meta[d] = copyMeta(m)
			}
		}
		m, err := mergeMeta(cur.Meta[domain], meta, replace)
		if err != nil {
			return err
		}
		if len(m) > 0 {
			nv.Meta[domain] = m
		}
		if err := t.putVersion(ok, &nv, t.hashes(cur)); err != nil {
			return err
		}
		if c.Versioning != "auto" {
			if err := t.removeVersion(ok, cur.Serial); err != nil {
				return err
			}
		}
		c.Mtime = max(c.Mtime, nv.Mtime)
		if _, err := t.touchAccount(acct, nv.Mtime); err != nil {
			return err
		}
		v = &nv
		return t.putContainer(acct, cont, c)
	})
	return v, err
}

// setPermissions is update_object_permissions: owner only, object must exist.
func (st *Store) setPermissions(user, acct, cont, name string, p *Permissions) error {
	if user != acct {
		return &ErrForbidden{Msg: "Modifying other account's object permissions is not allowed"}
	}
	return st.update(func(t *txn) error {
		if _, err := t.container(acct, cont); err != nil {
			return err
		}
		ok := okey(acct, cont, name)
		if !t.hasHistory(ok) {
			return &ErrNotFound{Msg: "Object does not exist"}
		}
		return t.setPermissions(ok, p)
	})
}

// SetPublic is update_object_public: write access, object must exist.
func (st *Store) SetPublic(user, acct, cont, name string, public bool) error {
	return st.update(func(t *txn) error {
		if err := t.canWriteObject(user, acct, cont, name); err != nil {
			return err
		}
		if _, err := t.container(acct, cont); err != nil {
			return err
		}
		ok := okey(acct, cont, name)
		if !t.hasHistory(ok) {
			return &ErrNotFound{Msg: "Object does not exist"}
		}
		return t.setPublic(ok, public)
	})
}

// ObjectView is one object version with what HEAD/GET need to render it.
type ObjectView struct {
	Account, Container, Name string
	Version                  *Version
	Modified                 int64 // the latest mtime (Last-Modified)
	Perms                    *Permissions
	PermsPath                string // "acct/cont/name" the sharing comes from
	AllowedTo                string // X-Object-Allowed-To for a non-owner
	PublicToken              string
	Segments                 []Segment // the data (several for a manifest)
}

// Segment is one object's data: its size, block size and block hashes.
type Segment struct {
	Size      int64
	BlockSize int
	Hashes    []string
}

// GetObject is get_object_meta (+ permissions and public info for the latest
// version, + the data layout when withData).
func (st *Store) GetObject(user, acct, cont, name, version string, withData bool) (*ObjectView, error) {
	var ov *ObjectView
	err := st.view(func(t *txn) error {
		if err := t.canReadObject(user, acct, cont, name); err != nil {
			return err
		}
		ok := okey(acct, cont, name)
		if !t.hasHistory(ok) {
			return &ErrNotFound{Msg: "Object does not exist"}
		}
		cur, err := t.current(ok)
		if err != nil {
			return err
		}
		ov = &ObjectView{Account: acct, Container: cont, Name: name}
		if version == "" {
			if cur == nil {
				return &ErrNotFound{Msg: "Object does not exist"}
			}
			ov.Version, ov.Modified = cur, cur.Mtime
		} else {
			n, perr := strconv.ParseInt(version, 10, 64)
			if perr != nil {
				return &ErrNotFound{Msg: "Version does not exist"}
			}
			if ov.Version, err = t.version(ok, n); err != nil {
				return err
			}
			if cur != nil {
				ov.Modified = cur.Mtime
			} else {
				vs, err := t.versionsOf(ok)
				if err != nil {
					return err
				}
				for _, x := range vs {
					ov.Modified = max(ov.Modified, x.Mtime)
				}
			}
		}
		if version == "" {
			k, p, err := t.permissionsPath(acct, cont, name)
			if err != nil {
				return err
			}
			if user != acct {
				if p == nil || (!t.member(p.Read, user) && !t.member(p.Write, user)) {
					return &ErrForbidden{Msg: "User does not have access to the path"}
				}
				ov.AllowedTo = t.allowedAction(user, acct, cont, name)
			}
			if p != nil {
				ov.Perms = p
				a, c, n := splitOkey(k)
				ov.PermsPath = a + "/" + c + "/" + n
			}
			ov.PublicToken = t.publicToken(ok)
		}
		if withData {
			ov.Segments, err = t.segments(user, acct, ov.Version)
			return err
		}
		return nil
	})
	return ov, err
}

// segments is the data layout of a version; a manifest object (X-Object-
// Manifest: cont/prefix) is the concatenation of the objects under prefix.
func (t *txn) segments(user, acct string, v *Version) ([]Segment, error) {
	manifest, isManifest := v.Meta[DomainPithos]["X-Object-Manifest"]
	if !isManifest {
		return []Segment{{Size: v.Bytes, BlockSize: v.BlockSize, Hashes: t.hashes(v)}}, nil
	}
	cont, prefix, ok := strings.Cut(manifest, "/")
	if !ok || cont == "" {
		return nil, &ErrBadRequest{Msg: "Invalid X-Object-Manifest header"}
	}
	var segs []Segment
	for _, n := range t.liveNames(acct, cont, prefix) {
		if t.canReadObject(user, acct, cont, n) != nil {
			continue
		}
		pv, err := t.current(okey(acct, cont, n))
		if err != nil {
			return nil, err
		}
		segs = append(segs, Segment{Size: pv.Bytes, BlockSize: pv.BlockSize, Hashes: t.hashes(pv)})
	}
	return segs, nil
}

// VersionHashes is the version's own block map (for a manifest object the
// segments describe the parts instead).
func (st *Store) VersionHashes(ov *ObjectView) ([]string, error) {
	var hs []string
	err := st.view(func(t *txn) error {
		hs = t.hashes(ov.Version)
		return nil
	})
	return hs, err
}

// ETag is the ETag a PUT's preconditions compare with; a missing object
// (or container) is not an error there.
func (st *Store) ETag(user, acct, cont, name string) (string, bool, error) {
	var etag string
	var exists bool
	err := st.view(func(t *txn) error {
		if err := t.canReadObject(user, acct, cont, name); err != nil {
			return err
		}
		v, err := t.current(okey(acct, cont, name))
		if err != nil || v == nil {
			return err
		}
		etag, exists = v.Hash, true
		return nil
	})
	return etag, exists, err
}

// ObjectByPublicToken resolves a public token to its object.
func (st *Store) ObjectByPublicToken(token string) (acct, cont, name string, err error) {
	err = st.view(func(t *txn) error {
		k := t.publicTokens.Get([]byte(token))
		if k == nil {
			return &ErrNotFound{Msg: "Object does not exist"}
		}
		acct, cont, name = splitOkey(k)
		return nil
	})
	return
}

// ListVersions is list_versions: [serial, mtime] of every kept version,
// deletion markers left out.
func (st *Store) ListVersions(user, acct, cont, name string) ([]*Version, error) {
	var out []*Version
	err := st.view(func(t *txn) error {
		if err := t.canReadObject(user, acct, cont, name); err != nil {
			return err
		}
		ok := okey(acct, cont, name)
		if !t.hasHistory(ok) {
			return &ErrNotFound{Msg: "Object does not exist"}
		}
		vs, err := t.versionsOf(ok)
		for _, v := range vs {
			if !v.Deleted {
				out = append(out, v)
			}
		}
		return err
	})
	return out, err
}

// WriteData streams the bytes [off, off+n) of the segments to w.
func (st *Store) WriteData(w io.Writer, segs []Segment, off, n int64) error {
	var buf []byte
	for _, sg := range segs {
		if n <= 0 {
			return nil
		}
		if off >= sg.Size {
			off -= sg.Size
			continue
		}
		bs := int64(sg.BlockSize)
		if cap(buf) < sg.BlockSize {
			buf = make([]byte, sg.BlockSize)
		}
		buf = buf[:sg.BlockSize]
		for n > 0 && off < sg.Size {
			bi := off / bs
			bo := off % bs
			if int(bi) >= len(sg.Hashes) {
				return fmt.Errorf("sandbox: object map shorter than its size")
			}
			if err := st.blocks.read(sg.Hashes[bi], buf); err != nil {
				return err
			}
			end := min(bs, sg.Size-bi*bs)
			l := min(end-bo, n)
			if _, err := w.Write(buf[bo : bo+l]); err != nil {
				return err
			}
			off += l
			n -= l
		}
		off = 0
	}
	return nil
}
