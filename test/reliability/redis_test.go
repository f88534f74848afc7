package reliability

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/daemon/daemontest"
	"github.com/imagesync/imagesync/internal/sandbox"
)

const redisServer = "/usr/bin/redis-server"

// redisProc is a private redis-server child (never the shared one).
type redisProc struct {
	cmd  *exec.Cmd
	port int
	done chan struct{}
}

func startRedis(t *testing.T, port int) *redisProc {
	t.Helper()
	cmd := exec.Command(redisServer, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	cmd.Dir = t.TempDir()
	logf, err := os.Create(filepath.Join(cmd.Dir, "redis.log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("redis-server on port %d:\n%s", port, b)
		}
	})
	p := &redisProc{cmd: cmd, port: port, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(p.kill)
	rdb := redis.NewClient(&redis.Options{Addr: p.addr()})
	defer rdb.Close()
	daemontest.Eventually(t, 10*time.Second, "redis-server on port "+strconv.Itoa(port), func() bool {
		return rdb.Ping(context.Background()).Err() == nil
	})
	return p
}

func (p *redisProc) addr() string { return "127.0.0.1:" + strconv.Itoa(p.port) }

func (p *redisProc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestRedisLoss runs a daemon on a private redis-server, SIGKILLs it while
// uploads are in flight and images keep arriving, and starts it again (empty:
// no persistence) on the same port: the daemon keeps running, reconnects,
// rebuilds its queue from the folder, and every image ends registered.
func TestRedisLoss(t *testing.T) {
	if os.Getenv("REDIS_ADDR") == "" {
		t.Skip("REDIS_ADDR not set: the Redis-loss test runs with the real-Redis suite (it starts its own redis-server, never touching the shared one)")
	}
	if _, err := os.Stat(redisServer); err != nil {
		t.Skipf("%s not available: %v", redisServer, err)
	}
	port := freePort(t)
	rs := startRedis(t, port)

	cloud := daemontest.StartCloud(t, sandbox.Config{BlockSize: smallBlocks})
	dir := filepath.Join(t.TempDir(), "images")
	cfg := daemontest.Config(t, cloud, config.Redis{Addr: rs.addr()}, dir)
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
	rs.kill()
	t.Logf("redis-server killed with uploads in flight")
	// Images dropped while Redis is gone.
	for i := range 2 {
		drop(fmt.Sprintf("during-%d.diskdump", i), 100_000)
	}
	time.Sleep(4 * time.Second) // a couple of rescans and health checks against a dead Redis
	require.True(t, d.Running(), "the daemon exited when Redis went away: %v", d.Err())
	code, _ := get(t, "http://"+d.Info.HTTPAddr+"/healthz")
	require.Equal(t, http.StatusServiceUnavailable, code, "/healthz should report the lost Redis")

	startRedis(t, port)
	cloud.SetLatency(0)
	t.Logf("redis-server restarted, empty, on the same port")
	drop("after.diskdump", 50_000)
	requireAllRegistered(t, cloud, dir, smallBlocks, 90*time.Second, rels...)
	require.True(t, d.Running())
	code, _ = get(t, "http://"+d.Info.HTTPAddr+"/healthz")
	require.Equal(t, http.StatusOK, code)
	require.Len(t, daemontest.Images(t, cloud), len(rels))
}
