package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/ctl"
	"github.com/imagesync/imagesync/internal/daemon/daemontest"
	"github.com/imagesync/imagesync/internal/sandbox"
)

// TestLoad drops 1,000 small images and 2 large ones (64 MiB each;
// IMAGESYNC_LOAD_LARGE_MB changes that, IMAGESYNC_LOAD_SMALL the count) into
// the watched folder at once, as one directory rename, for a syncd child
// process: every image completes with the right checksum, the child's peak
// RSS (VmHWM) stays under a generous bound, and `syncctl status --json`
// answers within a few seconds throughout. With -short: 100 small and 2 of
// 8 MiB.
func TestLoad(t *testing.T) {
	small, largeMB := 1000, 64
	if testing.Short() {
		small, largeMB = 100, 8
	}
	if v := os.Getenv("IMAGESYNC_LOAD_SMALL"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, "IMAGESYNC_LOAD_SMALL")
		small = n
	}
	if v := os.Getenv("IMAGESYNC_LOAD_LARGE_MB"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, "IMAGESYNC_LOAD_LARGE_MB")
		largeMB = n
	}
	const rssBound = 400 << 20 // generous: SPEC 7 holds a 4 GiB upload alone to 100 MiB
	const statusBound = 5 * time.Second

	bin := daemontest.BuildSyncd(t)
	cloud := daemontest.StartCloud(t, sandbox.Config{})
	root := t.TempDir()
	dir := filepath.Join(root, "images")
	cfg := daemontest.Config(t, cloud, daemontest.Redis(t), dir)
	cfgPath := filepath.Join(root, "syncd.yaml")
	daemontest.WriteConfig(t, cfg, cfgPath)
	// syncctl reads the same file: the Redis is a real one both can reach.
	ctlPath := cfgPath

	// Stage everything outside the watch root, then rename it in at once.
	staging := filepath.Join(root, "staging")
	var rels []string
	for i := range small {
		rel := fmt.Sprintf("batch/small/%02d/img-%04d.diskdump", i%50, i)
		daemontest.WriteRandom(t, filepath.Join(staging, "small", fmt.Sprintf("%02d", i%50), fmt.Sprintf("img-%04d.diskdump", i)), 2048+i)
		rels = append(rels, rel)
	}
	for i := range 2 {
		writeLarge(t, filepath.Join(staging, "large", fmt.Sprintf("large-%d.diskdump", i)), int64(largeMB)<<20)
		rels = append(rels, fmt.Sprintf("batch/large/large-%d.diskdump", i))
	}

	p := daemontest.StartSyncd(t, bin, cfgPath, filepath.Join(root, "syncd.log"))
	p.WaitRunning(t, 30*time.Second)
	start := time.Now()
	require.NoError(t, os.Rename(staging, filepath.Join(dir, "batch")))

	status := func() (time.Duration, map[string]any) {
		var out, errOut bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		t0 := time.Now()
		code := ctl.Main(ctx, []string{"--config", ctlPath, "status", "--json"}, ctl.Options{Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }})
		took := time.Since(t0)
		require.Equal(t, 0, code, "syncctl status --json: %s", errOut.String())
		var doc map[string]any
		require.NoError(t, json.Unmarshal(out.Bytes(), &doc), "syncctl status --json: %s", out.String())
		return took, doc
	}

	var statusTimes []time.Duration
	var peak int64
	timeout := 10 * time.Minute
	done := daemontest.Wait(timeout, func() bool {
		took, _ := status()
		statusTimes = append(statusTimes, took)
		if took > statusBound {
			t.Errorf("syncctl status --json took %s under load (bound %s)", took, statusBound)
		}
		peak = max(peak, p.VmHWM())
		if !p.Running() {
			t.Fatalf("syncd exited under load\n%s", p.Log(t))
		}
		time.Sleep(time.Second)
		return len(daemontest.Images(t, cloud)) >= len(rels)
	})
	elapsed := time.Since(start)
	peak = max(peak, p.VmHWM())
	require.True(t, done, "not every image registered after %s: %d of %d", timeout, len(daemontest.Images(t, cloud)), len(rels))

	imgs := daemontest.Images(t, cloud)
	require.Len(t, imgs, len(rels))
	for _, rel := range rels {
		im := daemontest.ImageByName(imgs, rel)
		require.NotNil(t, im, rel)
		require.Equal(t, daemontest.FileHash(t, filepath.Join(dir, rel), 0), im.Checksum, rel)
	}
	require.Empty(t, daemontest.HalfRegistered(t, cloud))
	var worst time.Duration
	for _, d := range statusTimes {
		worst = max(worst, d)
	}
	st := daemontest.Stats(t, cloud)
	t.Logf("load: %d small + 2 × %d MiB images registered in %s; syncd peak RSS (VmHWM) %.1f MiB; syncctl status --json: %d calls, slowest %s; sandbox: %d requests, %d blocks, %.1f MiB received",
		small, largeMB, elapsed.Round(time.Millisecond), float64(peak)/(1<<20), len(statusTimes), worst.Round(time.Millisecond),
		st.Requests, st.BlocksReceived, float64(st.BlockBytesReceived)/(1<<20))
	require.GreaterOrEqual(t, len(statusTimes), 2, "status was not sampled while the load ran")
	require.Positive(t, peak, "could not read the child's VmHWM")
	require.Less(t, peak, int64(rssBound), "syncd's peak RSS")
	require.NoError(t, p.Terminate(t, 30*time.Second))
}

// writeLarge writes size pseudo-random bytes in 1 MiB chunks (distinct
// blocks, bounded memory).
func writeLarge(t *testing.T, path string, size int64) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i * 7)
	}
	for off := int64(0); off < size; off += int64(len(chunk)) {
		copy(chunk, fmt.Sprintf("%s@%d", path, off))
		n := min(int64(len(chunk)), size-off)
		_, err := f.Write(chunk[:n])
		require.NoError(t, err)
	}
}
