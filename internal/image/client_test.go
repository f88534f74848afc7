package image

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/location"
	"github.com/imagesync/imagesync/internal/rest"
	"github.com/imagesync/imagesync/internal/sandbox"
	"github.com/imagesync/imagesync/internal/sandbox/sandboxtest"
)

// recorder is a Doer that passes requests on to a real HTTP client and keeps
// what went over the wire, so tests can count writes and check headers.
type recorder struct {
	next rest.Doer
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	Method, Path string
	Header       http.Header
	Wire         string // request line and headers as sent
	Status       int
}

func (r *recorder) Do(req *http.Request) (*http.Response, error) {
	wire, err := httputil.DumpRequestOut(req, false)
	if err != nil {
		return nil, err
	}
	resp, err := r.next.Do(req)
	rec := recorded{Method: req.Method, Path: req.URL.EscapedPath(), Header: req.Header.Clone(), Wire: string(wire)}
	if resp != nil {
		rec.Status = resp.StatusCode
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, rec)
	r.mu.Unlock()
	return resp, err
}

func (r *recorder) all() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.reqs...)
}

// writes counts the requests that can change something.
func (r *recorder) writes() int {
	n := 0
	for _, q := range r.all() {
		if q.Method != http.MethodGet && q.Method != http.MethodHead {
			n++
		}
	}
	return n
}

func (r *recorder) last() recorded {
	all := r.all()
	if len(all) == 0 {
		return recorded{}
	}
	return all[len(all)-1]
}

func (r *recorder) reset() {
	r.mu.Lock()
	r.reqs = nil
	r.mu.Unlock()
}

// plEnv is a sandbox with a Plankton client for Alice and one for Bob.
type plEnv struct {
	cloud      *sandboxtest.Cloud
	alice, bob *Client
	aliceRec   *recorder
	bobRec     *recorder
	ctx        context.Context
}

func newPlEnv(t *testing.T) *plEnv {
	t.Helper()
	c := sandboxtest.Start(t, sandbox.Config{BlockSize: 1024})
	e := &plEnv{cloud: c, ctx: context.Background()}
	e.aliceRec = &recorder{next: c.HTTP.Client()}
	e.bobRec = &recorder{next: c.HTTP.Client()}
	e.alice = NewClient(e.imageURL(), sandboxtest.Alice.Token, e.aliceRec)
	e.bob = NewClient(e.imageURL(), sandboxtest.Bob.Token, e.bobRec)
	return e
}

func (e *plEnv) imageURL() string { return e.cloud.ImageURL() + "/v1.0" }

// pithos sends one raw Pithos request (the Pithos client is not used here, so
// that these tests depend only on the sandbox).
func (e *plEnv) pithos(t *testing.T, u sandbox.User, method, path string, body []byte, hdr map[string]string) *http.Response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(e.ctx, method, e.cloud.PithosURL()+"/"+location.EscapePath(path), rd)
	require.NoError(t, err)
	req.Header.Set("X-Auth-Token", u.Token)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if body == nil && (method == http.MethodPut || method == http.MethodPost) {
		req.ContentLength = 0
		req.Body = http.NoBody
	}
	resp, err := e.cloud.HTTP.Client().Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// upload creates the container (if needed) and the object, and returns the
// object's location, UUID (the future image id) and Merkle hash.
func (e *plEnv) upload(t *testing.T, u sandbox.User, container, object string, data []byte) (location.Location, string, string) {
	t.Helper()
	resp := e.pithos(t, u, http.MethodPut, u.UUID+"/"+container, nil, nil)
	require.Contains(t, []int{201, 202}, resp.StatusCode, "create container %s", container)
	resp = e.pithos(t, u, http.MethodPut, u.UUID+"/"+container+"/"+object, data, map[string]string{"Content-Type": "application/octet-stream"})
	require.Equal(t, http.StatusCreated, resp.StatusCode, "put object %s", object)
	resp = e.pithos(t, u, http.MethodHead, u.UUID+"/"+container+"/"+object, nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	uuid, hash := resp.Header.Get("X-Object-UUID"), resp.Header.Get("X-Object-Hash")
	require.NotEmpty(t, uuid)
	require.NotEmpty(t, hash)
	return location.Location{Account: u.UUID, Container: container, Object: object}, uuid, hash
}

func imageData(seed string, n int) []byte {
	return bytes.Repeat([]byte(seed), n)
}

func strp(s string) *string { return &s }
func boolp(b bool) *bool    { return &b }

func TestQuoteUnquote(t *testing.T) {
	tests := []struct{ in, quoted string }{
		{"my image ü", "my%20image%20%C3%BC"},
		{"a/b_c.d-e", "a/b_c.d-e"},
		{`q"#%?&=+`, "q%22%23%25%3F%26%3D%2B"},
		{"Débian 8", "D%C3%A9bian%208"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.quoted, quote(tt.in), tt.in)
		assert.Equal(t, tt.in, rest.Unquote(tt.quoted), tt.quoted)
	}
	// Python's unquote keeps malformed escapes and '+'.
	assert.Equal(t, "50%", rest.Unquote("50%"))
	assert.Equal(t, "%zz+1%4", rest.Unquote("%zz+1%4"))
	assert.Equal(t, "a b", rest.Unquote("a%20b"))
}

func TestPropertyHeader(t *testing.T) {
	tests := []struct{ key, header string }{
		{"os", "X-Image-Meta-Property-os"},
		{"root_partition", "X-Image-Meta-Property-root-partition"},
		{"OS-Type.x", "X-Image-Meta-Property-OS-Type-x"},
		{"größe", "X-Image-Meta-Property-gr%C3%B6%C3%9Fe"},
		{"two words", "X-Image-Meta-Property-two%20words"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.header, propertyHeader(tt.key))
	}
	require.Error(t, checkPropertyKeys([]string{"OS", "os"}))
	require.Error(t, checkPropertyKeys([]string{"a-b", "a_b"}))
	require.Error(t, checkPropertyKeys([]string{""}))
	require.NoError(t, checkPropertyKeys([]string{"a", "b"}))
}

func TestDecodeImageHeaders(t *testing.T) {
	// The example answer of the Cyclades/Image API guide, as Go's client
	// hands it over (canonical header names).
	h := http.Header{}
	for _, kv := range [][2]string{
		{"x-image-meta-id", "940509eb-eb4f-496c-8443-22ffd24912e9"},
		{"x-image-meta-location", "pithos://25cced7-bd53-4145-91ee-cf4737e9fb2/images/some%20image.diskdump"},
		{"x-image-meta-name", "Debian%20Desktop"},
		{"x-image-meta-disk-format", "diskdump"},
		{"x-image-meta-container-format", "bare"},
		{"x-image-meta-size", "3399127040"},
		{"x-image-meta-checksum", "d0f28e4d72927c90eadf30917d94d0156781fe1351ed16402b538316d404"},
		{"x-image-meta-created-at", "2013-02-26 12:04:31"},
		{"x-image-meta-updated-at", "2013-02-26 12:05:28"},
		{"x-image-meta-deleted-at", ""},
		{"x-image-meta-status", "AVAILABLE"},
		{"x-image-meta-is-public", "True"},
		{"x-image-meta-is-snapshot", "False"},
		{"x-image-meta-owner", "25cced7-bd53-4145-91ee-cf4737e9fb2"},
		{"x-image-meta-description", "a%20b"},
		{"x-image-meta-property-partition-table", "msdos"},
		{"x-image-meta-property-description", "Debian%206.0.7%20%28Squeeze%29%20Desktop"},
		{"x-image-meta-property-gr%C3%B6%C3%9Fe", "42%25"},
		{"X-Other", "ignored"},
	} {
		h.Set(kv[0], kv[1])
	}
	img, err := decodeImageHeaders(h)
	require.NoError(t, err)
	assert.Equal(t, &Image{
		ID:              "940509eb-eb4f-496c-8443-22ffd24912e9",
		Name:            "Debian Desktop",
		DiskFormat:      "diskdump",
		ContainerFormat: "bare",
		Status:          "AVAILABLE",
		Owner:           "25cced7-bd53-4145-91ee-cf4737e9fb2",
		Checksum:        "d0f28e4d72927c90eadf30917d94d0156781fe1351ed16402b538316d404",
		Location:        "pithos://25cced7-bd53-4145-91ee-cf4737e9fb2/images/some%20image.diskdump",
		Size:            3399127040,
		IsPublic:        true,
		Description:     "a b",
		CreatedAt:       "2013-02-26 12:04:31",
		UpdatedAt:       "2013-02-26 12:05:28",
		Properties: map[string]string{
			"partition_table": "msdos",
			"description":     "Debian 6.0.7 (Squeeze) Desktop",
			"größe":           "42%",
		},
	}, img)
	loc, err := img.ParseLocation()
	require.NoError(t, err)
	assert.Equal(t, "some image.diskdump", loc.Object)

	_, err = decodeImageHeaders(http.Header{"Content-Type": {"text/html"}})
	require.Error(t, err)
	h.Set("x-image-meta-size", "big")
	_, err = decodeImageHeaders(h)
	require.Error(t, err)
}

func TestRegisterOnTheWire(t *testing.T) {
	e := newPlEnv(t)
	loc, uuid, hash := e.upload(t, sandboxtest.Alice, "images", "dir/my img.diskdump", imageData("x", 3000))
	e.aliceRec.reset()

	img, err := e.alice.Register(e.ctx, "my image ü", loc, RegisterParams{
		DiskFormat: "diskdump", ContainerFormat: "bare", IsPublic: true, Checksum: hash,
		Properties: map[string]string{"osfamily": "linux", "root_partition": "1", "description": "Débian 8 ü"},
	})
	require.NoError(t, err)

	reqs := e.aliceRec.all()
	require.Len(t, reqs, 1)
	r := reqs[0]
	assert.Equal(t, "POST", r.Method)
	assert.Equal(t, "/image/v1.0/images/", r.Path)
	wire := r.Wire
	assert.Contains(t, wire, "POST /image/v1.0/images/ HTTP/1.1\r\n")
	assert.Contains(t, wire, "\r\nContent-Length: 0\r\n")
	assert.Contains(t, wire, "\r\nX-Image-Meta-Name: my%20image%20%C3%BC\r\n")
	assert.Contains(t, wire, "\r\nX-Image-Meta-Location: pithos://"+sandboxtest.Alice.UUID+"/images/dir/my%20img.diskdump\r\n")
	assert.Contains(t, wire, "\r\nx-image-meta-disk-format: diskdump\r\n")
	assert.Contains(t, wire, "\r\nx-image-meta-container-format: bare\r\n")
	assert.Contains(t, wire, "\r\nx-image-meta-is-public: True\r\n")
	assert.Contains(t, wire, "\r\nx-image-meta-checksum: "+hash+"\r\n")
	assert.Contains(t, wire, "\r\nX-Image-Meta-Property-root-partition: 1\r\n")
	assert.Contains(t, wire, "\r\nX-Image-Meta-Property-description: D%C3%A9bian%208%20%C3%BC\r\n")
	assert.Contains(t, wire, "\r\nX-Auth-Token: "+sandboxtest.Alice.Token+"\r\n")
	assert.NotContains(t, strings.ToLower(wire), "x-image-meta-size")

	assert.Equal(t, uuid, img.ID, "the image id is the object's UUID")
	assert.Equal(t, "my image ü", img.Name)
	assert.Equal(t, "diskdump", img.DiskFormat)
	assert.Equal(t, "bare", img.ContainerFormat)
	assert.True(t, img.IsPublic)
	assert.Equal(t, hash, img.Checksum)
	assert.EqualValues(t, 3000, img.Size)
	assert.Equal(t, sandboxtest.Alice.UUID, img.Owner)
	assert.Equal(t, "AVAILABLE", img.Status)
	assert.Equal(t, map[string]string{"osfamily": "linux", "root_partition": "1", "description": "Débian 8 ü"}, img.Properties)
	got, err := img.ParseLocation()
	require.NoError(t, err)
	assert.Equal(t, loc, got)

	// HEAD and the detailed listing say the same.
	head, err := e.alice.Get(e.ctx, img.ID)
	require.NoError(t, err)
	assert.Equal(t, img, head)
	list, err := e.alice.ListDetail(e.ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, img, list[0])
}

func TestRegisterErrors(t *testing.T) {
	e := newPlEnv(t)
	loc, _, hash := e.upload(t, sandboxtest.Alice, "images", "a.diskdump", imageData("a", 100))

	t.Run("missing file", func(t *testing.T) {
		missing := loc
		missing.Object = "nope.diskdump"
		_, err := e.alice.Register(e.ctx, "x", missing, RegisterParams{})
		require.Error(t, err)
		assert.True(t, IsNotFound(err))
		assert.Contains(t, err.Error(), "image file "+missing.String()+" does not exist (upload it first)")
	})
	t.Run("wrong checksum", func(t *testing.T) {
		_, err := e.alice.Register(e.ctx, "x", loc, RegisterParams{Checksum: strings.Repeat("0", len(hash))})
		require.Error(t, err)
		assert.Equal(t, http.StatusBadRequest, rest.StatusOf(err))
		assert.Contains(t, err.Error(), "Invalid checksum field")
	})
	t.Run("not the owner", func(t *testing.T) {
		_, err := e.bob.Register(e.ctx, "x", loc, RegisterParams{})
		require.Error(t, err)
		assert.True(t, IsForbidden(err))
		assert.Contains(t, err.Error(), "only the owner")
	})
	t.Run("bad token", func(t *testing.T) {
		c := NewClient(e.imageURL(), "not-a-token", e.cloud.HTTP.Client())
		_, err := c.Register(e.ctx, "x", loc, RegisterParams{})
		require.Error(t, err)
		var re *rest.Error
		require.ErrorAs(t, err, &re)
		assert.Equal(t, http.StatusUnauthorized, re.Status)
		assert.True(t, IsUnauthorized(err))
		assert.False(t, rest.IsTemporary(err))
		assert.NotContains(t, err.Error(), "not-a-token")
	})
	t.Run("checked before any request", func(t *testing.T) {
		e.aliceRec.reset()
		noAccount := loc
		noAccount.Account = ""
		dotdot := loc
		dotdot.Object = "a/../b"
		for _, tc := range []struct {
			name string
			loc  location.Location
			p    RegisterParams
		}{
			{"", loc, RegisterParams{}},
			{"x", noAccount, RegisterParams{}},
			{"x", dotdot, RegisterParams{}},
			{"x", loc, RegisterParams{DiskFormat: "qcow2"}},
			{"x", loc, RegisterParams{ContainerFormat: "baree"}},
			{"x", loc, RegisterParams{Properties: map[string]string{"OS": "a", "os": "b"}}},
		} {
			_, err := e.alice.Register(e.ctx, tc.name, tc.loc, tc.p)
			require.Error(t, err, "%+v", tc)
		}
		assert.Empty(t, e.aliceRec.all())
	})
}

func TestGetUpdateUnregister(t *testing.T) {
	e := newPlEnv(t)
	loc, uuid, _ := e.upload(t, sandboxtest.Alice, "images", "u.diskdump", imageData("u", 10))
	img, err := e.alice.Register(e.ctx, "U", loc, RegisterParams{Properties: map[string]string{"os": "linux", "user": "root"}})
	require.NoError(t, err)

	up, err := e.alice.Update(e.ctx, img.ID, UpdateParams{
		Name: strp("U 2 #?%"), ContainerFormat: strp("ovf"),
		SetProperties: map[string]string{"greet": "Hi there", "user": "user"}, DeleteProperties: []string{"os"},
	})
	require.NoError(t, err)
	assert.Equal(t, "U 2 #?%", up.Name)
	assert.Equal(t, "ovf", up.ContainerFormat)
	assert.Equal(t, "diskdump", up.DiskFormat)
	assert.Equal(t, map[string]string{"greet": "Hi there", "user": "user"}, up.Properties)
	wire := e.aliceRec.last().Wire
	assert.Contains(t, wire, "PUT /image/v1.0/images/"+uuid+" HTTP/1.1\r\n")
	assert.Contains(t, wire, "\r\nContent-Length: 0\r\n")
	assert.Contains(t, wire, "\r\nX-Image-Meta-Property-os: \r\n", "deleting sends an empty value")

	head, err := e.alice.Get(e.ctx, img.ID)
	require.NoError(t, err)
	assert.Equal(t, up, head)

	e.aliceRec.reset()
	for _, p := range []UpdateParams{
		{},
		{Name: strp("")},
		{DiskFormat: strp("raw")},
		{SetProperties: map[string]string{"a": ""}},
		{SetProperties: map[string]string{"a": "1"}, DeleteProperties: []string{"A"}},
	} {
		_, err := e.alice.Update(e.ctx, img.ID, p)
		require.Error(t, err, "%+v", p)
	}
	_, err = e.alice.Update(e.ctx, "", UpdateParams{Name: strp("x")})
	require.Error(t, err)
	assert.Empty(t, e.aliceRec.all(), "invalid updates send nothing")

	_, err = e.bob.Update(e.ctx, img.ID, UpdateParams{Name: strp("mine")})
	assert.True(t, IsForbidden(err), "%v", err)

	require.NoError(t, e.alice.Unregister(e.ctx, img.ID))
	_, err = e.alice.Get(e.ctx, img.ID)
	assert.True(t, IsNotFound(err), "%v", err)
	assert.Contains(t, err.Error(), "no such image")
	err = e.alice.Unregister(e.ctx, img.ID)
	assert.True(t, IsNotFound(err), "%v", err)
	// The file itself stays, with the same UUID.
	resp := e.pithos(t, sandboxtest.Alice, http.MethodHead, loc.Account+"/"+loc.Container+"/"+loc.Object, nil, nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, uuid, resp.Header.Get("X-Object-UUID"))

	_, err = e.alice.Get(e.ctx, "00000000-0000-4000-8000-000000000000")
	assert.True(t, IsNotFound(err), "%v", err)
}

func TestList(t *testing.T) {
	e := newPlEnv(t)
	for _, n := range []struct {
		name string
		size int
	}{{"b", 300}, {"a", 100}, {"c", 200}} {
		loc, _, _ := e.upload(t, sandboxtest.Alice, "images", n.name+".diskdump", imageData(n.name, n.size))
		_, err := e.alice.Register(e.ctx, n.name, loc, RegisterParams{Properties: map[string]string{"k": n.name}})
		require.NoError(t, err)
	}
	bobLoc, _, _ := e.upload(t, sandboxtest.Bob, "images", "bob.diskdump", imageData("z", 50))
	_, err := e.bob.Register(e.ctx, "z-bob", bobLoc, RegisterParams{IsPublic: true})
	require.NoError(t, err)

	names := func(imgs []*Image) []string {
		var out []string
		for _, i := range imgs {
			out = append(out, i.Name)
		}
		return out
	}
	short, err := e.alice.List(e.ctx, ListOptions{SortKey: "name"})
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b", "c", "z-bob"}, names(short))
	assert.Contains(t, e.aliceRec.last().Path+"?", "/image/v1.0/images/")
	assert.Contains(t, e.aliceRec.last().Wire, "GET /image/v1.0/images/?sort_dir=asc&sort_key=name HTTP/1.1")
	assert.Empty(t, short[0].Properties, "the short listing has no properties")
	assert.EqualValues(t, 100, short[0].Size)

	detail, err := e.alice.ListDetail(e.ctx, ListOptions{SortKey: "size", SortDir: "desc"})
	require.NoError(t, err)
	assert.Equal(t, []string{"b", "c", "a", "z-bob"}, names(detail))
	assert.Equal(t, map[string]string{"k": "b"}, detail[0].Properties)
	assert.True(t, detail[3].IsPublic)

	mine, err := e.alice.ListDetail(e.ctx, ListOptions{Owner: sandboxtest.Alice.UUID, SortKey: "name"})
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b", "c"}, names(mine))

	// The server ignores filters; the client applies them.
	filtered, err := e.alice.List(e.ctx, ListOptions{Filters: map[string]string{"size_min": "150", "size_max": " 250 "}})
	require.NoError(t, err)
	assert.Equal(t, []string{"c"}, names(filtered))
	assert.Contains(t, e.aliceRec.last().Wire, "size_min=150")
	byName, err := e.alice.List(e.ctx, ListOptions{Filters: map[string]string{"name": "z-bob", "status": "available"}})
	require.NoError(t, err)
	assert.Equal(t, []string{"z-bob"}, names(byName))

	// Bob sees his image and nothing of Alice's.
	bobs, err := e.bob.List(e.ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"z-bob"}, names(bobs))

	e.aliceRec.reset()
	for _, o := range []ListOptions{
		{SortKey: "owner"},
		{SortDir: "up"},
		{Filters: map[string]string{"size_min": "1k"}},
		{Filters: map[string]string{"size_max": ""}},
		{Filters: map[string]string{"is_public": "true"}},
		{Owner: sandboxtest.Alice.UUID}, // needs the detailed listing
	} {
		_, err := e.alice.List(e.ctx, o)
		require.Error(t, err, "%+v", o)
	}
	_, err = e.alice.List(e.ctx, ListOptions{}, ListOptions{})
	require.Error(t, err)
	assert.Empty(t, e.aliceRec.all(), "invalid options are rejected before any request")
}

func TestMembers(t *testing.T) {
	e := newPlEnv(t)
	loc, _, _ := e.upload(t, sandboxtest.Alice, "images", "m.diskdump", imageData("m", 10))
	img, err := e.alice.Register(e.ctx, "M", loc, RegisterParams{})
	require.NoError(t, err)
	alice, bob := sandboxtest.Alice.UUID, sandboxtest.Bob.UUID

	members, err := e.alice.ListMembers(e.ctx, img.ID)
	require.NoError(t, err)
	assert.Equal(t, []string{alice}, members, "a registration shares the image with its owner only")
	_, err = e.bob.Get(e.ctx, img.ID)
	assert.True(t, IsForbidden(err), "%v", err)

	require.NoError(t, e.alice.SetMembers(e.ctx, img.ID, []string{bob}))
	wire := e.aliceRec.last().Wire
	assert.Contains(t, wire, "PUT /image/v1.0/images/"+img.ID+"/members HTTP/1.1\r\n")
	assert.Contains(t, wire, "\r\nContent-Type: application/json\r\n")
	members, err = e.alice.ListMembers(e.ctx, img.ID)
	require.NoError(t, err)
	assert.Equal(t, []string{bob}, members)
	got, err := e.bob.Get(e.ctx, img.ID)
	require.NoError(t, err)
	assert.Equal(t, "M", got.Name)
	shared, err := e.bob.ListShared(e.ctx, alice)
	require.NoError(t, err)
	assert.Equal(t, []string{img.ID}, shared)

	err = e.bob.SetMembers(e.ctx, img.ID, nil)
	assert.True(t, IsForbidden(err), "%v", err)
	assert.Contains(t, err.Error(), "only the image's owner")

	require.NoError(t, e.alice.RemoveMember(e.ctx, img.ID, bob))
	members, err = e.alice.ListMembers(e.ctx, img.ID)
	require.NoError(t, err)
	assert.Empty(t, members)
	require.NoError(t, e.alice.AddMember(e.ctx, img.ID, bob))
	members, err = e.alice.ListMembers(e.ctx, img.ID)
	require.NoError(t, err)
	assert.Equal(t, []string{bob}, members)
	require.NoError(t, e.alice.SetMembers(e.ctx, img.ID, []string{}))
	members, err = e.alice.ListMembers(e.ctx, img.ID)
	require.NoError(t, err)
	assert.Empty(t, members)

	e.aliceRec.reset()
	assert.Error(t, e.alice.SetMembers(e.ctx, img.ID, []string{"*"}))
	assert.Error(t, e.alice.SetMembers(e.ctx, img.ID, []string{"a,b"}))
	assert.Error(t, e.alice.AddMember(e.ctx, img.ID, ""))
	assert.Error(t, e.alice.RemoveMember(e.ctx, img.ID, "x/y"))
	assert.Empty(t, e.aliceRec.all())

	_, err = e.alice.ListMembers(e.ctx, "00000000-0000-4000-8000-000000000000")
	assert.True(t, IsNotFound(err), "%v", err)
	assert.Equal(t, []string{"a", "c"}, OtherMembers([]string{"a", "o", "c"}, "o"))
}

func TestUnauthorized(t *testing.T) {
	e := newPlEnv(t)
	loc, uuid, _ := e.upload(t, sandboxtest.Alice, "images", "t.diskdump", imageData("t", 10))
	_, err := e.alice.Register(e.ctx, "T", loc, RegisterParams{})
	require.NoError(t, err)
	e.cloud.RevokeToken(sandboxtest.Alice.Token)

	calls := map[string]func() error{
		"get":    func() error { _, err := e.alice.Get(e.ctx, uuid); return err },
		"list":   func() error { _, err := e.alice.List(e.ctx); return err },
		"update": func() error { _, err := e.alice.Update(e.ctx, uuid, UpdateParams{Name: strp("x")}); return err },
		"members": func() error {
			_, err := e.alice.ListMembers(e.ctx, uuid)
			return err
		},
		"reconcile": func() error {
			_, _, err := e.alice.Reconcile(e.ctx, ReconcileRequest{Location: loc, Desired: Metadata{Name: "T", DiskFormat: "diskdump", ContainerFormat: "bare"}})
			return err
		},
		"publish": func() error { _, err := e.alice.Publish(e.ctx, uuid, true, nil); return err },
	}
	for name, call := range calls {
		err := call()
		require.Error(t, err, name)
		var re *rest.Error
		require.True(t, errors.As(err, &re), "%s: %v", name, err)
		assert.Equal(t, http.StatusUnauthorized, re.Status, name)
		assert.True(t, IsUnauthorized(err), name)
		assert.Contains(t, err.Error(), "token was rejected", name)
	}
}
