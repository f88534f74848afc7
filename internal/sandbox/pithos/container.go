package pithos

import (
	"bytes"
	"fmt"
	"html"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/imagesync/imagesync/internal/sandbox/astakos"
	"github.com/imagesync/imagesync/internal/sandbox/store"
	"github.com/imagesync/imagesync/internal/sandbox/wire"

	"github.com/imagesync/imagesync/internal/hashmap"
)

func (s *Handler) pithosContainer(w http.ResponseWriter, r *http.Request, acct, cont string) {
	switch r.Method {
	case http.MethodHead:
		s.containerHead(w, r, acct, cont)
	case http.MethodPut:
		s.containerPut(w, r, acct, cont)
	case http.MethodPost:
		s.containerPost(w, r, acct, cont)
	case http.MethodDelete:
		s.containerDelete(w, r, acct, cont)
	case http.MethodGet:
		s.containerGet(w, r, acct, cont)
	default:
		wire.NotAllowed(w, r, "HEAD", "PUT", "POST", "DELETE", "GET")
	}
}

// containerBegin is pithosBegin plus the NUL check of the names.
func (s *Handler) containerBegin(w http.ResponseWriter, r *http.Request, ser, acct, cont string) (astakos.User, bool) {
	u, ok := s.pithosBegin(w, r, ser, cont, "")
	if !ok {
		return astakos.User{}, false
	}
	if !validNames(acct, cont) {
		pfault(w, r, ser, http.StatusBadRequest, wire.FaultBadRequest, "Bad character in path.", "")
		return astakos.User{}, false
	}
	return u, true
}

// containerHeaders is get_container_headers: X-Container-Meta-* (checked)
// and X-Container-Policy-* (names lowercased, spaces removed from values).
func containerHeaders(r *http.Request) (meta, policy map[string]string, err error) {
	meta = headerPrefix(r, "X-Container-Meta-")
	if err := checkMetaHeaders(meta); err != nil {
		return nil, nil, err
	}
	policy = map[string]string{}
	for k, v := range headerPrefix(r, "X-Container-Policy-") {
		policy[strings.ToLower(k[len("X-Container-Policy-"):])] = strings.ReplaceAll(v, " ", "")
	}
	return meta, policy, nil
}

// putContainerHeaders is put_container_headers.
func putContainerHeaders(h http.Header, ci *store.ContainerInfo) {
	if ci.Owner {
		setHeader(h, "X-Container-Object-Count", strconv.FormatInt(ci.Count, 10))
		setHeader(h, "X-Container-Bytes-Used", strconv.FormatInt(ci.Bytes, 10))
	}
	h["Last-Modified"] = []string{httpDate(ci.Mtime)}
	for k, v := range ci.Meta {
		setHeader(h, k, v)
	}
	setHeader(h, "X-Container-Object-Meta", strings.Join(ci.ObjectMeta, ","))
	setHeader(h, "X-Container-Block-Size", strconv.Itoa(ci.BlockSize))
	setHeader(h, "X-Container-Block-Hash", hashmap.Algorithm)
	if ci.HasUntil {
		setHeader(h, "X-Container-Until-Timestamp", httpDate(ci.Until))
	}
	if ci.Owner {
		setHeader(h, "X-Container-Policy-Quota", strconv.FormatInt(ci.Quota, 10))
		setHeader(h, "X-Container-Policy-Versioning", ci.Versioning)
		setHeader(h, "X-Container-Policy-Project", ci.Project)
	}
}

func (s *Handler) containerHead(w http.ResponseWriter, r *http.Request, acct, cont string) {
	ser := "json"
	u, ok := s.containerBegin(w, r, ser, acct, cont)
	if !ok {
		return
	}
	ci, err := s.store.Container(u.UUID, acct, cont, true, untilParam(r))
	if err != nil {
		s.fail(w, r, ser, err)
		return
	}
	if code, msg := checkModified(r, ci.Mtime); code != 0 {
		pfault(w, r, ser, code, preconditionFault(code), msg, "")
		return
	}
	putContainerHeaders(w.Header(), ci)
	respond(w, r, http.StatusNoContent, wire.JSONType, nil)
}

func (s *Handler) containerPut(w http.ResponseWriter, r *http.Request, acct, cont string) {
	ser := "json"
	u, ok := s.containerBegin(w, r, ser, acct, cont)
	if !ok {
		return
	}
	meta, policy, err := containerHeaders(r)
	if err != nil {
		s.fail(w, r, ser, err)
		return
	}
	created, err := s.store.CreateContainer(u.UUID, acct, cont, policy, meta)
	if err != nil {
		s.fail(w, r, ser, err)
		return
	}
	status := http.StatusAccepted
	if created {
		status = http.StatusCreated
	}
	respond(w, r, status, wire.JSONType, nil)
}

// containerPost is container_update: meta and policy, and block upload when
// the body is application/octet-stream.
func (s *Handler) containerPost(w http.ResponseWriter, r *http.Request, acct, cont string) {
	ser := serialization(r, true, serDefault)
	u, ok := s.containerBegin(w, r, ser, acct, cont)
	if !ok {
		return
	}
	length := int64(-1)
	if !isChunked(r) {
		v, present := header(r, "Content-Length")
		if !present && r.ContentLength >= 0 {
			v, present = strconv.FormatInt(r.ContentLength, 10), true
		}
		if !present {
			length = 0
		} else if n, valid := getIntParameter(v, true); valid {
			length = n
		}
	}
	ct, _ := header(r, "Content-Type")
	upload := ct == "application/octet-stream" && length != 0
	if upload && s.faults.inject(w, r) {
		return
	}
	meta, policy, err := containerHeaders(r)
	if err != nil {
		s.fail(w, r, ser, err)
		return
	}
	_, update := r.URL.Query()["update"]
	if err := s.store.UpdateContainer(u.UUID, acct, cont, policy, meta, !update); err != nil {
		s.fail(w, r, ser, err)
		return
	}
	if !upload {
		respond(w, r, http.StatusAccepted, wire.JSONType, nil)
		return
	}
	if err := store.CanWriteContainer(u.UUID, acct); err != nil {
		s.fail(w, r, ser, err)
		return
	}
	br, err := newBlockReader(r, length, s.store.ContainerBlockSize(acct, cont))
	if err != nil {
		s.fail(w, r, ser, err)
		return
	}
	var hashes []string
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
		s.stats.blocksReceived.Add(1)
		s.stats.blockBytesReceived.Add(int64(len(chunk)))
		hashes = append(hashes, h)
	}
	if len(hashes) == 0 {
		respond(w, r, http.StatusAccepted, contentTypeFor(ser), nil)
		return
	}
	respond(w, r, http.StatusAccepted, contentTypeFor(ser), listBody(ser, hashes))
}

// listBody is simple_list_response.
func listBody(ser string, items []string) []byte {
	switch ser {
	case "text":
		return []byte(strings.Join(items, "\n") + "\n")
	case "xml":
		var b bytes.Buffer
		b.WriteString("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\n<items>\n")
		for _, it := range items {
			fmt.Fprintf(&b, "  <item>%s</item>\n", html.EscapeString(it))
		}
		b.WriteString("</items>\n")
		return b.Bytes()
	}
	return wire.PyJSON(items)
}

func (s *Handler) containerDelete(w http.ResponseWriter, r *http.Request, acct, cont string) {
	ser := "json"
	u, ok := s.containerBegin(w, r, ser, acct, cont)
	if !ok {
		return
	}
	var err error
	if until := untilParam(r); until.Set {
		err = s.store.PurgeContainer(u.UUID, acct, cont, until)
	} else {
		err = s.store.DeleteContainer(u.UUID, acct, cont, r.URL.Query().Get("delimiter"))
	}
	if err != nil {
		s.fail(w, r, ser, err)
		return
	}
	respond(w, r, http.StatusNoContent, wire.JSONType, nil)
}

// filterRe is pithos/backends/filter.py's term syntax.
var filterRe = regexp.MustCompile(`^(!?)\s*(\S+?)\s*(?:(=|!=|<=|>=|<|>)\s*(\S*?)\s*)?$`)

// parseMetaFilter turns ?meta=a,!b,c=d into a filter over X-Object-Meta keys.
func parseMetaFilter(q string) *store.MetaFilter {
	var f store.MetaFilter
	any := false
	for _, term := range strings.Split(q, ",") {
		term = strings.TrimSpace(term)
		if term == "" {
			continue
		}
		m := filterRe.FindStringSubmatch(term)
		if m == nil {
			continue
		}
		any = true
		key := formatHeaderKey("X-Object-Meta-" + m[2])
		switch {
		case m[1] != "":
			f.Excluded = append(f.Excluded, key)
		case m[3] != "":
			f.Ops = append(f.Ops, [3]string{key, m[3], m[4]})
		case m[4] == "":
			f.Included = append(f.Included, key)
		}
	}
	if !any {
		return nil
	}
	return &f
}

// containerGet is object_list.
func (s *Handler) containerGet(w http.ResponseWriter, r *http.Request, acct, cont string) {
	ser := serialization(r, true, serListing)
	u, ok := s.containerBegin(w, r, ser, acct, cont)
	if !ok {
		return
	}
	until := untilParam(r)
	ci, err := s.store.Container(u.UUID, acct, cont, true, until)
	if err != nil {
		s.fail(w, r, ser, err)
		return
	}
	if code, msg := checkModified(r, ci.Mtime); code != 0 {
		pfault(w, r, ser, code, preconditionFault(code), msg, "")
		return
	}
	putContainerHeaders(w.Header(), ci)

	q := r.URL.Query()
	o := store.ListOptions{Prefix: q.Get("prefix"), Delimiter: q.Get("delimiter"), Virtual: true, Marker: q.Get("marker"), Until: until}
	if path := q.Get("path"); path != "" {
		o.Prefix, o.Delimiter, o.Virtual = path, "/", false
	}
	if o.Prefix != "" && o.Delimiter != "" && !strings.HasSuffix(o.Prefix, o.Delimiter) {
		o.Prefix += o.Delimiter
	}
	o.Prefix = strings.TrimLeft(o.Prefix, "/")
	o.Limit = listLimitParam(q)
	if keys := q.Get("meta"); keys != "" {
		o.Filter = parseMetaFilter(keys)
	}
	_, o.Shared = q["shared"]
	_, public := q["public"]
	if public && u.UUID != acct {
		pfault(w, r, ser, http.StatusForbidden, wire.FaultForbidden, "PUblic object listing is not allowed to non path owners", "")
		return
	}
	o.Public = public
	items, err := s.store.ListObjects(u.UUID, acct, cont, o)
	if err != nil {
		s.fail(w, r, ser, err)
		return
	}
	if ser == "text" {
		names := make([]string, len(items))
		for i, it := range items {
			names[i] = it.Name
		}
		respondNames(w, r, names)
		return
	}
	out := make([]any, 0, len(items))
	var xb bytes.Buffer
	fmt.Fprintf(&xb, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<container name=\"%s\">\n", html.EscapeString(cont))
	for _, it := range items {
		if it.Subdir {
			out = append(out, map[string]any{"subdir": it.Name})
			fmt.Fprintf(&xb, "  <subdir name=\"%s\" />\n", html.EscapeString(it.Name))
			continue
		}
		v := it.Version
		m := map[string]any{
			"name":                       it.Name,
			"bytes":                      v.Bytes,
			"content_type":               v.Type,
			"hash":                       v.Checksum,
			"x_object_hash":              v.Hash,
			"x_object_uuid":              v.UUID,
			"x_object_version":           v.Serial,
			"x_object_version_timestamp": store.FormatTimestamp(v.Mtime),
			"last_modified":              isoformat(v.Mtime),
			"x_object_modified_by":       v.ModifiedBy,
			"available":                  v.Available,
			"map_check_timestamp":        nil,
		}
		if until.Set {
			// object_list: with until, 'modified' is None and left out.
			delete(m, "last_modified")
		}
		if it.Perms != nil {
			if sh := sharingValue(it.Perms); sh != "" {
				m["x_object_sharing"] = sh
				if it.PermsPath != acct+"/"+cont+"/"+it.Name {
					m["x_object_shared_by"] = it.PermsPath
				}
				if u.UUID != acct {
					m["x_object_allowed_to"] = it.AllowedTo
				}
			}
		}
		if it.PublicToken != "" {
			m["x_object_public"] = wire.BaseURL(r) + store.PublicPath(it.PublicToken)
		}
		out = append(out, m)
		xb.WriteString("  <object>\n")
		writeXMLFields(&xb, m)
		xb.WriteString("  </object>\n")
	}
	xb.WriteString("</container>\n")
	respondListing(w, r, ser, xb.Bytes(), out)
}

// sharingValue renders X-Object-Sharing: "read=a,b; write=c".
func sharingValue(p *store.Permissions) string {
	var parts []string
	if len(p.Read) > 0 {
		parts = append(parts, "read="+strings.Join(p.Read, ","))
	}
	if len(p.Write) > 0 {
		parts = append(parts, "write="+strings.Join(p.Write, ","))
	}
	return strings.Join(parts, "; ")
}
