package pithos

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
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

// TestProbeAnswers409AndCreatesNothing checks, against the sandbox, what the
// overlapped upload relies on: a hashmap PUT of some hashes plus
// probeDigest answers 409 with the ones the server lacks plus probeDigest,
// before any container check, and creates nothing.
func TestProbeAnswers409AndCreatesNothing(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	ctx := context.Background()
	stored := testData(tbs, 1<<30, 1)
	_, err := e.c.CreateContainer(ctx, "c", nil)
	require.NoError(t, err)
	_, err = e.c.UploadBlock(ctx, "c", stored)
	require.NoError(t, err)
	have := hashmap.BlockSum(stored)
	lack := hashmap.BlockSum(testData(tbs, 1<<30, 2))

	for _, tc := range []struct {
		name, container string
		hashes          []Digest
		want            []Digest
	}{
		{"all present", "c", []Digest{have, probeDigest}, []Digest{probeDigest}},
		{"one missing", "c", []Digest{have, lack, have, probeDigest}, []Digest{lack, probeDigest}},
		{"into a container that does not exist", "nowhere", []Digest{lack, probeDigest}, []Digest{lack, probeDigest}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			size := int64(len(tc.hashes)-1)*tbs + 1
			ph, err := e.c.PutHashmap(ctx, tc.container, "probed", size, tc.hashes, nil)
			require.NoError(t, err)
			assert.False(t, ph.Created)
			assert.Equal(t, tc.want, ph.Missing)
			_, err = e.c.rest.DoDiscard(ctx, &rest.Request{
				Method: http.MethodHead, Path: e.c.objectPath(tc.container, "probed"), Success: []int{http.StatusOK},
			})
			assert.True(t, rest.IsStatus(err, http.StatusNotFound), "the probe created nothing: %v", err)
		})
	}
	_, err = e.c.rest.DoDiscard(ctx, &rest.Request{Method: http.MethodHead, Path: e.c.containerPath("nowhere"), Success: []int{http.StatusNoContent}})
	assert.True(t, rest.IsStatus(err, http.StatusNotFound), "no container was created by a probe: %v", err)
}

// overlapGate makes an upload probe before hashing ends, whatever the
// scheduling: the file's last block is not read until the client has sent a
// hashmap PUT (or 20 s have passed, which check reports).
type overlapGate struct {
	once   sync.Once
	probed chan struct{}
}

func newOverlapGate() *overlapGate { return &overlapGate{probed: make(chan struct{})} }

// client is a client for Alice whose requests open the gate.
func (g *overlapGate) client(e *testEnv, wrap func(rest.Doer) rest.Doer) *Client {
	var d rest.Doer = doerFunc(func(r *http.Request) (*http.Response, error) {
		if r.Method == http.MethodPut && strings.Contains(r.URL.RawQuery, "hashmap") {
			g.once.Do(func() { close(g.probed) })
		}
		return (&http.Client{Transport: e.tr}).Do(r)
	})
	if wrap != nil {
		d = wrap(d)
	}
	return New(e.cloud.PithosURL(), sandboxtest.Alice.UUID, sandboxtest.Alice.Token, d)
}

func (g *overlapGate) file(t *testing.T, f File, size int64) File {
	gf := &gatedFile{File: f, last: (hashmap.NumBlocks(size, tbs) - 1) * tbs, release: g.probed}
	t.Cleanup(func() { assert.False(t, gf.held.Load(), "the whole file was hashed before any probe") })
	return gf
}

type doerFunc func(*http.Request) (*http.Response, error)

func (f doerFunc) Do(r *http.Request) (*http.Response, error) { return f(r) }

// gatedFile holds back reading the last block until release is closed (or
// a generous timeout passes), so that hashing cannot finish before then.
type gatedFile struct {
	File
	last    int64
	release chan struct{}
	held    atomic.Bool
}

func (f *gatedFile) ReadAt(p []byte, off int64) (int, error) {
	if off == f.last {
		select {
		case <-f.release:
		case <-time.After(20 * time.Second):
			f.held.Store(true)
		}
	}
	return f.File.ReadAt(p, off)
}

// TestUploadSendsWhileHashing: the last block cannot be hashed until the
// sandbox has received a block, which only an engine that sends while it
// hashes achieves.
func TestUploadSendsWhileHashing(t *testing.T) {
	var once sync.Once
	release := make(chan struct{})
	cloud := sandboxtest.StartWrapped(t, sandbox.Config{BlockSize: tbs}, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r)
			if r.Method == http.MethodPost && r.Header.Get("Content-Type") == mediaOctetStream {
				once.Do(func() { close(release) })
			}
		})
	})
	e := &testEnv{cloud: cloud, tr: &http.Transport{MaxIdleConnsPerHost: 32}, dir: t.TempDir()}
	t.Cleanup(e.tr.CloseIdleConnections)
	e.c = e.client(sandboxtest.Alice.Token, false)

	const blocks = 40
	data := testData(blocks*tbs, 1<<30, 3)
	f := &gatedFile{File: e.file(t, "img", data), last: (blocks - 1) * tbs, release: release}
	res, err := e.c.Upload(context.Background(), "c", "img", f, UploadOptions{})
	require.NoError(t, err)
	assert.False(t, f.held.Load(), "no block was sent before the whole file was hashed")
	assert.Positive(t, res.Probes)
	assert.Zero(t, res.Rounds, "the probes found every missing block: the final PUT created the object")
	assert.Equal(t, int64(blocks), res.BlocksMissing)
	assert.Equal(t, int64(blocks), res.BlocksSent)
	assert.Equal(t, merkleOf(data, tbs), res.Hash)
	assert.Equal(t, data, e.download(t, "c", "img"))
}

// TestUploadOverlappedDeduplicates: blocks repeated across probes, and
// blocks the server already has, are sent once or not at all; a renamed
// copy sends nothing.
func TestUploadOverlappedDeduplicates(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	a, b, z := testData(tbs, 1<<30, 4), testData(tbs, 1<<30, 5), make([]byte, tbs)
	var parts [][]byte
	for i := range 60 {
		switch i % 4 {
		case 0:
			parts = append(parts, a)
		case 1:
			parts = append(parts, z)
		case 2:
			parts = append(parts, testData(tbs, 1<<30, uint64(100+i)))
		default:
			parts = append(parts, b)
		}
	}
	data := bytes.Join(parts, nil)
	distinct := int64(distinctBlocks(data, tbs))

	// Half the distinct blocks are on the server already.
	var half []byte
	for i := 0; i < 60; i += 8 {
		half = append(half, parts[i+2]...)
	}
	_, err := e.c.Upload(context.Background(), "c", "half", e.file(t, "half", half), UploadOptions{})
	require.NoError(t, err)
	already := int64(distinctBlocks(half, tbs))

	before := e.received()
	g := newOverlapGate()
	res, err := g.client(e, nil).Upload(context.Background(), "c", "img", g.file(t, e.file(t, "img", data), int64(len(data))), UploadOptions{})
	require.NoError(t, err)
	assert.Positive(t, res.Probes)
	assert.Equal(t, distinct-already, res.BlocksSent, "each missing block once, none the server had")
	assert.Equal(t, res.BlocksSent, e.received()-before)
	assert.Equal(t, res.BlocksSent, res.BlocksMissing)
	assert.Equal(t, data, e.download(t, "c", "img"))

	before = e.received()
	g = newOverlapGate()
	again, err := g.client(e, nil).Upload(context.Background(), "other", "renamed", g.file(t, e.file(t, "renamed", data), int64(len(data))), UploadOptions{})
	require.NoError(t, err)
	assert.Positive(t, again.Probes)
	assert.Zero(t, again.BlocksSent)
	assert.Zero(t, again.BlocksMissing)
	assert.Zero(t, again.Rounds)
	assert.Equal(t, before, e.received())
	assert.Equal(t, res.Hash, again.Hash)
}

// putRecorder keeps the headers and body of every hashmap PUT.
type putRecorder struct {
	next rest.Doer
	mu   sync.Mutex
	puts []recordedPut
}

type recordedPut struct {
	header http.Header
	body   struct {
		Hashes []string `json:"hashes"`
		Bytes  int64    `json:"bytes"`
	}
}

func (r *putRecorder) Do(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPut && strings.Contains(req.URL.RawQuery, "hashmap") {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		var p recordedPut
		p.header = req.Header.Clone()
		if err := json.Unmarshal(b, &p.body); err != nil {
			return nil, err
		}
		r.mu.Lock()
		r.puts = append(r.puts, p)
		r.mu.Unlock()
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	return r.next.Do(req)
}

// TestUploadProbesCarryNoMetadata: probes send the preconditions (so a
// refused upload fails before any block is sent) but not the metadata,
// sharing or publication, which only the final PUT applies; and every
// probe's size matches its hash count.
func TestUploadProbesCarryNoMetadata(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	rec := &putRecorder{}
	g := newOverlapGate()
	c := g.client(e, func(d rest.Doer) rest.Doer { rec.next = d; return rec })
	public := true
	sharing := "read=" + sandboxtest.Bob.UUID
	data := testData(30*tbs+5, 1<<30, 6)
	res, err := c.Upload(context.Background(), "c", "img", g.file(t, e.file(t, "img", data), int64(len(data))), UploadOptions{
		Public: &public, Sharing: &sharing, Meta: map[string]string{"k": "v"}, IfNoneMatch: "*", ETag: "some-etag",
		ContentType: "application/x-diskdump",
	})
	require.NoError(t, err)
	require.Positive(t, res.Probes)
	require.Len(t, rec.puts, res.Probes+1, "the probes, then one final PUT")
	probed := map[string]bool{}
	for _, p := range rec.puts[:res.Probes] {
		assert.Equal(t, probeDigest.String(), p.body.Hashes[len(p.body.Hashes)-1], "the impossible hash comes last")
		assert.Equal(t, int64(len(p.body.Hashes)-1)*tbs+1, p.body.Bytes)
		assert.Equal(t, "*", p.header.Get("If-None-Match"))
		assert.Equal(t, "application/x-diskdump", p.header.Get("Content-Type"))
		for _, k := range []string{"X-Object-Public", "X-Object-Sharing", "X-Object-Meta-K", "ETag"} {
			assert.Empty(t, p.header.Get(k), "%s on a probe", k)
		}
		for _, h := range p.body.Hashes[:len(p.body.Hashes)-1] {
			assert.False(t, probed[h], "hash %s probed twice", h)
			probed[h] = true
		}
	}
	last := rec.puts[len(rec.puts)-1]
	assert.Equal(t, referenceHashes(data, tbs), last.body.Hashes)
	assert.Equal(t, int64(len(data)), last.body.Bytes)
	assert.Equal(t, "True", last.header.Get("X-Object-Public"))
	assert.Equal(t, "v", last.header.Get("X-Object-Meta-K"))
	assert.Equal(t, "some-etag", last.header.Get("ETag"))
	assert.NotEmpty(t, e.head(t, "c", "img").Get("X-Object-Public"))

	// Create-only over the existing object: refused by the first probe,
	// before any block is sent.
	before := e.received()
	g = newOverlapGate()
	c = g.client(e, nil)
	_, err = c.Upload(context.Background(), "c", "img", g.file(t, e.file(t, "v2", testData(30*tbs, 1<<30, 7)), 30*tbs), UploadOptions{IfNoneMatch: "*"})
	assert.Equal(t, http.StatusPreconditionFailed, rest.StatusOf(err))
	assert.Equal(t, before, e.received())
}

func TestUploadOverlappedVerifiesObjectHash(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	g := newOverlapGate()
	c := g.client(e, func(d rest.Doer) rest.Doer { return tamperHead{d} })
	data := testData(25*tbs, 1<<30, 8)
	res, err := c.Upload(context.Background(), "c", "img", g.file(t, e.file(t, "img", data), int64(len(data))), UploadOptions{})
	var hm *HashMismatchError
	require.ErrorAs(t, err, &hm)
	assert.Nil(t, res)
	assert.Equal(t, merkleOf(data, tbs), hm.Local)
}

func TestUploadOverlappedQuotaPrecheckSendsNothing(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	data := testData(40*tbs, 1<<30, 9)
	var asked atomic.Int64
	g := newOverlapGate()
	_, err := g.client(e, nil).Upload(context.Background(), "c", "big", g.file(t, e.file(t, "big", data), int64(len(data))), UploadOptions{
		QuotaFree: func(context.Context) (int64, error) { asked.Add(1); return 10 * tbs, nil },
	})
	var qe *QuotaError
	require.ErrorAs(t, err, &qe)
	assert.Equal(t, int64(40*tbs), qe.Needed, "the whole object is charged, whatever is missing")
	assert.Positive(t, qe.MissingBytes)
	assert.LessOrEqual(t, qe.MissingBytes, int64(40*tbs), "what was known missing when the check ran")
	assert.Equal(t, int64(1), asked.Load())
	assert.Zero(t, e.received(), "nothing was sent")
	requireNoLeaks(t)
}

func TestUploadOverlappedRoundsAreBounded(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	data := testData(20*tbs, 1<<30, 10)
	g := newOverlapGate()
	c := g.client(e, func(d rest.Doer) rest.Doer { return dropBlocks{next: d, t: t} })
	_, err := c.Upload(context.Background(), "c", "img", g.file(t, e.file(t, "img", data), int64(len(data))), UploadOptions{MaxRounds: 2})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "still lacks 20 blocks after 2 rounds")
}

// TestUploadOverlappedFileChangedIsDetected: a file rewritten between the
// hashing of its blocks and their sending (here: as soon as the first probe
// is answered) fails with ErrFileChanged and creates nothing.
func TestUploadOverlappedFileChangedIsDetected(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	data := testData(48*tbs, 1<<30, 11)
	f := &changingFile{File: e.file(t, "img", data)}
	g := newOverlapGate()
	c := g.client(e, func(d rest.Doer) rest.Doer {
		return doerFunc(func(r *http.Request) (*http.Response, error) {
			resp, err := d.Do(r)
			if r.Method == http.MethodPut && strings.Contains(r.URL.RawQuery, "hashmap") {
				f.flipped.Store(true)
			}
			return resp, err
		})
	})
	_, err := c.Upload(context.Background(), "c", "img", g.file(t, f, int64(len(data))), UploadOptions{})
	require.ErrorIs(t, err, ErrFileChanged)
	var be *BlockError
	require.ErrorAs(t, err, &be)
	assert.Equal(t, "upload", be.Op, "the server's hash of what was sent gave it away")
	requireNoLeaks(t)
	_, err = e.c.rest.DoDiscard(context.Background(), &rest.Request{
		Method: http.MethodHead, Path: e.c.objectPath("c", "img"), Success: []int{http.StatusOK},
	})
	assert.True(t, rest.IsStatus(err, http.StatusNotFound), "no object was created from the changed file")
}

// concurrencyFile records the most ReadAt calls in progress at once.
type concurrencyFile struct {
	io.ReaderAt
	now, peak atomic.Int64
}

func (f *concurrencyFile) ReadAt(p []byte, off int64) (int, error) {
	n := f.now.Add(1)
	for {
		p := f.peak.Load()
		if n <= p || f.peak.CompareAndSwap(p, n) {
			break
		}
	}
	time.Sleep(100 * time.Microsecond) // widen the window
	defer f.now.Add(-1)
	return f.ReaderAt.ReadAt(p, off)
}

// TestUploadOverlappedMemoryIsBounded: a reader that is not an *os.File is
// read into pool buffers by hashers and senders alike; at most
// HashWorkers+BlockConcurrency blocks are read at once, whatever the size.
func TestUploadOverlappedMemoryIsBounded(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	data := testData(120*tbs, 1<<30, 12)
	r := &concurrencyFile{ReaderAt: bytes.NewReader(data)}
	g := newOverlapGate()
	res, err := g.client(e, nil).Upload(context.Background(), "c", "img", g.file(t, NewSizedFile(r, int64(len(data))), int64(len(data))), UploadOptions{HashWorkers: 2, BlockConcurrency: 3})
	require.NoError(t, err)
	assert.Positive(t, res.Probes)
	assert.Equal(t, int64(120), res.BlocksSent)
	assert.LessOrEqual(t, r.peak.Load(), int64(2+3))
}
