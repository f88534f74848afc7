package hashmap

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Expected values were computed independently with Python's hashlib, using
// the server's rules (block.rstrip('\0'), zero-digest padding to a power of two).
func TestBlockHash(t *testing.T) {
	tests := []struct {
		name  string
		block []byte
		want  string
	}{
		{"empty", nil, EmptyHash},
		{"all zero", make([]byte, 4096), EmptyHash},
		{"trailing NULs stripped", append([]byte("CCCCCCCC"), make([]byte, 8)...), "acea9bbeb39f5ff3651c74794b588e60fa3c73cc48a5ee7b5b5561dacba9582a"},
		{"same as without NULs", []byte("CCCCCCCC"), "acea9bbeb39f5ff3651c74794b588e60fa3c73cc48a5ee7b5b5561dacba9582a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, BlockHash(tt.block))
		})
	}
	// Leading NULs are data.
	assert.NotEqual(t, BlockHash([]byte("\x00x")), BlockHash([]byte("x")))
}

func TestMerkleRoot(t *testing.T) {
	blocks := [][]byte{
		append(bytes.Repeat([]byte("a"), 10), make([]byte, 6)...),
		bytes.Repeat([]byte("b"), 16),
		make([]byte, 16),
		[]byte("cc"),
		bytes.Repeat([]byte("d"), 5),
	}
	tests := []struct {
		n    int
		want string
	}{
		{0, EmptyHash},
		{1, "bf2cb58a68f684d95a3b78ef8f661c9a4e5b09e82cc8f9cc88cce90528caeb27"},
		{2, "dc497f4c286f6aba32edc06dcb977843d6452abc9b708a2c01c2875a62cfb336"},
		{3, "15bd2c4214e461d6963c74ea09f6c42b8614b069b333f41203f881fbe530720d"},
		{5, "cc31d6b1e3bd1a12d400b914df98aa06d21ec306784c62649cd505155d60e5f7"},
	}
	for _, tt := range tests {
		hs := make([]string, tt.n)
		for i := range hs {
			hs[i] = BlockHash(blocks[i])
		}
		got, err := MerkleRoot(hs)
		require.NoError(t, err)
		assert.Equal(t, tt.want, got, "%d blocks", tt.n)
	}
	_, err := MerkleRoot([]string{"zz"})
	assert.Error(t, err)
}

func TestNumBlocks(t *testing.T) {
	for _, tt := range []struct{ size, bs, want int64 }{
		{0, 4, 0}, {1, 4, 1}, {3, 4, 1}, {4, 4, 1}, {5, 4, 2}, {13, 4, 4},
	} {
		assert.Equal(t, tt.want, NumBlocks(tt.size, tt.bs), "size %d", tt.size)
	}
}

func TestCheckAlgorithm(t *testing.T) {
	assert.NoError(t, CheckAlgorithm("sha256"))
	assert.ErrorIs(t, CheckAlgorithm("md5"), ErrAlgorithm)
}
