package pithos

import (
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/hashmap"
)

func TestHashmapBodyLayoutAndLength(t *testing.T) {
	for _, n := range []int{0, 1, 2, 255, 256, 257, 1000} {
		sums := digests(n, 9)
		b := newHashmapBody(int64(n)*4096-3, sums)
		body, err := io.ReadAll(b)
		require.NoError(t, err)
		assert.Equal(t, newHashmapBody(int64(n)*4096-3, sums).Len(), int64(len(body)), "n=%d", n)

		// Python json.dumps({"hashes": …, "bytes": …}) layout.
		quoted := make([]string, n)
		for i, d := range sums {
			quoted[i] = `"` + d.String() + `"`
		}
		want := `{"hashes": [` + strings.Join(quoted, ", ") + `], "bytes": ` + jsonInt(int64(n)*4096-3) + `}`
		assert.Equal(t, want, string(body))

		var doc struct {
			Hashes []string `json:"hashes"`
			Bytes  int64    `json:"bytes"`
		}
		require.NoError(t, json.Unmarshal(body, &doc))
		assert.Len(t, doc.Hashes, n)
	}
}

func jsonInt(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestHashmapBodySmallReads(t *testing.T) {
	sums := digests(300, 1)
	whole, err := io.ReadAll(newHashmapBody(5, sums))
	require.NoError(t, err)
	var got []byte
	b := newHashmapBody(5, sums)
	p := make([]byte, 7)
	for {
		n, err := b.Read(p)
		got = append(got, p[:n]...)
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
	}
	assert.Equal(t, whole, got)
}

func TestDecodeDigestList(t *testing.T) {
	sums := digests(3, 5)
	body, _ := json.Marshal(DigestStrings(sums))
	got, err := decodeDigestList(strings.NewReader(string(body)))
	require.NoError(t, err)
	assert.Equal(t, sums, got)

	got, err = decodeDigestList(strings.NewReader(`[]`))
	require.NoError(t, err)
	assert.Empty(t, got)

	for _, bad := range []string{`{}`, `["zz"]`, `[1]`, `["` + strings.Repeat("a", 63) + `"]`, `[`, ``} {
		_, err := decodeDigestList(strings.NewReader(bad))
		assert.Error(t, err, bad)
	}
}

func TestParseDigest(t *testing.T) {
	d, err := ParseDigest(hashmap.EmptyHash)
	require.NoError(t, err)
	assert.Equal(t, hashmap.EmptyHash, d.String())
	_, err = ParseDigest(strings.ToUpper(hashmap.EmptyHash)[:10])
	assert.Error(t, err)
}

func TestBlockIndexResolve(t *testing.T) {
	const bs = 10
	sums := digests(6, 1)
	sums[4] = sums[1] // duplicate: first occurrence is 1
	sums[5] = sums[0]
	x := newBlockIndex(sums)
	size := int64(5*bs + 3)

	refs, total, err := x.resolve([]Digest{sums[5], sums[4], sums[2], sums[2]}, size, bs)
	require.NoError(t, err)
	assert.Equal(t, []blockRef{{0, sums[0]}, {1, sums[1]}, {2, sums[2]}}, refs, "each hash once, at its first offset")
	assert.Equal(t, int64(3*bs), total)

	refs, total, err = x.resolve([]Digest{sums[3]}, size, bs)
	require.NoError(t, err)
	assert.Equal(t, []blockRef{{3, sums[3]}}, refs)
	assert.Equal(t, int64(bs), total)

	_, _, err = x.resolve([]Digest{digests(1, 99)[0]}, size, bs)
	assert.ErrorContains(t, err, "not in the hashmap")
}

func TestBlockIndexShortLastBlock(t *testing.T) {
	sums := digests(3, 2)
	x := newBlockIndex(sums)
	_, total, err := x.resolve([]Digest{sums[2]}, 23, 10)
	require.NoError(t, err)
	assert.Equal(t, int64(3), total)
}
