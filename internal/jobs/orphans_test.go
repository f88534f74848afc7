package jobs

import (
	"context"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/redistest"
)

// workerChildEnv makes the test binary a worker that takes one task and
// hangs on it (see TestHungWorkerChild).
const workerChildEnv = "IMAGESYNC_TEST_HUNG_WORKER_REDIS"

// TestHungWorkerChild is not a test: re-executed by
// TestRequeueAbandonedPutsBackADeadWorkersTask with workerChildEnv set, it
// runs an asynq server whose handler never returns, to be SIGKILLed.
func TestHungWorkerChild(t *testing.T) {
	addr := os.Getenv(workerChildEnv)
	if addr == "" {
		t.Skip("helper process for TestRequeueAbandonedPutsBackADeadWorkersTask")
	}
	srv := asynq.NewServer(asynq.RedisClientOpt{Addr: addr}, asynq.Config{Concurrency: 1, Queues: map[string]int{QueueDefault: 1}, LogLevel: asynq.FatalLevel})
	_ = srv.Run(asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		<-ctx.Done()
		select {} // hang even past cancellation, until killed
	}))
}

// A syncd that dies with a task of a queue every node serves leaves it
// "active"; another node's RequeueAbandoned puts it back within seconds, and
// never while its worker lives.
func TestRequeueAbandonedPutsBackADeadWorkersTask(t *testing.T) {
	rs := redistest.StartProcess(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	insp := asynq.NewInspectorFromRedisClient(rdb)
	client := asynq.NewClientFromRedisClient(rdb)
	_, err := client.Enqueue(asynq.NewTask("t", nil), asynq.TaskID("hung"), asynq.Queue(QueueDefault))
	require.NoError(t, err)

	child := exec.Command(os.Args[0], "-test.run=^TestHungWorkerChild$", "-test.count=1")
	child.Env = append(os.Environ(), workerChildEnv+"="+rs.Addr)
	child.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, child.Start())
	done := make(chan struct{})
	go func() { _ = child.Wait(); close(done) }()
	t.Cleanup(func() { _ = child.Process.Kill(); <-done })

	state := func() asynq.TaskState {
		ti, err := insp.GetTaskInfo(QueueDefault, "hung")
		require.NoError(t, err)
		return ti.State
	}
	require.Eventually(t, func() bool { return state() == asynq.TaskStateActive }, 30*time.Second, 20*time.Millisecond)
	// While the worker lives, its task stays with it, even with a zero
	// grace period (its lease is extended and it is listed as running).
	require.Eventually(t, func() bool {
		srvs, err := insp.Servers()
		return err == nil && len(srvs) == 1 && len(srvs[0].ActiveWorkers) == 1
	}, 30*time.Second, 50*time.Millisecond)
	n, err := RequeueAbandoned(context.Background(), rdb, insp, []string{QueueDefault, QueueSharedUpload}, 0)
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Equal(t, asynq.TaskStateActive, state())

	require.NoError(t, child.Process.Kill())
	<-done
	// The dead server's entry expires within 10 s; then the task is put back.
	start := time.Now()
	require.Eventually(t, func() bool {
		n, err := RequeueAbandoned(context.Background(), rdb, insp, []string{QueueDefault}, time.Second)
		require.NoError(t, err)
		return n == 1
	}, 30*time.Second, 200*time.Millisecond)
	t.Logf("put back %s after the kill", time.Since(start).Round(100*time.Millisecond))
	assert.Equal(t, asynq.TaskStatePending, state())

	// And a live server runs it.
	ran := make(chan struct{})
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{Concurrency: 1, Queues: map[string]int{QueueDefault: 1}, LogLevel: asynq.FatalLevel})
	require.NoError(t, srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { close(ran); return nil })))
	t.Cleanup(srv.Shutdown)
	select {
	case <-ran:
	case <-time.After(30 * time.Second):
		t.Fatal("the requeued task did not run")
	}
}
