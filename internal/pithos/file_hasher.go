package pithos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync/atomic"

	"github.com/imagesync/imagesync/internal/hashmap"
)

// ErrFileChanged reports that the local file changed (size, mtime or content)
// while it was being hashed or uploaded. Nothing inconsistent is left on the
// server; upload again once the file is stable.
var ErrFileChanged = errors.New("file changed during upload")

// fileHasher computes the block hashes of a file by reading it with ReadAt
// from several workers at once. Each worker holds one pool buffer, so memory
// is workers×blockSize whatever the file's size, and the hashes land in their
// slots by index so the order never depends on scheduling.
type fileHasher struct {
	r         io.ReaderAt
	size      int64
	blockSize int64
	workers   int
	pool      *bufferPool
	// hashed, if set, is told the length of each block once it is hashed.
	// It is called from several goroutines.
	hashed func(n int64)
	// done, if set, is told the index of each block once its hash is in
	// place, so that a reader synchronised with it may read that slot while
	// the rest of the file is being hashed. It is called from several
	// goroutines.
	done func(i int64)
}

// defaultHashWorkers is one worker per usable CPU: hashing is CPU-bound once
// the file is in the page cache, and reading ahead is the kernel's job.
func defaultHashWorkers() int { return runtime.GOMAXPROCS(0) }

// hash returns the block hashes of the whole file, in order. A size-0 file
// has none.
func (h *fileHasher) hash(ctx context.Context) ([]Digest, error) {
	sums := make([]Digest, hashmap.NumBlocks(h.size, h.blockSize))
	if err := h.hashInto(ctx, sums); err != nil {
		return nil, err
	}
	return sums, nil
}

// hashInto fills sums, which holds one slot per block, with the block hashes.
func (h *fileHasher) hashInto(ctx context.Context, sums []Digest) error {
	n := int64(len(sums))
	if n == 0 {
		return ctx.Err()
	}
	workers := min(int64(max(h.workers, 1)), n, int64(h.pool.limit()))
	var next atomic.Int64
	return runWorkers(ctx, int(workers), func(ctx context.Context) error {
		buf, err := h.pool.get(ctx)
		if err != nil {
			return err
		}
		defer h.pool.put(buf)
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			i := next.Add(1) - 1
			if i >= n {
				return nil
			}
			off := i * h.blockSize
			block, err := readBlock(h.r, buf, off, min(h.blockSize, h.size-off))
			if err != nil {
				return &BlockError{Index: i, Offset: off, Op: "read", Err: err}
			}
			sums[i] = hashmap.BlockSum(block)
			if h.done != nil {
				h.done(i)
			}
			if h.hashed != nil {
				h.hashed(int64(len(block)))
			}
		}
	})
}

// readBlock reads exactly length bytes at off into buf and returns them. A
// short read means the file shrank since it was measured.
func readBlock(r io.ReaderAt, buf []byte, off, length int64) ([]byte, error) {
	b := buf[:length]
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return b, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: read %d of %d bytes (the file shrank)", ErrFileChanged, n, length)
	}
	return nil, err
}
