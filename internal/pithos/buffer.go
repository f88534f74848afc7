package pithos

import (
	"context"
)

// bufferPool hands out block-sized buffers, at most max at a time. It is what
// keeps an upload's memory independent of the file's size: hashing workers and
// block senders each hold one buffer while they work and block in get when
// all are taken. Buffers are allocated lazily and reused, so a phase that
// needs fewer workers than max never allocates the rest.
type bufferPool struct {
	size int
	// slots holds one entry per buffer that may exist; a nil entry is a slot
	// whose buffer has not been allocated yet.
	slots chan []byte
}

func newBufferPool(max, size int) *bufferPool {
	if max < 1 {
		max = 1
	}
	p := &bufferPool{size: size, slots: make(chan []byte, max)}
	for range max {
		p.slots <- nil
	}
	return p
}

// get waits for a free buffer of len size, or for ctx to end.
func (p *bufferPool) get(ctx context.Context) ([]byte, error) {
	// Prefer a cancelled context over a free slot so that workers stop
	// promptly instead of starting one more read.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case b := <-p.slots:
		if cap(b) < p.size {
			b = make([]byte, p.size)
		}
		return b[:p.size], nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// put returns a buffer obtained from get. It never blocks: there is always a
// free slot for a buffer that was taken from the pool.
func (p *bufferPool) put(b []byte) {
	select {
	case p.slots <- b:
	default:
		panic("pithos: bufferPool.put without a matching get")
	}
}

// limit reports the most buffers that can be out at once.
func (p *bufferPool) limit() int { return cap(p.slots) }
