package pithos

import (
	"bytes"
	"errors"
	"fmt"
	"html"
	"io"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/imagesync/imagesync/internal/sandbox/astakos"
	"github.com/imagesync/imagesync/internal/sandbox/store"
	"github.com/imagesync/imagesync/internal/sandbox/wire"
)

// maxUploadSize is MAX_UPLOAD_SIZE of pithos/api/util.py: the most a single
// request body may carry.
const maxUploadSize = 5 << 30

// ObjectStore serves the object-store API; rest is the path after
// /object-store/v1.
func (s *Handler) ObjectStore(w http.ResponseWriter, r *http.Request, rest string) {
	if rest != "" && !strings.HasPrefix(rest, "/") {
		wire.EndpointNotFound(w, r)
		return
	}
	p := strings.TrimPrefix(rest, "/")
	if p == "" {
		s.pithosTop(w, r)
		return
	}
	acct, after, _ := strings.Cut(p, "/")
	cont, name, _ := strings.Cut(after, "/")
	switch {
	case cont == "":
		s.pithosAccount(w, r, acct)
	case name == "":
		s.pithosContainer(w, r, acct, cont)
	default:
		s.pithosObject(w, r, acct, cont, name)
	}
}

// serializations of Pithos views: listings default to text, the rest to json.
var (
	serListing = []string{"text", "xml", "json"}
	serDefault = []string{"json", "xml"}
)

// serialization is snf_django get_serialization plus the fallback of
// api_method: ?format, a .json/.xml path, Accept, then the default.
func serialization(r *http.Request, formatAllowed bool, allowed []string) string {
	ser := "text"
	if formatAllowed {
		ser = ""
		switch r.URL.Query().Get("format") {
		case "json":
			ser = "json"
		case "xml":
			ser = "xml"
		}
		if ser == "" {
			switch {
			case strings.HasSuffix(r.URL.Path, ".json"):
				ser = "json"
			case strings.HasSuffix(r.URL.Path, ".xml"):
				ser = "xml"
			}
		}
		if ser == "" {
			for _, item := range strings.Split(r.Header.Get("Accept"), ",") {
				a, _, _ := strings.Cut(strings.TrimSpace(item), ";")
				if a == "application/json" {
					ser = "json"
					break
				} else if a == "application/xml" {
					ser = "xml"
					break
				}
			}
		}
		if ser == "" {
			ser = allowed[0]
		}
	}
	for _, a := range allowed {
		if a == ser {
			return ser
		}
	}
	return allowed[0]
}

func contentTypeFor(ser string) string {
	switch ser {
	case "xml":
		return wire.XMLType
	case "text":
		return wire.TextType
	}
	return wire.JSONType
}

// pfault renders a fault the way a Pithos view does: the body is XML for the
// xml serialisation and JSON otherwise, and the Content-Type follows the
// serialisation (so a text listing's 404 is JSON labelled text/plain).
func pfault(w http.ResponseWriter, r *http.Request, ser string, code int, name, message, details string) {
	var body []byte
	if ser == "xml" {
		body = fmt.Appendf(nil, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<%s code=\"%d\">\n  <message>%s</message>\n  <details>%s</details>\n</%s>\n",
			name, code, html.EscapeString(message), html.EscapeString(details), name)
	} else {
		body = wire.PyJSON(wire.Ordered{{name, wire.Ordered{{"code", code}, {"message", message}, {"details", details}}}})
	}
	respond(w, r, code, contentTypeFor(ser), body)
}

// respond sends a complete answer with the never-cache headers.
func respond(w http.ResponseWriter, r *http.Request, code int, contentType string, body []byte) {
	h := w.Header()
	wire.SetCommonHeaders(h)
	if contentType != "" {
		h["Content-Type"] = []string{contentType}
	}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(code)
	if r.Method != http.MethodHead && len(body) > 0 {
		_, _ = w.Write(body)
	}
}

// fail maps a store error to its Pithos fault.
func (s *Handler) fail(w http.ResponseWriter, r *http.Request, ser string, err error) {
	var (
		nf  *store.ErrNotFound
		fb  *store.ErrForbidden
		le  *store.ErrLimitExceeded
		br  *store.ErrBadRequest
		cf  *store.ErrConflict
		q   *store.ErrQuota
		aq  *store.ErrAccountQuota
		hdr *headerError
	)
	switch {
	case errors.As(err, &hdr):
		pfault(w, r, ser, hdr.code, hdr.name, hdr.msg, "")
	case errors.As(err, &nf):
		pfault(w, r, ser, http.StatusNotFound, wire.FaultNotFound, nf.Msg, "")
	case errors.As(err, &fb):
		pfault(w, r, ser, http.StatusForbidden, wire.FaultForbidden, fb.Msg, "")
	case errors.As(err, &le):
		pfault(w, r, ser, http.StatusBadRequest, wire.FaultBadRequest, le.Msg, "")
	case errors.As(err, &br):
		pfault(w, r, ser, http.StatusBadRequest, wire.FaultBadRequest, br.Msg, "")
	case errors.As(err, &cf):
		pfault(w, r, ser, http.StatusConflict, wire.FaultConflict, cf.Msg, "")
	case errors.As(err, &q):
		pfault(w, r, ser, http.StatusRequestEntityTooLarge, wire.FaultTooLarge, "Quota error: "+q.Error(), "")
	case errors.As(err, &aq):
		pfault(w, r, ser, http.StatusRequestEntityTooLarge, wire.FaultGeneric, "Resource Limit Exceeded for your account.", aq.Error())
	default:
		pfault(w, r, ser, http.StatusInternalServerError, wire.FaultInternal, "Unexpected error", "")
	}
}

// headerError is a request problem found while reading headers or the body.
type headerError struct {
	code      int
	name, msg string
}

func (e *headerError) Error() string { return e.msg }

func badRequest(msg string) error {
	return &headerError{code: http.StatusBadRequest, name: wire.FaultBadRequest, msg: msg}
}

func lengthRequired(msg string) error {
	return &headerError{code: http.StatusLengthRequired, name: wire.FaultLengthRequired, msg: msg}
}

// ---- request headers ----

// decodeRequestHeaders is update_request_headers: header values must be
// ASCII, and percent-encoded ones are unquoted and must decode as UTF-8.
// Content-Type and Content-Length are not HTTP_* keys in WSGI and stay as sent.
func decodeRequestHeaders(r *http.Request) error {
	renamed := map[string][]string{}
	for k, vals := range r.Header {
		if k == "Content-Type" || k == "Content-Length" {
			continue
		}
		for i, v := range vals {
			for j := 0; j < len(v); j++ {
				if v[j] >= 0x80 {
					return badRequest("Bad character in headers.")
				}
			}
			if strings.Contains(v, "%") {
				u := wire.Unquote(v)
				if !utf8.ValidString(u) {
					return badRequest("Bad character in headers.")
				}
				vals[i] = u
			}
		}
		if strings.Contains(k, "%") {
			u := wire.Unquote(k)
			if !utf8.ValidString(u) {
				return badRequest("Bad character in headers.")
			}
			renamed[k] = nil
			renamed[u] = vals
		}
	}
	for k, vals := range renamed {
		if vals == nil {
			delete(r.Header, k)
		}
	}
	for k, vals := range renamed {
		if vals != nil {
			r.Header[k] = vals
		}
	}
	return nil
}

// header returns a request header (several values joined by ",") and
// whether it was sent at all.
func header(r *http.Request, name string) (string, bool) {
	vals, ok := r.Header[http.CanonicalHeaderKey(name)]
	if !ok {
		return "", false
	}
	return strings.Join(vals, ","), true
}

// formatHeaderKey is format_header_key: underscores become dashes and each
// dash-separated part is capitalised (first letter upper, rest lower).
func formatHeaderKey(k string) string {
	parts := strings.Split(strings.ReplaceAll(k, "_", "-"), "-")
	for i, p := range parts {
		if p == "" {
			continue
		}
		r, n := utf8.DecodeRuneInString(p)
		parts[i] = strings.ToUpper(string(r)) + strings.ToLower(p[n:])
	}
	return strings.Join(parts, "-")
}

// headerPrefix is get_header_prefix: every header under prefix, keyed by its
// formatted name, with '~' removed from values.
func headerPrefix(r *http.Request, prefix string) map[string]string {
	out := map[string]string{}
	up := strings.ToUpper(strings.ReplaceAll(prefix, "-", "_"))
	for k, vals := range r.Header {
		wk := strings.ToUpper(strings.ReplaceAll(k, "-", "_"))
		if strings.HasPrefix(wk, up) && len(wk) > len(up) {
			out[formatHeaderKey(wk)] = strings.ReplaceAll(strings.Join(vals, ","), "~", "")
		}
	}
	return out
}

// checkMetaHeaders is check_meta_headers.
func checkMetaHeaders(meta map[string]string) error {
	if len(meta) > 90 {
		return badRequest("Too many headers.")
	}
	for k, v := range meta {
		if utf8.RuneCountInString(k) > 128 {
			return badRequest("Header name too large.")
		}
		if utf8.RuneCountInString(v) > 256 {
			return badRequest("Header value too large.")
		}
	}
	return nil
}

// untilParam is ?until as object_list, container_meta, account_meta and
// the DELETE views read it: get_int_parameter(request.GET.get('until')),
// a non-negative integer of seconds; anything else (absent, empty,
// negative, not a number) is no until at all.
func untilParam(r *http.Request) store.Until {
	vals := r.URL.Query()["until"]
	if len(vals) == 0 {
		return store.Until{}
	}
	// Django's QueryDict.get is the last value.
	v := strings.TrimSpace(vals[len(vals)-1])
	n, err := strconv.ParseInt(v, 10, 64)
	if errors.Is(err, strconv.ErrRange) && !strings.HasPrefix(v, "-") {
		// Python's int has no range: later than any version.
		return store.Until{Set: true, Unix: math.MaxInt64}
	}
	if err != nil || n < 0 {
		return store.Until{}
	}
	return store.Until{Set: true, Unix: n}
}

// getIntParameter is get_int_parameter: a non-negative integer or nothing.
func getIntParameter(s string, present bool) (int64, bool) {
	if !present {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// contentLength is get_content_length (411 when missing or invalid), or -1
// for a chunked body.
func contentLength(r *http.Request) (int64, error) {
	if isChunked(r) {
		return -1, nil
	}
	v, ok := header(r, "Content-Length")
	if !ok && r.ContentLength >= 0 {
		v, ok = strconv.FormatInt(r.ContentLength, 10), true
	}
	n, valid := getIntParameter(v, ok)
	if !valid {
		return 0, lengthRequired("Missing or invalid Content-Length header")
	}
	return n, nil
}

func isChunked(r *http.Request) bool {
	return len(r.TransferEncoding) > 0 && r.TransferEncoding[0] == "chunked"
}

// blockReader reads a request body block by block (socket_read_iterator):
// each chunk is block-size bytes except the last.
type blockReader struct {
	body      io.Reader
	remaining int64 // -1: chunked, read to EOF
	total     int64
	buf       []byte
}

func newBlockReader(r *http.Request, length int64, blockSize int) (*blockReader, error) {
	if length > maxUploadSize {
		return nil, badRequest("Maximum size is reached")
	}
	// A small body (most block POSTs of small images) gets a buffer of its
	// own size: zeroing a whole block for each would cost more than the
	// request itself.
	size := blockSize
	if length >= 0 && length < int64(size) {
		size = max(int(length), 1)
	}
	return &blockReader{body: r.Body, remaining: length, buf: make([]byte, size)}, nil
}

// next returns the next chunk (valid until the following call), or io.EOF.
func (b *blockReader) next() ([]byte, error) {
	want := len(b.buf)
	if b.remaining >= 0 {
		if b.remaining == 0 {
			return nil, io.EOF
		}
		want = int(min(int64(want), b.remaining))
	}
	n, err := io.ReadFull(b.body, b.buf[:want])
	b.total += int64(n)
	if b.remaining >= 0 {
		if err != nil {
			return nil, badRequest("")
		}
		b.remaining -= int64(n)
		return b.buf[:n], nil
	}
	if b.total > maxUploadSize {
		return nil, badRequest("Maximum size is reached")
	}
	if n > 0 && (err == nil || errors.Is(err, io.ErrUnexpectedEOF)) {
		return b.buf[:n], nil
	}
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, io.EOF
	}
	return nil, badRequest("")
}

// ---- response headers ----

// pithosQuoteSafe are the characters Pithos leaves unquoted in header values
// (quote(v, safe='/=,:@; "')), on top of Python 2's always-safe set.
const pithosQuoteSafe = "/=,:@; \""

// setHeader sets a response header with its exact Synnefo spelling, quoting
// the value as update_response_headers does for X-Account-/X-Container-/
// X-Object-/Content- headers.
func setHeader(h http.Header, k, v string) {
	if strings.HasPrefix(k, "X-Account-") || strings.HasPrefix(k, "X-Container-") ||
		strings.HasPrefix(k, "X-Object-") || strings.HasPrefix(k, "Content-") {
		v = wire.Quote(v, pithosQuoteSafe)
		k = wire.Quote(k, pithosQuoteSafe)
	}
	h[k] = []string{v}
}

func httpDate(us int64) string {
	return time.Unix(us/1e6, 0).UTC().Format(http.TimeFormat)
}

// isoformat is utils.isoformat(datetime.fromtimestamp(t)): microseconds only
// when non-zero, and a +00:00 label. The sandbox runs its clock in UTC.
func isoformat(us int64) string {
	t := time.UnixMicro(us).UTC()
	if t.Nanosecond() == 0 {
		return t.Format("2006-01-02T15:04:05") + "+00:00"
	}
	return t.Format("2006-01-02T15:04:05.000000") + "+00:00"
}

// ---- preconditions ----

// parseHTTPDate is parse_http_date_safe: RFC1123, RFC850 or asctime.
func parseHTTPDate(s string) (int64, bool) {
	t, err := http.ParseTime(s)
	if err != nil {
		return 0, false
	}
	return t.Unix(), true
}

// checkModified is validate_modification_preconditions (modified in µs).
func checkModified(r *http.Request, modified int64) (int, string) {
	m := modified / 1e6
	if v, ok := header(r, "If-Modified-Since"); ok {
		if since, ok := parseHTTPDate(v); ok && m <= since {
			return http.StatusNotModified, "Resource has not been modified"
		}
	}
	if v, ok := header(r, "If-Unmodified-Since"); ok {
		if since, ok := parseHTTPDate(v); ok && m > since {
			return http.StatusPreconditionFailed, "Resource has been modified"
		}
	}
	return 0, ""
}

// parseEtags is django.utils.http.parse_etags: a comma list of possibly
// quoted etags.
func parseEtags(s string) []string {
	s = strings.TrimSpace(s)
	if s == "*" {
		return []string{"*"}
	}
	var out []string
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		part = strings.TrimPrefix(part, "W/")
		if len(part) >= 2 && part[0] == '"' && part[len(part)-1] == '"' {
			part = strings.ReplaceAll(part[1:len(part)-1], `\"`, `"`)
		}
		if part != "" {
			out = append(out, part)
		}
	}
	return out
}

func etagIn(etag, list string) bool {
	for _, e := range parseEtags(list) {
		if strings.ToLower(e) == etag {
			return true
		}
	}
	return false
}

// checkMatching is validate_matching_preconditions; etag is "" when the
// object does not exist. It returns 412, 304 (GET/HEAD) or 0.
func checkMatching(r *http.Request, etag string, exists bool) (int, string) {
	if v, ok := header(r, "If-Match"); ok {
		if !exists {
			return http.StatusPreconditionFailed, "Resource does not exist"
		}
		if v != "*" && !etagIn(etag, v) {
			return http.StatusPreconditionFailed, "Resource ETag does not match"
		}
	}
	if v, ok := header(r, "If-None-Match"); ok && exists {
		if v == "*" || etagIn(etag, v) {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				return http.StatusNotModified, "Resource ETag matches"
			}
			return http.StatusPreconditionFailed, "Resource exists or ETag matches"
		}
	}
	return 0, ""
}

// ---- top level and account ----

// pithosTop is top_demux: GET / without a token is the legacy authenticate
// call, with a token the list of accounts sharing something with the user.
func (s *Handler) pithosTop(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		wire.NotAllowed(w, r, http.MethodGet)
		return
	}
	_, inQuery := r.URL.Query()["X-Auth-Token"]
	_, inHeader := header(r, "X-Auth-Token")
	if !inQuery && !inHeader {
		user := r.Header.Get("X-Auth-User")
		key := r.Header.Get("X-Auth-Key")
		if user == "" || key == "" {
			pfault(w, r, "json", http.StatusBadRequest, wire.FaultBadRequest, "Missing X-Auth-User or X-Auth-Key header", "")
			return
		}
		uri := wire.BaseURL(r) + r.URL.Path
		if !strings.HasSuffix(uri, "/") {
			uri += "/"
		}
		w.Header()["X-Auth-Token"] = []string{key}
		w.Header()["X-Storage-Url"] = []string{uri + user}
		respond(w, r, http.StatusNoContent, wire.JSONType, nil)
		return
	}
	ser := serialization(r, true, serListing)
	u, ok := s.users.Authenticate(w, r)
	if !ok {
		return
	}
	accts, err := s.store.ListAccounts(u.UUID)
	if err != nil {
		s.fail(w, r, ser, err)
		return
	}
	if ser == "text" {
		respondNames(w, r, accts)
		return
	}
	items := make([]any, 0, len(accts))
	var xb bytes.Buffer
	xb.WriteString("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<accounts>\n")
	for _, a := range accts {
		info, err := s.store.Account(u.UUID, a, store.Until{})
		if err != nil {
			continue
		}
		items = append(items, map[string]any{"name": a, "last_modified": isoformat(info.Mtime)})
		fmt.Fprintf(&xb, "  <account>\n    <name>%s</name>\n    <last_modified>%s</last_modified>\n  </account>\n", html.EscapeString(a), isoformat(info.Mtime))
	}
	xb.WriteString("</accounts>\n")
	respondListing(w, r, ser, xb.Bytes(), items)
}

// respondNames answers a text listing: a name a line, or 204 for none.
func respondNames(w http.ResponseWriter, r *http.Request, names []string) {
	if len(names) == 0 {
		respond(w, r, http.StatusNoContent, wire.TextType, nil)
		return
	}
	respond(w, r, http.StatusOK, wire.TextType, []byte(strings.Join(names, "\n")+"\n"))
}

// respondListing answers a JSON or XML listing (ser), both built side by
// side by the view.
func respondListing(w http.ResponseWriter, r *http.Request, ser string, xml []byte, items []any) {
	if ser == "xml" {
		respond(w, r, http.StatusOK, wire.XMLType, xml)
		return
	}
	respond(w, r, http.StatusOK, wire.JSONType, wire.PyJSON(items))
}

// pithosBegin runs what every Pithos view does first: the serialisation, the
// token check, the name size limits and header decoding.
func (s *Handler) pithosBegin(w http.ResponseWriter, r *http.Request, ser, cont, name string) (astakos.User, bool) {
	u, ok := s.users.Authenticate(w, r)
	if !ok {
		return astakos.User{}, false
	}
	if utf8.RuneCountInString(cont) > 256 {
		pfault(w, r, ser, http.StatusBadRequest, wire.FaultBadRequest, "Container name too large", "")
		return astakos.User{}, false
	}
	if utf8.RuneCountInString(name) > 1024 {
		pfault(w, r, ser, http.StatusBadRequest, wire.FaultBadRequest, "Object name too large.", "")
		return astakos.User{}, false
	}
	if err := decodeRequestHeaders(r); err != nil {
		s.fail(w, r, ser, err)
		return astakos.User{}, false
	}
	return u, true
}

// validNames refuses the NUL byte, which the store uses as a separator.
func validNames(names ...string) bool {
	for _, n := range names {
		if strings.Contains(n, "\x00") {
			return false
		}
	}
	return true
}

func (s *Handler) pithosAccount(w http.ResponseWriter, r *http.Request, acct string) {
	if !validNames(acct) {
		wire.EndpointNotFound(w, r)
		return
	}
	switch r.Method {
	case http.MethodHead:
		s.accountHead(w, r, acct)
	case http.MethodPost:
		s.accountPost(w, r, acct)
	case http.MethodGet:
		s.accountGet(w, r, acct)
	default:
		wire.NotAllowed(w, r, "HEAD", "POST", "GET")
	}
}

func (s *Handler) putAccountHeaders(h http.Header, info *store.AccountInfo) {
	if info.Owner {
		setHeader(h, "X-Account-Container-Count", strconv.FormatInt(info.Containers, 10))
		setHeader(h, "X-Account-Bytes-Used", strconv.FormatInt(info.Bytes, 10))
	}
	h["Last-Modified"] = []string{httpDate(info.Mtime)}
	for k, v := range info.Meta {
		setHeader(h, k, v)
	}
	if info.HasUntil {
		setHeader(h, "X-Account-Until-Timestamp", httpDate(info.Until))
	}
	for k, v := range info.Groups {
		setHeader(h, formatHeaderKey("X-Account-Group-"+k), strings.Join(v, ","))
	}
	if info.Owner {
		// The quota comes from Astakos: the total, and one entry per project
		// (the user's base project, named after the account).
		q := strconv.FormatInt(s.quota, 10)
		setHeader(h, "X-Account-Policy-Quota", q)
		setHeader(h, formatHeaderKey("X-Account-Policy-Quota-"+info.Name), q)
	}
}

func (s *Handler) accountHead(w http.ResponseWriter, r *http.Request, acct string) {
	ser := "json"
	u, ok := s.pithosBegin(w, r, ser, "", "")
	if !ok {
		return
	}
	info, err := s.store.Account(u.UUID, acct, untilParam(r))
	if err != nil {
		s.fail(w, r, ser, err)
		return
	}
	if code, msg := checkModified(r, info.Mtime); code != 0 {
		pfault(w, r, ser, code, preconditionFault(code), msg, "")
		return
	}
	s.putAccountHeaders(w.Header(), info)
	respond(w, r, http.StatusNoContent, wire.JSONType, nil)
}

func preconditionFault(code int) string {
	if code == http.StatusNotModified {
		return "notModified"
	}
	return wire.FaultPreconditionFailed
}

func (s *Handler) accountPost(w http.ResponseWriter, r *http.Request, acct string) {
	ser := "json"
	u, ok := s.pithosBegin(w, r, ser, "", "")
	if !ok {
		return
	}
	meta := headerPrefix(r, "X-Account-Meta-")
	if err := checkMetaHeaders(meta); err != nil {
		s.fail(w, r, ser, err)
		return
	}
	groups := map[string][]string{}
	for k, v := range headerPrefix(r, "X-Account-Group-") {
		n := strings.ToLower(k[len("X-Account-Group-"):])
		if strings.ContainsAny(n, "-_") {
			s.fail(w, r, ser, badRequest("Bad characters in group name"))
			return
		}
		set := map[string]bool{}
		for _, m := range strings.Split(strings.ReplaceAll(v, " ", ""), ",") {
			if m != "" {
				set[m] = true
			}
		}
		members := make([]string, 0, len(set))
		for m := range set {
			members = append(members, m)
		}
		sort.Strings(members)
		groups[n] = members
	}
	if err := s.checkGroupMembers(groups); err != nil {
		s.fail(w, r, ser, err)
		return
	}
	_, update := r.URL.Query()["update"]
	if err := s.store.UpdateAccount(u.UUID, acct, meta, groups, !update); err != nil {
		s.fail(w, r, ser, err)
		return
	}
	respond(w, r, http.StatusAccepted, wire.JSONType, nil)
}

// checkGroupMembers resolves group members through Astakos as
// account_update does before any change: with PITHOS_TRANSLATE_UUIDS off
// (the default) members are uuids, retrieve_displaynames(...,
// fail_silently=False) asks Astakos' user catalog for their names, and
// uuids it does not know fail the request: ItemNotExists('Unknown
// displaynames: <uuids>') becomes a 400 with that message.
func (s *Handler) checkGroupMembers(groups map[string][]string) error {
	names := make([]string, 0, len(groups))
	for n := range groups {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		var missing []string
		for _, m := range groups[n] {
			if _, ok := s.users.ByUUID(m); !ok {
				missing = append(missing, m)
			}
		}
		if len(missing) > 0 {
			return badRequest("Unknown displaynames: " + strings.Join(missing, ", "))
		}
	}
	return nil
}

func (s *Handler) accountGet(w http.ResponseWriter, r *http.Request, acct string) {
	ser := serialization(r, true, serListing)
	u, ok := s.pithosBegin(w, r, ser, "", "")
	if !ok {
		return
	}
	until := untilParam(r)
	info, err := s.store.Account(u.UUID, acct, until)
	if err != nil {
		s.fail(w, r, ser, err)
		return
	}
	if code, msg := checkModified(r, info.Mtime); code != 0 {
		pfault(w, r, ser, code, preconditionFault(code), msg, "")
		return
	}
	s.putAccountHeaders(w.Header(), info)
	q := r.URL.Query()
	limit := listLimitParam(q)
	_, shared := q["shared"]
	_, public := q["public"]
	if public && u.UUID != acct {
		pfault(w, r, ser, http.StatusForbidden, wire.FaultForbidden, "PUblic container listing is not allowed to non path owners", "")
		return
	}
	names, err := s.store.ListContainers(u.UUID, acct, q.Get("marker"), limit, shared, public && u.UUID == acct, until)
	if err != nil {
		s.fail(w, r, ser, err)
		return
	}
	if ser == "text" {
		respondNames(w, r, names)
		return
	}
	items := make([]any, 0, len(names))
	var xb bytes.Buffer
	fmt.Fprintf(&xb, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<account name=\"%s\">\n", html.EscapeString(acct))
	for _, n := range names {
		ci, err := s.store.Container(u.UUID, acct, n, false, until)
		if err != nil {
			continue
		}
		item := map[string]any{"name": n, "last_modified": isoformat(ci.Mtime)}
		if ci.HasUntil {
			item["x_container_until_timestamp"] = isoformat(ci.Until)
		}
		if ci.Owner {
			item["count"] = ci.Count
			item["bytes"] = ci.Bytes
			item["x_container_policy"] = map[string]any{
				"quota": strconv.FormatInt(ci.Quota, 10), "versioning": ci.Versioning, "project": ci.Project,
			}
		}
		items = append(items, item)
		xb.WriteString("  <container>\n")
		writeXMLFields(&xb, item)
		xb.WriteString("  </container>\n")
	}
	xb.WriteString("</account>\n")
	respondListing(w, r, ser, xb.Bytes(), items)
}

// writeXMLFields renders a listing item like the Pithos templates do: one
// element per key, dicts as <key>/<value> pairs.
func writeXMLFields(xb *bytes.Buffer, item map[string]any) {
	keys := make([]string, 0, len(item))
	for k := range item {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch v := item[k].(type) {
		case map[string]any:
			fmt.Fprintf(xb, "    <%s>", k)
			sub := make([]string, 0, len(v))
			for sk := range v {
				sub = append(sub, sk)
			}
			sort.Strings(sub)
			for _, sk := range sub {
				fmt.Fprintf(xb, "<key>%s</key><value>%s</value>", html.EscapeString(sk), html.EscapeString(fmt.Sprint(v[sk])))
			}
			fmt.Fprintf(xb, "</%s>\n", k)
		case nil:
			fmt.Fprintf(xb, "    <%s>None</%s>\n", k, k)
		default:
			fmt.Fprintf(xb, "    <%s>%s</%s>\n", k, html.EscapeString(fmt.Sprint(v)), k)
		}
	}
}

// listLimitParam is the listing limit: invalid or 0 means API_LIST_LIMIT,
// and nothing goes past it.
func listLimitParam(q url.Values) int {
	_, present := q["limit"]
	n, ok := getIntParameter(q.Get("limit"), present)
	if !ok || n == 0 || n > store.ListLimit {
		return store.ListLimit
	}
	return int(n)
}
