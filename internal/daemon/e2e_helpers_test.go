package daemon

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/location"
	"github.com/imagesync/imagesync/internal/redistest"
	"github.com/imagesync/imagesync/internal/sandbox"
	"github.com/imagesync/imagesync/internal/sandbox/sandboxtest"
)

// testRedis returns the Redis config for a test daemon: a redis-server of
// the test's own.
func testRedis(t *testing.T) config.Redis {
	t.Helper()
	s := redistest.Start(t)
	return config.Redis{Addr: s.Addr, DB: s.DB}
}

// testConfig is a daemon config for one watch root against cloud.
func testConfig(t *testing.T, cloud *sandboxtest.Cloud, dir string) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Node = "test-node"
	cfg.Cloud.AuthURL = cloud.AuthURL
	cfg.Cloud.Token = cloud.User.Token
	cfg.Redis = testRedis(t)
	cfg.StateDir = filepath.Join(t.TempDir(), "state")
	cfg.Settle = config.Duration(300 * time.Millisecond)
	cfg.Rescan = config.Duration(2 * time.Second)
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.Upload.Blocks = 4
	cfg.Watch = []config.Watch{{Dir: dir, Container: "images", Defaults: map[string]any{"properties": map[string]any{"OSFAMILY": "linux"}}}}
	require.NoError(t, cfg.Validate())
	return cfg
}

// runDaemon runs Run in the background until the test ends.
func runDaemon(t *testing.T, cfg *config.Config, log *zap.Logger) Info {
	t.Helper()
	info, _ := startDaemon(t, cfg, log)
	return info
}

// startDaemon is runDaemon with a stop function (idempotent, also run when
// the test ends).
func startDaemon(t *testing.T, cfg *config.Config, log *zap.Logger) (Info, func()) {
	t.Helper()
	return startDaemonWith(t, Options{Config: cfg, Logger: log})
}

// startDaemonWith is startDaemon with more options.
func startDaemonWith(t *testing.T, o Options) (Info, func()) {
	t.Helper()
	if o.Logger == nil {
		o.Logger = zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	}
	if o.ShutdownTimeout == 0 {
		o.ShutdownTimeout = time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan Info, 1)
	done := make(chan error, 1)
	o.Ready = func(i Info) { ready <- i }
	go func() {
		done <- Run(ctx, o)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("daemon: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("daemon did not stop within 30s")
			}
		})
	}
	t.Cleanup(stop)
	select {
	case info := <-ready:
		return info, stop
	case err := <-done:
		t.Fatalf("daemon exited: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("daemon not ready after 30s")
	}
	return Info{}, stop
}

// writeRandom writes size random bytes to path.
func writeRandom(t *testing.T, path string, size int) []byte {
	t.Helper()
	b := make([]byte, size)
	_, _ = rand.Read(b)
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, b, 0o644))
	return b
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
}

// images lists the user's registered images through the sandbox's Plankton.
func images(t *testing.T, cloud *sandboxtest.Cloud, user sandbox.User) []map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, cloud.ImageURL()+"/v1.0/images/detail", nil)
	req.Header.Set("X-Auth-Token", user.Token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var body struct {
		Images []map[string]any `json:"images"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return body.Images
}

func imageByName(imgs []map[string]any, name string) map[string]any {
	for _, im := range imgs {
		if im["name"] == name {
			return im
		}
	}
	return nil
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", timeout, what)
}

// objectHead returns the headers of a Pithos object (nil on 404).
func objectHead(t *testing.T, cloud *sandboxtest.Cloud, container, name string) http.Header {
	t.Helper()
	req, _ := http.NewRequest(http.MethodHead, cloud.PithosURL()+"/"+cloud.User.UUID+"/"+container+"/"+location.EscapePath(name), nil)
	req.Header.Set("X-Auth-Token", cloud.User.Token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil
	}
	require.Equal(t, http.StatusOK, resp.StatusCode, "HEAD %s/%s", container, name)
	return resp.Header
}

func objectGet(t *testing.T, cloud *sandboxtest.Cloud, container, name string) []byte {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, cloud.PithosURL()+"/"+cloud.User.UUID+"/"+container+"/"+location.EscapePath(name), nil)
	req.Header.Set("X-Auth-Token", cloud.User.Token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	buf, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return buf
}
