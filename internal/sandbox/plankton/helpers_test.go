package plankton

import (
	"net/http"
	"testing"

	"github.com/imagesync/imagesync/internal/sandbox/store"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHeaderParsing(t *testing.T) {
	h := http.Header{}
	h.Set("X-Image-Meta-Name", "My%20Img")
	h.Set("X-Image-Meta-Is-Public", "TrUe")
	h.Set("X-Image-Meta-Size", "42")
	h.Set("X-Image-Meta-Foo", "ignored")
	h.Set("X-Image-Meta-Property-OS-Type", "linux%2Fgnu")
	h.Set("X-Image-Meta-Property-Root.Partition", "1")
	h.Set("X-Image-Meta-Property-%C3%89t%C3%A9", "summer")
	h.Set("Content-Type", "text/plain")
	p, err := headersToImageParams(h)
	require.NoError(t, err)
	assert.Equal(t, imageParams{
		"name": "My Img", "is_public": true, "size": "42",
		"properties": map[string]string{"os_type": "linux/gnu", "root_partition": "1", "été": "summer"},
	}, p)

	h = http.Header{"X-Image-Meta-Is-Public": {"yes"}}
	p, err = headersToImageParams(h)
	require.NoError(t, err)
	assert.Equal(t, false, p["is_public"])
	assert.Equal(t, map[string]string{}, p["properties"])
}

func TestPlanktonHelpers(t *testing.T) {
	assert.Equal(t, "os_type", planktonNormalize("OS-TYPE"))
	assert.Equal(t, "a_b_c_d", planktonNormalize("A.B:C@D"))

	for _, c := range []struct {
		in       string
		ok       bool
		acct     string
		cont     string
		path     string
		utf8Fail bool
	}{
		{"pithos://acct/cont/a/b/c", true, "acct", "cont", "a/b/c", false},
		{"pithos:/x/acct/cont/obj", true, "acct", "cont", "obj", false},
		{"pithos://acct/%E2%98%82/a%20b", true, "acct", "☂", "a b", false},
		{"pithos://acct/cont", false, "", "", "", false},
		{"pitho://acct/cont/obj", false, "", "", "", false},
		{"", false, "", "", "", false},
		{"pithos://acct/cont/%FF", false, "", "", "", true},
	} {
		a, co, p, err := splitImageURL(c.in)
		switch {
		case c.ok:
			require.NoError(t, err, c.in)
			assert.Equal(t, []string{c.acct, c.cont, c.path}, []string{a, co, p}, c.in)
		case c.utf8Fail:
			assert.ErrorIs(t, err, errLocationUTF8, c.in)
		default:
			assert.ErrorIs(t, err, errInvalidLocation, c.in)
		}
	}
	assert.Equal(t, "pithos://acct/%E2%98%82/a%20b/c", createImageURL("acct", "☂", "a b/c"))

	for in, want := range map[string]string{
		"0123456789ABCDEF0123456789abcdef":        "01234567-89ab-cdef-0123-456789abcdef",
		"01234567-89ab-cdef-0123-456789abcdef":    "01234567-89ab-cdef-0123-456789abcdef",
		"0x23456789abcdef0123456789abcdef":        "00234567-89ab-cdef-0123-456789abcdef",
		"0123456789abcdef0123456789abcde":         "",
		"0123456789abcdef0123456789abcdeg":        "",
		"-0123-456789abcdef0123456789abcdef-----": "01234567-89ab-cdef-0123-456789abcdef",
	} {
		got, ok := planktonUUID(in)
		assert.Equal(t, want != "", ok, in)
		assert.Equal(t, want, got, in)
	}
	assert.Equal(t, "2014-02-15 18:10:53", planktonTimestamp(1392487853.975))
	assert.Equal(t, "SAVING", apiStatus("Unavailable"))
	assert.Equal(t, "UNKNOWN", apiStatus("weird"))

	img := imageToDict(&store.ObjectInfo{
		Account: "acct", Container: "c", Name: "n", UUID: "u", Bytes: 42, Hash: "h", Mtime: 1392487853.5, Available: 1,
		Permissions: store.Permissions{Read: []string{"acct", "*", "x"}},
		Meta: map[string]map[string]string{
			store.DomainPithos:   {"foo": "bar"},
			store.DomainPlankton: {"plankton:name": "N", "plankton:created_at": "1.0", "plankton:owner": "o", "plankton:property:k": "v", "plankton:status": "ERROR", "plankton:volume_id": "7"},
		},
	})
	assert.Equal(t, map[string]any{
		"id": "u", "checksum": "h", "location": "pithos://acct/c/n", "size": int64(42), "owner": "acct", "store": "pithos",
		"is_snapshot": false, "status": "ERROR", "is_public": true, "users": []string{"acct", "x"},
		"created_at": "2014-02-15 18:10:53", "updated_at": "2014-02-15 18:10:53", "deleted_at": "",
		"name": "N", "volume_id": "7", "properties": map[string]string{"k": "v"},
	}, img)
}
