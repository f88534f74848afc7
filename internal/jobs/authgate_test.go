package jobs

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// After the token is fixed and syncd restarted, Clear must not leave the
// tasks the 401 stopped waiting out RetryDelay's 5-minute backoff: they run
// at once. Tasks retrying for other reasons keep their backoff.
func TestAuthGateClearRunsTasksStoppedBy401(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	insp := asynq.NewInspectorFromRedisClient(rdb)
	ctx := context.Background()

	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency: 2, Queues: map[string]int{QueueDefault: 1},
		RetryDelayFunc: RetryDelay, LogLevel: asynq.FatalLevel,
	})
	h := asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		if string(t.Payload()) == "401" {
			return &UnauthorizedError{Err: errors.New("upload x: 401 Unauthorized")}
		}
		return errors.New("503 Service Unavailable")
	})
	require.NoError(t, srv.Start(h))
	client := asynq.NewClientFromRedisClient(rdb)
	_, err := client.Enqueue(asynq.NewTask("t", []byte("401")), asynq.TaskID("a"), asynq.Queue(QueueDefault))
	require.NoError(t, err)
	_, err = client.Enqueue(asynq.NewTask("t", []byte("503")), asynq.TaskID("b"), asynq.Queue(QueueDefault))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		ts, _ := insp.ListRetryTasks(QueueDefault)
		return len(ts) == 2
	}, 10*time.Second, 20*time.Millisecond)
	srv.Shutdown()

	gate := NewAuthGate(rdb, insp, []string{QueueDefault, QueueSharedUpload}, zap.NewNop(), nil)
	gate.Trip(ctx, errors.New("401"))
	require.NoError(t, gate.Clear(ctx))

	a, err := insp.GetTaskInfo(QueueDefault, "a")
	require.NoError(t, err)
	require.Equal(t, asynq.TaskStatePending, a.State, "the 401 task was not resumed")
	b, err := insp.GetTaskInfo(QueueDefault, "b")
	require.NoError(t, err)
	require.Equal(t, asynq.TaskStateRetry, b.State, "a task retrying for another reason lost its backoff")
}
