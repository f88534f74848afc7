package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/imagesync/imagesync/internal/hashmap"
)

// blockStore keeps blocks as content-addressed files under dir/ab/abcdef….
// A block is stored without its trailing NULs (the part its hash covers) and
// padded back with NULs when read, as the Pithos block store does. Writers
// never coordinate: a block is written to a temporary file and renamed into
// place, and two writers of the same block write the same bytes.
type blockStore struct {
	dir string
	// written, when set, runs after a block's bytes are on disk and before
	// it is renamed into place; tests use it to see writers overlap.
	written func()
}

func openBlockStore(dir string) (*blockStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("sandbox: block dir: %w", err)
	}
	return &blockStore{dir: dir}, nil
}

// path returns the file of a canonical (lowercase, 64 hex digits) hash, or ""
// for anything else: such a hash can never name a stored block.
func (b *blockStore) path(h string) string {
	if len(h) != 2*sha256.Size {
		return ""
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return ""
		}
	}
	return filepath.Join(b.dir, h[:2], h)
}

// put stores one block and returns its hex hash.
func (b *blockStore) put(data []byte) (string, error) {
	data = hashmap.TrimNUL(data)
	sum := sha256.Sum256(data)
	h := hex.EncodeToString(sum[:])
	p := b.path(h)
	if _, err := os.Stat(p); err == nil {
		return h, nil
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("sandbox: block dir: %w", err)
	}
	f, err := os.CreateTemp(dir, ".tmp-"+h[:8]+"-")
	if err != nil {
		return "", fmt.Errorf("sandbox: block temp file: %w", err)
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("sandbox: write block %s: %w", h, err)
	}
	if b.written != nil {
		b.written()
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("sandbox: store block %s: %w", h, err)
	}
	return h, nil
}

// has reports whether the block is stored.
func (b *blockStore) has(h string) bool {
	p := b.path(h)
	if p == "" {
		return false
	}
	_, err := os.Stat(p)
	return err == nil
}

// missing returns the hashes that are not stored, de-duplicated, in order of
// first occurrence (the order of the 409 body).
func (b *blockStore) missing(hashes []string) []string {
	seen := make(map[string]bool, len(hashes))
	var out []string
	for _, h := range hashes {
		if seen[h] {
			continue
		}
		seen[h] = true
		if !b.has(h) {
			out = append(out, h)
		}
	}
	return out
}

// read fills buf (one block's worth) with the block, NUL-padded.
func (b *blockStore) read(h string, buf []byte) error {
	if h == hashmap.EmptyHash {
		clear(buf)
		return nil
	}
	p := b.path(h)
	if p == "" {
		return &ErrNotFound{Msg: "Block does not exist"}
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return &ErrNotFound{Msg: "Block does not exist"}
	}
	if err != nil {
		return fmt.Errorf("sandbox: open block %s: %w", h, err)
	}
	defer f.Close()
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return fmt.Errorf("sandbox: read block %s: %w", h, err)
	}
	clear(buf[n:])
	return nil
}
