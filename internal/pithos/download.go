package pithos

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"sync/atomic"
	"time"

	"github.com/imagesync/imagesync/internal/hashmap"
)

// PhaseDownloading is Download's transfer phase (it also reports
// PhaseHashing while it checks the blocks already on disk, and PhaseDone).
const PhaseDownloading = "downloading"

// DownloadOptions tune Download.
type DownloadOptions struct {
	// Version to download (default: the current one). The blocks are always
	// fetched from the version whose hashmap was read, so an object replaced
	// meanwhile cannot mix two versions.
	Version string
	// BlockConcurrency is how many ranged GETs are in flight (default 8).
	BlockConcurrency int
	// HashWorkers hash the existing local blocks when resuming (default
	// GOMAXPROCS).
	HashWorkers int
	// NoResume fetches every block even if the destination already holds it.
	NoResume bool
	// Progress is as in UploadOptions; for a download BytesHashed counts the
	// local bytes checked for resume, BlocksMissing the distinct blocks to
	// fetch, BlocksSent and BytesSent the blocks and bytes fetched.
	Progress         func(Progress)
	ProgressInterval time.Duration
}

func (o DownloadOptions) withDefaults() DownloadOptions {
	if o.BlockConcurrency <= 0 {
		o.BlockConcurrency = defaultBlockConcurrency
	}
	if o.HashWorkers <= 0 {
		o.HashWorkers = defaultHashWorkers()
	}
	if o.ProgressInterval <= 0 {
		o.ProgressInterval = defaultProgressInterval
	}
	return o
}

// DownloadResult describes a finished download.
type DownloadResult struct {
	// Hash is the object's Merkle hash, checked against its hashmap.
	Hash      string
	Bytes     int64
	BlockSize int64
	Version   string
	// BlocksTotal blocks of the object; BlocksReused were already in place;
	// BlocksFetched distinct blocks were downloaded (BytesFetched bytes);
	// the rest were all-NUL blocks written without a request.
	BlocksTotal   int64
	BlocksReused  int64
	BlocksFetched int64
	BytesFetched  int64
	Duration      time.Duration
}

// Download writes container/object into dst the way kamaki does: it reads the
// object's hashmap, skips the blocks dst already holds (when dst can be read
// back: an *os.File can), fetches each remaining distinct block once with a
// ranged GET, checks its hash, writes it at every offset where it occurs,
// and truncates dst to the object's size (when dst can be truncated).
//
// dst is usually an *os.File; any io.WriterAt works, optionally with
// ReadAt, Stat and Truncate.
func (c *Client) Download(ctx context.Context, container, object string, dst io.WriterAt, opts DownloadOptions) (*DownloadResult, error) {
	res, err := c.download(ctx, container, object, dst, opts)
	if err != nil {
		return nil, fmt.Errorf("pithos: download %s/%s: %w", container, object, err)
	}
	return res, nil
}

func (c *Client) download(ctx context.Context, container, object string, dst io.WriterAt, opts DownloadOptions) (*DownloadResult, error) {
	start := time.Now()
	opts = opts.withDefaults()
	hm, sums, root, err := c.checkedHashmap(ctx, container, object, opts.Version)
	if err != nil {
		return nil, err
	}
	size, bs := hm.Bytes, hm.BlockSize
	n := int64(len(sums))
	res := &DownloadResult{Bytes: size, BlockSize: bs, Version: hm.Version, BlocksTotal: n, Hash: root}
	pr := newProgressReporter(opts.Progress, opts.ProgressInterval, Progress{Phase: PhaseHashing, TotalBytes: size, BlocksTotal: n})
	pool := newBufferPool(max(opts.HashWorkers, opts.BlockConcurrency), int(min(bs, max(size, 1))))

	// What is already in place.
	localSize := int64(-1)
	if st, ok := dst.(interface{ Stat() (fs.FileInfo, error) }); ok {
		fi, err := st.Stat()
		if err != nil {
			return nil, fmt.Errorf("stat destination: %w", err)
		}
		localSize = fi.Size()
	}
	have := make([]bool, n)
	if ra, ok := dst.(io.ReaderAt); ok && !opts.NoResume && localSize > 0 && n > 0 {
		if have, _, err = localBlocks(ctx, ra, localSize, size, bs, sums, opts.HashWorkers, pool, pr); err != nil {
			return nil, fmt.Errorf("checking the existing destination: %w", err)
		}
		for _, h := range have {
			if h {
				res.BlocksReused++
			}
		}
	}

	// One fetch per distinct missing hash, written wherever it occurs.
	// All-NUL blocks need no request: they are zeros, and past the old end
	// of a truncatable destination they need no write either.
	_, canTruncate := dst.(interface{ Truncate(int64) error })
	empty := emptyDigest()
	groups := map[Digest][]int64{}
	var order []Digest
	var zeroWrites []int64
	for i := range n {
		if have[i] {
			continue
		}
		d := sums[i]
		if d == empty {
			if !canTruncate || localSize < 0 || i*bs < localSize {
				zeroWrites = append(zeroWrites, i)
			}
			continue
		}
		if _, ok := groups[d]; !ok {
			order = append(order, d)
		}
		groups[d] = append(groups[d], i)
	}
	pr.update(func(p *Progress) { p.Phase, p.BlocksMissing = PhaseDownloading, int64(len(order)) })

	blockLen := func(i int64) int64 { return min(bs, size-i*bs) }
	if len(zeroWrites) > 0 {
		zeros := make([]byte, bs)
		for _, i := range zeroWrites {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if _, err := dst.WriteAt(zeros[:blockLen(i)], i*bs); err != nil {
				return nil, &BlockError{Index: i, Offset: i * bs, Hash: hashmap.EmptyHash, Op: "write", Err: err}
			}
		}
	}

	rangeOpts := &RangeOptions{Version: hm.Version}
	if rangeOpts.Version == "" {
		rangeOpts.IfMatch = hm.ETag
	}
	var next atomic.Int64
	workers := min(opts.BlockConcurrency, max(len(order), 1), pool.limit())
	err = runWorkers(ctx, workers, func(ctx context.Context) error {
		buf, err := pool.get(ctx)
		if err != nil {
			return err
		}
		defer pool.put(buf)
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			k := next.Add(1) - 1
			if k >= int64(len(order)) {
				return nil
			}
			d := order[k]
			idx := groups[d]
			first := idx[0]
			fl := blockLen(first)
			block := buf[:fl]
			if err := c.GetBlockRange(ctx, container, object, first*bs, block, rangeOpts); err != nil {
				if ctxErr := ctx.Err(); ctxErr != nil {
					return ctxErr
				}
				return &BlockError{Index: first, Offset: first * bs, Hash: d.String(), Op: "download", Err: err}
			}
			if got := Digest(hashmap.BlockSum(block)); got != d {
				return &BlockError{Index: first, Offset: first * bs, Hash: d.String(), Op: "download",
					Err: fmt.Errorf("received bytes hash to %s", got)}
			}
			for _, i := range idx {
				l := blockLen(i)
				if l > fl {
					// Same hash, longer block: the rest is NULs (the hash
					// covers the block without its trailing NULs).
					clear(buf[fl:l])
				}
				if _, err := dst.WriteAt(buf[:l], i*bs); err != nil {
					return &BlockError{Index: i, Offset: i * bs, Hash: d.String(), Op: "write", Err: err}
				}
			}
			pr.sent(fl)
		}
	})
	if err != nil {
		return nil, err
	}
	if t, ok := dst.(interface{ Truncate(int64) error }); ok {
		if err := t.Truncate(size); err != nil {
			return nil, fmt.Errorf("truncating the destination to %d bytes: %w", size, err)
		}
	}
	res.BlocksFetched = pr.blocksSent.Load()
	res.BytesFetched = pr.bytesSent.Load()
	res.Duration = time.Since(start)
	pr.finish()
	return res, nil
}

// checkedHashmap reads an object's hashmap (of version, "" for the current
// one), checks it, and checks that its Merkle root is the object's hash.
func (c *Client) checkedHashmap(ctx context.Context, container, object, version string) (*Hashmap, []Digest, string, error) {
	hm, err := c.GetHashmap(ctx, container, object, &GetHashmapOptions{Version: version})
	if err != nil {
		return nil, nil, "", err
	}
	sums, err := checkRemoteHashmap(hm)
	if err != nil {
		return nil, nil, "", err
	}
	root := Digest(hashmap.MerkleRootRaw(digestSlices(sums))).String()
	if hm.ObjectHash != "" && hm.ObjectHash != root {
		return nil, nil, "", &HashMismatchError{Object: container + "/" + object, Local: root, Remote: hm.ObjectHash}
	}
	return hm, sums, root, nil
}

// localBlocks hashes the whole blocks of a local file of localSize bytes
// (as an object of size bytes in blocks of bs cuts them), reports which
// ones equal the object's block at the same index, and returns the hashes.
func localBlocks(ctx context.Context, ra io.ReaderAt, localSize, size, bs int64, sums []Digest, workers int, pool *bufferPool, pr *progressReporter) ([]bool, []Digest, error) {
	have := make([]bool, len(sums))
	// Only whole blocks, as the object cuts them, can match.
	covered := min(localSize, size)
	if covered < size {
		covered -= covered % bs
	}
	h := &fileHasher{r: ra, size: covered, blockSize: bs, workers: workers, pool: pool, hashed: pr.hashed}
	local, err := h.hash(ctx)
	if err != nil {
		return nil, nil, err
	}
	for i, d := range local {
		if i < len(sums) && d == sums[i] {
			have[i] = true
		}
	}
	return have, local, nil
}

// VerifyResult compares a local file with an object.
type VerifyResult struct {
	// Hash is the object's Merkle hash (checked against its hashmap);
	// LocalHash the local file's, in the object's block size ("" when the
	// sizes differ, since a different size is already a difference).
	Hash       string
	LocalHash  string
	Bytes      int64
	LocalBytes int64
	BlockSize  int64
	Version    string
	// BlocksTotal blocks of the object; Differing the indexes of those the
	// local file does not hold, at their offset, with their content.
	BlocksTotal int64
	Differing   []int64
}

// Match reports whether the local file is the object, byte for byte.
func (r *VerifyResult) Match() bool {
	return r.LocalBytes == r.Bytes && len(r.Differing) == 0 && r.LocalHash == r.Hash
}

// Verify compares local (localSize bytes) with container/object block by
// block, the way Download decides what to resume: it reads the object's
// hashmap, checks its Merkle root against the object's hash, hashes the
// local file in the object's block size and lists the blocks that differ.
// It sends no data either way. opts.Version, HashWorkers and Progress
// apply.
func (c *Client) Verify(ctx context.Context, container, object string, local io.ReaderAt, localSize int64, opts DownloadOptions) (*VerifyResult, error) {
	res, err := c.verify(ctx, container, object, local, localSize, opts)
	if err != nil {
		return nil, fmt.Errorf("pithos: verify %s/%s: %w", container, object, err)
	}
	return res, nil
}

func (c *Client) verify(ctx context.Context, container, object string, local io.ReaderAt, localSize int64, opts DownloadOptions) (*VerifyResult, error) {
	opts = opts.withDefaults()
	hm, sums, root, err := c.checkedHashmap(ctx, container, object, opts.Version)
	if err != nil {
		return nil, err
	}
	size, bs := hm.Bytes, hm.BlockSize
	n := int64(len(sums))
	res := &VerifyResult{Hash: root, Bytes: size, LocalBytes: localSize, BlockSize: bs, Version: hm.Version, BlocksTotal: n, Differing: []int64{}}
	pr := newProgressReporter(opts.Progress, opts.ProgressInterval, Progress{Phase: PhaseHashing, TotalBytes: min(localSize, size), BlocksTotal: n})
	pool := newBufferPool(opts.HashWorkers, int(min(bs, max(size, 1))))
	have := make([]bool, n)
	var localSums []Digest
	if localSize > 0 && n > 0 {
		if have, localSums, err = localBlocks(ctx, local, localSize, size, bs, sums, opts.HashWorkers, pool, pr); err != nil {
			return nil, fmt.Errorf("hashing the local file: %w", err)
		}
	}
	for i, h := range have {
		if !h {
			res.Differing = append(res.Differing, int64(i))
		}
	}
	if localSize == size && n > 0 {
		res.LocalHash = Digest(hashmap.MerkleRootRaw(digestSlices(localSums))).String()
	} else if localSize == 0 && size == 0 {
		res.LocalHash = root
	}
	pr.finish()
	return res, nil
}

// checkRemoteHashmap validates a hashmap and returns its digests (none for an
// empty object, whose stored map is [sha256("")]).
func checkRemoteHashmap(hm *Hashmap) ([]Digest, error) {
	if err := hashmap.CheckAlgorithm(hm.BlockHash); err != nil {
		return nil, err
	}
	if hm.BlockSize <= 0 || hm.Bytes < 0 {
		return nil, fmt.Errorf("invalid hashmap: block size %d, %d bytes", hm.BlockSize, hm.Bytes)
	}
	want := hashmap.NumBlocks(hm.Bytes, hm.BlockSize)
	if hm.Bytes == 0 {
		return nil, nil
	}
	if int64(len(hm.Hashes)) != want {
		return nil, fmt.Errorf("invalid hashmap: %d hashes for %d bytes in blocks of %d", len(hm.Hashes), hm.Bytes, hm.BlockSize)
	}
	sums := make([]Digest, len(hm.Hashes))
	for i, h := range hm.Hashes {
		d, err := ParseDigest(h)
		if err != nil {
			return nil, fmt.Errorf("invalid hashmap: block %d: %w", i, err)
		}
		sums[i] = d
	}
	return sums, nil
}

func emptyDigest() Digest {
	d, _ := ParseDigest(hashmap.EmptyHash)
	return d
}
