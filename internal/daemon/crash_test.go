package daemon

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/hashmap"
	"github.com/imagesync/imagesync/internal/sandbox"
	"github.com/imagesync/imagesync/internal/sandbox/sandboxtest"
)

// childConfigEnv makes the test binary act as syncd (see TestSyncdChildProcess).
const childConfigEnv = "IMAGESYNC_TEST_SYNCD_CONFIG"

// TestSyncdChildProcess is not a test: re-executed by the crash test with
// childConfigEnv set, the test binary runs syncd's Main as its own process,
// so it can be killed with SIGKILL.
func TestSyncdChildProcess(t *testing.T) {
	path := os.Getenv(childConfigEnv)
	if path == "" {
		t.Skip("helper process for TestCrashKillMidUploadResumes")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Main(ctx, MainOptions{ConfigPath: path, ConfigSet: true, Stderr: os.Stderr}); err != nil {
		fmt.Fprintln(os.Stderr, "syncd:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// freeAddr finds a loopback port nobody listens on (so the test knows where
// the child's embedded Redis is).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// syncdProcess is one run of the child syncd.
type syncdProcess struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // cmd.Wait's answer, once done is closed
}

func startSyncd(t *testing.T, cfgPath, logPath string) *syncdProcess {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(t, err)
	cmd := exec.Command(os.Args[0], "-test.run=^TestSyncdChildProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), childConfigEnv+"="+cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	p := &syncdProcess{cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); logf.Close(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(20 * time.Second):
				_ = cmd.Process.Kill()
				<-p.done
			}
		}
	})
	return p
}

// TestCrashKillMidUploadResumes SIGKILLs a syncd process in the middle of an
// upload and starts it again: the image completes, the blocks the server
// already had are not sent again, and it is registered once.
func TestCrashKillMidUploadResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts syncd processes")
	}
	cloud := sandboxtest.Start(t, sandbox.Config{BlockSize: e2eBlockSize})
	dir := t.TempDir()
	cfg := testConfig(t, cloud, dir)
	if cfg.Redis.Addr == config.EmbeddedRedis {
		cfg.Redis.EmbeddedListen = freeAddr(t)
	}
	cfg.Upload.Files, cfg.Upload.Blocks = 1, 2
	cfg.Log = config.Log{Level: "info", Format: "json"}
	raw, err := yaml.Marshal(cfg)
	require.NoError(t, err)
	cfgPath := filepath.Join(t.TempDir(), "syncd.yaml")
	require.NoError(t, os.WriteFile(cfgPath, raw, 0o600))
	logPath := filepath.Join(t.TempDir(), "syncd.log")
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("syncd log:\n%s", b)
		}
	})

	const nblocks = 48
	data := writeRandom(t, filepath.Join(dir, "big.diskdump"), nblocks*e2eBlockSize-10)
	require.Equal(t, int64(nblocks), hashmap.NumBlocks(int64(len(data)), e2eBlockSize))

	// Slow block uploads (2 at a time, 100ms each): the upload takes ~2.5s.
	cloud.SetLatency(100 * time.Millisecond)
	first := startSyncd(t, cfgPath, logPath)
	deadline := time.Now().Add(60 * time.Second)
	for cloud.Stats().BlocksReceived < 6 {
		select {
		case <-first.done:
			t.Fatalf("syncd exited before the upload got going: %v", first.err)
		default:
		}
		require.True(t, time.Now().Before(deadline), "the upload did not start within 60s")
		time.Sleep(20 * time.Millisecond)
	}
	require.NoError(t, first.cmd.Process.Kill())
	<-first.done
	var exitErr *exec.ExitError
	require.ErrorAs(t, first.err, &exitErr)
	require.Equal(t, syscall.SIGKILL, exitErr.Sys().(syscall.WaitStatus).Signal(), "killed by SIGKILL")

	// (The at most upload.blocks requests the dead process had in flight
	// may still be stored by the server: they then are not missing.)
	atKill := cloud.Stats()
	t.Logf("killed with %d of %d blocks stored", atKill.BlocksReceived, nblocks)
	require.Less(t, atKill.BlocksReceived, int64(nblocks), "the kill landed mid-upload")
	require.Zero(t, atKill.ImageRegisters, "nothing registered before the upload finished")
	require.Nil(t, objectHead(t, cloud, "images", "big.diskdump"), "no object before the upload finished")

	cloud.SetLatency(0)
	startSyncd(t, cfgPath, logPath)
	// With a real Redis the killed worker's task is still "active": the
	// restart reclaims it (jobs.ReclaimOrphans) instead of waiting out
	// asynq's lease recovery, up to two minutes. Embedded Redis starts
	// empty and the start-up scan queues the upload again at once.
	eventually(t, 40*time.Second, "the image registered after the restart", func() bool {
		return len(images(t, cloud, cloud.User)) == 1
	})

	imgs := images(t, cloud, cloud.User)
	require.Len(t, imgs, 1)
	im := imgs[0]
	require.Equal(t, "big.diskdump", im["name"])
	require.Equal(t, float64(len(data)), im["size"])
	require.Equal(t, merkle(t, data, e2eBlockSize), im["checksum"])
	h := objectHead(t, cloud, "images", "big.diskdump")
	require.NotNil(t, h)
	require.Equal(t, im["checksum"], h.Get("X-Object-Hash"))
	require.Equal(t, h.Get("X-Object-Uuid"), im["id"])
	require.Equal(t, data, objectGet(t, cloud, "images", "big.diskdump"))

	st := cloud.Stats()
	require.Equal(t, int64(nblocks), st.BlocksReceived,
		"only the %d missing blocks are sent after the restart", int64(nblocks)-atKill.BlocksReceived)
	require.Equal(t, int64(1), st.ImageRegisters, "registered once")
	eventually(t, 10*time.Second, "the .meta uploaded", func() bool {
		return objectHead(t, cloud, "images", "big.diskdump.meta") != nil
	})
	imgs = images(t, cloud, cloud.User)
	require.Len(t, imgs, 1)
	require.Equal(t, im["id"], imgs[0]["id"], "same image id")
}
