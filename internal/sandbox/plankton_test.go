package sandbox

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/imagesync/imagesync/internal/sandbox/wire"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/hashmap"
)

// pkObject is an object created through the Pithos API for image tests.
type pkObject struct {
	owner           User
	container, name string
	uuid, hash      string
	size            int
}

// location is the pithos:// URL a client registers.
func (o pkObject) location() string {
	return "pithos://" + o.owner.UUID + "/" + url.PathEscape(o.container) + "/" + url.PathEscape(o.name)
}

func pkObjectPath(acct, cont, name string) string {
	p := "/object-store/v1/" + url.PathEscape(acct) + "/" + url.PathEscape(cont)
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	return p
}

func pkAuth(u User, kv ...string) map[string]string {
	h := map[string]string{"X-Auth-Token": u.Token}
	for i := 0; i+1 < len(kv); i += 2 {
		h[kv[i]] = kv[i+1]
	}
	return h
}

// mkObject uploads data with a plain data PUT (creating the container) and
// returns the object's identity as Pithos reports it.
func (e *idEnv) mkObject(t *testing.T, u User, container, name string, data []byte) pkObject {
	t.Helper()
	r := e.do(t, http.MethodPut, pkObjectPath(u.UUID, container, ""), pkAuth(u), "")
	require.Contains(t, []int{http.StatusCreated, http.StatusAccepted}, r.status, "container PUT: %s", r.body)
	r = e.do(t, http.MethodPut, pkObjectPath(u.UUID, container, name),
		pkAuth(u, "Content-Type", "application/octet-stream"), string(data))
	require.Equal(t, http.StatusCreated, r.status, "object PUT: %s", r.body)
	return e.headObject(t, u, pkObject{owner: u, container: container, name: name, size: len(data)})
}

func (e *idEnv) headObject(t *testing.T, u User, o pkObject) pkObject {
	t.Helper()
	r := e.do(t, http.MethodHead, pkObjectPath(o.owner.UUID, o.container, o.name), pkAuth(u), "")
	require.Equal(t, http.StatusOK, r.status)
	o.uuid = r.header.Get("X-Object-Uuid")
	o.hash = r.header.Get("X-Object-Hash")
	require.NotEmpty(t, o.uuid)
	require.NotEmpty(t, o.hash)
	return o
}

// sharing returns the object's X-Object-Sharing as its owner sees it, as
// sorted read and write lists.
func (e *idEnv) sharing(t *testing.T, o pkObject) (read, write []string) {
	t.Helper()
	r := e.do(t, http.MethodHead, pkObjectPath(o.owner.UUID, o.container, o.name), pkAuth(o.owner), "")
	require.Equal(t, http.StatusOK, r.status)
	v, err := url.PathUnescape(r.header.Get("X-Object-Sharing"))
	require.NoError(t, err)
	for _, part := range strings.Split(v, ";") {
		k, list, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		names := strings.Split(list, ",")
		sort.Strings(names)
		switch k {
		case "read":
			read = names
		case "write":
			write = names
		}
	}
	return read, write
}

// share sets the object's Pithos sharing directly.
func (e *idEnv) share(t *testing.T, o pkObject, sharing string) {
	t.Helper()
	r := e.do(t, http.MethodPost, pkObjectPath(o.owner.UUID, o.container, o.name)+"?update",
		pkAuth(o.owner, "X-Object-Sharing", sharing), "")
	require.Equal(t, http.StatusAccepted, r.status, "sharing POST: %s", r.body)
}

func (e *idEnv) image(t *testing.T, u User, method, path string, hdr map[string]string, body string) idResp {
	t.Helper()
	h := pkAuth(u)
	for k, v := range hdr {
		h[k] = v
	}
	return e.do(t, method, "/image/v1.0"+path, h, body)
}

func (e *idEnv) register(t *testing.T, u User, location, name string, kv ...string) idResp {
	t.Helper()
	h := map[string]string{"X-Image-Meta-Name": name, "X-Image-Meta-Location": location}
	for i := 0; i+1 < len(kv); i += 2 {
		h[kv[i]] = kv[i+1]
	}
	return e.image(t, u, http.MethodPost, "/images/", h, "")
}

func (e *idEnv) mustRegister(t *testing.T, o pkObject, name string, kv ...string) idResp {
	t.Helper()
	r := e.register(t, o.owner, o.location(), name, kv...)
	require.Equal(t, http.StatusOK, r.status, "register: %s", r.body)
	require.Empty(t, r.body)
	return r
}

func pkData(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/1024)
	}
	return b
}

func pkMerkle(t *testing.T, data []byte, bs int) string {
	t.Helper()
	var hs []string
	for off := 0; off < len(data); off += bs {
		hs = append(hs, hashmap.BlockHash(data[off:min(off+bs, len(data))]))
	}
	root, err := hashmap.MerkleRoot(hs)
	require.NoError(t, err)
	return root
}

var pkTimestampRe = regexp.MustCompile(`^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$`)

func TestRegisterValidation(t *testing.T) {
	e := newIDEnv(t, Config{})
	o := e.mkObject(t, idAlice, "images", "foo", pkData(3000))
	loc := o.location()
	cases := []struct {
		name    string
		header  map[string]string
		status  int
		fault   string
		message string
	}{
		{"name missing", map[string]string{"X-Image-Meta-Location": loc}, 400, wire.FaultBadRequest, "Image 'name' parameter is required"},
		{"name empty", map[string]string{"X-Image-Meta-Name": "", "X-Image-Meta-Location": loc}, 400, wire.FaultBadRequest, "Invalid image name"},
		{"location missing", map[string]string{"X-Image-Meta-Name": "n"}, 400, wire.FaultBadRequest, "'location' parameter is required"},
		{"location empty", map[string]string{"X-Image-Meta-Name": "n", "X-Image-Meta-Location": ""}, 400, wire.FaultBadRequest, "Invalid location ''"},
		{"location scheme", map[string]string{"X-Image-Meta-Name": "n", "X-Image-Meta-Location": "pitho://" + idAlice.UUID + "/images/foo"},
			400, wire.FaultBadRequest, "Invalid location 'pitho://" + idAlice.UUID + "/images/foo'"},
		{"location no object", map[string]string{"X-Image-Meta-Name": "n", "X-Image-Meta-Location": "pithos://a/b"}, 400, wire.FaultBadRequest, "Invalid location 'pithos://a/b'"},
		{"location no path", map[string]string{"X-Image-Meta-Name": "n", "X-Image-Meta-Location": "pithos://" + idAlice.UUID + "/images"},
			400, wire.FaultBadRequest, "Invalid location 'pithos://" + idAlice.UUID + "/images'"},
		{"id", map[string]string{"X-Image-Meta-Name": "n", "X-Image-Meta-Location": loc, "X-Image-Meta-Id": "x"}, 400, wire.FaultBadRequest, "Setting the image ID is not supported"},
		{"status not addable", map[string]string{"X-Image-Meta-Name": "n", "X-Image-Meta-Location": loc, "X-Image-Meta-Status": "x"}, 400, wire.FaultBadRequest, "Invalid parameters"},
		{"description not addable", map[string]string{"X-Image-Meta-Name": "n", "X-Image-Meta-Location": loc, "X-Image-Meta-Description": "x"}, 400, wire.FaultBadRequest, "Invalid parameters"},
		{"store type", map[string]string{"X-Image-Meta-Name": "n", "X-Image-Meta-Location": loc, "X-Image-Meta-Store": "s3"}, 400, wire.FaultBadRequest, "Invalid store type 's3'"},
		// A substring of 'pithos' passes the view and fails in the backend.
		{"store substring", map[string]string{"X-Image-Meta-Name": "n", "X-Image-Meta-Location": loc, "X-Image-Meta-Store": "pitho"},
			400, wire.FaultBadRequest, "Invalid store 'pitho'. Only 'pithos' store is supported"},
		{"disk format", map[string]string{"X-Image-Meta-Name": "n", "X-Image-Meta-Location": loc, "X-Image-Meta-Disk-Format": "diskdumpp"}, 400, wire.FaultBadRequest, "Invalid disk format 'diskdumpp'"},
		{"container format", map[string]string{"X-Image-Meta-Name": "n", "X-Image-Meta-Location": loc, "X-Image-Meta-Container-Format": "baree"}, 400, wire.FaultBadRequest, "Invalid container format 'baree'"},
		{"size foo", map[string]string{"X-Image-Meta-Name": "n", "X-Image-Meta-Location": loc, "X-Image-Meta-Size": "foo"}, 400, wire.FaultBadRequest, "Invalid 'size' field"},
		{"size wrong", map[string]string{"X-Image-Meta-Name": "n", "X-Image-Meta-Location": loc, "X-Image-Meta-Size": "43"}, 400, wire.FaultBadRequest, "Invalid 'size' field"},
		// Header values stay strings: even the right size fails.
		{"size right", map[string]string{"X-Image-Meta-Name": "n", "X-Image-Meta-Location": loc, "X-Image-Meta-Size": "3000"}, 400, wire.FaultBadRequest, "Invalid 'size' field"},
		{"checksum", map[string]string{"X-Image-Meta-Name": "n", "X-Image-Meta-Location": loc, "X-Image-Meta-Checksum": strings.Repeat("0", 64)}, 400, wire.FaultBadRequest, "Invalid checksum field"},
		{"name not utf-8", map[string]string{"X-Image-Meta-Name": "%FF", "X-Image-Meta-Location": loc}, 400, wire.FaultBadRequest, "Could not decode request as UTF-8 string"},
		{"property not utf-8", map[string]string{"X-Image-Meta-Name": "n", "X-Image-Meta-Location": loc, "X-Image-Meta-Property-A": "%C3"}, 400, wire.FaultBadRequest, "Could not decode request as UTF-8 string"},
		{"missing object", map[string]string{"X-Image-Meta-Name": "n", "X-Image-Meta-Location": "pithos://" + idAlice.UUID + "/images/nope"}, 404, wire.FaultNotFound, ""},
		{"missing container", map[string]string{"X-Image-Meta-Name": "n", "X-Image-Meta-Location": "pithos://" + idAlice.UUID + "/nope/foo"}, 404, wire.FaultNotFound, ""},
		{"key too long", map[string]string{"X-Image-Meta-Name": "n", "X-Image-Meta-Location": loc, "X-Image-Meta-Property-" + strings.Repeat("k", 94): "v"},
			400, wire.FaultBadRequest, "Metadata keys should be less than 111 characters"},
		{"value too long", map[string]string{"X-Image-Meta-Name": "n", "X-Image-Meta-Location": loc, "X-Image-Meta-Property-K": strings.Repeat("v", 257)},
			400, wire.FaultBadRequest, "Metadata values should be less than 256 characters."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.image(t, idAlice, http.MethodPost, "/images/", c.header, "")
			require.Equal(t, c.status, r.status, "body %s", r.body)
			assert.Equal(t, c.message, r.fault(t, c.fault))
		})
	}
	// Nothing was registered, and the failed attempts left the sharing alone.
	r := e.image(t, idAlice, http.MethodHead, "/images/"+o.uuid, nil, "")
	assert.Equal(t, http.StatusNotFound, r.status)
	read, write := e.sharing(t, o)
	assert.Empty(t, read)
	assert.Empty(t, write)
	assert.Zero(t, e.srv.Stats().ImageRegisters)
}

func TestRegisterSuccess(t *testing.T) {
	e := newIDEnv(t, Config{BlockSize: 1024})
	data := pkData(3000)
	o := e.mkObject(t, idAlice, "☂", "foo", data)
	assert.Equal(t, pkMerkle(t, data, 1024), o.hash, "the image checksum is the Merkle hash")

	r := e.mustRegister(t, o, "My%20Img%20%E2%98%82",
		"X-Image-Meta-Checksum", o.hash,
		"X-Image-Meta-Lolo", "unknown keys are ignored",
		"X-Image-Meta-Owner", "someone-else",
		"X-Image-Meta-Property-OS-Type", "linux",
		"X-Image-Meta-Property-Description", "Debian%20Base%20%E2%98%82",
		"X-Image-Meta-Property-Root.Partition", "1")
	h := r.header
	assert.Equal(t, o.uuid, h.Get("X-Image-Meta-Id"))
	assert.Equal(t, "pithos://"+idAlice.UUID+"/%E2%98%82/foo", h.Get("X-Image-Meta-Location"))
	assert.Equal(t, "AVAILABLE", h.Get("X-Image-Meta-Status"))
	assert.Equal(t, "", h.Get("X-Image-Meta-Deleted-At"))
	assert.Contains(t, h, "X-Image-Meta-Deleted-At")
	assert.Equal(t, "False", h.Get("X-Image-Meta-Is-Public"))
	assert.Equal(t, "False", h.Get("X-Image-Meta-Is-Snapshot"))
	assert.Equal(t, idAlice.UUID, h.Get("X-Image-Meta-Owner"), "owner is the account, not the stored owner")
	assert.Equal(t, "3000", h.Get("X-Image-Meta-Size"))
	assert.Equal(t, o.hash, h.Get("X-Image-Meta-Checksum"))
	assert.Equal(t, "My%20Img%20%E2%98%82", h.Get("X-Image-Meta-Name"))
	assert.Equal(t, "bare", h.Get("X-Image-Meta-Container-Format"))
	assert.Equal(t, "diskdump", h.Get("X-Image-Meta-Disk-Format"))
	assert.Equal(t, "", h.Get("X-Image-Meta-Description"))
	assert.Regexp(t, pkTimestampRe, h.Get("X-Image-Meta-Created-At"))
	assert.Equal(t, h.Get("X-Image-Meta-Created-At"), h.Get("X-Image-Meta-Updated-At"))
	assert.Equal(t, "linux", h.Get("X-Image-Meta-Property-Os-Type"))
	assert.Equal(t, "Debian%20Base%20%E2%98%82", h.Get("X-Image-Meta-Property-Description"))
	assert.Equal(t, "1", h.Get("X-Image-Meta-Property-Root-Partition"))
	assert.EqualValues(t, 1, e.srv.Stats().ImageRegisters)

	// HEAD gives the same headers.
	hr := e.image(t, idAlice, http.MethodHead, "/images/"+o.uuid, nil, "")
	require.Equal(t, http.StatusOK, hr.status)
	for k, v := range h {
		if strings.HasPrefix(k, "X-Image-Meta-") {
			assert.Equal(t, v, hr.header[k], k)
		}
	}

	// Registering reset the sharing to the owner; the image meta is not
	// Pithos user meta.
	read, write := e.sharing(t, o)
	assert.Equal(t, []string{idAlice.UUID}, read)
	assert.Empty(t, write)
	pr := e.do(t, http.MethodHead, pkObjectPath(idAlice.UUID, "☂", "foo"), pkAuth(idAlice), "")
	for k := range pr.header {
		assert.False(t, strings.HasPrefix(k, "X-Object-Meta-"), k)
	}
}

func TestImageHeadersOnTheWire(t *testing.T) {
	e := newIDEnv(t, Config{})
	o := e.mkObject(t, idAlice, "images", "wire", pkData(10))
	e.mustRegister(t, o, "wire", "X-Image-Meta-Property-Kernel-Version", "6.1")
	req := httptest.NewRequest(http.MethodHead, "/image/v1.0/images/"+o.uuid, nil)
	req.Header.Set("X-Auth-Token", idAlice.Token)
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code)
	var names []string
	for k := range rec.Header() {
		if strings.HasPrefix(strings.ToLower(k), "x-image-meta-") {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	assert.Equal(t, []string{
		"x-image-meta-checksum", "x-image-meta-container-format", "x-image-meta-created-at",
		"x-image-meta-deleted-at", "x-image-meta-description", "x-image-meta-disk-format", "x-image-meta-id",
		"x-image-meta-is-public", "x-image-meta-is-snapshot", "x-image-meta-location", "x-image-meta-name",
		"x-image-meta-owner", "x-image-meta-property-kernel-version", "x-image-meta-size", "x-image-meta-status",
		"x-image-meta-updated-at",
	}, names, "lowercase names, one per detail field")
	assert.Empty(t, rec.Body.Bytes())
}

func TestRegisterPermissions(t *testing.T) {
	e := newIDEnv(t, Config{})
	o := e.mkObject(t, idAlice, "images", "shared", pkData(100))

	// Bob cannot read the object: 403.
	r := e.register(t, idBob, o.location(), "bobs")
	require.Equal(t, http.StatusForbidden, r.status)
	assert.Equal(t, `{"forbidden": {"code": 403, "message": "", "details": ""}}`, string(r.body))

	// Reading it is not enough: registering sets the sharing, owner only.
	e.share(t, o, "read="+idBob.UUID+";write="+idBob.UUID)
	r = e.register(t, idBob, o.location(), "bobs")
	require.Equal(t, http.StatusForbidden, r.status)
	assert.Equal(t, "", r.fault(t, wire.FaultForbidden))
	read, write := e.sharing(t, o)
	assert.Empty(t, read, "Pithos keeps a user in both lists only in write")
	assert.Equal(t, []string{idBob.UUID}, write)

	// The owner registers: sharing replaced by read=owner.
	e.mustRegister(t, o, "alices")
	read, write = e.sharing(t, o)
	assert.Equal(t, []string{idAlice.UUID}, read)
	assert.Empty(t, write)
	r = e.image(t, idBob, http.MethodHead, "/images/"+o.uuid, nil, "")
	assert.Equal(t, http.StatusForbidden, r.status, "HEAD by a non-reader")
	assert.Empty(t, r.body)
}

func TestRegisterPublicAndReregister(t *testing.T) {
	e := newIDEnv(t, Config{})
	o := e.mkObject(t, idAlice, "images", "pub", pkData(2048))
	r := e.mustRegister(t, o, "first", "X-Image-Meta-Is-Public", "TRUE", "X-Image-Meta-Property-Keep", "yes",
		"X-Image-Meta-Disk-Format", "extdump")
	assert.Equal(t, "True", r.header.Get("X-Image-Meta-Is-Public"))
	read, _ := e.sharing(t, o)
	assert.Equal(t, []string{"*", idAlice.UUID}, read)

	// Public: Bob can see it and list it.
	r = e.image(t, idBob, http.MethodHead, "/images/"+o.uuid, nil, "")
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "first", r.header.Get("X-Image-Meta-Name"))
	assert.Equal(t, []string{o.uuid}, pkListIDs(t, e, idBob, "/images/"))

	// Add a member, then register again, not public: same id, members
	// reset, metadata merged.
	require.Equal(t, http.StatusNoContent, e.image(t, idAlice, http.MethodPut, "/images/"+o.uuid+"/members/"+idBob.UUID, nil, "").status)
	r = e.mustRegister(t, o, "second", "X-Image-Meta-Property-New", "1")
	assert.Equal(t, o.uuid, r.header.Get("X-Image-Meta-Id"))
	assert.Equal(t, "second", r.header.Get("X-Image-Meta-Name"))
	assert.Equal(t, "False", r.header.Get("X-Image-Meta-Is-Public"))
	assert.Equal(t, "yes", r.header.Get("X-Image-Meta-Property-Keep"))
	assert.Equal(t, "1", r.header.Get("X-Image-Meta-Property-New"))
	// The default disk format is stored on every register.
	assert.Equal(t, "diskdump", r.header.Get("X-Image-Meta-Disk-Format"))
	read, _ = e.sharing(t, o)
	assert.Equal(t, []string{idAlice.UUID}, read)
	r = e.image(t, idBob, http.MethodHead, "/images/"+o.uuid, nil, "")
	assert.Equal(t, http.StatusForbidden, r.status)
	assert.Empty(t, pkListIDs(t, e, idBob, "/images/"))
	assert.EqualValues(t, 2, e.srv.Stats().ImageRegisters)
}

func TestRegisterMetadataLimit(t *testing.T) {
	e := newIDEnv(t, Config{})
	o := e.mkObject(t, idAlice, "images", "many", pkData(10))
	// name, disk_format, container_format and created_at take 4 of the
	// 32 items a domain may hold.
	kv := []string{"X-Image-Meta-Is-Public", "true"}
	for i := range 29 {
		kv = append(kv, fmt.Sprintf("X-Image-Meta-Property-P%02d", i), "v")
	}
	r := e.register(t, idAlice, o.location(), "many", kv...)
	require.Equal(t, http.StatusBadRequest, r.status, "body %s", r.body)
	assert.NotEmpty(t, r.fault(t, wire.FaultBadRequest))
	// Rolled back: not registered, sharing untouched.
	assert.Equal(t, http.StatusNotFound, e.image(t, idAlice, http.MethodHead, "/images/"+o.uuid, nil, "").status)
	read, _ := e.sharing(t, o)
	assert.Empty(t, read)

	// 32 items fit; one more property is the 33rd.
	r = e.register(t, idAlice, o.location(), "many", kv[:len(kv)-2]...)
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	r = e.register(t, idAlice, o.location(), "many", "X-Image-Meta-Property-Extra", "v")
	assert.Equal(t, http.StatusBadRequest, r.status, "the 33rd item")

	// A property key of 93 characters is the longest that fits in 111.
	o2 := e.mkObject(t, idAlice, "images", "longkey", pkData(10))
	r = e.register(t, idAlice, o2.location(), "long", "X-Image-Meta-Property-"+strings.Repeat("k", 93), "v")
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	assert.Equal(t, "v", r.header.Get("X-Image-Meta-Property-"+strings.Repeat("k", 93)))
}

func TestImageGetAndHead(t *testing.T) {
	e := newIDEnv(t, Config{})
	o := e.mkObject(t, idAlice, "images", "plain", pkData(10))
	cases := []struct {
		name, id string
		status   int
	}{
		{"not an image", o.uuid, http.StatusNotFound},
		{"unknown", "00000000-0000-4000-8000-000000000000", http.StatusNotFound},
		{"malformed", "xyz", http.StatusBadRequest},
		{"underscore", strings.Repeat("a", 31) + "_", http.StatusBadRequest},
	}
	for _, c := range cases {
		r := e.image(t, idAlice, http.MethodHead, "/images/"+c.id, nil, "")
		assert.Equal(t, c.status, r.status, c.name)
		assert.Empty(t, r.body)
	}
	// The same failures with bodies, through PUT.
	r := e.image(t, idAlice, http.MethodPut, "/images/"+o.uuid, nil, "")
	require.Equal(t, http.StatusNotFound, r.status)
	assert.Equal(t, "Object '"+o.uuid+"' does not exist.", r.fault(t, wire.FaultNotFound))
	r = e.image(t, idAlice, http.MethodPut, "/images/00000000-0000-4000-8000-000000000000", nil, "")
	require.Equal(t, http.StatusNotFound, r.status)
	assert.Equal(t, "", r.fault(t, wire.FaultNotFound))
	r = e.image(t, idAlice, http.MethodPut, "/images/xyz", nil, "")
	require.Equal(t, http.StatusBadRequest, r.status)
	assert.Equal(t, "", r.fault(t, wire.FaultBadRequest))

	e.mustRegister(t, o, "plain")
	// Ids are canonicalised like uuid.UUID does: case and dashes.
	r = e.image(t, idAlice, http.MethodHead, "/images/"+strings.ToUpper(strings.ReplaceAll(o.uuid, "-", "")), nil, "")
	assert.Equal(t, http.StatusOK, r.status)
	r = e.image(t, idAlice, http.MethodGet, "/images/"+o.uuid, nil, "")
	assert.Equal(t, http.StatusNotImplemented, r.status)
	assert.Empty(t, r.body)
	r = e.do(t, http.MethodGet, "/image/v1.0/images/"+o.uuid, nil, "")
	assert.Equal(t, http.StatusUnauthorized, r.status, "token checked first")
	assert.Equal(t, "Access denied. No authentication token", r.fault(t, wire.FaultUnauthorized))
}

func TestUpdateImage(t *testing.T) {
	e := newIDEnv(t, Config{})
	o := e.mkObject(t, idAlice, "images", "upd", pkData(10))
	e.mustRegister(t, o, "upd", "X-Image-Meta-Property-A", "1", "X-Image-Meta-Property-B", "2")
	path := "/images/" + o.uuid

	for _, k := range []string{"Size", "Checksum", "Location", "Id", "Store", "Description", "Created-At"} {
		r := e.image(t, idAlice, http.MethodPut, path, map[string]string{"X-Image-Meta-" + k: "x"}, "")
		require.Equal(t, http.StatusBadRequest, r.status, k)
		assert.Equal(t, "Invalid metadata", r.fault(t, wire.FaultBadRequest), k)
	}
	r := e.image(t, idAlice, http.MethodPut, path, map[string]string{"X-Image-Meta-Disk-Format": "raw"}, "")
	require.Equal(t, http.StatusBadRequest, r.status)
	assert.Equal(t, "Invalid disk format 'raw'", r.fault(t, wire.FaultBadRequest))

	// Merge: A deleted by an empty value, B untouched, C added, name and
	// status changed.
	r = e.image(t, idAlice, http.MethodPut, path, map[string]string{
		"X-Image-Meta-Property-A": "", "X-Image-Meta-Property-C": "3",
		"X-Image-Meta-Name": "renamed", "X-Image-Meta-Status": "unavailable",
		"X-Image-Meta-Container-Format": "ovf",
	}, "")
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	assert.Empty(t, r.body)
	assert.NotContains(t, r.header, "X-Image-Meta-Property-A")
	assert.Equal(t, "2", r.header.Get("X-Image-Meta-Property-B"))
	assert.Equal(t, "3", r.header.Get("X-Image-Meta-Property-C"))
	assert.Equal(t, "renamed", r.header.Get("X-Image-Meta-Name"))
	assert.Equal(t, "ovf", r.header.Get("X-Image-Meta-Container-Format"))
	assert.Equal(t, "SAVING", r.header.Get("X-Image-Meta-Status"), "stored status overrides, mapped")
	assert.Equal(t, "unavailable", pkDetail(t, e, idAlice, o.uuid)["status"], "listings show it raw")

	// An empty name would unregister: 404 and nothing changes.
	r = e.image(t, idAlice, http.MethodPut, path, map[string]string{"X-Image-Meta-Name": "", "X-Image-Meta-Property-B": "changed"}, "")
	require.Equal(t, http.StatusNotFound, r.status)
	assert.Equal(t, "Object '"+o.uuid+"' does not exist.", r.fault(t, wire.FaultNotFound))
	r = e.image(t, idAlice, http.MethodHead, path, nil, "")
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "renamed", r.header.Get("X-Image-Meta-Name"))
	assert.Equal(t, "2", r.header.Get("X-Image-Meta-Property-B"))

	// is_public toggles "*" and keeps other readers and writers.
	e.share(t, o, "read=carol;write="+idBob.UUID)
	r = e.image(t, idAlice, http.MethodPut, path, map[string]string{"X-Image-Meta-Is-Public": "True"}, "")
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "True", r.header.Get("X-Image-Meta-Is-Public"))
	read, write := e.sharing(t, o)
	assert.Equal(t, []string{"*", "carol"}, read)
	assert.Equal(t, []string{idBob.UUID}, write)
	r = e.image(t, idAlice, http.MethodPut, path, map[string]string{"X-Image-Meta-Is-Public": "False", "X-Image-Meta-Property-D": "4"}, "")
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "False", r.header.Get("X-Image-Meta-Is-Public"))
	assert.Equal(t, "4", r.header.Get("X-Image-Meta-Property-D"))
	read, write = e.sharing(t, o)
	assert.Equal(t, []string{"carol"}, read)
	assert.Equal(t, []string{idBob.UUID}, write)

	// Bob holds a write share: metadata yes, is_public no (owner only).
	r = e.image(t, idBob, http.MethodPut, path, map[string]string{"X-Image-Meta-Property-E": "5"}, "")
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	assert.Equal(t, "5", r.header.Get("X-Image-Meta-Property-E"))
	r = e.image(t, idBob, http.MethodPut, path, map[string]string{"X-Image-Meta-Is-Public": "true"}, "")
	require.Equal(t, http.StatusForbidden, r.status)

	// A read share alone does not allow updates.
	e.share(t, o, "read="+idBob.UUID)
	r = e.image(t, idBob, http.MethodPut, path, map[string]string{"X-Image-Meta-Property-E": "6"}, "")
	require.Equal(t, http.StatusForbidden, r.status)
	assert.EqualValues(t, 4, e.srv.Stats().ImageUpdates)
}

func TestUnregister(t *testing.T) {
	e := newIDEnv(t, Config{})
	o := e.mkObject(t, idAlice, "images", "gone", pkData(10))
	e.mustRegister(t, o, "gone", "X-Image-Meta-Is-Public", "true")
	path := "/images/" + o.uuid

	r := e.image(t, idBob, http.MethodDelete, path, nil, "")
	require.Equal(t, http.StatusForbidden, r.status, "a reader is not a writer")
	r = e.image(t, idAlice, http.MethodDelete, path, nil, "")
	require.Equal(t, http.StatusNoContent, r.status)
	assert.Empty(t, r.body)
	assert.Equal(t, http.StatusNotFound, e.image(t, idAlice, http.MethodHead, path, nil, "").status)
	assert.Equal(t, http.StatusNotFound, e.image(t, idAlice, http.MethodDelete, path, nil, "").status)
	assert.Empty(t, pkListIDs(t, e, idAlice, "/images/"))

	// The object, its UUID and its sharing remain.
	again := e.headObject(t, idAlice, o)
	assert.Equal(t, o.uuid, again.uuid)
	read, _ := e.sharing(t, o)
	assert.Equal(t, []string{"*", idAlice.UUID}, read)
	// Re-registering gives the same id.
	r = e.mustRegister(t, o, "back")
	assert.Equal(t, o.uuid, r.header.Get("X-Image-Meta-Id"))
	assert.EqualValues(t, 1, e.srv.Stats().ImageUpdates)
}

func pkListIDs(t *testing.T, e *idEnv, u User, path string) []string {
	t.Helper()
	r := e.image(t, u, http.MethodGet, path, nil, "")
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	ids := []string{}
	for _, img := range r.json(t)["images"].([]any) {
		ids = append(ids, img.(map[string]any)["id"].(string))
	}
	return ids
}

func pkDetail(t *testing.T, e *idEnv, u User, id string) map[string]any {
	t.Helper()
	r := e.image(t, u, http.MethodGet, "/images/detail", nil, "")
	require.Equal(t, http.StatusOK, r.status)
	for _, img := range r.json(t)["images"].([]any) {
		if m := img.(map[string]any); m["id"] == id {
			return m
		}
	}
	t.Fatalf("image %s not listed", id)
	return nil
}

func pkKeys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func TestListImages(t *testing.T) {
	e := newIDEnv(t, Config{})
	// Sizes and names in different orders, so each sort is visible.
	specs := []struct {
		name string
		size int
	}{{"bravo", 30}, {"alpha", 10}, {"charlie", 20}}
	ids := map[string]string{}
	for _, s := range specs {
		o := e.mkObject(t, idAlice, "images", s.name+".diskdump", pkData(s.size))
		e.mustRegister(t, o, s.name)
		ids[s.name] = o.uuid
	}
	// An image of Bob's that is not shared, and one Alice cannot see.
	bo := e.mkObject(t, idBob, "images", "bobs", pkData(5))
	e.mustRegister(t, bo, "bobs")

	for _, c := range []struct {
		query string
		want  []string
	}{
		{"?sort_key=name&sort_dir=asc", []string{"alpha", "bravo", "charlie"}},
		{"?sort_key=name", []string{"charlie", "bravo", "alpha"}},
		{"?sort_key=size&sort_dir=asc", []string{"alpha", "charlie", "bravo"}},
		{"?sort_key=size&sort_dir=desc", []string{"bravo", "charlie", "alpha"}},
		// Filters are parsed but not applied.
		{"?sort_key=name&sort_dir=asc&size_max=15&size_min=12&name=alpha&status=x", []string{"alpha", "bravo", "charlie"}},
	} {
		var want []string
		for _, n := range c.want {
			want = append(want, ids[n])
		}
		assert.Equal(t, want, pkListIDs(t, e, idAlice, "/images/"+c.query), c.query)
		assert.Equal(t, want, pkListIDs(t, e, idAlice, "/images/detail"+c.query), c.query)
	}

	// Default sort: created_at descending.
	r := e.image(t, idAlice, http.MethodGet, "/images", nil, "")
	require.Equal(t, http.StatusOK, r.status)
	imgs := r.json(t)["images"].([]any)
	require.Len(t, imgs, 3)
	for _, img := range imgs {
		assert.Equal(t, []string{"container_format", "disk_format", "id", "name", "size", "status"}, pkKeys(img.(map[string]any)))
	}
	d := pkDetail(t, e, idAlice, ids["alpha"])
	var prev string
	for _, img := range r.json(t)["images"].([]any) {
		id := img.(map[string]any)["id"].(string)
		ca := pkDetail(t, e, idAlice, id)["created_at"].(string)
		if prev != "" {
			assert.LessOrEqual(t, ca, prev)
		}
		prev = ca
	}
	assert.Equal(t, []string{"checksum", "container_format", "created_at", "deleted_at", "disk_format", "id",
		"is_public", "is_snapshot", "location", "name", "owner", "properties", "size", "status", "updated_at"}, pkKeys(d))
	assert.Equal(t, false, d["is_public"])
	assert.Equal(t, false, d["is_snapshot"])
	assert.EqualValues(t, 10, d["size"])
	assert.Equal(t, "AVAILABLE", d["status"])
	assert.Equal(t, idAlice.UUID, d["owner"])
	assert.Equal(t, map[string]any{}, d["properties"])
	assert.Equal(t, "", d["deleted_at"])

	for _, c := range []struct{ query, message string }{
		{"?sort_key=owner", "Invalid 'sort_key'"},
		{"?sort_dir=up", "Invalid 'sort_dir'"},
		{"?size_max=", "Malformed request."},
		{"?size_min=abc", "Malformed request."},
		{"?size_max=1.5", "Malformed request."},
	} {
		r := e.image(t, idAlice, http.MethodGet, "/images/detail"+c.query, nil, "")
		require.Equal(t, http.StatusBadRequest, r.status, c.query)
		assert.Equal(t, c.message, r.fault(t, wire.FaultBadRequest), c.query)
	}
	assert.Equal(t, []string{bo.uuid}, pkListIDs(t, e, idBob, "/images/"))
}

func TestMembers(t *testing.T) {
	e := newIDEnv(t, Config{})
	o := e.mkObject(t, idAlice, "images", "mem", pkData(10))
	e.mustRegister(t, o, "mem")
	path := "/images/" + o.uuid + "/members"

	members := func(u User) idResp { return e.image(t, u, http.MethodGet, path, nil, "") }
	r := members(idAlice)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, `{"members": [{"member_id": "`+idAlice.UUID+`", "can_share": false}]}`, string(r.body))
	assert.Equal(t, http.StatusForbidden, members(idBob).status)

	// Add Bob: he can read the image and its members, and sees it shared.
	require.Equal(t, http.StatusNoContent, e.image(t, idAlice, http.MethodPut, path+"/"+idBob.UUID, nil, "").status)
	r = members(idBob)
	require.Equal(t, http.StatusOK, r.status)
	assert.Contains(t, string(r.body), idBob.UUID)
	assert.Equal(t, []string{o.uuid}, pkListIDs(t, e, idBob, "/images/"))
	r = e.image(t, idBob, http.MethodGet, "/shared-images/"+idAlice.UUID, nil, "")
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, `{"shared_images": [{"image_id": "`+o.uuid+`", "can_share": false}]}`, string(r.body))
	r = e.image(t, idBob, http.MethodGet, "/shared-images/"+idBob.UUID, nil, "")
	assert.Equal(t, `{"shared_images": []}`, string(r.body))

	// Bob is not the owner: he cannot add others.
	r = e.image(t, idBob, http.MethodPut, path+"/someone", nil, "")
	require.Equal(t, http.StatusForbidden, r.status)

	// Replace the list; "*" is kept.
	r = e.image(t, idAlice, http.MethodPut, "/images/"+o.uuid, map[string]string{"X-Image-Meta-Is-Public": "true"}, "")
	require.Equal(t, http.StatusOK, r.status)
	r = e.image(t, idAlice, http.MethodPut, path, idJSONCT, `{"memberships": [{"member_id": "foo1"}, {"member_id": "foo2"}]}`)
	require.Equal(t, http.StatusNoContent, r.status, "body %s", r.body)
	read, _ := e.sharing(t, o)
	assert.Equal(t, []string{"*", "foo1", "foo2"}, read)
	r = e.image(t, idBob, http.MethodGet, "/shared-images/"+idAlice.UUID, nil, "")
	assert.Equal(t, `{"shared_images": []}`, string(r.body), "public images are not 'shared'")

	// Remove one (and an absent one: no error).
	require.Equal(t, http.StatusNoContent, e.image(t, idAlice, http.MethodDelete, path+"/foo1", nil, "").status)
	require.Equal(t, http.StatusNoContent, e.image(t, idAlice, http.MethodDelete, path+"/nobody", nil, "").status)
	read, _ = e.sharing(t, o)
	assert.Equal(t, []string{"*", "foo2"}, read)

	bad := []struct {
		header  map[string]string
		body    string
		status  int
		message string
	}{
		{nil, `{"memberships": []}`, 400, "Missing Content-Type header field"},
		{map[string]string{"Content-Type": "text/plain"}, `{"memberships": []}`, 400, "Unsupported Content-type: 'text/plain'"},
		{idJSONCT, `{"memberships": `, 400, "Could not decode request body as JSON"},
		{idJSONCT, `{}`, 400, "Malformed request. Missing attribute 'memberships'."},
		{idJSONCT, `{"memberships": {"member_id": "x"}}`, 400, "Malformed request. Invalid 'memberships' field"},
		{idJSONCT, `{"memberships": ["x"]}`, 400, "Invalid 'memberships' field"},
		{idJSONCT, `{"memberships": [{"id": "x"}]}`, 400, "Malformed request. Missing attribute 'member_id'."},
		{idJSONCT, `[]`, 500, "Unexpected error"},
	}
	for _, c := range bad {
		r := e.image(t, idAlice, http.MethodPut, path, c.header, c.body)
		require.Equal(t, c.status, r.status, c.body)
		name := wire.FaultBadRequest
		if c.status == 500 {
			name = wire.FaultInternal
		}
		assert.Equal(t, c.message, r.fault(t, name), c.body)
	}
	r = e.image(t, idBob, http.MethodPut, path, idJSONCT, `{"memberships": []}`)
	assert.Equal(t, http.StatusForbidden, r.status, "replace is owner only")
	read, _ = e.sharing(t, o)
	assert.Equal(t, []string{"*", "foo2"}, read)
}

func TestPlanktonRoutes(t *testing.T) {
	e := newIDEnv(t, Config{})
	for _, p := range []string{"/image", "/image/", "/image/versions"} {
		r := e.do(t, http.MethodGet, p, nil, "")
		require.Equal(t, http.StatusOK, r.status, p)
		vs := r.json(t)["versions"].([]any)
		require.Len(t, vs, 2)
		v := vs[0].(map[string]any)
		assert.Equal(t, "v1.0", v["id"])
		assert.Equal(t, e.url+"/image/v1.0/", v["links"].([]any)[0].(map[string]any)["href"])
	}
	for _, p := range []string{"/image/v2/images", "/image/v1.0/nothing", "/image/v1.0/images/a/b", "/images", "/image/v1.0/images/a.b"} {
		r := e.do(t, http.MethodGet, p, map[string]string{"X-Auth-Token": idAlice.Token}, "")
		require.Equal(t, http.StatusBadRequest, r.status, p)
		assert.Equal(t, "API endpoint not found", r.fault(t, wire.FaultBadRequest), p)
	}
	// The /v1/ prefix serves the same API.
	r := e.do(t, http.MethodGet, "/image/v1/images", pkAuth(idAlice), "")
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, `{"images": []}`, string(r.body))

	// Demultiplexers answer Django's bare 405.
	for _, c := range []struct{ method, path, allow string }{
		{http.MethodDelete, "/images/", "GET, POST"},
		{http.MethodPatch, "/images/00000000000000000000000000000000", "GET, HEAD, PUT, DELETE"},
		{http.MethodPost, "/images/x/members", "GET, PUT"},
		{http.MethodGet, "/images/x/members/y", "DELETE, PUT"},
	} {
		r := e.do(t, c.method, "/image/v1.0"+c.path, nil, "")
		require.Equal(t, http.StatusMethodNotAllowed, r.status, c.path)
		assert.Equal(t, c.allow, r.header.Get("Allow"), c.path)
		assert.Empty(t, r.body, c.path)
	}
	// Views with a single method answer an API fault.
	for _, p := range []string{"/image/v1.0/images/detail", "/image/v1.0/shared-images/x", "/image/versions"} {
		r := e.do(t, http.MethodPost, p, nil, "")
		require.Equal(t, http.StatusMethodNotAllowed, r.status, p)
		assert.Equal(t, "GET", r.header.Get("Allow"), p)
		assert.Equal(t, "Method not allowed", r.fault(t, wire.FaultNotAllowed), p)
	}
	r = e.do(t, http.MethodGet, "/image/v1.0/images/", map[string]string{"X-Auth-Token": "nope"}, "")
	require.Equal(t, http.StatusUnauthorized, r.status)
	assert.Equal(t, "UNAUTHORIZED", r.fault(t, wire.FaultGeneric))
}

func TestQuotaUsage(t *testing.T) {
	e := newIDEnv(t, Config{Quota: 1 << 20})
	e.mkObject(t, idAlice, "images", "a", pkData(3000))
	r := e.do(t, http.MethodGet, "/account/v1.0/quotas", pkAuth(idAlice), "")
	require.Equal(t, http.StatusOK, r.status)
	q := r.json(t)[idAlice.UUID].(map[string]any)["pithos.diskspace"].(map[string]any)
	assert.EqualValues(t, 3000, q["usage"])
	assert.EqualValues(t, 3000, q["project_usage"])
	assert.EqualValues(t, 1<<20, q["limit"])
}
