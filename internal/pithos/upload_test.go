package pithos

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/hashmap"
	"github.com/imagesync/imagesync/internal/rest"
	"github.com/imagesync/imagesync/internal/sandbox"
	"github.com/imagesync/imagesync/internal/sandbox/sandboxtest"
)

// tbs is the block size of the sandbox-backed tests.
const tbs = 4096

type testEnv struct {
	cloud *sandboxtest.Cloud
	tr    *http.Transport
	c     *Client
	dir   string
}

// newEnv starts a sandbox with 4 KiB blocks and a client for Alice whose
// transport keeps enough idle connections for the block senders.
func newEnv(t *testing.T, cfg sandbox.Config) *testEnv {
	t.Helper()
	if cfg.BlockSize == 0 {
		cfg.BlockSize = tbs
	}
	cloud := sandboxtest.Start(t, cfg)
	tr := &http.Transport{MaxIdleConnsPerHost: 32}
	t.Cleanup(tr.CloseIdleConnections)
	e := &testEnv{cloud: cloud, tr: tr, dir: t.TempDir()}
	e.c = e.client(sandboxtest.Alice.Token, false)
	return e
}

// client returns a new client (so no container info is cached) for Alice's
// account with the given token, optionally behind rest.Retrying.
func (e *testEnv) client(token string, retrying bool) *Client {
	var doer rest.Doer = &http.Client{Transport: e.tr}
	if retrying {
		doer = rest.NewRetrying(doer, rest.RetryPolicy{Attempts: 12, Base: time.Millisecond, Max: 10 * time.Millisecond})
	}
	return New(e.cloud.PithosURL(), sandboxtest.Alice.UUID, token, doer)
}

func (e *testEnv) file(t *testing.T, name string, data []byte) *os.File {
	t.Helper()
	p := filepath.Join(e.dir, name)
	require.NoError(t, os.WriteFile(p, data, 0o644))
	f, err := os.Open(p)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return f
}

func (e *testEnv) received() int64 { return e.cloud.Stats().BlocksReceived }

// head returns the headers of an object (HEAD, 200).
func (e *testEnv) head(t *testing.T, container, object string) http.Header {
	t.Helper()
	resp, err := e.c.rest.DoDiscard(context.Background(), &rest.Request{
		Method: http.MethodHead, Path: e.c.objectPath(container, object), Success: []int{http.StatusOK},
	})
	require.NoError(t, err)
	return resp.Header
}

func (e *testEnv) download(t *testing.T, container, object string) []byte {
	t.Helper()
	p := filepath.Join(e.dir, "dl-"+strings.ReplaceAll(object, "/", "_"))
	f, err := os.Create(p)
	require.NoError(t, err)
	defer f.Close()
	_, err = e.c.Download(context.Background(), container, object, f, DownloadOptions{})
	require.NoError(t, err)
	data, err := os.ReadFile(p)
	require.NoError(t, err)
	return data
}

func merkleOf(data []byte, bs int) string {
	root, err := hashmap.MerkleRoot(referenceHashes(data, bs))
	if err != nil {
		panic(err)
	}
	return root
}

func distinctBlocks(data []byte, bs int) int {
	seen := map[string]bool{}
	for _, h := range referenceHashes(data, bs) {
		seen[h] = true
	}
	return len(seen)
}

// uploadCases are the shapes the protocol has edge cases for.
func uploadCases() []struct {
	name string
	data []byte
} {
	rnd := func(n int, seed uint64) []byte { return testData(n, 1<<30, seed) } // no NUL shaping
	trailing := rnd(3*tbs, 3)
	clear(trailing[tbs+100 : 2*tbs]) // a block ending in NULs
	clear(trailing[3*tbs-10:])       // the file ends in NULs
	zeros := make([]byte, 4*tbs+5)
	copy(zeros[2*tbs:], "island")
	repeated := bytes.Repeat(rnd(tbs, 4), 5)
	repeated = append(repeated, rnd(tbs, 4)[:100]...) // short tail equal to a block's prefix
	return []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"one byte", []byte{'x'}},
		{"one NUL", []byte{0}},
		{"block-1", rnd(tbs-1, 1)},
		{"block", rnd(tbs, 2)},
		{"block+1", rnd(tbs+1, 5)},
		{"3 blocks+tail", rnd(3*tbs+123, 6)},
		{"trailing NULs", trailing},
		{"all-zero blocks", zeros},
		{"repeated blocks", repeated},
		{"mixed shapes", testData(9*tbs+17, tbs, 7)},
	}
}

func TestUploadDownloadRoundTrip(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	for _, tc := range uploadCases() {
		t.Run(tc.name, func(t *testing.T) {
			object := "dir/" + tc.name + ".diskdump"
			before := e.received()
			var last Progress
			var calls atomic.Int64
			res, err := e.c.Upload(context.Background(), "images", object, e.file(t, tc.name, tc.data), UploadOptions{
				Progress: func(p Progress) { calls.Add(1); last = p },
			})
			require.NoError(t, err)

			size := int64(len(tc.data))
			want := merkleOf(tc.data, tbs)
			assert.Equal(t, want, res.Hash)
			assert.Equal(t, size, res.Bytes)
			assert.Equal(t, int64(tbs), res.BlockSize)
			assert.Equal(t, hashmap.NumBlocks(size, tbs), res.BlocksTotal)
			assert.NotEmpty(t, res.UUID)
			assert.NotEmpty(t, res.Version)
			assert.False(t, res.CacheHit)
			assert.Equal(t, res.BlocksSent, e.received()-before, "every block sent was received once")
			assert.LessOrEqual(t, res.BlocksSent, int64(distinctBlocks(tc.data, tbs)), "a repeated block is sent once")

			assert.Equal(t, PhaseDone, last.Phase, "the last progress call is the final state")
			assert.Equal(t, size, last.BytesHashed)
			assert.Equal(t, res.BlocksSent, last.BlocksSent)
			assert.Equal(t, res.BytesSent, last.BytesSent)
			assert.GreaterOrEqual(t, calls.Load(), int64(1))

			h := e.head(t, "images", object)
			assert.Equal(t, want, h.Get("X-Object-Hash"))
			assert.Equal(t, "application/octet-stream", h.Get("Content-Type"))
			assert.Equal(t, fmt.Sprint(size), h.Get("Content-Length"))

			hm, err := e.c.GetHashmap(context.Background(), "images", object, nil)
			require.NoError(t, err)
			if size > 0 {
				assert.Equal(t, referenceHashes(tc.data, tbs), hm.Hashes)
			} else {
				assert.Equal(t, []string{hashmap.EmptyHash}, hm.Hashes, "the server stores an empty object as [H('')]")
			}

			got := e.download(t, "images", object)
			assert.True(t, bytes.Equal(tc.data, got), "download returns the uploaded bytes")
		})
	}
}

func TestUploadUnchangedSendsNothing(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	data := testData(10*tbs+1, tbs, 11)
	f := e.file(t, "img", data)
	first, err := e.c.Upload(context.Background(), "c", "img", f, UploadOptions{})
	require.NoError(t, err)
	assert.Equal(t, int64(distinctBlocks(data, tbs)), first.BlocksSent)

	before := e.cloud.Stats()
	again, err := e.client(sandboxtest.Alice.Token, false).Upload(context.Background(), "c", "img", f, UploadOptions{})
	require.NoError(t, err)
	after := e.cloud.Stats()
	assert.Zero(t, again.BlocksMissing)
	assert.Zero(t, again.BlocksSent)
	assert.Zero(t, again.BytesSent)
	assert.Zero(t, again.Rounds)
	assert.Equal(t, before.BlocksReceived, after.BlocksReceived)
	assert.Equal(t, before.HashmapPuts+int64(again.Probes)+1, after.HashmapPuts, "the probes while hashing, then one PUT, answered 201")
	assert.Equal(t, first.Hash, again.Hash)

	// The same content under another name is de-duplicated too.
	other, err := e.c.Upload(context.Background(), "c", "copy", f, UploadOptions{})
	require.NoError(t, err)
	assert.Zero(t, other.BlocksSent)
}

// SkipIfUnchanged: the object already holding this content is left as it
// is (no new version), unless the upload also asks to set something a PUT
// would set; different content is uploaded as usual.
func TestUploadSkipIfUnchangedWritesNothing(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	data := testData(6*tbs+7, tbs, 12)
	f := e.file(t, "img", data)
	first, err := e.c.Upload(context.Background(), "c", "img", f, UploadOptions{SkipIfUnchanged: true})
	require.NoError(t, err)
	assert.False(t, first.Unchanged, "a new object is uploaded")
	version := e.head(t, "c", "img").Get("X-Object-Version")

	before := e.cloud.Stats()
	again, err := e.client(sandboxtest.Alice.Token, false).Upload(context.Background(), "c", "img", f, UploadOptions{SkipIfUnchanged: true})
	require.NoError(t, err)
	after := e.cloud.Stats()
	assert.True(t, again.Unchanged)
	assert.Equal(t, before.HashmapPuts, after.HashmapPuts, "no PUT")
	assert.Equal(t, first.Hash, again.Hash)
	assert.Equal(t, first.UUID, again.UUID)
	assert.Equal(t, version, e.head(t, "c", "img").Get("X-Object-Version"), "no new version")
	assert.Equal(t, version, again.Version)

	withMeta, err := e.c.Upload(context.Background(), "c", "img", f, UploadOptions{SkipIfUnchanged: true, Meta: map[string]string{"k": "v"}})
	require.NoError(t, err)
	assert.False(t, withMeta.Unchanged, "metadata to set: a PUT")
	assert.Equal(t, after.HashmapPuts+1, e.cloud.Stats().HashmapPuts)

	changed := e.file(t, "img2", testData(6*tbs+7, tbs, 13))
	other, err := e.c.Upload(context.Background(), "c", "img", changed, UploadOptions{SkipIfUnchanged: true})
	require.NoError(t, err)
	assert.False(t, other.Unchanged)
	assert.NotEqual(t, first.Hash, other.Hash)
}

func TestUploadOneBlockChangeSendsOneBlock(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	data := testData(16*tbs+300, 1<<30, 12)
	_, err := e.c.Upload(context.Background(), "c", "img", e.file(t, "v1", data), UploadOptions{})
	require.NoError(t, err)

	data[7*tbs+5] ^= 0xff
	before := e.received()
	res, err := e.c.Upload(context.Background(), "c", "img", e.file(t, "v2", data), UploadOptions{})
	require.NoError(t, err)
	assert.Equal(t, int64(1), res.BlocksMissing)
	assert.Equal(t, int64(1), res.BlocksSent)
	assert.Equal(t, int64(tbs), res.BytesSent)
	assert.Equal(t, int64(1), e.received()-before)
	assert.Equal(t, merkleOf(data, tbs), res.Hash)
	assert.Equal(t, data, e.download(t, "c", "img"))
}

func TestUploadRepeatedBlocksSentOnce(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	a, b := testData(tbs, 1<<30, 1), testData(tbs, 1<<30, 2)
	data := bytes.Join([][]byte{a, b, a, a, b, a}, nil)
	before := e.received()
	res, err := e.c.Upload(context.Background(), "c", "rep", e.file(t, "rep", data), UploadOptions{})
	require.NoError(t, err)
	assert.Equal(t, int64(6), res.BlocksTotal)
	assert.Equal(t, int64(2), res.BlocksMissing)
	assert.Equal(t, int64(2), res.BlocksSent)
	assert.Equal(t, int64(2), e.received()-before)
}

// pithosGoroutines lists goroutines still running this package's code.
func pithosGoroutines() []string {
	var buf bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&buf, 2)
	var out []string
	for _, g := range strings.Split(buf.String(), "\n\n") {
		if strings.Contains(g, "internal/pithos.") && !strings.Contains(g, "internal/pithos.Test") &&
			!strings.Contains(g, "internal/pithos.pithosGoroutines") {
			out = append(out, g)
		}
	}
	return out
}

func requireNoLeaks(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		left := pithosGoroutines()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines left running:\n%s", strings.Join(left, "\n\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitQuiet waits until the sandbox stops receiving blocks (handlers of
// cancelled requests may still be finishing).
func (e *testEnv) waitQuiet(t *testing.T) {
	t.Helper()
	last := e.received()
	for stable := 0; stable < 5; {
		time.Sleep(20 * time.Millisecond)
		if now := e.received(); now == last {
			stable++
		} else {
			last, stable = now, 0
		}
	}
}

func TestUploadCancelThenResume(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	data := testData(40*tbs+99, 1<<30, 21)
	data = append(data, data[:3*tbs]...) // some repeats
	f := e.file(t, "img", data)
	e.cloud.SetLatency(20 * time.Millisecond)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res, err := e.c.Upload(ctx, "c", "img", f, UploadOptions{
		BlockConcurrency: 2,
		ProgressInterval: time.Nanosecond,
		Progress: func(p Progress) {
			if p.BlocksSent >= 3 {
				cancel()
			}
		},
	})
	require.ErrorIs(t, err, context.Canceled)
	assert.Nil(t, res)
	requireNoLeaks(t)

	e.cloud.SetLatency(0)
	e.waitQuiet(t)
	got := e.received()
	assert.GreaterOrEqual(t, got, int64(3))
	assert.Less(t, got, int64(distinctBlocks(data, tbs)), "the cancel stopped the upload early")
	_, err = e.c.rest.DoDiscard(context.Background(), &rest.Request{
		Method: http.MethodHead, Path: e.c.objectPath("c", "img"), Success: []int{http.StatusOK},
	})
	require.True(t, rest.IsStatus(err, http.StatusNotFound), "no object exists after a cancelled first upload: %v", err)

	res, err = e.c.Upload(context.Background(), "c", "img", f, UploadOptions{})
	require.NoError(t, err)
	assert.Equal(t, int64(distinctBlocks(data, tbs))-got, res.BlocksSent, "only the missing blocks are sent")
	assert.Equal(t, int64(distinctBlocks(data, tbs)), e.received(), "every distinct block was received exactly once")
	assert.Equal(t, data, e.download(t, "c", "img"))
}

// cancelGatedFile holds every read but the first block's until ctx ends.
type cancelGatedFile struct {
	File
	ctx context.Context
}

func (f cancelGatedFile) ReadAt(p []byte, off int64) (int, error) {
	if off > 0 {
		<-f.ctx.Done()
	}
	return f.File.ReadAt(p, off)
}

func TestUploadCancelWhileHashingLeavesNothing(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	data := testData(64*tbs, 1<<30, 22)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The cancel comes after the first block is hashed, before enough
	// others are for a probe.
	f := cancelGatedFile{File: e.file(t, "img", data), ctx: ctx}
	_, err := e.c.Upload(ctx, "c", "img", f, UploadOptions{
		HashWorkers: 2, ProgressInterval: time.Nanosecond,
		Progress: func(p Progress) {
			if p.Phase == PhaseHashing && p.BytesHashed > 0 {
				cancel()
			}
		},
	})
	require.ErrorIs(t, err, context.Canceled)
	requireNoLeaks(t)
	assert.Zero(t, e.cloud.Stats().HashmapPuts)
	assert.Zero(t, e.received())
}

func TestUploadSurvivesFailRate(t *testing.T) {
	e := newEnv(t, sandbox.Config{FailRate: 0.2})
	data := testData(30*tbs+7, tbs, 31)
	c := e.client(sandboxtest.Alice.Token, true)
	res, err := c.Upload(context.Background(), "c", "img", e.file(t, "img", data), UploadOptions{})
	require.NoError(t, err)
	assert.Equal(t, merkleOf(data, tbs), res.Hash)
	assert.Positive(t, e.cloud.Stats().FaultsInjected, "faults were injected and overcome")
	e.cloud.SetFailRate(0)
	assert.Equal(t, data, e.download(t, "c", "img"))
}

func TestUploadBlockThatKeepsFailingNamesTheBlock(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	data := testData(3*tbs, 1<<30, 32)
	// Create the container and send the hashmap PUT without faults, then
	// make every request fail.
	c := e.client(sandboxtest.Alice.Token, true)
	c.rest.HTTP = rest.NewRetrying(&http.Client{Transport: e.tr}, rest.RetryPolicy{Attempts: 3, Base: time.Millisecond, Max: 2 * time.Millisecond})
	_, err := c.CreateContainer(context.Background(), "c", nil)
	require.NoError(t, err)
	var once sync.Once
	_, err = c.Upload(context.Background(), "c", "img", e.file(t, "img", data), UploadOptions{
		BlockConcurrency: 1, ProgressInterval: time.Nanosecond,
		Progress: func(p Progress) {
			if p.BlocksMissing > 0 {
				once.Do(func() { e.cloud.SetFailRate(1) })
			}
		},
	})
	var be *BlockError
	require.ErrorAs(t, err, &be)
	assert.Equal(t, "upload", be.Op)
	assert.Equal(t, be.Index*tbs, be.Offset)
	assert.Contains(t, err.Error(), fmt.Sprintf("block %d at offset %d", be.Index, be.Offset))
	assert.Equal(t, http.StatusServiceUnavailable, rest.StatusOf(err))
}

func TestUploadQuotaPrecheck(t *testing.T) {
	e := newEnv(t, sandbox.Config{Quota: 10 * tbs})
	data := testData(20*tbs, 1<<30, 41)
	var asked atomic.Int64
	_, err := e.c.Upload(context.Background(), "c", "big", e.file(t, "big", data), UploadOptions{
		QuotaFree: func(context.Context) (int64, error) { asked.Add(1); return 10 * tbs, nil },
	})
	var qe *QuotaError
	require.ErrorAs(t, err, &qe)
	assert.Equal(t, int64(20*tbs), qe.Needed)
	assert.Equal(t, int64(10*tbs), qe.Free)
	assert.Nil(t, qe.Err, "refused before asking the server")
	assert.Contains(t, err.Error(), "not enough storage quota")
	assert.Contains(t, err.Error(), "80.0 KiB")
	assert.Equal(t, int64(1), asked.Load())
	assert.Zero(t, e.received(), "nothing was sent")

	// A file that fits passes the pre-check.
	small := testData(5*tbs, 1<<30, 42)
	_, err = e.c.Upload(context.Background(), "c", "small", e.file(t, "small", small), UploadOptions{
		QuotaFree: func(context.Context) (int64, error) { return 10 * tbs, nil },
	})
	require.NoError(t, err)
}

// A one-block object is not pre-checked: the server's 413 at the final PUT
// costs one block, the pre-check two requests per upload.
func TestUploadQuotaOneBlockLeftToTheServer(t *testing.T) {
	e := newEnv(t, sandbox.Config{Quota: 100})
	var asked atomic.Int64
	_, err := e.c.Upload(context.Background(), "c", "one", e.file(t, "one", testData(tbs, 1<<30, 45)), UploadOptions{
		QuotaFree: func(context.Context) (int64, error) { asked.Add(1); return 100, nil },
	})
	var qe *QuotaError
	require.ErrorAs(t, err, &qe)
	assert.Equal(t, http.StatusRequestEntityTooLarge, rest.StatusOf(err), "the server's verdict")
	assert.Zero(t, asked.Load())
	assert.Equal(t, int64(1), e.received())
}

func TestUploadServerQuota413(t *testing.T) {
	e := newEnv(t, sandbox.Config{Quota: 10 * tbs})
	data := testData(20*tbs, 1<<30, 43)
	c := e.client(sandboxtest.Alice.Token, true)
	_, err := c.Upload(context.Background(), "c", "big", e.file(t, "big", data), UploadOptions{})
	var qe *QuotaError
	require.ErrorAs(t, err, &qe)
	var re *rest.Error
	require.ErrorAs(t, err, &re)
	assert.Equal(t, http.StatusRequestEntityTooLarge, re.Status)
	assert.Contains(t, err.Error(), "not enough storage quota")
	assert.Equal(t, int64(20*tbs), qe.Needed, "parsed from the server's details")
	assert.Equal(t, int64(10*tbs), qe.Free)
}

func TestUploadContainerQuota413(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	_, err := e.c.rest.DoDiscard(context.Background(), &rest.Request{
		Method: http.MethodPut, Path: e.c.containerPath("small"),
		Header:  http.Header{"X-Container-Policy-Quota": {fmt.Sprint(5 * tbs)}},
		Success: []int{http.StatusCreated},
	})
	require.NoError(t, err)
	_, err = e.c.Upload(context.Background(), "small", "big", e.file(t, "big", testData(6*tbs, 1<<30, 44)), UploadOptions{})
	var qe *QuotaError
	require.ErrorAs(t, err, &qe)
	assert.Equal(t, http.StatusRequestEntityTooLarge, rest.StatusOf(err))
	assert.Contains(t, err.Error(), "Container quota exceeded")
}

func TestUploadUnauthorizedIsNotRetried(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	c := e.client("wrong-token", true)
	before := e.cloud.Stats().Requests
	_, err := c.Upload(context.Background(), "c", "img", e.file(t, "img", []byte("data")), UploadOptions{})
	var re *rest.Error
	require.ErrorAs(t, err, &re)
	assert.Equal(t, http.StatusUnauthorized, re.Status)
	assert.Equal(t, int64(1), e.cloud.Stats().Requests-before, "one request, no retries")
}

func TestUploadPermanentErrorsAreTyped(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	f := e.file(t, "img", testData(2*tbs, 1<<30, 51))

	t.Run("404 without container creation", func(t *testing.T) {
		_, err := e.c.Upload(context.Background(), "missing", "img", f, UploadOptions{NoCreateContainer: true})
		assert.Equal(t, http.StatusNotFound, rest.StatusOf(err))
	})
	t.Run("403 in another account", func(t *testing.T) {
		c := New(e.cloud.PithosURL(), sandboxtest.Bob.UUID, sandboxtest.Alice.Token, &http.Client{Transport: e.tr})
		before := e.cloud.Stats().Requests
		_, err := c.Upload(context.Background(), "c", "img", f, UploadOptions{})
		assert.Equal(t, http.StatusForbidden, rest.StatusOf(err), "%v", err)
		assert.LessOrEqual(t, e.cloud.Stats().Requests-before, int64(2))
	})
	t.Run("412 create-only over an existing object", func(t *testing.T) {
		_, err := e.c.Upload(context.Background(), "c", "once", f, UploadOptions{IfNoneMatch: "*"})
		require.NoError(t, err)
		_, err = e.c.Upload(context.Background(), "c", "once", f, UploadOptions{IfNoneMatch: "*"})
		assert.Equal(t, http.StatusPreconditionFailed, rest.StatusOf(err))
	})
}

func TestUploadCreatesContainerAndPassesHeaders(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	public := true
	sharing := "read=" + sandboxtest.Bob.UUID
	res, err := e.c.Upload(context.Background(), "new-container", "my image #1.diskdump", e.file(t, "img", []byte("hello")), UploadOptions{
		ContentType: "application/x-diskdump", Public: &public, Sharing: &sharing,
		Meta: map[string]string{"origin": "bench ünïcode"},
	})
	require.NoError(t, err)
	h := e.head(t, "new-container", "my image #1.diskdump")
	assert.Equal(t, res.Hash, h.Get("X-Object-Hash"))
	assert.Equal(t, res.UUID, h.Get("X-Object-UUID"))
	assert.Equal(t, "application/x-diskdump", h.Get("Content-Type"))
	assert.NotEmpty(t, h.Get("X-Object-Public"))
	assert.Contains(t, h.Get("X-Object-Sharing"), sandboxtest.Bob.UUID)
	assert.NotEmpty(t, h.Get("X-Object-Meta-Origin"))
}

// countingFile counts ReadAt calls.
type countingFile struct {
	*os.File
	reads atomic.Int64
}

func (f *countingFile) ReadAt(p []byte, off int64) (int, error) {
	f.reads.Add(1)
	return f.File.ReadAt(p, off)
}

func TestUploadWarmCacheSkipsHashing(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	cache, err := OpenHashmapCache(filepath.Join(t.TempDir(), "hashmaps"))
	require.NoError(t, err)
	data := testData(12*tbs+5, tbs, 61)
	f := &countingFile{File: e.file(t, "img", data)}

	cold, err := e.c.Upload(context.Background(), "c", "img", f, UploadOptions{Cache: cache})
	require.NoError(t, err)
	assert.False(t, cold.CacheHit)
	assert.Positive(t, f.reads.Load())

	f.reads.Store(0)
	var progress []Progress
	warm, err := e.client(sandboxtest.Alice.Token, false).Upload(context.Background(), "c", "img", f, UploadOptions{
		Cache: cache, Progress: func(p Progress) { progress = append(progress, p) },
	})
	require.NoError(t, err)
	assert.True(t, warm.CacheHit)
	assert.Zero(t, f.reads.Load(), "not a byte of the file was read")
	assert.Equal(t, cold.Hash, warm.Hash)
	require.NotEmpty(t, progress)
	assert.True(t, progress[len(progress)-1].CacheHit)

	// A changed file misses the cache and is hashed again.
	data[5] ^= 1
	time.Sleep(5 * time.Millisecond)
	require.NoError(t, os.WriteFile(f.Name(), data, 0o644))
	changed, err := e.c.Upload(context.Background(), "c", "img", f, UploadOptions{Cache: cache})
	require.NoError(t, err)
	assert.False(t, changed.CacheHit)
	assert.Equal(t, int64(1), changed.BlocksSent)
	assert.Equal(t, merkleOf(data, tbs), changed.Hash)
}

// changingFile serves the original bytes until flipped, then different ones.
type changingFile struct {
	File
	flipped atomic.Bool
}

func (f *changingFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.File.ReadAt(p, off)
	if f.flipped.Load() {
		for i := range p[:n] {
			p[i] ^= 0x5a
		}
	}
	return n, err
}

func TestUploadFileChangedAfterHashing(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	data := testData(4*tbs, 1<<30, 71)
	cache, err := OpenHashmapCache(t.TempDir())
	require.NoError(t, err)
	f := &changingFile{File: e.file(t, "img", data)}
	_, err = e.c.Upload(context.Background(), "c", "img", f, UploadOptions{
		Cache: cache, ProgressInterval: time.Nanosecond,
		Progress: func(p Progress) {
			if p.Phase == PhaseUploading {
				f.flipped.Store(true)
			}
		},
	})
	require.ErrorIs(t, err, ErrFileChanged)
	var be *BlockError
	require.ErrorAs(t, err, &be)
	assert.Equal(t, "upload", be.Op)
	_, err = e.c.rest.DoDiscard(context.Background(), &rest.Request{
		Method: http.MethodHead, Path: e.c.objectPath("c", "img"), Success: []int{http.StatusOK},
	})
	assert.True(t, rest.IsStatus(err, http.StatusNotFound), "no object was created from the changed file")
}

func TestUploadSizedReader(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	data := testData(5*tbs+1, tbs, 81)
	res, err := e.c.Upload(context.Background(), "c", "mem", NewSizedFile(bytes.NewReader(data), int64(len(data))), UploadOptions{})
	require.NoError(t, err)
	assert.Equal(t, merkleOf(data, tbs), res.Hash)
}

func TestUploadRoundsAreBounded(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	// A server that keeps losing blocks: every block POST is accepted and
	// answered with the right hash, but nothing is stored.
	data := testData(2*tbs, 1<<30, 91)
	c := e.client(sandboxtest.Alice.Token, false)
	c.rest.HTTP = dropBlocks{next: &http.Client{Transport: e.tr}, t: t}
	_, err := c.Upload(context.Background(), "c", "img", e.file(t, "img", data), UploadOptions{MaxRounds: 2})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "still lacks 2 blocks after 2 rounds")
}

// dropBlocks answers block POSTs itself (202 with the body's hash) without
// forwarding them, as if the server garbage-collected them at once.
type dropBlocks struct {
	next rest.Doer
	t    *testing.T
}

func (d dropBlocks) Do(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodPost {
		return d.next.Do(r)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	js := `["` + hashmap.BlockHash(body) + `"]`
	return &http.Response{StatusCode: http.StatusAccepted, Body: io.NopCloser(strings.NewReader(js)), Header: http.Header{}, Request: r}, nil
}

// recorder notes every request (method, path+query, Content-Type) on its way
// to the sandbox.
type recorder struct {
	next rest.Doer
	mu   sync.Mutex
	reqs []string
}

func (r *recorder) Do(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, fmt.Sprintf("%s %s?%s [%s]", req.Method, req.URL.EscapedPath(), req.URL.RawQuery, req.Header.Get("Content-Type")))
	r.mu.Unlock()
	return r.next.Do(req)
}

func TestUploadWireSequenceMatchesKamaki(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	_, err := e.c.CreateContainer(context.Background(), "c", nil)
	require.NoError(t, err)
	rec := &recorder{next: &http.Client{Transport: e.tr}}
	c := New(e.cloud.PithosURL(), sandboxtest.Alice.UUID, sandboxtest.Alice.Token, rec)
	a := testData(tbs, 1<<30, 95)
	data := bytes.Join([][]byte{a, a, a[:10]}, nil)
	_, err = c.Upload(context.Background(), "c", "my file.diskdump", e.file(t, "img", data), UploadOptions{BlockConcurrency: 1})
	require.NoError(t, err)

	acct := "/object-store/v1/" + sandboxtest.Alice.UUID
	obj := acct + "/c/my%20file.diskdump"
	assert.Equal(t, []string{
		"HEAD " + acct + "/c? []",
		"PUT " + obj + "?hashmap=True&format=json [application/octet-stream]",
		"POST " + acct + "/c?update&format=json [application/octet-stream]",
		"POST " + acct + "/c?update&format=json [application/octet-stream]",
		"PUT " + obj + "?hashmap=True&format=json [application/octet-stream]",
		"HEAD " + obj + "?version=" + e.head(t, "c", "my file.diskdump").Get("X-Object-Version") + " []",
	}, rec.reqs)
}

// tamperHead reports a wrong X-Object-Hash on HEAD, as a server holding
// other content would.
type tamperHead struct{ next rest.Doer }

func (d tamperHead) Do(r *http.Request) (*http.Response, error) {
	resp, err := d.next.Do(r)
	if err == nil && r.Method == http.MethodHead && resp.Header.Get("X-Object-Hash") != "" {
		resp.Header.Set("X-Object-Hash", hashmap.EmptyHash)
	}
	return resp, err
}

func TestUploadVerifiesObjectHash(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	c := New(e.cloud.PithosURL(), sandboxtest.Alice.UUID, sandboxtest.Alice.Token, tamperHead{&http.Client{Transport: e.tr}})
	data := testData(2*tbs, 1<<30, 96)
	_, err := c.Upload(context.Background(), "c", "img", e.file(t, "img", data), UploadOptions{})
	var hm *HashMismatchError
	require.ErrorAs(t, err, &hm)
	assert.Equal(t, merkleOf(data, tbs), hm.Local)
	assert.Equal(t, hashmap.EmptyHash, hm.Remote)
}

func TestUploadProgressIsRateLimited(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	data := testData(40*tbs, 1<<30, 97)
	var calls []Progress
	var mu sync.Mutex
	res, err := e.c.Upload(context.Background(), "c", "img", e.file(t, "img", data), UploadOptions{
		ProgressInterval: time.Hour,
		Progress: func(p Progress) {
			mu.Lock()
			calls = append(calls, p)
			mu.Unlock()
		},
	})
	require.NoError(t, err)
	require.LessOrEqual(t, len(calls), 2, "one early report at most, then the final one")
	final := calls[len(calls)-1]
	assert.Equal(t, Progress{
		Phase: PhaseDone, TotalBytes: int64(len(data)), BytesHashed: int64(len(data)), BlocksTotal: 40,
		BlocksMissing: 40, BlocksSent: 40, BytesSent: int64(len(data)),
	}, final)
	assert.Equal(t, int64(40), res.BlocksSent)
}

func TestUploadAfterContainerDeletedRecreatesIt(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	f := e.file(t, "img", testData(2*tbs, 1<<30, 98))
	_, err := e.c.Upload(context.Background(), "c", "img", f, UploadOptions{})
	require.NoError(t, err)
	// Delete the object and the container behind the client's back.
	for _, p := range []string{e.c.objectPath("c", "img"), e.c.containerPath("c")} {
		_, err := e.c.rest.DoDiscard(context.Background(), &rest.Request{Method: http.MethodDelete, Path: p, Success: []int{http.StatusNoContent}})
		require.NoError(t, err)
	}
	res, err := e.c.Upload(context.Background(), "c", "img", f, UploadOptions{})
	require.NoError(t, err, "the cached container info is refreshed and the container re-created")
	assert.Zero(t, res.BlocksSent, "the blocks are still in the account's store")
}
