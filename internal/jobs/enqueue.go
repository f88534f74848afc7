package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/imagesync/imagesync/internal/redisconn"
)

// Outcome says what Enqueue did.
type Outcome string

const (
	Enqueued Outcome = "enqueued" // a new task
	Queued   Outcome = "queued"   // the same task is already waiting or running
	Done     Outcome = "done"     // the same work already completed (within retention)
	Failed   Outcome = "failed"   // the same work failed permanently; `syncctl retry` re-runs it
)

// Enqueuer puts tasks on the queue with deterministic ids, handling asynq's
// TaskID reuse rules: an id stays taken while its task exists in any state
// (archived and retained-completed included), so a conflict is inspected
// rather than treated as an error.
type Enqueuer struct {
	rdb      redis.UniversalClient
	client   *asynq.Client
	insp     *asynq.Inspector
	failures *Failures
	Node     string
	// Waker, if set, is woken after every enqueue so that this process's
	// servers pick the task up at once (see QueueWaker).
	Waker *QueueWaker
}

// NewEnqueuer shares one go-redis client.
func NewEnqueuer(rdb redis.UniversalClient, node string) *Enqueuer {
	insp := asynq.NewInspectorFromRedisClient(rdb)
	return &Enqueuer{rdb: rdb, client: asynq.NewClientFromRedisClient(rdb), insp: insp, failures: NewFailures(rdb, insp), Node: node}
}

// allQueuesKey is the set asynq's inspector lists the queues from (asynq
// v0.26's asynq:queues; the inspector has no call to add to it).
const allQueuesKey = "asynq:queues"

// RegisterQueues makes queues known to asynq's inspector. asynq adds a
// queue to that set only on a process's first enqueue into it, and then
// remembers that it did: after Redis lost data (a failover to a replica
// that lagged, a restart without persistence) the set can miss a queue
// whose tasks still run but which no inspector sees: `syncctl status`, the
// queue metrics, the pause after a 401. syncd calls this at start and after
// every such loss for the queues it serves.
func (e *Enqueuer) RegisterQueues(ctx context.Context, queues ...string) error {
	if len(queues) == 0 {
		return nil
	}
	members := make([]any, len(queues))
	for i, q := range queues {
		members[i] = q
	}
	if err := e.rdb.SAdd(ctx, allQueuesKey, members...).Err(); err != nil {
		return fmt.Errorf("registering the queues %v: %w", queues, redisUnavailable(err))
	}
	return nil
}

// Inspector exposes the inspector (status, retries).
func (e *Enqueuer) Inspector() *asynq.Inspector { return e.insp }

// Failures is the index of archived tasks by image on the same Redis.
func (e *Enqueuer) Failures() *Failures {
	if e == nil {
		return nil
	}
	return e.failures
}

// Close releases nothing shared: the go-redis client belongs to the caller.
func (e *Enqueuer) Close() error { return nil }

// Request is one task to enqueue.
type Request struct {
	Type    string
	ID      string
	Queue   string
	Payload any
	// Replace deletes a finished or failed task with the same id first
	// (resync, retry of changed work).
	Replace bool
	Opts    []asynq.Option
}

// ErrRedisUnavailable marks a job or enqueue error caused by Redis being
// unreachable or between masters (redisconn.IsTransient): the work itself
// is fine and is retried soon (see RetryDelay).
var ErrRedisUnavailable = errors.New("redis unavailable")

// redisUnavailable adds ErrRedisUnavailable to a transient Redis error.
func redisUnavailable(err error) error {
	if redisconn.IsTransient(err) && !errors.Is(err, ErrRedisUnavailable) {
		return fmt.Errorf("%w: %w", ErrRedisUnavailable, err)
	}
	return err
}

// Enqueue adds r, or reports what already holds its id.
func (e *Enqueuer) Enqueue(ctx context.Context, r Request) (Outcome, error) {
	out, err := e.enqueue(ctx, r)
	return out, redisUnavailable(err)
}

func (e *Enqueuer) enqueue(ctx context.Context, r Request) (Outcome, error) {
	data, err := json.Marshal(r.Payload)
	if err != nil {
		return "", fmt.Errorf("encoding %s payload: %w", r.Type, err)
	}
	opts := append([]asynq.Option{asynq.TaskID(r.ID), asynq.Queue(r.Queue), asynq.Retention(Retention)}, r.Opts...)
	for attempt := 0; attempt < 2; attempt++ {
		task := asynq.NewTaskWithHeaders(r.Type, data, hopHeaders(ctx, time.Now()), opts...)
		_, err = e.client.EnqueueContext(ctx, task)
		if err == nil {
			e.Waker.Wake()
			return Enqueued, nil
		}
		if !errors.Is(err, asynq.ErrTaskIDConflict) {
			return "", fmt.Errorf("enqueue %s %s: %w", r.Type, r.ID, err)
		}
		info, ierr := e.insp.GetTaskInfo(r.Queue, r.ID)
		if ierr != nil {
			if errors.Is(ierr, asynq.ErrTaskNotFound) {
				continue // it finished and expired between the two calls
			}
			if stub, serr := e.dropStub(ctx, r); serr == nil && stub {
				continue // the id is free now
			}
			return "", fmt.Errorf("inspect %s %s: %w", r.Type, r.ID, ierr)
		}
		switch info.State {
		case asynq.TaskStateCompleted, asynq.TaskStateArchived:
			if !r.Replace {
				if info.State == asynq.TaskStateCompleted {
					return Done, nil
				}
				return Failed, nil
			}
			if derr := e.insp.DeleteTask(r.Queue, r.ID); derr != nil && !errors.Is(derr, asynq.ErrTaskNotFound) {
				return "", fmt.Errorf("replace %s %s: %w", r.Type, r.ID, derr)
			}
		case asynq.TaskStateRetry, asynq.TaskStateScheduled:
			if r.Replace {
				// Run it now instead of waiting out its backoff.
				if rerr := e.insp.RunTask(r.Queue, r.ID); rerr == nil {
					e.Waker.Wake()
					return Queued, nil
				}
			}
			return Queued, nil
		default:
			return Queued, nil
		}
	}
	return "", fmt.Errorf("enqueue %s %s: task id stayed taken", r.Type, r.ID)
}

// dropStubScript deletes a task hash that holds no task message. asynq
// writes a task's message and state together, in one script; a hash without
// them is what a job's late result write (HSET result, asynq's
// ResultWriter) leaves on a new master that never had the task, after a
// failover lost it. The stub takes the id: asynq refuses to enqueue it and
// cannot inspect it.
var dropStubScript = redis.NewScript(`if redis.call("EXISTS", KEYS[1]) == 1 and redis.call("HEXISTS", KEYS[1], "msg") == 0 then return redis.call("DEL", KEYS[1]) end return 0`)

// dropStub deletes r's task hash if it is such a stub, and says whether it
// did. The key is asynq v0.26's task key (asynq:{queue}:t:id).
func (e *Enqueuer) dropStub(ctx context.Context, r Request) (bool, error) {
	n, err := dropStubScript.Run(ctx, e.rdb, []string{"asynq:{" + r.Queue + "}:t:" + r.ID}).Int()
	return n == 1, err
}

// Task headers that time the hop from one job to the next (see hopLatency).
const (
	headerEnqueuedAt = "imagesync-enqueued-at" // Unix nanoseconds
	headerEnqueuedBy = "imagesync-enqueued-by" // the type of the job that enqueued it
)

func hopHeaders(ctx context.Context, now time.Time) map[string]string {
	h := map[string]string{headerEnqueuedAt: strconv.FormatInt(now.UnixNano(), 10)}
	if by, ok := ctx.Value(jobTypeKey).(string); ok {
		h[headerEnqueuedBy] = by
	}
	return h
}

// hopLatency is how long a task enqueued by another job waited between that
// enqueue and its own start, or false for a task no job enqueued, a retry,
// or one without the headers (enqueued by an older imagesync).
func hopLatency(headers map[string]string, retry int, started time.Time) (by string, d time.Duration, ok bool) {
	by = headers[headerEnqueuedBy]
	ns, err := strconv.ParseInt(headers[headerEnqueuedAt], 10, 64)
	if by == "" || err != nil || retry > 0 {
		return "", 0, false
	}
	return by, max(started.Sub(time.Unix(0, ns)), 0), true
}
