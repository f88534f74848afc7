package jobs

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/pithos"
	"github.com/imagesync/imagesync/internal/sandbox"
)

func TestImageLockSerialisesHolders(t *testing.T) {
	mr := miniredis.NewMiniRedis()
	mr.ClockTTL(true)
	require.NoError(t, mr.Start())
	t.Cleanup(mr.Close)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	l := &imageLock{rdb: rdb, ttl: time.Minute, poll: 5 * time.Millisecond}
	ctx := context.Background()

	var inside, maxInside atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			release, err := l.acquire(ctx, "/images/a.diskdump")
			require.NoError(t, err)
			n := inside.Add(1)
			for m := maxInside.Load(); n > m && !maxInside.CompareAndSwap(m, n); m = maxInside.Load() {
			}
			time.Sleep(5 * time.Millisecond)
			inside.Add(-1)
			release()
		})
	}
	wg.Wait()
	require.Equal(t, int32(1), maxInside.Load(), "one holder at a time")

	// Another image is not blocked; a cancelled wait gives up.
	release, err := l.acquire(ctx, "/images/a.diskdump")
	require.NoError(t, err)
	other, err := l.acquire(ctx, "/images/b.diskdump")
	require.NoError(t, err)
	other()
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = l.acquire(cctx, "/images/a.diskdump")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	release()

	// A live holder keeps the lock past the TTL (it renews it); one that
	// died (its lock left in Redis, nobody renewing) frees the image after
	// the TTL, and a late release of the dead one's does not free the next
	// holder's lock.
	short := &imageLock{rdb: rdb, ttl: 150 * time.Millisecond, poll: 5 * time.Millisecond}
	live, err := short.acquire(ctx, "/images/c.diskdump")
	require.NoError(t, err)
	wctx, wcancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err = short.acquire(wctx, "/images/c.diskdump")
	wcancel()
	require.ErrorIs(t, err, context.DeadlineExceeded, "a live holder keeps its lock past the TTL")
	live()
	require.NoError(t, rdb.Set(ctx, imageLockPrefix+"/images/d.diskdump", "dead-holder", short.ttl).Err())
	start := time.Now()
	next, err := short.acquire(ctx, "/images/d.diskdump")
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)
	_ = releaseScript.Run(ctx, rdb, []string{imageLockPrefix + "/images/d.diskdump"}, "dead-holder").Err()
	_, err = l.acquire(cctx, "/images/d.diskdump")
	require.Error(t, err, "still held by the live holder")
	next()
}

// The registration a metafile edit queues and the upload's own can run at
// once; they used to both find the image unregistered and both POST it.
func TestConcurrentRegistrationsOfOneImagePostOnce(t *testing.T) {
	p := newPipeline(t, sandbox.Config{}, "", config.Watch{})
	const n = 6
	var reqs []Request
	for i := range n {
		rel := fmt.Sprintf("img%d.diskdump", i)
		f := p.write(rel, []byte("image "+rel))
		file, err := os.Open(f.AbsPath)
		require.NoError(t, err)
		_, err = p.state.Pithos.Upload(p.ctx, "images", rel, file, pithos.UploadOptions{})
		file.Close()
		require.NoError(t, err)
		viaMeta, err := p.catalog.RegisterRequest(f, "", "", "metafile", false)
		require.NoError(t, err)
		viaUpload, err := p.catalog.RegisterRequest(f, hashOf(p, rel), "", "upload", false)
		require.NoError(t, err)
		require.NotEqual(t, viaMeta.ID, viaUpload.ID)
		reqs = append(reqs, viaMeta, viaUpload)
	}
	for _, r := range reqs {
		p.enqueue(r, nil)
	}
	for _, r := range reqs {
		p.wait(r.Queue, r.ID, asynq.TaskStateCompleted)
	}
	require.Equal(t, int64(n), p.cloud.Stats().ImageRegisters, "one POST /images/ per image")
}
