package pithos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imagesync/imagesync/internal/hashmap"
	"github.com/imagesync/imagesync/internal/rest"
)

// File is what Upload reads: random access for parallel hashing and for
// re-reading blocks at send time, and a Stat for the size and the cache key.
// *os.File satisfies it; NewSizedFile adapts any io.ReaderAt.
type File interface {
	io.ReaderAt
	Stat() (fs.FileInfo, error)
}

// Upload phases, as reported in Progress.Phase.
const (
	PhaseHashing    = "hashing"
	PhaseUploading  = "uploading"
	PhaseFinalizing = "finalizing"
	PhaseDone       = "done"
)

// Progress is a snapshot of an upload.
type Progress struct {
	Phase         string
	TotalBytes    int64
	BytesHashed   int64
	BlocksTotal   int64
	BlocksMissing int64
	BlocksSent    int64
	BytesSent     int64
	CacheHit      bool
}

// UploadOptions tune Upload. The zero value uploads with kamaki's defaults
// and this package's concurrency.
type UploadOptions struct {
	// BlockConcurrency is how many missing blocks are in flight at once
	// (default 8).
	BlockConcurrency int
	// HashWorkers is how many blocks are hashed at once (default GOMAXPROCS).
	HashWorkers int
	// ContentType of the object (default application/octet-stream).
	ContentType string
	// Sharing, Public and Meta are sent on both hashmap PUTs (see
	// PutHashmapOptions).
	Sharing *string
	Public  *bool
	Meta    map[string]string
	// IfMatch / IfNoneMatch are sent on both PUTs ("*" for create-only).
	IfMatch, IfNoneMatch string
	// ETag is sent on the final PUT, as kamaki does.
	ETag string
	// NoCreateContainer makes a missing container an error (404) instead of
	// creating it.
	NoCreateContainer bool
	// Progress, if set, is called at most every ProgressInterval (default
	// 250ms) and once at the end with Phase "done". Calls never overlap but
	// may come from different goroutines.
	Progress         func(Progress)
	ProgressInterval time.Duration
	// Cache, if set, supplies and records the file's hashmap.
	Cache *HashmapCache
	// QuotaFree, if set, returns the account's free pithos.diskspace. It is
	// asked before any block is sent; if the upload needs more, Upload fails
	// with a *QuotaError without sending anything. An object of at most one
	// block is not pre-checked: the server's 413 comes one block later.
	QuotaFree func(ctx context.Context) (int64, error)
	// MaxRounds bounds the rounds of "send missing blocks, PUT the hashmap
	// again" when the server still lacks blocks after a round, e.g. because
	// they were garbage-collected meanwhile (default 3).
	MaxRounds int
	// SkipIfUnchanged writes nothing when the object's current version
	// already holds this content (same size and X-Object-Hash): Upload
	// returns that version with Unchanged set, at the cost of one HEAD. It
	// applies only when no Sharing, Public, Meta or precondition is asked
	// for, since a PUT would also set those.
	SkipIfUnchanged bool
}

// Defaults shared by uploads and downloads.
const (
	defaultBlockConcurrency = 8
	defaultProgressInterval = 250 * time.Millisecond
)

func (o UploadOptions) withDefaults() UploadOptions {
	if o.BlockConcurrency <= 0 {
		o.BlockConcurrency = defaultBlockConcurrency
	}
	if o.HashWorkers <= 0 {
		o.HashWorkers = defaultHashWorkers()
	}
	if o.ProgressInterval <= 0 {
		o.ProgressInterval = defaultProgressInterval
	}
	if o.MaxRounds <= 0 {
		o.MaxRounds = 3
	}
	return o
}

func (o UploadOptions) skipIfUnchanged() bool {
	return o.SkipIfUnchanged && o.Sharing == nil && o.Public == nil && len(o.Meta) == 0 && o.IfMatch == "" && o.IfNoneMatch == ""
}

// UploadResult describes a finished upload.
type UploadResult struct {
	// Hash is the object's Merkle hash (X-Object-Hash), checked against the
	// local hashmap.
	Hash      string
	Bytes     int64
	BlockSize int64
	// BlocksTotal is the number of blocks of the file; BlocksMissing how many
	// distinct blocks the server lacked at first; BlocksSent and BytesSent
	// what was sent over all rounds.
	BlocksTotal   int64
	BlocksMissing int64
	BlocksSent    int64
	BytesSent     int64
	// ETag, UUID and Version of the object version created.
	ETag     string
	UUID     string
	Version  string
	Duration time.Duration
	// CacheHit is true when the hashmap came from the cache, unhashed.
	CacheHit bool
	// Rounds is the number of full hashmap PUTs that answered 409 (each
	// followed by sending what it listed).
	Rounds int
	// Probes is the number of partial hashmap PUTs sent while hashing to
	// learn which blocks the server lacks (see overlappedUpload).
	Probes int
	// Unchanged is true when the object already held this content and
	// nothing was written (UploadOptions.SkipIfUnchanged).
	Unchanged bool
}

// Upload stores f as container/object with the Pithos+ hashmap protocol, as
// kamaki does: it learns the container's block size, hashes the file in
// blocks (in parallel, with bounded memory), uploads only the blocks the
// server lacks, PUTs the hashmap and checks that the object's hash equals
// the local Merkle root. Unlike kamaki it does not wait for the whole file
// to be hashed before sending: while hashing, it asks the server which of
// the blocks hashed so far it lacks and sends them meanwhile (see
// overlappedUpload). An unchanged, renamed or copied file sends no data; an
// interrupted upload resumes by sending only what is still missing.
//
// Errors are typed: *rest.Error for refused requests (400, 401, 403, 404,
// 412 are never retried by the client), *QuotaError for 413 or a failed
// quota pre-check, *BlockError naming a block that could not be read or
// sent, *HashMismatchError, and ErrFileChanged (wrapped) when the file
// changed under the upload.
func (c *Client) Upload(ctx context.Context, container, object string, f File, opts UploadOptions) (*UploadResult, error) {
	res, err := c.upload(ctx, container, object, f, opts)
	if err != nil {
		return nil, fmt.Errorf("pithos: upload %s/%s: %w", container, object, err)
	}
	return res, nil
}

func (c *Client) upload(ctx context.Context, container, object string, f File, opts UploadOptions) (*UploadResult, error) {
	start := time.Now()
	opts = opts.withDefaults()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat: %w", err)
	}
	size := fi.Size()
	if size < 0 {
		return nil, fmt.Errorf("invalid file size %d", size)
	}
	bi, cached, err := c.containerBlockInfo(ctx, container, !opts.NoCreateContainer)
	if err != nil {
		return nil, err
	}
	bs := bi.blockSize
	pr := newProgressReporter(opts.Progress, opts.ProgressInterval, Progress{
		Phase: PhaseHashing, TotalBytes: size, BlocksTotal: hashmap.NumBlocks(size, bs),
	})
	res := &UploadResult{Bytes: size, BlockSize: bs, BlocksTotal: hashmap.NumBlocks(size, bs)}
	// Hashers and senders work at once, each holding at most one buffer;
	// buffers are allocated on first use, and senders of an *os.File use
	// sendfile(2) and none.
	pool := newBufferPool(opts.HashWorkers+opts.BlockConcurrency, int(min(bs, max(size, 1))))
	sender := &blockSender{
		c: c, container: container, r: f, size: size, blockSize: bs,
		concurrency: opts.BlockConcurrency, pool: pool, sent: pr.sent,
	}
	put := &PutHashmapOptions{
		ContentType: opts.ContentType, IfMatch: opts.IfMatch, IfNoneMatch: opts.IfNoneMatch,
		Sharing: opts.Sharing, Public: opts.Public, Meta: opts.Meta,
	}
	final := *put
	final.ETag = opts.ETag
	precheck := func(ctx context.Context, missingBytes int64) error {
		// An object of one block risks one block: the server's own 413 at
		// the final PUT says the same without the two requests of a check.
		if opts.QuotaFree == nil || size <= bs {
			return nil
		}
		return c.quotaPrecheck(ctx, container, object, size, missingBytes, opts.QuotaFree)
	}

	// Hash, or take the hashmap from the cache. While hashing, the blocks
	// the server lacks are found and sent (overlappedUpload).
	// A file of one block hashes faster than its cache entry is written and
	// read back (a file created and renamed in a directory of thousands):
	// only larger files are cached.
	cache := opts.Cache
	if size <= bs {
		cache = nil
	}
	sums, hit := cache.Lookup(fi, bs, bi.algo)
	probed, prechecked := false, false
	if hit {
		res.CacheHit = true
		pr.update(func(p *Progress) { p.CacheHit, p.BytesHashed = true, size })
	} else {
		ov := &overlappedUpload{
			c: c, container: container, object: object, size: size, bs: bs,
			hasher:        &fileHasher{r: f, size: size, blockSize: bs, workers: opts.HashWorkers, pool: pool, hashed: pr.hashed},
			sender:        sender,
			batch:         int64(max(minProbeBatch, opts.BlockConcurrency)),
			preconditions: &PutHashmapOptions{ContentType: opts.ContentType, IfMatch: opts.IfMatch, IfNoneMatch: opts.IfNoneMatch},
			precheck:      precheck,
			found:         func(n int64) { pr.update(func(p *Progress) { p.BlocksMissing = n }) },
			hashedAll:     func() { pr.update(func(p *Progress) { p.Phase = PhaseUploading }) },
			sums:          make([]Digest, res.BlocksTotal),
		}
		if err := ov.run(ctx); err != nil {
			return nil, err
		}
		if err := checkUnchanged(f, fi); err != nil {
			return nil, err
		}
		sums, probed, prechecked = ov.sums, ov.probes > 0, ov.prechecked
		res.Probes, res.BlocksMissing = ov.probes, ov.missing
		// A failure to cache costs a re-hash next time, never the upload.
		_ = cache.Store(fi, bs, bi.algo, sums)
	}
	root := hashmap.MerkleRootRaw(digestSlices(sums))
	rootHex := Digest(root).String()
	if opts.skipIfUnchanged() {
		info, err := c.ObjectInfo(ctx, container, object, nil)
		switch {
		case err == nil && info.Hash == rootHex && info.Bytes == size:
			res.Hash, res.UUID, res.ETag, res.Version, res.Unchanged = rootHex, info.UUID, info.ETag, strconv.FormatInt(info.Version, 10), true
			res.Duration = time.Since(start)
			pr.finish()
			return res, nil
		case err != nil && !IsNotFound(err):
			return nil, err
		}
	}

	putHashmap := func(o *PutHashmapOptions) (*PutHashmapResult, error) {
		ph, err := c.PutHashmap(ctx, container, object, size, sums, o)
		if cached && rest.IsStatus(err, http.StatusNotFound) {
			// The container was deleted since its info was cached: look it
			// up (and create it) again, once.
			cached = false
			c.blockInfos.forget(container)
			nbi, _, err := c.containerBlockInfo(ctx, container, !opts.NoCreateContainer)
			if err != nil {
				return nil, err
			}
			if nbi != bi {
				return nil, fmt.Errorf("container %s was re-created with block size %d (was %d): upload again", container, nbi.blockSize, bs)
			}
			ph, err = c.PutHashmap(ctx, container, object, size, sums, o)
			return ph, asQuotaError(err, object)
		}
		return ph, asQuotaError(err, object)
	}
	// After probing, the server should lack nothing: this PUT is the final
	// one. Otherwise it is the first, and its 409 lists what to send.
	first := put
	if probed {
		first = &final
		pr.update(func(p *Progress) { p.Phase = PhaseFinalizing })
	} else {
		pr.update(func(p *Progress) { p.Phase = PhaseUploading })
	}
	ph, err := putHashmap(first)
	if err != nil {
		return nil, err
	}
	if !ph.Created {
		var index *blockIndex
		for !ph.Created {
			if res.Rounds >= opts.MaxRounds {
				return nil, fmt.Errorf("the server still lacks %d blocks after %d rounds of uploading them", len(ph.Missing), res.Rounds)
			}
			if index == nil {
				index = newBlockIndex(sums)
			}
			refs, missingBytes, err := index.resolve(ph.Missing, size, bs)
			if err != nil {
				return nil, err
			}
			if res.Rounds == 0 && !probed {
				res.BlocksMissing = int64(len(refs))
				pr.update(func(p *Progress) { p.Phase, p.BlocksMissing = PhaseUploading, int64(len(refs)) })
			}
			if !prechecked {
				if err := precheck(ctx, missingBytes); err != nil {
					return nil, err
				}
				prechecked = true
			}
			res.Rounds++
			if err := sender.send(ctx, refs); err != nil {
				if hit && errors.Is(err, ErrFileChanged) {
					// The cached hashmap no longer describes the file.
					_ = cache.Forget(fi, bs, bi.algo)
				}
				return nil, err
			}
			pr.update(func(p *Progress) { p.Phase = PhaseFinalizing })
			if ph, err = putHashmap(&final); err != nil {
				return nil, err
			}
		}
	}
	if res.Rounds > 0 || res.BlocksMissing > 0 {
		if err := checkUnchanged(f, fi); err != nil {
			return nil, err
		}
	}
	res.ETag, res.Version = ph.ETag, ph.Version
	if err := c.verifyUploaded(ctx, container, object, rootHex, res); err != nil {
		return nil, err
	}
	res.BlocksSent, res.BytesSent = pr.blocksSent.Load(), pr.bytesSent.Load()
	res.Duration = time.Since(start)
	pr.finish()
	return res, nil
}

// blockInfo is what a container dictates about blocks.
type blockInfo struct {
	blockSize int64
	algo      string
}

// blockInfoCache remembers each container's block size and hash: they are
// fixed at creation, so one HEAD per container per client is enough.
type blockInfoCache struct {
	mu sync.Mutex
	m  map[string]blockInfo
}

func (bc *blockInfoCache) get(container string) (blockInfo, bool) {
	bc.mu.Lock()
	defer bc.mu.Unlock()
	bi, ok := bc.m[container]
	return bi, ok
}

func (bc *blockInfoCache) put(container string, bi blockInfo) {
	bc.mu.Lock()
	defer bc.mu.Unlock()
	if bc.m == nil {
		bc.m = map[string]blockInfo{}
	}
	bc.m[container] = bi
}

func (bc *blockInfoCache) forget(container string) {
	bc.mu.Lock()
	defer bc.mu.Unlock()
	delete(bc.m, container)
}

// containerBlockInfo returns the container's X-Container-Block-Size and
// X-Container-Block-Hash, creating the container first if it is missing and
// create is set. cached reports that the answer came from the cache.
func (c *Client) containerBlockInfo(ctx context.Context, container string, create bool) (bi blockInfo, cached bool, err error) {
	if bi, ok := c.blockInfos.get(container); ok {
		return bi, true, nil
	}
	ci, err := c.ContainerInfo(ctx, container)
	if create && rest.IsStatus(err, http.StatusNotFound) {
		if _, err := c.CreateContainer(ctx, container, nil); err != nil {
			return blockInfo{}, false, fmt.Errorf("creating container %s: %w", container, err)
		}
		ci, err = c.ContainerInfo(ctx, container)
	}
	if err != nil {
		return blockInfo{}, false, err
	}
	if ci.BlockSize <= 0 {
		return blockInfo{}, false, fmt.Errorf("container %s reports block size %d", container, ci.BlockSize)
	}
	if err := hashmap.CheckAlgorithm(ci.BlockHash); err != nil {
		return blockInfo{}, false, fmt.Errorf("container %s: %w", container, err)
	}
	bi = blockInfo{blockSize: ci.BlockSize, algo: ci.BlockHash}
	c.blockInfos.put(container, bi)
	return bi, false, nil
}

// checkUnchanged fails when the file's size or mtime moved since before.
func checkUnchanged(f File, before fs.FileInfo) error {
	now, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat: %w", err)
	}
	if now.Size() != before.Size() || !now.ModTime().Equal(before.ModTime()) {
		return fmt.Errorf("%w: size %d→%d, mtime %s→%s", ErrFileChanged, before.Size(), now.Size(),
			before.ModTime().Format(time.RFC3339Nano), now.ModTime().Format(time.RFC3339Nano))
	}
	return nil
}

func digestSlices(ds []Digest) [][]byte {
	out := make([][]byte, len(ds))
	for i := range ds {
		out[i] = ds[i][:]
	}
	return out
}

// verifyUploaded checks the created version's X-Object-Hash (asked of that
// very version, so a concurrent writer cannot confuse it) against the local
// Merkle root, and fills in Hash and UUID.
func (c *Client) verifyUploaded(ctx context.Context, container, object, root string, res *UploadResult) error {
	var q []rest.Param
	if res.Version != "" {
		q = []rest.Param{{Key: "version", Value: res.Version}}
	}
	resp, err := c.rest.DoDiscard(ctx, &rest.Request{
		Method: http.MethodHead, Path: c.objectPath(container, object), Query: q,
		Success: []int{http.StatusOK, http.StatusNoContent},
	})
	if err != nil {
		return fmt.Errorf("verifying the uploaded object: %w", err)
	}
	remote := resp.Header.Get("X-Object-Hash")
	if remote == "" {
		remote = res.ETag
	}
	if remote != root {
		return &HashMismatchError{Object: container + "/" + object, Local: root, Remote: remote}
	}
	res.Hash = root
	res.UUID = resp.Header.Get("X-Object-UUID")
	if res.Version == "" {
		res.Version = resp.Header.Get("X-Object-Version")
	}
	return nil
}

// quotaPrecheck refuses, before any block is sent, an upload the server would
// refuse at the final PUT (objects larger than one block; see precheck). The server charges the object's size minus the
// size of the version it replaces (not the bytes of the blocks it lacks:
// de-duplicated blocks are charged too, and replacing an object frees its
// old size), so that is what must fit. It runs only when blocks are missing:
// otherwise the first PUT already gave the server's own verdict.
func (c *Client) quotaPrecheck(ctx context.Context, container, object string, size, missingBytes int64, free func(context.Context) (int64, error)) error {
	avail, err := free(ctx)
	if err != nil {
		return fmt.Errorf("quota pre-check: %w", err)
	}
	prev, err := c.currentSize(ctx, container, object)
	if err != nil {
		return fmt.Errorf("quota pre-check: %w", err)
	}
	needed := size - prev
	if needed <= 0 || needed <= avail {
		return nil
	}
	return &QuotaError{Object: object, Needed: needed, Free: max(avail, 0), MissingBytes: missingBytes}
}

// currentSize is the size of the object's current version, 0 if none.
func (c *Client) currentSize(ctx context.Context, container, object string) (int64, error) {
	resp, err := c.rest.DoDiscard(ctx, &rest.Request{
		Method: http.MethodHead, Path: c.objectPath(container, object),
		Success: []int{http.StatusOK, http.StatusNoContent},
	})
	if rest.IsStatus(err, http.StatusNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
	if err != nil {
		return 0, nil
	}
	return n, nil
}

// blockIndex finds the first block of the file with a given hash, to turn
// the server's list of missing hashes into offsets. It is a sorted index
// (8 bytes a block) rather than a map, which for millions of small blocks
// would cost ten times as much.
type blockIndex struct {
	sums  []Digest
	order []int64
}

func newBlockIndex(sums []Digest) *blockIndex {
	order := make([]int64, len(sums))
	for i := range order {
		order[i] = int64(i)
	}
	slices.SortStableFunc(order, func(a, b int64) int { return compareDigests(&sums[a], &sums[b]) })
	return &blockIndex{sums: sums, order: order}
}

func compareDigests(a, b *Digest) int {
	for i := range a {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

// first returns the lowest index of a block with hash d.
func (x *blockIndex) first(d Digest) (int64, bool) {
	i, found := slices.BinarySearchFunc(x.order, d, func(idx int64, d Digest) int { return compareDigests(&x.sums[idx], &d) })
	if !found {
		return 0, false
	}
	return x.order[i], true
}

// resolve maps missing hashes to the blocks to send, once per hash, and
// sums their bytes.
func (x *blockIndex) resolve(missing []Digest, size, bs int64) ([]blockRef, int64, error) {
	refs := make([]blockRef, 0, len(missing))
	seen := make(map[Digest]struct{}, len(missing))
	var total int64
	for _, d := range missing {
		if _, dup := seen[d]; dup {
			continue
		}
		seen[d] = struct{}{}
		i, ok := x.first(d)
		if !ok {
			return nil, 0, fmt.Errorf("the server asked for block %s, which is not in the hashmap", d)
		}
		refs = append(refs, blockRef{index: i, sum: d})
		total += min(bs, size-i*bs)
	}
	return refs, total, nil
}

// progressReporter rate-limits Progress calls. Workers bump atomic counters
// and call tick; whoever finds the interval elapsed (and the lock free)
// reports, so there is no reporting goroutine to stop.
type progressReporter struct {
	fn    func(Progress)
	every time.Duration

	bytesHashed atomic.Int64
	blocksSent  atomic.Int64
	bytesSent   atomic.Int64

	mu   sync.Mutex
	last time.Time
	cur  Progress // Phase, totals and flags; counters come from the atomics
}

func newProgressReporter(fn func(Progress), every time.Duration, p Progress) *progressReporter {
	return &progressReporter{fn: fn, every: every, cur: p}
}

func (r *progressReporter) snapshotLocked() Progress {
	p := r.cur
	if h := r.bytesHashed.Load(); h > p.BytesHashed {
		p.BytesHashed = h
	}
	p.BlocksSent = r.blocksSent.Load()
	p.BytesSent = r.bytesSent.Load()
	return p
}

func (r *progressReporter) hashed(n int64) {
	r.bytesHashed.Add(n)
	r.tick()
}

func (r *progressReporter) sent(n int64) {
	r.blocksSent.Add(1)
	r.bytesSent.Add(n)
	r.tick()
}

func (r *progressReporter) tick() {
	if r.fn == nil || !r.mu.TryLock() {
		return
	}
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.last) >= r.every {
		r.last = now
		r.fn(r.snapshotLocked())
	}
}

// update changes the phase or totals and reports if the interval elapsed.
func (r *progressReporter) update(f func(*Progress)) {
	r.mu.Lock()
	f(&r.cur)
	r.mu.Unlock()
	r.tick()
}

// finish reports the final state, whatever the interval.
func (r *progressReporter) finish() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cur.Phase = PhaseDone
	if r.fn != nil {
		r.last = time.Now()
		r.fn(r.snapshotLocked())
	}
}

// sizedFile adapts an io.ReaderAt of known size to File.
type sizedFile struct {
	io.ReaderAt
	size int64
}

// NewSizedFile makes any io.ReaderAt of the given size uploadable. It has no
// file identity, so a HashmapCache never caches it.
func NewSizedFile(r io.ReaderAt, size int64) File { return sizedFile{r, size} }

func (s sizedFile) Stat() (fs.FileInfo, error) { return sizedInfo(s.size), nil }

type sizedInfo int64

func (s sizedInfo) Name() string       { return "" }
func (s sizedInfo) Size() int64        { return int64(s) }
func (s sizedInfo) Mode() fs.FileMode  { return 0 }
func (s sizedInfo) ModTime() time.Time { return time.Time{} }
func (s sizedInfo) IsDir() bool        { return false }
func (s sizedInfo) Sys() any           { return nil }
