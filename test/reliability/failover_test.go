package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/daemon/daemontest"
	"github.com/imagesync/imagesync/internal/jobs"
	"github.com/imagesync/imagesync/internal/redisconn"
	"github.com/imagesync/imagesync/internal/redistest"
	"github.com/imagesync/imagesync/internal/sandbox"
)

// TestSentinelFailover runs a daemon on a Sentinel-managed Redis (a master,
// a replica and three sentinels, all started here) and SIGKILLs the master
// while 20 images are in flight (slow block uploads), after holding back
// replication so that the promoted replica lacks writes the master had
// acknowledged (task completions, new tasks, a few registrations' follow-up
// work). The sentinels promote the replica; the daemon keeps running, logs
// the failover, and in the end every image is registered exactly once,
// every task that existed on the old master before the kill is there and
// done (deterministic ids recreate the lost ones), and nothing failed. It
// logs the pause from the kill to the next job completed in Redis.
func TestSentinelFailover(t *testing.T) {
	// Mostly waiting (for the recovery sweep after asynq's 30 s lease): it
	// runs beside the other failover test, each with Redis processes of its own.
	t.Parallel()
	if testing.Short() {
		t.Skip("starts five redis-server processes and waits out the recovery sweep")
	}
	const images = 20
	set := redistest.StartSentinelSet(t, redistest.SentinelOptions{Master: "imagesync", DownAfter: time.Second, FailoverTimeout: 3 * time.Second})
	rc := config.Redis{Addr: config.EmbeddedRedis, Sentinel: config.RedisSentinel{Master: set.Name, Addrs: set.Addrs()}}

	cloud := daemontest.StartCloud(t, sandbox.Config{BlockSize: smallBlocks})
	dir := filepath.Join(t.TempDir(), "images")
	cfg := daemontest.Config(t, cloud, rc, dir)
	cfg.Upload.Files = 6
	log, logs := observed(t)
	d := daemontest.Run(t, cfg, log)

	// The test's own view of Redis goes through Sentinel too.
	rdb, err := redisconn.NewClient(rc)
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	insp := asynq.NewInspectorFromRedisClient(rdb)

	// Slow blocks: each image takes a few seconds, so all 20 are queued or
	// uploading when the master dies.
	cloud.SetLatency(250 * time.Millisecond)
	var rels []string
	for i := range images {
		rel := fmt.Sprintf("img-%02d.diskdump", i)
		daemontest.WriteRandom(t, filepath.Join(dir, rel), 24*smallBlocks+i*1000)
		rels = append(rels, rel)
	}
	daemontest.Eventually(t, 60*time.Second, "all uploads queued and some running", func() bool {
		ups := 0
		for _, ti := range daemontest.AllTasks(t, insp) {
			if ti.Type == jobs.TypeUpload {
				ups++
			}
		}
		return ups == images && len(daemontest.Tasks(t, insp, daemontest.StateActive)) > 0 && cloud.Stats().BlocksReceived > 0
	})
	// Replication lags: the master acknowledges registrations, completions
	// and new tasks that the replica never gets, and the failover loses.
	set.HoldReplication(t)
	registeredAtHold := cloud.Stats().ImageRegisters
	daemontest.Eventually(t, 60*time.Second, "registrations the replica does not see", func() bool {
		return cloud.Stats().ImageRegisters >= registeredAtHold+2
	})
	before := daemontest.AllTasks(t, insp)
	beforeDone := map[string]bool{}
	for _, ti := range before {
		if ti.State == asynq.TaskStateCompleted {
			beforeDone[ti.Queue+"/"+ti.ID] = true
		}
	}
	registeredAtKill := cloud.Stats().ImageRegisters
	activeAtKill := len(daemontest.Tasks(t, insp, daemontest.StateActive))
	require.Less(t, registeredAtKill, int64(images), "the images should still be in flight when the master dies")

	lost := redistest.ReplOffset(t, set.Master) - redistest.ReplOffset(t, set.Replica)
	killed := time.Now()
	set.Master.Kill()
	set.ReleaseReplication(t)
	t.Logf("master %s killed with %d tasks known, %d active, %d of %d images registered; %d bytes of replication stream not on the replica",
		set.Master.Addr, len(before), activeAtKill, registeredAtKill, images, lost)
	require.Positive(t, lost, "the failover should lose writes")

	// The pause: from the kill to the first write through Sentinel, and to
	// the first task completed in Redis that was not completed before.
	var writable, nextDone atomic.Int64
	pollCtx, stopPoll := context.WithCancel(context.Background())
	pollDone := make(chan struct{})
	go func() {
		defer close(pollDone)
		for pollCtx.Err() == nil {
			if writable.Load() == 0 {
				ctx, cancel := context.WithTimeout(pollCtx, time.Second)
				if rdb.Set(ctx, "imagesync-test:failover-probe", "x", 0).Err() == nil {
					writable.Store(int64(time.Since(killed)))
				}
				cancel()
			}
			if nextDone.Load() == 0 {
				if n := newlyCompleted(insp, beforeDone); n > 0 {
					nextDone.Store(int64(time.Since(killed)))
				}
			}
			if writable.Load() != 0 && nextDone.Load() != 0 {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()

	// The daemon notices and says so.
	daemontest.Eventually(t, 60*time.Second, "the daemon to log the failover", func() bool {
		return logs.FilterMessageSnippet("Redis failover").FilterLevelExact(zap.WarnLevel).Len() > 0
	})
	fo := logs.FilterMessageSnippet("Redis failover").All()[0]
	failoverLogged := fo.Time.Sub(killed)
	fields := fo.ContextMap()
	assert.Equal(t, set.Master.Addr, fields["old_master"])
	assert.Equal(t, set.Replica.Addr, fields["new_master"])
	assert.Equal(t, set.Replica.Addr, set.MasterAddr(t), "the sentinels promoted the replica")
	cloud.SetLatency(0)

	requireAllRegistered(t, cloud, dir, smallBlocks, 3*time.Minute, rels...)
	<-waitClosed(pollDone, 30*time.Second)
	stopPoll()
	require.NotZero(t, nextDone.Load(), "no job completed after the failover")

	// The recovery sweep runs once the old master's in-flight completions
	// have landed; wait for it, then for the queues to drain.
	daemontest.Eventually(t, 3*time.Minute, "the recovery sweep", func() bool {
		return logs.FilterLoggerName("recovery").FilterMessage("republish sweep done").Len() > 0
	})
	daemontest.Eventually(t, 2*time.Minute, "the queues to drain", func() bool {
		for _, st := range []string{daemontest.StatePending, daemontest.StateActive, daemontest.StateScheduled, daemontest.StateRetry} {
			if len(daemontest.Tasks(t, insp, st)) > 0 {
				return false
			}
		}
		return true
	})
	require.True(t, d.Running(), "syncd stopped: %v", d.Err())

	// Every image registered exactly once.
	st := cloud.Stats()
	imgs := daemontest.Images(t, cloud)
	names := map[string]int{}
	for _, im := range imgs {
		names[im.Name]++
	}
	assert.Len(t, imgs, images)
	for _, rel := range rels {
		assert.Equal(t, 1, names[rel], "registrations of %s", rel)
	}
	assert.Equal(t, int64(images), st.ImageRegisters, "image registrations (POSTs) in the sandbox")

	// No task lost: every task known before the kill is there and done,
	// nothing failed, and each image has its upload, registration and
	// publish completed.
	after := daemontest.AllTasks(t, insp)
	byKey := map[string]*asynq.TaskInfo{}
	count := map[string]int{}
	for _, ti := range after {
		byKey[ti.Queue+"/"+ti.ID] = ti
		count[ti.Type]++
	}
	var missing []string
	known := map[string]bool{}
	for _, ti := range before {
		key := ti.Queue + "/" + ti.ID
		if known[key] {
			continue // listed in two states while it moved
		}
		known[key] = true
		got := byKey[key]
		if got == nil || got.State != asynq.TaskStateCompleted {
			missing = append(missing, fmt.Sprintf("%s %s (%v)", ti.Type, key, got))
		}
	}
	sort.Strings(missing)
	assert.Empty(t, missing, "tasks known before the kill that are not completed now")
	assert.Empty(t, daemontest.Tasks(t, insp, daemontest.StateArchived), "archived tasks")
	assert.Equal(t, images, count[jobs.TypeUpload], "upload tasks")
	for _, im := range imgs {
		reg, pub := 0, 0
		for _, ti := range after {
			switch ti.Type {
			case jobs.TypeRegister:
				var p jobs.RegisterPayload
				if json.Unmarshal(ti.Payload, &p) == nil && p.RelPath == im.Name && (p.ObjectHash == im.Checksum || p.ObjectHash == "") {
					reg++
				}
			case jobs.TypePublish:
				var p jobs.PublishPayload
				if json.Unmarshal(ti.Payload, &p) == nil && p.ImageID == im.ID {
					pub++
				}
			}
		}
		assert.GreaterOrEqual(t, reg, 1, "completed registrations of %s", im.Name)
		assert.GreaterOrEqual(t, pub, 1, "completed publishes of %s", im.Name)
	}
	t.Logf("tasks before the kill: %d; after: %d (%d upload, %d register, %d publish, %d republish); archived: 0",
		len(known), len(after), count[jobs.TypeUpload], count[jobs.TypeRegister], count[jobs.TypePublish], count[jobs.TypeRepublish])
	t.Logf("FAILOVER PAUSE: master killed -> Redis writable through Sentinel %s; failover logged by syncd %s; next job completed in Redis %s",
		time.Duration(writable.Load()).Round(time.Millisecond), failoverLogged.Round(time.Millisecond), time.Duration(nextDone.Load()).Round(time.Millisecond))
}

// newlyCompleted counts completed tasks that were not completed before (0
// while Redis does not answer).
func newlyCompleted(insp *asynq.Inspector, before map[string]bool) int {
	queues, err := insp.Queues()
	if err != nil {
		return 0
	}
	n := 0
	for _, q := range queues {
		tasks, err := insp.ListCompletedTasks(q, asynq.PageSize(1000))
		if err != nil {
			return 0
		}
		for _, ti := range tasks {
			if !before[q+"/"+ti.ID] {
				n++
			}
		}
	}
	return n
}

// waitClosed is ch, or a closed channel after timeout.
func waitClosed(ch <-chan struct{}, timeout time.Duration) <-chan struct{} {
	out := make(chan struct{})
	go func() {
		defer close(out)
		select {
		case <-ch:
		case <-time.After(timeout):
		}
	}()
	return out
}
