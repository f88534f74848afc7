package daemon_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/imagesync/imagesync/internal/ctl"
	"github.com/imagesync/imagesync/internal/daemon/daemontest"
	"github.com/imagesync/imagesync/internal/jobs"
)

// lockedBuffer collects a child's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// cleanEnv is the environment without any SYNCD_* variable, plus extra.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SYNCD_") && !strings.HasPrefix(kv, "NO_COLOR=") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// TestDevModeEndToEnd runs the README's quick start as a person would: the
// syncd binary with --dev in an empty directory (on free ports rather than
// the fixed dev ports, so it cannot collide), a file dropped into ./images,
// and syncctl, run there with no configuration, seeing the image in sync.
func TestDevModeEndToEnd(t *testing.T) {
	syncd, syncctl := daemontest.BuildSyncd(t), daemontest.BuildSyncctl(t)
	dir := t.TempDir()

	var stderr lockedBuffer
	cmd := exec.Command(syncd, "--dev", "--dev-listen", "127.0.0.1:0")
	cmd.Dir = dir
	cmd.Env = cleanEnv("SYNCD_REDIS_EMBEDDED_LISTEN=127.0.0.1:0", "SYNCD_HTTP_LISTEN=127.0.0.1:0")
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
		}
	})
	daemontest.Eventually(t, 90*time.Second, "the dev banner", func() bool {
		select {
		case err := <-exited:
			t.Fatalf("syncd --dev exited: %v\n%s", err, stderr.String())
		default:
		}
		return strings.Contains(stderr.String(), "imagesync dev mode is running")
	})
	assert.NotContains(t, stderr.String(), "\x1b[", "no colours into a pipe")

	// The configuration syncctl finds names the Redis that really listens.
	var devCfg struct {
		Redis struct {
			EmbeddedListen string `yaml:"embedded_listen"`
		} `yaml:"redis"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "state", "dev-syncd.yaml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &devCfg))
	assert.NotEqual(t, "127.0.0.1:0", devCfg.Redis.EmbeddedListen)
	assert.NotEqual(t, "127.0.0.1:6390", devCfg.Redis.EmbeddedListen, "the test keeps off the fixed dev port")

	syncctlRun := func(args ...string) (int, string, string) {
		c := exec.Command(syncctl, args...)
		c.Dir = dir
		c.Env = cleanEnv()
		var out, errOut bytes.Buffer
		c.Stdout, c.Stderr = &out, &errOut
		err := c.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("syncctl %v: %v", args, err)
		}
		return code, out.String(), errOut.String()
	}

	daemontest.WriteRandom(t, filepath.Join(dir, "images", "hello.diskdump"), 300<<10)
	var rep jobs.SweepReport
	daemontest.Eventually(t, 90*time.Second, "syncctl images to show hello.diskdump in sync", func() bool {
		code, out, errOut := syncctlRun("images", "--json")
		if code != 0 {
			t.Logf("syncctl images: exit %d: %s", code, errOut)
			return false
		}
		require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
		return len(rep.Images) == 1 && rep.Images[0].State == jobs.SweepInSync
	})
	assert.Equal(t, "hello.diskdump", rep.Images[0].RelPath)
	assert.NotEmpty(t, rep.Images[0].ImageID)

	code, out, errOut := syncctlRun("status", "--json")
	require.Equal(t, 0, code, errOut)
	var st ctl.StatusDoc
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	assert.Equal(t, devCfg.Redis.EmbeddedListen, st.Redis)
	assert.NotEmpty(t, st.Workers, "syncctl sees the dev daemon's workers")
	assert.Zero(t, st.Totals.Archived)

	code, out, errOut = syncctlRun("verify", "images/hello.diskdump")
	assert.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "MATCH")

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		assert.NoError(t, err, "a clean exit on SIGTERM\n%s", stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("syncd --dev did not stop within 30s of SIGTERM")
	}
}
