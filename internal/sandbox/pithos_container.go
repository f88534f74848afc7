package sandbox

import (
	"bytes"
	"fmt"
	"html"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/imagesync/imagesync/internal/hashmap"
)

func (s *Server) pithosContainer(w http.ResponseWriter, r *http.Request, acct, cont string) {
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
		notAllowed(w, r, "HEAD", "PUT", "POST", "DELETE", "GET")
	}
}

// containerBegin is pithosBegin plus the NUL check of the names.
func (s *Server) containerBegin(w http.ResponseWriter, r *http.Request, ser, acct, cont string) (User, bool) {
	u, ok := s.pithosBegin(w, r, ser, cont, "")
	if !ok {
		return User{}, false
	}
	if !validNames(acct, cont) {
		pfault(w, r, ser, http.StatusBadRequest, faultBadRequest, "Bad character in path.", "")
		return User{}, false
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
func putContainerHeaders(h http.Header, ci *ContainerInfo) {
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
	if ci.Owner {
		setHeader(h, "X-Container-Policy-Quota", strconv.FormatInt(ci.Quota, 10))
		setHeader(h, "X-Container-Policy-Versioning", ci.Versioning)
		setHeader(h, "X-Container-Policy-Project", ci.Project)
	}
}

func (s *Server) containerHead(w http.ResponseWriter, r *http.Request, acct, cont string) {
	ser := "json"
	u, ok := s.containerBegin(w, r, ser, acct, cont)
	if !ok {
		return
	}
	ci, err := s.store.containerInfo(u.UUID, acct, cont, true)
	if err != nil {
		s.fail(w, r, ser, err)
		return
	}
	if code, msg := checkModified(r, ci.Mtime); code != 0 {
		pfault(w, r, ser, code, preconditionFault(code), msg, "")
		return
	}
	putContainerHeaders(w.Header(), ci)
	respond(w, r, http.StatusNoContent, ctJSON, nil)
}

func (s *Server) containerPut(w http.ResponseWriter, r *http.Request, acct, cont string) {
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
	created, err := s.store.createContainer(u.UUID, acct, cont, policy, meta)
	if err != nil {
		s.fail(w, r, ser, err)
		return
	}
	status := http.StatusAccepted
	if created {
		status = http.StatusCreated
	}
	respond(w, r, status, ctJSON, nil)
}

// containerPost is container_update: meta and policy, and block upload when
// the body is application/octet-stream.
func (s *Server) containerPost(w http.ResponseWriter, r *http.Request, acct, cont string) {
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
	if err := s.store.updateContainer(u.UUID, acct, cont, policy, meta, !update); err != nil {
		s.fail(w, r, ser, err)
		return
	}
	if !upload {
		respond(w, r, http.StatusAccepted, ctJSON, nil)
		return
	}
	if err := canWriteContainer(u.UUID, acct); err != nil {
		s.fail(w, r, ser, err)
		return
	}
	br, err := newBlockReader(r, length, s.store.containerBlockSize(acct, cont))
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
		h, err := s.store.putBlock(chunk)
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
	return pyJSON(items)
}

func (s *Server) containerDelete(w http.ResponseWriter, r *http.Request, acct, cont string) {
	ser := "json"
	u, ok := s.containerBegin(w, r, ser, acct, cont)
	if !ok {
		return
	}
	if err := s.store.deleteContainer(u.UUID, acct, cont, r.URL.Query().Get("delimiter")); err != nil {
		s.fail(w, r, ser, err)
		return
	}
	respond(w, r, http.StatusNoContent, ctJSON, nil)
}

// filterRe is pithos/backends/filter.py's term syntax.
var filterRe = regexp.MustCompile(`^(!?)\s*(\S+?)\s*(?:(=|!=|<=|>=|<|>)\s*(\S*?)\s*)?$`)

// parseMetaFilter turns ?meta=a,!b,c=d into a filter over X-Object-Meta keys.
func parseMetaFilter(q string) *metaFilter {
	var f metaFilter
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
			f.excluded = append(f.excluded, key)
		case m[3] != "":
			f.opers = append(f.opers, [3]string{key, m[3], m[4]})
		case m[4] == "":
			f.included = append(f.included, key)
		}
	}
	if !any {
		return nil
	}
	return &f
}

// containerGet is object_list.
func (s *Server) containerGet(w http.ResponseWriter, r *http.Request, acct, cont string) {
	ser := serialization(r, true, serListing)
	u, ok := s.containerBegin(w, r, ser, acct, cont)
	if !ok {
		return
	}
	ci, err := s.store.containerInfo(u.UUID, acct, cont, true)
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
	o := listOpts{prefix: q.Get("prefix"), delimiter: q.Get("delimiter"), virtual: true, marker: q.Get("marker")}
	if path := q.Get("path"); path != "" {
		o.prefix, o.delimiter, o.virtual = path, "/", false
	}
	if o.prefix != "" && o.delimiter != "" && !strings.HasSuffix(o.prefix, o.delimiter) {
		o.prefix += o.delimiter
	}
	o.prefix = strings.TrimLeft(o.prefix, "/")
	o.limit = listLimitParam(q)
	if keys := q.Get("meta"); keys != "" {
		o.filters = parseMetaFilter(keys)
	}
	_, o.shared = q["shared"]
	_, public := q["public"]
	if public && u.UUID != acct {
		pfault(w, r, ser, http.StatusForbidden, faultForbidden, "PUblic object listing is not allowed to non path owners", "")
		return
	}
	o.public = public
	items, err := s.store.listObjects(u.UUID, acct, cont, o)
	if err != nil {
		s.fail(w, r, ser, err)
		return
	}
	if ser == "text" {
		if len(items) == 0 {
			respond(w, r, http.StatusNoContent, ctText, nil)
			return
		}
		var b strings.Builder
		for _, it := range items {
			b.WriteString(it.name)
			b.WriteByte('\n')
		}
		respond(w, r, http.StatusOK, ctText, []byte(b.String()))
		return
	}
	out := make([]any, 0, len(items))
	var xb bytes.Buffer
	fmt.Fprintf(&xb, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<container name=\"%s\">\n", html.EscapeString(cont))
	for _, it := range items {
		if it.subdir {
			out = append(out, map[string]any{"subdir": it.name})
			fmt.Fprintf(&xb, "  <subdir name=\"%s\" />\n", html.EscapeString(it.name))
			continue
		}
		v := it.v
		m := map[string]any{
			"name":                       it.name,
			"bytes":                      v.Bytes,
			"content_type":               v.Type,
			"hash":                       v.Checksum,
			"x_object_hash":              v.Hash,
			"x_object_uuid":              v.UUID,
			"x_object_version":           v.Serial,
			"x_object_version_timestamp": fmtTimestamp(v.Mtime),
			"last_modified":              isoformat(v.Mtime),
			"x_object_modified_by":       v.ModifiedBy,
			"available":                  v.Available,
			"map_check_timestamp":        nil,
		}
		if it.perms != nil {
			if sh := sharingValue(it.perms); sh != "" {
				m["x_object_sharing"] = sh
				if it.permsPath != acct+"/"+cont+"/"+it.name {
					m["x_object_shared_by"] = it.permsPath
				}
				if u.UUID != acct {
					m["x_object_allowed_to"] = it.allowed
				}
			}
		}
		if it.public != "" {
			m["x_object_public"] = baseURL(r) + publicPath(it.public)
		}
		out = append(out, m)
		xb.WriteString("  <object>\n")
		writeXMLFields(&xb, m)
		xb.WriteString("  </object>\n")
	}
	xb.WriteString("</container>\n")
	if ser == "xml" {
		respond(w, r, http.StatusOK, ctXML, xb.Bytes())
		return
	}
	respond(w, r, http.StatusOK, ctJSON, pyJSON(out))
}

// sharingValue renders X-Object-Sharing: "read=a,b; write=c".
func sharingValue(p *Permissions) string {
	var parts []string
	if len(p.Read) > 0 {
		parts = append(parts, "read="+strings.Join(p.Read, ","))
	}
	if len(p.Write) > 0 {
		parts = append(parts, "write="+strings.Join(p.Write, ","))
	}
	return strings.Join(parts, "; ")
}
