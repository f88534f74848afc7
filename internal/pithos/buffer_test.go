package pithos

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBufferPoolBoundsAndReuses(t *testing.T) {
	p := newBufferPool(2, 16)
	ctx := context.Background()
	a, err := p.get(ctx)
	require.NoError(t, err)
	b, err := p.get(ctx)
	require.NoError(t, err)
	assert.Len(t, a, 16)
	assert.Len(t, b, 16)

	// A third get waits until one is returned.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, err = p.get(short)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	a[0] = 42
	p.put(a)
	c, err := p.get(ctx)
	require.NoError(t, err)
	assert.Equal(t, byte(42), c[0], "a returned buffer is reused, not reallocated")
	p.put(b)
	p.put(c)
}

func TestBufferPoolCancelledContextWins(t *testing.T) {
	p := newBufferPool(1, 8)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := p.get(ctx)
	require.ErrorIs(t, err, context.Canceled)
}

func TestBufferPoolConcurrentUseNeverExceedsLimit(t *testing.T) {
	const limit = 3
	p := newBufferPool(limit, 8)
	var out, peak atomic.Int64
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				b, err := p.get(context.Background())
				if !assert.NoError(t, err) {
					return
				}
				n := out.Add(1)
				for {
					old := peak.Load()
					if n <= old || peak.CompareAndSwap(old, n) {
						break
					}
				}
				out.Add(-1)
				p.put(b)
			}
		}()
	}
	wg.Wait()
	assert.LessOrEqual(t, peak.Load(), int64(limit))
}

func TestBufferPoolPutWithoutGetPanics(t *testing.T) {
	p := newBufferPool(1, 8)
	assert.Panics(t, func() { p.put(make([]byte, 8)) })
}
