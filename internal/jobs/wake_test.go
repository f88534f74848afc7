package jobs

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/redistest"
)

func TestDequeueQueue(t *testing.T) {
	for _, tc := range []struct {
		name  string
		keys  []string
		queue string
		ok    bool
	}{
		{"asynq dequeue", []string{"asynq:{default}:pending", "asynq:{default}:paused", "asynq:{default}:active", "asynq:{default}:lease"}, "default", true},
		{"queue name with a colon", []string{"asynq:{upload:n1}:pending", "asynq:{upload:n1}:paused", "asynq:{upload:n1}:active", "asynq:{upload:n1}:lease"}, "upload:n1", true},
		{"keys of two queues", []string{"asynq:{a}:pending", "asynq:{b}:paused", "asynq:{a}:active", "asynq:{a}:lease"}, "", false},
		{"another script", []string{"asynq:{a}:active", "asynq:{a}:lease", "asynq:{a}:t:x", "asynq:{a}:processed"}, "", false},
		{"three keys", []string{"asynq:{a}:pending", "asynq:{a}:paused", "asynq:{a}:active"}, "", false},
		{"no keys", nil, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, ok := dequeueQueue(tc.keys)
			require.Equal(t, tc.ok, ok)
			require.Equal(t, tc.queue, q)
		})
	}
}

// TestQueueWakerDecisions walks the waker's rules with a fake clock.
func TestQueueWakerDecisions(t *testing.T) {
	now := time.Unix(1000, 0)
	w := NewQueueWaker(time.Second)
	w.now = func() time.Time { return now }
	ask := func(q string) bool {
		_, a := w.begin(q)
		return a
	}
	poll := func(q string, err error) {
		gen, a := w.begin(q)
		require.True(t, a, "poll of %s must go to Redis", q)
		w.end(q, gen, now, err)
	}

	require.True(t, ask("a"), "a queue never polled is asked")
	poll("a", redis.Nil)
	require.False(t, ask("a"), "an empty queue is not asked again at once")
	now = now.Add(999 * time.Millisecond)
	require.False(t, ask("a"))
	now = now.Add(time.Millisecond)
	require.True(t, ask("a"), "the idle poll asks again after the idle interval")
	poll("a", redis.Nil)

	w.Wake()
	require.True(t, ask("a"), "a wake makes the next poll ask")
	poll("a", nil) // found a task
	require.True(t, ask("a"), "after a task is found, the queue may hold more")
	poll("a", redis.Nil)
	require.False(t, ask("a"))
	poll("b", redis.Nil)

	// A wake while a poll is in flight: the answer predates the enqueue.
	_, a := w.begin("a")
	require.False(t, a)
	now = now.Add(2 * time.Second)
	gen, a := w.begin("a")
	require.True(t, a)
	w.Wake()
	w.end("a", gen, now, redis.Nil)
	require.True(t, ask("a"), "an empty answer sent before a wake does not hide the woken task")
	require.True(t, ask("b"), "a wake applies to every queue")

	poll("a", context.DeadlineExceeded)
	require.True(t, ask("a"), "after an error the queue is asked again")

	var nilWaker *QueueWaker
	nilWaker.Wake() // must not panic
}

// TestQueueWakerGatesAsynqDequeue runs a real asynq server through the
// waker's client with an idle poll of an hour: a task enqueued by an
// Enqueuer that wakes it starts promptly, and one enqueued behind the
// waker's back does not start until something wakes it. If asynq's dequeue
// call were not recognised, the second task would start within
// milliseconds and this test would fail.
func TestQueueWakerGatesAsynqDequeue(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	waker := NewQueueWaker(time.Hour)
	enq := NewEnqueuer(rdb, "n1")
	enq.Waker = waker

	var started atomic.Int32
	hops := make(chan time.Duration, 4)
	mux := asynq.NewServeMux()
	mux.HandleFunc("test:job", func(ctx context.Context, t *asynq.Task) error {
		if _, hop, ok := hopLatency(t.Headers(), 0, time.Now()); ok {
			hops <- hop
		}
		started.Add(1)
		return nil
	})
	srv := asynq.NewServerFromRedisClient(waker.Client(rdb), asynq.Config{
		Concurrency: 2, Queues: map[string]int{QueueDefault: 1}, TaskCheckInterval: WakePollInterval,
		LogLevel: asynq.FatalLevel, ShutdownTimeout: time.Second,
	})
	require.NoError(t, srv.Start(mux))
	t.Cleanup(srv.Shutdown)

	// Let the server find the queue empty once, so that it is gated.
	require.Eventually(t, func() bool { return waker.gatedEmpty(QueueDefault) }, 20*time.Second, time.Millisecond)

	// Enqueued as if by a job: woken, and timed.
	jobCtx := context.WithValue(context.Background(), jobTypeKey, TypeUpload)
	out, err := enq.Enqueue(jobCtx, Request{Type: "test:job", ID: "woken", Queue: QueueDefault, Payload: map[string]int{"n": 1}})
	require.NoError(t, err)
	require.Equal(t, Enqueued, out)
	require.Eventually(t, func() bool { return started.Load() == 1 }, 20*time.Second, 5*time.Millisecond)
	select {
	case hop := <-hops:
		require.Less(t, hop, 20*time.Second)
	case <-time.After(20 * time.Second):
		t.Fatal("the woken task carried no hop headers")
	}

	// Enqueued by another process (a plain client): nothing wakes the waker.
	// (Once the server has found the queue empty again since the wake: a
	// poll still owed to that wake would rightly take it.)
	require.Eventually(t, func() bool { return waker.gatedEmpty(QueueDefault) }, 20*time.Second, time.Millisecond)
	plain := asynq.NewClientFromRedisClient(rdb)
	_, err = plain.Enqueue(asynq.NewTask("test:job", nil), asynq.Queue(QueueDefault), asynq.TaskID("unwoken"))
	require.NoError(t, err)
	time.Sleep(500 * time.Millisecond) // 50 fast polls' worth
	require.EqualValues(t, 1, started.Load(), "a task enqueued behind the waker's back started before the idle poll: asynq's dequeue was not gated")

	waker.Wake()
	require.Eventually(t, func() bool { return started.Load() == 2 }, 20*time.Second, 5*time.Millisecond)
}

// TestQueueWakerIdleRedisOps counts the commands an idle pair of asynq
// servers sends to a real Redis through the waker, next to the same servers
// polling every WakePollInterval without it.
func TestQueueWakerIdleRedisOps(t *testing.T) {
	if testing.Short() {
		t.Skip("measures 2 s of idling twice")
	}
	srvRedis := redistest.Start(t)
	rdb := srvRedis.Client(t)
	ctx := context.Background()
	idleOps := func(client redis.UniversalClient) int64 {
		servers := []*asynq.Server{
			asynq.NewServerFromRedisClient(client, asynq.Config{Concurrency: 2, Queues: map[string]int{UploadQueue("n1"): 2, QueueSharedUpload: 1},
				TaskCheckInterval: WakePollInterval, LogLevel: asynq.FatalLevel, ShutdownTimeout: time.Second}),
			asynq.NewServerFromRedisClient(client, asynq.Config{Concurrency: 4, Queues: map[string]int{QueueDefault: 1},
				TaskCheckInterval: WakePollInterval, LogLevel: asynq.FatalLevel, ShutdownTimeout: time.Second}),
		}
		for _, s := range servers {
			require.NoError(t, s.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })))
		}
		time.Sleep(500 * time.Millisecond) // start-up traffic
		before := totalCalls(t, rdb)
		time.Sleep(2 * time.Second)
		n := totalCalls(t, rdb) - before
		for _, s := range servers {
			s.Shutdown()
		}
		return n / 2
	}
	require.NoError(t, rdb.FlushAll(ctx).Err())
	gated := idleOps(NewQueueWaker(DefaultIdlePoll).Client(rdb))
	require.NoError(t, rdb.FlushAll(ctx).Err())
	ungated := idleOps(rdb)
	t.Logf("idle Redis commands per second: %d through the waker, %d polling every %s without it", gated, ungated, WakePollInterval)
	require.Less(t, gated, int64(30), "an idle daemon's servers must not poll Redis hard")
	require.Greater(t, ungated, 3*gated, "the comparison is meaningless if polling without the waker is as cheap")
}

// totalCalls sums the calls of every command in INFO commandstats, minus
// the INFO calls themselves.
func totalCalls(t *testing.T, rdb *redis.Client) int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	require.NoError(t, err)
	var total int64
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") || name == "cmdstat_info" {
			continue
		}
		for _, f := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(f, "calls="); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				require.NoError(t, err)
				total += n
			}
		}
	}
	return total
}

func TestHopLatency(t *testing.T) {
	at := time.Unix(1000, 0)
	h := hopHeaders(context.WithValue(context.Background(), jobTypeKey, TypeUpload), at)
	by, d, ok := hopLatency(h, 0, at.Add(7*time.Millisecond))
	require.True(t, ok)
	require.Equal(t, TypeUpload, by)
	require.Equal(t, 7*time.Millisecond, d)

	_, _, ok = hopLatency(h, 1, at.Add(time.Minute))
	require.False(t, ok, "a retry waited for its backoff, not for a hop")
	_, _, ok = hopLatency(hopHeaders(context.Background(), at), 0, at)
	require.False(t, ok, "a task no job queued (watcher, schedule) is not a hop")
	_, _, ok = hopLatency(nil, 0, at)
	require.False(t, ok)
	_, d, ok = hopLatency(h, 0, at.Add(-time.Second))
	require.True(t, ok)
	require.Zero(t, d, "clock steps never give a negative hop")
}

// gatedEmpty reports whether Redis last found queue empty with no wake
// since: its dequeues are answered locally until the idle poll.
func (w *QueueWaker) gatedEmpty(queue string) bool {
	gen := w.gen.Load()
	w.mu.Lock()
	defer w.mu.Unlock()
	last, ok := w.queues[queue]
	return ok && last.empty && last.gen == gen
}
