//go:build linux

package pithos

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/sandbox"
	"github.com/imagesync/imagesync/internal/sandbox/sandboxtest"
)

func TestFileBlocksOnlyForRealFiles(t *testing.T) {
	p := filepath.Join(t.TempDir(), "img")
	require.NoError(t, os.WriteFile(p, testData(3*tbs, tbs, 1), 0o644))
	f, err := os.Open(p)
	require.NoError(t, err)
	defer f.Close()
	assert.NotNil(t, newFileBlocks(f), "an *os.File is sent with sendfile")
	assert.Nil(t, newFileBlocks(&changingFile{File: f}), "a wrapper is read through its ReadAt")
	assert.Nil(t, newFileBlocks(NewSizedFile(f, 3*tbs)))
}

func TestFileRangeReadsItsRangeOnly(t *testing.T) {
	data := testData(3*tbs, tbs, 2)
	p := filepath.Join(t.TempDir(), "img")
	require.NoError(t, os.WriteFile(p, data, 0o644))
	f, err := os.Open(p)
	require.NoError(t, err)
	defer f.Close()
	fb := newFileBlocks(f)
	require.NotNil(t, fb)
	for _, c := range []struct{ off, n int64 }{{0, tbs}, {tbs, tbs}, {2*tbs + 5, tbs - 5}} {
		body, err := fb.open(c.off, c.n)
		require.NoError(t, err)
		got, err := io.ReadAll(body)
		require.NoError(t, err)
		assert.Equal(t, data[c.off:c.off+c.n], got)
		require.NoError(t, body.Close())
		require.NoError(t, body.Close(), "a second Close is harmless")
	}
	// After sendfile (which moves the offset behind the reader's back) the
	// range reads as finished.
	body, err := fb.open(tbs, tbs)
	require.NoError(t, err)
	_, err = body.(*fileRange).SyscallConn()
	require.NoError(t, err)
	_, err = body.(*fileRange).f.Seek(2*tbs, io.SeekStart) // what sendfile of the range leaves
	require.NoError(t, err)
	n, err := body.Read(make([]byte, 10))
	assert.Equal(t, 0, n)
	assert.Equal(t, io.EOF, err)
	require.NoError(t, body.Close())
	// Past the end of a file that shrank: a typed error, not a short body.
	require.NoError(t, os.Truncate(p, tbs+10))
	body, err = fb.open(tbs, tbs)
	require.NoError(t, err)
	defer body.Close()
	_, err = io.ReadAll(body)
	require.ErrorIs(t, err, ErrFileChanged)
}

// openFilesOf counts this process's descriptors open on path.
func openFilesOf(t *testing.T, path string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && target == path {
			n++
		}
	}
	return n
}

func TestUploadFromFileLeaksNoDescriptors(t *testing.T) {
	e := newEnv(t, sandbox.Config{FailRate: 0.2})
	data := testData(40*tbs+3, 1<<30, 91)
	f := e.file(t, "img", data)
	c := e.client(sandboxtest.Alice.Token, true) // retries reopen the block
	res, err := c.Upload(context.Background(), "c", "img", f, UploadOptions{})
	require.NoError(t, err)
	assert.Equal(t, merkleOf(data, tbs), res.Hash)
	assert.Equal(t, int64(41), res.BlocksSent)
	e.tr.CloseIdleConnections()
	// The transport may close a body just after its request returns.
	assert.Eventually(t, func() bool { return openFilesOf(t, f.Name()) == 1 }, 5*time.Second, 10*time.Millisecond,
		"only the caller's descriptor is left open")
	e.cloud.SetFailRate(0)
	assert.Equal(t, data, e.download(t, "c", "img"))
}

func TestUploadFileRewrittenWhileSendingIsDetected(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	data := testData(6*tbs, 1<<30, 92)
	f := e.file(t, "img", data)
	var once sync.Once
	_, err := e.c.Upload(context.Background(), "c", "img", f, UploadOptions{
		BlockConcurrency: 1, ProgressInterval: time.Nanosecond,
		Progress: func(p Progress) {
			if p.Phase == PhaseUploading {
				once.Do(func() {
					flipped := make([]byte, len(data))
					for i := range data {
						flipped[i] = data[i] ^ 0x5a
					}
					require.NoError(t, os.WriteFile(f.Name(), flipped, 0o644))
				})
			}
		},
	})
	require.ErrorIs(t, err, ErrFileChanged)
	var be *BlockError
	require.ErrorAs(t, err, &be)
	assert.Equal(t, "upload", be.Op, "the server's hash of what was sent gave it away")
}

func TestUploadFileShrunkWhileSendingIsDetected(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	data := testData(6*tbs, 1<<30, 93)
	f := e.file(t, "img", data)
	var once sync.Once
	_, err := e.c.Upload(context.Background(), "c", "img", f, UploadOptions{
		BlockConcurrency: 1, ProgressInterval: time.Nanosecond,
		Progress: func(p Progress) {
			if p.Phase == PhaseUploading {
				once.Do(func() { require.NoError(t, os.Truncate(f.Name(), tbs)) })
			}
		},
	})
	require.ErrorIs(t, err, ErrFileChanged)
	var be *BlockError
	require.ErrorAs(t, err, &be)
	assert.Equal(t, "read", be.Op)
}

// TestUploadReadsOnlyTheOpenedFile: the path of the file being uploaded is
// replaced (renamed over, as a writer of a drop folder could) while blocks
// are being sent with sendfile. Every block still comes from the file the
// caller opened: the object is its content, and not a byte of the file now
// at the path is sent.
func TestUploadReadsOnlyTheOpenedFile(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	data := testData(8*tbs, 1<<30, 94)
	f := e.file(t, "img", data)
	other := make([]byte, len(data))
	for i := range other {
		other[i] = data[i] ^ 0xa5
	}
	var once sync.Once
	res, err := e.c.Upload(context.Background(), "c", "img", f, UploadOptions{
		BlockConcurrency: 1, ProgressInterval: time.Nanosecond,
		Progress: func(p Progress) {
			if p.Phase == PhaseUploading {
				once.Do(func() {
					tmp := f.Name() + ".new"
					require.NoError(t, os.WriteFile(tmp, other, 0o644))
					require.NoError(t, os.Rename(tmp, f.Name()))
				})
			}
		},
	})
	require.NoError(t, err)
	assert.Equal(t, merkleOf(data, tbs), res.Hash)
	assert.Equal(t, data, e.download(t, "c", "img"))
}
