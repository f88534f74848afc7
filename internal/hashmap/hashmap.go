// Package hashmap holds the Pithos+ block-hash and Merkle-root rules shared by
// the client (which computes them locally) and the sandbox (which stores and
// checks them). Both sides must agree to the byte, so the rules live once.
package hashmap

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// Algorithm is the only block hash Pithos deployments use (X-Container-Block-Hash).
const Algorithm = "sha256"

// DefaultBlockSize is the Pithos backend default (X-Container-Block-Size).
const DefaultBlockSize = 4 * 1024 * 1024

// EmptyHash is sha256(""): the hash of an empty or all-NUL block, and the
// Merkle root of an empty object.
const EmptyHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// ErrAlgorithm is returned when a container reports a block hash other than sha256.
var ErrAlgorithm = errors.New("hashmap: unsupported block hash algorithm")

// CheckAlgorithm reports whether name is a block hash this package implements.
func CheckAlgorithm(name string) error {
	if name != Algorithm {
		return fmt.Errorf("%w %q", ErrAlgorithm, name)
	}
	return nil
}

// TrimNUL returns b without its trailing NUL bytes. The server stores blocks
// unpadded and hashes them after this trim, so the client must do the same.
func TrimNUL(b []byte) []byte {
	i := len(b)
	for i > 0 && b[i-1] == 0 {
		i--
	}
	return b[:i]
}

// BlockSum returns the raw block hash: sha256 of the block with trailing NULs stripped.
func BlockSum(block []byte) [sha256.Size]byte {
	return sha256.Sum256(TrimNUL(block))
}

// BlockHash returns the lowercase hex block hash as exchanged on the wire.
func BlockHash(block []byte) string {
	s := BlockSum(block)
	return hex.EncodeToString(s[:])
}

// NumBlocks is the number of blocks of an object of size bytes. Size 0 has no
// blocks (kamaki sends an empty hashmap), unlike a naive (size-1)/bs+1.
func NumBlocks(size, blockSize int64) int64 {
	if size <= 0 {
		return 0
	}
	return (size + blockSize - 1) / blockSize
}

// MerkleRoot computes the object hash (X-Object-Hash) of a list of hex block
// hashes: H("") for none, the block hash itself for one, otherwise the list is
// padded with zero digests to a power of two and pairs are hashed upwards over
// their raw bytes.
func MerkleRoot(hashes []string) (string, error) {
	raw := make([][]byte, len(hashes))
	for i, h := range hashes {
		b, err := hex.DecodeString(h)
		if err != nil {
			return "", fmt.Errorf("hashmap: block %d: invalid hash %q: %w", i, h, err)
		}
		raw[i] = b
	}
	return hex.EncodeToString(MerkleRootRaw(raw)), nil
}

// MerkleRootRaw is MerkleRoot over raw digests. Digests shorter or longer than
// sha256.Size are hashed as given, as the server does (it never checks length).
func MerkleRootRaw(hashes [][]byte) []byte {
	switch len(hashes) {
	case 0:
		s := sha256.Sum256(nil)
		return s[:]
	case 1:
		return hashes[0]
	}
	size := 2
	for size < len(hashes) {
		size *= 2
	}
	level := make([][]byte, size)
	copy(level, hashes)
	zero := make([]byte, sha256.Size)
	for i := len(hashes); i < size; i++ {
		level[i] = zero
	}
	for len(level) > 1 {
		next := make([][]byte, len(level)/2)
		for i := range next {
			h := sha256.New()
			h.Write(level[2*i])
			h.Write(level[2*i+1])
			next[i] = h.Sum(nil)
		}
		level = next
	}
	return level[0]
}
