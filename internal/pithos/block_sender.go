package pithos

import (
	"context"
	"fmt"
	"io"
)

// blockRef is one block to send: its index in the hashmap (which gives its
// offset and length) and its expected hash.
type blockRef struct {
	index int64
	sum   Digest
}

// blockSender uploads missing blocks, concurrency at a time. Blocks are read
// back from the file by offset when they are sent, never kept from hashing.
// An *os.File is sent with sendfile(2) (see fileBlocks) and needs no buffer;
// any other File is read into one pool buffer per sender, so memory stays
// at most concurrency×blockSize.
type blockSender struct {
	c           *Client
	container   string
	r           io.ReaderAt
	size        int64
	blockSize   int64
	concurrency int
	pool        *bufferPool
	// sent, if set, is told the length of each block the server accepted.
	// It is called from several goroutines.
	sent func(n int64)
}

// send uploads refs. It stops at the first failure (after the client's own
// retries) and reports it as a *BlockError naming the block.
func (s *blockSender) send(ctx context.Context, refs []blockRef) error {
	if len(refs) == 0 {
		return nil
	}
	ch := make(chan blockRef, len(refs))
	for _, r := range refs {
		ch <- r
	}
	close(ch)
	return s.sendFrom(ctx, ch, min(max(s.concurrency, 1), len(refs)))
}

// sendFrom uploads the blocks that arrive on refs, with up to workers in
// flight, until refs is closed and drained or a block fails. Workers that
// need a buffer take it when their first block arrives, so a sender that
// is never given a block holds no memory.
func (s *blockSender) sendFrom(ctx context.Context, refs <-chan blockRef, workers int) error {
	workers = min(max(workers, 1), s.pool.limit())
	fb := newFileBlocks(s.r)
	return runWorkers(ctx, workers, func(ctx context.Context) error {
		var buf []byte
		defer func() {
			if buf != nil {
				s.pool.put(buf)
			}
		}()
		for {
			var ref blockRef
			var ok bool
			// Prefer a cancelled context over a queued block.
			if err := ctx.Err(); err != nil {
				return err
			}
			select {
			case ref, ok = <-refs:
			case <-ctx.Done():
				return ctx.Err()
			}
			if !ok {
				return nil
			}
			if fb == nil && buf == nil {
				var err error
				if buf, err = s.pool.get(ctx); err != nil {
					return err
				}
			}
			if err := s.sendOne(ctx, fb, buf, ref); err != nil {
				return err
			}
		}
	})
}

// sendOne sends one block: from the file by sendfile when fb is set,
// otherwise read into buf first.
func (s *blockSender) sendOne(ctx context.Context, fb *fileBlocks, buf []byte, ref blockRef) error {
	off := ref.index * s.blockSize
	length := min(s.blockSize, s.size-off)
	want := ref.sum.String()
	var got string
	var err error
	if fb != nil {
		if err := fb.shrank(off, length); err != nil {
			return &BlockError{Index: ref.index, Offset: off, Hash: want, Op: "read", Err: err}
		}
		got, err = s.c.uploadBlockBody(ctx, s.container, length, func() (io.ReadCloser, error) { return fb.open(off, length) })
		if err != nil && ctx.Err() == nil {
			if serr := fb.shrank(off, length); serr != nil {
				// The body came up short because the file shrank.
				return &BlockError{Index: ref.index, Offset: off, Hash: want, Op: "read", Err: serr}
			}
		}
	} else {
		block, rerr := readBlock(s.r, buf, off, length)
		if rerr != nil {
			return &BlockError{Index: ref.index, Offset: off, Hash: want, Op: "read", Err: rerr}
		}
		got, err = s.c.UploadBlock(ctx, s.container, block)
	}
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		return &BlockError{Index: ref.index, Offset: off, Hash: want, Op: "upload", Err: err}
	}
	if got != want {
		// The server hashes what it received; a different hash means the
		// bytes on disk are no longer those that were hashed.
		return &BlockError{Index: ref.index, Offset: off, Hash: want, Op: "upload",
			Err: fmt.Errorf("%w: the server computed hash %s for the bytes sent", ErrFileChanged, got)}
	}
	if s.sent != nil {
		s.sent(length)
	}
	return nil
}
