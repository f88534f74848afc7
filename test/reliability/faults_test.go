package reliability

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/daemon/daemontest"
	"github.com/imagesync/imagesync/internal/jobs"
	"github.com/imagesync/imagesync/internal/sandbox"
	"github.com/imagesync/imagesync/internal/sandbox/sandboxtest"
)

const smallBlocks = 64 << 10 // sandbox block size for multi-block images that stay small

// requireAllRegistered waits until every rel under dir is registered with the
// checksum of its local content, then checks that nothing is half-registered.
func requireAllRegistered(t *testing.T, cloud *sandboxtest.Cloud, dir string, blockSize int, timeout time.Duration, rels ...string) {
	t.Helper()
	want := map[string]string{}
	for _, r := range rels {
		want[r] = daemontest.FileHash(t, filepath.Join(dir, r), blockSize)
	}
	var last string
	ok := daemontest.Wait(timeout, func() bool {
		imgs := daemontest.Images(t, cloud)
		var missing []string
		for r, h := range want {
			im := daemontest.ImageByName(imgs, r)
			if im == nil || im.Checksum != h {
				missing = append(missing, r)
			}
		}
		last = strings.Join(missing, ", ")
		return len(missing) == 0
	})
	require.True(t, ok, "not registered with the right checksum after %s: %s", timeout, last)
	require.Empty(t, daemontest.HalfRegistered(t, cloud))
}

// TestFaults503 runs a daemon against a cloud that answers 30% of block
// uploads and hashmap PUTs with 503: every image still completes correctly,
// with no archived task.
func TestFaults503(t *testing.T) {
	cloud := daemontest.StartCloud(t, sandbox.Config{BlockSize: smallBlocks, FailRate: 0.3})
	dir := filepath.Join(t.TempDir(), "images")
	cfg := daemontest.Config(t, cloud, daemontest.Redis(t), dir)
	var rels []string
	for i := range 8 {
		rel := fmt.Sprintf("img-%d.diskdump", i)
		daemontest.WriteRandom(t, filepath.Join(dir, rel), 100_000+i*90_000)
		rels = append(rels, rel)
	}
	d := daemontest.Run(t, cfg, nil)
	start := time.Now()
	requireAllRegistered(t, cloud, dir, smallBlocks, 120*time.Second, rels...)
	st := daemontest.Stats(t, cloud)
	t.Logf("8 images through a 30%% fail rate in %s: %d faults injected, %d blocks received, %d hashmap PUTs",
		time.Since(start).Round(time.Millisecond), st.FaultsInjected, st.BlocksReceived, st.HashmapPuts)
	require.Positive(t, st.FaultsInjected)
	require.Empty(t, daemontest.Tasks(t, d.Inspector(t), daemontest.StateArchived))
	require.Len(t, daemontest.Images(t, cloud), len(rels))
}

// TestFaultsLatencyPastTimeout makes block uploads and hashmap PUTs slower
// than cloud.timeout: the requests time out and are retried (the log says
// so), nothing is registered meanwhile, and once the cloud is fast again
// every image completes.
func TestFaultsLatencyPastTimeout(t *testing.T) {
	cloud := daemontest.StartCloud(t, sandbox.Config{BlockSize: smallBlocks, Latency: 2 * time.Second})
	dir := filepath.Join(t.TempDir(), "images")
	cfg := daemontest.Config(t, cloud, daemontest.Redis(t), dir)
	cfg.Cloud.Timeout = config.Duration(500 * time.Millisecond)
	rels := []string{"slow-a.diskdump", "slow-b.diskdump"}
	for _, r := range rels {
		daemontest.WriteRandom(t, filepath.Join(dir, r), 300_000)
	}
	log, logs := observed(t)
	daemontest.Run(t, cfg, log)
	timedOut := func() int {
		n := 0
		for _, e := range logs.FilterMessage("retrying request").All() {
			if s, _ := e.ContextMap()["error"].(string); strings.Contains(s, "timeout awaiting response headers") {
				n++
			}
		}
		return n
	}
	daemontest.Eventually(t, 30*time.Second, "requests to time out and be retried", func() bool { return timedOut() >= 2 })
	require.Empty(t, daemontest.Images(t, cloud), "registered while every hashmap PUT timed out")
	cloud.SetLatency(0)
	requireAllRegistered(t, cloud, dir, smallBlocks, 90*time.Second, rels...)
	t.Logf("%d requests timed out (latency 2s > cloud.timeout 500ms) and were retried", timedOut())
}

// TestFaults401Halfway revokes the daemon's token in the middle of an
// upload: the job stops with the 401 message, the queues are paused (and
// /readyz says why), nothing is registered; with the token valid again and
// syncd restarted, the image completes, sending only the blocks not yet
// stored.
func TestFaults401Halfway(t *testing.T) {
	cloud := daemontest.StartCloud(t, sandbox.Config{BlockSize: smallBlocks, Latency: 150 * time.Millisecond})
	dir := filepath.Join(t.TempDir(), "images")
	cfg := daemontest.Config(t, cloud, daemontest.Redis(t), dir)
	const rel, blocks = "auth/big.diskdump", 40
	daemontest.WriteRandom(t, filepath.Join(dir, rel), blocks*smallBlocks)
	d := daemontest.Run(t, cfg, nil)
	insp := d.Inspector(t)

	daemontest.Eventually(t, 30*time.Second, "the upload to be under way", func() bool { return daemontest.Stats(t, cloud).BlocksReceived >= 4 })
	cloud.RevokeToken(cloud.User.Token)
	revokedAt := daemontest.Stats(t, cloud).BlocksReceived

	var msg string
	daemontest.Eventually(t, 30*time.Second, "the upload to stop with a 401", func() bool {
		ti := taskFor(daemontest.AllTasks(t, insp), jobs.TypeUpload, rel)
		if ti != nil {
			msg = ti.LastErr
		}
		return strings.Contains(msg, "401")
	})
	t.Logf("401 message: %s", msg)
	requireContainsAll(t, msg, "the cloud rejected the token (401): write a valid one to cloud.token_file (read again without a restart), or set cloud.token / SYNCD_TOKEN and restart syncd", rel)
	reason, err := d.Redis(t).Get(context.Background(), jobs.AuthPausedKey).Result()
	require.NoError(t, err)
	require.Contains(t, reason, "401")
	for _, q := range []string{jobs.UploadQueue(cfg.Node), jobs.QueueDefault} {
		qi, err := insp.GetQueueInfo(q)
		if err == nil {
			require.True(t, qi.Paused, "queue %s not paused after the 401", q)
		}
	}
	code, body := get(t, "http://"+d.Info.HTTPAddr+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, body, "the cloud rejected the token: queues paused")
	// The revoked token cannot list images: the sandbox's counter says
	// none was registered.
	require.Zero(t, cloud.Stats().ImageRegisters, "an image was registered after the 401")
	require.True(t, d.Running())

	// The token is renewed and syncd restarted (same state dir and Redis).
	require.NoError(t, d.Stop(30*time.Second))
	sentBefore := daemontest.Stats(t, cloud).BlocksReceived
	cloud.RestoreToken(cloud.User.Token)
	cloud.SetLatency(0)
	d2 := daemontest.Run(t, cfg, nil)
	requireAllRegistered(t, cloud, dir, smallBlocks, 60*time.Second, rel)
	sentAfter := daemontest.Stats(t, cloud).BlocksReceived - sentBefore
	t.Logf("blocks received: %d before the revocation, %d before the restart, %d after it (of %d)", revokedAt, sentBefore, sentAfter, blocks)
	require.LessOrEqual(t, sentBefore+sentAfter, int64(blocks+2*cfg.Upload.Blocks), "blocks were re-sent")
	require.Less(t, sentAfter, int64(blocks), "the restarted upload re-sent everything")
	_, err = d2.Redis(t).Get(context.Background(), jobs.AuthPausedKey).Result()
	require.Error(t, err, "the auth pause is still recorded after a successful restart")
}

// TestFaultsQuotaFull fills the user's 1 MiB quota. An image larger than the
// free space is refused before any block is sent (the upload checks the
// Astakos quota first); two images that each fit but not together are
// uploaded at once (latency keeps both in flight), so the second one meets the
// server's 413. The one that fits is registered, the others are archived
// with a message saying what to do, and nothing is half-registered.
func TestFaultsQuotaFull(t *testing.T) {
	// 256 KiB blocks: every image spans several, so the pre-check runs (the
	// engine leaves one-block objects to the server's own 413).
	cloud := daemontest.StartCloud(t, sandbox.Config{Quota: 1 << 20, Latency: 500 * time.Millisecond, BlockSize: 256 << 10})
	dir := filepath.Join(t.TempDir(), "images")
	cfg := daemontest.Config(t, cloud, daemontest.Redis(t), dir)
	cfg.Upload.Files = 3
	f := false
	cfg.Watch[0].UploadMetafile = &f // keep the quota arithmetic to the images
	daemontest.WriteRandom(t, filepath.Join(dir, "too-big.diskdump"), 2<<20)
	daemontest.WriteRandom(t, filepath.Join(dir, "a.diskdump"), 600_000)
	daemontest.WriteRandom(t, filepath.Join(dir, "b.diskdump"), 600_000)
	d := daemontest.Run(t, cfg, nil)
	insp := d.Inspector(t)

	archived := func(rel string) string {
		if ti := taskFor(daemontest.Tasks(t, insp, daemontest.StateArchived), jobs.TypeUpload, rel); ti != nil {
			return ti.LastErr
		}
		return ""
	}
	daemontest.Eventually(t, 60*time.Second, "too-big.diskdump to be archived", func() bool { return archived("too-big.diskdump") != "" })
	msg := archived("too-big.diskdump")
	t.Logf("quota pre-check message: %s", msg)
	requireContainsAll(t, msg, "upload too-big.diskdump", "not enough storage quota to upload too-big.diskdump: needs 2.0 MiB (2097152 bytes), but only 1.0 MiB (1048576 bytes) is free",
		"free space in Pithos+ or raise the pithos.diskspace quota", "run `syncctl retry` once there is room")

	var loser string
	daemontest.Eventually(t, 60*time.Second, "one of a/b to be registered and the other archived", func() bool {
		imgs := daemontest.Images(t, cloud)
		ra, rb := daemontest.ImageByName(imgs, "a.diskdump") != nil, daemontest.ImageByName(imgs, "b.diskdump") != nil
		switch {
		case ra && !rb && archived("b.diskdump") != "":
			loser = "b.diskdump"
		case rb && !ra && archived("a.diskdump") != "":
			loser = "a.diskdump"
		}
		return loser != ""
	})
	msg = archived(loser)
	t.Logf("quota 413 message: %s", msg)
	requireContainsAll(t, msg, "upload "+loser, "413", "free space in Pithos+ or raise the pithos.diskspace quota", "run `syncctl retry` once there is room")
	imgs := daemontest.Images(t, cloud)
	require.Len(t, imgs, 1)
	require.Equal(t, "", daemontest.ObjectHash(t, cloud, "/images/too-big.diskdump"), "an object was left for the refused image")
	require.Equal(t, "", daemontest.ObjectHash(t, cloud, "/images/"+loser), "a partial object was left")
	require.Empty(t, daemontest.HalfRegistered(t, cloud))
	require.True(t, d.Running())
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
