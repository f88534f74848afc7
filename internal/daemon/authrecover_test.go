package daemon

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/jobs"
	"github.com/imagesync/imagesync/internal/sandbox"
	"github.com/imagesync/imagesync/internal/sandbox/sandboxtest"
)

// With the queues paused after a 401, writing a valid token to
// cloud.token_file resumes them without a restart: syncd reads the file
// again, authenticates with the new token, clears the pause, and the
// image waiting meanwhile is uploaded and registered.
func TestTokenFileRewriteUnpausesQueues(t *testing.T) {
	cloud := sandboxtest.Start(t, sandbox.Config{})
	alice, bob := sandboxtest.Alice, sandboxtest.Bob
	cloud.RevokeToken(bob.Token)

	dir := filepath.Join(t.TempDir(), "images")
	cfg := testConfig(t, cloud, dir)
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(bob.Token+"\n"), 0o600))
	cfg.Cloud.Token, cfg.Cloud.TokenFile = "", tokenFile

	info, _ := startDaemonWith(t, Options{Config: cfg, AuthRecheck: 200 * time.Millisecond})
	rdb := redis.NewClient(&redis.Options{Addr: cfg.Redis.Addr, DB: cfg.Redis.DB})
	defer rdb.Close()
	ctx := context.Background()
	paused := func() bool { return rdb.Exists(ctx, jobs.AuthPausedKey).Val() == 1 }
	require.Eventually(t, paused, 30*time.Second, 50*time.Millisecond, "a revoked token pauses the queues at start")

	writeRandom(t, filepath.Join(dir, "a.diskdump"), 100<<10)
	// A few rechecks with the same (rejected) token change nothing.
	time.Sleep(time.Second)
	assert.True(t, paused())
	assert.Empty(t, images(t, cloud, alice), "nothing is registered while the token is rejected")

	require.NoError(t, os.WriteFile(tokenFile, []byte(alice.Token+"\n"), 0o600))
	require.Eventually(t, func() bool { return !paused() }, 30*time.Second, 50*time.Millisecond, "the new token in the file clears the pause")
	require.Eventually(t, func() bool { return len(images(t, cloud, alice)) == 1 }, 60*time.Second, 100*time.Millisecond,
		"the image waiting meanwhile is registered, as the token file's user")
	_ = info
}
