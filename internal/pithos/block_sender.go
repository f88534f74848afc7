package pithos

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
)

// blockRef is one block to send: its index in the hashmap (which gives its
// offset and length) and its expected hash.
type blockRef struct {
	index int64
	sum   Digest
}

// blockSender uploads missing blocks, concurrency at a time. Blocks are read
// back from the file by offset when they are sent, never kept from hashing,
// so a sender holds one pool buffer and memory stays concurrency×blockSize.
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
	workers := min(max(s.concurrency, 1), len(refs), s.pool.limit())
	var next atomic.Int64
	return runWorkers(ctx, workers, func(ctx context.Context) error {
		buf, err := s.pool.get(ctx)
		if err != nil {
			return err
		}
		defer s.pool.put(buf)
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			i := next.Add(1) - 1
			if i >= int64(len(refs)) {
				return nil
			}
			if err := s.sendOne(ctx, buf, refs[i]); err != nil {
				return err
			}
		}
	})
}

func (s *blockSender) sendOne(ctx context.Context, buf []byte, ref blockRef) error {
	off := ref.index * s.blockSize
	want := ref.sum.String()
	block, err := readBlock(s.r, buf, off, min(s.blockSize, s.size-off))
	if err != nil {
		return &BlockError{Index: ref.index, Offset: off, Hash: want, Op: "read", Err: err}
	}
	got, err := s.c.UploadBlock(ctx, s.container, block)
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
		s.sent(int64(len(block)))
	}
	return nil
}
