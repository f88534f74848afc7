package multinode

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/ctl"
	"github.com/imagesync/imagesync/internal/daemon/daemontest"
	"github.com/imagesync/imagesync/internal/jobs"
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
	waitAllDone(t, c, len(want), 90*time.Second, "40 images registered and published")
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

	// What node a's operator sees: its own and the shared images in sync,
	// and the other nodes' images under the same remote folder as theirs,
	// not as orphans whose files are gone.
	var doc ctl.ImagesDoc
	c.syncctlOn("a", &doc, "images")
	require.Equal(t, map[jobs.SweepState]int{jobs.SweepInSync: perNode + shared, jobs.SweepOtherNode: 2 * perNode}, doc.Counts)
	for _, im := range doc.Images {
		if im.State == jobs.SweepOtherNode {
			require.Equal(t, want[im.Name], im.Node, "%s (%s)", im.Name, im.Location)
		}
	}
}

// idle reports whether no task is waiting or running in any queue.
func idle(t testing.TB, c *cluster) bool { return busy(t, c) == "" }

// busy describes the tasks waiting or running in any queue ("" if none).
func busy(t testing.TB, c *cluster) string {
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: c.redis.Addr})
	defer insp.Close()
	var b strings.Builder
	for _, s := range []string{daemontest.StatePending, daemontest.StateActive, daemontest.StateScheduled, daemontest.StateRetry} {
		for _, ti := range daemontest.Tasks(t, insp, s) {
			fmt.Fprintf(&b, "%s %s %s on %s: %s (last error %q)\n", s, ti.Type, ti.ID, ti.Queue, ti.Payload, ti.LastErr)
		}
	}
	return b.String()
}

// waitAllDone waits until want images are registered and no work is left,
// failing with what is left if that takes longer than timeout.
func waitAllDone(t testing.TB, c *cluster, want int, timeout time.Duration, what string) {
	t.Helper()
	if daemontest.Wait(timeout, func() bool { return len(daemontest.Images(t, c.cloud)) >= want && idle(t, c) }) {
		return
	}
	t.Fatalf("timed out after %s waiting for %s: %d of %d images registered; left:\n%s", timeout, what, len(daemontest.Images(t, c.cloud)), want, busy(t, c))
}
