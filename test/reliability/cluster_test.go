package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/ctl"
	"github.com/imagesync/imagesync/internal/daemon/daemontest"
	"github.com/imagesync/imagesync/internal/jobs"
	"github.com/imagesync/imagesync/internal/redisconn"
	"github.com/imagesync/imagesync/internal/redistest"
	"github.com/imagesync/imagesync/internal/sandbox"
)

// TestRedisCluster runs a daemon and syncctl on a three-master Redis
// Cluster: every key imagesync and asynq use in one command or script hashes
// to one slot (asynq's {queue} hash tags; imagesync's own keys are single),
// so images are registered exactly once with no CROSSSLOT or other Redis
// error, and syncctl and the metrics see the queues.
func TestRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node Redis Cluster")
	}
	nodes := redistest.StartCluster(t, 3)
	rc := config.Redis{Addr: config.EmbeddedRedis, Cluster: config.RedisCluster{Addrs: redistest.Addrs(nodes)[:2]}}

	cloud := daemontest.StartCloud(t, sandbox.Config{BlockSize: smallBlocks})
	dir := filepath.Join(t.TempDir(), "images")
	cfg := daemontest.Config(t, cloud, rc, dir)
	var rels []string
	for i := range 10 {
		rel := fmt.Sprintf("img-%d.diskdump", i)
		daemontest.WriteRandom(t, filepath.Join(dir, rel), 3*smallBlocks+i*5000)
		rels = append(rels, rel)
	}
	// A link the watcher refuses: recorded in Redis for syncctl status.
	require.NoError(t, os.Symlink("/nonexistent/target.diskdump", filepath.Join(dir, "broken.diskdump")))
	log, logs := observed(t)
	d := daemontest.Run(t, cfg, log)
	requireAllRegistered(t, cloud, dir, smallBlocks, 2*time.Minute, rels...)

	rdb, err := redisconn.NewClient(rc)
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	insp := asynq.NewInspectorFromRedisClient(rdb)
	daemontest.Eventually(t, time.Minute, "the queues to drain", func() bool {
		for _, st := range []string{daemontest.StatePending, daemontest.StateActive, daemontest.StateScheduled, daemontest.StateRetry} {
			if len(daemontest.Tasks(t, insp, st)) > 0 {
				return false
			}
		}
		return true
	})
	assert.Equal(t, int64(len(rels)), cloud.Stats().ImageRegisters, "registrations")
	assert.Len(t, daemontest.Images(t, cloud), len(rels))
	assert.Empty(t, daemontest.Tasks(t, insp, daemontest.StateArchived))
	count := map[string]int{}
	for _, ti := range daemontest.AllTasks(t, insp) {
		count[ti.Type]++
	}
	assert.Equal(t, len(rels), count[jobs.TypeUpload])
	assert.Equal(t, len(rels), count[jobs.TypeRegister])
	assert.Equal(t, len(rels), count[jobs.TypePublish])

	// The queues live on different masters (their hash tags differ).
	queues, err := insp.Queues()
	require.NoError(t, err)
	slots := map[string]int64{}
	for _, q := range queues {
		slot, err := insp.ClusterKeySlot(q)
		require.NoError(t, err)
		slots[q] = slot
	}
	t.Logf("queues and their hash slots: %v", slots)

	// Nothing Redis refused: no CROSSSLOT, no script errors.
	for _, e := range logs.FilterLevelExact(zap.ErrorLevel).All() {
		t.Errorf("error logged: %s %v", e.Message, e.ContextMap())
	}
	assert.Zero(t, logs.FilterMessageSnippet("CROSSSLOT").Len())

	// syncctl and the metrics read the same queues through the cluster.
	cfgPath := filepath.Join(t.TempDir(), "syncd.yaml")
	daemontest.WriteConfig(t, cfg, cfgPath)
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := ctl.Main(ctx, []string{"--config", cfgPath, "status", "--json"}, ctl.Options{Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }})
	require.Equal(t, 0, code, "syncctl status: %s", errOut.String())
	var status map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &status), out.String())
	assert.Contains(t, out.String(), jobs.QueueDefault)
	assert.Contains(t, fmt.Sprint(status["skipped"]), "broken.diskdump", "syncctl status should list the skipped link, whichever master holds it")
	_, metrics := get(t, "http://"+d.Info.HTTPAddr+"/metrics")
	// Registrations run on the node's own queue, publishing on default.
	assert.True(t, strings.Contains(metrics, `imagesync_queue_tasks{queue="`+jobs.NodeQueue(cfg.Node)+`",state="completed"} `+fmt.Sprint(len(rels))),
		"metrics should count the completed register tasks of the node's queue")
	assert.True(t, strings.Contains(metrics, `imagesync_queue_tasks{queue="default",state="completed"} `+fmt.Sprint(len(rels))),
		"metrics should count the completed publish tasks of the default queue")
}

// TestRedisClusterFailover kills the cluster master that holds this node's
// upload queue while images are in flight: its replica takes the slots
// over, the daemon logs the failover and keeps going, and every image is
// registered exactly once with nothing archived.
func TestRedisClusterFailover(t *testing.T) {
	// Mostly waiting (for the recovery sweep after asynq's 30 s lease): it
	// runs beside the other failover test, each with Redis processes of its own.
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a five-node Redis Cluster and waits out a node timeout")
	}
	nodes := redistest.StartCluster(t, 3)
	rc := config.Redis{Addr: config.EmbeddedRedis, Cluster: config.RedisCluster{Addrs: redistest.Addrs(nodes)}}
	rdb, err := redisconn.NewClient(rc)
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	insp := asynq.NewInspectorFromRedisClient(rdb)
	// The master of the upload queue's slot, and a replica for it.
	uploadQueue := jobs.UploadQueue("test-node")
	slot, err := rdb.ClusterKeySlot(context.Background(), "asynq:{"+uploadQueue+"}:pending").Result()
	require.NoError(t, err)
	victim := nodes[min(int(slot)/(16384/3), 2)] // StartCluster's even split
	replica := redistest.AddClusterReplica(t, nodes, victim)

	cloud := daemontest.StartCloud(t, sandbox.Config{BlockSize: smallBlocks})
	dir := filepath.Join(t.TempDir(), "images")
	cfg := daemontest.Config(t, cloud, rc, dir)
	log, logs := observed(t)
	d := daemontest.Run(t, cfg, log)
	cloud.SetLatency(200 * time.Millisecond)
	var rels []string
	for i := range 10 {
		rel := fmt.Sprintf("img-%d.diskdump", i)
		daemontest.WriteRandom(t, filepath.Join(dir, rel), 16*smallBlocks+i*1000)
		rels = append(rels, rel)
	}
	daemontest.Eventually(t, time.Minute, "uploads in flight", func() bool {
		return len(daemontest.Tasks(t, insp, daemontest.StateActive)) > 0 && cloud.Stats().BlocksReceived > 0
	})
	require.Less(t, cloud.Stats().ImageRegisters, int64(len(rels)))
	victim.Kill()
	t.Logf("killed the master %s of slot %d (queue %s); replica %s", victim.Addr, slot, uploadQueue, replica.Addr)

	daemontest.Eventually(t, time.Minute, "the daemon to log the failover", func() bool {
		return logs.FilterMessageSnippet("Redis failover").FilterLevelExact(zap.WarnLevel).Len() > 0
	})
	fields := logs.FilterMessageSnippet("Redis failover").All()[0].ContextMap()
	assert.Equal(t, victim.Addr, fields["old_master"])
	assert.Equal(t, replica.Addr, fields["new_master"])
	cloud.SetLatency(0)

	requireAllRegistered(t, cloud, dir, smallBlocks, 3*time.Minute, rels...)
	daemontest.Eventually(t, 3*time.Minute, "the queues to drain", func() bool {
		for _, st := range []string{daemontest.StatePending, daemontest.StateActive, daemontest.StateScheduled, daemontest.StateRetry} {
			if len(daemontest.Tasks(t, insp, st)) > 0 {
				return false
			}
		}
		return true
	})
	require.True(t, d.Running(), "syncd stopped: %v", d.Err())
	assert.Equal(t, int64(len(rels)), cloud.Stats().ImageRegisters, "registrations")
	assert.Len(t, daemontest.Images(t, cloud), len(rels))
	assert.Empty(t, daemontest.Tasks(t, insp, daemontest.StateArchived))
}
