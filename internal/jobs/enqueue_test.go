package jobs

import (
	"context"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// After a Sentinel failover, a job that finished on the old master can write
// its result (HSET result) to the new one, which never had the task: that
// leaves a task hash with no message and no state. asynq then refuses the
// id ("task ID conflicts") and cannot inspect it ("" is not a task state),
// so every later enqueue of that id failed, and the upload that queues the
// registration retried until it was archived (seen in TestSentinelFailover).
func TestEnqueueReplacesAStubLeftByAFailover(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	enq := NewEnqueuer(rdb, "n1")
	req := Request{Type: TypeRegister, ID: "register:stub", Queue: NodeQueue("n1"), Payload: map[string]int{"v": 1}}
	require.NoError(t, rdb.HSet(ctx, "asynq:{"+req.Queue+"}:t:"+req.ID, "result", `{"phase":"done"}`).Err())

	out, err := enq.Enqueue(ctx, req)
	require.NoError(t, err)
	assert.Equal(t, Enqueued, out)
	ti, err := enq.Inspector().GetTaskInfo(req.Queue, req.ID)
	require.NoError(t, err)
	assert.Equal(t, asynq.TaskStatePending, ti.State)

	// A real task under the id is never touched.
	out, err = enq.Enqueue(ctx, req)
	require.NoError(t, err)
	assert.Equal(t, Queued, out)
}
