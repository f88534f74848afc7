package jobs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// ReclaimOrphans makes the tasks that a killed syncd on this host left
// "active" runnable at once. asynq only gives such a task back after its
// lease (30 s) has been expired for another 30 s and its recoverer's next
// pass (every minute), so a `kill -9` and restart would leave an upload idle
// for up to two minutes. Call it before the workers start: their recoverer
// runs once at start and then retries what this made look expired.
//
// A task is an orphan when the server entry holding it is on this host with
// a process that no longer exists, or when it is active on one of this
// node's own queues (only this node can run it) and no live process on this
// host serves that queue. Tasks of other hosts are left to asynq (and, on
// the queues every node serves, to RequeueAbandoned).
//
// It edits asynq's lease set (asynq:{queue}:lease, as of asynq v0.26); the
// inspector has no call for it.
func ReclaimOrphans(ctx context.Context, rdb redis.UniversalClient, insp *asynq.Inspector, ownQueues ...string) (int, error) {
	host, err := os.Hostname()
	if err != nil {
		return 0, err
	}
	servers, err := insp.Servers()
	if err != nil {
		return 0, fmt.Errorf("listing workers: %w", err)
	}
	orphans := map[string][]string{} // queue → task ids
	served := map[string]bool{}
	for _, s := range servers {
		if s.Host != host {
			continue
		}
		if s.PID != os.Getpid() && processAlive(s.PID) {
			for q := range s.Queues {
				served[q] = true
			}
			continue
		}
		for _, w := range s.ActiveWorkers {
			orphans[w.Queue] = append(orphans[w.Queue], w.TaskID)
		}
	}
	for _, q := range ownQueues {
		if served[q] {
			continue
		}
		active, err := insp.ListActiveTasks(q, asynq.PageSize(1000))
		if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
			return 0, fmt.Errorf("listing active tasks of %s: %w", q, err)
		}
		for _, ti := range active {
			orphans[q] = append(orphans[q], ti.ID)
		}
	}
	expired := float64(time.Now().Add(-2 * time.Minute).Unix())
	n := 0
	for q, ids := range orphans {
		for _, id := range ids {
			// XX: only tasks that still hold a lease (still active).
			changed, err := rdb.ZAddArgs(ctx, "asynq:{"+q+"}:lease", redis.ZAddArgs{XX: true, Ch: true, Members: []redis.Z{{Score: expired, Member: id}}}).Result()
			if err != nil {
				return n, fmt.Errorf("expiring the lease of %s: %w", id, err)
			}
			n += int(changed)
		}
	}
	return n, nil
}

// requeueScript puts one active task back on its queue's pending list if
// its lease is still at most ARGV[2] (Unix seconds), i.e. nobody extended
// it meanwhile. KEYS: the queue's active list, lease set, pending list and
// the task's hash (asynq v0.26's layout; all in the queue's hash slot).
var requeueScript = redis.NewScript(`
local lease = redis.call("ZSCORE", KEYS[2], ARGV[1])
if not lease or tonumber(lease) > tonumber(ARGV[2]) then
  return 0
end
if redis.call("LREM", KEYS[1], 0, ARGV[1]) == 0 then
  return 0
end
redis.call("ZREM", KEYS[2], ARGV[1])
redis.call("RPUSH", KEYS[3], ARGV[1])
redis.call("HSET", KEYS[4], "state", "pending")
return 1`)

// requeuedKey counts, per task id, how often RequeueAbandoned put a task
// back, so that a task that kills every syncd taking it is left to asynq's
// recoverer, which counts it as a retry and archives it in the end.
const requeuedKey = "imagesync:requeued"

// maxRequeues is how often one task is put back before it is left to asynq.
const maxRequeues = 3

// RequeueAbandoned puts back on their queue the tasks of queues (those every
// node serves) that a syncd which died, on any host, left "active": no live
// server lists them as running, and their lease has not been extended for
// staleFor (a live worker extends it every 5 s). Left to asynq, such a task
// waits for its lease to expire, 30 s more, and the recoverer's next pass
// (every minute): up to two minutes during which the work of a dead node
// holds up what any other node could do. It returns how many it put back.
//
// Like ReclaimOrphans it works on asynq's keys (v0.26), for which the
// inspector has no call.
func RequeueAbandoned(ctx context.Context, rdb redis.UniversalClient, insp *asynq.Inspector, queues []string, staleFor time.Duration) (int, error) {
	servers, err := insp.Servers()
	if err != nil {
		return 0, fmt.Errorf("listing workers: %w", err)
	}
	running := map[string]bool{}
	for _, s := range servers {
		for _, w := range s.ActiveWorkers {
			running[w.Queue+"\x00"+w.TaskID] = true
		}
	}
	// A live worker's lease ends ~30 s after its last extension.
	stale := time.Now().Add(leaseDuration - staleFor).Unix()
	n := 0
	for _, q := range queues {
		active, err := insp.ListActiveTasks(q, asynq.PageSize(1000))
		if err != nil {
			if errors.Is(err, asynq.ErrQueueNotFound) {
				continue
			}
			return n, fmt.Errorf("listing active tasks of %s: %w", q, err)
		}
		for _, ti := range active {
			if running[q+"\x00"+ti.ID] {
				continue
			}
			prefix := "asynq:{" + q + "}:"
			lease, err := rdb.ZScore(ctx, prefix+"lease", ti.ID).Result()
			if errors.Is(err, redis.Nil) || (err == nil && lease > float64(stale)) {
				continue // finished meanwhile, or its lease is being extended
			}
			if err != nil {
				return n, err
			}
			times, err := rdb.HIncrBy(ctx, requeuedKey, q+":"+ti.ID, 1).Result()
			if err != nil {
				return n, err
			}
			_ = rdb.Expire(ctx, requeuedKey, Retention).Err()
			if times > maxRequeues {
				continue // asynq's recoverer takes it when its lease expires
			}
			// The script checks the lease again: a worker may have
			// extended it since.
			ok, err := requeueScript.Run(ctx, rdb, []string{prefix + "active", prefix + "lease", prefix + "pending", prefix + "t:" + ti.ID}, ti.ID, stale).Int()
			if err != nil {
				return n, fmt.Errorf("requeueing %s: %w", ti.ID, err)
			}
			n += ok
		}
	}
	return n, nil
}

// leaseDuration is asynq's task lease (rdb.LeaseDuration), extended every
// heartbeat (5 s) while a worker runs the task.
const leaseDuration = 30 * time.Second
