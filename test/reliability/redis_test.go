package reliability

import (
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/daemon/daemontest"
	"github.com/imagesync/imagesync/internal/redistest"
	"github.com/imagesync/imagesync/internal/sandbox"
)

// TestRedisLoss runs a daemon on a private redis-server, SIGKILLs it while
// uploads are in flight and images keep arriving, and starts it again (empty:
// no persistence) on the same port: the daemon keeps running, reconnects,
// rebuilds its queue from the folder, and every image ends registered.
func TestRedisLoss(t *testing.T) {
	rs := redistest.StartProcess(t)

	cloud := daemontest.StartCloud(t, sandbox.Config{BlockSize: smallBlocks})
	dir := filepath.Join(t.TempDir(), "images")
	cfg := daemontest.Config(t, cloud, config.Redis{Addr: rs.Addr}, dir)
	var rels []string
	drop := func(name string, size int) {
		daemontest.WriteRandom(t, filepath.Join(dir, name), size)
		rels = append(rels, name)
	}
	for i := range 3 {
		drop(fmt.Sprintf("before-%d.diskdump", i), 200_000)
	}
	d := daemontest.Run(t, cfg, nil)
	requireAllRegistered(t, cloud, dir, smallBlocks, 60*time.Second, rels...)

	// Uploads in flight (slow blocks) when Redis dies.
	cloud.SetLatency(300 * time.Millisecond)
	for i := range 3 {
		drop(fmt.Sprintf("inflight-%d.diskdump", i), 20*smallBlocks)
	}
	daemontest.Eventually(t, 30*time.Second, "uploads to be in flight", func() bool { return cloud.Stats().BlocksReceived > 0 && cloud.Stats().HashmapPuts > 3 })
	rs.Kill()
	t.Logf("redis-server killed with uploads in flight")
	// Images dropped while Redis is gone.
	for i := range 2 {
		drop(fmt.Sprintf("during-%d.diskdump", i), 100_000)
	}
	time.Sleep(4 * time.Second) // a couple of rescans and health checks against a dead Redis
	require.True(t, d.Running(), "the daemon exited when Redis went away: %v", d.Err())
	code, _ := get(t, "http://"+d.Info.HTTPAddr+"/healthz")
	require.Equal(t, http.StatusServiceUnavailable, code, "/healthz should report the lost Redis")

	rs.Restart()
	cloud.SetLatency(0)
	t.Logf("redis-server restarted, empty, on the same port")
	drop("after.diskdump", 50_000)
	requireAllRegistered(t, cloud, dir, smallBlocks, 90*time.Second, rels...)
	require.True(t, d.Running())
	code, _ = get(t, "http://"+d.Info.HTTPAddr+"/healthz")
	require.Equal(t, http.StatusOK, code)
	require.Len(t, daemontest.Images(t, cloud), len(rels))
}
