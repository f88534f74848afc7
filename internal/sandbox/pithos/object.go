package pithos

import (
	"bytes"
	"fmt"
	"html"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/imagesync/imagesync/internal/sandbox/astakos"
	"github.com/imagesync/imagesync/internal/sandbox/store"
	"github.com/imagesync/imagesync/internal/sandbox/wire"

	"github.com/imagesync/imagesync/internal/hashmap"
)

func (s *Handler) pithosObject(w http.ResponseWriter, r *http.Request, acct, cont, name string) {
	switch r.Method {
	case http.MethodHead:
		s.objectHead(w, r, acct, cont, name)
	case http.MethodGet:
		s.objectGet(w, r, acct, cont, name)
	case http.MethodPut:
		s.objectPut(w, r, acct, cont, name)
	case "COPY":
		s.objectCopyMove(w, r, acct, cont, name, false)
	case "MOVE":
		s.objectCopyMove(w, r, acct, cont, name, true)
	case http.MethodPost:
		s.objectPost(w, r, acct, cont, name)
	case http.MethodDelete:
		s.objectDelete(w, r, acct, cont, name)
	default:
		wire.NotAllowed(w, r, "HEAD", "GET", "PUT", "COPY", "MOVE", "POST", "DELETE")
	}
}

func (s *Handler) objectBegin(w http.ResponseWriter, r *http.Request, ser, acct, cont, name string) (astakos.User, bool) {
	u, ok := s.pithosBegin(w, r, ser, cont, name)
	if !ok {
		return astakos.User{}, false
	}
	if !validNames(acct, cont, name) {
		pfault(w, r, ser, http.StatusBadRequest, wire.FaultBadRequest, "Bad character in path.", "")
		return astakos.User{}, false
	}
	return u, true
}

// objectHeaders is get_object_headers.
type objectHeaders struct {
	contentType string
	hasType     bool
	meta        map[string]string
	perms       *store.Permissions // nil: not sent
	public      *bool              // nil: not sent
}

func readObjectHeaders(r *http.Request) (*objectHeaders, error) {
	oh := &objectHeaders{}
	oh.contentType, oh.hasType = header(r, "Content-Type")
	for i := 0; i < len(oh.contentType); i++ {
		if oh.contentType[i] >= 0x80 {
			return nil, badRequest("Bad characters in Content-Type.")
		}
	}
	oh.meta = headerPrefix(r, "X-Object-Meta-")
	if err := checkMetaHeaders(oh.meta); err != nil {
		return nil, err
	}
	for _, k := range []string{"Content-Encoding", "Content-Disposition", "X-Object-Manifest"} {
		if v, _ := header(r, k); v != "" {
			oh.meta[k] = v
		}
	}
	var err error
	if oh.perms, err = parseSharing(r); err != nil {
		return nil, err
	}
	if oh.public, err = parsePublic(r); err != nil {
		return nil, err
	}
	return oh, nil
}

// parseSharing is get_sharing: "read=a,b;write=c", lowercased, "*" wins,
// users in both lists only kept as writers; "" clears the sharing.
func parseSharing(r *http.Request) (*store.Permissions, error) {
	v, ok := header(r, "X-Object-Sharing")
	if !ok {
		return nil, nil
	}
	v = strings.ReplaceAll(strings.ReplaceAll(v, "~", ""), " ", "")
	p := &store.Permissions{}
	if v == "" {
		return p, nil
	}
	list := func(s string) ([]string, error) {
		set := map[string]bool{}
		for _, m := range strings.Split(s, ",") {
			if m = strings.ToLower(m); m != "" {
				set[m] = true
			}
		}
		if set["*"] {
			return []string{"*"}, nil
		}
		if len(set) == 0 {
			return nil, badRequest("Bad X-Object-Sharing header value: invalid length")
		}
		out := make([]string, 0, len(set))
		for m := range set {
			out = append(out, m)
		}
		sort.Strings(out)
		return out, nil
	}
	var err error
	for _, perm := range strings.Split(v, ";") {
		switch {
		case strings.HasPrefix(perm, "read="):
			if p.Read, err = list(perm[5:]); err != nil {
				return nil, err
			}
		case strings.HasPrefix(perm, "write="):
			if p.Write, err = list(perm[6:]); err != nil {
				return nil, err
			}
		default:
			return nil, badRequest("Bad X-Object-Sharing header value: missing prefix")
		}
	}
	writers := map[string]bool{}
	for _, m := range p.Write {
		writers[m] = true
	}
	read := p.Read[:0:0]
	for _, m := range p.Read {
		if m == "*" || !writers[m] {
			read = append(read, m)
		}
	}
	p.Read = read
	return p, nil
}

// validSharingMembers mirrors the 256-character column the members go into.
func validSharingMembers(p *store.Permissions) bool {
	for _, m := range append(append([]string(nil), p.Read...), p.Write...) {
		if len(m) > 256 {
			return false
		}
	}
	return true
}

// parsePublic is get_public: true publishes, false or empty unpublishes.
func parsePublic(r *http.Request) (*bool, error) {
	v, ok := header(r, "X-Object-Public")
	if !ok {
		return nil, nil
	}
	v = strings.ToLower(strings.ReplaceAll(v, " ", ""))
	var b bool
	switch v {
	case "true":
		b = true
	case "false", "":
	default:
		return nil, badRequest("Bad X-Object-Public header value")
	}
	return &b, nil
}

// splitContainerObject is split_container_object_string: "/cont/name".
func splitContainerObject(s string) (string, string, bool) {
	if !strings.HasPrefix(s, "/") {
		return "", "", false
	}
	s = s[1:]
	i := strings.Index(s, "/")
	if i < 0 || i == len(s)-1 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

// putObjectHeaders is put_object_headers (plus update_sharing_meta and
// update_public_meta for the latest version).
func putObjectHeaders(h http.Header, r *http.Request, ov *store.ObjectView, user string, size int64, restricted, disposition bool) {
	v := ov.Version
	h["ETag"] = []string{v.Hash}
	h["Content-Length"] = []string{strconv.FormatInt(size, 10)}
	typ := v.Type
	if typ == "" {
		typ = "application/octet-stream"
	}
	setHeader(h, "Content-Type", typ)
	h["Last-Modified"] = []string{httpDate(ov.Modified)}
	h["Available"] = []string{strconv.Itoa(v.Available)}
	meta := v.Meta[store.DomainPithos]
	if !restricted {
		setHeader(h, "X-Object-Hash", v.Hash)
		setHeader(h, "X-Object-UUID", v.UUID)
		setHeader(h, "X-Object-Modified-By", v.ModifiedBy)
		setHeader(h, "X-Object-Version", strconv.FormatInt(v.Serial, 10))
		setHeader(h, "X-Object-Version-Timestamp", httpDate(v.Mtime))
		for k, val := range meta {
			if strings.HasPrefix(k, "X-Object-Meta-") {
				setHeader(h, k, val)
			}
		}
		for _, k := range []string{"Content-Encoding", "Content-Disposition", "X-Object-Manifest"} {
			if val, ok := meta[k]; ok {
				setHeader(h, k, val)
			}
		}
		if ov.Perms != nil {
			if sh := sharingValue(ov.Perms); sh != "" {
				setHeader(h, "X-Object-Sharing", sh)
				if ov.PermsPath != ov.Account+"/"+ov.Container+"/"+ov.Name {
					setHeader(h, "X-Object-Shared-By", ov.PermsPath)
				}
				if user != ov.Account {
					setHeader(h, "X-Object-Allowed-To", ov.AllowedTo)
				}
			}
		}
		if user == ov.Account && ov.PublicToken != "" {
			setHeader(h, "X-Object-Public", wire.BaseURL(r)+store.PublicPath(ov.PublicToken))
		}
	} else {
		for _, k := range []string{"Content-Encoding", "Content-Disposition"} {
			if val, ok := meta[k]; ok {
				setHeader(h, k, val)
			}
		}
	}
	if disposition {
		dtype := r.URL.Query().Get("disposition-type")
		valid := dtype == "inline" || dtype == "attachment"
		if _, userDefined := h["Content-Disposition"]; userDefined && !valid {
			return
		}
		if !valid {
			dtype = "inline"
		}
		setHeader(h, "Content-Disposition", fmt.Sprintf(`%s; filename="%s"`, dtype, ov.Name))
	}
}

func segmentsSize(segs []store.Segment) int64 {
	var n int64
	for _, s := range segs {
		n += s.Size
	}
	return n
}

// objectPreconditions evaluates the modification and matching headers of a
// read; it reports whether it has answered.
func objectPreconditions(w http.ResponseWriter, r *http.Request, ser string, ov *store.ObjectView) bool {
	if code, msg := checkModified(r, ov.Modified); code != 0 {
		pfault(w, r, ser, code, preconditionFault(code), msg, "")
		return true
	}
	switch code, msg := checkMatching(r, ov.Version.Hash, true); code {
	case http.StatusNotModified:
		w.Header()["ETag"] = []string{ov.Version.Hash}
		respond(w, r, http.StatusNotModified, wire.JSONType, nil)
		return true
	case http.StatusPreconditionFailed:
		pfault(w, r, ser, code, wire.FaultPreconditionFailed, msg, "")
		return true
	}
	return false
}

// versionParam is ?version: present-but-empty names no version at all.
func versionParam(r *http.Request) (string, bool, error) {
	vals, ok := r.URL.Query()["version"]
	if !ok {
		return "", false, nil
	}
	if vals[0] == "" {
		return "", true, &store.ErrNotFound{Msg: "Version does not exist"}
	}
	return vals[0], true, nil
}

func (s *Handler) objectHead(w http.ResponseWriter, r *http.Request, acct, cont, name string) {
	ser := "json"
	u, ok := s.objectBegin(w, r, ser, acct, cont, name)
	if !ok {
		return
	}
	version, _, err := versionParam(r)
	if err != nil {
		s.fail(w, r, ser, err)
		return
	}
	ov, err := s.store.GetObject(u.UUID, acct, cont, name, version, true)
	if err != nil {
		s.fail(w, r, ser, err)
		return
	}
	if objectPreconditions(w, r, ser, ov) {
		return
	}
	h := w.Header()
	wire.SetCommonHeaders(h)
	putObjectHeaders(h, r, ov, u.UUID, segmentsSize(ov.Segments), false, false)
	w.WriteHeader(http.StatusOK)
}

func (s *Handler) objectGet(w http.ResponseWriter, r *http.Request, acct, cont, name string) {
	ser := serialization(r, true, serDefault)
	u, ok := s.objectBegin(w, r, ser, acct, cont, name)
	if !ok {
		return
	}
	if r.URL.Query().Get("version") == "list" {
		s.objectVersions(w, r, ser, u, acct, cont, name)
		return
	}
	version, _, err := versionParam(r)
	if err != nil {
		s.fail(w, r, ser, err)
		return
	}
	ov, err := s.store.GetObject(u.UUID, acct, cont, name, version, true)
	if err != nil {
		s.fail(w, r, ser, err)
		return
	}
	if objectPreconditions(w, r, ser, ov) {
		return
	}
	if _, ok := r.URL.Query()["hashmap"]; ok {
		s.objectHashmap(w, r, ser, u, ov)
		return
	}
	s.objectData(w, r, u.UUID, ov, false)
}

// objectVersions is GET ?version=list.
func (s *Handler) objectVersions(w http.ResponseWriter, r *http.Request, ser string, u astakos.User, acct, cont, name string) {
	vs, err := s.store.ListVersions(u.UUID, acct, cont, name)
	if err != nil {
		s.fail(w, r, ser, err)
		return
	}
	if ser == "xml" {
		var b bytes.Buffer
		fmt.Fprintf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\n<object name=\"%s\">\n", html.EscapeString(name))
		for _, v := range vs {
			fmt.Fprintf(&b, "  <version timestamp=\"%s\">%d</version>\n", store.FormatTimestamp(v.Mtime), v.Serial)
		}
		b.WriteString("</object>\n")
		respond(w, r, http.StatusOK, wire.XMLType, b.Bytes())
		return
	}
	list := make([]any, 0, len(vs))
	for _, v := range vs {
		list = append(list, []any{v.Serial, store.FormatTimestamp(v.Mtime)})
	}
	respond(w, r, http.StatusOK, wire.JSONType, wire.PyJSON(map[string]any{"versions": list}))
}

// objectHashmap is GET ?hashmap: the object's own map, typed as the object.
func (s *Handler) objectHashmap(w http.ResponseWriter, r *http.Request, ser string, u astakos.User, ov *store.ObjectView) {
	v := ov.Version
	var hashes []string
	if _, isManifest := v.Meta[store.DomainPithos]["X-Object-Manifest"]; isManifest {
		var err error
		if hashes, err = s.store.VersionHashes(ov); err != nil {
			s.fail(w, r, ser, err)
			return
		}
	} else {
		hashes = ov.Segments[0].Hashes
	}
	var body []byte
	if ser == "xml" {
		var b bytes.Buffer
		fmt.Fprintf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\n<object name=\"%s\" bytes=\"%d\" block_size=\"%d\" block_hash=\"%s\">\n",
			html.EscapeString(ov.Name), v.Bytes, v.BlockSize, hashmap.Algorithm)
		for _, h := range hashes {
			fmt.Fprintf(&b, "  <hash>%s</hash>\n", h)
		}
		b.WriteString("</object>\n")
		body = b.Bytes()
	} else {
		body = wire.PyJSON(map[string]any{"block_size": v.BlockSize, "block_hash": hashmap.Algorithm, "bytes": v.Bytes, "hashes": hashes})
	}
	h := w.Header()
	wire.SetCommonHeaders(h)
	putObjectHeaders(h, r, ov, u.UUID, v.Bytes, false, false)
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

var rangeRe = regexp.MustCompile(`^(\d*)-(\d*)$`)

type byteRange struct{ off, length int64 }

// getRange is get_range: nil when there is no usable Range header.
func getRange(r *http.Request, size int64) []byteRange {
	v := strings.ReplaceAll(r.Header.Get("Range"), " ", "")
	if !strings.HasPrefix(v, "bytes=") {
		return nil
	}
	var out []byteRange
	for _, part := range strings.Split(v[6:], ",") {
		m := rangeRe.FindStringSubmatch(strings.TrimSpace(part))
		if m == nil || (m[1] == "" && m[2] == "") {
			return nil
		}
		if m[1] != "" {
			off, err := strconv.ParseInt(m[1], 10, 64)
			if err != nil {
				return nil
			}
			if m[2] != "" {
				upto, err := strconv.ParseInt(m[2], 10, 64)
				if err != nil || off > upto {
					return nil
				}
				out = append(out, byteRange{off, upto - off + 1})
			} else {
				out = append(out, byteRange{off, size - off})
			}
		} else {
			n, err := strconv.ParseInt(m[2], 10, 64)
			if err != nil {
				return nil
			}
			out = append(out, byteRange{size - n, n})
		}
	}
	return out
}

// objectData is object_data_response: the whole object, one range (206 with
// Content-Range) or several (multipart/byteranges).
func (s *Handler) objectData(w http.ResponseWriter, r *http.Request, user string, ov *store.ObjectView, restricted bool) {
	size := segmentsSize(ov.Segments)
	ranges := getRange(r, size)
	status := http.StatusOK
	if ranges == nil {
		ranges = []byteRange{{0, size}}
	} else {
		for _, br := range ranges {
			if br.length <= 0 || br.length > size || br.off < 0 || br.off >= size || br.off+br.length > size {
				pfault(w, r, "text", http.StatusRequestedRangeNotSatisfiable, wire.FaultRangeNotSatisfied, "Requested range exceeds object limits", "")
				return
			}
		}
		status = http.StatusPartialContent
		if ifRange, ok := header(r, "If-Range"); ok && ifRange != "" {
			if t, ok := parseHTTPDate(ifRange); ok {
				if t != ov.Modified/1e6 {
					ranges, status = []byteRange{{0, size}}, http.StatusOK
				}
			} else if ifRange != ov.Version.Checksum {
				ranges, status = []byteRange{{0, size}}, http.StatusOK
			}
		}
	}
	h := w.Header()
	wire.SetCommonHeaders(h)
	putObjectHeaders(h, r, ov, user, size, restricted, true)
	boundary := ""
	if status == http.StatusPartialContent {
		if len(ranges) == 1 {
			br := ranges[0]
			h["Content-Length"] = []string{strconv.FormatInt(br.length, 10)}
			setHeader(h, "Content-Range", fmt.Sprintf("bytes %d-%d/%d", br.off, br.off+br.length-1, size))
		} else {
			boundary = strings.ReplaceAll(store.NewUUID(), "-", "")
			delete(h, "Content-Length")
			setHeader(h, "Content-Type", "multipart/byteranges; boundary="+boundary)
		}
	}
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	if boundary == "" {
		_ = s.store.WriteData(w, ov.Segments, ranges[0].off, ranges[0].length)
		return
	}
	for i, br := range ranges {
		lead := ""
		if i > 0 {
			lead = "\r\n"
		}
		fmt.Fprintf(w, "%s--%s\r\nContent-Range: bytes %d-%d/%d\r\nContent-Transfer-Encoding: binary\r\n\r\n",
			lead, boundary, br.off, br.off+br.length-1, size)
		if err := s.store.WriteData(w, ov.Segments, br.off, br.length); err != nil {
			return
		}
	}
	fmt.Fprintf(w, "\r\n--%s--\r\n", boundary)
}
