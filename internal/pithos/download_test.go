package pithos

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/rest"
	"github.com/imagesync/imagesync/internal/sandbox"
	"github.com/imagesync/imagesync/internal/sandbox/sandboxtest"
)

// rangeCounter counts the ranged GETs that pass through it.
type rangeCounter struct {
	next rest.Doer
	mu   sync.Mutex
	got  []string
}

func (r *rangeCounter) Do(req *http.Request) (*http.Response, error) {
	if rg := req.Header.Get("Range"); rg != "" {
		r.mu.Lock()
		r.got = append(r.got, rg)
		r.mu.Unlock()
	}
	return r.next.Do(req)
}

func (r *rangeCounter) ranges() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

func (e *testEnv) countingClient() (*Client, *rangeCounter) {
	rc := &rangeCounter{next: &http.Client{Transport: e.tr}}
	return New(e.cloud.PithosURL(), sandboxtest.Alice.UUID, sandboxtest.Alice.Token, rc), rc
}

func (e *testEnv) openRW(t *testing.T, name string, data []byte) *os.File {
	t.Helper()
	p := filepath.Join(e.dir, name)
	require.NoError(t, os.WriteFile(p, data, 0o644))
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return f
}

func readAll(t *testing.T, f *os.File) []byte {
	t.Helper()
	b, err := os.ReadFile(f.Name())
	require.NoError(t, err)
	return b
}

func TestDownloadResumesAndTruncates(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	data := testData(8*tbs+100, 1<<30, 101)
	up, err := e.c.Upload(context.Background(), "c", "img", e.file(t, "src", data), UploadOptions{})
	require.NoError(t, err)

	tests := []struct {
		name        string
		local       []byte
		wantFetched int64
		wantReused  int64
	}{
		{"fresh", nil, 9, 0},
		{"first half present", data[:4*tbs+10], 5, 4},
		{"complete", data, 0, 9},
		{"complete plus junk", append(append([]byte(nil), data...), "junk at the end"...), 0, 9},
		{"one block corrupted", func() []byte {
			b := append([]byte(nil), data...)
			b[3*tbs+1] ^= 1
			return b
		}(), 1, 8},
		{"all wrong", bytes.Repeat([]byte{7}, len(data)), 9, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rc := e.countingClient()
			f := e.openRW(t, tt.name, tt.local)
			var last Progress
			res, err := c.Download(context.Background(), "c", "img", f, DownloadOptions{Progress: func(p Progress) { last = p }})
			require.NoError(t, err)
			assert.Equal(t, data, readAll(t, f))
			assert.Equal(t, up.Hash, res.Hash)
			assert.Equal(t, tt.wantFetched, res.BlocksFetched)
			assert.Equal(t, tt.wantReused, res.BlocksReused)
			assert.Len(t, rc.ranges(), int(tt.wantFetched), "one ranged GET per fetched block")
			assert.Equal(t, PhaseDone, last.Phase)
			assert.Equal(t, res.BlocksFetched, last.BlocksSent)
		})
	}
}

func TestDownloadNoResumeFetchesEverything(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	data := testData(3*tbs, 1<<30, 102)
	_, err := e.c.Upload(context.Background(), "c", "img", e.file(t, "src", data), UploadOptions{})
	require.NoError(t, err)
	c, rc := e.countingClient()
	f := e.openRW(t, "dst", data)
	res, err := c.Download(context.Background(), "c", "img", f, DownloadOptions{NoResume: true})
	require.NoError(t, err)
	assert.Equal(t, int64(3), res.BlocksFetched)
	assert.Equal(t, []string{"bytes=0-4095", "bytes=4096-8191", "bytes=8192-12287"}, sortedStrings(rc.ranges()))
}

func TestDownloadDistinctBlocksOnceAndZerosWithoutRequests(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	a := testData(tbs, 1<<30, 103)
	zero := make([]byte, tbs)
	// a, 0, a, 0, 0, a[:50] (a short last block with a's hash prefix is a
	// different hash; a[:tbs/2]+NULs would share a's hash only if a ended in
	// NULs, which random data does not).
	data := bytes.Join([][]byte{a, zero, a, zero, zero, a[:50]}, nil)
	_, err := e.c.Upload(context.Background(), "c", "img", e.file(t, "src", data), UploadOptions{})
	require.NoError(t, err)

	c, rc := e.countingClient()
	f := e.openRW(t, "dst", nil)
	res, err := c.Download(context.Background(), "c", "img", f, DownloadOptions{})
	require.NoError(t, err)
	assert.Equal(t, data, readAll(t, f))
	assert.Equal(t, int64(2), res.BlocksFetched, "a once, the tail once, no request for NUL blocks")
	assert.Len(t, rc.ranges(), 2)

	// Over old non-zero content the NUL blocks are written explicitly.
	f2 := e.openRW(t, "dst2", bytes.Repeat([]byte{9}, len(data)))
	_, err = c.Download(context.Background(), "c", "img", f2, DownloadOptions{})
	require.NoError(t, err)
	assert.Equal(t, data, readAll(t, f2))
}

func TestDownloadSharedHashWithShortLastBlock(t *testing.T) {
	// A full block ending in NULs and a short last block with the same
	// content up to the NULs share one hash; both must come out right.
	e := newEnv(t, sandbox.Config{})
	blk := make([]byte, tbs)
	copy(blk, "prefix then NULs")
	data := append(append([]byte(nil), blk...), "prefix then NULs\x00"...)
	_, err := e.c.Upload(context.Background(), "c", "img", e.file(t, "src", data), UploadOptions{})
	require.NoError(t, err)
	for _, local := range [][]byte{nil, bytes.Repeat([]byte{1}, 3*tbs)} {
		f := e.openRW(t, "dst", local)
		res, err := e.c.Download(context.Background(), "c", "img", f, DownloadOptions{})
		require.NoError(t, err)
		assert.Equal(t, data, readAll(t, f))
		assert.Equal(t, int64(1), res.BlocksFetched)
	}
}

// memWriterAt is a destination with no ReadAt, Stat or Truncate.
type memWriterAt struct {
	mu  sync.Mutex
	buf []byte
}

func (m *memWriterAt) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if end := int(off) + len(p); end > len(m.buf) {
		m.buf = append(m.buf, make([]byte, end-len(m.buf))...)
	}
	copy(m.buf[off:], p)
	return len(p), nil
}

func TestDownloadToPlainWriterAt(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	data := testData(5*tbs+3, tbs, 104)
	_, err := e.c.Upload(context.Background(), "c", "img", e.file(t, "src", data), UploadOptions{})
	require.NoError(t, err)
	var m memWriterAt
	_, err = e.c.Download(context.Background(), "c", "img", &m, DownloadOptions{})
	require.NoError(t, err)
	assert.Equal(t, data, m.buf)
}

func TestDownloadEmptyObject(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	_, err := e.c.Upload(context.Background(), "c", "empty", e.file(t, "src", nil), UploadOptions{})
	require.NoError(t, err)
	f := e.openRW(t, "dst", []byte("old content"))
	res, err := e.c.Download(context.Background(), "c", "empty", f, DownloadOptions{})
	require.NoError(t, err)
	assert.Empty(t, readAll(t, f))
	assert.Zero(t, res.BlocksTotal)
}

func TestDownloadErrorsAreTyped(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	_, err := e.c.CreateContainer(context.Background(), "c", nil)
	require.NoError(t, err)
	_, err = e.c.Download(context.Background(), "c", "nope", &memWriterAt{}, DownloadOptions{})
	assert.Equal(t, http.StatusNotFound, rest.StatusOf(err))
}

func TestDownloadCancel(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	data := testData(30*tbs, 1<<30, 105)
	_, err := e.c.Upload(context.Background(), "c", "img", e.file(t, "src", data), UploadOptions{})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Slow ranged GETs down so that the cancel lands mid-transfer.
	c := New(e.cloud.PithosURL(), sandboxtest.Alice.UUID, sandboxtest.Alice.Token, slowGets{next: &http.Client{Transport: e.tr}})
	f := e.openRW(t, "dst", nil)
	_, err = c.Download(ctx, "c", "img", f, DownloadOptions{
		BlockConcurrency: 2, ProgressInterval: time.Nanosecond,
		Progress: func(p Progress) {
			if p.BlocksSent >= 2 {
				cancel()
			}
		},
	})
	require.ErrorIs(t, err, context.Canceled)
	requireNoLeaks(t)

	// A second run resumes.
	res, err := e.c.Download(context.Background(), "c", "img", f, DownloadOptions{})
	require.NoError(t, err)
	assert.Equal(t, data, readAll(t, f))
	assert.Positive(t, res.BlocksReused)
}

type slowGets struct{ next rest.Doer }

func (s slowGets) Do(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Range") != "" {
		select {
		case <-time.After(10 * time.Millisecond):
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
	return s.next.Do(r)
}

func sortedStrings(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// Verify compares a local file with an object as Download decides what to
// resume, and fetches nothing.
func TestVerifyListsTheDifferingBlocks(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	data := testData(8*tbs+100, 1<<30, 103)
	up, err := e.c.Upload(context.Background(), "c", "img", e.file(t, "src", data), UploadOptions{})
	require.NoError(t, err)
	corrupt := func(offsets ...int) []byte {
		b := append([]byte(nil), data...)
		for _, o := range offsets {
			b[o] ^= 1
		}
		return b
	}
	tests := []struct {
		name      string
		local     []byte
		match     bool
		differing []int64
		sameHash  bool
	}{
		{"same", data, true, []int64{}, true},
		{"two blocks flipped", corrupt(1, 5*tbs+7), false, []int64{0, 5}, false},
		{"last partial block flipped", corrupt(8*tbs + 99), false, []int64{8}, false},
		{"truncated", data[:6*tbs+3], false, []int64{6, 7, 8}, false},
		{"longer", append(append([]byte(nil), data...), 'x'), false, []int64{}, false},
		{"empty", nil, false, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rc := e.countingClient()
			f := e.file(t, tt.name, tt.local)
			res, err := c.Verify(context.Background(), "c", "img", f, int64(len(tt.local)), DownloadOptions{})
			require.NoError(t, err)
			assert.Equal(t, tt.match, res.Match())
			assert.Equal(t, tt.differing, res.Differing)
			assert.Equal(t, up.Hash, res.Hash)
			assert.Equal(t, tt.sameHash, res.LocalHash == res.Hash)
			if len(tt.local) == len(data) {
				assert.Equal(t, merkleOf(tt.local, tbs), res.LocalHash, "the local file's Merkle hash")
			}
			assert.Equal(t, int64(9), res.BlocksTotal)
			assert.Empty(t, rc.ranges(), "no data is fetched")
		})
	}
	_, err = e.c.Verify(context.Background(), "c", "nope", e.file(t, "x", data), int64(len(data)), DownloadOptions{})
	assert.True(t, IsNotFound(err), "%v", err)
}
