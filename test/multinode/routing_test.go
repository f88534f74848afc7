package multinode

import (
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/daemon/daemontest"
)

// TestNodesRegisterTheirOwnImages runs three syncd nodes (a, b, c) on one
// Redis, each watching the same path where it sees its own 10 images, their
// metafiles and a template that exist only on that node, plus a shared root
// of 10 images all of them read. Every image is registered exactly once,
// with the metadata of the node that has its files, and nothing fails.
func TestNodesRegisterTheirOwnImages(t *testing.T) {
	const perNode, shared, size = 10, 10, 3*blockSize + 100
	cloud := newCloud(t)
	c := newCluster(t, cloud, "a", "b", "c")
	for _, name := range c.order {
		c.fillNode(name, perNode, size)
	}
	c.fillShared(shared, size)
	want := c.expected(perNode, shared)

	start := time.Now()
	c.startAll()
	daemontest.Eventually(t, 90*time.Second, "40 images registered and published", func() bool {
		return len(daemontest.Images(t, cloud)) >= len(want) && idle(t, c)
	})
	t.Logf("%d images on %d nodes registered in %s", len(want), len(c.order), time.Since(start).Round(time.Millisecond))

	imgs := daemontest.Images(t, cloud)
	if bad := checkMetadata(imgs, want); bad != "" {
		t.Fatalf("images registered with the wrong node's metadata:\n%s", bad)
	}
	require.Len(t, imgs, len(want))
	require.EqualValues(t, len(want), daemontest.Stats(t, cloud).ImageRegisters, "sandbox registrations")
	require.Empty(t, daemontest.HalfRegistered(t, cloud))
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: c.redis.Addr})
	defer insp.Close()
	require.Empty(t, daemontest.Tasks(t, insp, daemontest.StateArchived), "archived tasks")
	require.Empty(t, daemontest.Tasks(t, insp, daemontest.StateRetry), "tasks waiting to retry")
}

// idle reports whether no task is waiting or running in any queue.
func idle(t testing.TB, c *cluster) bool {
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: c.redis.Addr})
	defer insp.Close()
	for _, s := range []string{daemontest.StatePending, daemontest.StateActive, daemontest.StateScheduled, daemontest.StateRetry} {
		if len(daemontest.Tasks(t, insp, s)) > 0 {
			return false
		}
	}
	return true
}
