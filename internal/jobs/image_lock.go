package jobs

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// imageLock serialises the jobs that write one image's registration and
// permissions (register, publish) across workers and daemons. Without it a
// metafile edit's registration and the upload's own could both find the
// image unregistered and both POST it; each POST resets the permissions
// the other's publish set. Held for seconds, so waiting beats retrying.
//
// The lock is a lease: its holder renews it every ttl/3 while it works, so a
// long registration keeps it, and the lock of a holder that died (a node
// SIGKILLed mid-job) frees the image after ttl, not after the longest job.
type imageLock struct {
	rdb  redis.UniversalClient
	ttl  time.Duration // a dead holder's lock expires after this
	poll time.Duration
}

const imageLockPrefix = "imagesync:lock:image:"

// releaseScript deletes the lock only if this holder still owns it.
var releaseScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

// renewScript extends the lock only if this holder still owns it.
var renewScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end return 0`)

// acquire waits until it holds the lock of the image at location, or ctx
// ends. A nil imageLock locks nothing.
func (l *imageLock) acquire(ctx context.Context, location string) (release func(), err error) {
	if l == nil || l.rdb == nil {
		return func() {}, nil
	}
	key := imageLockPrefix + location
	owner := rand.Text()
	for {
		ok, err := l.rdb.SetNX(ctx, key, owner, l.ttl).Result()
		if err != nil {
			return nil, fmt.Errorf("locking image %s: %w", location, redisUnavailable(err))
		}
		if ok {
			return l.hold(context.WithoutCancel(ctx), key, owner), nil
		}
		t := time.NewTimer(l.poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// hold renews the lock until the returned release is called (once or more).
func (l *imageLock) hold(ctx context.Context, key, owner string) (release func()) {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(l.ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				_ = renewScript.Run(ctx, l.rdb, []string{key}, owner, l.ttl.Milliseconds()).Err()
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(stop)
			<-done
			_ = releaseScript.Run(ctx, l.rdb, []string{key}, owner).Err()
		})
	}
}
