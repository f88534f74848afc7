package sandbox

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The expected values below were computed independently with Python's
// hashlib, following the server's rules: block hash = sha256(block with
// trailing NULs stripped); Merkle root = the hash itself for one block,
// otherwise pad with 32-byte zero digests to a power of two and hash pairs.
const sha256Empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// ruleBlocks are five 1024-byte blocks: "a"*1024, "b"*1024, "c"*1000 + 24
// NULs, "d"*1024, "e"*1024.
func ruleBlocks() [][]byte {
	var out [][]byte
	for k := range 5 {
		out = append(out, bytes.Repeat([]byte{byte('a' + k)}, 1024))
	}
	out[2] = append(bytes.Repeat([]byte("c"), 1000), make([]byte, 24)...)
	return out
}

func TestHashmapRulesZeroAndEmpty(t *testing.T) {
	e := newPsEnv(t, Config{BlockSize: 1024})
	e.mkContainer(t, psAlice, "c", nil)

	// An all-zero block hashes to sha256("").
	r := e.do(t, &psAlice, http.MethodPost, pp(psAlice.UUID, "c")+"?update&format=json",
		map[string]string{"Content-Type": "application/octet-stream"}, make([]byte, 1024))
	require.Equal(t, http.StatusAccepted, r.status)
	assert.Equal(t, `["`+sha256Empty+`"]`, string(r.body))
	r = e.put(t, psAlice, psAlice.UUID, "c", "zeros", make([]byte, 1024), nil)
	require.Equal(t, http.StatusCreated, r.status)
	assert.Equal(t, sha256Empty, r.header.Get("ETag"), "one block: the root is the block hash")
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c", "zeros"), nil, nil)
	assert.Equal(t, make([]byte, 1024), r.body, "stored unpadded, read back NUL-padded")

	// An empty object, by data and by hashmap.
	r = e.put(t, psAlice, psAlice.UUID, "c", "empty", nil, nil)
	require.Equal(t, http.StatusCreated, r.status)
	assert.Equal(t, sha256Empty, r.header.Get("ETag"))
	r = e.hashmapPut(t, psAlice, psAlice.UUID, "c", "empty2", 0, []string{}, nil)
	require.Equal(t, http.StatusCreated, r.status)
	assert.Equal(t, sha256Empty, r.header.Get("ETag"))
	r = e.head(t, psAlice, psAlice.UUID, "c", "empty2")
	assert.Equal(t, sha256Empty, r.header.Get("X-Object-Hash"))
}

func TestHashmapRulesMerkle(t *testing.T) {
	e := newPsEnv(t, Config{BlockSize: 1024})
	e.mkContainer(t, psAlice, "c", nil)
	blocks := ruleBlocks()
	// Each object is the first n blocks, cut 7 bytes short (a short last block).
	tests := []struct {
		n    int
		want string
	}{
		{1, "ecbc4a75266219d12af86a7cbfdc1d803bb29b012588fd468b6a8cdd8b342c5a"},
		{2, "2282aec5c592851fe80aee9eeaee125fb5d153bd08d28d6f87e90993b40ad4db"},
		{3, "f61ff640b9e80f75a6de26b055fbc4d5cbda364814cf55415077c05014e7d1b4"},
		{5, "e7a292814268f54e2b683759294c368f11647968b7910a0e8ae0e707b359c325"},
	}
	for _, tt := range tests {
		data := bytes.Join(blocks[:tt.n], nil)
		data = data[:len(data)-7]
		name := string(rune('0' + tt.n))
		r := e.put(t, psAlice, psAlice.UUID, "c", "data"+name, data, nil)
		require.Equal(t, http.StatusCreated, r.status)
		assert.Equal(t, tt.want, r.header.Get("ETag"), "%d blocks by data PUT", tt.n)

		// The same object by hashmap from the returned hashes.
		r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c", "data"+name)+"?hashmap&format=json", nil, nil)
		var hm struct {
			Bytes  int64    `json:"bytes"`
			Hashes []string `json:"hashes"`
		}
		require.NoError(t, json.Unmarshal(r.body, &hm))
		require.Len(t, hm.Hashes, tt.n)
		r = e.hashmapPut(t, psAlice, psAlice.UUID, "c", "map"+name, hm.Bytes, hm.Hashes, nil)
		require.Equal(t, http.StatusCreated, r.status)
		assert.Equal(t, tt.want, r.header.Get("ETag"), "%d blocks by hashmap PUT", tt.n)
		r = e.head(t, psAlice, psAlice.UUID, "c", "map"+name)
		assert.Equal(t, tt.want, r.header.Get("X-Object-Hash"))
	}
	// The trailing NULs of block 3 are not part of its hash: "c"*1000.
	r := e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c", "data3")+"?hashmap&format=json", nil, nil)
	assert.Contains(t, string(r.body), `"efeea944a76157a88d281091b6a79608653bc1f14a11d0357431c197701b6155"]`)
}
