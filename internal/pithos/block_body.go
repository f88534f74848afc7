package pithos

import (
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
)

// fileBlocks sends blocks of a real file straight from the page cache. A
// request body that is a file range lets net/http hand the socket to
// sendfile(2): the kernel moves the block to the connection in one call,
// instead of the client reading it into a buffer and the transport writing it
// out 32 KiB at a time (net/http copies in-memory bodies through a 32 KiB
// buffer). That halves the client's work per block and, because the server
// then receives the block in large segments rather than a stream of small
// writes, cuts the receiving side's per-read overhead too. It also needs no
// block buffer, so memory does not grow with the number of blocks in flight.
//
// sendfile reads from the file's own offset, so every body gets its own
// open file description (reopenFile), never a shared one: attempts of the
// same block, and the transport finishing an attempt after a retry started,
// cannot disturb each other's position.
//
// A reopened description is checked to be the same inode as f every time,
// so blocks are only ever read from the file the caller opened and checked
// (the upload's source may be a drop folder whose paths anyone can swap).
type fileBlocks struct {
	f  *os.File
	fi os.FileInfo // f's, to check every reopened description against
}

// newFileBlocks returns a fileBlocks for r if r is an *os.File that can be
// reopened (the same inode, read-only), or nil: the caller then reads blocks
// with ReadAt. Only the concrete *os.File qualifies; a wrapper that embeds
// one may change what ReadAt returns and must be read through it.
func newFileBlocks(r io.ReaderAt) *fileBlocks {
	f, ok := r.(*os.File)
	if !ok || f == nil {
		return nil
	}
	g, err := reopenFile(f)
	if err != nil {
		return nil
	}
	defer g.Close()
	a, err1 := f.Stat()
	b, err2 := g.Stat()
	if err1 != nil || err2 != nil || !a.Mode().IsRegular() || !os.SameFile(a, b) {
		return nil
	}
	return &fileBlocks{f: f, fi: a}
}

// open returns a body of the length bytes at off. It fails with an error
// wrapping ErrFileChanged if the file shrank below off+length.
func (fb *fileBlocks) open(off, length int64) (io.ReadCloser, error) {
	g, err := reopenFile(fb.f)
	if err != nil {
		return nil, err
	}
	if gi, err := g.Stat(); err != nil || !os.SameFile(fb.fi, gi) {
		g.Close()
		return nil, fmt.Errorf("%w: block at %d: a reopened descriptor is not the file being uploaded", ErrFileChanged, off)
	}
	if _, err := g.Seek(off, io.SeekStart); err != nil {
		g.Close()
		return nil, err
	}
	return &fileRange{f: g, end: off + length, pos: off}, nil
}

// shrank reports whether the file no longer holds off+length bytes.
func (fb *fileBlocks) shrank(off, length int64) error {
	fi, err := fb.f.Stat()
	if err == nil && fi.Size() < off+length {
		return fmt.Errorf("%w: the file is %d bytes, block ends at %d (the file shrank)", ErrFileChanged, fi.Size(), off+length)
	}
	return nil
}

// fileRange is a request body: the bytes of f from its current offset to
// end. It is a syscall.Conn so that net's sendfile path takes it; Read is the
// fallback (e.g. TLS) and serves the transport's check that nothing follows
// the body.
type fileRange struct {
	f    *os.File
	end  int64
	pos  int64
	lost bool // sendfile may have moved the offset: ask the kernel
	once sync.Once
}

func (r *fileRange) Read(p []byte) (int, error) {
	if r.lost {
		pos, err := r.f.Seek(0, io.SeekCurrent)
		if err != nil {
			return 0, err
		}
		r.pos, r.lost = pos, false
	}
	if r.pos >= r.end {
		return 0, io.EOF
	}
	if rest := r.end - r.pos; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := r.f.Read(p)
	r.pos += int64(n)
	if err == io.EOF {
		return n, fmt.Errorf("%w: read to offset %d of %d (the file shrank)", ErrFileChanged, r.pos, r.end)
	}
	return n, err
}

// SyscallConn hands f to sendfile, which reads from (and moves) f's offset.
func (r *fileRange) SyscallConn() (syscall.RawConn, error) {
	r.lost = true
	return r.f.SyscallConn()
}

// Close closes the range's own file; a second Close is a no-op.
func (r *fileRange) Close() error {
	var err error
	r.once.Do(func() { err = r.f.Close() })
	return err
}
