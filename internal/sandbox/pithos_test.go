package sandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/imagesync/imagesync/internal/sandbox/wire"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/hashmap"
)

// Users of the Pithos tests (the same accounts the other sandbox tests use).
var (
	psAlice = User{Name: "alice", UUID: "a11ce000-0000-4000-8000-000000000001", Token: "alice-token"}
	psBob   = User{Name: "bob", UUID: "b0b00000-0000-4000-8000-000000000002", Token: "bob-token"}
)

// psBlock is the block size of the Pithos tests, as in synnefo's own suite.
const psBlock = 1024

// psEnv is a sandbox on loopback for the Pithos tests.
type psEnv struct {
	cfg  Config
	srv  *Server
	hs   *httptest.Server
	base string // …/object-store/v1
}

func newPsEnv(t *testing.T, cfg Config) *psEnv {
	t.Helper()
	if len(cfg.Users) == 0 {
		cfg.Users = []User{psAlice, psBob}
	}
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.BlockSize == 0 {
		cfg.BlockSize = psBlock
	}
	e := &psEnv{cfg: cfg}
	e.start(t)
	t.Cleanup(func() { e.stop(t) })
	return e
}

func (e *psEnv) start(t *testing.T) {
	t.Helper()
	srv, err := New(e.cfg)
	require.NoError(t, err)
	e.srv = srv
	e.hs = httptest.NewServer(srv.Handler())
	e.base = e.hs.URL + "/object-store/v1"
}

func (e *psEnv) stop(t *testing.T) {
	t.Helper()
	if e.srv == nil {
		return
	}
	e.hs.Close()
	assert.NoError(t, e.srv.Close())
	e.srv = nil
}

// restart closes the sandbox and opens the same data dir again.
func (e *psEnv) restart(t *testing.T) {
	t.Helper()
	e.stop(t)
	e.start(t)
}

type psResp struct {
	status int
	header http.Header
	body   []byte
}

func (r psResp) String() string { return fmt.Sprintf("%d %s", r.status, r.body) }

// fault checks a {"<name>": {"code", "message", "details"}} body and returns
// its message.
func (r psResp) fault(t *testing.T, name string) string {
	t.Helper()
	var v map[string]map[string]any
	require.NoError(t, json.Unmarshal(r.body, &v), "body %q", r.body)
	require.Contains(t, v, name, "body %s", r.body)
	assert.EqualValues(t, r.status, v[name]["code"])
	return v[name]["message"].(string)
}

func (r psResp) jsonList(t *testing.T) []map[string]any {
	t.Helper()
	var v []map[string]any
	require.NoError(t, json.Unmarshal(r.body, &v), "body %q", r.body)
	return v
}

// do sends a request as u (nil: no token). Header values are sent verbatim.
func (e *psEnv) do(t *testing.T, u *User, method, path string, hdr map[string]string, body []byte) psResp {
	t.Helper()
	r, err := e.try(u, method, path, hdr, body)
	require.NoError(t, err)
	return r
}

// try is do for goroutines other than the test's.
func (e *psEnv) try(u *User, method, path string, hdr map[string]string, body []byte) (psResp, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		return psResp{}, err
	}
	if u != nil {
		req.Header.Set("X-Auth-Token", u.Token)
	}
	for k, v := range hdr {
		req.Header[k] = []string{v}
	}
	res, err := e.hs.Client().Do(req)
	if err != nil {
		return psResp{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return psResp{status: res.StatusCode, header: res.Header, body: b}, err
}

// pp builds "/acct/cont/name" with every segment escaped.
func pp(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		for _, seg := range strings.Split(p, "/") {
			b.WriteByte('/')
			b.WriteString(url.PathEscape(seg))
		}
	}
	return b.String()
}

func (e *psEnv) mkContainer(t *testing.T, u User, cont string, hdr map[string]string) {
	t.Helper()
	r := e.do(t, &u, http.MethodPut, pp(u.UUID, cont), hdr, nil)
	require.Contains(t, []int{http.StatusCreated, http.StatusAccepted}, r.status, "%s", r)
}

// put uploads data with a plain PUT and returns the reply.
func (e *psEnv) put(t *testing.T, u User, acct, cont, name string, data []byte, hdr map[string]string) psResp {
	t.Helper()
	h := map[string]string{"Content-Type": "application/octet-stream"}
	for k, v := range hdr {
		h[k] = v
	}
	if data == nil {
		data = []byte{}
	}
	return e.do(t, &u, http.MethodPut, pp(acct, cont, name), h, data)
}

func (e *psEnv) mustPut(t *testing.T, u User, cont, name string, data []byte, hdr map[string]string) psResp {
	t.Helper()
	r := e.put(t, u, u.UUID, cont, name, data, hdr)
	require.Equal(t, http.StatusCreated, r.status, "%s", r)
	return r
}

func (e *psEnv) head(t *testing.T, u User, acct, cont, name string) psResp {
	t.Helper()
	return e.do(t, &u, http.MethodHead, pp(acct, cont, name), nil, nil)
}

// hashmapPut sends PUT ?hashmap with {"bytes": size, "hashes": hashes}.
func (e *psEnv) hashmapPut(t *testing.T, u User, acct, cont, name string, size int64, hashes []string, hdr map[string]string) psResp {
	t.Helper()
	body, err := json.Marshal(map[string]any{"bytes": size, "hashes": hashes})
	require.NoError(t, err)
	h := map[string]string{"Content-Type": "application/octet-stream"}
	for k, v := range hdr {
		h[k] = v
	}
	return e.do(t, &u, http.MethodPut, pp(acct, cont, name)+"?hashmap=True&format=json", h, body)
}

// blocksOf splits data as the server does and hashes each block.
func blocksOf(data []byte, bs int) (blocks [][]byte, hashes []string) {
	for off := 0; off < len(data); off += bs {
		b := data[off:min(off+bs, len(data))]
		blocks = append(blocks, b)
		hashes = append(hashes, hashmap.BlockHash(b))
	}
	return blocks, hashes
}

// psData is deterministic, non-repeating test data.
func psData(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

func TestPithosTopLevel(t *testing.T) {
	e := newPsEnv(t, Config{})
	for _, m := range []string{http.MethodHead, http.MethodPut, http.MethodPost, http.MethodDelete} {
		r := e.do(t, &psAlice, m, "/", nil, nil)
		assert.Equal(t, http.StatusMethodNotAllowed, r.status, m)
		assert.Equal(t, "GET", r.header.Get("Allow"), m)
	}
	r := e.do(t, nil, http.MethodGet, "/", nil, nil)
	assert.Equal(t, http.StatusBadRequest, r.status)
	assert.Equal(t, "Missing X-Auth-User or X-Auth-Key header", r.fault(t, wire.FaultBadRequest))
	r = e.do(t, nil, http.MethodGet, "/", map[string]string{"X-Auth-User": "alice"}, nil)
	assert.Equal(t, http.StatusBadRequest, r.status)
	r = e.do(t, nil, http.MethodGet, "/", map[string]string{"X-Auth-User": "alice", "X-Auth-Key": "k"}, nil)
	require.Equal(t, http.StatusNoContent, r.status)
	assert.Equal(t, "k", r.header.Get("X-Auth-Token"))
	assert.Equal(t, e.base+"/alice", r.header.Get("X-Storage-Url"))

	// With a token: the accounts sharing something with the user.
	r = e.do(t, &psAlice, http.MethodGet, "/", nil, nil)
	assert.Equal(t, http.StatusNoContent, r.status)
	e.mkContainer(t, psBob, "pub", nil)
	e.mustPut(t, psBob, "pub", "o", []byte("x"), map[string]string{"X-Object-Sharing": "read=*"})
	r = e.do(t, &psAlice, http.MethodGet, "/", nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, psBob.UUID+"\n", string(r.body))

	// Unknown paths under the service and after the version.
	r = e.do(t, &psAlice, http.MethodGet, "x", nil, nil)
	assert.Equal(t, http.StatusBadRequest, r.status)
	assert.Equal(t, "API endpoint not found", r.fault(t, wire.FaultBadRequest))
}

func TestPithosAuth(t *testing.T) {
	e := newPsEnv(t, Config{})
	r := e.do(t, nil, http.MethodHead, pp(psAlice.UUID), nil, nil)
	assert.Equal(t, http.StatusUnauthorized, r.status)
	r = e.do(t, nil, http.MethodGet, pp(psAlice.UUID, "c"), nil, nil)
	assert.Equal(t, http.StatusUnauthorized, r.status)
	assert.Equal(t, "Access denied. No authentication token", r.fault(t, wire.FaultUnauthorized))
	bad := User{Token: "nope"}
	r = e.do(t, &bad, http.MethodGet, pp(psAlice.UUID, "c"), nil, nil)
	assert.Equal(t, http.StatusUnauthorized, r.status)
	assert.Equal(t, "UNAUTHORIZED", r.fault(t, wire.FaultGeneric))
	// The token may also come as a query parameter.
	r = e.do(t, nil, http.MethodHead, pp(psAlice.UUID)+"?X-Auth-Token="+psAlice.Token, nil, nil)
	assert.Equal(t, http.StatusNoContent, r.status)
}

func TestPithosAccount(t *testing.T) {
	e := newPsEnv(t, Config{Quota: 1 << 20})
	r := e.do(t, &psAlice, http.MethodHead, pp(psAlice.UUID), nil, nil)
	require.Equal(t, http.StatusNoContent, r.status)
	assert.Equal(t, "0", r.header.Get("X-Account-Container-Count"))
	assert.Equal(t, "0", r.header.Get("X-Account-Bytes-Used"))
	assert.Equal(t, "1048576", r.header.Get("X-Account-Policy-Quota"))
	assert.Equal(t, "1048576", r.header.Get("X-Account-Policy-Quota-A11ce000-0000-4000-8000-000000000001"))
	_, err := http.ParseTime(r.header.Get("Last-Modified"))
	assert.NoError(t, err)

	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID), nil, nil)
	assert.Equal(t, http.StatusNoContent, r.status, "empty text listing")
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID)+"?format=json", nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "[]", string(r.body))

	for _, c := range []string{"b", "a", "c"} {
		e.mkContainer(t, psAlice, c, nil)
	}
	e.mustPut(t, psAlice, "a", "obj", []byte("12345"), nil)
	r = e.do(t, &psAlice, http.MethodHead, pp(psAlice.UUID), nil, nil)
	assert.Equal(t, "3", r.header.Get("X-Account-Container-Count"))
	assert.Equal(t, "5", r.header.Get("X-Account-Bytes-Used"))

	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID), nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "a\nb\nc\n", string(r.body))
	assert.Equal(t, wire.TextType, r.header.Get("Content-Type"))
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID)+"?limit=1&marker=a", nil, nil)
	assert.Equal(t, "b\n", string(r.body))
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID)+"?format=json", nil, nil)
	items := r.jsonList(t)
	require.Len(t, items, 3)
	assert.Equal(t, "a", items[0]["name"])
	assert.EqualValues(t, 1, items[0]["count"])
	assert.EqualValues(t, 5, items[0]["bytes"])
	assert.Equal(t, map[string]any{"quota": "0", "versioning": "auto", "project": psAlice.UUID}, items[0]["x_container_policy"])
	assert.Regexp(t, `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00$`, items[0]["last_modified"])

	// Another user sees nothing until something is shared.
	r = e.do(t, &psBob, http.MethodHead, pp(psAlice.UUID), nil, nil)
	assert.Equal(t, http.StatusForbidden, r.status)
	r = e.do(t, &psBob, http.MethodGet, pp(psAlice.UUID)+"?public", nil, nil)
	assert.Equal(t, http.StatusForbidden, r.status)

	// Account meta: POST replaces, ?update merges.
	r = e.do(t, &psAlice, http.MethodPost, pp(psAlice.UUID), map[string]string{"X-Account-Meta-Color": "blue"}, nil)
	require.Equal(t, http.StatusAccepted, r.status)
	r = e.do(t, &psAlice, http.MethodPost, pp(psAlice.UUID)+"?update", map[string]string{"X-Account-Meta-Size": "L"}, nil)
	require.Equal(t, http.StatusAccepted, r.status)
	r = e.do(t, &psAlice, http.MethodHead, pp(psAlice.UUID), nil, nil)
	assert.Equal(t, "blue", r.header.Get("X-Account-Meta-Color"))
	assert.Equal(t, "L", r.header.Get("X-Account-Meta-Size"))

	r = e.do(t, &psAlice, http.MethodPut, pp(psAlice.UUID), nil, nil)
	assert.Equal(t, http.StatusMethodNotAllowed, r.status)
	assert.Equal(t, "HEAD,POST,GET", r.header.Get("Allow"))
}

func TestPithosContainerHead(t *testing.T) {
	e := newPsEnv(t, Config{})
	r := e.do(t, &psAlice, http.MethodPut, pp(psAlice.UUID, "c1"), nil, nil)
	require.Equal(t, http.StatusCreated, r.status)
	r = e.do(t, &psAlice, http.MethodPut, pp(psAlice.UUID, "c1"), nil, nil)
	require.Equal(t, http.StatusAccepted, r.status, "second create")

	e.mustPut(t, psAlice, "c1", "a", psData(1500, 1), map[string]string{"X-Object-Meta-Foo": "1"})
	e.mustPut(t, psAlice, "c1", "b", psData(10, 2), map[string]string{"X-Object-Meta-Bar_baz": "2"})
	r = e.do(t, &psAlice, http.MethodHead, pp(psAlice.UUID, "c1"), nil, nil)
	require.Equal(t, http.StatusNoContent, r.status)
	h := r.header
	assert.Equal(t, "2", h.Get("X-Container-Object-Count"))
	assert.Equal(t, "1510", h.Get("X-Container-Bytes-Used"))
	assert.Equal(t, "1024", h.Get("X-Container-Block-Size"))
	assert.Equal(t, "sha256", h.Get("X-Container-Block-Hash"))
	assert.Equal(t, "auto", h.Get("X-Container-Policy-Versioning"))
	assert.Equal(t, "0", h.Get("X-Container-Policy-Quota"))
	assert.Equal(t, psAlice.UUID, h.Get("X-Container-Policy-Project"))
	assert.Equal(t, "Bar-Baz,Foo", h.Get("X-Container-Object-Meta"))
	assert.Empty(t, h.Values("X-Container-Until-Timestamp"))
	lm, err := time.Parse(time.RFC1123, h.Get("Last-Modified"))
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now(), lm, time.Minute)

	r = e.do(t, &psAlice, http.MethodHead, pp(psAlice.UUID, "nope"), nil, nil)
	assert.Equal(t, http.StatusNotFound, r.status)
	r = e.do(t, &psBob, http.MethodHead, pp(psAlice.UUID, "c1"), nil, nil)
	assert.Equal(t, http.StatusForbidden, r.status)
}

func TestPithosContainerPolicyAndMeta(t *testing.T) {
	e := newPsEnv(t, Config{})
	tests := []struct {
		name   string
		hdr    map[string]string
		status int
		msg    string
	}{
		{"bad versioning", map[string]string{"X-Container-Policy-Versioning": "manual"}, 400, "The versioning policy value should be either 'auto' or 'none'."},
		{"bad quota", map[string]string{"X-Container-Policy-Quota": "-1"}, 400, "The quota policy value should be a positive integer."},
		{"not a number", map[string]string{"X-Container-Policy-Quota": "lots"}, 400, "The quota policy value should be a positive integer."},
		{"unknown policy", map[string]string{"X-Container-Policy-Color": "red"}, 400, "The only allowed policies are 'quota' or 'versioning'."},
		{"value too long", map[string]string{"X-Container-Meta-A": strings.Repeat("v", 257)}, 400, "Header value too large."},
		{"name too long", map[string]string{"X-Container-Meta-" + strings.Repeat("k", 112): "v"}, 400, "Header name too large."},
		{"good", map[string]string{"X-Container-Policy-Versioning": "none", "X-Container-Policy-Quota": " 1 00", "X-Container-Meta-Owner": "me"}, 201, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, &psAlice, http.MethodPut, pp(psAlice.UUID, "p-"+strings.ReplaceAll(tt.name, " ", "-")), tt.hdr, nil)
			require.Equal(t, tt.status, r.status, "%s", r)
			if tt.msg != "" {
				assert.Equal(t, tt.msg, r.fault(t, wire.FaultBadRequest))
			}
		})
	}
	r := e.do(t, &psAlice, http.MethodHead, pp(psAlice.UUID, "p-good"), nil, nil)
	assert.Equal(t, "none", r.header.Get("X-Container-Policy-Versioning"))
	assert.Equal(t, "100", r.header.Get("X-Container-Policy-Quota"))
	assert.Equal(t, "me", r.header.Get("X-Container-Meta-Owner"))
	// A failed create leaves nothing behind.
	r = e.do(t, &psAlice, http.MethodHead, pp(psAlice.UUID, "p-bad-versioning"), nil, nil)
	assert.Equal(t, http.StatusNotFound, r.status)

	// 33 meta items is one past the per-domain limit.
	hdr := map[string]string{}
	for i := range 33 {
		hdr[fmt.Sprintf("X-Container-Meta-K%d", i)] = "v"
	}
	r = e.do(t, &psAlice, http.MethodPut, pp(psAlice.UUID, "many"), hdr, nil)
	require.Equal(t, http.StatusBadRequest, r.status)
	assert.Equal(t, "Pithos+ resources cannot have more than 32 metadata items per domain", r.fault(t, wire.FaultBadRequest))

	// POST without ?update replaces the meta, with it merges.
	r = e.do(t, &psAlice, http.MethodPost, pp(psAlice.UUID, "p-good")+"?update", map[string]string{"X-Container-Meta-Extra": "x"}, nil)
	require.Equal(t, http.StatusAccepted, r.status)
	r = e.do(t, &psAlice, http.MethodHead, pp(psAlice.UUID, "p-good"), nil, nil)
	assert.Equal(t, "me", r.header.Get("X-Container-Meta-Owner"))
	assert.Equal(t, "x", r.header.Get("X-Container-Meta-Extra"))
	r = e.do(t, &psAlice, http.MethodPost, pp(psAlice.UUID, "p-good"), map[string]string{"X-Container-Policy-Quota": "0"}, nil)
	require.Equal(t, http.StatusAccepted, r.status)
	r = e.do(t, &psAlice, http.MethodHead, pp(psAlice.UUID, "p-good"), nil, nil)
	assert.Empty(t, r.header.Get("X-Container-Meta-Owner"))
	assert.Equal(t, "0", r.header.Get("X-Container-Policy-Quota"))
	// POST to a missing container is 404; by another user 403.
	r = e.do(t, &psAlice, http.MethodPost, pp(psAlice.UUID, "nope"), nil, nil)
	assert.Equal(t, http.StatusNotFound, r.status)
	assert.Equal(t, "Container does not exist", r.fault(t, wire.FaultNotFound))
	r = e.do(t, &psBob, http.MethodPost, pp(psAlice.UUID, "p-good"), nil, nil)
	assert.Equal(t, http.StatusForbidden, r.status)
}

func TestPithosContainerListing(t *testing.T) {
	e := newPsEnv(t, Config{})
	e.mkContainer(t, psAlice, "c", nil)
	r := e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c"), nil, nil)
	assert.Equal(t, http.StatusNoContent, r.status, "empty text listing")
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c")+"?format=json", nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "[]", string(r.body))
	assert.Equal(t, "1024", r.header.Get("X-Container-Block-Size"), "container headers on listings")

	names := []string{"photos/animals/dogs/poodle.jpg", "photos/animals/cats/persian.jpg", "photos/me.jpg",
		"photos/plants/fern.jpg", "kate.jpg", "/leading", "photos/animals/cats/siamese.jpg", "zz"}
	for _, n := range names {
		e.mustPut(t, psAlice, "c", n, []byte(n), map[string]string{"Content-Type": "image/jpeg"})
	}
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c"), nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, strings.Join(sorted, "\n")+"\n", string(r.body))

	list := func(q string) string {
		r := e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c")+"?"+q, nil, nil)
		require.Contains(t, []int{200, 204}, r.status, "%s", r)
		return strings.TrimSuffix(string(r.body), "\n")
	}
	assert.Equal(t, "/\nkate.jpg\nphotos/\nzz", list("delimiter=/"), `"/leading" is under the virtual directory "/"`)
	assert.Equal(t, "photos/animals/\nphotos/me.jpg\nphotos/plants/", list("prefix=photos/&delimiter=/"))
	assert.Equal(t, "photos/animals/\nphotos/me.jpg\nphotos/plants/", list("prefix=photos&delimiter=/"), "prefix gets the delimiter")
	assert.Equal(t, "photos/me.jpg", list("path=photos"), "path lists the direct children only")
	assert.Equal(t, "kate.jpg\nphotos/animals/cats/persian.jpg", list("limit=2&marker=/leading"))
	assert.Equal(t, strings.Join(sorted, "\n"), list("limit=nope"), "a bad limit is ignored")
	assert.Equal(t, "photos/animals/cats/persian.jpg\nphotos/animals/cats/siamese.jpg", list("prefix=photos/animals/c"))

	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c")+"?format=json&prefix=photos/&delimiter=/", nil, nil)
	items := r.jsonList(t)
	require.Len(t, items, 3)
	assert.Equal(t, map[string]any{"subdir": "photos/animals/"}, items[0])
	obj := items[1]
	assert.Equal(t, "photos/me.jpg", obj["name"])
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	assert.Equal(t, []string{"available", "bytes", "content_type", "hash", "last_modified", "map_check_timestamp", "name",
		"x_object_hash", "x_object_modified_by", "x_object_uuid", "x_object_version", "x_object_version_timestamp"}, keys)
	assert.EqualValues(t, len("photos/me.jpg"), obj["bytes"])
	assert.Equal(t, "image/jpeg", obj["content_type"])
	assert.Equal(t, "", obj["hash"], "the checksum is empty without an ETag")
	assert.Equal(t, hashmap.BlockHash([]byte("photos/me.jpg")), obj["x_object_hash"])
	assert.IsType(t, "", obj["x_object_version_timestamp"])
	assert.Regexp(t, `^\d+\.\d{6}$`, obj["x_object_version_timestamp"])
	assert.IsType(t, float64(0), obj["x_object_version"])
	assert.Equal(t, psAlice.UUID, obj["x_object_modified_by"])
	assert.EqualValues(t, 1, obj["available"])
	assert.Nil(t, obj["map_check_timestamp"])

	// XML carries subdirs as elements with a name attribute.
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c")+"?format=xml&delimiter=/", nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, wire.XMLType, r.header.Get("Content-Type"))
	assert.Contains(t, string(r.body), `<subdir name="photos/" />`)
	assert.Contains(t, string(r.body), `<name>kate.jpg</name>`)

	// Meta filters.
	e.mustPut(t, psAlice, "c", "tagged", []byte("t"), map[string]string{"X-Object-Meta-Color": "red"})
	assert.Equal(t, "tagged", list("meta=color"))
	assert.Equal(t, "tagged", list("meta=color=red"))
	assert.Equal(t, "", list("meta=color=blue"))

	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "nope"), nil, nil)
	require.Equal(t, http.StatusNotFound, r.status)
	assert.Equal(t, "Container does not exist", r.fault(t, wire.FaultNotFound))
	assert.Equal(t, wire.TextType, r.header.Get("Content-Type"), "the fault of a text listing is typed as text")
}

func TestPithosContainerDelete(t *testing.T) {
	e := newPsEnv(t, Config{})
	e.mkContainer(t, psAlice, "c", nil)
	e.mustPut(t, psAlice, "c", "dir/a", []byte("a"), nil)
	e.mustPut(t, psAlice, "c", "b", []byte("b"), nil)
	r := e.do(t, &psAlice, http.MethodDelete, pp(psAlice.UUID, "c"), nil, nil)
	require.Equal(t, http.StatusConflict, r.status)
	assert.Equal(t, `{"conflict": {"code": 409, "message": "Container is not empty", "details": ""}}`, string(r.body))
	r = e.do(t, &psBob, http.MethodDelete, pp(psAlice.UUID, "c"), nil, nil)
	assert.Equal(t, http.StatusForbidden, r.status)
	r = e.do(t, &psAlice, http.MethodDelete, pp(psAlice.UUID, "nope"), nil, nil)
	assert.Equal(t, http.StatusNotFound, r.status)

	r = e.do(t, &psAlice, http.MethodDelete, pp(psAlice.UUID, "c")+"?delimiter=/", nil, nil)
	require.Equal(t, http.StatusNoContent, r.status)
	r = e.do(t, &psAlice, http.MethodHead, pp(psAlice.UUID, "c"), nil, nil)
	require.Equal(t, http.StatusNoContent, r.status, "the container stays")
	assert.Equal(t, "0", r.header.Get("X-Container-Object-Count"))
	assert.Equal(t, "0", r.header.Get("X-Container-Bytes-Used"))
	r = e.do(t, &psAlice, http.MethodDelete, pp(psAlice.UUID, "c"), nil, nil)
	require.Equal(t, http.StatusNoContent, r.status)
	r = e.do(t, &psAlice, http.MethodHead, pp(psAlice.UUID, "c"), nil, nil)
	assert.Equal(t, http.StatusNotFound, r.status)
}

func TestPithosBlockUpload(t *testing.T) {
	e := newPsEnv(t, Config{})
	e.mkContainer(t, psAlice, "c", map[string]string{"X-Container-Meta-Keep": "yes"})
	data := psData(2*psBlock+100, 3)
	_, want := blocksOf(data, psBlock)
	before := e.srv.Stats()
	r := e.do(t, &psAlice, http.MethodPost, pp(psAlice.UUID, "c")+"?update&format=json",
		map[string]string{"Content-Type": "application/octet-stream"}, data)
	require.Equal(t, http.StatusAccepted, r.status, "%s", r)
	assert.Equal(t, wire.JSONType, r.header.Get("Content-Type"))
	var got []string
	require.NoError(t, json.Unmarshal(r.body, &got))
	assert.Equal(t, want, got, "one block per block_size chunk")
	after := e.srv.Stats()
	assert.EqualValues(t, 3, after.BlocksReceived-before.BlocksReceived)
	assert.EqualValues(t, len(data), after.BlockBytesReceived-before.BlockBytesReceived)
	r = e.do(t, &psAlice, http.MethodHead, pp(psAlice.UUID, "c"), nil, nil)
	assert.Equal(t, "yes", r.header.Get("X-Container-Meta-Keep"), "?update keeps the meta")
	assert.Equal(t, "0", r.header.Get("X-Container-Bytes-Used"), "blocks are not charged")

	r = e.do(t, &psAlice, http.MethodPost, pp(psAlice.UUID, "c")+"?update&format=xml",
		map[string]string{"Content-Type": "application/octet-stream"}, data[:10])
	require.Equal(t, http.StatusAccepted, r.status)
	assert.Contains(t, string(r.body), "<item>"+hashmap.BlockHash(data[:10])+"</item>")

	// Content-Type must be exactly application/octet-stream.
	r = e.do(t, &psAlice, http.MethodPost, pp(psAlice.UUID, "c")+"?update",
		map[string]string{"Content-Type": "application/octet-stream; charset=x"}, []byte("zzz"))
	require.Equal(t, http.StatusAccepted, r.status)
	assert.Empty(t, r.body)

	// Without ?update the container meta is cleared, blocks or not.
	r = e.do(t, &psAlice, http.MethodPost, pp(psAlice.UUID, "c"), map[string]string{"Content-Type": "application/octet-stream"}, []byte("q"))
	require.Equal(t, http.StatusAccepted, r.status)
	r = e.do(t, &psAlice, http.MethodHead, pp(psAlice.UUID, "c"), nil, nil)
	assert.Empty(t, r.header.Get("X-Container-Meta-Keep"))

	// Another user's container: 403, even with everything in it shared.
	e.mustPut(t, psAlice, "c", "shared", []byte("s"), map[string]string{"X-Object-Sharing": "read=*;write=*"})
	r = e.do(t, &psBob, http.MethodPost, pp(psAlice.UUID, "c")+"?update&format=json",
		map[string]string{"Content-Type": "application/octet-stream"}, data[:10])
	require.Equal(t, http.StatusForbidden, r.status)
	assert.Equal(t, "User does not have write access to the container", r.fault(t, wire.FaultForbidden))
}

func TestPithosQuota(t *testing.T) {
	t.Run("container", func(t *testing.T) {
		e := newPsEnv(t, Config{})
		e.mkContainer(t, psAlice, "q", nil)
		r := e.do(t, &psAlice, http.MethodPost, pp(psAlice.UUID, "q")+"?update", map[string]string{"X-Container-Policy-Quota": "100"}, nil)
		require.Equal(t, http.StatusAccepted, r.status)
		r = e.put(t, psAlice, psAlice.UUID, "q", "big", psData(101, 1), nil)
		require.Equal(t, http.StatusRequestEntityTooLarge, r.status)
		assert.Equal(t, `{"requestEntityTooLarge": {"code": 413, "message": "Quota error: Container quota exceeded: limit: 100, usage: 101", "details": ""}}`, string(r.body))
		r = e.head(t, psAlice, psAlice.UUID, "q", "big")
		assert.Equal(t, http.StatusNotFound, r.status, "nothing was created")
		e.mustPut(t, psAlice, "q", "fits", psData(100, 1), nil)

		// Hashmap PUTs are charged the same way.
		_, hs := blocksOf(psData(101, 1), psBlock)
		r = e.hashmapPut(t, psAlice, psAlice.UUID, "q", "big", 101, hs, nil)
		require.Equal(t, http.StatusRequestEntityTooLarge, r.status)

		r = e.do(t, &psAlice, http.MethodPost, pp(psAlice.UUID, "q")+"?update", map[string]string{"X-Container-Policy-Quota": "0"}, nil)
		require.Equal(t, http.StatusAccepted, r.status)
		e.mustPut(t, psAlice, "q", "big", psData(101, 1), nil)
	})
	t.Run("account", func(t *testing.T) {
		e := newPsEnv(t, Config{Quota: 3000})
		e.mkContainer(t, psAlice, "a", nil)
		e.mkContainer(t, psAlice, "b", nil)
		e.mustPut(t, psAlice, "a", "one", psData(2000, 1), nil)
		r := e.put(t, psAlice, psAlice.UUID, "b", "two", psData(1500, 2), nil)
		require.Equal(t, http.StatusRequestEntityTooLarge, r.status)
		assert.Equal(t, `{"fault": {"code": 413, "message": "Resource Limit Exceeded for your account.", "details": "Limit for resource 'Storage space' exceeded for your account. Available: 1000, Requested: 1500"}}`, string(r.body))
		// Overwriting is charged the difference only.
		e.mustPut(t, psAlice, "a", "one", psData(2900, 1), nil)
		used, err := e.srv.store.Usage(psAlice.UUID)
		require.NoError(t, err)
		assert.EqualValues(t, 2900, used)
		// Other users have their own quota.
		e.mkContainer(t, psBob, "b", nil)
		e.mustPut(t, psBob, "b", "x", psData(2500, 3), nil)
	})
}
