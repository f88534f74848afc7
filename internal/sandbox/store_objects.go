package sandbox

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/imagesync/imagesync/internal/hashmap"
)

// objWrite describes a new object version (modular.py _update_object_hash).
type objWrite struct {
	user, acct, cont, name string
	size                   int64
	hashes                 []string // canonical hex; [EmptyHash] for size 0
	hash                   string   // Merkle root
	typ                    *string  // nil: keep the source's type
	checksum               *string  // nil: keep the source's checksum
	domain                 string   // "" with a copy: all domains copied as is
	meta                   map[string]string
	replaceMeta            bool
	perms                  *Permissions // nil: sharing untouched
	// Copy and move: the source version (its meta is carried over), and
	// whether the destination gets a new uuid.
	src              *versionRec
	isCopy           bool
	skipAccountQuota bool
}

// writeVersion creates the destination version, in the order of checks of
// _update_object_hash: sharing by non-owner, write permission, container,
// metadata limit, container quota, account quota.
func (t *txn) writeVersion(w *objWrite, now int64) (*versionRec, error) {
	if w.perms != nil && w.user != w.acct {
		return nil, &ErrForbidden{Msg: "Modifying other account's object content is not allowed"}
	}
	if err := t.canWriteObject(w.user, w.acct, w.cont, w.name); err != nil {
		return nil, err
	}
	if _, err := t.touchAccount(w.acct, now); err != nil {
		return nil, err
	}
	c, err := t.container(w.acct, w.cont)
	if err != nil {
		return nil, err
	}
	ok := okey(w.acct, w.cont, w.name)
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
	v := &versionRec{
		Serial: serial, Mtime: now, Bytes: w.size, Hash: w.hash, ModifiedBy: w.user,
		Available: 1, BlockSize: c.BlockSize, Meta: map[string]map[string]string{},
	}
	if src != nil {
		v.Type, v.Checksum, v.Available = src.Type, src.Checksum, src.Available
		if w.src != nil {
			v.BlockSize = src.BlockSize
		}
	}
	if w.typ != nil {
		v.Type = *w.typ
	}
	if w.checksum != nil {
		v.Checksum = *w.checksum
	}
	if w.isCopy || src == nil {
		v.UUID = newUUID()
	} else {
		v.UUID = src.UUID
	}
	// Other domains (plankton) are carried forward; the written domain is
	// replaced or merged.
	if src != nil {
		for d, m := range src.Meta {
			if d != w.domain {
				v.Meta[d] = copyMeta(m)
			}
		}
	}
	if w.domain != "" {
		var existing map[string]string
		if src != nil {
			existing = src.Meta[w.domain]
		}
		m, err := mergeMeta(existing, w.meta, w.replaceMeta)
		if err != nil {
			return nil, err
		}
		if len(m) > 0 {
			v.Meta[w.domain] = m
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
	c.Bytes += w.size - delSize
	c.Mtime = max(c.Mtime, now)
	delta := w.size - delSize
	if delta > 0 {
		if c.Quota > 0 && c.Bytes > c.Quota {
			return nil, &ErrQuota{Container: true, Limit: c.Quota, Usage: c.Bytes}
		}
		if t.st.quota > 0 && !w.skipAccountQuota {
			_, used, err := t.accountUsage(w.acct)
			if err != nil {
				return nil, err
			}
			if used+delta > t.st.quota {
				return nil, &errAccountQuota{available: t.st.quota - used, requested: delta}
			}
		}
	}
	if err := t.putContainer(w.acct, w.cont, c); err != nil {
		return nil, err
	}
	if err := t.putVersion(ok, v, w.hashes); err != nil {
		return nil, err
	}
	if w.perms != nil {
		if err := t.setPermissions(ok, w.perms); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// deleteOne removes the live version of one object (modular.py _delete_object
// without the delimiter walk).
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

// deleteObject is object DELETE, optionally with the ?delimiter subtree.
func (st *Store) deleteObject(user, acct, cont, name, delimiter string) error {
	return st.update(func(t *txn) error {
		now := nowMicro()
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

// containerBlockSize is the block size hashmaps of cont are split by; a
// missing container answers with the store default (its error comes later).
func (st *Store) containerBlockSize(acct, cont string) int {
	bs := st.blockSize
	_ = st.view(func(t *txn) error {
		if c, err := t.container(acct, cont); err == nil && c.BlockSize > 0 {
			bs = c.BlockSize
		}
		return nil
	})
	return bs
}

// sizeConsistent is modular.py _size_is_consistent.
func sizeConsistent(size int64, n int, emptyOnly bool, blockSize int) bool {
	switch {
	case size < 0:
		return false
	case size == 0:
		return n == 0 || emptyOnly
	default:
		return hashmap.NumBlocks(size, int64(blockSize)) == int64(n)
	}
}

// canonicalHashes unhexlifies and re-hexlifies every hash (lowercase), as the
// backend does; a bad one is 400 "Invalid hash: …".
func canonicalHashes(raw []string) ([]string, error) {
	out := make([]string, len(raw))
	for i, h := range raw {
		b, err := hex.DecodeString(h)
		if err != nil {
			return nil, &errBadRequest{msg: "Invalid hash: " + h}
		}
		out[i] = hex.EncodeToString(b)
	}
	return out, nil
}

// putObject is update_object_hashmap: size check, missing blocks (409 before
// any permission or container check), then the new version.
func (st *Store) putObject(w *objWrite) (*versionRec, error) {
	if w.size == 0 {
		h, err := st.blocks.put(nil)
		if err != nil {
			return nil, err
		}
		w.hashes = []string{h}
	}
	if miss := st.blocks.missing(w.hashes); len(miss) > 0 {
		return nil, &errMissingBlocks{hashes: miss}
	}
	root, err := hashmap.MerkleRoot(w.hashes)
	if err != nil {
		return nil, &errBadRequest{msg: err.Error()}
	}
	w.hash = root
	if w.domain == "" {
		w.domain = DomainPithos
	}
	var v *versionRec
	err = st.update(func(t *txn) error {
		var err error
		v, err = t.writeVersion(w, nowMicro())
		return err
	})
	return v, err
}

// copyReq is a copy or move (PUT with X-Copy-From/X-Move-From, COPY, MOVE).
type copyReq struct {
	user                      string
	srcAcct, srcCont, srcName string
	dstAcct, dstCont, dstName string
	srcVersion                string
	typ                       *string
	meta                      map[string]string
	perms                     *Permissions
	move                      bool
	delimiter                 string
}

// copyObject is modular.py _copy_object; it returns the first new version.
func (st *Store) copyObject(r *copyReq) (*versionRec, error) {
	if r.move && r.user != r.srcAcct {
		return nil, &ErrForbidden{Msg: ""}
	}
	var first *versionRec
	err := st.update(func(t *txn) error {
		var err error
		first, err = t.copyOne(r, r.srcName, r.dstName, r.srcVersion, r.typ, r.meta, true)
		if err != nil || r.delimiter == "" {
			return err
		}
		prefix := subtreePrefix(r.srcName, r.delimiter)
		dstPrefix := subtreePrefix(r.dstName, r.delimiter)
		for _, n := range t.liveNames(r.srcAcct, r.srcCont, prefix) {
			dst := dstPrefix + strings.TrimPrefix(n, prefix)
			if _, err := t.copyOne(r, n, dst, "", nil, nil, false); err != nil {
				return err
			}
		}
		return nil
	})
	return first, err
}

func (t *txn) copyOne(r *copyReq, srcName, dstName, srcVersion string, typ *string, meta map[string]string, top bool) (*versionRec, error) {
	now := nowMicro()
	if err := t.canReadObject(r.user, r.srcAcct, r.srcCont, srcName); err != nil {
		return nil, err
	}
	if _, err := t.container(r.srcAcct, r.srcCont); err != nil {
		return nil, err
	}
	if _, err := t.container(r.dstAcct, r.dstCont); err != nil {
		return nil, err
	}
	sok := okey(r.srcAcct, r.srcCont, srcName)
	if !t.hasHistory(sok) {
		return nil, &ErrNotFound{Msg: "Object does not exist"}
	}
	var src *versionRec
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
	same := r.srcAcct == r.dstAcct && r.srcCont == r.dstCont && srcName == dstName
	w := &objWrite{
		user: r.user, acct: r.dstAcct, cont: r.dstCont, name: dstName,
		size: src.Bytes, hashes: t.hashes(src), hash: src.Hash, typ: typ,
		src: src, isCopy: !r.move && !same,
		skipAccountQuota: r.move && r.srcAcct == r.dstAcct,
	}
	if top {
		w.domain, w.meta, w.perms = DomainPithos, meta, r.perms
	}
	v, err := t.writeVersion(w, now)
	if err != nil {
		return nil, err
	}
	if r.move && !same {
		if err := t.deleteOne(r.user, r.srcAcct, r.srcCont, srcName, now); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// updateMeta is update_object_meta: a new version with one domain's meta
// replaced or merged (empty values delete), other domains carried over.
func (st *Store) updateMeta(user, acct, cont, name, domain string, meta map[string]string, replace bool) (*versionRec, error) {
	var v *versionRec
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
		nv.Serial, nv.Mtime, nv.ModifiedBy = serial, nowMicro(), user
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

// setPublic is update_object_public: write access, object must exist.
func (st *Store) setPublic(user, acct, cont, name string, public bool) error {
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

// objectView is one object version with what HEAD/GET need to render it.
type objectView struct {
	acct, cont, name string
	v                *versionRec
	modified         int64 // the latest mtime (Last-Modified)
	perms            *Permissions
	permsPath        string // "acct/cont/name" the sharing comes from
	allowed          string // X-Object-Allowed-To for a non-owner
	publicToken      string
	segments         []segment // the data (several for a manifest)
}

// segment is one object's data: its size, block size and block hashes.
type segment struct {
	size      int64
	blockSize int
	hashes    []string
}

// getObject is get_object_meta (+ permissions and public info for the latest
// version, + the data layout when withData).
func (st *Store) getObject(user, acct, cont, name, version string, withData bool) (*objectView, error) {
	var ov *objectView
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
		ov = &objectView{acct: acct, cont: cont, name: name}
		if version == "" {
			if cur == nil {
				return &ErrNotFound{Msg: "Object does not exist"}
			}
			ov.v, ov.modified = cur, cur.Mtime
		} else {
			n, perr := strconv.ParseInt(version, 10, 64)
			if perr != nil {
				return &ErrNotFound{Msg: "Version does not exist"}
			}
			if ov.v, err = t.version(ok, n); err != nil {
				return err
			}
			if cur != nil {
				ov.modified = cur.Mtime
			} else {
				vs, err := t.versionsOf(ok)
				if err != nil {
					return err
				}
				for _, x := range vs {
					ov.modified = max(ov.modified, x.Mtime)
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
				ov.allowed = t.allowedAction(user, acct, cont, name)
			}
			if p != nil {
				ov.perms = p
				a, c, n := splitOkey(k)
				ov.permsPath = a + "/" + c + "/" + n
			}
			ov.publicToken = t.publicToken(ok)
		}
		if withData {
			ov.segments, err = t.segments(user, acct, ov.v)
			return err
		}
		return nil
	})
	return ov, err
}

// segments is the data layout of a version; a manifest object (X-Object-
// Manifest: cont/prefix) is the concatenation of the objects under prefix.
func (t *txn) segments(user, acct string, v *versionRec) ([]segment, error) {
	manifest, isManifest := v.Meta[DomainPithos]["X-Object-Manifest"]
	if !isManifest {
		return []segment{{size: v.Bytes, blockSize: v.BlockSize, hashes: t.hashes(v)}}, nil
	}
	cont, prefix, ok := strings.Cut(manifest, "/")
	if !ok || cont == "" {
		return nil, &errBadRequest{msg: "Invalid X-Object-Manifest header"}
	}
	var segs []segment
	for _, n := range t.liveNames(acct, cont, prefix) {
		if t.canReadObject(user, acct, cont, n) != nil {
			continue
		}
		pv, err := t.current(okey(acct, cont, n))
		if err != nil {
			return nil, err
		}
		segs = append(segs, segment{size: pv.Bytes, blockSize: pv.BlockSize, hashes: t.hashes(pv)})
	}
	return segs, nil
}

// versionHashes is the version's own block map (for a manifest object the
// segments describe the parts instead).
func (st *Store) versionHashes(ov *objectView) ([]string, error) {
	var hs []string
	err := st.view(func(t *txn) error {
		hs = t.hashes(ov.v)
		return nil
	})
	return hs, err
}

// etagOf is the ETag a PUT's preconditions compare with; a missing object
// (or container) is not an error there.
func (st *Store) etagOf(user, acct, cont, name string) (string, bool, error) {
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

// objectByPublic resolves a public token to its object.
func (st *Store) objectByPublic(token string) (acct, cont, name string, err error) {
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

// listVersions is list_versions: [serial, mtime] of every kept version.
func (st *Store) listVersions(user, acct, cont, name string) ([]*versionRec, error) {
	var out []*versionRec
	err := st.view(func(t *txn) error {
		if err := t.canReadObject(user, acct, cont, name); err != nil {
			return err
		}
		ok := okey(acct, cont, name)
		if !t.hasHistory(ok) {
			return &ErrNotFound{Msg: "Object does not exist"}
		}
		var err error
		out, err = t.versionsOf(ok)
		return err
	})
	return out, err
}

// writeData streams the bytes [off, off+n) of the segments to w.
func (st *Store) writeData(w io.Writer, segs []segment, off, n int64) error {
	var buf []byte
	for _, sg := range segs {
		if n <= 0 {
			return nil
		}
		if off >= sg.size {
			off -= sg.size
			continue
		}
		bs := int64(sg.blockSize)
		if cap(buf) < sg.blockSize {
			buf = make([]byte, sg.blockSize)
		}
		buf = buf[:sg.blockSize]
		for n > 0 && off < sg.size {
			bi := off / bs
			bo := off % bs
			if int(bi) >= len(sg.hashes) {
				return fmt.Errorf("sandbox: object map shorter than its size")
			}
			if err := st.blocks.read(sg.hashes[bi], buf); err != nil {
				return err
			}
			end := min(bs, sg.size-bi*bs)
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
