package pithos

import (
	"context"
	"fmt"
	"sync"
)

// probeDigest is a block hash no block has: nobody knows a preimage of it,
// so no server can hold a block under it and a hashmap that lists it is
// never accepted. A hashmap PUT of some hashes plus this one therefore
// answers 409 with the ones the server lacks and creates nothing: the
// server checks the size against the number of hashes, then looks the
// blocks up, and only then looks at permissions, the container, quota and
// the object (snf-pithos-backend update_object_hashmap; see
// reference/synnefo-server-notes.md §1.1 step 8). The server lists it among
// the missing, and it is dropped from the answer.
var probeDigest = func() Digest {
	var d Digest
	for i := range d {
		d[i] = 0xff
	}
	return d
}()

// minProbeBatch is the fewest newly hashed blocks worth a probe while the
// file is still being hashed: enough to keep the block senders busy
// without a request per block.
const minProbeBatch = 8

// overlappedUpload hashes a file and, while the rest of it is still being
// hashed, asks the server which of the blocks hashed so far it lacks and
// sends those, so that hashing and sending share the machine instead of
// taking turns. Three stages run at once:
//
//   - the hasher fills sums, in parallel, and marks each block done;
//   - the prober waits for a contiguous run of at least batch new hashes,
//     PUTs them with probeDigest (409: the missing ones, nothing created),
//     and queues the missing blocks, each distinct hash once;
//   - the block senders send what is queued.
//
// A file hashed completely before a probe was worth sending is left to the
// full hashmap PUT that follows, as before: small files cost no extra
// request. The first block found missing waits for the quota pre-check, so
// nothing is sent for an upload that cannot fit.
type overlappedUpload struct {
	c         *Client
	container string
	object    string
	size, bs  int64
	hasher    *fileHasher
	sender    *blockSender
	batch     int64
	// preconditions are sent on probes (If-Match, If-None-Match), so that a
	// refused upload fails before any block is sent. Metadata, sharing and
	// publication go on the final PUT only.
	preconditions *PutHashmapOptions
	// precheck, if set, runs before the first block is sent, with the bytes
	// known to be missing at that point.
	precheck func(ctx context.Context, missingBytes int64) error
	// found, if set, is told the count of distinct missing blocks so far.
	found func(n int64)
	// hashedAll, if set, is called when the last block is hashed while
	// blocks are being sent.
	hashedAll func()

	// Results, once run returned nil.
	sums         []Digest
	probes       int
	missing      int64
	missingBytes int64
	prechecked   bool

	mu       sync.Mutex
	hashed   []bool
	frontier int64 // every block below it is hashed
	finished bool  // the hasher is done
	sending  bool  // the prober has queued blocks
	wake     chan struct{}
}

// run hashes the whole file into o.sums and sends every block the probes
// found missing; it returns when all three stages have finished.
func (o *overlappedUpload) run(ctx context.Context) error {
	n := int64(len(o.sums))
	o.hashed = make([]bool, n)
	o.wake = make(chan struct{}, 1)
	o.hasher.done = o.markHashed
	refs := make(chan blockRef, max(o.sender.concurrency, 1))
	return runAll(ctx,
		func(ctx context.Context) error {
			if err := o.hasher.hashInto(ctx, o.sums); err != nil {
				return err
			}
			o.mu.Lock()
			o.finished = true
			sending := o.sending
			o.mu.Unlock()
			o.signal()
			if sending && o.hashedAll != nil {
				o.hashedAll()
			}
			return nil
		},
		func(ctx context.Context) error {
			defer close(refs)
			return o.probe(ctx, refs)
		},
		func(ctx context.Context) error {
			return o.sender.sendFrom(ctx, refs, o.sender.concurrency)
		},
	)
}

func (o *overlappedUpload) markHashed(i int64) {
	o.mu.Lock()
	o.hashed[i] = true
	for o.frontier < int64(len(o.hashed)) && o.hashed[o.frontier] {
		o.frontier++
	}
	o.mu.Unlock()
	o.signal()
}

func (o *overlappedUpload) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// ready waits until at least batch blocks from next on are hashed, or all
// are, and returns the end of the hashed run.
func (o *overlappedUpload) ready(ctx context.Context, next int64) (frontier int64, finished bool, err error) {
	for {
		o.mu.Lock()
		frontier, finished = o.frontier, o.finished
		o.mu.Unlock()
		if finished || frontier-next >= o.batch {
			return frontier, finished, nil
		}
		select {
		case <-o.wake:
		case <-ctx.Done():
			return 0, false, ctx.Err()
		}
	}
}

// probe is the prober stage.
func (o *overlappedUpload) probe(ctx context.Context, refs chan<- blockRef) error {
	queued := map[Digest]struct{}{}
	var next int64
	for {
		frontier, finished, err := o.ready(ctx, next)
		if err != nil {
			return err
		}
		if finished && o.probes == 0 {
			return nil // the full PUT asks for all of it at once
		}
		if frontier > next {
			if err := o.probeRange(ctx, next, frontier, queued, refs); err != nil {
				return err
			}
			next = frontier
		}
		if finished {
			return nil
		}
	}
}

// probeRange asks about blocks [from, to) that are not already queued and
// queues those the server lacks.
func (o *overlappedUpload) probeRange(ctx context.Context, from, to int64, queued map[Digest]struct{}, refs chan<- blockRef) error {
	first := make(map[Digest]int64, to-from)
	hashes := make([]Digest, 0, to-from+1)
	for i := from; i < to; i++ {
		d := o.sums[i]
		if _, ok := queued[d]; ok {
			continue
		}
		if _, ok := first[d]; ok {
			continue
		}
		first[d] = i
		hashes = append(hashes, d)
	}
	if len(hashes) == 0 {
		return nil
	}
	// The size must match the number of hashes (ceil(size/bs) of them) or
	// the server answers 400 before it looks at any block.
	size := int64(len(hashes))*o.bs + 1
	hashes = append(hashes, probeDigest)
	o.probes++
	ph, err := o.c.PutHashmap(ctx, o.container, o.object, size, hashes, o.preconditions)
	if err != nil {
		return fmt.Errorf("asking the server which blocks it lacks: %w", err)
	}
	if ph.Created {
		return fmt.Errorf("the server accepted a hashmap listing block %s, which no block can have: it does not check hashmaps against its blocks", probeDigest)
	}
	var batch []blockRef
	var batchBytes int64
	for _, d := range ph.Missing {
		if d == probeDigest {
			continue
		}
		i, ok := first[d]
		if !ok {
			return fmt.Errorf("the server asked for block %s, which was not in the hashmap sent", d)
		}
		delete(first, d)
		queued[d] = struct{}{}
		batch = append(batch, blockRef{index: i, sum: d})
		batchBytes += min(o.bs, o.size-i*o.bs)
	}
	if len(batch) == 0 {
		return nil
	}
	o.missing += int64(len(batch))
	o.missingBytes += batchBytes
	if o.found != nil {
		o.found(o.missing)
	}
	if !o.prechecked && o.precheck != nil {
		if err := o.precheck(ctx, o.missingBytes); err != nil {
			return err
		}
	}
	o.prechecked = true
	o.mu.Lock()
	o.sending = true
	o.mu.Unlock()
	for _, r := range batch {
		select {
		case refs <- r:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
