package inspect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/diskfs/go-diskfs/backend"
)

// errBudget: the byte budget of one detection ran out.
var errBudget = errors.New("inspect: read budget exhausted")

// maxRead bounds one read: nothing this package reads at once (a sector, a
// block, a GPT entry array, a capped file) is larger, so a larger request
// comes from a corrupt size field.
const maxRead = 1 << 20

// boundedReader is the image as every parser sees it: reads stop at the
// image's end, at the deadline of ctx and when the byte budget is spent.
// It is used by one goroutine at a time.
type boundedReader struct {
	ctx    context.Context
	r      io.ReaderAt
	size   int64
	budget int64
	spent  int64
	halted bool // the budget or the deadline stopped a read
}

func newBoundedReader(ctx context.Context, r io.ReaderAt, size, budget int64) *boundedReader {
	return &boundedReader{ctx: ctx, r: r, size: size, budget: budget}
}

// ReadAt reads like io.ReaderAt, counting what it reads against the budget.
// A read past the end returns io.EOF (short reads io.ErrUnexpectedEOF is
// not used: callers check n).
func (b *boundedReader) ReadAt(p []byte, off int64) (int, error) {
	if err := b.ctx.Err(); err != nil {
		b.halted = true
		return 0, err
	}
	if off < 0 {
		return 0, fmt.Errorf("inspect: read at negative offset %d", off)
	}
	if off >= b.size {
		return 0, io.EOF
	}
	n := int64(len(p))
	if n > b.size-off {
		n = b.size - off
	}
	if n > maxRead {
		return 0, fmt.Errorf("inspect: a read of %d bytes at %d is larger than any structure read from an image (corrupt size field?)", len(p), off)
	}
	if b.spent+n > b.budget {
		b.halted = true
		return 0, errBudget
	}
	b.spent += n
	m, err := b.r.ReadAt(p[:n], off)
	if err == io.EOF && int64(m) == n {
		err = nil
	}
	if err == nil && m < len(p) {
		err = io.EOF
	}
	return m, err
}

// readFull reads exactly len(p) bytes at off.
func (b *boundedReader) readFull(p []byte, off int64) error {
	n, err := b.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func (b *boundedReader) used() int64   { return b.spent }
func (b *boundedReader) stopped() bool { return b.halted }

// diskfsBackend gives go-diskfs a read-only view of a bounded reader: it
// cannot write (Writable fails), has no *os.File (Sys fails) and reads
// only through ReadAt's budget and deadline.
type diskfsBackend struct {
	*io.SectionReader
	size int64
}

var _ backend.Storage = diskfsBackend{}

func newDiskfsBackend(b *boundedReader) diskfsBackend {
	return diskfsBackend{SectionReader: io.NewSectionReader(b, 0, b.size), size: b.size}
}

func (d diskfsBackend) Stat() (fs.FileInfo, error) { return imageInfo{size: d.size}, nil }
func (d diskfsBackend) Close() error               { return nil }
func (d diskfsBackend) Sys() (*os.File, error)     { return nil, backend.ErrNotSuitable }
func (d diskfsBackend) Writable() (backend.WritableFile, error) {
	return nil, backend.ErrIncorrectOpenMode
}
func (d diskfsBackend) Path() string { return "" }

type imageInfo struct{ size int64 }

func (i imageInfo) Name() string       { return "image" }
func (i imageInfo) Size() int64        { return i.size }
func (i imageInfo) Mode() fs.FileMode  { return 0o444 }
func (i imageInfo) ModTime() time.Time { return time.Time{} }
func (i imageInfo) IsDir() bool        { return false }
func (i imageInfo) Sys() any           { return nil }
