package pithos

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/imagesync/imagesync/internal/hashmap"
)

// HashmapCache remembers the hashmap of each local file so that an unchanged
// file costs a stat, not a re-hash. An entry is keyed by the file's identity
// (device, inode) and the container's block size and hash, and is valid only
// while the file's size, mtime and ctime are those it was hashed with; a
// changed file simply misses and its entry is replaced on the next Store.
//
// Each entry is one small file (32 bytes a block plus a header), written to a
// temporary name and renamed into place, and checksummed so that a torn or
// corrupted entry reads as a miss. Concurrent use, from goroutines or from
// several processes sharing the directory, is safe.
type HashmapCache struct {
	dir string
}

// OpenHashmapCache opens (creating it if needed) a cache in dir.
func OpenHashmapCache(dir string) (*HashmapCache, error) {
	if dir == "" {
		return nil, errors.New("pithos: hashmap cache: empty directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pithos: hashmap cache: %w", err)
	}
	// The cache tells which files exist and hashes of their blocks: only its
	// owner may look (entries are created 0600 by CreateTemp).
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pithos: hashmap cache: %w", err)
	}
	return &HashmapCache{dir: dir}, nil
}

// Dir is the cache's directory.
func (c *HashmapCache) Dir() string { return c.dir }

// fileIdentity is what must not change for a cached hashmap to stay valid.
type fileIdentity struct {
	Dev, Ino uint64
	Size     int64
	MtimeNs  int64
	CtimeNs  int64
}

// cacheKey is an entry's full key.
type cacheKey struct {
	id        fileIdentity
	blockSize int64
	algo      string
}

func makeCacheKey(fi fs.FileInfo, blockSize int64, algo string) (cacheKey, bool) {
	id, ok := identityOf(fi)
	if !ok || blockSize <= 0 || algo == "" || len(algo) > 255 {
		return cacheKey{}, false
	}
	return cacheKey{id: id, blockSize: blockSize, algo: algo}, true
}

// path names an entry by the parts of the key that do not change when the
// file is rewritten in place, so a file has one entry per block size.
func (c *HashmapCache) path(k cacheKey) string {
	name := strconv.FormatUint(k.id.Dev, 10) + ":" + strconv.FormatUint(k.id.Ino, 10) + ":" +
		strconv.FormatInt(k.blockSize, 10) + ":" + k.algo
	sum := sha256.Sum256([]byte(name))
	return filepath.Join(c.dir, hex.EncodeToString(sum[:16])+".hashmap")
}

// Lookup returns the cached hashmap of the file described by fi (which must
// come from a fresh Stat of it), or false.
func (c *HashmapCache) Lookup(fi fs.FileInfo, blockSize int64, algo string) ([]Digest, bool) {
	if c == nil {
		return nil, false
	}
	k, ok := makeCacheKey(fi, blockSize, algo)
	if !ok {
		return nil, false
	}
	data, err := os.ReadFile(c.path(k))
	if err != nil {
		return nil, false
	}
	return decodeCacheEntry(data, k)
}

// Store records the hashmap of the file described by fi, which must be the
// Stat taken before the file was hashed (so that a change during hashing
// makes the entry stale rather than wrong).
func (c *HashmapCache) Store(fi fs.FileInfo, blockSize int64, algo string, hashes []Digest) error {
	if c == nil {
		return nil
	}
	k, ok := makeCacheKey(fi, blockSize, algo)
	if !ok {
		return nil
	}
	tmp, err := os.CreateTemp(c.dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("pithos: hashmap cache: %w", err)
	}
	_, werr := tmp.Write(encodeCacheEntry(k, hashes))
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("pithos: hashmap cache: %w", err)
	}
	if err := os.Rename(tmp.Name(), c.path(k)); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("pithos: hashmap cache: %w", err)
	}
	return nil
}

// Forget drops the entry of the file described by fi, e.g. after the server
// disagreed with a cached hash.
func (c *HashmapCache) Forget(fi fs.FileInfo, blockSize int64, algo string) error {
	if c == nil {
		return nil
	}
	k, ok := makeCacheKey(fi, blockSize, algo)
	if !ok {
		return nil
	}
	if err := os.Remove(c.path(k)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("pithos: hashmap cache: %w", err)
	}
	return nil
}

// Entry layout (little-endian): magic, dev, ino, size, mtime, ctime,
// block size, algo length (1 byte) + algo, count, count×32 digest bytes,
// then sha256 of everything before it.
var cacheMagic = []byte("imagesync-hashmap-v1\n")

func encodeCacheEntry(k cacheKey, hashes []Digest) []byte {
	b := make([]byte, 0, len(cacheMagic)+7*8+1+len(k.algo)+len(hashes)*sha256.Size+sha256.Size)
	b = append(b, cacheMagic...)
	b = binary.LittleEndian.AppendUint64(b, k.id.Dev)
	b = binary.LittleEndian.AppendUint64(b, k.id.Ino)
	b = binary.LittleEndian.AppendUint64(b, uint64(k.id.Size))
	b = binary.LittleEndian.AppendUint64(b, uint64(k.id.MtimeNs))
	b = binary.LittleEndian.AppendUint64(b, uint64(k.id.CtimeNs))
	b = binary.LittleEndian.AppendUint64(b, uint64(k.blockSize))
	b = append(b, byte(len(k.algo)))
	b = append(b, k.algo...)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(hashes)))
	for i := range hashes {
		b = append(b, hashes[i][:]...)
	}
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

func decodeCacheEntry(data []byte, want cacheKey) ([]Digest, bool) {
	if len(data) < len(cacheMagic)+sha256.Size || !bytes.HasPrefix(data, cacheMagic) {
		return nil, false
	}
	body, sum := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return nil, false
	}
	b := body[len(cacheMagic):]
	u64 := func() (uint64, bool) {
		if len(b) < 8 {
			return 0, false
		}
		v := binary.LittleEndian.Uint64(b)
		b = b[8:]
		return v, true
	}
	var got cacheKey
	var fields [6]uint64
	for i := range fields {
		v, ok := u64()
		if !ok {
			return nil, false
		}
		fields[i] = v
	}
	got.id = fileIdentity{Dev: fields[0], Ino: fields[1], Size: int64(fields[2]), MtimeNs: int64(fields[3]), CtimeNs: int64(fields[4])}
	got.blockSize = int64(fields[5])
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return nil, false
	}
	got.algo, b = string(b[1:1+int(b[0])]), b[1+int(b[0]):]
	if got != want {
		return nil, false
	}
	n, ok := u64()
	if !ok || n != uint64(hashmap.NumBlocks(got.id.Size, got.blockSize)) || uint64(len(b)) != n*sha256.Size {
		return nil, false
	}
	hashes := make([]Digest, n)
	for i := range hashes {
		copy(hashes[i][:], b[i*sha256.Size:])
	}
	return hashes, true
}
