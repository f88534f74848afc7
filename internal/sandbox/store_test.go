package sandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"

	"github.com/imagesync/imagesync/internal/sandbox/store"
	"github.com/imagesync/imagesync/internal/sandbox/wire"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func (e *psEnv) uuidOf(t *testing.T, u User, cont, name string) string {
	t.Helper()
	r := e.head(t, u, u.UUID, cont, name)
	require.Equal(t, http.StatusOK, r.status, "HEAD %s/%s", cont, name)
	return r.header.Get("X-Object-Uuid")
}

func (e *psEnv) versions(t *testing.T, u User, acct, cont, name string) [][2]any {
	t.Helper()
	r := e.do(t, &u, http.MethodGet, pp(acct, cont, name)+"?version=list&format=json", nil, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r)
	var v struct {
		Versions [][2]any `json:"versions"`
	}
	require.NoError(t, json.Unmarshal(r.body, &v))
	return v.Versions
}

func TestPithosUUIDRules(t *testing.T) {
	e := newPsEnv(t, Config{})
	st := e.srv.store
	e.mkContainer(t, psAlice, "c", nil)
	e.mkContainer(t, psAlice, "d", nil)
	e.mustPut(t, psAlice, "c", "o", []byte("one"), map[string]string{"X-Object-Meta-Keep": "no"})
	u1 := e.uuidOf(t, psAlice, "c", "o")
	require.NoError(t, st.UpdateObjectMeta(psAlice.UUID, psAlice.UUID, "c", "o", store.DomainPlankton, map[string]string{"plankton:name": "img"}, false))
	assert.Equal(t, u1, e.uuidOf(t, psAlice, "c", "o"), "domain meta update")

	// Data overwrite: same uuid, plankton meta carried, pithos meta replaced.
	e.mustPut(t, psAlice, "c", "o", []byte("two"), map[string]string{"X-Object-Meta-New": "yes"})
	assert.Equal(t, u1, e.uuidOf(t, psAlice, "c", "o"), "overwrite")
	oi, err := st.ObjectByPath(psAlice.UUID, psAlice.UUID, "c", "o")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"plankton:name": "img"}, oi.Meta[store.DomainPlankton])
	assert.Equal(t, map[string]string{"X-Object-Meta-New": "yes"}, oi.Meta[store.DomainPithos])

	r := e.do(t, &psAlice, http.MethodPost, pp(psAlice.UUID, "c", "o")+"?update", map[string]string{"X-Object-Meta-X": "1"}, nil)
	require.Equal(t, http.StatusAccepted, r.status)
	assert.Equal(t, u1, e.uuidOf(t, psAlice, "c", "o"), "meta POST")

	// Copy: a new uuid, the plankton meta comes along.
	r = e.put(t, psAlice, psAlice.UUID, "d", "copy", nil, map[string]string{"X-Copy-From": "/c/o", "X-Object-Meta-Extra": "e"})
	require.Equal(t, http.StatusCreated, r.status, "%s", r)
	cu := e.uuidOf(t, psAlice, "d", "copy")
	assert.NotEqual(t, u1, cu)
	cp, err := st.ObjectByPath(psAlice.UUID, psAlice.UUID, "d", "copy")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"plankton:name": "img"}, cp.Meta[store.DomainPlankton])
	assert.Equal(t, map[string]string{"X-Object-Meta-New": "yes", "X-Object-Meta-X": "1", "X-Object-Meta-Extra": "e"}, cp.Meta[store.DomainPithos])
	assert.Equal(t, oi.Hash, cp.Hash)

	// Move: the uuid follows the object.
	r = e.put(t, psAlice, psAlice.UUID, "d", "moved", nil, map[string]string{"X-Move-From": "/c/o"})
	require.Equal(t, http.StatusCreated, r.status, "%s", r)
	assert.Equal(t, u1, e.uuidOf(t, psAlice, "d", "moved"))
	assert.Equal(t, http.StatusNotFound, e.head(t, psAlice, psAlice.UUID, "c", "o").status)
	byUUID, err := st.ObjectByUUID(psAlice.UUID, "{"+u1+"}")
	require.NoError(t, err)
	assert.Equal(t, "moved", byUUID.Name)

	// Delete and re-create: a new uuid, no plankton meta.
	r = e.do(t, &psAlice, http.MethodDelete, pp(psAlice.UUID, "d", "moved"), nil, nil)
	require.Equal(t, http.StatusNoContent, r.status)
	_, err = st.ObjectByUUID(psAlice.UUID, u1)
	var nf *store.ErrNotFound
	assert.ErrorAs(t, err, &nf)
	e.mustPut(t, psAlice, "d", "moved", []byte("three"), nil)
	u3 := e.uuidOf(t, psAlice, "d", "moved")
	assert.NotEqual(t, u1, u3)
	oi, err = st.ObjectByPath(psAlice.UUID, psAlice.UUID, "d", "moved")
	require.NoError(t, err)
	assert.Empty(t, oi.Meta[store.DomainPlankton])
}

func TestPithosCopyMove(t *testing.T) {
	e := newPsEnv(t, Config{})
	e.mkContainer(t, psAlice, "c", nil)
	e.mkContainer(t, psBob, "b", nil)
	e.mustPut(t, psAlice, "c", "src", []byte("source"), map[string]string{"Content-Type": "text/plain"})
	hash := e.head(t, psAlice, psAlice.UUID, "c", "src").header.Get("X-Object-Hash")

	// COPY method with Destination.
	r := e.do(t, &psAlice, "COPY", pp(psAlice.UUID, "c", "src"), map[string]string{"Destination": "/c/dst"}, nil)
	require.Equal(t, http.StatusCreated, r.status, "%s", r)
	h := e.head(t, psAlice, psAlice.UUID, "c", "dst").header
	assert.Equal(t, hash, h.Get("X-Object-Hash"))
	assert.Equal(t, "text/plain", h.Get("Content-Type"))
	r = e.do(t, &psAlice, "COPY", pp(psAlice.UUID, "c", "src"), nil, nil)
	assert.Equal(t, "Missing Destination header", r.fault(t, wire.FaultBadRequest))
	r = e.do(t, &psAlice, "MOVE", pp(psAlice.UUID, "c", "dst"), map[string]string{"Destination": "/c/moved", "Content-Type": "application/x-new"}, nil)
	require.Equal(t, http.StatusCreated, r.status)
	assert.Equal(t, "application/x-new", e.head(t, psAlice, psAlice.UUID, "c", "moved").header.Get("Content-Type"))
	assert.Equal(t, http.StatusNotFound, e.head(t, psAlice, psAlice.UUID, "c", "dst").status)

	// Missing source, bad header, missing Content-Length.
	r = e.put(t, psAlice, psAlice.UUID, "c", "x", nil, map[string]string{"X-Copy-From": "/c/none"})
	assert.Equal(t, http.StatusNotFound, r.status)
	r = e.put(t, psAlice, psAlice.UUID, "c", "x", nil, map[string]string{"X-Copy-From": "c/none"})
	assert.Equal(t, "Invalid X-Copy-From header", r.fault(t, wire.FaultBadRequest))

	// Cross-account: without a share 403, with one fine; moving needs ownership.
	r = e.put(t, psBob, psBob.UUID, "b", "stolen", nil, map[string]string{"X-Copy-From": "/c/src", "X-Source-Account": psAlice.UUID})
	assert.Equal(t, http.StatusForbidden, r.status)
	e.mustPut(t, psAlice, "c", "src", []byte("source"), map[string]string{"X-Object-Sharing": "read=" + psBob.UUID})
	r = e.put(t, psBob, psBob.UUID, "b", "given", nil, map[string]string{"X-Copy-From": "/c/src", "X-Source-Account": psAlice.UUID})
	require.Equal(t, http.StatusCreated, r.status, "%s", r)
	r = e.put(t, psBob, psBob.UUID, "b", "taken", nil, map[string]string{"X-Move-From": "/c/src", "X-Source-Account": psAlice.UUID})
	assert.Equal(t, http.StatusForbidden, r.status)
	used, err := e.srv.store.Usage(psBob.UUID)
	require.NoError(t, err)
	assert.EqualValues(t, len("source"), used)

	// Directories with ?delimiter.
	for _, n := range []string{"dir/a", "dir/b/c", "dirx"} {
		e.mustPut(t, psAlice, "c", n, []byte(n), nil)
	}
	e.mustPut(t, psAlice, "c", "dir", nil, map[string]string{"Content-Type": "application/directory"})
	r = e.put(t, psAlice, psAlice.UUID, "c", "dir2", nil, map[string]string{"X-Copy-From": "/c/dir"}) // no delimiter: just the marker
	require.Equal(t, http.StatusCreated, r.status)
	r = e.do(t, &psAlice, http.MethodPut, pp(psAlice.UUID, "c", "dir3")+"?delimiter=/",
		map[string]string{"X-Move-From": "/c/dir", "Content-Type": "application/directory"}, []byte{})
	require.Equal(t, http.StatusCreated, r.status, "%s", r)
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c")+"?prefix=dir", nil, nil)
	assert.Equal(t, "dir2\ndir3\ndir3/a\ndir3/b/c\ndirx\n", string(r.body))
}

func TestPithosVersions(t *testing.T) {
	e := newPsEnv(t, Config{})
	e.mkContainer(t, psAlice, "auto", nil)
	e.mkContainer(t, psAlice, "none", map[string]string{"X-Container-Policy-Versioning": "none"})
	var serials []int64
	for i, body := range []string{"v1", "v2"} {
		r := e.mustPut(t, psAlice, "auto", "o", []byte(body), map[string]string{"X-Object-Meta-N": strconv.Itoa(i)})
		n, err := strconv.ParseInt(r.header.Get("X-Object-Version"), 10, 64)
		require.NoError(t, err)
		serials = append(serials, n)
	}
	r := e.do(t, &psAlice, http.MethodPost, pp(psAlice.UUID, "auto", "o")+"?update", map[string]string{"X-Object-Meta-M": "x"}, nil)
	require.Equal(t, http.StatusAccepted, r.status)
	vs := e.versions(t, psAlice, psAlice.UUID, "auto", "o")
	require.Len(t, vs, 3, "each write and each meta POST adds a version")
	assert.EqualValues(t, serials[0], vs[0][0])
	assert.Regexp(t, `^\d+\.\d{6}$`, vs[0][1], "timestamps are strings")
	assert.Less(t, serials[0], serials[1])

	r = e.do(t, &psAlice, http.MethodHead, pp(psAlice.UUID, "auto", "o")+"?version="+strconv.FormatInt(serials[0], 10), nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "0", r.header.Get("X-Object-Meta-N"), "old meta")
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "auto", "o")+"?version="+strconv.FormatInt(serials[0], 10), nil, nil)
	assert.Equal(t, "v1", string(r.body), "old data")
	for _, bad := range []string{"-1", "nope", "", "999999"} {
		r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "auto", "o")+"?version="+bad, nil, nil)
		assert.Equal(t, http.StatusNotFound, r.status, bad)
	}
	e.mustPut(t, psAlice, "auto", "other", []byte("x"), nil)
	r = e.do(t, &psAlice, http.MethodHead, pp(psAlice.UUID, "auto", "other")+"?version="+strconv.FormatInt(serials[0], 10), nil, nil)
	assert.Equal(t, http.StatusNotFound, r.status, "a version of another object")

	// The list survives the object's deletion.
	r = e.do(t, &psAlice, http.MethodDelete, pp(psAlice.UUID, "auto", "o"), nil, nil)
	require.Equal(t, http.StatusNoContent, r.status)
	assert.Len(t, e.versions(t, psAlice, psAlice.UUID, "auto", "o"), 3)

	for _, body := range []string{"a", "b", "c"} {
		e.mustPut(t, psAlice, "none", "o", []byte(body), nil)
	}
	assert.Len(t, e.versions(t, psAlice, psAlice.UUID, "none", "o"), 1, "versioning none keeps no history")
	r = e.do(t, &psAlice, http.MethodHead, pp(psAlice.UUID, "none"), nil, nil)
	assert.Equal(t, "1", r.header.Get("X-Container-Bytes-Used"))
}

func TestPithosRestartPersistence(t *testing.T) {
	e := newPsEnv(t, Config{})
	e.mkContainer(t, psAlice, "c", map[string]string{"X-Container-Policy-Quota": "100000"})
	data := psData(2500, 5)
	e.mustPut(t, psAlice, "c", "o", data[:100], nil)
	put := e.mustPut(t, psAlice, "c", "o", data, map[string]string{"X-Object-Sharing": "read=" + psBob.UUID, "X-Object-Meta-K": "v"})
	require.NoError(t, e.srv.store.UpdateObjectMeta(psAlice.UUID, psAlice.UUID, "c", "o", store.DomainPlankton, map[string]string{"plankton:name": "n"}, false))
	before := e.head(t, psAlice, psAlice.UUID, "c", "o").header
	versions := e.versions(t, psAlice, psAlice.UUID, "c", "o")

	e.restart(t)

	after := e.head(t, psAlice, psAlice.UUID, "c", "o")
	require.Equal(t, http.StatusOK, after.status)
	for _, k := range []string{"X-Object-Uuid", "X-Object-Hash", "X-Object-Version", "X-Object-Meta-K", "X-Object-Sharing", "Content-Length"} {
		assert.Equal(t, before.Get(k), after.header.Get(k), k)
	}
	assert.Equal(t, put.header.Get("ETag"), after.header.Get("Etag"))
	assert.Equal(t, versions, e.versions(t, psAlice, psAlice.UUID, "c", "o"))
	r := e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c", "o"), nil, nil)
	assert.Equal(t, data, r.body)
	assert.Equal(t, http.StatusOK, e.head(t, psBob, psAlice.UUID, "c", "o").status, "sharing persists")
	r = e.do(t, &psAlice, http.MethodHead, pp(psAlice.UUID, "c"), nil, nil)
	assert.Equal(t, "100000", r.header.Get("X-Container-Policy-Quota"))
	assert.Equal(t, "2500", r.header.Get("X-Container-Bytes-Used"))
	oi, err := e.srv.store.ObjectByUUID(psBob.UUID, before.Get("X-Object-Uuid"))
	require.NoError(t, err)
	assert.Equal(t, "n", oi.Meta[store.DomainPlankton]["plankton:name"])

	// Serials keep increasing, and the blocks are still deduplicated.
	_, hs := blocksOf(data, psBlock)
	r = e.hashmapPut(t, psAlice, psAlice.UUID, "c", "again", int64(len(data)), hs, nil)
	require.Equal(t, http.StatusCreated, r.status, "%s", r)
	n, _ := strconv.ParseInt(r.header.Get("X-Object-Version"), 10, 64)
	last, _ := strconv.ParseInt(before.Get("X-Object-Version"), 10, 64)
	assert.Greater(t, n, last)
}

func TestPithosConcurrentUploads(t *testing.T) {
	e := newPsEnv(t, Config{})
	e.mkContainer(t, psAlice, "c", nil)
	const objects, per = 8, 6
	var wg sync.WaitGroup
	errs := make(chan error, objects*(per+2))
	put := func(name string, size int, hs []string) error {
		body := fmt.Sprintf(`{"bytes": %d, "hashes": %s}`, size, jsonOf(hs))
		r, err := e.try(&psAlice, http.MethodPut, pp(psAlice.UUID, "c", name)+"?hashmap",
			map[string]string{"Content-Type": "application/octet-stream"}, []byte(body))
		if err == nil && r.status != http.StatusCreated {
			err = fmt.Errorf("hashmap PUT %s: %s", name, r)
		}
		return err
	}
	for i := range objects {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := psData(per*psBlock-i, byte(i))
			blocks, hs := blocksOf(data, psBlock)
			var bw sync.WaitGroup
			for _, b := range blocks {
				bw.Add(1)
				go func() {
					defer bw.Done()
					r, err := e.try(&psAlice, http.MethodPost, pp(psAlice.UUID, "c")+"?update&format=json",
						map[string]string{"Content-Type": "application/octet-stream"}, b)
					if err == nil && r.status != http.StatusAccepted {
						err = fmt.Errorf("block POST: %s", r)
					}
					if err != nil {
						errs <- err
					}
				}()
			}
			bw.Wait()
			if err := put(fmt.Sprintf("o%d", i), len(data), hs); err != nil {
				errs <- err
				return
			}
			// Everyone overwrites one shared name too.
			if err := put("shared", len(data), hs); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	r := e.do(t, &psAlice, http.MethodHead, pp(psAlice.UUID, "c"), nil, nil)
	assert.Equal(t, strconv.Itoa(objects+1), r.header.Get("X-Container-Object-Count"))
	assert.Len(t, e.versions(t, psAlice, psAlice.UUID, "c", "shared"), objects)
	for i := range objects {
		r := e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c", fmt.Sprintf("o%d", i)), nil, nil)
		assert.Equal(t, psData(per*psBlock-i, byte(i)), r.body, "object %d", i)
	}
}

func TestPithosFaultInjection(t *testing.T) {
	e := newPsEnv(t, Config{FailRate: 1})
	e.mkContainer(t, psAlice, "c", nil)
	r := e.do(t, &psAlice, http.MethodPost, pp(psAlice.UUID, "c")+"?update",
		map[string]string{"Content-Type": "application/octet-stream"}, []byte("x"))
	assert.Equal(t, http.StatusServiceUnavailable, r.status)
	r = e.hashmapPut(t, psAlice, psAlice.UUID, "c", "o", 0, nil, nil)
	assert.Equal(t, http.StatusServiceUnavailable, r.status)
	e.mustPut(t, psAlice, "c", "plain", []byte("data PUTs are not injected"), nil)
	st := e.srv.Stats()
	assert.EqualValues(t, 2, st.FaultsInjected)
	assert.EqualValues(t, 0, st.BlocksReceived)
	e.srv.SetFailRate(0)
	r = e.hashmapPut(t, psAlice, psAlice.UUID, "c", "o", 0, nil, nil)
	assert.Equal(t, http.StatusCreated, r.status)
}

func TestStoreObjectStoreInterface(t *testing.T) {
	e := newPsEnv(t, Config{})
	st := e.srv.store
	e.mkContainer(t, psAlice, "c", nil)
	e.mkContainer(t, psBob, "b", nil)
	e.mustPut(t, psAlice, "c", "img", psData(3000, 1), map[string]string{"Content-Type": "application/x-diskdump"})
	e.mustPut(t, psAlice, "c", "plain", []byte("p"), nil)
	e.mustPut(t, psBob, "b", "bobimg", []byte("b"), nil)

	oi, err := st.ObjectByPath(psAlice.UUID, psAlice.UUID, "c", "img")
	require.NoError(t, err)
	assert.EqualValues(t, 3000, oi.Bytes)
	assert.Len(t, oi.Hashes, 3)
	assert.Equal(t, "application/x-diskdump", oi.ContentType)
	assert.Equal(t, 1, oi.Available)
	assert.Equal(t, psAlice.UUID, oi.Account)
	assert.Greater(t, oi.Mtime, float64(1e9))

	var nf *store.ErrNotFound
	var fb *store.ErrForbidden
	var le *store.ErrLimitExceeded
	_, err = st.ObjectByPath(psAlice.UUID, psAlice.UUID, "c", "missing")
	assert.ErrorAs(t, err, &nf)
	_, err = st.ObjectByPath(psAlice.UUID, psAlice.UUID, "nope", "img")
	assert.ErrorAs(t, err, &nf)
	_, err = st.ObjectByPath(psBob.UUID, psAlice.UUID, "c", "img")
	assert.ErrorAs(t, err, &fb)
	_, err = st.ObjectByUUID(psBob.UUID, oi.UUID)
	assert.ErrorAs(t, err, &fb)
	_, err = st.ObjectByUUID(psAlice.UUID, "not-a-uuid")
	assert.ErrorAs(t, err, &nf)
	got, err := st.ObjectByUUID(psAlice.UUID, "urn:uuid:"+oi.UUID)
	require.NoError(t, err)
	assert.Equal(t, "img", got.Name)

	// Domain meta: merge, empty deletes, replace, limit, permissions.
	require.NoError(t, st.UpdateObjectMeta(psAlice.UUID, psAlice.UUID, "c", "img", store.DomainPlankton, map[string]string{"plankton:name": "a", "plankton:x": "1"}, false))
	require.NoError(t, st.UpdateObjectMeta(psAlice.UUID, psAlice.UUID, "c", "img", store.DomainPlankton, map[string]string{"plankton:x": ""}, false))
	got, err = st.ObjectByPath(psAlice.UUID, psAlice.UUID, "c", "img")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"plankton:name": "a"}, got.Meta[store.DomainPlankton])
	assert.Greater(t, got.Serial, oi.Serial)
	assert.Equal(t, oi.UUID, got.UUID)
	many := map[string]string{}
	for i := range 33 {
		many[fmt.Sprintf("plankton:k%d", i)] = "v"
	}
	err = st.UpdateObjectMeta(psAlice.UUID, psAlice.UUID, "c", "img", store.DomainPlankton, many, true)
	assert.ErrorAs(t, err, &le)
	assert.Equal(t, "Pithos+ resources cannot have more than 32 metadata items per domain", err.Error())
	err = st.UpdateObjectMeta(psBob.UUID, psAlice.UUID, "c", "img", store.DomainPlankton, map[string]string{"plankton:name": "b"}, false)
	assert.ErrorAs(t, err, &fb)
	err = st.UpdateObjectMeta(psAlice.UUID, psAlice.UUID, "c", "missing", store.DomainPlankton, nil, true)
	assert.ErrorAs(t, err, &nf)

	// Permissions: owner only.
	err = st.SetPermissions(psBob.UUID, psAlice.UUID, "c", "img", store.Permissions{Read: []string{psBob.UUID}})
	assert.ErrorAs(t, err, &fb)
	require.NoError(t, st.SetPermissions(psAlice.UUID, psAlice.UUID, "c", "img", store.Permissions{Read: []string{psBob.UUID}}))
	got, err = st.ObjectByUUID(psBob.UUID, oi.UUID)
	require.NoError(t, err)
	assert.Equal(t, []string{psBob.UUID}, got.Permissions.Read)
	err = st.SetPermissions(psAlice.UUID, psAlice.UUID, "c", "missing", store.Permissions{})
	assert.ErrorAs(t, err, &nf)

	// DomainObjects: own objects and those shared with the user.
	require.NoError(t, st.UpdateObjectMeta(psBob.UUID, psBob.UUID, "b", "bobimg", store.DomainPlankton, map[string]string{"plankton:name": "bob's"}, false))
	names := func(user string) []string {
		objs, err := st.DomainObjects(user, store.DomainPlankton)
		require.NoError(t, err)
		var out []string
		for _, o := range objs {
			out = append(out, o.Account[:3]+":"+o.Name)
		}
		return out
	}
	assert.Equal(t, []string{"a11:img"}, names(psAlice.UUID))
	assert.Equal(t, []string{"a11:img", "b0b:bobimg"}, names(psBob.UUID))
	require.NoError(t, st.SetPermissions(psAlice.UUID, psAlice.UUID, "c", "img", store.Permissions{}))
	assert.Equal(t, []string{"b0b:bobimg"}, names(psBob.UUID))
	require.NoError(t, st.SetPermissions(psBob.UUID, psBob.UUID, "b", "bobimg", store.Permissions{Read: []string{"*"}}))
	assert.Equal(t, []string{"a11:img", "b0b:bobimg"}, names(psAlice.UUID))

	used, err := st.Usage(psAlice.UUID)
	require.NoError(t, err)
	assert.EqualValues(t, 3001, used)
	used, err = st.Usage("nobody")
	require.NoError(t, err)
	assert.Zero(t, used)
}
