package jobs

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// How asynq v0.26 waits for work, and why imagesync wraps it.
//
// An asynq server's processor loops: it takes a worker slot, runs its
// dequeue script once per queue (one EVALSHA each), and when every queue is
// empty it sleeps TaskCheckInterval/2 plus a random [0, TaskCheckInterval)
// while holding the slot, then tries again. There is no blocking pop and no
// way to wake it. With the default 1 s interval a task enqueued into an idle
// queue waits 0.5–1.5 s, and upload → register → publish pays that twice; a
// 10 ms interval makes each hop milliseconds but polls Redis a hundred times
// a second per queue, forever.
//
// QueueWaker gives both: the servers run with WakePollInterval, and their
// dequeue calls go through Client, which answers "empty" locally, without
// asking Redis, while nothing can have arrived — that is, while this
// process has enqueued nothing since Redis last answered empty for that
// queue and less than the idle interval has passed. Every enqueue from this
// process (Enqueuer.Enqueue, after a job or a watcher event) calls Wake, so
// the next poll, at most about 15 ms later, asks Redis for real. Tasks that
// arrive otherwise (another node's enqueue into a shared queue, `syncctl
// retry`, asynq moving a retry or scheduled task to pending) are found by
// the idle poll, as soon as asynq's default would have found them.
//
// Recognising the dequeue relies on the shape of asynq's script call (four
// keys: pending, paused, active and lease of one queue). If an asynq upgrade
// changes it, every call passes through: hops stay fast and only the idle
// Redis traffic grows, which TestQueueWakerGatesAsynqDequeue catches.
type QueueWaker struct {
	idle time.Duration
	now  func() time.Time
	gen  atomic.Uint64

	mu     sync.Mutex
	queues map[string]queuePoll
}

// WakePollInterval is the TaskCheckInterval for servers whose client comes
// from QueueWaker.Client: the longest a woken queue waits is 1.5× this.
const WakePollInterval = 10 * time.Millisecond

// DefaultIdlePoll is how often an idle queue is really polled: asynq's own
// default TaskCheckInterval.
const DefaultIdlePoll = time.Second

// queuePoll is what Redis last said about one queue.
type queuePoll struct {
	at    time.Time // when the last real dequeue was sent
	gen   uint64    // the wake generation it was sent at
	empty bool      // it found nothing
}

// NewQueueWaker polls an idle queue every idle (DefaultIdlePoll if <= 0).
func NewQueueWaker(idle time.Duration) *QueueWaker {
	if idle <= 0 {
		idle = DefaultIdlePoll
	}
	return &QueueWaker{idle: idle, now: time.Now, queues: map[string]queuePoll{}}
}

// Wake makes the next dequeue of every queue ask Redis. It is cheap and safe
// to call from anywhere, any number of times; a nil waker ignores it.
func (w *QueueWaker) Wake() {
	if w != nil {
		w.gen.Add(1)
	}
}

// begin decides whether a dequeue of queue must go to Redis; if so it
// returns the generation to pass to end.
func (w *QueueWaker) begin(queue string) (gen uint64, ask bool) {
	gen = w.gen.Load()
	now := w.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	last, seen := w.queues[queue]
	if seen && last.empty && last.gen == gen && now.Sub(last.at) < w.idle {
		return 0, false
	}
	return gen, true
}

// end records Redis' answer to a dequeue sent at generation gen.
func (w *QueueWaker) end(queue string, gen uint64, sent time.Time, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.queues[queue] = queuePoll{at: sent, gen: gen, empty: errors.Is(err, redis.Nil)}
}

// Client wraps c for asynq servers (asynq.NewServerFromRedisClient): their
// dequeue polls are answered as described on QueueWaker; every other call
// goes to c unchanged.
func (w *QueueWaker) Client(c redis.UniversalClient) redis.UniversalClient {
	return wakeClient{UniversalClient: c, w: w}
}

type wakeClient struct {
	redis.UniversalClient
	w *QueueWaker
}

func (c wakeClient) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return c.gated(ctx, keys, func() *redis.Cmd { return c.UniversalClient.EvalSha(ctx, sha1, keys, args...) })
}

func (c wakeClient) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return c.gated(ctx, keys, func() *redis.Cmd { return c.UniversalClient.Eval(ctx, script, keys, args...) })
}

func (c wakeClient) gated(ctx context.Context, keys []string, call func() *redis.Cmd) *redis.Cmd {
	queue, ok := dequeueQueue(keys)
	if !ok {
		return call()
	}
	gen, ask := c.w.begin(queue)
	if !ask {
		cmd := redis.NewCmd(ctx)
		cmd.SetErr(redis.Nil)
		return cmd
	}
	sent := c.w.now()
	cmd := call()
	c.w.end(queue, gen, sent, cmd.Err())
	return cmd
}

// dequeueQueue recognises asynq's dequeue script by its keys
// (asynq:{q}:pending, :paused, :active, :lease) and returns q.
func dequeueQueue(keys []string) (string, bool) {
	if len(keys) != 4 {
		return "", false
	}
	q, ok := strings.CutPrefix(keys[0], "asynq:{")
	if !ok {
		return "", false
	}
	q, ok = strings.CutSuffix(q, "}:pending")
	if !ok {
		return "", false
	}
	prefix := "asynq:{" + q + "}:"
	if keys[1] != prefix+"paused" || keys[2] != prefix+"active" || keys[3] != prefix+"lease" {
		return "", false
	}
	return q, true
}
