package sandbox

import (
	"encoding/json"
	"encoding/xml"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/imagesync/imagesync/internal/sandbox/wire"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Users of the Astakos and Plankton tests: two accounts, so that permission
// rules can be checked.
var (
	idAlice = User{Name: "alice", UUID: "a11ce000-0000-4000-8000-000000000001", Token: "alice-token"}
	idBob   = User{Name: "bob", UUID: "b0b00000-0000-4000-8000-000000000002", Token: "bob-token"}
)

// idEnv is a sandbox served on loopback for the Astakos and Plankton tests.
type idEnv struct {
	srv *Server
	url string
}

func newIDEnv(t *testing.T, cfg Config) *idEnv {
	t.Helper()
	if len(cfg.Users) == 0 {
		cfg.Users = []User{idAlice, idBob}
	}
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.BlockSize == 0 {
		cfg.BlockSize = 1024
	}
	srv, err := New(cfg)
	require.NoError(t, err)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		assert.NoError(t, srv.Close())
	})
	return &idEnv{srv: srv, url: hs.URL}
}

// idResp is a reply read in full.
type idResp struct {
	status int
	header http.Header
	body   []byte
}

func (r idResp) json(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	require.NoError(t, json.Unmarshal(r.body, &v), "body %q", r.body)
	return v
}

// fault returns the message of a {"<name>": {"code", "message", "details"}}
// body after checking the name and code.
func (r idResp) fault(t *testing.T, name string) string {
	t.Helper()
	v := r.json(t)
	require.Contains(t, v, name, "body %s", r.body)
	f := v[name].(map[string]any)
	assert.EqualValues(t, r.status, f["code"])
	return f["message"].(string)
}

// do sends a request; header values are set verbatim ("" deletes nothing,
// it sends an empty header).
func (e *idEnv) do(t *testing.T, method, path string, header map[string]string, body string) idResp {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = []string{v}
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return idResp{status: res.StatusCode, header: res.Header, body: b}
}

var idJSONCT = map[string]string{"Content-Type": "application/json"}

func TestTokensMethodNotAllowed(t *testing.T) {
	e := newIDEnv(t, Config{})
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		r := e.do(t, m, "/identity/v2.0/tokens", nil, "")
		require.Equal(t, http.StatusMethodNotAllowed, r.status, m)
		assert.Equal(t, "POST", r.header.Get("Allow"))
		assert.Equal(t, `{"notAllowed": {"code": 405, "message": "Method not allowed", "details": ""}}`, string(r.body))
	}
}

func TestTokensPublicMode(t *testing.T) {
	e := newIDEnv(t, Config{})
	for _, path := range []string{"/identity/v2.0/tokens", "/identity/v2.0/tokens/"} {
		r := e.do(t, http.MethodPost, path, nil, "")
		require.Equal(t, http.StatusOK, r.status)
		assert.True(t, strings.HasPrefix(r.header.Get("Content-Type"), "application/json"))
		access := r.json(t)["access"].(map[string]any)
		assert.NotContains(t, access, "token")
		assert.NotContains(t, access, "user")
		assert.Len(t, access["serviceCatalog"], 4)
	}
}

func TestTokensRequestErrors(t *testing.T) {
	e := newIDEnv(t, Config{})
	a, b := idAlice, idBob
	cases := []struct {
		name    string
		header  map[string]string
		body    string
		status  int
		fault   string
		message string
		prefix  bool
	}{
		{"xml body", map[string]string{"Content-Type": "application/xml"},
			`<pkAuth tenantName="x"><passwordCredentials username="u" password="p"/></pkAuth>`,
			400, wire.FaultBadRequest, "Unsupported Content-type: 'application/xml'", false},
		{"no content type", nil, `{"auth": {"token": {"id": "alice-token"}}}`,
			400, wire.FaultBadRequest, "Missing Content-Type header field", false},
		{"missing password", idJSONCT, `{"auth":{"passwordCredentials":{"username":"` + a.UUID + `"},"tenantName":"` + a.UUID + `"}}`,
			400, wire.FaultBadRequest, "Malformed request", true},
		{"missing username", idJSONCT, `{"auth":{"passwordCredentials":{"password":"` + a.Token + `"},"tenantName":"` + a.UUID + `"}}`,
			400, wire.FaultBadRequest, "Malformed request", true},
		{"invalid password", idJSONCT, `{"auth":{"passwordCredentials":{"username":"` + a.UUID + `","password":""},"tenantName":"` + a.UUID + `"}}`,
			401, wire.FaultUnauthorized, "Invalid token", false},
		{"inconsistent user", idJSONCT, `{"auth":{"passwordCredentials":{"username":"` + a.UUID + `","password":"` + b.Token + `"},"tenantName":"` + b.UUID + `"}}`,
			401, wire.FaultUnauthorized, "Invalid credentials", false},
		{"not json", idJSONCT, "not json", 400, wire.FaultBadRequest, "Could not decode request body as JSON", false},
		{"auth_token key", idJSONCT, `{"auth":{"auth_token":{"id":"` + a.Token + `"},"tenantName":"` + a.UUID + `"}}`,
			400, wire.FaultBadRequest, "Malformed request: missing credentials", false},
		{"null token", idJSONCT, `{"auth":{"token":{"id":null}}}`,
			400, wire.FaultBadRequest, "Malformed request: missing token", false},
		{"inconsistent tenant", idJSONCT, `{"auth":{"token":{"id":"` + a.Token + `"},"tenantName":"` + b.UUID + `"}}`,
			400, wire.FaultBadRequest, "Not conforming tenantName", false},
		{"oauth2 code", idJSONCT, `{"auth":{"token":{"id":"12345"},"tenantName":"` + a.UUID + `"}}`,
			401, wire.FaultUnauthorized, "Invalid token", false},
		{"auth not an object", idJSONCT, `{"auth":"x"}`,
			500, wire.FaultInternal, "Unexpected error", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(t, http.MethodPost, "/identity/v2.0/tokens", c.header, c.body)
			require.Equal(t, c.status, r.status, "body %s", r.body)
			msg := r.fault(t, c.fault)
			if c.prefix {
				assert.True(t, strings.HasPrefix(msg, c.message), msg)
			} else {
				assert.Equal(t, c.message, msg)
			}
		})
	}
}

func TestTokensUnknownTokenBody(t *testing.T) {
	e := newIDEnv(t, Config{})
	r := e.do(t, http.MethodPost, "/identity/v2.0/tokens", idJSONCT, `{"auth":{"token":{"id":"nope"}}}`)
	require.Equal(t, http.StatusUnauthorized, r.status)
	assert.Equal(t, `{"unauthorized": {"code": 401, "message": "Invalid token", "details": ""}}`, string(r.body))
}

func TestTokensRevoked(t *testing.T) {
	e := newIDEnv(t, Config{})
	e.srv.RevokeToken(idBob.Token)
	r := e.do(t, http.MethodPost, "/identity/v2.0/tokens", idJSONCT, `{"auth":{"token":{"id":"bob-token"}}}`)
	require.Equal(t, http.StatusUnauthorized, r.status)
	assert.Equal(t, "Authentication expired", r.fault(t, wire.FaultUnauthorized))
	r = e.do(t, http.MethodPost, "/identity/v2.0/tokens", idJSONCT, `{"auth":{"token":{"id":"alice-token"}}}`)
	assert.Equal(t, http.StatusOK, r.status)
}

func TestTokensSuccess(t *testing.T) {
	e := newIDEnv(t, Config{})
	a := idAlice
	bodies := map[string]string{
		"password credentials": `{"auth":{"passwordCredentials":{"username":"` + a.UUID + `","password":"` + a.Token + `"},"tenantName":"` + a.UUID + `"}}`,
		"token":                `{"auth":{"token":{"id":"` + a.Token + `"},"tenantName":"` + a.UUID + `"}}`,
		"empty tenant":         `{"auth":{"token":{"id":"` + a.Token + `"},"tenantName":""}}`,
		"no tenant":            `{"auth":{"token":{"id":"` + a.Token + `"}}}`,
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			r := e.do(t, http.MethodPost, "/identity/v2.0/tokens", map[string]string{"Content-Type": "application/json; charset=utf-8"}, body)
			require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
			assert.Equal(t, wire.JSONType, r.header.Get("Content-Type"))
			// Key order as Astakos builds the reply.
			assert.True(t, strings.HasPrefix(string(r.body), `{"access": {"token": {"id": "alice-token", "expires": "`), string(r.body))
			access := r.json(t)["access"].(map[string]any)
			tok := access["token"].(map[string]any)
			assert.Equal(t, a.Token, tok["id"])
			exp, err := time.Parse("2006-01-02T15:04:05.999999-07:00", tok["expires"].(string))
			require.NoError(t, err)
			assert.True(t, exp.After(time.Now()))
			assert.Equal(t, map[string]any{"id": a.UUID, "name": a.Name}, tok["tenant"])
			assert.Equal(t, map[string]any{
				"id": a.UUID, "name": a.Name, "roles": []any{}, "roles_links": []any{},
				"projects": []any{a.UUID},
			}, access["user"])
			byType := map[string]map[string]any{}
			for _, s := range access["serviceCatalog"].([]any) {
				svc := s.(map[string]any)
				assert.Equal(t, []any{}, svc["endpoints_links"])
				eps := svc["endpoints"].([]any)
				require.Len(t, eps, 1)
				ep := eps[0].(map[string]any)
				ep["name"] = svc["name"]
				byType[svc["type"].(string)] = ep
			}
			want := map[string][3]string{
				"object-store": {"pithos_object-store", "v1", e.url + "/object-store/v1"},
				"image":        {"cyclades_plankton", "v1.0", e.url + "/image"},
				"account":      {"astakos_account", "v1.0", e.url + "/account/v1.0"},
				"identity":     {"astakos_identity", "v2.0", e.url + "/identity/v2.0"},
			}
			require.Len(t, byType, len(want))
			for typ, w := range want {
				ep := byType[typ]
				require.NotNil(t, ep, typ)
				assert.Equal(t, w[0], ep["name"], typ)
				assert.Equal(t, w[1], ep["versionId"], typ)
				assert.Equal(t, w[2], ep["publicURL"], typ)
				assert.Equal(t, "default", ep["region"], typ)
				assert.NotEmpty(t, ep["SNF:uiURL"], typ)
			}
			assert.Equal(t, "False", byType["image"]["SNF:exposeVersion"])
			assert.Equal(t, "True", byType["object-store"]["SNF:exposeVersion"])
		})
	}
}

func TestTokensXML(t *testing.T) {
	e := newIDEnv(t, Config{})
	hdr := map[string]string{"Content-Type": "application/json", "Accept": "application/xml"}
	r := e.do(t, http.MethodPost, "/identity/v2.0/tokens", hdr,
		`{"auth":{"passwordCredentials":{"username":"`+idAlice.UUID+`","password":"`+idAlice.Token+`"},"tenantName":"`+idAlice.UUID+`"}}`)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, wire.XMLType, r.header.Get("Content-Type"))
	var doc struct {
		XMLName xml.Name `xml:"access"`
		Token   struct {
			ID     string `xml:"id,attr"`
			Tenant struct {
				ID string `xml:"id,attr"`
			} `xml:"tenant"`
		} `xml:"token"`
		User struct {
			ID string `xml:"id,attr"`
		} `xml:"user"`
		Services []struct {
			Type     string `xml:"type,attr"`
			Endpoint struct {
				PublicURL string `xml:"publicURL,attr"`
			} `xml:"endpoint"`
		} `xml:"serviceCatalog>service"`
	}
	require.NoError(t, xml.Unmarshal(r.body, &doc), "%s", r.body)
	assert.Equal(t, idAlice.Token, doc.Token.ID)
	assert.Equal(t, idAlice.UUID, doc.Token.Tenant.ID)
	assert.Equal(t, idAlice.UUID, doc.User.ID)
	require.Len(t, doc.Services, 4)
	assert.Equal(t, "image", doc.Services[1].Type)
	assert.Equal(t, e.url+"/image", doc.Services[1].Endpoint.PublicURL)

	// Faults follow the serialization too.
	r = e.do(t, http.MethodPost, "/identity/v2.0/tokens", hdr, `{"auth":{"token":{"id":"nope"}}}`)
	require.Equal(t, http.StatusUnauthorized, r.status)
	assert.Equal(t, wire.XMLType, r.header.Get("Content-Type"))
	var f struct {
		XMLName xml.Name `xml:"unauthorized"`
		Code    int      `xml:"code,attr"`
		Message string   `xml:"message"`
	}
	require.NoError(t, xml.Unmarshal(r.body, &f), "%s", r.body)
	assert.Equal(t, 401, f.Code)
	assert.Equal(t, "Invalid token", f.Message)
}

func TestIdentityRoutes(t *testing.T) {
	e := newIDEnv(t, Config{})
	for _, p := range []string{"/identity/v2.0", "/identity/v2.0/"} {
		r := e.do(t, http.MethodGet, p, nil, "")
		require.Equal(t, http.StatusOK, r.status, p)
		v := r.json(t)["version"].(map[string]any)
		assert.Equal(t, "v2.0", v["id"])
		assert.Equal(t, "CURRENT", v["status"])
	}
	r := e.do(t, http.MethodGet, "/identity/v2.0/tokens/some-oauth2-code", nil, "")
	require.Equal(t, http.StatusNotFound, r.status)
	assert.Equal(t, "No such token", r.fault(t, wire.FaultNotFound))

	for _, p := range []string{"/identity/v2.0/nothing", "/identity/v2.0x", "/account/v1.0/nothing", "/account/v1.0", "/account/v1.0/quotas/x"} {
		r := e.do(t, http.MethodGet, p, nil, "")
		require.Equal(t, http.StatusBadRequest, r.status, p)
		assert.Equal(t, "API endpoint not found", r.fault(t, wire.FaultBadRequest), p)
	}
}

// GET quotas (snf-astakos-app astakos/api/quotas.py quotas) lists the
// api_visible resources the services register (pithos/api/services.py,
// synnefo/api/services.py, astakos/api/services.py) for each project, each
// with the user's and the project's counters (quotas.py from_holding); a
// limit nobody set is the base default, PRACTICALLY_INFINITE.
func TestQuotas(t *testing.T) {
	const limit = 1 << 20
	visible := []string{"cyclades.cpu", "cyclades.disk", "cyclades.floating_ip", "cyclades.network.private",
		"cyclades.ram", "cyclades.vm", "pithos.diskspace"}
	cases := []struct {
		name  string
		quota int64
		want  int64
	}{
		{"limited", limit, limit},
		{"unlimited", 0, math.MaxInt64},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newIDEnv(t, Config{Quota: c.quota})
			for _, p := range []string{"/account/v1.0/quotas", "/account/v1.0/quotas/?X-Auth-Token=alice-token"} {
				r := e.do(t, http.MethodGet, p, map[string]string{"X-Auth-Token": idAlice.Token}, "")
				require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
				var q map[string]map[string]map[string]int64
				require.NoError(t, json.Unmarshal(r.body, &q))
				require.Len(t, q, 1, "one project: the user's base project")
				project := q[idAlice.UUID]
				var names []string
				for name := range project {
					names = append(names, name)
				}
				sort.Strings(names)
				assert.Equal(t, visible, names, "cyclades.total_cpu, cyclades.total_ram and astakos.pending_app are not api_visible")
				assert.Equal(t, map[string]int64{
					"usage": 0, "limit": c.want, "pending": 0,
					"project_usage": 0, "project_limit": c.want, "project_pending": 0,
				}, project["pithos.diskspace"])
				for _, name := range visible[:len(visible)-1] {
					assert.Equal(t, map[string]int64{
						"usage": 0, "limit": math.MaxInt64, "pending": 0,
						"project_usage": 0, "project_limit": math.MaxInt64, "project_pending": 0,
					}, project[name], name)
				}
			}
		})
	}
}

// GET resources (quotas.py resources; Resource.get_info) needs no token.
func TestResources(t *testing.T) {
	e := newIDEnv(t, Config{})
	r := e.do(t, http.MethodGet, "/account/v1.0/resources", nil, "")
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	var res map[string]map[string]any
	require.NoError(t, json.Unmarshal(r.body, &res))
	assert.Len(t, res, 7)
	assert.Equal(t, map[string]any{"service": "pithos_object-store", "description": "Pithos account diskspace",
		"unit": "bytes", "ui_visible": true, "api_visible": true}, res["pithos.diskspace"])
	assert.Equal(t, map[string]any{"service": "cyclades_compute", "description": "Number of virtual machines",
		"unit": nil, "ui_visible": true, "api_visible": true}, res["cyclades.vm"])
	assert.NotContains(t, res, "cyclades.total_cpu")
	r = e.do(t, http.MethodPost, "/account/v1.0/resources", nil, "")
	assert.Equal(t, http.StatusMethodNotAllowed, r.status)
}

func TestAccountAuthAndMethods(t *testing.T) {
	e := newIDEnv(t, Config{})
	e.srv.RevokeToken(idBob.Token)
	cases := []struct {
		name, method, path string
		header             map[string]string
		status             int
		fault, message     string
		allow              string
	}{
		{"quotas no token", http.MethodGet, "/account/v1.0/quotas", nil,
			401, wire.FaultUnauthorized, "Access denied. No authentication token", ""},
		{"quotas bad token", http.MethodGet, "/account/v1.0/quotas", map[string]string{"X-Auth-Token": "nope"},
			401, wire.FaultUnauthorized, "Invalid X-Auth-Token", ""},
		{"quotas revoked token", http.MethodGet, "/account/v1.0/quotas", map[string]string{"X-Auth-Token": idBob.Token},
			401, wire.FaultUnauthorized, "Authentication expired", ""},
		{"quotas post", http.MethodPost, "/account/v1.0/quotas", map[string]string{"X-Auth-Token": idAlice.Token},
			405, wire.FaultNotAllowed, "Method not allowed", "GET"},
		{"catalogs get", http.MethodGet, "/account/v1.0/user_catalogs", map[string]string{"X-Auth-Token": idAlice.Token},
			405, wire.FaultNotAllowed, "Method not allowed", "POST"},
		{"catalogs no token", http.MethodPost, "/account/v1.0/user_catalogs", nil,
			401, wire.FaultUnauthorized, "Access denied. No authentication token", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(t, c.method, c.path, c.header, "")
			require.Equal(t, c.status, r.status, "body %s", r.body)
			assert.Equal(t, c.message, r.fault(t, c.fault))
			assert.Equal(t, c.allow, r.header.Get("Allow"))
		})
	}
}

func TestUserCatalogs(t *testing.T) {
	e := newIDEnv(t, Config{})
	pkAuth := map[string]string{"X-Auth-Token": idAlice.Token, "Content-Type": "application/json"}
	r := e.do(t, http.MethodPost, "/account/v1.0/user_catalogs", pkAuth,
		`{"uuids": ["`+idAlice.UUID+`", "`+idBob.UUID+`", "nobody"], "displaynames": ["Bob", "ghost"]}`)
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	assert.Equal(t, map[string]any{
		"uuid_catalog":        map[string]any{idAlice.UUID: "alice", idBob.UUID: "bob"},
		"displayname_catalog": map[string]any{"Bob": idBob.UUID},
	}, r.json(t))

	// kamaki sends uuids only; the trailing slash is accepted.
	r = e.do(t, http.MethodPost, "/account/v1.0/user_catalogs/", pkAuth, `{"uuids": ["`+idBob.UUID+`"]}`)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, `{"uuid_catalog": {"`+idBob.UUID+`": "bob"}, "displayname_catalog": {}}`, string(r.body))

	bad := []struct{ body, message string }{
		{"not json", "Request body should be json formatted."},
		{`["x"]`, "Request body should be a json formatted dictionary"},
		{`{"displaynames": "bob"}`, "Invalid displaynames: bob"},
		{`{"displaynames": null}`, "Invalid displaynames: None"},
		{`{"displaynames": [1]}`, "Items in 'displaynames' must be strings"},
	}
	for _, c := range bad {
		r := e.do(t, http.MethodPost, "/account/v1.0/user_catalogs", pkAuth, c.body)
		require.Equal(t, http.StatusBadRequest, r.status, c.body)
		assert.Equal(t, c.message, r.fault(t, wire.FaultBadRequest), c.body)
	}
}
