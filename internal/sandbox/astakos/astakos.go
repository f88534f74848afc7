package astakos

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/imagesync/imagesync/internal/sandbox/wire"
)

// tokenLifetime mirrors ASTAKOS_AUTH_TOKEN_DURATION's default (30 days): the
// sandbox never expires tokens on its own, but the catalog reply carries an
// expiry like the real one.
const tokenLifetime = 30 * 24 * time.Hour

// Identity routes, as keystone_urls.py matches the path after "identity/".
var (
	reIdentityVersion = regexp.MustCompile(`^v2.0(?:/)?(?:.json)?$`)
	reValidateToken   = regexp.MustCompile(`^v2.0/tokens/(.+?)/?$`)
	reTokens          = regexp.MustCompile(`^v2.0/tokens/?$`)
	reQuotas          = regexp.MustCompile(`^quotas/?$`)
	reResources       = regexp.MustCompile(`^resources/?$`)
	reUserCatalogs    = regexp.MustCompile(`^user_catalogs/?$`)
)

func (s *Handler) serveIdentity(w http.ResponseWriter, r *http.Request, rest string) {
	p := "v2.0" + rest
	ser := identSerialization(r)
	switch {
	case reIdentityVersion.MatchString(p):
		if r.Method != http.MethodGet {
			astakosFault(w, r, ser, http.StatusMethodNotAllowed, wire.FaultNotAllowed, "Method not allowed", "", http.MethodGet)
			return
		}
		wire.WriteJSON(w, http.StatusOK, wire.Ordered{{"version", identityVersion(wire.BaseURL(r))}})
	case reValidateToken.MatchString(p):
		// Only OAuth2 access tokens are validated here, and the sandbox
		// issues none: the real lookup fails with OA2Error "No such token".
		if r.Method != http.MethodGet {
			astakosFault(w, r, ser, http.StatusMethodNotAllowed, wire.FaultNotAllowed, "Method not allowed", "", http.MethodGet)
			return
		}
		astakosFault(w, r, ser, http.StatusNotFound, wire.FaultNotFound, "No such token", "")
	case reTokens.MatchString(p):
		s.serveTokens(w, r, ser)
	default:
		astakosFault(w, r, ser, http.StatusBadRequest, wire.FaultBadRequest, "API endpoint not found", "")
	}
}

func identityVersion(base string) wire.Ordered {
	return wire.Ordered{
		{"id", "v2.0"},
		{"status", "CURRENT"},
		{"updated", "2014-04-17T00:00:00Z"},
		{"links", []any{
			wire.Ordered{{"rel", "self"}, {"href", base + "/identity/v2.0/"}},
			wire.Ordered{{"rel", "describedby"}, {"type", "text/html"}, {"href", "https://docs.openstack.org/"}},
		}},
		{"media_types", []any{
			wire.Ordered{{"base", "application/json"}, {"type", "application/vnd.openstack.identity-v2.0+json"}},
		}},
	}
}

// errPyKey and errPyType are what indexing a decoded JSON document raises in
// Python: KeyError for a missing key of a dict, TypeError for indexing
// anything else. tokens.py only catches KeyError, so the two lead to a 400
// and a 500.
var (
	errPyKey  = errors.New("KeyError")
	errPyType = errors.New("TypeError")
)

func pyIndex(v any, keys ...string) (any, error) {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, errPyType
		}
		if v, ok = m[k]; !ok {
			return nil, errPyKey
		}
	}
	return v, nil
}

// pyTruthy is Python's bool() of a decoded JSON value.
func pyTruthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case string:
		return x != ""
	case json.Number:
		f, err := x.Float64()
		return err != nil || f != 0
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	}
	return true
}

func (s *Handler) serveTokens(w http.ResponseWriter, r *http.Request, ser string) {
	if r.Method != http.MethodPost {
		astakosFault(w, r, ser, http.StatusMethodNotAllowed, wire.FaultNotAllowed, "Method not allowed", "", http.MethodPost)
		return
	}
	base := wire.BaseURL(r)
	// A missing, zero or unparsable Content-Length is "public mode": the
	// catalog alone, no credentials needed.
	if r.ContentLength <= 0 {
		s.writeAccess(w, r, ser, nil, base)
		return
	}
	req, msg := wire.GetJSONBody(r)
	if msg != "" {
		astakosFault(w, r, ser, http.StatusBadRequest, wire.FaultBadRequest, msg, "")
		return
	}
	var username any
	hasUsername := false
	token, err := pyIndex(req, "auth", "token", "id")
	if errors.Is(err, errPyKey) {
		token, err = pyIndex(req, "auth", "passwordCredentials", "password")
		if err == nil {
			username, err = pyIndex(req, "auth", "passwordCredentials", "username")
			hasUsername = err == nil && username != nil
		}
		if errors.Is(err, errPyKey) {
			astakosFault(w, r, ser, http.StatusBadRequest, wire.FaultBadRequest, "Malformed request: missing credentials", "")
			return
		}
	}
	if err != nil {
		astakosFault(w, r, ser, http.StatusInternalServerError, wire.FaultInternal, "Unexpected error", "")
		return
	}
	tenant, _ := pyIndex(req, "auth", "tenantName")
	if token == nil {
		astakosFault(w, r, ser, http.StatusBadRequest, wire.FaultBadRequest, "Malformed request: missing token", "")
		return
	}
	tok, _ := token.(string)
	u, status := s.users.Lookup(tok)
	switch status {
	case TokenUnknown:
		astakosFault(w, r, ser, http.StatusUnauthorized, wire.FaultUnauthorized, "Invalid token", "")
		return
	case TokenRevoked:
		astakosFault(w, r, ser, http.StatusUnauthorized, wire.FaultUnauthorized, "Authentication expired", "")
		return
	}
	if hasUsername {
		if name, _ := username.(string); name != u.UUID {
			astakosFault(w, r, ser, http.StatusUnauthorized, wire.FaultUnauthorized, "Invalid credentials", "")
			return
		}
	}
	if pyTruthy(tenant) {
		if t, _ := tenant.(string); t != u.UUID {
			astakosFault(w, r, ser, http.StatusBadRequest, wire.FaultBadRequest, "Not conforming tenantName", "")
			return
		}
	}
	s.writeAccess(w, r, ser, &u, base)
}

// pythonISOFormat renders t as datetime.isoformat() with a UTC tzinfo.
func pythonISOFormat(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond()/1000 == 0 {
		return t.Format("2006-01-02T15:04:05") + "+00:00"
	}
	return t.Format("2006-01-02T15:04:05.000000") + "+00:00"
}

// catalogService is one serviceCatalog entry.
type catalogService struct {
	name, typ, version, url, uiURL string
	exposeVersion                  bool
}

// serviceCatalog lists the services the sandbox serves, published as a
// deployment registers them (snf-service-export): endpoint data are stored as
// strings, so SNF:exposeVersion is "True"/"False"; the image endpoint has no
// version suffix.
func serviceCatalog(base string) []catalogService {
	return []catalogService{
		{"pithos_object-store", "object-store", "v1", base + "/object-store/v1", base + "/pithos/ui", true},
		{"cyclades_plankton", "image", "v1.0", base + "/image", base + "/cyclades/ui", false},
		{"astakos_account", "account", "v1.0", base + "/account/v1.0", base + "/astakos/ui", true},
		{"astakos_identity", "identity", "v2.0", base + "/identity/v2.0", base + "/astakos/ui", true},
	}
}

func (c catalogService) endpoint() wire.Ordered {
	return wire.Ordered{
		{"versionId", c.version},
		{"publicURL", c.url},
		{"SNF:exposeVersion", wire.PyBool(c.exposeVersion)},
		{"SNF:uiURL", c.uiURL},
		{"region", "default"},
	}
}

// writeAccess sends the tokens reply; u nil is public mode (catalog only).
func (s *Handler) writeAccess(w http.ResponseWriter, r *http.Request, ser string, u *User, base string) {
	catalog := serviceCatalog(base)
	expires := pythonISOFormat(time.Now().Add(tokenLifetime))
	if ser == "xml" {
		writeAccessXML(w, u, expires, catalog)
		return
	}
	var access wire.Ordered
	if u != nil {
		access = append(access,
			wire.KV{"token", wire.Ordered{
				{"id", u.Token},
				{"expires", expires},
				{"tenant", wire.Ordered{{"id", u.UUID}, {"name", u.Name}}},
			}},
			wire.KV{"user", wire.Ordered{
				{"id", u.UUID},
				{"name", u.Name},
				{"roles", []any{}},
				{"roles_links", []any{}},
				// Every user is a member of its base project, whose uuid is
				// the user's uuid.
				{"projects", []string{u.UUID}},
			}})
	}
	services := make([]any, 0, len(catalog))
	for _, c := range catalog {
		services = append(services, wire.Ordered{
			{"name", c.name},
			{"type", c.typ},
			{"endpoints", []any{c.endpoint()}},
			{"endpoints_links", []any{}},
		})
	}
	access = append(access, wire.KV{"serviceCatalog", services})
	wire.WriteJSON(w, http.StatusOK, wire.Ordered{{"access", access}})
}

// djangoEscape is Django's template auto-escaping.
func djangoEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&#39;").Replace(s)
}

// writeAccessXML renders astakos' api/access.xml template.
func writeAccessXML(w http.ResponseWriter, u *User, expires string, catalog []catalogService) {
	var b strings.Builder
	b.WriteString("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
	b.WriteString("<access xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"\n    xmlns=\"http://docs.openstack.org/identity/api/v2.0\">\n")
	if u != nil {
		fmt.Fprintf(&b, "    <token id=\"%s\" expires=\"%s\">\n", djangoEscape(u.Token), djangoEscape(expires))
		fmt.Fprintf(&b, "        <tenant id=\"%s\" name=\"%s\" />\n    </token>\n", djangoEscape(u.UUID), djangoEscape(u.Name))
		fmt.Fprintf(&b, "    <user id=\"%s\" name=\"%s\">\n        <roles>\n        </roles>\n    </user>\n", djangoEscape(u.UUID), djangoEscape(u.Name))
	}
	b.WriteString("    <serviceCatalog>\n")
	for _, c := range catalog {
		fmt.Fprintf(&b, "        <service type=\"%s\" name=\"%s\">\n            <endpoint ", djangoEscape(c.typ), djangoEscape(c.name))
		for _, e := range c.endpoint() {
			fmt.Fprintf(&b, " %s=\"%s\" ", e[0], djangoEscape(e[1].(string)))
		}
		b.WriteString(" />\n        </service>\n")
	}
	b.WriteString("    </serviceCatalog>\n</access>\n")
	writeAstakosBody(w, http.StatusOK, wire.XMLType, []byte(b.String()))
}

func writeAstakosBody(w http.ResponseWriter, status int, ct string, body []byte) {
	wire.SetCommonHeaders(w.Header())
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// identSerialization is snf_django's get_serialization for views that allow both
// json and xml: ?format=, then a .json/.xml path suffix, then Accept.
func identSerialization(r *http.Request) string {
	switch djangoGET(r, "format") {
	case "json":
		return "json"
	case "xml":
		return "xml"
	}
	switch {
	case strings.HasSuffix(r.URL.Path, ".json"):
		return "json"
	case strings.HasSuffix(r.URL.Path, ".xml"):
		return "xml"
	}
	for _, item := range strings.Split(r.Header.Get("Accept"), ",") {
		accept, _, _ := strings.Cut(strings.TrimSpace(item), ";")
		switch accept {
		case "application/json":
			return "json"
		case "application/xml":
			return "xml"
		}
	}
	return "json"
}

// djangoGET is Django's QueryDict.get: the last value of a repeated key.
func djangoGET(r *http.Request, key string) string {
	v := r.URL.Query()[key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// astakosFault renders a fault in the request's serialization (Astakos'
// fault.xml template for xml).
func astakosFault(w http.ResponseWriter, r *http.Request, ser string, code int, name, message, details string, allow ...string) {
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ","))
	}
	if ser != "xml" {
		wire.WriteFault(w, r, code, name, message, details)
		return
	}
	body := fmt.Sprintf("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<%s xmlns=\"http://docs.openstack.org/identity/api/v2.0\" code=\"%d\">\n  <message>%s</message>\n  <details>%s</details>\n</%s>\n",
		name, code, djangoEscape(message), djangoEscape(details), name)
	wire.SetCommonHeaders(w.Header())
	w.Header().Set("Content-Type", wire.XMLType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		_, _ = io.WriteString(w, body)
	}
}

func (s *Handler) serveAccount(w http.ResponseWriter, r *http.Request, rest string) {
	ser := identSerialization(r)
	p, ok := strings.CutPrefix(rest, "/")
	switch {
	case ok && reQuotas.MatchString(p):
		s.serveQuotas(w, r, ser)
	case ok && reResources.MatchString(p):
		s.serveResources(w, r, ser)
	case ok && reUserCatalogs.MatchString(p):
		s.serveUserCatalogs(w, r, ser)
	default:
		astakosFault(w, r, ser, http.StatusBadRequest, wire.FaultBadRequest, "API endpoint not found", "")
	}
}

// astakosUser authenticates an account API call as Astakos' user_from_token
// does: its own 401 messages, not the relayed ones of Pithos and Cyclades.
func (s *Handler) astakosUser(w http.ResponseWriter, r *http.Request, ser string) (User, bool) {
	token := djangoGET(r, "X-Auth-Token")
	if token == "" {
		token = r.Header.Get("X-Auth-Token")
	}
	if token == "" {
		astakosFault(w, r, ser, http.StatusUnauthorized, wire.FaultUnauthorized, "Access denied. No authentication token", "")
		return User{}, false
	}
	u, status := s.users.Lookup(token)
	switch status {
	case TokenUnknown:
		astakosFault(w, r, ser, http.StatusUnauthorized, wire.FaultUnauthorized, "Invalid X-Auth-Token", "")
		return User{}, false
	case TokenRevoked:
		astakosFault(w, r, ser, http.StatusUnauthorized, wire.FaultUnauthorized, "Authentication expired", "")
		return User{}, false
	}
	return u, true
}

// serveUserCatalogs answers POST user_catalogs (astakos/api/util.py
// get_uuid_displayname_catalogs). Display names are the users' names.
func (s *Handler) serveUserCatalogs(w http.ResponseWriter, r *http.Request, ser string) {
	if r.Method != http.MethodPost {
		astakosFault(w, r, ser, http.StatusMethodNotAllowed, wire.FaultNotAllowed, "Method not allowed", "", http.MethodPost)
		return
	}
	if _, ok := s.astakosUser(w, r, ser); !ok {
		return
	}
	plBadRequest := func(msg string) {
		astakosFault(w, r, ser, http.StatusBadRequest, wire.FaultBadRequest, msg, "")
	}
	// This view parses the body with json.loads directly: no Content-Type
	// check.
	body, err := io.ReadAll(io.LimitReader(r.Body, wire.MaxJSONBody))
	if err != nil {
		plBadRequest("Request body should be json formatted.")
		return
	}
	v, msg := wire.LoadsJSON(body)
	if msg != "" {
		plBadRequest("Request body should be json formatted.")
		return
	}
	in, ok := v.(map[string]any)
	if !ok {
		plBadRequest("Request body should be a json formatted dictionary")
		return
	}
	uuids, ok := in["uuids"]
	if !ok || uuids == nil {
		uuids = []any{}
	}
	names, ok := in["displaynames"]
	if !ok {
		names = []any{}
	}
	nameList, ok := names.([]any)
	if !ok {
		plBadRequest(fmt.Sprintf("Invalid displaynames: %s", pyStrJSON(names)))
		return
	}
	for _, n := range nameList {
		if _, ok := n.(string); !ok {
			plBadRequest("Items in 'displaynames' must be strings")
			return
		}
	}
	wanted, ok := pyIterStrings(uuids)
	if !ok {
		// filter(uuid__in=<number>) raises a TypeError.
		astakosFault(w, r, ser, http.StatusInternalServerError, wire.FaultInternal, "Unexpected error", "")
		return
	}
	uuidCatalog := map[string]any{}
	for _, id := range wanted {
		if u, ok := s.users.ByUUID(id); ok {
			uuidCatalog[u.UUID] = u.Name
		}
	}
	nameCatalog := map[string]any{}
	for _, n := range nameList {
		name := n.(string)
		// Astakos matches usernames (stored lowercase) against the
		// lowercased query and keys the answer by the name as asked.
		for _, u := range s.users.Users() {
			if strings.EqualFold(u.Name, name) {
				nameCatalog[name] = u.UUID
			}
		}
	}
	wire.WriteJSON(w, http.StatusOK, wire.Ordered{{"uuid_catalog", uuidCatalog}, {"displayname_catalog", nameCatalog}})
}

// pyIterStrings is what iterating a JSON value yields, keeping the strings: a
// list's items, a string's characters, a dict's keys. Numbers and booleans are
// not iterable.
func pyIterStrings(v any) ([]string, bool) {
	var out []string
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
	case string:
		for _, r := range x {
			out = append(out, string(r))
		}
	case map[string]any:
		for k := range x {
			out = append(out, k)
		}
	default:
		return nil, false
	}
	return out, true
}

// pyStrJSON approximates Python's str() of a decoded JSON value for messages.
func pyStrJSON(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		return wire.PyBool(x)
	case string:
		return x
	case json.Number:
		return x.String()
	}
	b, _ := json.Marshal(v)
	return string(b)
}
