package pithos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/hashmap"
)

// referenceHashes is the obvious sequential implementation.
func referenceHashes(data []byte, bs int) []string {
	var out []string
	for off := 0; off < len(data); off += bs {
		out = append(out, hashmap.BlockHash(data[off:min(off+bs, len(data))]))
	}
	return out
}

// testData returns n bytes of a pattern with the shapes that matter: random
// blocks, repeated blocks, all-NUL blocks and trailing NUL runs.
func testData(n, bs int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.IntN(255) + 1)
	}
	for off, k := 0, 0; off < n; off, k = off+bs, k+1 {
		blk := b[off:min(off+bs, n)]
		switch k % 5 {
		case 1:
			clear(blk) // all-NUL block
		case 2:
			clear(blk[len(blk)/2:]) // trailing NULs
		case 3:
			if off >= 3*bs {
				copy(blk, b[:bs]) // repeat of block 0
			}
		}
	}
	return b
}

func TestFileHasherMatchesSequentialHashing(t *testing.T) {
	const bs = 64
	for _, size := range []int{0, 1, bs - 1, bs, bs + 1, 3*bs + 7, 50 * bs} {
		for _, workers := range []int{1, 3, 8} {
			t.Run(fmt.Sprintf("size=%d/workers=%d", size, workers), func(t *testing.T) {
				data := testData(size, bs, uint64(size))
				var hashed atomic.Int64
				h := &fileHasher{r: bytes.NewReader(data), size: int64(size), blockSize: bs, workers: workers,
					pool: newBufferPool(workers, bs), hashed: func(n int64) { hashed.Add(n) }}
				sums, err := h.hash(context.Background())
				require.NoError(t, err)
				want := referenceHashes(data, bs)
				if want == nil {
					want = []string{}
				}
				assert.Equal(t, want, DigestStrings(sums))
				assert.Equal(t, int64(size), hashed.Load())
			})
		}
	}
}

func TestFileHasherTrailingNULsAndEmptyBlocks(t *testing.T) {
	const bs = 8
	data := []byte("CCCCCCCC\x00\x00\x00\x00\x00\x00\x00\x00\x00ab\x00\x00")
	h := &fileHasher{r: bytes.NewReader(data), size: int64(len(data)), blockSize: bs, workers: 2, pool: newBufferPool(2, bs)}
	sums, err := h.hash(context.Background())
	require.NoError(t, err)
	require.Len(t, sums, 3)
	assert.Equal(t, hashmap.BlockHash([]byte("CCCCCCCC")), sums[0].String())
	assert.Equal(t, hashmap.EmptyHash, sums[1].String())
	assert.Equal(t, hashmap.BlockHash([]byte("\x00ab")), sums[2].String(), "leading NULs are kept, trailing ones stripped")
}

type shrunkReader struct{ data []byte }

func (r shrunkReader) ReadAt(p []byte, off int64) (int, error) {
	return bytes.NewReader(r.data).ReadAt(p, off)
}

func TestFileHasherShortFileIsFileChanged(t *testing.T) {
	h := &fileHasher{r: shrunkReader{make([]byte, 100)}, size: 200, blockSize: 64, workers: 2, pool: newBufferPool(2, 64)}
	_, err := h.hash(context.Background())
	require.ErrorIs(t, err, ErrFileChanged)
	var be *BlockError
	require.ErrorAs(t, err, &be)
	assert.Equal(t, "read", be.Op)
	assert.Equal(t, be.Index*64, be.Offset)
}

type failingReader struct{ at int64 }

func (r failingReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= r.at {
		return 0, errors.New("disk on fire")
	}
	return len(p), nil
}

func TestFileHasherReadErrorNamesBlock(t *testing.T) {
	h := &fileHasher{r: failingReader{at: 128}, size: 1024, blockSize: 64, workers: 1, pool: newBufferPool(1, 64)}
	_, err := h.hash(context.Background())
	var be *BlockError
	require.ErrorAs(t, err, &be)
	assert.Equal(t, int64(2), be.Index)
	assert.Equal(t, int64(128), be.Offset)
	assert.ErrorContains(t, err, "disk on fire")
}

// blockingReader blocks every read until ctx is done.
type blockingReader struct {
	ctx   context.Context
	reads atomic.Int64
}

func (r *blockingReader) ReadAt(p []byte, off int64) (int, error) {
	if r.reads.Add(1) > 2 {
		<-r.ctx.Done()
	}
	return len(p), nil
}

func TestFileHasherStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &blockingReader{ctx: ctx}
	h := &fileHasher{r: r, size: 1 << 20, blockSize: 64, workers: 4, pool: newBufferPool(4, 64),
		hashed: func(int64) {}}
	done := make(chan error, 1)
	go func() { _, err := h.hash(ctx); done <- err }()
	cancel()
	err := <-done
	require.ErrorIs(t, err, context.Canceled)
	assert.Less(t, r.reads.Load(), int64(100), "workers stop instead of reading the whole file")
}

var _ io.ReaderAt = shrunkReader{}
