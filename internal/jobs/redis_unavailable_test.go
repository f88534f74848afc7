package jobs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/redistest"
)

// An enqueue that fails because Redis is away says so, and the job that
// made it is retried within seconds rather than after the usual backoff.
func TestRedisUnavailableRetriesSoon(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(redistest.FreePort(t)), MaxRetries: -1})
	defer rdb.Close()
	enq := NewEnqueuer(rdb, "n")
	_, err := enq.Enqueue(context.Background(), Request{Type: TypeUpload, ID: "upload:x", Queue: QueueDefault, Payload: map[string]int{"v": 1}})
	require.Error(t, err)
	require.ErrorIs(t, err, ErrRedisUnavailable)

	jobErr := fmt.Errorf("queue the registration of a.diskdump: %w", err)
	for n := range 10 {
		d := RetryDelay(n, jobErr, nil)
		assert.GreaterOrEqual(t, d, time.Second)
		assert.Less(t, d, 3*time.Second)
	}
	assert.GreaterOrEqual(t, RetryDelay(0, errors.New("503 from the cloud"), nil), 5*time.Second, "other failures keep their backoff")

	lock := &imageLock{rdb: rdb, ttl: time.Minute, poll: time.Millisecond}
	_, err = lock.acquire(context.Background(), "/images/a.diskdump")
	require.ErrorIs(t, err, ErrRedisUnavailable)

	assert.NotErrorIs(t, redisUnavailable(errors.New("ERR wrong number of arguments")), ErrRedisUnavailable)
}
