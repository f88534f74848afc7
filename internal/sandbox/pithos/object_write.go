package pithos

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/imagesync/imagesync/internal/sandbox/astakos"
	"github.com/imagesync/imagesync/internal/sandbox/store"
	"github.com/imagesync/imagesync/internal/sandbox/wire"

	"github.com/imagesync/imagesync/internal/hashmap"
)

// ---- PUT ----

func (s *Handler) objectPut(w http.ResponseWriter, r *http.Request, acct, cont, name string) {
	ser := "json"
	u, ok := s.objectBegin(w, r, ser, acct, cont, name)
	if !ok {
		return
	}
	_, isHashmap := r.URL.Query()["hashmap"]
	if isHashmap && s.faults.inject(w, r) {
		return
	}
	im, _ := header(r, "If-Match")
	inm, _ := header(r, "If-None-Match")
	if im != "" || inm != "" {
		etag, exists, err := s.store.ETag(u.UUID, acct, cont, name)
		if err != nil {
			s.fail(w, r, ser, err)
			return
		}
		if code, msg := checkMatching(r, etag, exists); code != 0 {
			pfault(w, r, ser, code, wire.FaultPreconditionFailed, msg, "")
			return
		}
	}
	copyFrom, _ := header(r, "X-Copy-From")
	moveFrom, _ := header(r, "X-Move-From")
	if copyFrom != "" || moveFrom != "" {
		if _, err := contentLength(r); err != nil {
			s.fail(w, r, ser, err)
			return
		}
		srcAcct, _ := header(r, "X-Source-Account")
		if srcAcct == "" {
			srcAcct = u.UUID
		}
		from, what := copyFrom, "X-Copy-From"
		if moveFrom != "" {
			from, what = moveFrom, "X-Move-From"
		}
		srcCont, srcName, ok := splitContainerObject(from)
		if !ok {
			s.fail(w, r, ser, badRequest("Invalid "+what+" header"))
			return
		}
		s.copyOrMove(w, r, ser, u, srcAcct, srcCont, srcName, acct, cont, name, moveFrom != "")
		return
	}
	oh, err := readObjectHeaders(r)
	if err != nil {
		s.fail(w, r, ser, err)
		return
	}
	length, err := contentLength(r)
	if err != nil {
		s.fail(w, r, ser, err)
		return
	}
	if !oh.hasType {
		s.fail(w, r, ser, lengthRequired("Missing Content-Type header"))
		return
	}
	if oh.perms != nil && !validSharingMembers(oh.perms) {
		s.fail(w, r, ser, badRequest("Invalid users/groups in permissions"))
		return
	}
	bs := s.store.ContainerBlockSize(acct, cont)
	wr := &store.ObjectWrite{
		User: u.UUID, Account: acct, Container: cont, Name: name, Type: &oh.contentType,
		Domain: store.DomainPithos, Meta: oh.meta, ReplaceMeta: true, Perms: oh.perms,
	}
	checksum := ""
	if isHashmap {
		s.stats.hashmapPuts.Add(1)
		if err := readHashmapBody(r, length, bs, wr); err != nil {
			s.fail(w, r, ser, err)
			return
		}
	} else {
		s.stats.objectPuts.Add(1)
		etag, hasEtag := header(r, "ETag")
		br, err := newBlockReader(r, length, bs)
		if err != nil {
			s.fail(w, r, ser, err)
			return
		}
		sum := md5.New()
		for {
			chunk, err := br.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				s.fail(w, r, ser, err)
				return
			}
			h, err := s.store.PutBlock(chunk)
			if err != nil {
				s.fail(w, r, ser, err)
				return
			}
			if hasEtag {
				sum.Write(chunk)
			}
			wr.Size += int64(len(chunk))
			wr.Hashes = append(wr.Hashes, h)
		}
		if hasEtag && etag != "" {
			checksum = hex.EncodeToString(sum.Sum(nil))
			tags := parseEtags(etag)
			if len(tags) == 0 || strings.ToLower(tags[0]) != checksum {
				pfault(w, r, ser, http.StatusUnprocessableEntity, wire.FaultUnprocessable, "Object ETag does not match", "")
				return
			}
		}
	}
	wr.Checksum = &checksum
	v, err := s.store.PutObject(wr)
	var miss *store.ErrMissingBlocks
	if errors.As(err, &miss) {
		respond(w, r, http.StatusConflict, wire.JSONType, listBody("json", miss.Hashes))
		return
	}
	if err != nil {
		s.fail(w, r, ser, err)
		return
	}
	if oh.public != nil {
		if err := s.store.SetPublic(u.UUID, acct, cont, name, *oh.public); err != nil {
			s.fail(w, r, ser, err)
			return
		}
	}
	w.Header()["ETag"] = []string{v.Hash}
	w.Header()["X-Object-Version"] = []string{strconv.FormatInt(v.Serial, 10)}
	respond(w, r, http.StatusCreated, wire.JSONType, nil)
}

// maxHashmapBody bounds the JSON of a hashmap PUT; even a 5 GiB object at
// 4 KiB blocks stays below it.
const maxHashmapBody = 256 << 20

// readHashmapBody parses {"hashes": […], "bytes": N} and runs the size and
// hash checks of update_object_hashmap, in its order.
func readHashmapBody(r *http.Request, length int64, blockSize int, wr *store.ObjectWrite) error {
	limit := int64(maxHashmapBody)
	if length >= 0 {
		limit = min(limit, length)
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return badRequest("")
	}
	if int64(len(data)) > limit {
		if length >= 0 {
			data = data[:limit]
		} else {
			return badRequest("Maximum size is reached")
		}
	}
	invalid := badRequest("Invalid data formatting")
	var d map[string]json.RawMessage
	if err := json.Unmarshal(data, &d); err != nil {
		return invalid
	}
	hashesRaw, ok1 := d["hashes"]
	bytesRaw, ok2 := d["bytes"]
	if !ok1 || !ok2 {
		return invalid
	}
	size, overflow, ok := pyInt(bytesRaw)
	if !ok {
		return invalid
	}
	var hashes []json.RawMessage
	if err := json.Unmarshal(hashesRaw, &hashes); err != nil {
		if !pyFalsy(hashesRaw) {
			return invalid
		}
		hashes = nil
	}
	strs := make([]string, len(hashes))
	for i, h := range hashes {
		if err := json.Unmarshal(h, &strs[i]); err != nil {
			strs[i] = "\x00" + string(h) // not a string: never valid hex
		}
	}
	emptyOnly := len(strs) == 1 && strs[0] == hashmap.EmptyHash
	if overflow || !store.SizeConsistent(size, len(strs), emptyOnly, blockSize) {
		return badRequest("The object's size does not match with the object's hashmap length")
	}
	wr.Size = size
	if size == 0 {
		return nil
	}
	for _, h := range strs {
		if strings.HasPrefix(h, "\x00") {
			return badRequest("Invalid hash: " + h[1:])
		}
	}
	canon, err := store.CanonicalHashes(strs)
	if err != nil {
		return err
	}
	wr.Hashes = canon
	return nil
}

// pyInt is Python's int() of a JSON value: integers, floats (truncated),
// decimal strings and booleans. overflow means it does not fit an int64.
func pyInt(raw json.RawMessage) (n int64, overflow, ok bool) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return 0, false, false
	}
	var bi *big.Int
	switch x := v.(type) {
	case json.Number:
		if i, good := new(big.Int).SetString(x.String(), 10); good {
			bi = i
		} else if f, _, err := big.ParseFloat(x.String(), 10, 256, big.ToZero); err == nil {
			bi, _ = f.Int(nil)
		} else {
			return 0, false, false
		}
	case string:
		i, good := new(big.Int).SetString(strings.TrimSpace(x), 10)
		if !good {
			return 0, false, false
		}
		bi = i
	case bool:
		if x {
			return 1, false, true
		}
		return 0, false, true
	default:
		return 0, false, false
	}
	if !bi.IsInt64() {
		return 0, true, true
	}
	return bi.Int64(), false, true
}

// pyFalsy reports whether a JSON value is false in Python (null, false, 0,
// "", {}, []).
func pyFalsy(raw json.RawMessage) bool {
	switch strings.TrimSpace(string(raw)) {
	case "null", "false", "0", `""`, "{}", "[]", "0.0":
		return true
	}
	return false
}

// copyOrMove is copy_or_move_object.
func (s *Handler) copyOrMove(w http.ResponseWriter, r *http.Request, ser string, u astakos.User, srcAcct, srcCont, srcName, dstAcct, dstCont, dstName string, move bool) {
	if _, ok := r.URL.Query()["ignore_content_type"]; ok {
		r.Header.Del("Content-Type")
	}
	oh, err := readObjectHeaders(r)
	if err != nil {
		s.fail(w, r, ser, err)
		return
	}
	if oh.perms != nil && !validSharingMembers(oh.perms) {
		s.fail(w, r, ser, badRequest("Invalid users/groups in permissions"))
		return
	}
	if !validNames(srcAcct, srcCont, srcName, dstAcct, dstCont, dstName) {
		s.fail(w, r, ser, badRequest("Bad character in path."))
		return
	}
	req := &store.CopyRequest{
		User: u.UUID, SrcAccount: srcAcct, SrcContainer: srcCont, SrcName: srcName,
		DstAccount: dstAcct, DstContainer: dstCont, DstName: dstName,
		Meta: oh.meta, Perms: oh.perms, Move: move, Delimiter: r.URL.Query().Get("delimiter"),
	}
	if oh.contentType != "" {
		req.Type = &oh.contentType
	}
	if !move {
		req.SrcVersion, _ = header(r, "X-Source-Version")
	}
	v, err := s.store.CopyObject(req)
	if err != nil {
		s.fail(w, r, ser, err)
		return
	}
	if oh.public != nil {
		if err := s.store.SetPublic(u.UUID, dstAcct, dstCont, dstName, *oh.public); err != nil {
			s.fail(w, r, ser, err)
			return
		}
	}
	w.Header()["X-Object-Version"] = []string{strconv.FormatInt(v.Serial, 10)}
	respond(w, r, http.StatusCreated, contentTypeFor(ser), nil)
}

// objectCopyMove is the COPY and MOVE methods (Destination header).
func (s *Handler) objectCopyMove(w http.ResponseWriter, r *http.Request, acct, cont, name string, move bool) {
	ser := serialization(r, true, serDefault)
	u, ok := s.objectBegin(w, r, ser, acct, cont, name)
	if !ok {
		return
	}
	dstAcct, _ := header(r, "Destination-Account")
	if dstAcct == "" {
		dstAcct = u.UUID
	}
	dest, _ := header(r, "Destination")
	if dest == "" {
		s.fail(w, r, ser, badRequest("Missing Destination header"))
		return
	}
	dstCont, dstName, valid := splitContainerObject(dest)
	if !valid {
		s.fail(w, r, ser, badRequest("Invalid Destination header"))
		return
	}
	im, _ := header(r, "If-Match")
	inm, _ := header(r, "If-None-Match")
	if im != "" || inm != "" {
		version := ""
		if !move {
			version, _ = header(r, "X-Source-Version")
		}
		ov, err := s.store.GetObject(u.UUID, acct, cont, name, version, false)
		if err != nil {
			s.fail(w, r, ser, err)
			return
		}
		if code, msg := checkMatching(r, ov.Version.Hash, true); code != 0 {
			pfault(w, r, ser, code, wire.FaultPreconditionFailed, msg, "")
			return
		}
	}
	s.copyOrMove(w, r, ser, u, acct, cont, name, dstAcct, dstCont, dstName, move)
}

// ---- POST ----

var contentRangeRe = regexp.MustCompile(`^bytes (\d+)-(\d*)/(\d+|\*)$`)

// parseContentRange is get_content_range: offset, length, total (-1 for
// absent), or ok=false for an unusable header.
func parseContentRange(v string) (off, length, total int64, ok bool) {
	m := contentRangeRe.FindStringSubmatch(v)
	if m == nil {
		if v == "bytes */*" {
			return -1, -1, -1, true
		}
		return 0, 0, 0, false
	}
	off, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, 0, 0, false
	}
	upto, total := int64(-1), int64(-1)
	if m[2] != "" {
		if upto, err = strconv.ParseInt(m[2], 10, 64); err != nil {
			return 0, 0, 0, false
		}
	}
	if m[3] != "*" {
		if total, err = strconv.ParseInt(m[3], 10, 64); err != nil {
			return 0, 0, 0, false
		}
	}
	if (upto >= 0 && off > upto) || (total >= 0 && off >= total) || (total >= 0 && upto >= 0 && upto >= total) {
		return 0, 0, 0, false
	}
	length = -1
	if upto >= 0 {
		length = upto - off + 1
	}
	return off, length, total, true
}

// objectPost is object_update: a metadata/sharing/public update (202), or a
// data update at a Content-Range (204).
func (s *Handler) objectPost(w http.ResponseWriter, r *http.Request, acct, cont, name string) {
	ser := serialization(r, true, serDefault)
	u, ok := s.objectBegin(w, r, ser, acct, cont, name)
	if !ok {
		return
	}
	oh, err := readObjectHeaders(r)
	if err != nil {
		s.fail(w, r, ser, err)
		return
	}
	prev, err := s.store.GetObject(u.UUID, acct, cont, name, "", true)
	if err != nil {
		s.fail(w, r, ser, err)
		return
	}
	im, _ := header(r, "If-Match")
	inm, _ := header(r, "If-None-Match")
	if im != "" || inm != "" {
		if code, msg := checkMatching(r, prev.Version.Hash, true); code != 0 {
			pfault(w, r, ser, code, wire.FaultPreconditionFailed, msg, "")
			return
		}
	}
	_, update := r.URL.Query()["update"]
	replace := !update
	srcObject, _ := header(r, "X-Source-Object")
	if oh.contentType != "application/octet-stream" && srcObject == "" {
		if oh.perms != nil {
			if !validSharingMembers(oh.perms) {
				s.fail(w, r, ser, badRequest("Invalid sharing header"))
				return
			}
			if err := s.store.SetPermissions(u.UUID, acct, cont, name, *oh.perms); err != nil {
				s.fail(w, r, ser, err)
				return
			}
		}
		if oh.public != nil {
			if err := s.store.SetPublic(u.UUID, acct, cont, name, *oh.public); err != nil {
				s.fail(w, r, ser, err)
				return
			}
		}
		if len(oh.meta) > 0 || replace {
			v, err := s.store.UpdateMeta(u.UUID, acct, cont, name, store.DomainPithos, oh.meta, replace)
			if err != nil {
				s.fail(w, r, ser, err)
				return
			}
			w.Header()["X-Object-Version"] = []string{strconv.FormatInt(v.Serial, 10)}
		}
		respond(w, r, http.StatusAccepted, contentTypeFor(ser), nil)
		return
	}
	s.objectUpdateData(w, r, ser, u, prev, oh, srcObject, replace)
}

// objectUpdateData writes data into an object at a Content-Range ("bytes
// */*" appends), from the body or from X-Source-Object.
func (s *Handler) objectUpdateData(w http.ResponseWriter, r *http.Request, ser string, u astakos.User, prev *store.ObjectView, oh *objectHeaders, srcObject string, replace bool) {
	cr, _ := header(r, "Content-Range")
	if cr == "" {
		s.fail(w, r, ser, badRequest("Missing Content-Range header"))
		return
	}
	offset, length, total, ok := parseContentRange(cr)
	if !ok {
		pfault(w, r, ser, http.StatusRequestedRangeNotSatisfiable, wire.FaultRangeNotSatisfied, "Invalid Content-Range header", "")
		return
	}
	own := prev.Segments[0]
	if _, isManifest := prev.Version.Meta[store.DomainPithos]["X-Object-Manifest"]; isManifest {
		hs, err := s.store.VersionHashes(prev)
		if err != nil {
			s.fail(w, r, ser, err)
			return
		}
		own = store.Segment{Size: prev.Version.Bytes, BlockSize: prev.Version.BlockSize, Hashes: hs}
	}
	size := own.Size
	if offset < 0 {
		offset = size
	} else if offset > size {
		pfault(w, r, ser, http.StatusRequestedRangeNotSatisfiable, wire.FaultRangeNotSatisfied, "Supplied offset is beyond object limits", "")
		return
	}
	var src io.Reader
	if srcObject != "" {
		srcAcct, _ := header(r, "X-Source-Account")
		if srcAcct == "" {
			srcAcct = u.UUID
		}
		sc, sn, valid := splitContainerObject(srcObject)
		if !valid {
			s.fail(w, r, ser, badRequest("Invalid source object"))
			return
		}
		sv, _ := header(r, "X-Source-Version")
		sov, err := s.store.GetObject(u.UUID, srcAcct, sc, sn, sv, true)
		if err != nil {
			s.fail(w, r, ser, err)
			return
		}
		srcSize := sov.Version.Bytes
		if length < 0 {
			length = srcSize
		} else if length > srcSize {
			s.fail(w, r, ser, badRequest("Object length is smaller than range length"))
			return
		}
		pr, pw := io.Pipe()
		segs, n := sov.Segments, length
		go func() { pw.CloseWithError(s.store.WriteData(pw, segs, 0, n)) }()
		defer pr.Close()
		src = pr
	} else {
		cl, err := contentLength(r)
		if err != nil {
			s.fail(w, r, ser, err)
			return
		}
		if length < 0 {
			length = cl
		} else if cl == -1 {
			length = cl
		} else if length != cl {
			s.fail(w, r, ser, badRequest("Content length does not match range length"))
			return
		}
		if length > maxUploadSize {
			s.fail(w, r, ser, badRequest("Maximum size is reached"))
			return
		}
		src = r.Body
	}
	if total >= 0 && (total != size || offset >= size || (length > 0 && offset+length > size)) {
		pfault(w, r, ser, http.StatusRequestedRangeNotSatisfiable, wire.FaultRangeNotSatisfied, "Supplied range will change provided object limits", "")
		return
	}
	destBytes := int64(-1)
	if v, present := header(r, "X-Object-Bytes"); present {
		n, valid := getIntParameter(v, true)
		if !valid {
			s.fail(w, r, ser, badRequest("Invalid X-Object-Bytes header"))
			return
		}
		destBytes = n
	}
	if length >= 0 {
		src = io.LimitReader(src, length)
	}
	bs := int64(own.BlockSize)
	hashes := append([]string(nil), own.Hashes...)
	buf := make([]byte, bs)
	block := make([]byte, bs)
	for {
		bo := offset % bs
		n, err := io.ReadFull(src, buf[:bs-bo])
		if n > 0 {
			bi := offset / bs
			if int(bi) < len(hashes) {
				if err := s.store.ReadBlock(hashes[bi], block); err != nil {
					s.fail(w, r, ser, err)
					return
				}
			} else {
				clear(block)
			}
			copy(block[bo:], buf[:n])
			h, perr := s.store.PutBlock(block)
			if perr != nil {
				s.fail(w, r, ser, perr)
				return
			}
			if int(bi) < len(hashes) {
				hashes[bi] = h
			} else {
				hashes = append(hashes, h)
			}
			offset += int64(n)
		}
		if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			s.fail(w, r, ser, badRequest(""))
			return
		}
	}
	if offset > size {
		size = offset
	}
	if destBytes >= 0 && destBytes < size {
		size = destBytes
		hashes = hashes[:hashmap.NumBlocks(size, bs)]
	}
	if size == 0 {
		hashes = nil
	}
	empty := ""
	typ := prev.Version.Type
	wr := &store.ObjectWrite{
		User: u.UUID, Account: prev.Account, Container: prev.Container, Name: prev.Name, Size: size, Hashes: hashes,
		Type: &typ, Checksum: &empty, Domain: store.DomainPithos, Meta: oh.meta, ReplaceMeta: replace, Perms: oh.perms,
	}
	v, err := s.store.PutObject(wr)
	if err != nil {
		s.fail(w, r, ser, err)
		return
	}
	if oh.public != nil {
		if err := s.store.SetPublic(u.UUID, prev.Account, prev.Container, prev.Name, *oh.public); err != nil {
			s.fail(w, r, ser, err)
			return
		}
	}
	w.Header()["ETag"] = []string{v.Hash}
	w.Header()["X-Object-Version"] = []string{strconv.FormatInt(v.Serial, 10)}
	respond(w, r, http.StatusNoContent, contentTypeFor(ser), nil)
}

func (s *Handler) objectDelete(w http.ResponseWriter, r *http.Request, acct, cont, name string) {
	ser := "json"
	u, ok := s.objectBegin(w, r, ser, acct, cont, name)
	if !ok {
		return
	}
	var err error
	if until := untilParam(r); until.Set {
		err = s.store.PurgeObject(u.UUID, acct, cont, name, until)
	} else {
		err = s.store.DeleteObject(u.UUID, acct, cont, name, r.URL.Query().Get("delimiter"))
	}
	if err != nil {
		s.fail(w, r, ser, err)
		return
	}
	respond(w, r, http.StatusNoContent, wire.JSONType, nil)
}
