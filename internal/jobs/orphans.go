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
// a process that no longer exists, or when it is active on this node's own
// upload queue (only this node can run it) and no live process on this host
// serves that queue. Tasks of other hosts are left to asynq.
//
// It edits asynq's lease set (asynq:{queue}:lease, as of asynq v0.26); the
// inspector has no call for it.
func ReclaimOrphans(ctx context.Context, rdb redis.UniversalClient, insp *asynq.Inspector, ownQueue string) (int, error) {
	host, err := os.Hostname()
	if err != nil {
		return 0, err
	}
	servers, err := insp.Servers()
	if err != nil {
		return 0, fmt.Errorf("listing workers: %w", err)
	}
	orphans := map[string][]string{} // queue → task ids
	ownServed := false
	for _, s := range servers {
		if s.Host != host {
			continue
		}
		if s.PID != os.Getpid() && processAlive(s.PID) {
			if _, ok := s.Queues[ownQueue]; ok {
				ownServed = true
			}
			continue
		}
		for _, w := range s.ActiveWorkers {
			orphans[w.Queue] = append(orphans[w.Queue], w.TaskID)
		}
	}
	if !ownServed {
		active, err := insp.ListActiveTasks(ownQueue, asynq.PageSize(1000))
		if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
			return 0, fmt.Errorf("listing active tasks of %s: %w", ownQueue, err)
		}
		for _, ti := range active {
			orphans[ownQueue] = append(orphans[ownQueue], ti.ID)
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
