package sandbox

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"github.com/imagesync/imagesync/internal/sandbox/wire"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/hashmap"
)

func TestPithosObjectHead(t *testing.T) {
	e := newPsEnv(t, Config{})
	e.mkContainer(t, psAlice, "c", nil)
	data := psData(3000, 1)
	put := e.mustPut(t, psAlice, "c", "obj", data, map[string]string{
		"Content-Type":          "text/plain",
		"X-Object-Meta-Foo_bar": "%C3%A9t%C3%A9", // percent-encoded values are unquoted
		"Content-Encoding":      "compress",
		"Content-Disposition":   "attachment; filename=\"x\"",
	})
	_, hs := blocksOf(data, psBlock)
	root, err := hashmap.MerkleRoot(hs)
	require.NoError(t, err)
	assert.Equal(t, root, put.header.Get("ETag"))
	assert.NotEmpty(t, put.header.Get("X-Object-Version"))

	r := e.head(t, psAlice, psAlice.UUID, "c", "obj")
	require.Equal(t, http.StatusOK, r.status)
	assert.Empty(t, r.body)
	h := r.header
	for _, k := range []string{"Etag", "Content-Length", "Content-Type", "Last-Modified", "X-Object-Hash",
		"X-Object-Uuid", "X-Object-Version", "X-Object-Version-Timestamp", "X-Object-Modified-By"} {
		assert.NotEmpty(t, h.Get(k), k)
	}
	assert.Equal(t, root, h.Get("Etag"))
	assert.Equal(t, root, h.Get("X-Object-Hash"))
	assert.Equal(t, "3000", h.Get("Content-Length"))
	assert.Equal(t, "text/plain", h.Get("Content-Type"))
	assert.Equal(t, put.header.Get("X-Object-Version"), h.Get("X-Object-Version"))
	assert.Equal(t, psAlice.UUID, h.Get("X-Object-Modified-By"))
	assert.Equal(t, "%C3%A9t%C3%A9", h.Get("X-Object-Meta-Foo-Bar"), "stored unquoted, sent quoted, key title-cased")
	assert.Equal(t, "compress", h.Get("Content-Encoding"))
	assert.Equal(t, `attachment; filename="x"`, h.Get("Content-Disposition"))
	assert.Equal(t, "1", h.Get("Available"))
	assert.Empty(t, h.Get("X-Object-Sharing"))
	assert.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, h.Get("X-Object-Uuid"))

	// Percent-encoded meta keys are unquoted too (and title-cased).
	e.mustPut(t, psAlice, "c", "k", []byte("k"), map[string]string{"X-Object-Meta-%C3%A9t%C3%A9": "v"})
	assert.Equal(t, "v", e.head(t, psAlice, psAlice.UUID, "c", "k").header.Get("X-Object-Meta-%C3%89t%C3%A9"))

	// Non-ASCII in a request header value is refused.
	r = e.put(t, psAlice, psAlice.UUID, "c", "x", []byte("x"), map[string]string{"X-Object-Meta-A": "\xc3\xa9"})
	assert.Equal(t, http.StatusBadRequest, r.status)
	r = e.put(t, psAlice, psAlice.UUID, "c", "x", []byte("x"), map[string]string{"Content-Disposition": "%FF"})
	assert.Equal(t, http.StatusBadRequest, r.status, "a %-escape that is not UTF-8")
	assert.Equal(t, "Bad character in headers.", r.fault(t, wire.FaultBadRequest))
	r = e.put(t, psAlice, psAlice.UUID, "c", "x", []byte("x"), map[string]string{"Content-Type": "text/\xc3\xa9"})
	assert.Equal(t, http.StatusBadRequest, r.status)
	assert.Equal(t, "Bad characters in Content-Type.", r.fault(t, wire.FaultBadRequest))

	// Preconditions.
	r = e.do(t, &psAlice, http.MethodHead, pp(psAlice.UUID, "c", "obj"), map[string]string{"If-None-Match": `"` + root + `"`}, nil)
	assert.Equal(t, http.StatusNotModified, r.status)
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c", "obj"), map[string]string{"If-Match": "abc, " + root}, nil)
	assert.Equal(t, http.StatusOK, r.status)
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c", "obj"), map[string]string{"If-Match": "abc"}, nil)
	assert.Equal(t, http.StatusPreconditionFailed, r.status)
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c", "obj"), map[string]string{"If-Modified-Since": "Thu, 01 Jan 2099 00:00:00 GMT"}, nil)
	assert.Equal(t, http.StatusNotModified, r.status)
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c", "obj"), map[string]string{"If-Unmodified-Since": "Thu, 01 Jan 2000 00:00:00 GMT"}, nil)
	assert.Equal(t, http.StatusPreconditionFailed, r.status)

	r = e.head(t, psAlice, psAlice.UUID, "c", "missing")
	assert.Equal(t, http.StatusNotFound, r.status)
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c", "missing"), nil, nil)
	assert.Equal(t, "Object does not exist", r.fault(t, wire.FaultNotFound))
	r = e.do(t, &psAlice, "PATCH", pp(psAlice.UUID, "c", "obj"), nil, nil)
	assert.Equal(t, http.StatusMethodNotAllowed, r.status)
	assert.Equal(t, "HEAD,GET,PUT,COPY,MOVE,POST,DELETE", r.header.Get("Allow"))
	r = e.head(t, psAlice, psAlice.UUID, "c", strings.Repeat("n", 1025))
	assert.Equal(t, http.StatusBadRequest, r.status)
}

func TestPithosObjectGet(t *testing.T) {
	e := newPsEnv(t, Config{})
	e.mkContainer(t, psAlice, "c", nil)
	data := psData(2500, 2)
	e.mustPut(t, psAlice, "c", "dir/obj", data, map[string]string{"Content-Type": "application/x-thing"})
	get := func(hdr map[string]string, q string) psResp {
		return e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c", "dir/obj")+q, hdr, nil)
	}
	r := get(nil, "")
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, data, r.body)
	assert.Equal(t, `inline; filename="dir/obj"`, r.header.Get("Content-Disposition"))
	assert.Equal(t, "application/x-thing", r.header.Get("Content-Type"))
	r = get(nil, "?disposition-type=attachment")
	assert.Equal(t, `attachment; filename="dir/obj"`, r.header.Get("Content-Disposition"))

	ranges := []struct {
		name    string
		rng     string
		status  int
		off, to int // inclusive
	}{
		{"first bytes", "bytes=0-9", 206, 0, 9},
		{"across blocks", "bytes=1000-1100", 206, 1000, 1100},
		{"open ended", "bytes=2400-", 206, 2400, 2499},
		{"final 500 bytes", "bytes=-500", 206, 2000, 2499},
		{"past the end", "bytes=2400-2600", 416, 0, 0},
		{"start past the end", "bytes=2500-", 416, 0, 0},
		{"suffix too long", "bytes=-2501", 416, 0, 0},
		{"malformed ignored", "bytes=a-b", 200, 0, 2499},
		{"reversed ignored", "bytes=9-2", 200, 0, 2499},
	}
	for _, tt := range ranges {
		t.Run(tt.name, func(t *testing.T) {
			r := get(map[string]string{"Range": tt.rng}, "")
			require.Equal(t, tt.status, r.status, "%s", r)
			switch tt.status {
			case 206:
				assert.Equal(t, data[tt.off:tt.to+1], r.body)
				assert.Equal(t, fmt.Sprintf("bytes %d-%d/2500", tt.off, tt.to), r.header.Get("Content-Range"))
			case 416:
				assert.Equal(t, "Requested range exceeds object limits", r.fault(t, wire.FaultRangeNotSatisfied))
			default:
				assert.Equal(t, data, r.body)
			}
		})
	}

	r = get(map[string]string{"Range": "bytes=0-9,2000-2099"}, "")
	require.Equal(t, http.StatusPartialContent, r.status)
	mt, params, err := mime.ParseMediaType(r.header.Get("Content-Type"))
	require.NoError(t, err)
	assert.Equal(t, "multipart/byteranges", mt)
	mr := multipart.NewReader(strings.NewReader(string(r.body)), params["boundary"])
	var parts [][]byte
	var crs []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		b, err := io.ReadAll(p)
		require.NoError(t, err)
		parts = append(parts, b)
		crs = append(crs, p.Header.Get("Content-Range"))
	}
	assert.Equal(t, [][]byte{data[0:10], data[2000:2100]}, parts)
	assert.Equal(t, []string{"bytes 0-9/2500", "bytes 2000-2099/2500"}, crs)

	// If-Range with another date gives the whole object.
	r = get(map[string]string{"Range": "bytes=0-9", "If-Range": "Thu, 01 Jan 2000 00:00:00 GMT"}, "")
	assert.Equal(t, http.StatusOK, r.status)

	// ?hashmap: JSON typed as the object, each hash the block hash.
	r = get(nil, "?hashmap&format=json")
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "application/x-thing", r.header.Get("Content-Type"))
	var hm struct {
		BlockSize int      `json:"block_size"`
		BlockHash string   `json:"block_hash"`
		Bytes     int64    `json:"bytes"`
		Hashes    []string `json:"hashes"`
	}
	require.NoError(t, json.Unmarshal(r.body, &hm))
	_, hs := blocksOf(data, psBlock)
	assert.Equal(t, psBlock, hm.BlockSize)
	assert.Equal(t, "sha256", hm.BlockHash)
	assert.EqualValues(t, len(data), hm.Bytes)
	assert.Equal(t, hs, hm.Hashes)
	r = get(nil, "?hashmap=True")
	require.Equal(t, http.StatusOK, r.status, "json without format")
	assert.Contains(t, string(r.body), `"hashes": [`)
	r = get(nil, "?hashmap&format=xml")
	assert.Contains(t, string(r.body), "<hash>"+hs[0]+"</hash>")

	// Re-PUT of a fetched hashmap gives the same data.
	r = get(nil, "?hashmap&format=json")
	r = e.do(t, &psAlice, http.MethodPut, pp(psAlice.UUID, "c", "copy")+"?hashmap=", map[string]string{"Content-Type": "text/plain"}, r.body)
	require.Equal(t, http.StatusCreated, r.status, "%s", r)
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c", "copy"), nil, nil)
	assert.Equal(t, data, r.body)
}

func TestPithosDataPut(t *testing.T) {
	e := newPsEnv(t, Config{})
	e.mkContainer(t, psAlice, "c", nil)
	data := psData(1500, 3)
	sum := md5.Sum(data)
	md5hex := hex.EncodeToString(sum[:])

	before := e.srv.Stats().ObjectPuts
	r := e.put(t, psAlice, psAlice.UUID, "c", "bad", data, map[string]string{"ETag": "0123"})
	require.Equal(t, http.StatusUnprocessableEntity, r.status)
	assert.Equal(t, "Object ETag does not match", r.fault(t, wire.FaultUnprocessable))
	r = e.put(t, psAlice, psAlice.UUID, "c", "good", data, map[string]string{"ETag": `"` + strings.ToUpper(md5hex) + `"`})
	require.Equal(t, http.StatusCreated, r.status)
	assert.EqualValues(t, 2, e.srv.Stats().ObjectPuts-before)
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c")+"?format=json", nil, nil)
	items := r.jsonList(t)
	require.Len(t, items, 1)
	assert.Equal(t, md5hex, items[0]["hash"], "a verified ETag is kept as the checksum")

	// Zero-length object: hashes == [merkle('')].
	r = e.put(t, psAlice, psAlice.UUID, "c", "empty", nil, nil)
	require.Equal(t, http.StatusCreated, r.status)
	assert.Equal(t, hashmap.EmptyHash, r.header.Get("ETag"))
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c", "empty")+"?hashmap&format=json", nil, nil)
	assert.Contains(t, string(r.body), `"hashes": ["`+hashmap.EmptyHash+`"]`)
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c", "empty"), nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Empty(t, r.body)
	assert.Equal(t, "0", r.header.Get("Content-Length"))

	// No Content-Type: 411.
	r = e.do(t, &psAlice, http.MethodPut, pp(psAlice.UUID, "c", "untyped"), nil, []byte("x"))
	require.Equal(t, http.StatusLengthRequired, r.status)
	assert.Equal(t, "Missing Content-Type header", r.fault(t, wire.FaultLengthRequired))

	// Into a missing container: 404; into another's container: 403.
	r = e.put(t, psAlice, psAlice.UUID, "nope", "x", []byte("x"), nil)
	require.Equal(t, http.StatusNotFound, r.status)
	assert.Equal(t, "Container does not exist", r.fault(t, wire.FaultNotFound))
	r = e.put(t, psBob, psAlice.UUID, "c", "x", []byte("x"), nil)
	assert.Equal(t, http.StatusForbidden, r.status)

	// Preconditions of PUT.
	r = e.put(t, psAlice, psAlice.UUID, "c", "new", data, map[string]string{"If-None-Match": "*"})
	assert.Equal(t, http.StatusCreated, r.status, "If-None-Match: * creates")
	etag := r.header.Get("ETag")
	r = e.put(t, psAlice, psAlice.UUID, "c", "new", data, map[string]string{"If-None-Match": "*"})
	assert.Equal(t, http.StatusPreconditionFailed, r.status)
	assert.Equal(t, "Resource exists or ETag matches", r.fault(t, wire.FaultPreconditionFailed))
	r = e.put(t, psAlice, psAlice.UUID, "c", "new", data, map[string]string{"If-None-Match": etag})
	assert.Equal(t, http.StatusPreconditionFailed, r.status)
	r = e.put(t, psAlice, psAlice.UUID, "c", "new", data, map[string]string{"If-Match": "deadbeef"})
	assert.Equal(t, http.StatusPreconditionFailed, r.status)
	r = e.put(t, psAlice, psAlice.UUID, "c", "absent", data, map[string]string{"If-Match": "*"})
	assert.Equal(t, http.StatusPreconditionFailed, r.status)
	assert.Equal(t, "Resource does not exist", r.fault(t, wire.FaultPreconditionFailed))
	r = e.put(t, psAlice, psAlice.UUID, "c", "new", data, map[string]string{"If-Match": etag})
	assert.Equal(t, http.StatusCreated, r.status)

	// Metadata limit on PUT: 33 items.
	hdr := map[string]string{}
	for i := range 33 {
		hdr[fmt.Sprintf("X-Object-Meta-K%d", i)] = "v"
	}
	r = e.put(t, psAlice, psAlice.UUID, "c", "meta", data, hdr)
	require.Equal(t, http.StatusBadRequest, r.status)
	// A name starting with "/" is fine.
	e.mustPut(t, psAlice, "c", "/rooted", []byte("r"), nil)
}

func TestPithosHashmapPut(t *testing.T) {
	e := newPsEnv(t, Config{})
	e.mkContainer(t, psAlice, "c", nil)
	data := psData(3*psBlock+10, 4)
	blocks, hs := blocksOf(data, psBlock)

	before := e.srv.Stats().HashmapPuts
	// Nothing uploaded: every block missing, de-duplicated, in order.
	dup := []string{hs[0], hs[1], hs[0], hs[2], hs[3]}
	r := e.hashmapPut(t, psAlice, psAlice.UUID, "c", "obj", int64(len(data)), dup[:0:0], nil)
	require.Equal(t, http.StatusBadRequest, r.status, "0 hashes for 4 blocks")
	r = e.do(t, &psAlice, http.MethodPut, pp(psAlice.UUID, "c", "obj")+"?hashmap",
		map[string]string{"Content-Type": "application/octet-stream"},
		[]byte(fmt.Sprintf(`{"hashes": ["%s", "%s", "%s", "%s"], "bytes": %d}`, dup[0], dup[1], dup[2], dup[3], 4*psBlock)))
	require.Equal(t, http.StatusConflict, r.status, "%s", r)
	assert.Equal(t, wire.JSONType, r.header.Get("Content-Type"))
	assert.Equal(t, `["`+hs[0]+`", "`+hs[1]+`", "`+hs[2]+`"]`, string(r.body))

	// 409 comes before the container check.
	r = e.hashmapPut(t, psAlice, psAlice.UUID, "nope", "obj", int64(len(data)), hs, nil)
	require.Equal(t, http.StatusConflict, r.status)
	// And before permissions.
	r = e.hashmapPut(t, psBob, psAlice.UUID, "c", "obj", int64(len(data)), hs, nil)
	require.Equal(t, http.StatusConflict, r.status)

	// Upload all but the last block: 409 names just that one.
	for _, b := range blocks[:3] {
		r := e.do(t, &psAlice, http.MethodPost, pp(psAlice.UUID, "c")+"?update&format=json",
			map[string]string{"Content-Type": "application/octet-stream"}, b)
		require.Equal(t, http.StatusAccepted, r.status)
	}
	r = e.hashmapPut(t, psAlice, psAlice.UUID, "c", "obj", int64(len(data)), hs, nil)
	require.Equal(t, http.StatusConflict, r.status)
	var missing []string
	require.NoError(t, json.Unmarshal(r.body, &missing))
	assert.Equal(t, hs[3:], missing)
	r = e.do(t, &psAlice, http.MethodPost, pp(psAlice.UUID, "c")+"?update&format=json",
		map[string]string{"Content-Type": "application/octet-stream"}, blocks[3])
	require.Equal(t, http.StatusAccepted, r.status)

	// All blocks there: now the container and permission checks answer.
	r = e.hashmapPut(t, psAlice, psAlice.UUID, "nope", "obj", int64(len(data)), hs, nil)
	require.Equal(t, http.StatusNotFound, r.status)
	assert.Equal(t, "Container does not exist", r.fault(t, wire.FaultNotFound))
	r = e.hashmapPut(t, psBob, psAlice.UUID, "c", "obj", int64(len(data)), hs, nil)
	require.Equal(t, http.StatusForbidden, r.status)

	upper := append([]string(nil), hs...)
	upper[0] = strings.ToUpper(upper[0])
	r = e.hashmapPut(t, psAlice, psAlice.UUID, "c", "obj", int64(len(data)), upper, map[string]string{"Content-Type": "application/x-diskdump"})
	require.Equal(t, http.StatusCreated, r.status, "%s", r)
	root, err := hashmap.MerkleRoot(hs)
	require.NoError(t, err)
	assert.Equal(t, root, r.header.Get("ETag"))
	assert.NotEmpty(t, r.header.Get("X-Object-Version"))
	assert.Empty(t, r.body)
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c", "obj"), nil, nil)
	assert.Equal(t, data, r.body)
	assert.Equal(t, "application/x-diskdump", r.header.Get("Content-Type"))
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c", "obj")+"?hashmap", nil, nil)
	assert.Contains(t, string(r.body), hs[0], "hashes are stored lowercase")
	assert.GreaterOrEqual(t, e.srv.Stats().HashmapPuts-before, int64(8))

	// Empty objects: [] or [sha256("")], stored as [sha256("")].
	for _, h := range [][]string{{}, {hashmap.EmptyHash}} {
		r = e.hashmapPut(t, psAlice, psAlice.UUID, "c", "empty", 0, h, nil)
		require.Equal(t, http.StatusCreated, r.status)
		assert.Equal(t, hashmap.EmptyHash, r.header.Get("ETag"))
	}

	bad := []struct {
		name, body, msg string
	}{
		{"bytes too small", fmt.Sprintf(`{"bytes": %d, "hashes": %s}`, len(data)-psBlock, jsonOf(hs)), "The object's size does not match with the object's hashmap length"},
		{"bytes too big", fmt.Sprintf(`{"bytes": %d, "hashes": %s}`, 2*len(data), jsonOf(hs)), "The object's size does not match with the object's hashmap length"},
		{"huge bytes", fmt.Sprintf(`{"bytes": 45390000000000000000000000000000000000, "hashes": %s}`, jsonOf(hs)), "The object's size does not match with the object's hashmap length"},
		{"negative bytes", `{"bytes": -1, "hashes": []}`, "The object's size does not match with the object's hashmap length"},
		{"not json", `not json`, "Invalid data formatting"},
		{"missing hashes", `{"block_hash": "sha256", "block_size": 1024, "bytes": 42}`, "Invalid data formatting"},
		{"missing bytes", `{"hashes": []}`, "Invalid data formatting"},
		{"hashes not a list", `{"bytes": 42, "hashes": "not a list"}`, "Invalid data formatting"},
		{"hashes null", `{"bytes": 42, "hashes": null}`, "The object's size does not match with the object's hashmap length"},
		{"bytes not a number", `{"bytes": "lots", "hashes": []}`, "Invalid data formatting"},
		{"bad hex", `{"bytes": 42, "hashes": ["zz"]}`, "Invalid hash: zz"},
		{"odd hex", `{"bytes": 42, "hashes": ["abc"]}`, "Invalid hash: abc"},
		{"not a string", `{"bytes": 42, "hashes": [123]}`, "Invalid hash: 123"},
		{"xml", `<?xml version="1.0"?><object><hash>` + hs[0] + `</hash></object>`, "Invalid data formatting"},
		{"a list", `[1, 2]`, "Invalid data formatting"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, &psAlice, http.MethodPut, pp(psAlice.UUID, "c", "bad")+"?hashmap=&format=xml",
				map[string]string{"Content-Type": "application/octet-stream"}, []byte(tt.body))
			require.Equal(t, http.StatusBadRequest, r.status, "%s", r)
			assert.Equal(t, tt.msg, r.fault(t, wire.FaultBadRequest))
			assert.Equal(t, wire.JSONType, r.header.Get("Content-Type"), "PUT faults are always json")
		})
	}
	// bytes as a numeric string and a short hash that no block has (409).
	r = e.do(t, &psAlice, http.MethodPut, pp(psAlice.UUID, "c", "s")+"?hashmap",
		map[string]string{"Content-Type": "text/plain"}, []byte(`{"bytes": "42", "hashes": ["ABCD"]}`))
	require.Equal(t, http.StatusConflict, r.status)
	assert.Equal(t, `["abcd"]`, string(r.body))

	// Missing Content-Type still answers 411 with a hashmap.
	r = e.do(t, &psAlice, http.MethodPut, pp(psAlice.UUID, "c", "s")+"?hashmap", nil, []byte(`{"bytes": 0, "hashes": []}`))
	assert.Equal(t, http.StatusLengthRequired, r.status)
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestPithosObjectPost(t *testing.T) {
	e := newPsEnv(t, Config{})
	e.mkContainer(t, psAlice, "c", nil)
	e.mustPut(t, psAlice, "c", "o", []byte("hello"), map[string]string{"X-Object-Meta-A": "1", "X-Object-Meta-B": "2"})
	uuid := e.head(t, psAlice, psAlice.UUID, "c", "o").header.Get("X-Object-Uuid")
	post := func(q string, hdr map[string]string, body []byte) psResp {
		return e.do(t, &psAlice, http.MethodPost, pp(psAlice.UUID, "c", "o")+q, hdr, body)
	}
	r := post("?update", map[string]string{"X-Object-Meta-B": "", "X-Object-Meta-C": "3"}, nil)
	require.Equal(t, http.StatusAccepted, r.status, "%s", r)
	assert.NotEmpty(t, r.header.Get("X-Object-Version"))
	h := e.head(t, psAlice, psAlice.UUID, "c", "o").header
	assert.Equal(t, "1", h.Get("X-Object-Meta-A"))
	assert.Empty(t, h.Values("X-Object-Meta-B"), "an empty value deletes with ?update")
	assert.Equal(t, "3", h.Get("X-Object-Meta-C"))
	assert.Equal(t, uuid, h.Get("X-Object-Uuid"))

	// Without ?update, user meta is replaced even if only sharing is sent.
	r = post("", map[string]string{"X-Object-Sharing": "read=" + psBob.UUID}, nil)
	require.Equal(t, http.StatusAccepted, r.status)
	h = e.head(t, psAlice, psAlice.UUID, "c", "o").header
	assert.Empty(t, h.Get("X-Object-Meta-A"))
	assert.Equal(t, "read="+psBob.UUID, h.Get("X-Object-Sharing"))

	tests := []struct {
		name string
		hdr  map[string]string
		msg  string
	}{
		{"key too long", map[string]string{"X-Object-Meta-" + strings.Repeat("k", 115): "v"}, "Header name too large."},
		{"value too long", map[string]string{"X-Object-Meta-K": strings.Repeat("v", 257)}, "Header value too large."},
		{"bad sharing", map[string]string{"X-Object-Sharing": "readers=all"}, "Bad X-Object-Sharing header value: missing prefix"},
		{"empty sharing list", map[string]string{"X-Object-Sharing": "read="}, "Bad X-Object-Sharing header value: invalid length"},
		{"long sharing name", map[string]string{"X-Object-Sharing": "read=" + strings.Repeat("u", 257)}, "Invalid sharing header"},
		{"bad public", map[string]string{"X-Object-Public": "yes"}, "Bad X-Object-Public header value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := post("?update", tt.hdr, nil)
			require.Equal(t, http.StatusBadRequest, r.status, "%s", r)
			assert.Equal(t, tt.msg, r.fault(t, wire.FaultBadRequest))
		})
	}
	r = post("?update", map[string]string{"X-Object-Meta-" + strings.Repeat("k", 114): "v"}, nil)
	assert.Equal(t, http.StatusAccepted, r.status, "114 is the longest key")
	hdr := map[string]string{}
	for i := range 33 {
		hdr[fmt.Sprintf("X-Object-Meta-K%d", i)] = "v"
	}
	r = post("", hdr, nil)
	assert.Equal(t, http.StatusBadRequest, r.status, "meta limit")

	// Append with Content-Range: bytes */*.
	r = post("?update", map[string]string{"Content-Type": "application/octet-stream", "Content-Range": "bytes */*"}, []byte(" world"))
	require.Equal(t, http.StatusNoContent, r.status, "%s", r)
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c", "o"), nil, nil)
	assert.Equal(t, "hello world", string(r.body))
	// Overwrite a range inside and past a block boundary.
	big := psData(1500, 9)
	e.mustPut(t, psAlice, "c", "big", big, nil)
	r = e.do(t, &psAlice, http.MethodPost, pp(psAlice.UUID, "c", "big")+"?update",
		map[string]string{"Content-Type": "application/octet-stream", "Content-Range": "bytes 1000-1099/*"}, []byte(strings.Repeat("Z", 100)))
	require.Equal(t, http.StatusNoContent, r.status, "%s", r)
	want := append(append(append([]byte(nil), big[:1000]...), strings.Repeat("Z", 100)...), big[1100:]...)
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c", "big"), nil, nil)
	assert.Equal(t, want, r.body)
	r = e.do(t, &psAlice, http.MethodPost, pp(psAlice.UUID, "c", "big")+"?update",
		map[string]string{"Content-Type": "application/octet-stream", "Content-Range": "bytes 9000-9001/*"}, []byte("zz"))
	assert.Equal(t, http.StatusRequestedRangeNotSatisfiable, r.status)
	r = e.do(t, &psAlice, http.MethodPost, pp(psAlice.UUID, "c", "big")+"?update",
		map[string]string{"Content-Type": "application/octet-stream"}, []byte("zz"))
	assert.Equal(t, http.StatusBadRequest, r.status, "missing Content-Range")

	// A reader cannot append, a writer can.
	r = e.do(t, &psBob, http.MethodPost, pp(psAlice.UUID, "c", "o")+"?update",
		map[string]string{"Content-Type": "application/octet-stream", "Content-Range": "bytes */*"}, []byte("!"))
	assert.Equal(t, http.StatusForbidden, r.status)
	post("?update", map[string]string{"X-Object-Sharing": "write=" + psBob.UUID}, nil)
	r = e.do(t, &psBob, http.MethodPost, pp(psAlice.UUID, "c", "o")+"?update",
		map[string]string{"Content-Type": "application/octet-stream", "Content-Range": "bytes */*"}, []byte("!"))
	assert.Equal(t, http.StatusNoContent, r.status, "%s", r)
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c", "o"), nil, nil)
	assert.Equal(t, "hello world!", string(r.body))
	// Only the owner changes the sharing.
	r = e.do(t, &psBob, http.MethodPost, pp(psAlice.UUID, "c", "o")+"?update", map[string]string{"X-Object-Sharing": "read=*"}, nil)
	require.Equal(t, http.StatusForbidden, r.status)
	assert.Equal(t, "Modifying other account's object permissions is not allowed", r.fault(t, wire.FaultForbidden))

	r = e.do(t, &psAlice, http.MethodPost, pp(psAlice.UUID, "c", "missing")+"?update", nil, nil)
	assert.Equal(t, http.StatusNotFound, r.status)
}

func TestPithosPublic(t *testing.T) {
	e := newPsEnv(t, Config{})
	e.mkContainer(t, psAlice, "c", nil)
	e.mustPut(t, psAlice, "c", "pub", []byte("public data"), map[string]string{"X-Object-Public": "true", "X-Object-Meta-Secret": "s"})
	h := e.head(t, psAlice, psAlice.UUID, "c", "pub").header
	pub := h.Get("X-Object-Public")
	require.True(t, strings.HasPrefix(pub, e.hs.URL+"/public/"), pub)

	res, err := e.hs.Client().Get(pub)
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "public data", string(body))
	assert.Empty(t, res.Header.Get("X-Object-Meta-Secret"), "public replies are restricted")
	assert.Empty(t, res.Header.Get("X-Object-Uuid"))

	r := e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c")+"?format=json", nil, nil)
	assert.Equal(t, pub, r.jsonList(t)[0]["x_object_public"])

	r = e.do(t, &psAlice, http.MethodPost, pp(psAlice.UUID, "c", "pub")+"?update", map[string]string{"X-Object-Public": "false"}, nil)
	require.Equal(t, http.StatusAccepted, r.status)
	assert.Empty(t, e.head(t, psAlice, psAlice.UUID, "c", "pub").header.Get("X-Object-Public"))
	res, err = e.hs.Client().Get(pub)
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusNotFound, res.StatusCode)
}

func TestPithosPermissions(t *testing.T) {
	e := newPsEnv(t, Config{})
	e.mkContainer(t, psAlice, "c", nil)
	e.mustPut(t, psAlice, "c", "private", []byte("p"), nil)
	e.mustPut(t, psAlice, "c", "forbob", []byte("b"), map[string]string{"X-Object-Sharing": "read=" + psBob.UUID})
	e.mustPut(t, psAlice, "c", "all", []byte("a"), map[string]string{"X-Object-Sharing": "read=*"})
	e.mustPut(t, psAlice, "c", "dir", nil, map[string]string{"Content-Type": "application/directory", "X-Object-Sharing": "write=" + psBob.UUID})
	e.mustPut(t, psAlice, "c", "dir/inside", []byte("i"), nil)

	for _, m := range []string{http.MethodHead, http.MethodGet} {
		r := e.do(t, &psBob, m, pp(psAlice.UUID, "c", "private"), nil, nil)
		assert.Equal(t, http.StatusForbidden, r.status, m)
		r = e.do(t, &psBob, m, pp(psAlice.UUID, "c", "never-existed"), nil, nil)
		assert.Equal(t, http.StatusForbidden, r.status, "403, not 404: "+m)
	}
	r := e.do(t, &psBob, http.MethodGet, pp(psAlice.UUID, "c", "private"), nil, nil)
	assert.Equal(t, "User does not have access to the object", r.fault(t, wire.FaultForbidden))

	r = e.head(t, psBob, psAlice.UUID, "c", "forbob")
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "read", r.header.Get("X-Object-Allowed-To"))
	assert.Equal(t, "read="+psBob.UUID, r.header.Get("X-Object-Sharing"))
	assert.Empty(t, e.head(t, psAlice, psAlice.UUID, "c", "forbob").header.Get("X-Object-Allowed-To"), "only for non-owners")
	r = e.head(t, psBob, psAlice.UUID, "c", "all")
	assert.Equal(t, http.StatusOK, r.status)

	// Directory inheritance.
	r = e.head(t, psBob, psAlice.UUID, "c", "dir/inside")
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "write", r.header.Get("X-Object-Allowed-To"))
	assert.Equal(t, psAlice.UUID+"/c/dir", r.header.Get("X-Object-Shared-By"))
	r = e.put(t, psBob, psAlice.UUID, "c", "dir/new", []byte("by bob"), nil)
	require.Equal(t, http.StatusCreated, r.status, "%s", r)
	assert.Equal(t, psBob.UUID, e.head(t, psAlice, psAlice.UUID, "c", "dir/new").header.Get("X-Object-Modified-By"))
	r = e.put(t, psBob, psAlice.UUID, "c", "dir/new2", []byte("x"), map[string]string{"X-Object-Sharing": "read=*"})
	require.Equal(t, http.StatusForbidden, r.status)
	assert.Equal(t, "Modifying other account's object content is not allowed", r.fault(t, wire.FaultForbidden))
	r = e.put(t, psBob, psAlice.UUID, "c", "forbob", []byte("x"), nil)
	assert.Equal(t, http.StatusForbidden, r.status, "read share only")
	r = e.do(t, &psBob, http.MethodDelete, pp(psAlice.UUID, "c", "dir/new"), nil, nil)
	assert.Equal(t, http.StatusForbidden, r.status, "only the owner deletes")

	// Bob's listing of Alice's container shows what is shared with him.
	r = e.do(t, &psBob, http.MethodGet, pp(psAlice.UUID, "c"), nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "all\ndir\ndir/inside\ndir/new\nforbob\n", string(r.body))
	r = e.do(t, &psBob, http.MethodGet, pp(psAlice.UUID, "c")+"?format=json", nil, nil)
	for _, it := range r.jsonList(t) {
		assert.NotEmpty(t, it["x_object_allowed_to"], it["name"])
	}
	r = e.do(t, &psBob, http.MethodGet, pp(psAlice.UUID), nil, nil)
	assert.Equal(t, "c\n", string(r.body))
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c")+"?shared", nil, nil)
	assert.Equal(t, "all\ndir\ndir/inside\ndir/new\nforbob\n", string(r.body))

	// Deleting clears the sharing: a re-created object is private.
	r = e.do(t, &psAlice, http.MethodDelete, pp(psAlice.UUID, "c", "forbob"), nil, nil)
	require.Equal(t, http.StatusNoContent, r.status)
	e.mustPut(t, psAlice, "c", "forbob", []byte("again"), nil)
	assert.Equal(t, http.StatusForbidden, e.head(t, psBob, psAlice.UUID, "c", "forbob").status)
	// Overwriting keeps it.
	e.mustPut(t, psAlice, "c", "all", []byte("new data"), nil)
	assert.Equal(t, http.StatusOK, e.head(t, psBob, psAlice.UUID, "c", "all").status)
}

func TestPithosSharingParse(t *testing.T) {
	e := newPsEnv(t, Config{})
	e.mkContainer(t, psAlice, "c", nil)
	tests := []struct{ in, want string }{
		{"read=B,A", "read=a,b"},
		{"read=a, *;write=c", "read=%2A; write=c"}, // quoted as Python 2 quote() does
		{"read=a,b;write=b", "read=a; write=b"},
		{"read=a;write=a", "write=a"},
		{"", ""},
	}
	for _, tt := range tests {
		e.mustPut(t, psAlice, "c", "o", []byte("x"), map[string]string{"X-Object-Sharing": tt.in})
		assert.Equal(t, tt.want, e.head(t, psAlice, psAlice.UUID, "c", "o").header.Get("X-Object-Sharing"), tt.in)
	}
}

func TestPithosDeleteObject(t *testing.T) {
	e := newPsEnv(t, Config{})
	e.mkContainer(t, psAlice, "c", nil)
	for _, n := range []string{"a", "a/b", "a/c/d", "ab", "z"} {
		e.mustPut(t, psAlice, "c", n, []byte(n), nil)
	}
	r := e.do(t, &psAlice, http.MethodDelete, pp(psAlice.UUID, "c", "z"), nil, nil)
	require.Equal(t, http.StatusNoContent, r.status)
	assert.Equal(t, http.StatusNotFound, e.head(t, psAlice, psAlice.UUID, "c", "z").status)
	r = e.do(t, &psAlice, http.MethodDelete, pp(psAlice.UUID, "c", "z"), nil, nil)
	require.Equal(t, http.StatusNotFound, r.status)
	assert.Equal(t, "Object is deleted.", r.fault(t, wire.FaultNotFound))
	r = e.do(t, &psAlice, http.MethodDelete, pp(psAlice.UUID, "c", "never"), nil, nil)
	assert.Equal(t, "Object does not exist", r.fault(t, wire.FaultNotFound))

	r = e.do(t, &psAlice, http.MethodDelete, pp(psAlice.UUID, "c", "a")+"?delimiter=/", nil, nil)
	require.Equal(t, http.StatusNoContent, r.status)
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c"), nil, nil)
	assert.Equal(t, "ab\n", string(r.body), "the subtree goes, the sibling stays")
}

func TestPithosGroups(t *testing.T) {
	e := newPsEnv(t, Config{})
	e.mkContainer(t, psAlice, "c", nil)
	e.mustPut(t, psAlice, "c", "o", []byte("for friends"), map[string]string{"X-Object-Sharing": "read=" + psAlice.UUID + ":friends"})
	assert.Equal(t, http.StatusForbidden, e.head(t, psBob, psAlice.UUID, "c", "o").status)

	r := e.do(t, &psAlice, http.MethodPost, pp(psAlice.UUID)+"?update", map[string]string{"X-Account-Group-Friends": psBob.UUID + ", " + psAlice.UUID}, nil)
	require.Equal(t, http.StatusAccepted, r.status, "%s", r)
	r = e.do(t, &psAlice, http.MethodHead, pp(psAlice.UUID), nil, nil)
	assert.Equal(t, psAlice.UUID+","+psBob.UUID, r.header.Get("X-Account-Group-Friends"))
	assert.Equal(t, http.StatusOK, e.head(t, psBob, psAlice.UUID, "c", "o").status, "a member of the group reads")

	r = e.do(t, &psAlice, http.MethodPost, pp(psAlice.UUID)+"?update", map[string]string{"X-Account-Group-Best_friends": "x"}, nil)
	require.Equal(t, http.StatusBadRequest, r.status)
	assert.Equal(t, "Bad characters in group name", r.fault(t, wire.FaultBadRequest))
	r = e.do(t, &psBob, http.MethodPost, pp(psAlice.UUID), nil, nil)
	assert.Equal(t, http.StatusForbidden, r.status)

	// An empty member list removes the group.
	r = e.do(t, &psAlice, http.MethodPost, pp(psAlice.UUID)+"?update", map[string]string{"X-Account-Group-Friends": ""}, nil)
	require.Equal(t, http.StatusAccepted, r.status)
	assert.Equal(t, http.StatusForbidden, e.head(t, psBob, psAlice.UUID, "c", "o").status)
}

func TestPithosManifest(t *testing.T) {
	e := newPsEnv(t, Config{})
	e.mkContainer(t, psAlice, "c", nil)
	var want []byte
	for i := range 3 {
		part := psData(700+i*400, byte(i))
		want = append(want, part...)
		e.mustPut(t, psAlice, "c", fmt.Sprintf("parts/%d", i), part, nil)
	}
	e.mustPut(t, psAlice, "c", "whole", nil, map[string]string{"X-Object-Manifest": "c/parts/"})
	h := e.head(t, psAlice, psAlice.UUID, "c", "whole").header
	assert.Equal(t, fmt.Sprint(len(want)), h.Get("Content-Length"))
	assert.Equal(t, "c/parts/", h.Get("X-Object-Manifest"))
	r := e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c", "whole"), nil, nil)
	assert.Equal(t, want, r.body)
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c", "whole"), map[string]string{"Range": "bytes=1000-1999"}, nil)
	assert.Equal(t, want[1000:2000], r.body, "a range across parts")
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c", "whole")+"?hashmap", nil, nil)
	assert.Contains(t, string(r.body), `"hashes": ["`+hashmap.EmptyHash+`"]`, "the hashmap is the manifest's own")
}

func TestPithosChunkedBodies(t *testing.T) {
	e := newPsEnv(t, Config{})
	e.mkContainer(t, psAlice, "c", nil)
	data := psData(2*psBlock+300, 7)
	send := func(method, path string, hdr map[string]string, body []byte) psResp {
		req, err := http.NewRequest(method, e.base+path, io.MultiReader(strings.NewReader(string(body))))
		require.NoError(t, err)
		req.TransferEncoding = []string{"chunked"}
		req.Header.Set("X-Auth-Token", psAlice.Token)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := e.hs.Client().Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return psResp{status: res.StatusCode, header: res.Header, body: b}
	}
	r := send(http.MethodPut, pp(psAlice.UUID, "c", "o"), map[string]string{"Content-Type": "text/plain"}, data)
	require.Equal(t, http.StatusCreated, r.status, "%s", r)
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c", "o"), nil, nil)
	assert.Equal(t, data, r.body)

	r = send(http.MethodPost, pp(psAlice.UUID, "c")+"?update", map[string]string{"Content-Type": "application/octet-stream"}, data)
	require.Equal(t, http.StatusAccepted, r.status)
	_, hs := blocksOf(data, psBlock)
	assert.Equal(t, jsonOf(hs), strings.ReplaceAll(string(r.body), " ", ""))

	r = send(http.MethodPut, pp(psAlice.UUID, "c", "hm")+"?hashmap", map[string]string{"Content-Type": "text/plain"},
		[]byte(fmt.Sprintf(`{"bytes": %d, "hashes": %s}`, len(data), jsonOf(hs))))
	require.Equal(t, http.StatusCreated, r.status, "%s", r)
}

func TestPithosUpdateFromSource(t *testing.T) {
	e := newPsEnv(t, Config{})
	e.mkContainer(t, psAlice, "c", nil)
	e.mustPut(t, psAlice, "c", "dst", []byte("head:"), nil)
	src := psData(1500, 8)
	e.mustPut(t, psAlice, "c", "src", src, nil)
	r := e.do(t, &psAlice, http.MethodPost, pp(psAlice.UUID, "c", "dst")+"?update", map[string]string{
		"Content-Type": "application/octet-stream", "Content-Range": "bytes */*", "X-Source-Object": "/c/src",
	}, nil)
	require.Equal(t, http.StatusNoContent, r.status, "%s", r)
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c", "dst"), nil, nil)
	assert.Equal(t, append([]byte("head:"), src...), r.body)

	// X-Object-Bytes truncates.
	r = e.do(t, &psAlice, http.MethodPost, pp(psAlice.UUID, "c", "dst")+"?update", map[string]string{
		"Content-Type": "application/octet-stream", "Content-Range": "bytes */*", "X-Object-Bytes": "3",
	}, []byte{})
	require.Equal(t, http.StatusNoContent, r.status, "%s", r)
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c", "dst"), nil, nil)
	assert.Equal(t, "hea", string(r.body))

	// The version list in XML.
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c", "dst")+"?version=list&format=xml", nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, 3, strings.Count(string(r.body), "<version timestamp="))
}

// account_update (snf-pithos-app api/functions.py) resolves every group
// member through Astakos before changing anything: with
// PITHOS_TRANSLATE_UUIDS off, the default, members are uuids and
// retrieve_displaynames(..., fail_silently=False) raises ItemNotExists
// ('Unknown displaynames: <uuids>', util.py), answered as 400 badRequest.
func TestPithosGroupsUnknownMember(t *testing.T) {
	e := newPsEnv(t, Config{})
	acct := pp(psAlice.UUID)
	r := e.do(t, &psAlice, http.MethodPost, acct+"?update", map[string]string{"X-Account-Group-Friends": psBob.UUID}, nil)
	require.Equal(t, http.StatusAccepted, r.status)

	cases := []struct {
		name, query string
		hdr         map[string]string
		msg         string
	}{
		{"unknown uuid", "?update", map[string]string{"X-Account-Group-Friends": psBob.UUID + ",nobody-uuid"}, "Unknown displaynames: nobody-uuid"},
		{"a display name is not a uuid", "?update", map[string]string{"X-Account-Group-Friends": "bob"}, "Unknown displaynames: bob"},
		{"several unknown", "?update", map[string]string{"X-Account-Group-Team": "zz, yy"}, "Unknown displaynames: yy, zz"},
		{"without ?update too", "", map[string]string{"X-Account-Group-Team": "ghost", "X-Account-Meta-M": "1"}, "Unknown displaynames: ghost"},
	}
	for _, c := range cases {
		r := e.do(t, &psAlice, http.MethodPost, acct+c.query, c.hdr, nil)
		require.Equal(t, http.StatusBadRequest, r.status, c.name)
		assert.Equal(t, `{"badRequest": {"code": 400, "message": "`+c.msg+`", "details": ""}}`, string(r.body), c.name)
	}
	// Nothing changed: not the groups, not the meta.
	r = e.do(t, &psAlice, http.MethodHead, acct, nil, nil)
	assert.Equal(t, psBob.UUID, r.header.Get("X-Account-Group-Friends"))
	assert.Empty(t, r.header.Values("X-Account-Group-Team"))
	assert.Empty(t, r.header.Values("X-Account-Meta-M"))
}
